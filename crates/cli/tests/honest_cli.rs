//! The command line tells the truth and keeps the user's things: clap's own usage errors,
//! sizes with suffixes, a bad torrent named with exit code 2, Ctrl-C of `get` exiting 130
//! after saving its progress, `share` never overwriting an existing `.torrent`, and torrent
//! names never reaching the terminal with escape sequences in them.

#[path = "support/shoal.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha1::{Digest, Sha1};
use shoal_proto::Metainfo;
use shoal_proto::metainfo::{CreateContent, CreateSpec, build_torrent};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file, test_bytes, wait_until};
use support::{
    DOWNLOAD, MIB, QUICK, SEED_READY, Seed, assert_input_error, info_hash_hex, resuming, run, shoal, spawn_get,
};

fn parse_torrent(path: &Path) -> Metainfo {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

#[test]
fn r_usage_errors_keep_clap_text_naming_the_missing_argument() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = shoal(["create"]);
    cmd.arg(dir.path());
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--output"), "names the missing argument: {}", out.stderr);
    assert!(out.stderr.contains("Usage: shoal create"), "shows the subcommand's usage: {}", out.stderr);

    let out = run(shoal(["get", "x.torrent", "--seeed"]), QUICK);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--seed"), "suggests the right flag: {}", out.stderr);
}

#[test]
fn sizes_take_suffixes() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("p.bin");
    make_test_file(&data, 600_000, 3);
    let torrent = dir.path().join("p.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent).args(["--piece-size", "256k"]);
    let out = run(cmd, QUICK);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(parse_torrent(&torrent).info.piece_length, 256 * 1024);

    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(dir.path().join("q.torrent")).args(["--piece-size", "3furlongs"]);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("3furlongs"), "{}", out.stderr);
}

#[test]
fn r_add_of_a_bad_torrent_exits_2_and_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let bad = dir.path().join("broken.torrent");
    fs::write(&bad, b"d4:infod4:name1:xee").expect("write");
    // No daemon listens there: the file is refused before the daemon is asked.
    let mut cmd = shoal(["add"]);
    cmd.arg(&bad).args(["--rpc", "http://127.0.0.1:9/jsonrpc"]);
    let out = run(cmd, QUICK);
    assert_input_error(&out, &["broken.torrent", "not a valid torrent"]);

    let mut cmd = shoal(["add"]);
    cmd.arg(dir.path()).args(["--rpc", "http://127.0.0.1:9/jsonrpc"]);
    assert_input_error(&run(cmd, QUICK), &["is not a file"]);
}

#[test]
fn r_ctrl_c_of_get_exits_130_after_saving_resume_data() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/slow.bin");
    let size = 16 * MIB;
    make_test_file(&data, size, 31);
    let torrent = dir.path().join("slow.torrent");
    // 2 MiB/s: about 8 s for the whole file.
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "2M"]);
    let out = dir.path().join("leech");
    let mut first = spawn_get("first", &torrent, &out, &[seed.addr], &[]);
    let resume = out.join(".shoal").join(format!("{}.resume", info_hash_hex(&first)));
    wait_until(DOWNLOAD, Duration::from_millis(20), || resume.is_file())
        .unwrap_or_else(|e| panic!("{}", first.explain(&format!("no resume data saved: {e}"))));
    let sent = Command::new("kill").args(["-INT", &first.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let status = first.wait_exit(QUICK).expect("get stops on SIGINT");
    assert_eq!(status.code(), Some(130), "{}", first.explain("exit code after Ctrl-C"));
    let stderr: Vec<String> = support::log_lines(&first);
    assert_eq!(stderr.len(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr[0].starts_with("shoal: interrupted with "), "{stderr:?}");
    assert!(first.stdout_lines().iter().all(|l| !l.starts_with("complete: ")), "interrupted before completing");

    let mut second = spawn_get("second", &torrent, &out, &[seed.addr], &[]);
    second.wait_success(DOWNLOAD).expect("the second run completes");
    let (have, of) = resuming(&second).expect("the second run reuses what the first verified");
    assert!(have > 0 && have < of, "{have} of {of}");
    assert_same_tree(&data, out.join("slow.bin"));
}

#[test]
fn r_share_reuses_a_matching_torrent_and_keeps_its_trackers() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("photos");
    make_test_file(data.join("a.jpg"), 300_000, 41);
    make_test_file(data.join("b/c.jpg"), 90_000, 42);
    let torrent = dir.path().join("photos.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent).args(["--tracker", "http://127.0.0.1:9/announce"]);
    assert!(run(cmd, QUICK).status.success());
    let before = fs::read(&torrent).expect("read");

    let mut seed = Seed::start("share", &data, &torrent, &[]);
    let line = seed.proc.wait_for_line("torrent: ", QUICK).expect("torrent line");
    assert!(line.contains("existing"), "{line}");
    assert_eq!(fs::read(&torrent).expect("read"), before, "the .torrent is unchanged, tracker and all");
    let magnet = seed.proc.wait_for_line("magnet: ", QUICK).expect("magnet line");
    assert!(magnet.contains("tr=http"), "the magnet carries the tracker: {magnet}");
    assert!(seed.stop().success());
}

#[test]
fn r_share_refuses_to_overwrite_a_torrent_of_other_data() {
    let dir = TempDir::new().expect("temp dir");
    let (one, two) = (dir.path().join("one.bin"), dir.path().join("two.bin"));
    make_test_file(&one, 100_000, 51);
    make_test_file(&two, 100_000, 52);
    let torrent = dir.path().join("t.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&one).arg("-o").arg(&torrent);
    assert!(run(cmd, QUICK).status.success());
    let before = fs::read(&torrent).expect("read");
    let mut cmd = shoal(["share"]);
    cmd.arg(&two).arg("-o").arg(&torrent).args(["--listen", "127.0.0.1:0"]);
    let out = run(cmd, SEED_READY);
    assert_input_error(&out, &["t.torrent", "already exists", "-o"]);
    assert_eq!(fs::read(&torrent).expect("read"), before, "left as it was");

    // Same name and size, other bytes: refused once the check finds the pieces differ.
    let same_name = dir.path().join("other/one.bin");
    make_test_file(&same_name, 100_000, 53);
    let mut cmd = shoal(["share"]);
    cmd.arg(&same_name).arg("-o").arg(&torrent).args(["--listen", "127.0.0.1:0"]);
    let out = run(cmd, SEED_READY);
    assert_input_error(&out, &["t.torrent", "does not match", "pieces verify"]);
    assert_eq!(fs::read(&torrent).expect("read"), before, "left as it was");
}

#[test]
fn r_terminal_escapes_in_a_torrent_name_are_not_printed() {
    let dir = TempDir::new().expect("temp dir");
    let evil = "clear\x1b[2J\x1b]0;owned\x07.bin";
    let content = test_bytes(50_000, 61);
    let piece_length = 16 * 1024;
    let hashes: Vec<[u8; 20]> = content.chunks(piece_length).map(|c| Sha1::digest(c).into()).collect();
    let spec = CreateSpec {
        name: evil.to_owned(),
        piece_length: piece_length as u32,
        content: CreateContent::SingleFile { length: content.len() as u64 },
        trackers: vec![],
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    let torrent = dir.path().join("evil.torrent");
    fs::write(&torrent, build_torrent(&spec, &hashes)).expect("write torrent");
    let seed_dir = dir.path().join("seed");
    fs::create_dir_all(&seed_dir).expect("mkdir");
    fs::write(seed_dir.join(evil), &content).expect("write data");
    // A seed made from the same data: `get` into its folder finds everything verified.
    let mut get: Proc = spawn_get("get", &torrent, &seed_dir, &[], &[]);
    get.wait_success(DOWNLOAD).expect("completes from local data");
    let all = get.output();
    assert!(!all.contains('\x1b') && !all.contains('\x07'), "escape reached the terminal: {all:?}");
    assert!(all.contains("clear?[2J?]0;owned?.bin"), "the name is shown with ? for controls: {all:?}");
}

#[test]
fn r_a_get_with_no_peers_says_what_it_tries_and_gives_up_at_its_timeout() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("w.bin");
    make_test_file(&data, 100_000, 62);
    // A tracker port and a peer port where nothing listens, and a peer that hangs up after
    // our handshake as peers that require protocol encryption do.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let picky = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let picky_addr = picky.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in picky.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            let mut hs = [0u8; 68];
            let _ = std::io::Read::read_exact(&mut conn, &mut hs);
        }
    });
    let torrent = dir.path().join("w.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent).args(["--tracker", &format!("http://{closed_addr}/announce")]);
    assert!(run(cmd, QUICK).status.success());
    let out = dir.path().join("out");
    let mut get = spawn_get("get", &torrent, &out, &[closed_addr, picky_addr], &["--timeout", "6"]);
    // A peer that dials in with neither a BitTorrent handshake nor a protocol-encryption one
    // (96 bytes of key, then more than a pad's worth of bytes without the marker).
    let mut encrypted = std::net::TcpStream::connect(support::listen_addr(&get)).expect("connect");
    std::io::Write::write_all(&mut encrypted, &[0x5a; 96 + 600]).expect("send");
    let status = get.wait_exit(QUICK).expect("get gives up by itself");
    assert_eq!(status.code(), Some(1), "{}", get.explain("--timeout"));
    let stderr = support::log_lines(&get);
    let waiting: Vec<&String> = stderr.iter().filter(|l| l.starts_with("waiting for peers: ")).collect();
    assert!(!waiting.is_empty(), "the wait is not silent: {stderr:?}");
    let w = waiting[0];
    assert!(w.contains(&format!("tracker http://{closed_addr}/announce")), "names the tracker: {w}");
    assert!(w.contains(&format!("peer {closed_addr}:")) && w.contains("refused"), "names the refused peer: {w}");
    assert!(w.contains(&format!("peer {picky_addr}:")) && w.contains("protocol encryption"), "{w}");
    assert!(w.contains("DHT off"), "{w}");
    assert!(w.contains("1 incoming connection(s) did not open with a BitTorrent handshake"), "{w}");
    let last = stderr.last().expect("a final line");
    assert!(last.starts_with("shoal: gave up after 6 s (--timeout)"), "{stderr:?}");

    // A magnet link whose only peer never answers: the same, for the metadata.
    let hash = Metainfo::from_bytes(&fs::read(&torrent).expect("read")).expect("parse").info_hash;
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={closed_addr}");
    let mut cmd = shoal(["get"]);
    cmd.arg(&link).arg("-o").arg(&out).args(["--listen", "127.0.0.1:0", "--timeout", "6"]);
    let got = run(cmd, QUICK);
    assert_eq!(got.status.code(), Some(1), "{got:?}");
    assert!(got.stderr.lines().any(|l| l.starts_with("waiting for metadata: ")), "{got:?}");
    assert!(got.stderr.contains("gave up after 6 s (--timeout) without the metadata"), "{got:?}");
}
