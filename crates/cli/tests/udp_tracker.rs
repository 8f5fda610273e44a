//! End-to-end test of the UDP tracker (BEP 15) on loopback: `shoal tracker` answers UDP on the
//! port of its HTTP listener, and a `shoal get` whose torrent lists only that `udp://` URL
//! finds a `shoal share` seed through it and downloads the data byte for byte.

#[path = "support/shoal.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use shoal_proto::Metainfo;
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file, wait_until};
use support::{DOWNLOAD, MIB, QUICK, Seed, complete_line, log_lines, run, shoal, spawn_get};

fn info_hash_hex(torrent: &Path) -> String {
    let bytes = std::fs::read(torrent).unwrap_or_else(|e| panic!("cannot read {}: {e}", torrent.display()));
    let meta = Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{} does not parse: {e}", torrent.display()));
    meta.info_hash.to_hex()
}

/// The address after `prefix` in the tracker's line that starts with it.
fn listening(tracker: &Proc, prefix: &str, suffix: &str) -> SocketAddr {
    let line = tracker.wait_for_line(prefix, QUICK).unwrap_or_else(|e| panic!("{e}"));
    line.strip_prefix(prefix)
        .and_then(|rest| rest.trim().strip_suffix(suffix))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{}", tracker.explain(&format!("no address in {line:?}"))))
}

#[test]
fn get_finds_the_seed_through_a_udp_only_tracker() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");

    let mut cmd = shoal(["tracker", "--listen", "127.0.0.1:0", "--interval", "1"]);
    cmd.env("SHOAL_LOG", "debug");
    let mut tracker = Proc::spawn("tracker", cmd).unwrap_or_else(|e| panic!("{e}"));
    let http = listening(&tracker, "tracker listening on http://", "/announce");
    let udp = listening(&tracker, "tracker listening on udp://", "");
    assert_eq!(http.port(), udp.port(), "UDP on the HTTP port");
    assert_eq!(udp.ip().to_string(), "127.0.0.1");
    let lines = tracker.stdout_lines();
    assert!(lines[0].starts_with("tracker listening on http://"), "the HTTP line comes first: {lines:?}");
    let url = format!("udp://{udp}/announce");

    let data = dir.path().join("seed/payload.bin");
    let size = 3 * MIB + 4_321;
    make_test_file(&data, size, 21);
    let torrent = dir.path().join("udp.torrent");
    let mut create = shoal(["create"]);
    create.arg(&data).arg("-o").arg(&torrent).args(["--tracker", &url, "--piece-size", "65536"]);
    let out = run(create, QUICK);
    assert!(out.status.success(), "{out:?}");

    // The seed makes the same torrent (the tracker is not part of the info-hash).
    let seed_torrent = dir.path().join("seed.torrent");
    let mut seed = Seed::start("seed", &data, &seed_torrent, &["--tracker", &url, "--piece-size", "65536"]);
    assert_eq!(info_hash_hex(&seed_torrent), info_hash_hex(&torrent));

    // No --peer: the only way to the seed is the tracker.
    let out_dir = dir.path().join("leech");
    let mut leech = spawn_get("leech", &torrent, &out_dir, &[], &[]);
    let done = complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out_dir.join("payload.bin"));
    assert!((done.fetched - size as f64).abs() < 0.01 * size as f64, "{done:?}");

    // Both nodes announced over UDP, and the seed says `stopped` when it ends.
    let hash = info_hash_hex(&torrent);
    let announces = |event: &str| {
        log_lines(&tracker)
            .iter()
            .filter(|l| l.contains("UDP announce") && l.contains(&hash) && l.contains(event))
            .count()
    };
    assert!(announces("Started") >= 2, "{}", tracker.explain("expected `started` from the seed and the leecher"));
    assert!(seed.stop().success(), "share exits 0 on SIGTERM");
    wait_until(QUICK, Duration::from_millis(50), || announces("Stopped") >= 2)
        .unwrap_or_else(|e| panic!("{}", tracker.explain(&format!("`stopped` from both nodes: {e}"))));
    tracker.terminate(support::STOP_GRACE).expect("tracker stops");
    eprintln!("udp tracker download: {:.2?}", started.elapsed());
}
