//! End-to-end tests of the `shoal` binary on loopback: Shoal seeds to Shoal leechers (single
//! file, a folder with nested folders, an empty file and odd sizes, two leechers at once),
//! `get` into a folder that already holds all or part of the data, `get --seed` serving after
//! the original seed is gone, and the options of `create` and `share`.
//!
//! Every download is compared byte for byte with the original.

#[path = "support/shoal.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use shoal_proto::Metainfo;
use shoal_testkit::{TempDir, assert_same_tree, make_test_file, test_bytes};
use support::{
    DOWNLOAD, MIB, QUICK, Seed, assert_input_error, complete_line, get_cmd, list_tree, listen_addr, resuming, run,
    shoal, spawn_get,
};

fn parse_torrent(path: &Path) -> Metainfo {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// A folder `root/set` with nested folders, an empty file and sizes that are not multiples of
/// the piece or block size. Returns the folder.
fn make_folder(root: &Path) -> std::path::PathBuf {
    let set = root.join("set");
    make_test_file(set.join("a.bin"), 100_000, 11);
    make_test_file(set.join("sub/b.bin"), 70_001, 12);
    make_test_file(set.join("sub/deeper/still/c.bin"), 200_003, 13);
    make_test_file(set.join("d.bin"), 50_000, 14);
    make_test_file(set.join("empty.dat"), 0, 15);
    make_test_file(set.join("sub/one-byte"), 1, 16);
    make_test_file(set.join("z/e.bin"), 16_385, 17);
    set
}

#[test]
fn single_file_seed_to_leecher() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/payload.bin");
    // Odd size: neither a multiple of the 16 KiB block nor of the piece size.
    let size = 5 * MIB + 12_345;
    make_test_file(&data, size, 1);
    let torrent = dir.path().join("payload.torrent");
    let seed = Seed::start("seed", &data, &torrent, &[]);
    let torrent_line = seed.proc.wait_for_line("torrent: ", QUICK).expect("torrent line");
    assert_eq!(torrent_line, format!("torrent: {}", torrent.display()));
    let magnet = seed.proc.wait_for_line("magnet: ", QUICK).expect("magnet line");
    let meta = parse_torrent(&torrent);
    assert!(magnet.starts_with("magnet:") && magnet.contains(&meta.info_hash.to_hex()), "{magnet}");
    seed.proc.wait_for_line("seeding payload.bin on 127.0.0.1:", QUICK).expect("seeding line");

    let out = dir.path().join("leech");
    let mut leech = spawn_get("leech", &torrent, &out, &[seed.addr], &[]);
    let done = complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("payload.bin"));
    assert!(resuming(&leech).is_none(), "nothing to resume in an empty folder");
    assert!((done.verified - size as f64).abs() < 0.01 * size as f64, "{done:?}");
    assert!((done.fetched - size as f64).abs() < 0.01 * size as f64, "{done:?}");
    let resume = std::path::PathBuf::from(format!("{}.resume", meta.info_hash.to_hex()));
    assert_eq!(list_tree(&out.join(".shoal")), vec![resume], "resume data lives in DIR/.shoal/<hex>.resume");
    eprintln!("single file, 5 MiB: {:.2?}", started.elapsed());
}

#[test]
fn folder_with_nested_dirs_empty_file_and_odd_sizes() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let set = make_folder(&dir.path().join("seed"));
    let torrent = dir.path().join("set.torrent");
    let seed = Seed::start("seed", &set, &torrent, &["--piece-size", "16384"]);
    let meta = parse_torrent(&torrent);
    assert!(meta.info.multi_file);
    assert_eq!(meta.info.files.len(), 7, "{:?}", meta.info.files);

    let out = dir.path().join("leech");
    let mut leech = spawn_get("leech", &torrent, &out, &[seed.addr], &[]);
    leech.wait_success(DOWNLOAD).expect("get exits 0");
    leech.wait_for_line("complete: set, ", QUICK).expect("complete line");
    // Same files (the empty one included), same bytes, nothing else.
    assert_same_tree(&set, out.join("set"));
    assert_eq!(fs::metadata(out.join("set/empty.dat")).expect("the empty file exists").len(), 0);
    eprintln!("folder: {:.2?}", started.elapsed());
}

#[test]
fn two_leechers_and_a_seed() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/shared.bin");
    make_test_file(&data, 12 * MIB + 777, 2);
    let torrent = dir.path().join("shared.torrent");
    // Capped, so that both leechers are downloading at the same time.
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "8M"]);

    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = spawn_get("leech-a", &torrent, &out_a, &[seed.addr], &[]);
    let a_addr = listen_addr(&a);
    let mut b = spawn_get("leech-b", &torrent, &out_b, &[seed.addr, a_addr], &[]);
    a.wait_success(DOWNLOAD).expect("leecher A completes");
    b.wait_success(DOWNLOAD).expect("leecher B completes");
    for (p, out) in [(&a, &out_a), (&b, &out_b)] {
        p.wait_for_line("complete: shared.bin, ", QUICK).expect("complete line");
        assert_same_tree(&data, out.join("shared.bin"));
    }
    eprintln!("two leechers: {:.2?}", started.elapsed());
}

#[test]
fn get_into_folder_holding_all_data_needs_no_peer() {
    let dir = TempDir::new().expect("temp dir");
    let set = make_folder(&dir.path().join("seed"));
    let torrent = dir.path().join("set.torrent");
    let out = create(&set, &torrent, &["--piece-size", "16384"]);
    assert!(out.status.success(), "{out:?}");
    let pieces = parse_torrent(&torrent).info.layout.piece_count();

    // The data is already where the download goes; no peer is named and the torrent has no
    // trackers, so everything must come from the check of local data.
    let target = dir.path().join("target");
    copy_tree(&set, &target.join("set"));
    let started = Instant::now();
    let mut get = spawn_get("get", &torrent, &target, &[], &[]);
    let done = complete_line(&get, QUICK);
    get.wait_success(QUICK).expect("get exits 0 without any peer");
    assert_eq!(resuming(&get), Some((pieces, pieces)), "it says it reused every piece");
    assert_eq!(done.fetched, 0.0, "{done:?}");
    assert_same_tree(&set, target.join("set"));
    eprintln!("check of local data: {:.2?}", started.elapsed());
}

#[test]
fn get_into_folder_with_partial_and_corrupt_data_completes_from_seed() {
    let dir = TempDir::new().expect("temp dir");
    let set = make_folder(&dir.path().join("seed"));
    let torrent = dir.path().join("set.torrent");
    let seed = Seed::start("seed", &set, &torrent, &["--piece-size", "16384"]);
    let meta = parse_torrent(&torrent);
    let pieces = meta.info.layout.piece_count();
    let total = meta.info.layout.total_length() as f64;

    let target = dir.path().join("target");
    let local = target.join("set");
    copy_tree(&set, &local);
    // a.bin stays intact; b.bin loses its tail; c.bin has a few bytes flipped in its middle;
    // d.bin is missing; the empty file is missing too.
    truncate(&local.join("sub/b.bin"), 30_000);
    let mut c = fs::read(local.join("sub/deeper/still/c.bin")).expect("read c");
    for b in &mut c[120_000..120_010] {
        *b ^= 0x5a;
    }
    fs::write(local.join("sub/deeper/still/c.bin"), &c).expect("corrupt c");
    fs::remove_file(local.join("d.bin")).expect("remove d");
    fs::remove_file(local.join("empty.dat")).expect("remove empty");

    let mut get = spawn_get("get", &torrent, &target, &[seed.addr], &[]);
    let done = complete_line(&get, DOWNLOAD);
    get.wait_success(QUICK).expect("get exits 0");
    let (have, of) = resuming(&get).expect("it says it reused the intact pieces");
    assert_eq!(of, pieces);
    assert!(have > 0 && have < pieces, "reused {have} of {pieces} pieces");
    assert!(done.fetched > 0.0 && done.fetched < total, "fetched {} of {total} bytes", done.fetched);
    assert_same_tree(&set, &local);
}

#[test]
fn get_refuses_a_local_file_longer_than_the_torrent_says_and_leaves_it_alone() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/long.bin");
    make_test_file(&data, 100_000, 3);
    let torrent = dir.path().join("long.torrent");
    let out = create(&data, &torrent, &[]);
    assert!(out.status.success(), "{out:?}");
    let target = dir.path().join("target");
    let local = target.join("long.bin");
    make_test_file(&local, 150_000, 3);

    let out = run(get_cmd(&torrent, &target, &[], &[]), QUICK);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
    assert!(out.stderr.starts_with("shoal: ") && out.stderr.contains("long.bin"), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert_eq!(fs::read(&local).expect("read"), test_bytes(150_000, 3), "Shoal does not truncate user data");
}

#[test]
fn get_seed_keeps_serving_after_the_original_seed_stops() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/relay.bin");
    make_test_file(&data, 6 * MIB + 3, 4);
    let torrent = dir.path().join("relay.torrent");
    let mut seed = Seed::start("seed", &data, &torrent, &[]);

    let out_a = dir.path().join("a");
    let mut a = spawn_get("get-seed", &torrent, &out_a, &[seed.addr], &["--seed"]);
    let a_addr = listen_addr(&a);
    a.wait_for_line("complete: relay.bin, ", DOWNLOAD).expect("A completes");
    a.wait_for_line("seeding on ", QUICK).expect("A says it keeps seeding");
    assert_same_tree(&data, out_a.join("relay.bin"));
    assert!(seed.stop().success(), "share exits 0 on SIGTERM");
    // Its totals: A took the whole file from it.
    let line = seed.proc.wait_for_line("transferred: ", QUICK).expect("`share` prints its totals");
    let bytes: Vec<u64> =
        line.split('(').skip(1).filter_map(|p| p.split(' ').next().and_then(|n| n.parse().ok())).collect();
    assert!(bytes.len() == 2 && bytes[0] == 0 && bytes[1] >= 6 * MIB + 3, "{line}");

    // Only A is left to download from.
    let out_b = dir.path().join("b");
    let mut b = spawn_get("leech-b", &torrent, &out_b, &[a_addr], &[]);
    b.wait_success(DOWNLOAD).expect("B downloads from the `get --seed` node");
    assert_same_tree(&data, out_b.join("relay.bin"));
    assert_eq!(a.try_status().expect("poll"), None, "`get --seed` is still running");
    let status = a.terminate(support::STOP_GRACE).expect("`get --seed` stops on SIGTERM");
    assert!(status.success(), "`get --seed` exits 0 on SIGTERM: {status}");
    // Its totals: it downloaded the file once and uploaded it to B (at least once).
    let line = a.wait_for_line("transferred: ", QUICK).expect("`get --seed` prints its totals");
    let bytes: Vec<u64> =
        line.split('(').skip(1).filter_map(|p| p.split(' ').next().and_then(|n| n.parse().ok())).collect();
    let size = 6 * MIB + 3;
    assert!(bytes.len() == 2 && bytes[0] >= size && bytes[1] >= size, "{line}");
    eprintln!("get --seed relay: {:.2?}", started.elapsed());
}

#[test]
fn create_options_end_up_in_a_parseable_torrent() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("payload.bin");
    let size = 300_001usize;
    make_test_file(&data, size as u64, 5);
    let torrent = dir.path().join("opts.torrent");
    let (t1, t2) = ("http://127.0.0.1:1/announce", "udp://127.0.0.1:2/announce");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent);
    cmd.args(["--piece-size", "32768", "--private", "--comment", "made by a test, with ünïcode", "--tracker", t1]);
    cmd.args(["--tracker", t2]);
    let out = run(cmd, QUICK);
    assert!(out.status.success(), "{out:?}");
    let meta = parse_torrent(&torrent);
    let line = out.stdout.lines().find(|l| l.starts_with("created ")).expect("created line");
    assert!(line.contains(&torrent.display().to_string()), "{line}");
    assert!(line.ends_with(&format!("info-hash {}", meta.info_hash.to_hex())), "{line}");

    assert_eq!(meta.info.name, "payload.bin");
    assert!(!meta.info.multi_file);
    assert_eq!(meta.info.piece_length, 32_768);
    assert!(meta.info.private);
    assert_eq!(meta.comment.as_deref(), Some("made by a test, with ünïcode"));
    assert_eq!(meta.announce.as_deref(), Some(t1));
    assert_eq!(meta.announce_list, vec![vec![t1.to_owned()], vec![t2.to_owned()]], "one tier per --tracker");
    assert!(meta.created_by.as_deref().is_some_and(|c| c.starts_with("Shoal")), "{:?}", meta.created_by);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!(meta.creation_date.is_some_and(|d| (d - now).abs() < 3600), "{:?}", meta.creation_date);
    assert_eq!(meta.info.total_length(), size as u64);
    let content = test_bytes(size, 5);
    let expected: Vec<[u8; 20]> = content.chunks(32_768).map(|c| Sha1::digest(c).into()).collect();
    assert_eq!(meta.info.pieces, expected, "piece hashes are the SHA-1s of the content");

    // Without options: public, no comment, no trackers, a power-of-two piece size.
    let plain = dir.path().join("plain.torrent");
    let out = create(&data, &plain, &[]);
    assert!(out.status.success(), "{out:?}");
    let meta = parse_torrent(&plain);
    assert!(!meta.info.private && meta.comment.is_none() && meta.announce_list.is_empty() && meta.announce.is_none());
    assert!(meta.info.piece_length.is_power_of_two() && meta.info.piece_length >= 16_384, "{}", meta.info.piece_length);
}

#[test]
fn create_folder_lists_every_file_in_a_stable_order() {
    let dir = TempDir::new().expect("temp dir");
    let set = make_folder(dir.path());
    let torrent = dir.path().join("set.torrent");
    let out = create(&set, &torrent, &[]);
    assert!(out.status.success(), "{out:?}");
    let meta = parse_torrent(&torrent);
    assert!(meta.info.multi_file);
    assert_eq!(meta.info.name, "set");
    let files: Vec<(String, u64)> = meta.info.files.iter().map(|f| (f.path.join("/"), f.length)).collect();
    let expected = [
        ("a.bin", 100_000),
        ("d.bin", 50_000),
        ("empty.dat", 0),
        ("sub/b.bin", 70_001),
        ("sub/deeper/still/c.bin", 200_003),
        ("sub/one-byte", 1),
        ("z/e.bin", 16_385),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(files, expected, "files in byte order of their names, depth first");
}

#[test]
fn create_piece_size_must_be_a_power_of_two_in_range() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("p.bin");
    make_test_file(&data, 70_000, 6);
    for bad in ["20000", "8192", "0", "134217728", "49152"] {
        let torrent = dir.path().join(format!("bad-{bad}.torrent"));
        let out = create(&data, &torrent, &["--piece-size", bad]);
        assert_input_error(&out, &["--piece-size", bad]);
        assert!(!torrent.exists(), "no torrent is written for --piece-size {bad}");
    }
    for good in [16_384u32, 65_536, 67_108_864] {
        let torrent = dir.path().join(format!("good-{good}.torrent"));
        let out = create(&data, &torrent, &["--piece-size", &good.to_string()]);
        assert!(out.status.success(), "--piece-size {good}: {out:?}");
        assert_eq!(parse_torrent(&torrent).info.piece_length, good);
    }
}

#[test]
fn create_refuses_a_tracker_that_is_not_a_url() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("p.bin");
    make_test_file(&data, 1000, 7);
    let torrent = dir.path().join("t.torrent");
    let out = create(&data, &torrent, &["--tracker", "ftp://example.invalid/x"]);
    assert_input_error(&out, &["--tracker", "ftp://example.invalid/x"]);
    assert!(!torrent.exists());
}

#[test]
fn create_refuses_a_missing_path() {
    let dir = TempDir::new().expect("temp dir");
    let torrent = dir.path().join("t.torrent");
    let missing = dir.path().join("no-such-thing");
    let out = create(&missing, &torrent, &[]);
    assert!(!torrent.exists());
    assert_input_error(&out, &["no-such-thing"]);
}

#[test]
fn create_refuses_a_folder_without_files() {
    let dir = TempDir::new().expect("temp dir");
    let torrent = dir.path().join("t.torrent");
    let empty = dir.path().join("empty-folder");
    fs::create_dir_all(empty.join("only/empty/folders")).expect("mkdir");
    let out = create(&empty, &torrent, &[]);
    assert_input_error(&out, &["empty-folder"]);
    assert!(!torrent.exists());
}

#[test]
fn share_with_output_and_two_paths_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
    make_test_file(&a, 1000, 8);
    make_test_file(&b, 1000, 9);
    let torrent = dir.path().join("both.torrent");
    let mut cmd = shoal(["share"]);
    cmd.arg(&a).arg(&b).arg("-o").arg(&torrent).args(["--listen", "127.0.0.1:0"]);
    let started = Instant::now();
    let out = run(cmd, QUICK);
    assert_input_error(&out, &["-o"]);
    assert!(started.elapsed() < Duration::from_secs(20), "refused at once, not after seeding");
    let mut expected: Vec<std::path::PathBuf> = vec!["a.bin".into(), "b.bin".into()];
    expected.sort();
    assert_eq!(list_tree(dir.path()), expected, "no .torrent file was written");
}

/// Runs `shoal create PATH -o OUT EXTRA...`.
fn create(path: &Path, out: &Path, extra: &[&str]) -> shoal_testkit::Captured {
    let mut cmd = shoal(["create"]);
    cmd.arg(path).arg("-o").arg(out).args(extra);
    run(cmd, QUICK)
}

/// Copies the folder `from` to `to` (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(len)).expect("truncate");
}
