//! Interop with Transmission 3.00 (a private transmission-daemon per test, driven through
//! `drivers/transmission.py`), all on 127.0.0.1.
//!
//! Transmission never dials a 127.0.0.0/8 peer, so Shoal always makes the connection:
//! - Transmission downloads from `shoal share`, which finds Transmission through `shoal tracker`
//!   (Transmission announces to it; the seed re-announces every second and dials what it
//!   learns). This also shows that Transmission can use Shoal's tracker.
//! - Transmission downloads from `shoal share --peer <Transmission's peer address>`.
//! - Shoal downloads from a seeding Transmission with `shoal get --peer`.
//!
//! Torrents are made by Shoal, and Transmission must report the info-hash Shoal printed. Every
//! transfer ends with a byte-for-byte comparison against the original data.

#[path = "support/interop.rs"]
mod interop;

use std::path::{Path, PathBuf};

use interop::{
    TRANSFER_TIMEOUT, get_info_hash, ok, shoal_create, spawn_get, spawn_share, spawn_tracker, stop_cleanly,
    wait_get_complete,
};
use shoal_testkit::{TempDir, Transmission, assert_same_tree, ensure_tools, make_test_file};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-interop-tr-").tempdir().expect("temporary folder")
}

/// Writes a folder named `name` under `root` with nested folders and sizes that are not
/// multiples of any piece size (about 20 MiB); returns its path. With `empty_file` it also holds
/// a zero-length file. Transmission 3.00 never creates zero-length files (whoever the data
/// comes from), so folders that Transmission downloads leave it out.
fn make_folder(root: &Path, name: &str, empty_file: bool) -> PathBuf {
    let dir = root.join(name);
    make_test_file(dir.join("a.bin"), 11 * MIB + 4_097, 21);
    make_test_file(dir.join("sub/b.bin"), 2 * MIB + 3, 22);
    if empty_file {
        make_test_file(dir.join("sub/empty.dat"), 0, 23);
    }
    make_test_file(dir.join("sub/deeper/c.bin"), 1, 24);
    make_test_file(dir.join("sub/deeper/d.bin"), 6 * MIB + 65_537, 25);
    make_test_file(dir.join("z/e.bin"), 777_777, 26);
    dir
}

/// Adds a Shoal-made torrent to Transmission, checks Transmission's info-hash is `info_hash`,
/// waits until Transmission has it all, and compares its copy with `data`.
fn transmission_downloads(transmission: &Transmission, torrent: &Path, info_hash: &str, data: &Path) {
    let added = ok(transmission.add(torrent, &transmission.download_dir()));
    assert_eq!(added.info_hash, info_hash, "Transmission and Shoal disagree on the info-hash");
    assert_eq!(ok(transmission.info_hash(added.id)), info_hash);
    ok(transmission.wait_done(added.id, TRANSFER_TIMEOUT));
    assert_same_tree(data, transmission.download_dir().join(data.file_name().expect("data has a name")));
}

#[test]
fn transmission_downloads_from_a_shoal_seed_found_through_shoal_tracker() {
    ensure_tools();
    let work = temp_dir();
    let data = make_folder(&work.path().join("data"), "folder", false);
    let mut tracker = spawn_tracker(1);
    let torrent = work.path().join("folder.torrent");
    let mut share = spawn_share(&data, &torrent, &["--tracker", &tracker.url]);
    let transmission = ok(Transmission::start());
    transmission_downloads(&transmission, &torrent, &share.info_hash, &data);
    stop_cleanly(&mut share.proc);
    stop_cleanly(&mut tracker.proc);
    ok(transmission.stop());
}

#[test]
fn transmission_downloads_from_a_shoal_seed_that_dials_it() {
    ensure_tools();
    let work = temp_dir();
    let data = work.path().join("data/single.bin");
    make_test_file(&data, 24 * MIB + 1_234, 27);
    let transmission = ok(Transmission::start());
    let torrent = work.path().join("single.torrent");
    let peer = transmission.peer_addr().to_string();
    let mut share = spawn_share(&data, &torrent, &["--peer", &peer]);
    transmission_downloads(&transmission, &torrent, &share.info_hash, &data);
    stop_cleanly(&mut share.proc);
    ok(transmission.stop());
}

#[test]
fn shoal_downloads_from_a_transmission_seed() {
    ensure_tools();
    let work = temp_dir();
    let data = make_folder(&work.path().join("data"), "folder", true);
    let torrent = work.path().join("folder.torrent");
    let info_hash = shoal_create(&data, &torrent, &["--piece-size", "65536"]);
    let transmission = ok(Transmission::start());
    let added = ok(transmission.add(&torrent, data.parent().expect("data has a parent folder")));
    assert_eq!(added.info_hash, info_hash, "Transmission and Shoal disagree on the info-hash");
    // Transmission checks the data it was given, then seeds it.
    ok(transmission.wait_done(added.id, TRANSFER_TIMEOUT));

    let out = work.path().join("out");
    let peer = transmission.peer_addr().to_string();
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--no-trackers"]);
    assert_eq!(get_info_hash(&get), info_hash);
    wait_get_complete(&mut get);
    assert_same_tree(&data, out.join("folder"));
    ok(transmission.stop());
}
