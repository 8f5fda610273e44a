//! [`Dht::announce_loop`] on a node whose routing table is empty when the loop starts, over
//! real UDP sockets on 127.0.0.1: the node's only bootstrap address is a closed local port, so
//! its first chance to announce is when another node bootstraps from it. The announce must
//! happen then, not at the next 15-minute round, and the newcomer must find the port through
//! a lookup.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shoal_dht::RateLimit;
use shoal_engine::{Dht, DhtConfig};
use shoal_proto::InfoHash;

/// How long finding the announced port may take on loopback (every node answers at once).
const FOUND: Duration = Duration::from_secs(20);
/// Pause between lookups while waiting.
const POLL: Duration = Duration::from_millis(50);

/// A node on 127.0.0.1 bootstrapping only from `bootstrap`.
async fn start(bootstrap: SocketAddr) -> Dht {
    Dht::start(DhtConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        bootstrap: vec![bootstrap.to_string()],
        state_file: None,
        rate_limit: RateLimit { per_second: 100_000.0, burst: 100_000.0, max_sources: 4096 },
    })
    .await
    .expect("DHT node starts on 127.0.0.1")
}

/// Whether a lookup of `info_hash` by `dht` reports `peer`.
async fn finds(dht: &Dht, info_hash: InfoHash, peer: SocketAddr) -> bool {
    let mut rx = dht.get_peers(info_hash, None).await.expect("get_peers");
    let mut found = false;
    let drain = async {
        while let Some(batch) = rx.recv().await {
            found |= batch.contains(&peer);
        }
    };
    tokio::time::timeout(FOUND, drain).await.expect("the lookup ends");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_announce_into_an_empty_routing_table_waited_fifteen_minutes() {
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let seed = start(closed).await;
    let ih = InfoHash([0x5e; 20]);
    let peer: SocketAddr = "127.0.0.1:4321".parse().expect("address");
    let _announcing = seed.announce_loop(ih, Some(peer.port()), |_| {});

    let started = Instant::now();
    let newcomer = start(seed.local_addr()).await;
    let deadline = tokio::time::Instant::now() + FOUND;
    while !finds(&newcomer, ih, peer).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the newcomer did not find the seed's announce within {FOUND:?}: {:?}",
            seed.stats().await
        );
        tokio::time::sleep(POLL).await;
    }
    println!("the newcomer found the announced port {:.2?} after it started", started.elapsed());
    let stats = seed.stats().await.expect("stats");
    assert!(stats.nodes >= 1, "the seed's table holds the newcomer: {stats:?}");
}
