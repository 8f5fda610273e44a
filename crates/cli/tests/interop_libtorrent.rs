//! Interop with libtorrent 2.1 (through `drivers/lt_client.py`), all on 127.0.0.1:
//!
//! - Shoal downloads from a libtorrent seed a torrent libtorrent made (single file, and a folder
//!   with nested folders, an empty file and sizes that are not multiples of the piece size), so
//!   Shoal also reads libtorrent's .torrent files.
//! - libtorrent downloads from `shoal share` a torrent Shoal made.
//! - libtorrent computes the same info-hash, private flag and trackers as `shoal create` wrote
//!   for single-file, multi-file, private, multi-tracker and commented torrents.
//! - A mixed swarm found only through `shoal tracker`: one rate-capped Shoal seed, libtorrent
//!   leechers and Shoal leechers; the leechers must trade among themselves to finish in time.
//!
//! Every transfer ends with a byte-for-byte comparison against the original data.

#[path = "support/interop.rs"]
mod interop;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interop::{
    START_TIMEOUT, STOP_GRACE, TRANSFER_TIMEOUT, get_info_hash, ok, shoal_create, spawn_get, spawn_share,
    spawn_tracker, stop_cleanly, wait_get_complete,
};
use shoal_testkit::{
    Proc, TempDir, assert_same_tree, ensure_tools, lt_create, lt_info_hash, make_test_file, python_lt, run_captured,
    spawn_lt_seed,
};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-interop-lt-").tempdir().expect("temporary folder")
}

/// Writes a folder named `name` under `root` with nested folders, an empty file and sizes that
/// are not multiples of any piece size (about `scale` * 17 MiB in all); returns its path and
/// total size.
fn make_folder(root: &Path, name: &str, scale: u64) -> (PathBuf, u64) {
    let dir = root.join(name);
    let files = [
        ("a.bin", scale * 9 * MIB + 12_345),
        ("sub/b.bin", scale * 3 * MIB + 7),
        ("sub/empty.dat", 0),
        ("sub/deeper/c.bin", 1),
        ("sub/deeper/d.bin", scale * 5 * MIB + 65_537),
        ("z/e.bin", 999_999),
    ];
    for (seed, (rel, size)) in files.iter().enumerate() {
        make_test_file(dir.join(rel), *size, 10 + seed as u64);
    }
    (dir, files.iter().map(|(_, size)| size).sum())
}

/// A libtorrent leecher for `torrent` saving into `save`; `extra` is appended to `leech`'s
/// arguments (`--peer`, `--then-seed`, `--upload-limit`).
fn spawn_lt_leech(name: &str, torrent: &Path, save: &Path, extra: &[&str]) -> Proc {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save).args(extra);
    ok(Proc::spawn(name, cmd))
}

/// The info-hash in a libtorrent leecher's `leeching NAME (...) info-hash HEX` line.
fn lt_leech_info_hash(leech: &Proc) -> String {
    let line = ok(leech.wait_for_line("leeching ", START_TIMEOUT));
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

/// libtorrent seeds a torrent it made for `data` (a file or folder); Shoal downloads it by
/// dialling the seed and must end with the same bytes and report libtorrent's info-hash.
fn shoal_downloads_from_lt_seed(data: &Path, piece_size: u64) {
    let work = temp_dir();
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(data, &torrent, &["--piece-size", &piece_size.to_string()]));
    let lt_hash = ok(lt_info_hash(&torrent));
    let save = data.parent().expect("data has a parent folder");
    let (_seed, port) = ok(spawn_lt_seed(&torrent, save, &[]));

    let out = work.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--no-trackers"]);
    assert_eq!(get_info_hash(&get), lt_hash, "Shoal and libtorrent disagree on the info-hash");
    wait_get_complete(&mut get);
    assert_same_tree(data, out.join(data.file_name().expect("data has a name")));
}

#[test]
fn shoal_downloads_a_single_file_from_a_libtorrent_seed() {
    ensure_tools();
    let src = temp_dir();
    let file = src.path().join("single.bin");
    make_test_file(&file, 40 * MIB + 777, 1);
    shoal_downloads_from_lt_seed(&file, 256 * 1024);
}

#[test]
fn shoal_downloads_a_multi_file_folder_from_a_libtorrent_seed() {
    ensure_tools();
    let src = temp_dir();
    let (folder, _) = make_folder(src.path(), "folder", 1);
    shoal_downloads_from_lt_seed(&folder, 64 * 1024);
}

/// `shoal share` seeds `data` with a torrent it makes; libtorrent downloads it by dialling the
/// seed and must end with the same bytes and the info-hash Shoal printed.
fn lt_downloads_from_shoal_seed(data: &Path, share_extra: &[&str]) {
    let work = temp_dir();
    let torrent = work.path().join("shoal.torrent");
    let mut share = spawn_share(data, &torrent, share_extra);
    let save = work.path().join("lt-out");
    let peer = share.addr.to_string();
    let mut leech = spawn_lt_leech("lt leech", &torrent, &save, &["--peer", &peer]);
    assert_eq!(lt_leech_info_hash(&leech), share.info_hash, "libtorrent and Shoal disagree on the info-hash");
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    ok(leech.wait_for_line("DONE ", Duration::ZERO));
    assert_same_tree(data, save.join(data.file_name().expect("data has a name")));
    stop_cleanly(&mut share.proc);
}

#[test]
fn libtorrent_downloads_a_single_file_from_a_shoal_seed() {
    ensure_tools();
    let src = temp_dir();
    let file = src.path().join("single.bin");
    make_test_file(&file, 48 * MIB + 4_321, 2);
    lt_downloads_from_shoal_seed(&file, &[]);
}

#[test]
fn libtorrent_downloads_a_multi_file_folder_from_a_shoal_seed() {
    ensure_tools();
    let src = temp_dir();
    let (folder, _) = make_folder(src.path(), "folder", 1);
    lt_downloads_from_shoal_seed(&folder, &["--piece-size", "32768"]);
}

/// What `lt_client.py info -v` says about a torrent, as `key: value` lines.
fn lt_info_verbose(torrent: &Path) -> Vec<(String, String)> {
    let mut cmd = python_lt(["info", "-v", "--torrent"]);
    cmd.arg(torrent);
    let out = ok(ok(run_captured(cmd, START_TIMEOUT)).ok());
    out.stdout.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn values<'a>(info: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    info.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn libtorrent_reads_torrents_made_by_shoal_create_with_the_same_info_hash() {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("data/file.bin");
    make_test_file(&file, 3 * MIB + 5, 3);
    let (folder, folder_size) = make_folder(&work.path().join("data"), "folder", 0);
    let file_size = 3 * MIB + 5;
    let trackers = ["http://127.0.0.1:1/announce", "udp://127.0.0.2:6969", "https://127.0.0.3:4443/announce"];
    let comment = "made by Shoal's interop test; spaces, \"quotes\" and ünïcödé";
    struct Case<'a> {
        name: &'a str,
        path: &'a Path,
        args: Vec<&'a str>,
        size: u64,
        files: usize,
        private: bool,
        trackers: Vec<&'a str>,
    }
    let cases = [
        Case { name: "single", path: &file, args: vec![], size: file_size, files: 1, private: false, trackers: vec![] },
        Case {
            name: "single-128k",
            path: &file,
            args: vec!["--piece-size", "131072"],
            size: file_size,
            files: 1,
            private: false,
            trackers: vec![],
        },
        Case {
            name: "multi",
            path: &folder,
            args: vec![],
            size: folder_size,
            files: 6,
            private: false,
            trackers: vec![],
        },
        Case {
            name: "multi-private",
            path: &folder,
            args: vec!["--private"],
            size: folder_size,
            files: 6,
            private: true,
            trackers: vec![],
        },
        Case {
            name: "single-trackers",
            path: &file,
            args: vec!["--tracker", trackers[0], "--tracker", trackers[1], "--tracker", trackers[2]],
            size: file_size,
            files: 1,
            private: false,
            trackers: trackers.to_vec(),
        },
        Case {
            name: "single-comment",
            path: &file,
            args: vec!["--comment", comment],
            size: file_size,
            files: 1,
            private: false,
            trackers: vec![],
        },
        Case {
            name: "multi-everything",
            path: &folder,
            args: vec![
                "--private",
                "--tracker",
                trackers[0],
                "--tracker",
                trackers[2],
                "--comment",
                comment,
                "--piece-size",
                "65536",
            ],
            size: folder_size,
            files: 6,
            private: true,
            trackers: vec![trackers[0], trackers[2]],
        },
    ];
    let mut hashes = Vec::new();
    for case in &cases {
        let torrent = work.path().join(format!("{}.torrent", case.name));
        let shoal_hash = shoal_create(case.path, &torrent, &case.args);
        let lt_hash = ok(lt_info_hash(&torrent));
        assert_eq!(lt_hash, shoal_hash, "{}: libtorrent computes another info-hash", case.name);
        let info = lt_info_verbose(&torrent);
        let one = |key: &str| values(&info, key).first().copied().unwrap_or_default().to_owned();
        assert_eq!(one("v1"), shoal_hash, "{}: {info:?}", case.name);
        assert_eq!(one("total_size"), case.size.to_string(), "{}: {info:?}", case.name);
        assert_eq!(one("num_files"), case.files.to_string(), "{}: {info:?}", case.name);
        assert_eq!(one("private"), if case.private { "True" } else { "False" }, "{}: {info:?}", case.name);
        assert_eq!(values(&info, "tracker"), case.trackers, "{}: {info:?}", case.name);
        if let Some(i) = case.args.iter().position(|a| *a == "--piece-size") {
            assert_eq!(one("piece_length"), case.args[i + 1], "{}: {info:?}", case.name);
        }
        hashes.push(shoal_hash);
    }
    // The flag, the piece size and the content change the info-hash; trackers and comments
    // live outside the info dictionary and do not.
    assert_ne!(hashes[0], hashes[1], "piece size must change the info-hash");
    assert_ne!(hashes[2], hashes[3], "the private flag must change the info-hash");
    assert_eq!(hashes[0], hashes[4], "trackers must not change the info-hash");
    assert_eq!(hashes[0], hashes[5], "a comment must not change the info-hash");
}

/// One Shoal seed capped at `SEED_LIMIT`, and libtorrent and Shoal leechers that know nothing
/// but the torrent (whose only tracker is `shoal tracker`), all started once the seed is ready.
/// Every leecher keeps serving after it completes until all are done.
///
/// Besides every copy being byte-identical, the test shows that the Shoal leechers uploaded:
/// the leechers received at least `leechers * size` bytes, while the seed can have sent at
/// most `SEED_LIMIT * elapsed` and the libtorrent leechers, capped at `LT_UPLOAD_LIMIT` each,
/// at most `LT_UPLOAD_LIMIT * elapsed` each. What is left can only have come from the Shoal
/// leechers. The caps make that remainder large: the seed and the libtorrent leechers together
/// could only have sent everything if the swarm took over 30 s, and it takes about 17 s on a
/// 2-core machine (a busy CPU hardly changes that, since the seed's cap sets the pace).
#[test]
fn mixed_swarm_of_shoal_and_libtorrent_leechers_found_through_shoal_tracker() {
    const SIZE: u64 = 32 * MIB + 999;
    const SEED_LIMIT: u64 = 4 * MIB;
    const LT_UPLOAD_LIMIT: u64 = MIB / 4;
    const LT_LEECHERS: usize = 3;
    const SHOAL_LEECHERS: usize = 2;
    ensure_tools();
    let work = temp_dir();
    let data = work.path().join("data/swarm.bin");
    make_test_file(&data, SIZE, 4);
    let mut tracker = spawn_tracker(2);
    let torrent = work.path().join("swarm.torrent");
    let mut seed = spawn_share(
        &data,
        &torrent,
        &["--tracker", &tracker.url, "--piece-size", "65536", "--upload-limit", &SEED_LIMIT.to_string()],
    );

    let started = Instant::now();
    let mut lt = Vec::new();
    for i in 0..LT_LEECHERS {
        let save = work.path().join(format!("lt-{i}"));
        let leech = spawn_lt_leech(
            &format!("lt leech {i}"),
            &torrent,
            &save,
            &["--then-seed", "--upload-limit", &LT_UPLOAD_LIMIT.to_string()],
        );
        lt.push((leech, save));
    }
    let mut sh = Vec::new();
    for i in 0..SHOAL_LEECHERS {
        let out = work.path().join(format!("shoal-{i}"));
        sh.push((spawn_get(&format!("shoal get {i}"), &torrent, &out, &["--seed"]), out));
    }
    for (get, _) in &sh {
        assert_eq!(get_info_hash(get), seed.info_hash);
    }
    for (leech, _) in &lt {
        ok(leech.wait_for_line("DONE ", TRANSFER_TIMEOUT));
    }
    for (get, _) in &sh {
        ok(get.wait_for_line("complete: ", TRANSFER_TIMEOUT));
    }
    let elapsed = started.elapsed().as_secs_f64();

    for (_, save) in &lt {
        assert_same_tree(&data, save.join("swarm.bin"));
    }
    for (_, out) in &sh {
        assert_same_tree(&data, out.join("swarm.bin"));
    }
    let leechers = (LT_LEECHERS + SHOAL_LEECHERS) as f64;
    let received = leechers * SIZE as f64;
    // Allowance for the limiters' bursts: half a second of the seed, two seconds of each
    // libtorrent leecher.
    let seed_most = SEED_LIMIT as f64 * (elapsed + 0.5);
    let lt_most = LT_LEECHERS as f64 * LT_UPLOAD_LIMIT as f64 * (elapsed + 2.0);
    let from_shoal_leechers = received - seed_most - lt_most;
    eprintln!(
        "mixed swarm: {leechers} leechers done in {elapsed:.1}s; seed sent at most {:.1} MiB, libtorrent \
         leechers at most {:.1} MiB, so Shoal leechers sent at least {:.1} MiB",
        seed_most / MIB as f64,
        lt_most / MIB as f64,
        from_shoal_leechers / MIB as f64
    );
    assert!(
        from_shoal_leechers > 0.0,
        "the swarm took {elapsed:.1}s: too long to show that the Shoal leechers uploaded (the seed and \
         the libtorrent leechers could have sent all {:.1} MiB)",
        received / MIB as f64
    );

    for (mut get, _) in sh {
        ok(get.wait_for_line("seeding on ", Duration::ZERO));
        stop_cleanly(&mut get);
    }
    for (mut leech, _) in lt {
        ok(leech.terminate(STOP_GRACE));
    }
    stop_cleanly(&mut seed.proc);
    stop_cleanly(&mut tracker.proc);
}
