//! Sanity tests of the interop harness itself, without Shoal: the real clients exchange data
//! with each other on loopback through the drivers the Shoal interop tests use. When one of
//! these fails, the harness or the machine is at fault, not Shoal.

use std::path::Path;
use std::time::{Duration, Instant};

use shoal_testkit::{
    Proc, TempDir, Transmission, assert_same_tree, ensure_tools, lt_create, lt_info_hash, make_test_file, python_lt,
    spawn_lt_seed,
};

const MIB: u64 = 1 << 20;

/// Writes `size` bytes of test data to `dir/name` and a v1 torrent for it to `dir/name.torrent`.
fn fixture(dir: &Path, name: &str, size: u64, seed: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("seed").join(name);
    make_test_file(&data, size, seed);
    let torrent = dir.join(format!("{name}.torrent"));
    lt_create(&data, &torrent, &["--piece-size", "262144"]).expect("libtorrent creates the torrent");
    (data, torrent)
}

#[test]
fn libtorrent_seed_to_libtorrent_leech_20_mib() {
    ensure_tools();
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let (data, torrent) = fixture(dir.path(), "data.bin", 20 * MIB, 1);
    let (_seed, port) = spawn_lt_seed(&torrent, &dir.path().join("seed"), &[]).expect("seed starts");

    let out = dir.path().join("leech");
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", "120", "--torrent"]);
    cmd.arg(&torrent).arg("--save").arg(&out).args(["--peer", &format!("127.0.0.1:{port}")]);
    let mut leech = Proc::spawn("lt-leech", cmd).expect("leech starts");
    leech.wait_success(Duration::from_secs(180)).expect("leech completes");
    assert!(leech.stdout_lines().iter().any(|l| l.starts_with("DONE ")));
    assert_same_tree(&data, out.join("data.bin"));
    eprintln!("libtorrent -> libtorrent, 20 MiB: {:.2?} in all", started.elapsed());
}

#[test]
fn libtorrent_seed_to_transmission_leech() {
    ensure_tools();
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let (data, torrent) = fixture(dir.path(), "data.bin", 20 * MIB, 2);
    let transmission = Transmission::start().expect("transmission-daemon starts");
    let out = dir.path().join("transmission");
    let added = transmission.add(&torrent, &out).expect("torrent added");
    assert_eq!(added.info_hash, lt_info_hash(&torrent).expect("libtorrent reads the torrent"));
    assert_eq!(transmission.info_hash(added.id).expect("hash"), added.info_hash);

    // Transmission never dials 127.0.0.1 peers: the seed dials Transmission.
    let peer = transmission.peer_addr().to_string();
    let (_seed, _port) = spawn_lt_seed(&torrent, &dir.path().join("seed"), &["--peer", &peer]).expect("seed starts");
    transmission.wait_done(added.id, Duration::from_secs(120)).expect("Transmission completes");
    assert_same_tree(&data, out.join("data.bin"));
    transmission.stop().expect("transmission-daemon stops cleanly");
    eprintln!("libtorrent -> Transmission, 20 MiB: {:.2?} in all", started.elapsed());
}

#[test]
fn transmission_seed_to_libtorrent_leech() {
    ensure_tools();
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let (data, torrent) = fixture(dir.path(), "data.bin", 4 * MIB, 3);
    let transmission = Transmission::start().expect("transmission-daemon starts");
    let added = transmission.add(&torrent, &dir.path().join("seed")).expect("torrent added");
    transmission.wait_done(added.id, Duration::from_secs(60)).expect("Transmission verifies its data");

    let out = dir.path().join("leech");
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", "120", "--torrent"]);
    cmd.arg(&torrent).arg("--save").arg(&out).args(["--peer", &transmission.peer_addr().to_string()]);
    let mut leech = Proc::spawn("lt-leech", cmd).expect("leech starts");
    leech.wait_success(Duration::from_secs(180)).expect("leech completes");
    assert_same_tree(&data, out.join("data.bin"));
    eprintln!("Transmission -> libtorrent, 4 MiB: {:.2?} in all", started.elapsed());
}
