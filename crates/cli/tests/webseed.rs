//! Web seeds (BEP 19): Python's http.server (`drivers/web_seed.py`, which answers whole files
//! and no ranges, as the plain module does) serving the torrent's files on 127.0.0.1.
//!
//! - a web seed alone: a single file, and a folder (the URL ends in `/`);
//! - a slow web seed and a capped peer together: both supply pieces;
//! - a web seed serving wrong bytes is banned and dropped, and the download completes from an
//!   honest peer with the right bytes.

#[path = "support/interop.rs"]
mod interop;

use std::path::Path;
use std::process::Command;

use interop::{START_TIMEOUT, ok, shoal_create, spawn_get, spawn_share, stop_cleanly, wait_get_complete};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file, repo_root};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-webseed-").tempdir().expect("temporary folder")
}

/// Serves `dir` over HTTP; returns the server and its base URL (ending in `/`).
fn web_seed(dir: &Path, delay_ms: u64) -> (Proc, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("drivers/web_seed.py")).arg("--watch-stdin").arg("--dir").arg(dir);
    cmd.args(["--delay-ms", &delay_ms.to_string()]);
    let proc = ok(Proc::spawn("web seed", cmd));
    let port = ok(proc.wait_for_line("READY ", START_TIMEOUT))["READY ".len()..].trim().to_string();
    (proc, format!("http://127.0.0.1:{port}/"))
}

fn gets(server: &Proc) -> usize {
    server.stdout_lines().iter().filter(|l| l.starts_with("GET ")).count()
}

#[test]
fn a_web_seed_alone_serves_a_file_and_a_folder() {
    let work = temp_dir();
    let srv = work.path().join("srv");
    let file = srv.join("alone.bin");
    make_test_file(&file, 3 * MIB + 17, 71);
    let folder = srv.join("album");
    make_test_file(folder.join("one.bin"), MIB + 3, 72);
    make_test_file(folder.join("sub dir/two.bin"), 2 * MIB + 5, 73);
    let (server, url) = web_seed(&srv, 0);
    for (data, name) in [(&file, "alone.bin"), (&folder, "album")] {
        let torrent = work.path().join(format!("{name}.torrent"));
        shoal_create(data, &torrent, &["--web-seed", &url]);
        let out = work.path().join(format!("out-{name}"));
        let mut get = spawn_get("shoal get", &torrent, &out, &["--no-trackers"]);
        wait_get_complete(&mut get);
        assert_same_tree(data, out.join(name));
    }
    assert!(gets(&server) > 0);
    // A single file's URL may also name the file itself.
    let torrent = work.path().join("direct.torrent");
    shoal_create(&file, &torrent, &["--web-seed", &format!("{url}alone.bin")]);
    let out = work.path().join("out-direct");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--no-trackers"]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("alone.bin"));
}

#[test]
fn a_web_seed_and_a_peer_both_supply_pieces() {
    let work = temp_dir();
    let srv = work.path().join("srv");
    let file = srv.join("mixed.bin");
    make_test_file(&file, 8 * MIB, 74);
    // A web seed that takes 150 ms per request and a peer capped at 2 MiB/s.
    let (server, url) = web_seed(&srv, 150);
    let torrent = work.path().join("mixed.torrent");
    let mut share = spawn_share(&file, &torrent, &["--web-seed", &url, "--piece-size", "64k", "--upload-limit", "2M"]);
    let out = work.path().join("out");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--no-trackers", "--peer", &share.addr.to_string()]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("mixed.bin"));
    let requests = gets(&server);
    let pieces = (8 * MIB / (64 * 1024)) as usize;
    assert!(requests > 0, "the web seed supplied nothing");
    assert!(requests < pieces, "the peer supplied nothing ({requests} web requests for {pieces} pieces)");
    stop_cleanly(&mut share.proc);
}

#[test]
fn a_web_seed_serving_wrong_bytes_is_dropped() {
    let work = temp_dir();
    let file = work.path().join("data").join("honest.bin");
    make_test_file(&file, 2 * MIB, 75);
    let bad = work.path().join("bad");
    make_test_file(bad.join("honest.bin"), 2 * MIB, 76); // same name and size, other bytes
    let (_server, url) = web_seed(&bad, 0);
    let torrent = work.path().join("honest.torrent");
    let mut share = spawn_share(&file, &torrent, &["--web-seed", &url, "--upload-limit", "1M"]);
    let out = work.path().join("out");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--no-trackers", "--peer", &share.addr.to_string()]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("honest.bin"));
    let log = get.output();
    let banned = log
        .lines()
        .any(|l| l.contains("disconnecting: ") && l.contains("addr=240.0.0.1:80 ") && l.contains("ban=true"));
    assert!(banned, "the lying web seed was not banned:\n{log}");
    stop_cleanly(&mut share.proc);
}
