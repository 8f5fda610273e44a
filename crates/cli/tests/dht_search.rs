//! Search through the DHT (BEP 51), against libtorrent 2.1 on 127.0.0.1 (DHT nodes bootstrapped
//! only from each other; LSD off):
//!
//! - libtorrent's `dht_sample_infohashes` asked of a Shoal daemon's DHT node gets the
//!   info-hash a libtorrent seed announced there;
//! - a Shoal daemon with `--dht-crawl` samples a libtorrent DHT node, fetches the metadata of
//!   what it found from the libtorrent seed (BEP 9) and keeps it in its index, where `shoal
//!   search` finds it as a verified `dht` result;
//! - two Shoal daemons with nothing but the DHT between them find each other as search
//!   neighbours (each announces itself in the search swarm) and one finds the other's torrent.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use interop::{START_TIMEOUT, ok, shoal, shoal_create};
use people::{rpc, run_ok, torrent_b64};
use shoal_testkit::{Proc, TempDir, ensure_tools, lt_create, lt_info_hash, make_test_file, python_lt, spawn_lt_seed};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-dht-search-").tempdir().expect("temporary folder")
}

/// A local UDP port nobody listens on.
fn closed_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("address")
}

/// A Shoal daemon with its DHT node bootstrapped from `bootstrap`; its RPC port and DHT address.
fn daemon(home: &Path, bootstrap: SocketAddr, extra: &[&str]) -> (Proc, u16, SocketAddr) {
    let rpc_port = shoal_testkit::free_port();
    let mut cmd = shoal(["daemon", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).args(["--no-lsd", "--dht-port", "0"]);
    cmd.args(["--dht-bootstrap", &bootstrap.to_string()]).arg("--data-dir").arg(home).args(extra);
    let proc = ok(Proc::spawn("daemon", cmd));
    let line = ok(proc.wait_for_line("dht: node on ", START_TIMEOUT));
    let dht: SocketAddr = line.rsplit(' ').next().and_then(|a| a.parse().ok()).expect("DHT address");
    ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    (proc, rpc_port, dht)
}

/// A file and its torrent made by libtorrent; returns the torrent and its info-hash.
fn lt_torrent(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let data = dir.join(name);
    make_test_file(&data, MIB + 3, 5);
    let torrent = dir.join(format!("{name}.torrent"));
    ok(lt_create(&data, &torrent, &[]));
    (torrent.clone(), ok(lt_info_hash(&torrent)))
}

/// A libtorrent seed of `torrent` (data in `dir`) whose DHT is bootstrapped from `bootstrap`.
fn lt_seed(torrent: &Path, dir: &Path, bootstrap: SocketAddr) -> Proc {
    ok(spawn_lt_seed(torrent, dir, &["--dht-bootstrap", &bootstrap.to_string()])).0
}

#[test]
fn libtorrent_samples_the_info_hashes_a_shoal_dht_node_stores() {
    ensure_tools();
    let work = temp_dir();
    let (mut shoal_node, _, dht) = daemon(&work.path().join("home"), closed_udp_port(), &[]);
    let (torrent, hash) = lt_torrent(work.path(), "announced.bin");
    // The seed's DHT knows only the Shoal node: its announce is stored there.
    let mut seed = lt_seed(&torrent, work.path(), dht);
    let mut sample = python_lt(["dht-sample", "--watch-stdin", "--node", &dht.to_string(), "--want", &hash]);
    sample.args(["--timeout", "60"]);
    let mut asker = ok(Proc::spawn("lt-sample", sample));
    ok(asker.wait_for_line(&format!("SAMPLED {hash}"), Duration::from_secs(90)));
    let samples = ok(asker.wait_for_line("SAMPLES ", Duration::from_secs(5)));
    let num: u64 = samples.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("num");
    assert!(num >= 1, "{samples}");
    for p in [&mut asker, &mut seed, &mut shoal_node] {
        ok(p.terminate(Duration::from_secs(15)).map(drop));
    }
}

#[test]
fn a_crawling_daemon_indexes_what_libtorrent_nodes_sample_and_search_finds_it_verified() {
    ensure_tools();
    let work = temp_dir();
    // A libtorrent DHT node, and a libtorrent seed that announces to it.
    let mut node = ok(Proc::spawn("lt-node", {
        let mut cmd = python_lt(["dht-node", "--watch-stdin", "--dht-bootstrap"]);
        cmd.arg(closed_udp_port().to_string());
        cmd
    }));
    let port: u16 =
        ok(node.wait_for_line("DHT ", START_TIMEOUT)).rsplit(' ').next().and_then(|p| p.parse().ok()).expect("port");
    let lt_node = SocketAddr::from(([127, 0, 0, 1], port));
    let (torrent, hash) = lt_torrent(work.path(), "crawled-lecture-notes.bin");
    let mut seed = lt_seed(&torrent, work.path(), lt_node);
    ok(node.wait_for_line("alert dht_announce", Duration::from_secs(60)));
    // The crawler's first round samples the libtorrent node and fetches from the seed.
    let home = work.path().join("home");
    let (mut crawler, rpc_port, _) = daemon(&home, lt_node, &["--dht-crawl"]);
    let url = format!("http://127.0.0.1:{rpc_port}");
    let mut found = serde_json::Value::Null;
    ok(shoal_testkit::wait_until(Duration::from_secs(90), Duration::from_millis(500), || {
        let out = run_ok(&home, &["search", "lecture notes", "--json", "--no-peers", "--rpc", &url]);
        found = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        found.as_array().is_some_and(|a| !a.is_empty())
    }));
    let hit = &found[0];
    assert_eq!(hit["name"], "crawled-lecture-notes.bin", "{hit}");
    assert_eq!(hit["info_hash"], hash.as_str());
    assert_eq!(hit["source"], "dht");
    assert_eq!(hit["verified"], true, "its metadata was fetched and checked: {hit}");
    let status = rpc(rpc_port, None, "search.status", serde_json::json!({}));
    assert!(status["result"]["crawl"]["sampled_nodes"].as_u64().is_some_and(|n| n >= 1), "{status}");
    for p in [&mut crawler, &mut seed, &mut node] {
        ok(p.terminate(Duration::from_secs(15)).map(drop));
    }
}

#[test]
fn two_daemons_find_each_other_as_search_neighbours_through_the_dht_alone() {
    ensure_tools();
    let work = temp_dir();
    let (ann, ben) = (work.path().join("ann"), work.path().join("ben"));
    let (mut first, ann_rpc, ann_dht) = daemon(&ann, closed_udp_port(), &[]);
    let (mut second, ben_rpc, _) = daemon(&ben, ann_dht, &[]);
    let data = work.path().join("src/field-recordings.bin");
    make_test_file(&data, MIB, 9);
    let torrent = work.path().join("field.torrent");
    shoal_create(&data, &torrent, &[]);
    let dir = data.parent().and_then(Path::to_str).expect("utf-8");
    let added =
        rpc(ben_rpc, None, "torrent.add", serde_json::json!({"torrent": torrent_b64(&torrent), "download_dir": dir}));
    assert!(added["result"]["id"].is_u64(), "{added}");
    let url = format!("http://127.0.0.1:{ann_rpc}");
    let mut found = serde_json::Value::Null;
    ok(shoal_testkit::wait_until(Duration::from_secs(90), Duration::from_millis(500), || {
        let out = run_ok(&ann, &["search", "field recordings", "--json", "--rpc", &url]);
        found = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        found.as_array().is_some_and(|a| !a.is_empty())
    }));
    assert_eq!(found[0]["name"], "field-recordings.bin", "{found}");
    assert_eq!(found[0]["source"], "peers", "{found}");
    let status = rpc(ann_rpc, None, "search.status", serde_json::json!({}));
    assert_eq!(status["result"]["neighbours"].as_array().map(Vec::len), Some(1), "{status}");
    for p in [&mut first, &mut second] {
        ok(p.terminate(Duration::from_secs(15)).map(drop));
    }
}
