//! Two fresh Shoal nodes that find each other through nothing but their own DHT nodes (BEP 5),
//! end to end on 127.0.0.1.
//!
//! The seed's DHT is bootstrapped from a closed local port, so it starts with an empty routing
//! table and its first announce reaches no one. The leecher's DHT is bootstrapped from the
//! seed's node and is given a bare magnet link (no trackers, no `x.pe`, no local discovery).
//! The download can only happen if the seed announces its torrent once the leecher's node has
//! joined its routing table, and the leecher looks again once its own table has nodes.
//! `cargo test -p shoal-cli --test dht_only -- --nocapture` prints the times.
//!
//! Each node has a data folder (`XDG_DATA_HOME`, `HOME`) of its own, so no routing table is
//! shared with another test or the user.

#[path = "support/shoal.rs"]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_proto::magnet::Magnet;
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file};
use support::{MIB, QUICK, SEED_READY, STOP_GRACE, complete_line};

/// Engine logs at debug (DHT lookups and announces), the rest at info.
const DEBUG_LOG: &str = "info,shoal_engine=debug";
/// How long the leecher may take from its start to a verified download. On loopback the seed
/// announces within milliseconds of meeting the leecher's node; the rest is slack for a busy
/// machine. Without announcing on that meeting the seed would wait for its 15-minute timer.
const DHT_DOWNLOAD: Duration = Duration::from_secs(30);

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `shoal ARGS...` with its DHT node on (LSD off), data folder `home` and debug engine logs.
fn shoal_dht_cmd(args: &[&str], home: &Path) -> Command {
    let mut cmd = support::shoal_with_dht(args);
    cmd.env("HOME", home).env("XDG_DATA_HOME", home.join("data")).env("SHOAL_LOG", DEBUG_LOG);
    cmd
}

/// The address in the `dht: node on IP:PORT` line.
fn dht_addr(proc: &Proc) -> SocketAddr {
    let line = ok(proc.wait_for_line("dht: node on ", QUICK));
    let addr: SocketAddr = line["dht: node on ".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", proc.explain(&format!("no address in {line:?}"))));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "the DHT node must bind the IP of --listen: {line}");
    assert_ne!(addr.port(), 0, "{line}");
    addr
}

/// A local UDP port nobody listens on (bound a moment ago, then released).
fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    socket.local_addr().expect("address")
}

#[test]
fn r_dht_seed_with_an_empty_routing_table_never_announced() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/dht-only.bin");
    make_test_file(&data, 5 * MIB + 1_001, 95);

    let nowhere = closed_udp_port();
    let mut seed = ok(Proc::spawn("seed", {
        let mut cmd = shoal_dht_cmd(&["share"], &dir.path().join("home-seed"));
        cmd.arg(&data).arg("-o").arg(dir.path().join("dht-only.torrent"));
        cmd.args(["--listen", "127.0.0.1:0", "--dht-port", "0", "--dht-bootstrap", &nowhere.to_string()]);
        cmd
    }));
    let seed_dht = dht_addr(&seed);
    ok(seed.wait_for_line("ready: ", SEED_READY));
    let magnet = ok(seed.wait_for_line("magnet: ", QUICK));
    let hash = Magnet::parse(&magnet["magnet: ".len()..])
        .unwrap_or_else(|e| panic!("shoal share printed a magnet link that does not parse ({e}): {magnet}"))
        .info_hash
        .to_hex()
        .to_ascii_lowercase();

    // Nothing but the info-hash and the seed's DHT node.
    let link = format!("magnet:?xt=urn:btih:{hash}");
    let out = dir.path().join("leech");
    let started = Instant::now();
    let mut leech = ok(Proc::spawn("leech", {
        let mut cmd = shoal_dht_cmd(&["get", &link], &dir.path().join("home-leech"));
        cmd.arg("-o").arg(&out);
        cmd.args(["--listen", "127.0.0.1:0", "--dht-port", "0", "--dht-bootstrap", &seed_dht.to_string()]);
        cmd
    }));
    dht_addr(&leech);
    let meta = ok(leech.wait_for_line("metadata: ", DHT_DOWNLOAD));
    let meta_at = started.elapsed();
    assert!(meta.starts_with("metadata: dht-only.bin ("), "{meta}");
    complete_line(&leech, DHT_DOWNLOAD.saturating_sub(meta_at));
    let done_at = started.elapsed();
    ok(leech.wait_success(QUICK));
    assert_same_tree(&data, out.join("dht-only.bin"));
    println!(
        "shoal get by bare magnet, DHT only (bootstrapped from a seed whose table was empty): metadata after \
         {meta_at:.2?}, complete after {done_at:.2?} (5 MiB; process start included)"
    );
    ok(seed.terminate(STOP_GRACE));
}
