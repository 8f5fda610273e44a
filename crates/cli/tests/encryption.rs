//! Protocol encryption (MSE/PE) against libtorrent 2.1 and between Shoal nodes, on 127.0.0.1:
//!
//! - libtorrent with encryption forced at the RC4 level (`pe_forced`, `pe_rc4`) seeds to Shoal
//!   and downloads from Shoal, Shoal at its default (`prefer`);
//! - Shoal with `--encryption require` refuses a plaintext-only libtorrent both ways and says so
//!   in its log;
//! - two Shoal nodes that both require encryption move data.
//!
//! Every transfer ends with a byte-for-byte comparison against the original data.

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
    shoal_testkit::tempfile::Builder::new().prefix("shoal-encryption-").tempdir().expect("temporary folder")
}

fn spawn_lt_leech(torrent: &Path, save: &Path, extra: &[&str]) -> Proc {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save).args(extra);
    ok(Proc::spawn("lt leech", cmd))
}

fn wait_output(proc: &Proc, text: &str) {
    ok(shoal_testkit::wait_until(START_TIMEOUT, Duration::from_millis(100), || proc.output().contains(text))
        .map_err(|e| format!("{e}: {}", proc.explain(&format!("never said {text:?}")))));
}

#[test]
fn shoal_and_libtorrent_forcing_rc4_move_data_both_ways() {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("src").join("enc.bin");
    make_test_file(&file, 12 * MIB + 321, 31);
    // libtorrent seeds, encryption forced; Shoal downloads at its default.
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(&file, &torrent, &[]));
    let (_seed, port) = ok(spawn_lt_seed(&torrent, file.parent().expect("parent"), &["--encryption", "forced"]));
    let out = work.path().join("out");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &format!("127.0.0.1:{port}"), "--no-trackers"]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("enc.bin"));
    // Shoal seeds at its default; libtorrent downloads, encryption forced.
    let torrent = work.path().join("shoal.torrent");
    let mut share = spawn_share(&file, &torrent, &[]);
    let save = work.path().join("lt-out");
    let mut leech = spawn_lt_leech(&torrent, &save, &["--peer", &share.addr.to_string(), "--encryption", "forced"]);
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(&file, save.join("enc.bin"));
    stop_cleanly(&mut share.proc);
}

#[test]
fn require_refuses_a_plaintext_only_libtorrent_and_says_why() {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("src").join("plain.bin");
    make_test_file(&file, MIB, 32);
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(&file, &torrent, &[]));
    // Dialling a plaintext-only seed: no plain fallback, and the log says why.
    let (_seed, port) = ok(spawn_lt_seed(&torrent, file.parent().expect("parent"), &["--encryption", "disabled"]));
    let out = work.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    let mut get =
        spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--no-trackers", "--encryption", "require"]);
    wait_output(&get, "--encryption require dials no plain one");
    assert!(get.output().contains("it may not speak protocol encryption"), "{}", get.output());
    assert!(std::fs::metadata(out.join("plain.bin")).map_or(0, |m| m.len()) == 0, "data came over plaintext");
    let _ = get.terminate(Duration::from_secs(10));
    // Dialled by a plaintext-only leecher: refused, and said.
    let shoal_torrent = work.path().join("shoal.torrent");
    let mut share = spawn_share(&file, &shoal_torrent, &["--encryption", "require"]);
    let save = work.path().join("lt-out");
    let _leech =
        spawn_lt_leech(&shoal_torrent, &save, &["--peer", &share.addr.to_string(), "--encryption", "disabled"]);
    wait_output(&share.proc, "refused a plaintext connection: --encryption require");
    stop_cleanly(&mut share.proc);
}

#[test]
fn two_shoal_nodes_requiring_encryption_move_data() {
    let work = temp_dir();
    let file = work.path().join("src").join("both.bin");
    make_test_file(&file, 6 * MIB + 5, 33);
    let torrent = work.path().join("both.torrent");
    let mut share = spawn_share(&file, &torrent, &["--encryption", "require"]);
    let out = work.path().join("out");
    let mut get =
        spawn_get("shoal get", &torrent, &out, &["--peer", &share.addr.to_string(), "--encryption", "require"]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("both.bin"));
    stop_cleanly(&mut share.proc);
}
