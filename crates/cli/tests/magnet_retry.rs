//! A magnet link whose only peer is not listening yet, end to end on 127.0.0.1: `shoal get`
//! keeps asking the link's `x.pe` peer, with a pause after each refusal, until the seed starts
//! there, then fetches the metadata (BEP 9) and the data, and the download matches the original
//! byte for byte.
//!
//! No DHT, no trackers, no local discovery: the `x.pe` address is the only source. The seed
//! is started only once the leecher has logged a refused attempt, so the first try is known to
//! have failed. `cargo test -p shoal-cli --test magnet_retry -- --nocapture` prints the times.

#[path = "support/shoal.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use shoal_proto::Metainfo;
use shoal_testkit::{Proc, TempDir, assert_same_tree, free_port, make_test_file, wait_until};
use support::{DOWNLOAD, MIB, QUICK, SEED_READY, STOP_GRACE, complete_line, log_lines, run, shoal};

/// Engine logs at debug (each failed metadata attempt), the rest at info.
const DEBUG_LOG: &str = "info,shoal_engine=debug";
/// How often log conditions are polled.
const POLL: Duration = Duration::from_millis(20);

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The info-hash of the torrent file at `path`, lowercase hex.
fn info_hash_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let meta = Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    meta.info_hash.to_hex().to_ascii_lowercase()
}

/// Whether the leecher logged a failed metadata attempt with `peer`.
fn refused_by(proc: &Proc, peer: &str) -> bool {
    log_lines(proc).iter().any(|l| l.contains("no metadata from peer") && l.contains(peer))
}

#[test]
fn r_magnet_gave_up_on_a_peer_that_started_listening_late() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/late.bin");
    make_test_file(&data, 3 * MIB + 4_321, 71);
    let torrent = dir.path().join("late.torrent");
    ok(run(
        {
            let mut cmd = shoal(["create"]);
            cmd.arg(&data).arg("-o").arg(&torrent);
            cmd
        },
        QUICK,
    )
    .ok());
    let hash = info_hash_of(&torrent);

    // Nobody listens on `port` yet.
    let port = free_port();
    let peer = format!("127.0.0.1:{port}");
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=late.bin&x.pe={peer}");
    let out = dir.path().join("leech");
    let started = Instant::now();
    let mut leech = ok(Proc::spawn("leech", {
        let mut cmd = shoal(["get", &link, "-o"]);
        cmd.arg(&out).args(["--listen", "127.0.0.1:0"]).env("SHOAL_LOG", DEBUG_LOG);
        cmd
    }));
    ok(leech.wait_for_line("fetching metadata of late.bin", QUICK));
    ok(wait_until(QUICK, POLL, || refused_by(&leech, &peer))
        .map_err(|e| leech.explain(&format!("never logged a refused attempt with {peer} ({e})"))));
    let refused_at = started.elapsed();

    // The seed starts on that port, reusing the torrent file made above.
    let mut seed = ok(Proc::spawn("seed", {
        let mut cmd = shoal(["share"]);
        cmd.arg(&data).arg("-o").arg(&torrent).args(["--listen", &peer]);
        cmd
    }));
    let ready = ok(seed.wait_for_line("ready: ", SEED_READY));
    assert!(ready.contains(&peer), "the seed listens elsewhere than asked: {ready}");
    let ready_at = started.elapsed();

    let meta = ok(leech.wait_for_line("metadata: ", DOWNLOAD));
    let meta_at = started.elapsed();
    assert!(meta.starts_with("metadata: late.bin ("), "{meta}");
    complete_line(&leech, DOWNLOAD);
    let done_at = started.elapsed();
    ok(leech.wait_success(QUICK));
    assert_same_tree(&data, out.join("late.bin"));
    println!(
        "magnet with a late seed: first refusal after {refused_at:.2?}, seed ready after {ready_at:.2?}, metadata \
         after {meta_at:.2?}, complete after {done_at:.2?} (get's process start included)"
    );
    ok(seed.terminate(STOP_GRACE));
}
