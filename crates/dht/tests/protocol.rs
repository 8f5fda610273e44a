//! The node's answers to other nodes' packets (BEP 5 queries, transaction ids of any length,
//! errors 203/204), tokens and announces, timeouts, persistence, and its bounds under floods.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shoal_dht::krpc::{self, Kind, Message, Query, Response};
use shoal_dht::{Announce, Config, Event, Node, NodeId, Output, RateLimit, StoreLimits};
use shoal_proto::InfoHash;

fn addr(n: u32, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(n), port))
}

fn node(now: Instant) -> Node {
    Node::new(Config { id: Some(NodeId([0x55; 20])), ..Config::default() }, now, 1)
}

fn sends(node: &mut Node) -> Vec<(SocketAddr, Message)> {
    let mut v = Vec::new();
    while let Some(o) = node.poll_output() {
        if let Output::Send { to, bytes } = o {
            v.push((to, krpc::decode(&bytes).expect("the node sends valid KRPC")));
        }
    }
    v
}

/// The node's replies, leaving out its own queries (it pings new nodes that query it).
fn replies(node: &mut Node) -> Vec<(SocketAddr, Message)> {
    sends(node).into_iter().filter(|(_, m)| !matches!(m.kind, Kind::Query(_))).collect()
}

fn ask(node: &mut Node, from: SocketAddr, msg: &Message, now: Instant) -> Vec<(SocketAddr, Message)> {
    node.handle_packet(from, &msg.encode(), now);
    replies(node)
}

fn only_reply(mut replies: Vec<(SocketAddr, Message)>, to: SocketAddr) -> Message {
    assert_eq!(replies.len(), 1, "{replies:?}");
    let (dest, msg) = replies.remove(0);
    assert_eq!(dest, to);
    msg
}

const PEER_ID: NodeId = NodeId([0x11; 20]);

#[test]
fn answers_with_the_same_tid_whatever_its_length() {
    let now = Instant::now();
    let mut n = node(now);
    let from = addr(0x0a00_0001, 6881);
    for tid in [&b""[..], b"a", b"aa", b"abcd", b"sixteen-bytes-id"] {
        let queries = [
            Query::Ping { id: PEER_ID },
            Query::FindNode { id: PEER_ID, target: NodeId([3; 20]), want: None },
            Query::GetPeers { id: PEER_ID, info_hash: InfoHash([4; 20]), want: None },
        ];
        for q in queries {
            let reply = only_reply(ask(&mut n, from, &Message::query(tid.to_vec(), q), now), from);
            assert_eq!(reply.tid, tid);
            assert_eq!(reply.ip, Some(from), "BEP 42 ip field");
            let Kind::Response(r) = reply.kind else { panic!("not a response: {reply:?}") };
            assert_eq!(r.id, n.id());
        }
    }
}

#[test]
fn libtorrent_style_packet_gets_an_answer() {
    // A ping as libtorrent sends it: 2-byte tid, "v" = "LT" + version.
    let now = Instant::now();
    let mut n = node(now);
    let from = addr(0x0a00_0002, 6881);
    n.handle_packet(from, b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:\x00\x011:v4:LT\x02\x001:y1:qe", now);
    let out = sends(&mut n);
    assert!(
        matches!(&out[..], [(_, reply), (_, ping)] if matches!(reply.kind, Kind::Response(_)) && matches!(ping.kind, Kind::Query(Query::Ping { .. }))),
        "a reply, then a ping to learn whether the new node answers too: {out:?}"
    );
    let reply = out[0].1.clone();
    assert_eq!(reply.tid, b"\x00\x01");
    assert!(matches!(reply.kind, Kind::Response(_)));
}

#[test]
fn errors_for_malformed_and_unknown_queries() {
    let now = Instant::now();
    let mut n = node(now);
    let from = addr(0x0a00_0003, 6881);
    // Malformed query with a tid: 203.
    n.handle_packet(from, b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe", now);
    let reply = only_reply(replies(&mut n), from);
    assert_eq!(reply.tid, b"xy");
    assert!(matches!(reply.kind, Kind::Error { code: 203, ref message } if message.contains("\"id\"")), "{reply:?}");
    // Unknown method: 204.
    n.handle_packet(from, b"d1:ad2:id20:abcdefghij0123456789e1:q9:vote_item1:t1:z1:y1:qe", now);
    let reply = only_reply(replies(&mut n), from);
    assert_eq!(reply.tid, b"z");
    assert!(matches!(reply.kind, Kind::Error { code: 204, .. }), "{reply:?}");
    // Garbage, responses nobody asked for, errors: silence.
    for junk in
        [&b"hello"[..], b"d1:y1:qe", b"d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re", b"d1:eli201e1:xe1:t1:a1:y1:ee"]
    {
        n.handle_packet(from, junk, now);
        assert!(sends(&mut n).is_empty(), "{}", junk.escape_ascii());
    }
}

#[test]
fn announce_needs_a_token_for_the_same_ip() {
    let now = Instant::now();
    let mut n = node(now);
    let from = addr(0x0a00_0004, 7000);
    let ih = InfoHash([9; 20]);
    let get = Message::query(b"g".to_vec(), Query::GetPeers { id: PEER_ID, info_hash: ih, want: None });
    let Kind::Response(Response { token: Some(token), values, .. }) =
        only_reply(ask(&mut n, from, &get, now), from).kind
    else {
        panic!("no token")
    };
    assert!(values.is_empty());
    let announce = |token: Vec<u8>, implied_port| {
        Message::query(
            b"a".to_vec(),
            Query::AnnouncePeer { id: PEER_ID, info_hash: ih, port: 51413, implied_port, token },
        )
    };
    // Someone else's token (another IP) is refused.
    let other = addr(0x0a00_0005, 7000);
    let reply = only_reply(ask(&mut n, other, &announce(token.clone(), false), now), other);
    assert!(matches!(reply.kind, Kind::Error { code: 203, .. }));
    assert_eq!(n.peer_store().peer_count(), 0);
    // The right one is stored; implied_port uses the UDP source port.
    let reply = only_reply(ask(&mut n, from, &announce(token, true), now), from);
    assert!(matches!(reply.kind, Kind::Response(_)), "{reply:?}");
    let Kind::Response(r) = only_reply(ask(&mut n, other, &get, now), other).kind else { panic!("no response") };
    assert_eq!(r.values, vec![from]);
}

/// Announces `ih` to `n` from `from` (a `get_peers` for the token, then `announce_peer`).
fn announce_to(n: &mut Node, from: SocketAddr, ih: InfoHash, now: Instant) {
    let get = Message::query(b"g".to_vec(), Query::GetPeers { id: PEER_ID, info_hash: ih, want: None });
    let Kind::Response(Response { token: Some(token), .. }) = only_reply(ask(n, from, &get, now), from).kind else {
        panic!("no token")
    };
    let q = Query::AnnouncePeer { id: PEER_ID, info_hash: ih, port: 6881, implied_port: false, token };
    let reply = only_reply(ask(n, from, &Message::query(b"a".to_vec(), q), now), from);
    assert!(matches!(reply.kind, Kind::Response(_)), "{reply:?}");
}

#[test]
fn sample_infohashes_answers_a_bounded_sample_kept_for_its_interval() {
    let now = Instant::now();
    let mut n = node(now);
    let ask_sample = |n: &mut Node, from, now| {
        let q = Query::SampleInfohashes { id: PEER_ID, target: NodeId([3; 20]), want: None };
        let Kind::Response(r) = only_reply(ask(n, from, &Message::query(b"s".to_vec(), q), now), from).kind else {
            panic!("no response")
        };
        r
    };
    let from = addr(0x0a00_0007, 7000);
    // Nothing stored: an empty sample, but a sample (a BEP 51 node says so).
    let r = ask_sample(&mut n, from, now);
    assert_eq!((r.samples, r.num), (Some(Vec::new()), Some(0)));
    // While all fit, all are answered, at once.
    announce_to(&mut n, addr(0x0a00_00ff, 7000), InfoHash([200; 20]), now);
    assert_eq!(ask_sample(&mut n, from, now).samples, Some(vec![InfoHash([200; 20])]));
    for i in 0..30u8 {
        announce_to(&mut n, addr(0x0a00_0100 + u32::from(i), 7000), InfoHash([i; 20]), now);
    }
    let later = now + shoal_dht::node::SAMPLE_INTERVAL;
    let r = ask_sample(&mut n, from, later);
    let samples = r.samples.expect("samples");
    assert_eq!(samples.len(), shoal_dht::node::MAX_SAMPLES, "at most 20 in a reply");
    assert!(
        samples.iter().all(|h| h.0[1..].iter().all(|b| *b == h.0[0]) && (h.0[0] < 30 || h.0[0] == 200)),
        "only stored ones"
    );
    let mut unique = samples.clone();
    unique.sort_by_key(|h| h.0);
    unique.dedup();
    assert_eq!(unique.len(), samples.len());
    assert_eq!(r.num, Some(31));
    assert_eq!(r.interval, Some(shoal_dht::node::SAMPLE_INTERVAL.as_secs() as u32));
    // Within the interval the same sample is answered.
    let again = ask_sample(&mut n, addr(0x0a00_0008, 7000), later + Duration::from_secs(10));
    assert_eq!(again.samples, Some(samples));
}

#[test]
fn a_sample_request_reports_the_answer_or_its_absence() {
    let t0 = Instant::now();
    let mut asker = Node::new(Config::default(), t0, 3);
    let mut holder = node(t0);
    let (asker_addr, holder_addr) = (addr(0x0a00_0001, 6881), addr(0x0a00_0002, 6881));
    announce_to(&mut holder, addr(0x0a00_0003, 7000), InfoHash([4; 20]), t0);
    let request = asker.sample_infohashes(holder_addr, NodeId([0; 20]), t0).expect("sent");
    for (to, m) in sends(&mut asker) {
        assert_eq!(to, holder_addr);
        holder.handle_packet(asker_addr, &m.encode(), t0);
    }
    for (_, m) in replies(&mut holder) {
        asker.handle_packet(holder_addr, &m.encode(), t0);
    }
    let mut got = None;
    while let Some(o) = asker.poll_output() {
        if let Output::Event(Event::Samples { request: r, from, reply }) = o {
            got = Some((r, from, reply));
        }
    }
    let (r, from, reply) = got.expect("an answer");
    assert_eq!((r, from), (request, holder_addr));
    let reply = reply.expect("a BEP 51 reply");
    assert_eq!((reply.samples, reply.num), (vec![InfoHash([4; 20])], 1));
    // Nobody answers: the request ends without a reply.
    let silent = asker.sample_infohashes(addr(0x0a00_0009, 6881), NodeId([0; 20]), t0).expect("sent");
    asker.tick(t0 + Duration::from_secs(5));
    let mut ended = false;
    while let Some(o) = asker.poll_output() {
        if let Output::Event(Event::Samples { request, reply: None, .. }) = o {
            ended |= request == silent;
        }
    }
    assert!(ended);
}

#[test]
fn lookup_times_out_and_finishes() {
    let t0 = Instant::now();
    let boot = addr(0x0a00_0009, 6881);
    let mut n = Node::new(Config { bootstrap: vec![boot], ..Config::default() }, t0, 2);
    let ih = InfoHash([1; 20]);
    let lid = n.get_peers(ih, Some(Announce::Implied), t0);
    let sent = sends(&mut n);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, boot);
    assert_eq!(sent[0].1.tid.len(), 2, "our transaction ids are 2 bytes, like libtorrent's");
    let deadline = n.poll_timeout();
    assert!(deadline <= t0 + Duration::from_secs(2));
    n.tick(t0 + Duration::from_secs(3));
    let mut done = None;
    while let Some(o) = n.poll_output() {
        if let Output::Event(Event::LookupDone { lookup, stats, .. }) = o {
            done = Some((lookup, stats));
        }
    }
    let (lookup, stats) = done.expect("lookup finished");
    assert_eq!(lookup, lid);
    assert_eq!((stats.queried, stats.responded, stats.announced), (1, 0, 0));
    assert_eq!(n.counters().timeouts, 1);
}

#[test]
fn read_only_nodes_answer_nothing_and_say_so() {
    let now = Instant::now();
    let boot = addr(0x0a00_0009, 6881);
    let mut n = Node::new(Config { read_only: true, bootstrap: vec![boot], ..Config::default() }, now, 3);
    let ping = Message::query(b"p".to_vec(), Query::Ping { id: PEER_ID });
    assert!(ask(&mut n, addr(0x0a00_0001, 1), &ping, now).is_empty());
    n.tick(now);
    let sent = sends(&mut n);
    assert!(sent.iter().all(|(_, m)| m.read_only), "queries carry ro=1");
    // And a normal node does not put read-only queriers in its table.
    let mut normal = node(now);
    let mut q = Message::query(b"p".to_vec(), Query::Ping { id: PEER_ID });
    q.read_only = true;
    ask(&mut normal, addr(0x0a00_0001, 1), &q, now);
    assert!(normal.routing_table().is_empty());
}

#[test]
fn routing_table_survives_a_restart() {
    let now = Instant::now();
    let mut n = node(now);
    // Let the node learn two nodes by answering its pings.
    for i in 0..2u8 {
        let from = addr(0x0a00_0100 + u32::from(i), 6881);
        let q = Message::query(vec![i], Query::Ping { id: NodeId([i + 1; 20]) });
        ask(&mut n, from, &q, now);
    }
    let saved = n.routing_table_bytes();
    let restored = Node::with_routing_table(Config::default(), &saved, now, 9).expect("restores");
    assert_eq!(restored.id(), n.id());
    assert_eq!(restored.routing_table_bytes(), saved, "kept until it bootstraps");
    assert!(Node::with_routing_table(Config::default(), b"garbage", now, 9).is_err());
}

/// 100 000 `get_peers` + `announce_peer` pairs from random IPs for random info-hashes: the peer
/// store, routing table and output queue stay within their bounds.
#[test]
fn announce_flood_stays_within_bounds() {
    let t0 = Instant::now();
    let store = StoreLimits { max_torrents: 500, max_peers: 20, ..StoreLimits::default() };
    let config = Config {
        id: Some(NodeId([0x55; 20])),
        store,
        // Let the flood through the rate limit (tested on its own below) to reach the store,
        // but keep the limiter's memory bound small.
        rate_limit: RateLimit { per_second: 1e6, burst: 1e6, max_sources: 1000 },
        ..Config::default()
    };
    let mut n = Node::new(config, t0, 4);
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut answered = 0;
    for i in 0..100_000u64 {
        let now = t0 + Duration::from_millis(i);
        n.tick(now);
        let from = addr(next() as u32 | 1, 1 + (next() % 60000) as u16);
        let mut ih = [0u8; 20];
        ih[..2].copy_from_slice(&((next() % 2000) as u16).to_be_bytes());
        let id = NodeId([(i % 251) as u8; 20]);
        let get = Message::query(b"g".to_vec(), Query::GetPeers { id, info_hash: InfoHash(ih), want: None });
        n.handle_packet(from, &get.encode(), now);
        let mut token = None;
        while let Some(o) = n.poll_output() {
            if let Output::Send { bytes, .. } = o
                && let Ok(Message { kind: Kind::Response(r), .. }) = krpc::decode(&bytes)
            {
                token = r.token;
            }
        }
        let Some(token) = token else { continue };
        let q = Query::AnnouncePeer { id, info_hash: InfoHash(ih), port: 6881, implied_port: false, token };
        n.handle_packet(from, &Message::query(b"a".to_vec(), q).encode(), now);
        while n.poll_output().is_some() {}
        answered += 1;
        assert!(n.peer_store().torrent_count() <= store.max_torrents);
    }
    assert_eq!(answered, 100_000, "every announce had a valid token and was answered");
    assert_eq!(n.peer_store().torrent_count(), store.max_torrents);
    assert!(n.peer_store().peer_count() <= store.max_torrents * store.max_peers);
    assert!(n.routing_table().len() <= 160 * 8);
    println!(
        "flood: {answered} announces answered, store holds {} torrents / {} peers, counters {:?}",
        n.peer_store().torrent_count(),
        n.peer_store().peer_count(),
        n.counters()
    );
}

#[test]
fn query_flood_from_one_ip_is_rate_limited() {
    let t0 = Instant::now();
    let mut n = node(t0);
    let from = addr(0x0a00_0042, 6881);
    let ping = Message::query(b"pp".to_vec(), Query::Ping { id: PEER_ID }).encode();
    for i in 0..10_000u64 {
        n.handle_packet(from, &ping, t0 + Duration::from_micros(i * 100));
    }
    let answered = sends(&mut n).len();
    // One virtual second at 20/s plus a burst of 50.
    assert!((60..=80).contains(&answered), "{answered}");
    assert!(n.counters().rate_limited > 9_000);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let now = Instant::now();
        let mut n = node(now);
        n.handle_packet(addr(0x0a00_0001, 6881), &bytes, now);
        n.tick(now + Duration::from_secs(10));
        while n.poll_output().is_some() {}
    }

    #[test]
    fn mutated_queries_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..5),
        which in 0..4usize,
    ) {
        let now = Instant::now();
        let mut n = node(now);
        let q = [
            Query::Ping { id: PEER_ID },
            Query::FindNode { id: PEER_ID, target: NodeId([1; 20]), want: None },
            Query::GetPeers { id: PEER_ID, info_hash: InfoHash([2; 20]), want: None },
            Query::AnnouncePeer { id: PEER_ID, info_hash: InfoHash([2; 20]), port: 1, implied_port: true, token: vec![1; 8] },
        ];
        let mut bytes = Message::query(b"tt".to_vec(), q[which].clone()).encode();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        n.handle_packet(addr(0x0a00_0001, 6881), &bytes, now);
        for (_, reply) in replies(&mut n) {
            // Whatever comes back echoes the tid (which the mutation may have changed).
            prop_assert_eq!(Some(reply.tid), krpc::query_tid(&bytes));
        }
    }
}
