//! uTP (BEP 29) against libtorrent 2.1 and between Shoal nodes, on 127.0.0.1:
//!
//! - libtorrent restricted to uTP (TCP off both ways) seeds to Shoal and downloads from Shoal;
//! - the same with protocol encryption forced at the RC4 level (uTP + MSE);
//! - two Shoal nodes over uTP alone (`--utp prefer` dials uTP first);
//! - `--utp off` cannot reach a uTP-only libtorrent, and says why.
//!
//! libtorrent's side cannot use TCP at all, so a completed transfer went over uTP; every
//! transfer ends with a byte-for-byte comparison against the original data.

#[path = "support/interop.rs"]
mod interop;

use std::path::Path;
use std::time::Duration;

use interop::{START_TIMEOUT, TRANSFER_TIMEOUT, ok, spawn_get, spawn_share, stop_cleanly, wait_get_complete};
use shoal_testkit::{
    Proc, TempDir, assert_same_tree, ensure_tools, lt_create, make_test_file, python_lt, spawn_lt_seed,
};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-utp-").tempdir().expect("temporary folder")
}

fn spawn_lt_leech(torrent: &Path, save: &Path, extra: &[&str]) -> Proc {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save).args(extra);
    ok(Proc::spawn("lt leech", cmd))
}

/// libtorrent uTP-only seeds to Shoal, then downloads from Shoal; `lt_extra` and
/// `shoal_extra` add options (encryption) to both sides.
fn both_ways(name: &str, seed: u64, lt_extra: &[&str], shoal_extra: &[&str]) {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("src").join(name);
    make_test_file(&file, 12 * MIB + 777, seed);
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(&file, &torrent, &[]));
    let mut lt = vec!["--transport", "utp"];
    lt.extend_from_slice(lt_extra);
    let (_seed, port) = ok(spawn_lt_seed(&torrent, file.parent().expect("parent"), &lt));
    let out = work.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    let mut args = vec!["--peer", peer.as_str(), "--no-trackers"];
    args.extend_from_slice(shoal_extra);
    let mut get = spawn_get("shoal get", &torrent, &out, &args);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join(name));
    let torrent = work.path().join("shoal.torrent");
    let mut share = spawn_share(&file, &torrent, shoal_extra);
    let save = work.path().join("lt-out");
    let addr = share.addr.to_string();
    let mut lt = vec!["--peer", addr.as_str(), "--transport", "utp"];
    lt.extend_from_slice(lt_extra);
    let mut leech = spawn_lt_leech(&torrent, &save, &lt);
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(&file, save.join(name));
    stop_cleanly(&mut share.proc);
}

#[test]
fn shoal_and_a_utp_only_libtorrent_move_data_both_ways() {
    both_ways("utp.bin", 41, &[], &[]);
}

#[test]
fn utp_with_encryption_forced_both_ways() {
    both_ways("utp-rc4.bin", 42, &["--encryption", "forced"], &["--encryption", "require"]);
}

#[test]
fn two_shoal_nodes_over_utp_alone() {
    let work = temp_dir();
    let file = work.path().join("src").join("pair.bin");
    make_test_file(&file, 24 * MIB + 3, 43);
    let torrent = work.path().join("pair.torrent");
    let mut share = spawn_share(&file, &torrent, &[]);
    let out = work.path().join("out");
    let peer = share.addr.to_string();
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--utp", "prefer", "-v"]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("pair.bin"));
    assert!(get.output().contains("over uTP"), "the connection was uTP: {}", get.output());
    stop_cleanly(&mut share.proc);
}

#[test]
fn utp_off_cannot_reach_a_utp_only_peer_and_says_why() {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("src").join("off.bin");
    make_test_file(&file, MIB, 44);
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(&file, &torrent, &[]));
    let (_seed, port) = ok(spawn_lt_seed(&torrent, file.parent().expect("parent"), &["--transport", "utp"]));
    let out = work.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--no-trackers", "--utp", "off"]);
    ok(shoal_testkit::wait_until(START_TIMEOUT, Duration::from_millis(100), || get.output().contains("--utp off"))
        .map_err(|e| format!("{e}: {}", get.explain("never explained the failed dial"))));
    assert!(std::fs::metadata(out.join("off.bin")).map_or(0, |m| m.len()) == 0);
    let _ = get.terminate(Duration::from_secs(10));
}
