//! Search neighbours over real loopback sockets: a query goes around a graph with loops, each
//! node answers it once, results come back; a neighbour that sends a malformed message, an
//! oversized frame or a flood of queries is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_identity::Identity;
use shoal_proto::extension::ExtHandshake;
use shoal_proto::{Handshake, PeerId};
use shoal_search::neighbours::{self, Neighbours};
use shoal_search::overlay;
use shoal_search::{FileItem, Index, Record, RecordBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Peer {
    node: Neighbours,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn peer(n: u8, name: &str) -> Peer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (me, _) = Identity::load_or_create(&dir.path().join("id"), None).expect("identity");
    let index = Arc::new(Index::open(&dir.path().join("index.sqlite3"), 1000).expect("index"));
    let body = RecordBody {
        info_hash: format!("{n:02x}").repeat(20),
        name: name.into(),
        size: 1,
        files: vec![FileItem { path: "a.txt".into(), size: 1 }],
        file_count: 1,
        tags: Vec::new(),
        trackers: Vec::new(),
        group: None,
        publisher: me.id().compact(),
        published_at: 1,
    };
    index.insert(&Record::sign(body, &me).expect("sign"), "local", true, 1, None).expect("insert");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer_id = PeerId::generate([n; 12]);
    let config = neighbours::Config { peer_id, port: addr.port(), policy: overlay::Config::default() };
    let node = Neighbours::start(config, index);
    node.listen(listener, peer_id);
    Peer { node, addr, _dir: dir }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_goes_around_loops_once_and_every_result_comes_back() {
    let peers = [
        peer(1, "report alpha").await,
        peer(2, "report beta").await,
        peer(3, "report gamma").await,
        peer(4, "report delta").await,
    ];
    // A square with a diagonal: loops both ways.
    for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)] {
        peers[a].node.add(peers[b].addr);
    }
    let degree = [3, 2, 3, 2];
    until("every link up", || peers.iter().zip(degree).all(|(p, d)| p.node.status().neighbours.len() == d)).await;
    let found = peers[1].node.search("report", 3, 4, Duration::from_secs(10)).await;
    let mut names: Vec<String> =
        found.iter().map(|f| Record::from_json(&f.record).expect("a checked record").0.body.name).collect();
    names.sort();
    assert_eq!(names, ["report alpha", "report delta", "report gamma"]);
    until("the counters", || [0, 2, 3].iter().all(|&i| peers[i].node.status().stats.queries == 1)).await;
    for (i, p) in peers.iter().enumerate() {
        let s = p.node.status().stats;
        assert!(s.queries <= 1, "node {i} took the query {} times", s.queries);
    }
    assert!(peers[1].node.search("nothing", 1, 4, Duration::from_millis(300)).await.is_empty());
}

/// Connects to `target` as a raw search neighbour (both handshakes done).
async fn raw_neighbour(target: &Peer, n: u8) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(target.addr).await.expect("connect");
    s.write_all(&Handshake::new(neighbours::swarm(), PeerId::generate([n; 12])).encode()).await.expect("hs");
    let mut buf = [0u8; Handshake::LEN];
    s.read_exact(&mut buf).await.expect("their handshake");
    let mut hs = ExtHandshake::default();
    hs.m.insert("shoal_search".into(), 3);
    s.write_all(&frame(0, &hs.encode())).await.expect("ext handshake");
    until("the neighbour", || !target.node.status().neighbours.is_empty()).await;
    s
}

fn frame(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
    frame.extend([20, ext_id]);
    frame.extend(payload);
    frame
}

/// Reads until the connection closes (at most 10 s); whether it did.
async fn closed(s: &mut tokio::net::TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await, Ok(Ok(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_queries_from_one_neighbour_is_cut_to_its_rate_and_then_dropped() {
    let target = peer(8, "flooded").await;
    let mut s = raw_neighbour(&target, 6).await;
    // 300 queries at once: the burst (40) is taken, the rest refused, and past 100 refusals the
    // neighbour is dropped.
    let mut flood = Vec::new();
    for i in 0..300u64 {
        let q = overlay::Message::Query { id: i.to_be_bytes(), words: "flooded".into(), ttl: 0, want: 1 };
        flood.extend(frame(1, &q.encode()));
    }
    s.write_all(&flood).await.expect("flood");
    until("the drop", || target.node.status().neighbours.is_empty()).await;
    let stats = target.node.status().stats;
    assert!(stats.queries <= 41, "{} queries taken", stats.queries);
    assert!(stats.rate_limited > 100, "{stats:?}");
    assert!(closed(&mut s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_connection_before_it_is_read() {
    let target = peer(7, "anything").await;
    let mut s = raw_neighbour(&target, 5).await;
    // A frame header announcing 64 MiB, and only a few bytes of it.
    s.write_all(&(64u32 << 20).to_be_bytes()).await.expect("header");
    s.write_all(&[20, 1, b'd']).await.expect("start");
    assert!(closed(&mut s).await, "the node waited for 64 MiB");
    until("the drop", || target.node.status().neighbours.is_empty()).await;
    assert_eq!(target.node.status().bad_messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_that_sends_a_malformed_message_is_dropped() {
    let target = peer(9, "anything").await;
    let mut s = raw_neighbour(&target, 7).await;
    // A query whose hop count is over the limit.
    let bad = b"d1:t1:q2:id8:abcdefgh1:q1:x3:ttli99e1:ni1ee";
    s.write_all(&frame(1, bad)).await.expect("bad message");
    until("the drop", || target.node.status().neighbours.is_empty()).await;
    assert_eq!(target.node.status().bad_messages, 1);
    // The connection is closed: reading ends (after their handshake frames).
    assert!(closed(&mut s).await, "the connection was not closed");
}
