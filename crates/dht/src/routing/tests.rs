use std::net::{Ipv4Addr, SocketAddr};

use super::*;

fn at(secs: u64) -> Instant {
    // One fixed origin per test process is enough: only differences matter.
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now) + Duration::from_secs(secs)
}

fn node(id: NodeId, n: u32) -> NodeInfo {
    NodeInfo { id, addr: SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + n), 6881)) }
}

/// An id whose distance from the zero id has exactly `lz` leading zeros, varied by `n`.
fn id_at(lz: usize, n: u8) -> NodeId {
    let mut id = [0u8; 20];
    id[lz / 8] = 0x80 >> (lz % 8);
    id[19] |= n;
    NodeId(id)
}

#[test]
fn splits_only_the_own_bucket_and_caps_others() {
    let mut t = RoutingTable::new(NodeId([0; 20]), at(0));
    // 20 nodes far away (bucket 0): only K fit, and bucket 0 never splits once it is not last.
    for n in 0..20 {
        t.heard_from(node(id_at(0, n), u32::from(n)), Contact::Response, at(0));
    }
    // Nodes closer to us make the last bucket split.
    for n in 0..20 {
        t.heard_from(node(id_at(5, n), 100 + u32::from(n)), Contact::Response, at(0));
    }
    assert!(t.bucket_count() > 1);
    assert_eq!(t.entries().filter(|e| e.info.id.0[0] == 0x80).count(), K);
    assert_eq!(t.entries().filter(|e| e.info.id.0[0] == 0x04).count(), K);
    assert_eq!(t.len(), 2 * K);
    assert_eq!(t.heard_from(node(NodeId([0; 20]), 999), Contact::Response, at(0)), Heard::Ignored, "own id");
}

#[test]
fn bad_nodes_are_replaced() {
    let mut t = RoutingTable::new(NodeId([0; 20]), at(0));
    for n in 0..K as u8 {
        t.heard_from(node(id_at(0, n), u32::from(n)), Contact::Response, at(0));
    }
    // Trigger a split so bucket 0 is no longer the last one.
    t.heard_from(node(id_at(3, 0), 50), Contact::Response, at(0));
    let newcomer = node(id_at(0, 100), 100);
    assert_eq!(t.heard_from(newcomer, Contact::Response, at(1)), Heard::Ignored, "bucket full of good nodes");
    let victim = node(id_at(0, 0), 0);
    t.failed(victim.addr, at(2));
    assert!(t.entries().any(|e| e.info == victim), "one failure is not enough");
    t.failed(victim.addr, at(3));
    assert!(t.entries().all(|e| e.info != victim), "bad node replaced");
    assert!(t.entries().any(|e| e.info == newcomer), "by the waiting replacement");
}

#[test]
fn states_follow_bep5() {
    let mut t = RoutingTable::new(NodeId([0; 20]), at(0));
    let n = node(id_at(2, 1), 1);
    assert_eq!(t.heard_from(n, Contact::Query, at(0)), Heard::Added);
    assert!(t.take_pings(at(1), 8).is_empty(), "the caller pings nodes added from a query");
    let state = |t: &RoutingTable, s| t.entries().next().map(|e| e.state(at(s)));
    assert_eq!(state(&t, 0), Some(NodeState::Questionable), "never answered");
    assert!(t.closest(&n.id, 8).is_empty(), "unverified nodes are not given out");
    assert_eq!(t.lookup_seeds(&n.id, 8), vec![n]);
    t.heard_from(n, Contact::Response, at(10));
    assert_eq!(state(&t, 10), Some(NodeState::Good));
    assert_eq!(state(&t, 10 + 15 * 60), Some(NodeState::Questionable));
    t.heard_from(n, Contact::Query, at(20 * 60));
    assert_eq!(state(&t, 20 * 60), Some(NodeState::Good), "answered once and queried us lately");
    assert_eq!(t.take_pings(at(40 * 60), 8), vec![n]);
    assert!(t.take_pings(at(40 * 60 + 1), 8).is_empty(), "not handed out twice in a row");
}

#[test]
fn same_address_new_id_needs_an_answer() {
    let mut t = RoutingTable::new(NodeId([0; 20]), at(0));
    let a = node(id_at(1, 1), 1);
    let b = NodeInfo { id: id_at(2, 2), addr: a.addr };
    t.heard_from(a, Contact::Response, at(0));
    assert_eq!(t.heard_from(b, Contact::Query, at(1)), Heard::Ignored);
    assert_eq!(t.heard_from(b, Contact::Response, at(1)), Heard::Added);
    assert_eq!(t.entries().map(|e| e.info).collect::<Vec<_>>(), vec![b]);
}

#[test]
fn closest_is_sorted_by_distance() {
    let mut t = RoutingTable::new(NodeId([0; 20]), at(0));
    let mut rng = Rng::new(7);
    for n in 0..200 {
        t.heard_from(node(rng.node_id(), n), Contact::Response, at(0));
    }
    let target = rng.node_id();
    let c = t.closest(&target, K);
    assert_eq!(c.len(), K);
    assert!(c.windows(2).all(|w| w[0].id.distance(&target) <= w[1].id.distance(&target)));
    let best = t.entries().map(|e| e.info.id.distance(&target)).min();
    assert_eq!(Some(c[0].id.distance(&target)), best);
}

#[test]
fn refresh_targets_fall_in_their_buckets() {
    let mut rng = Rng::new(3);
    let own = rng.node_id();
    let mut t = RoutingTable::new(own, at(0));
    for n in 0..300 {
        t.heard_from(node(rng.node_id(), n), Contact::Response, at(0));
    }
    assert!(t.take_refresh_targets(at(60), &mut rng).is_empty());
    let targets = t.take_refresh_targets(at(16 * 60), &mut rng);
    assert_eq!(targets.len(), t.bucket_count());
    for (i, target) in targets.iter().enumerate() {
        assert_eq!(t.bucket_index(target), i);
    }
    assert!(t.take_refresh_targets(at(17 * 60), &mut rng).is_empty());
}

#[test]
fn saves_and_restores() {
    let mut rng = Rng::new(11);
    let mut t = RoutingTable::new(rng.node_id(), at(0));
    for n in 0..50 {
        t.heard_from(node(rng.node_id(), n), Contact::Response, at(0));
    }
    let v6 = NodeInfo { id: rng.node_id(), addr: "[2001:db8::7]:6881".parse().expect("addr") };
    t.heard_from(v6, Contact::Response, at(0));
    let (id, nodes) = RoutingTable::from_bytes(&t.to_bytes()).expect("reads back");
    assert_eq!(id, t.own_id());
    assert_eq!(nodes.len(), t.len());
    assert!(nodes.contains(&v6));
    assert!(matches!(RoutingTable::from_bytes(b"de"), Err(RoutingError::Missing("id"))));
    assert!(matches!(RoutingTable::from_bytes(b"d2:id3:abce"), Err(RoutingError::BadId { len: 3 })));
    assert!(RoutingTable::from_bytes(b"junk").is_err());
}
