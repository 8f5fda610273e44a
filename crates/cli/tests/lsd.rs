//! Local Service Discovery (BEP 14) end to end, inside two network namespaces the test creates
//! (joined by a veth link; multicast never leaves them): two Shoal nodes find each other for a
//! torrent with no tracker, no DHT and no peer address, and Shoal finds and is found by
//! libtorrent's LSD. Every download is compared byte for byte with the original.

#[path = "support/shoal.rs"]
mod support;

use std::path::Path;
use std::time::Instant;

use shoal_testkit::netns::NetPair;
use shoal_testkit::{Proc, TempDir, assert_same_tree, ensure_tools, make_test_file, tools::repo_root};
use support::{DOWNLOAD, MIB, QUICK, complete_line, log_lines};

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// `shoal share DATA -o TORRENT` in namespace `side`, LSD on, no DHT; waits for `ready:`.
fn share_in(pair: &NetPair, side: usize, data: &Path, torrent: &Path) -> Proc {
    let mut cmd = pair.command(side, SHOAL);
    cmd.arg("share").arg(data).arg("-o").arg(torrent);
    cmd.args(["--listen", &format!("{}:0", pair.addrs[side]), "--no-dht"]);
    cmd.env("SHOAL_LOG", "debug");
    let proc = Proc::spawn(format!("share@{side}"), cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    proc
}

/// `shoal get TORRENT -o OUT --no-trackers` in namespace `side`, LSD on, no DHT, no peers.
fn get_in(pair: &NetPair, side: usize, torrent: &Path, out: &Path) -> Proc {
    let mut cmd = pair.command(side, SHOAL);
    cmd.arg("get").arg(torrent).arg("-o").arg(out);
    cmd.args(["--listen", &format!("{}:0", pair.addrs[side]), "--no-dht", "--no-trackers"]);
    cmd.env("SHOAL_LOG", "debug");
    Proc::spawn(format!("get@{side}"), cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `lt_client.py MODE --torrent T --save DIR` in namespace `side` with LSD on.
fn libtorrent_in(pair: &NetPair, side: usize, mode: &str, torrent: &Path, save: &Path) -> Proc {
    let mut cmd = pair.command(side, "python3");
    cmd.arg(repo_root().join("drivers/lt_client.py")).arg(mode);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save);
    cmd.args(["--bind", &pair.addrs[side].to_string(), "--lsd-in-netns"]);
    Proc::spawn(format!("libtorrent-{mode}@{side}"), cmd).unwrap_or_else(|e| panic!("{e}"))
}

fn has_log(proc: &Proc, needle: &str) -> bool {
    log_lines(proc).iter().any(|l| l.contains(needle))
}

#[test]
fn two_shoal_nodes_find_each_other_on_the_local_network() {
    let pair = NetPair::create("lsd", 71).unwrap_or_else(|e| panic!("network namespaces: {e}"));
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/local.bin");
    make_test_file(&data, 2 * MIB + 99, 71);
    let torrent = dir.path().join("local.torrent");
    let seed = share_in(&pair, 0, &data, &torrent);

    let started = Instant::now();
    let out = dir.path().join("leech");
    let mut leech = get_in(&pair, 1, &torrent, &out);
    complete_line(&leech, DOWNLOAD);
    let took = started.elapsed();
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("local.bin"));
    // Either side may hear the other's announce first and dial.
    assert!(
        has_log(&leech, "local peer discovered") || has_log(&seed, "local peer discovered"),
        "{}",
        leech.explain("the peers were found through LSD")
    );
    println!("found the seed and downloaded through LSD in {took:?}");
}

#[test]
fn shoal_hears_libtorrent_and_serves_it() {
    ensure_tools();
    let pair = NetPair::create("lsdlt", 72).unwrap_or_else(|e| panic!("network namespaces: {e}"));
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/sh.bin");
    make_test_file(&data, MIB + 7, 73);
    let torrent = dir.path().join("sh.torrent");
    // Shoal announces when it starts, before libtorrent listens; libtorrent's announce at its
    // own start is what brings them together.
    let seed = share_in(&pair, 0, &data, &torrent);
    let save = dir.path().join("leech");
    let mut leech = libtorrent_in(&pair, 1, "leech", &torrent, &save);
    leech.wait_for_line("DONE ", DOWNLOAD).unwrap_or_else(|e| panic!("{e}"));
    assert_same_tree(&data, save.join("sh.bin"));
    let lt_addr = format!("peer={}:", pair.addrs[1]);
    assert!(
        log_lines(&seed).iter().any(|l| l.contains("local peer discovered") && l.contains(&lt_addr)),
        "{}",
        seed.explain("Shoal heard libtorrent's LSD announce")
    );
    let _ = leech.terminate(QUICK);
}

#[test]
fn libtorrent_hears_shoal_and_serves_it() {
    ensure_tools();
    let pair = NetPair::create("lsdsh", 73).unwrap_or_else(|e| panic!("network namespaces: {e}"));
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/lt.bin");
    make_test_file(&data, MIB + 1, 72);
    let torrent = dir.path().join("lt.torrent");
    shoal_testkit::lt_create(&data, &torrent, &[]).unwrap_or_else(|e| panic!("{e}"));
    // libtorrent announces when it starts, before Shoal listens; Shoal's announce at its own
    // start is what brings them together.
    let seed = libtorrent_in(&pair, 0, "seed", &torrent, &dir.path().join("seed"));
    seed.wait_for_line("READY ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("leech");
    let mut leech = get_in(&pair, 1, &torrent, &out);
    complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("lt.bin"));
    let shoal_addr = pair.addrs[1].to_string();
    assert!(
        seed.stdout_lines().iter().any(|l| l.starts_with("LSD PEER") && l.contains(&shoal_addr)),
        "{}",
        seed.explain("libtorrent heard Shoal's LSD announce")
    );
}

/// `shoal ARGS` run to its end inside namespace `side`; its stdout.
fn shoal_in(pair: &NetPair, side: usize, args: &[&str]) -> String {
    let mut cmd = pair.command(side, SHOAL);
    cmd.args(args);
    let out = shoal_testkit::run_captured(cmd, QUICK).and_then(|c| c.ok()).unwrap_or_else(|e| panic!("{e}"));
    out.stdout
}

#[test]
fn two_daemons_become_search_neighbours_on_the_local_network() {
    let pair = NetPair::create("lsdsrch", 74).unwrap_or_else(|e| panic!("network namespaces: {e}"));
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/harbour-survey.bin");
    make_test_file(&data, MIB, 74);
    let torrent = dir.path().join("survey.torrent");
    let created = std::process::Command::new(SHOAL).arg("create").arg(&data).arg("-o").arg(&torrent).arg("-q").status();
    assert!(created.is_ok_and(|s| s.success()));
    // A daemon in each namespace, LSD on, no DHT, no search peer given.
    let daemons: Vec<Proc> = (0..2)
        .map(|side| {
            let mut cmd = pair.command(side, SHOAL);
            cmd.arg("daemon").arg("--data-dir").arg(dir.path().join(format!("home{side}")));
            cmd.args(["--listen", &format!("{}:0", pair.addrs[side]), "--rpc-listen", "127.0.0.1:9091", "--no-dht"]);
            let proc = Proc::spawn(format!("daemon@{side}"), cmd).unwrap_or_else(|e| panic!("{e}"));
            proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
            proc
        })
        .collect();
    let seed_dir = data.parent().and_then(Path::to_str).expect("utf-8");
    shoal_in(&pair, 0, &["add", torrent.to_str().expect("utf-8"), "-o", seed_dir, "--rpc", "127.0.0.1:9091"]);
    let deadline = Instant::now() + DOWNLOAD;
    let found = loop {
        let out = shoal_in(&pair, 1, &["search", "harbour", "--json", "--rpc", "127.0.0.1:9091"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "no result through a neighbour found by LSD: {out}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(found[0]["name"], "harbour-survey.bin", "{found}");
    assert_eq!(found[0]["source"], "peers", "{found}");
    let holder = format!("x.pe={}:", pair.addrs[0]);
    assert!(found[0]["magnet"].as_str().is_some_and(|m| m.contains(&holder)), "{found}");
    drop(daemons);
}
