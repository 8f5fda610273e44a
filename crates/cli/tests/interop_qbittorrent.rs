//! Interop with qBittorrent-nox 4.5 (Debian; libtorrent 2.0 inside), driven over its Web API by
//! `drivers/qbt.py` on 127.0.0.1 with DHT, local discovery, peer exchange and UPnP off:
//!
//! - at qBittorrent's out-of-the-box settings (TCP and uTP, encryption allowed), qBittorrent
//!   seeds to Shoal and downloads from Shoal, Shoal at its defaults;
//! - the same with qBittorrent requiring encryption.
//!
//! Every transfer ends with a byte-for-byte comparison against the original data; the times
//! are printed (qBittorrent's own figure for its download, from adding the torrent to done).

#[path = "support/interop.rs"]
mod interop;

use std::path::Path;
use std::time::Instant;

use interop::{START_TIMEOUT, TRANSFER_TIMEOUT, ok, spawn_get, spawn_share, stop_cleanly, wait_get_complete};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-qbt-").tempdir().expect("temporary folder")
}

fn qbt(name: &str, args: &[&str], torrent: &Path, save: &Path) -> Proc {
    let mut cmd = shoal_testkit::python_qbt(args);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save).arg("--watch-stdin");
    ok(Proc::spawn(name, cmd))
}

fn both_ways(name: &str, seed: u64, encryption: &str) {
    let work = temp_dir();
    let file = work.path().join("src").join(name);
    make_test_file(&file, 16 * MIB + 99, seed);
    let torrent = work.path().join("t.torrent");
    let mut share = spawn_share(&file, &torrent, &[]);
    // qBittorrent downloads from Shoal.
    let save = work.path().join("qbt-out");
    let peer = share.addr.to_string();
    let timeout = TRANSFER_TIMEOUT.as_secs().to_string();
    let mut leech = qbt(
        "qbt leech",
        &["leech", "--encryption", encryption, "--peer", &peer, "--timeout", &timeout],
        &torrent,
        &save,
    );
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(&file, save.join(name));
    let done = leech.output().lines().find(|l| l.starts_with("DONE ")).map(str::to_owned);
    eprintln!("qBittorrent ({encryption}) from Shoal: {done:?}");
    stop_cleanly(&mut share.proc);
    // Shoal downloads from qBittorrent.
    let seeder = qbt("qbt seed", &["seed", "--encryption", encryption], &torrent, file.parent().expect("parent"));
    let line = ok(seeder.wait_for_line("READY ", START_TIMEOUT));
    let port = line["READY ".len()..].trim().to_owned();
    let out = work.path().join("out");
    let started = Instant::now();
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &format!("127.0.0.1:{port}"), "--no-trackers"]);
    wait_get_complete(&mut get);
    eprintln!("Shoal from qBittorrent ({encryption}): {:.2} s", started.elapsed().as_secs_f64());
    assert_same_tree(&file, out.join(name));
    drop(seeder);
}

#[test]
fn qbittorrent_at_its_defaults_and_shoal_move_data_both_ways() {
    both_ways("qbt.bin", 91, "default");
}

#[test]
fn qbittorrent_requiring_encryption_and_shoal_move_data_both_ways() {
    both_ways("qbt-rc4.bin", 92, "require");
}
