//! Interop with aria2 1.36 (`aria2c`, from Debian) requiring protocol encryption
//! (`--bt-require-crypto=true --bt-min-crypto-level=arc4`), both ways, on 127.0.0.1 with its
//! DHT, local discovery and peer exchange off:
//!
//! - aria2 downloads from a Shoal seed it finds through the built-in tracker;
//! - Shoal (at its default, `--encryption prefer`) downloads from an aria2 seed.
//!
//! Every transfer ends with a byte-for-byte comparison against the original data.

#[path = "support/interop.rs"]
mod interop;

use std::path::Path;
use std::process::Command;

use interop::{TRANSFER_TIMEOUT, ok, spawn_get, spawn_share, spawn_tracker, stop_cleanly, wait_get_complete};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-aria2-").tempdir().expect("temporary folder")
}

/// `aria2c` on 127.0.0.1, encryption required, no DHT, LSD or PEX, for `torrent` in `dir`.
fn aria2(name: &str, torrent: &Path, dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("aria2c");
    cmd.arg("--dir").arg(dir).args([
        "--interface=127.0.0.1",
        "--disable-ipv6=true",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--bt-require-crypto=true",
        "--bt-min-crypto-level=arc4",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--stop-with-process",
    ]);
    cmd.arg(std::process::id().to_string());
    cmd.arg(format!("--listen-port={port}")).args(extra).arg(torrent);
    ok(Proc::spawn(name, cmd))
}

#[test]
fn aria2_requiring_encryption_and_shoal_move_data_both_ways() {
    let work = temp_dir();
    let file = work.path().join("src").join("aria.bin");
    make_test_file(&file, 6 * MIB + 9, 81);
    let tracker = spawn_tracker(1);

    // aria2 downloads from a Shoal seed it learns of from the tracker.
    let torrent = work.path().join("aria.torrent");
    let mut share = spawn_share(&file, &torrent, &["--tracker", &tracker.url]);
    let out = work.path().join("aria-out");
    let mut leech = aria2("aria2 leech", &torrent, &out, shoal_testkit::free_port(), &["--seed-time=0"]);
    ok(leech.wait_success(TRANSFER_TIMEOUT));
    assert_same_tree(&file, out.join("aria.bin"));
    stop_cleanly(&mut share.proc);

    // Shoal downloads from an aria2 seed (which checks its data first, -V).
    let port = shoal_testkit::free_port();
    let _seed = aria2("aria2 seed", &torrent, file.parent().expect("parent"), port, &["-V", "--seed-ratio=0.0"]);
    let out = work.path().join("shoal-out");
    let peer = format!("127.0.0.1:{port}");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--no-trackers", "--peer", &peer]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("aria.bin"));
}
