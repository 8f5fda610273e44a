//! The DHT driver ([`Dht`]) over real UDP sockets, on 127.0.0.1 only: every node is given an
//! explicit bootstrap list of local nodes (or none), so no test ever contacts a public router.
//!
//! - `fifty_nodes_find_an_announced_peer`: 50 nodes bootstrapped from the first; one announces
//!   an info-hash, several others find it. `cargo test -p shoal-engine --test dht --
//!   --nocapture` prints the lookup times.
//! - `add_node_learns_a_live_node`: `add_node` adds a node that answers, not a silent address.
//! - `routing_table_survives_a_restart` and `corrupt_state_file_means_a_fresh_start`: the state
//!   file.
//! - `libtorrent_seed_is_found_through_our_node`: a libtorrent 2.1 seed whose DHT knows only our
//!   node announces its torrent, and our `get_peers` finds it (through the node it announced to,
//!   and through a second node of ours that knows only that one);
//!   `libtorrent_finds_a_peer_we_announced` is the other way round.
//!
//! Waits are bounded: conditions are polled with [`wait_for`] and each has a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_dht::{RateLimit, RoutingTable};
use shoal_engine::{Dht, DhtConfig, DhtError};
use shoal_proto::InfoHash;
use tokio::sync::mpsc;

/// How often [`wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(20);
/// How long bootstrapping may take on loopback.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one lookup may take on loopback (every node answers at once).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A node on 127.0.0.1 (a port the OS picks) bootstrapping only from `bootstrap`, with the
/// per-IP rate limit lifted: every node here shares one IP.
fn local_config(bootstrap: &[SocketAddr], state_file: Option<PathBuf>) -> DhtConfig {
    DhtConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        bootstrap: bootstrap.iter().map(ToString::to_string).collect(),
        state_file,
        rate_limit: RateLimit { per_second: 100_000.0, burst: 100_000.0, max_sources: 4096 },
    }
}

async fn start(bootstrap: &[SocketAddr], state_file: Option<PathBuf>) -> Dht {
    Dht::start(local_config(bootstrap, state_file)).await.expect("DHT node starts on 127.0.0.1")
}

/// Polls `cond` every [`POLL`] until it holds; panics naming `what` after `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: still not true after {limit:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn bootstrapped(dht: &Dht) -> bool {
    dht.stats().await.expect("stats").bootstrapped
}

/// What one `get_peers` call saw.
struct Found {
    /// Every peer reported.
    peers: Vec<SocketAddr>,
    /// Time from the call to the first batch holding `wanted`, if any did.
    first: Option<Duration>,
    /// Time from the call to the end of the lookup.
    total: Duration,
}

/// Runs a `get_peers` lookup (announcing `announce` if set) to its end.
async fn lookup(dht: &Dht, info_hash: InfoHash, announce: Option<u16>, wanted: Option<SocketAddr>) -> Found {
    let start = Instant::now();
    let mut rx = dht.get_peers(info_hash, announce).await.expect("get_peers");
    let mut found = Found { peers: Vec::new(), first: None, total: Duration::ZERO };
    let drain = async {
        while let Some(batch) = rx.recv().await {
            if found.first.is_none() && wanted.is_some_and(|w| batch.contains(&w)) {
                found.first = Some(start.elapsed());
            }
            found.peers.extend(batch);
        }
    };
    tokio::time::timeout(LOOKUP_TIMEOUT, drain).await.expect("the lookup ends and closes its channel");
    found.total = start.elapsed();
    found
}

fn info_hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_find_an_announced_peer() {
    const NODES: usize = 50;
    let started = Instant::now();
    let mut nodes = vec![start(&[], None).await];
    let first = nodes[0].local_addr();
    // One after another, as nodes join a real network: a node that joins at the same instant
    // as all the others gets an empty `nodes` list from node 0 (nobody has answered node 0
    // yet) and, the node being bootstrapped by that one answer, keeps a one-node table until
    // its first lookup or the 15-minute bucket refresh.
    for i in 1..NODES {
        let node = start(&[first], None).await;
        wait_for(&format!("node {i} bootstrapped"), BOOTSTRAP_TIMEOUT, || bootstrapped(&node)).await;
        nodes.push(node);
    }
    let mut sizes = Vec::new();
    for node in &nodes {
        sizes.push(node.stats().await.expect("stats").nodes);
    }
    println!(
        "{NODES} nodes bootstrapped in {}; routing tables hold {} to {} nodes (mean {:.1})",
        ms(started.elapsed()),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
        sizes.iter().sum::<usize>() as f64 / NODES as f64
    );

    // Node 7 announces port 4242; its channel closes once the announces are sent.
    let ih = info_hash(0xab);
    let peer: SocketAddr = "127.0.0.1:4242".parse().expect("address");
    let announced = lookup(&nodes[7], ih, Some(4242), None).await;
    println!("announce lookup by node 7 took {}", ms(announced.total));

    // Ten other nodes look it up; each must find it.
    let mut times = Vec::new();
    for i in [1, 3, 12, 20, 25, 31, 38, 42, 47, 49] {
        let mut attempts = 0;
        let found = loop {
            attempts += 1;
            let found = lookup(&nodes[i], ih, None, Some(peer)).await;
            // An announce may still be on its way for the first searcher; allow a retry.
            if found.first.is_some() || attempts == 3 {
                break found;
            }
        };
        let first = found.first.unwrap_or_else(|| panic!("node {i} did not find {peer}: got {:?}", found.peers));
        println!(
            "node {i:2}: found the peer after {} (lookup done after {}, attempt {attempts})",
            ms(first),
            ms(found.total)
        );
        times.push(first);
    }
    times.sort();
    println!(
        "lookup times: min {}, median {}, max {}",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );

    // The announce loop of node 11 finds node 7's peer and announces its own port.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let announcer = nodes[11].announce_loop(ih, Some(5555), move |peers| {
        let _ = tx.send(peers);
    });
    tokio::time::timeout(LOOKUP_TIMEOUT, async {
        while let Some(batch) = rx.recv().await {
            if batch.contains(&peer) {
                return;
            }
        }
        panic!("the announce loop's sink was dropped before it saw {peer}");
    })
    .await
    .expect("the announce loop reports node 7's peer");
    let second: SocketAddr = "127.0.0.1:5555".parse().expect("address");
    let searcher = nodes[30].clone();
    wait_for("node 30 finds the announce loop's port", LOOKUP_TIMEOUT, || {
        let searcher = searcher.clone();
        async move { lookup(&searcher, ih, None, Some(second)).await.first.is_some() }
    })
    .await;
    announcer.stop();

    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }
    assert!(matches!(nodes[0].stats().await, Err(DhtError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_learns_a_live_node() {
    let a = start(&[], None).await;
    let b = start(&[], None).await;
    // A silent address: a bound socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    a.add_node(silent.local_addr().expect("addr")).await.expect("add_node");
    a.add_node(b.local_addr()).await.expect("add_node");
    wait_for("a knows b", Duration::from_secs(10), || async { a.stats().await.expect("stats").nodes >= 1 }).await;
    // b learned a from its queries too.
    wait_for("b knows a", Duration::from_secs(10), || async { b.stats().await.expect("stats").nodes >= 1 }).await;
    assert_eq!(a.stats().await.expect("stats").nodes, 1, "only the node that answered is added");
}

/// Starts a seed node and `n` nodes bootstrapped from it, one after another (see
/// `fifty_nodes_find_an_announced_peer` for why).
async fn small_network(n: usize) -> Vec<Dht> {
    let seed = start(&[], None).await;
    let addr = seed.local_addr();
    let mut nodes = vec![seed];
    for _ in 0..n {
        let node = start(&[addr], None).await;
        wait_for("small network node bootstrapped", BOOTSTRAP_TIMEOUT, || bootstrapped(&node)).await;
        nodes.push(node);
    }
    nodes
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("shoal-dht-").tempdir().expect("temporary folder")
}

fn saved_nodes(path: &Path) -> usize {
    let bytes = std::fs::read(path).expect("state file written");
    RoutingTable::from_bytes(&bytes).expect("state file is a valid table").1.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_table_survives_a_restart() {
    let net = small_network(4).await;
    let dir = temp_dir();
    let file = dir.path().join("dht.dat");
    let b = start(&[net[0].local_addr()], Some(file.clone())).await;
    wait_for("b bootstrapped", BOOTSTRAP_TIMEOUT, || bootstrapped(&b)).await;
    // A lookup meets the whole network (the bootstrap answer may have come before the seed
    // node had heard back from the others).
    wait_for("b knows the network", BOOTSTRAP_TIMEOUT, || async {
        lookup(&b, info_hash(9), None, None).await;
        b.stats().await.expect("stats").nodes >= 4
    })
    .await;
    let id = b.stats().await.expect("stats").id;
    b.shutdown().await.expect("shutdown");
    assert!(matches!(b.stats().await, Err(DhtError::Stopped)));
    assert!(matches!(b.get_peers(info_hash(1), None).await, Err(DhtError::Stopped)));
    let saved = saved_nodes(&file);
    assert!(saved >= 4, "saved {saved} nodes");
    assert!(!dir.path().join("dht.dat.tmp").exists(), "the temporary file was renamed");

    // No bootstrap nodes: only the file can bring it back into the network.
    let restarted = start(&[], Some(file.clone())).await;
    let stats = restarted.stats().await.expect("stats");
    assert_eq!(stats.id, id, "the node id is kept");
    assert_eq!(stats.restored_nodes, saved);
    wait_for("restarted node bootstrapped", BOOTSTRAP_TIMEOUT, || bootstrapped(&restarted)).await;
    wait_for("restarted node knows nodes", BOOTSTRAP_TIMEOUT, || async {
        restarted.stats().await.expect("stats").nodes >= 4
    })
    .await;
    // And it works: a peer announced by one node is found through it.
    let peer: SocketAddr = "127.0.0.1:6000".parse().expect("address");
    lookup(&net[2], info_hash(2), Some(6000), None).await;
    wait_for("restarted node finds a peer", LOOKUP_TIMEOUT, || async {
        lookup(&restarted, info_hash(2), None, Some(peer)).await.first.is_some()
    })
    .await;
    restarted.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_file_means_a_fresh_start() {
    let net = small_network(2).await;
    let dir = temp_dir();
    let file = dir.path().join("dht.dat");
    for garbage in [&b"not bencode at all"[..], b"d2:idi3ee", b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes3:abce"] {
        std::fs::write(&file, garbage).expect("write");
        let node = start(&[net[0].local_addr()], Some(file.clone())).await;
        assert_eq!(node.stats().await.expect("stats").restored_nodes, 0);
        wait_for("fresh node bootstrapped", BOOTSTRAP_TIMEOUT, || bootstrapped(&node)).await;
        // Dropping the last handle stops the task, which saves a valid table.
        drop(node);
        wait_for("state file rewritten", Duration::from_secs(10), || async {
            std::fs::read(&file).is_ok_and(|b| RoutingTable::from_bytes(&b).is_ok_and(|(_, nodes)| !nodes.is_empty()))
        })
        .await;
    }
}

#[test]
fn libtorrent_seed_is_found_through_our_node() {
    use shoal_testkit::{lt_create, lt_info_hash, make_test_file, spawn_lt_seed};
    shoal_testkit::ensure_tools();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // a: the only node libtorrent knows; b: a second node of ours that knows only a.
    let (a, b) = rt.block_on(async {
        let a = start(&[], None).await;
        let b = start(&[a.local_addr()], None).await;
        (a, b)
    });

    let dir = temp_dir();
    let data = dir.path().join("data.bin");
    make_test_file(&data, 300_000, 7);
    let torrent = dir.path().join("data.torrent");
    lt_create(&data, &torrent, &[]).unwrap_or_else(|e| panic!("{e}"));
    let hex = lt_info_hash(&torrent).unwrap_or_else(|e| panic!("{e}"));
    let ih = InfoHash::from_hex(&hex).expect("libtorrent printed a hex info-hash");
    let a_addr = a.local_addr().to_string();
    let started = Instant::now();
    let (seed, port) =
        spawn_lt_seed(&torrent, dir.path(), &["--dht-bootstrap", &a_addr]).unwrap_or_else(|e| panic!("{e}"));
    let lt_peer: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    println!("libtorrent seed ready on {lt_peer} after {}", ms(started.elapsed()));

    rt.block_on(async {
        // a learns libtorrent's node from its queries; b's lookups then reach it through a.
        wait_for("libtorrent's DHT node queries ours", Duration::from_secs(30), || async {
            a.stats().await.expect("stats").nodes >= 2
        })
        .await;
        println!("our node knows libtorrent's DHT node after {}", ms(started.elapsed()));
        for (name, node) in [("a (libtorrent's bootstrap node)", &a), ("b (knows only a)", &b)] {
            let mut rounds = 0;
            wait_for(&format!("{name} finds the libtorrent seed"), Duration::from_secs(60), || {
                rounds += 1;
                async { lookup(node, ih, None, Some(lt_peer)).await.first.is_some() }
            })
            .await;
            println!("{name}: found {lt_peer} after {} ({rounds} lookup(s))", ms(started.elapsed()));
        }
        // libtorrent's node answers our queries: b's table holds it next to a.
        wait_for("b knows libtorrent's node", Duration::from_secs(30), || async {
            b.stats().await.expect("stats").nodes >= 2
        })
        .await;
        a.shutdown().await.expect("shutdown");
        b.shutdown().await.expect("shutdown");
    });
    drop(seed);
}

#[test]
fn libtorrent_finds_a_peer_we_announced() {
    use shoal_testkit::{Proc, python_lt};
    shoal_testkit::ensure_tools();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // b announces port 7777 through a, the node libtorrent will bootstrap from.
    let ih = info_hash(0x5c);
    let (a, b) = rt.block_on(async {
        let a = start(&[], None).await;
        let b = start(&[a.local_addr()], None).await;
        wait_for("b bootstrapped", BOOTSTRAP_TIMEOUT, || bootstrapped(&b)).await;
        let announced = lookup(&b, ih, Some(7777), None).await;
        println!("our announce lookup took {}", ms(announced.total));
        wait_for("a stores the announce", LOOKUP_TIMEOUT, || async {
            a.stats().await.expect("stats").stored_peers >= 1
        })
        .await;
        (a, b)
    });

    let started = Instant::now();
    let mut cmd = python_lt(["dht-get-peers", "--watch-stdin", "--timeout", "60", "--want", "127.0.0.1:7777"]);
    cmd.args(["--info-hash", &ih.to_hex(), "--dht-bootstrap", &a.local_addr().to_string()]);
    let mut lt = Proc::spawn("lt-dht", cmd).unwrap_or_else(|e| panic!("{e}"));
    lt.wait_for_line("FOUND ", Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
    println!("libtorrent found our peer after {} (process start included)", ms(started.elapsed()));
    lt.wait_success(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        a.shutdown().await.expect("shutdown");
        b.shutdown().await.expect("shutdown");
    });
}
