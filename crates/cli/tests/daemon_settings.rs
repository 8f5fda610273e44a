//! What the daemon keeps and what its flags say across restarts: flags override settings
//! changed over RPC (which override the config file), `session.get` reports the port it really
//! listens on, the peers a magnet link named (`x.pe`) or `shoal add --peer` gave are dialled
//! again after a restart, and the controls of `shoal set`, `move` and `free-space` work from
//! the command line.

#[path = "support/shoal.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use shoal_testkit::{Proc, TempDir, assert_same_tree, free_port, make_test_file, wait_until};
use support::{DOWNLOAD, MIB, QUICK, Seed, shoal_raw};

fn start_daemon(data: &Path, rpc_port: u16, extra: &[&str]) -> Proc {
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).arg("--data-dir").arg(data).args(extra);
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    let proc = Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    proc
}

/// One JSON-RPC call over std sockets; its `result` (an `error` fails the test).
fn call(port: u16, method: &str, params: Value) -> Value {
    let (v, _) = support::jsonrpc_call(port, method, params).unwrap_or_else(|| panic!("{method}: no daemon"));
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

#[test]
fn r_flags_override_settings_changed_over_rpc_and_the_real_port_is_reported() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("state");
    let port = free_port();
    let mut daemon = start_daemon(&data, port, &[]);
    let set = call(
        port,
        "session.set",
        json!({"upload_limit": 1000, "download_dir": dir.path().join("rpc-dir"), "max_connections": 50}),
    );
    assert_eq!(set["upload_limit"], 1000);
    assert!(daemon.terminate(QUICK).expect("stops").success());

    let peer_port = free_port();
    let listen = format!("127.0.0.1:{peer_port}");
    let flag_dir = dir.path().join("flag-dir");
    let mut daemon = start_daemon(
        &data,
        port,
        &[
            "--upload-limit",
            "5k",
            "--download-dir",
            flag_dir.to_str().expect("path"),
            "--listen",
            &listen,
            "--max-connections",
            "321",
            "--max-peers",
            "123",
        ],
    );
    let got = call(port, "session.get", json!({}));
    assert_eq!(got["upload_limit"], 5 * 1024, "--upload-limit wins: {got}");
    assert_eq!(got["download_dir"], flag_dir.display().to_string(), "--download-dir wins: {got}");
    assert_eq!(got["listen_port"], peer_port, "the port it listens on: {got}");
    assert_eq!(got["max_connections"], 321, "--max-connections wins: {got}");
    assert_eq!(got["max_connections_per_torrent"], 123, "--max-peers wins: {got}");
    assert!(daemon.terminate(QUICK).expect("stops").success());

    // Without flags, the setting changed over RPC is back.
    let mut daemon = start_daemon(&data, port, &[]);
    let got = call(port, "session.get", json!({}));
    assert_eq!(got["upload_limit"], 1000, "{got}");
    assert_eq!(got["max_connections"], 50, "{got}");
    assert_eq!(got["download_dir"], dir.path().join("rpc-dir").display().to_string(), "{got}");
    assert!(daemon.terminate(QUICK).expect("stops").success());
}

#[test]
fn r_a_magnets_peers_are_dialled_again_after_a_restart() {
    restart_mid_download(|seed, _torrent, magnet, out, port| {
        let link = format!("{magnet}&x.pe={seed}");
        let added = call(port, "torrent.add", json!({"magnet": link, "download_dir": out.display().to_string()}));
        assert_eq!(added["id"], 1);
    });
}

#[test]
fn r_peers_given_to_add_are_dialled_again_after_a_restart() {
    restart_mid_download(|seed, torrent, _magnet, out, port| {
        let mut cmd = shoal_raw(["add", "--rpc", &format!("127.0.0.1:{port}"), "--peer", &seed.to_string()]);
        cmd.arg(torrent).arg("-o").arg(out);
        let added = support::run(cmd, QUICK);
        assert!(added.status.success() && added.stdout.contains("added: 1"), "{added:?}");
    });
}

/// A seed at 1 MiB/s of 8 MiB, with no tracker and no DHT; `add(seed address, its .torrent,
/// its magnet link, download folder, RPC port)` gives the torrent to a daemon, which is killed
/// part-way and started again: it completes only if it dials the seed again by itself.
fn restart_mid_download(add: impl Fn(std::net::SocketAddr, &Path, &str, &Path, u16)) {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/m.bin");
    make_test_file(&data, 8 * MIB, 77);
    let torrent = dir.path().join("m.torrent");
    // 1 MiB/s: eight seconds to download, time to restart the daemon in the middle.
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "1M"]);
    let magnet = seed.proc.wait_for_line("magnet: ", QUICK).expect("magnet line");
    let magnet = magnet.trim_start_matches("magnet: ").trim().to_owned();
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    add(seed.addr, &torrent, &magnet, &out, port);
    let progress = |port| -> (String, f64) {
        let t = &call(port, "torrent.get", json!({"ids": [1]}))[0];
        (t["state"].as_str().unwrap_or("?").to_owned(), t["progress"].as_f64().unwrap_or(0.0))
    };
    wait_until(DOWNLOAD, Duration::from_millis(50), || {
        let (state, p) = progress(port);
        state == "downloading" && p > 0.05
    })
    .unwrap_or_else(|e| panic!("{}", daemon.explain(&format!("never downloading: {e}"))));
    let killed = Command::new("kill").args(["-KILL", &daemon.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    daemon.wait_exit(QUICK).expect("died");

    let mut daemon = start_daemon(&state, port, &[]);
    wait_until(DOWNLOAD, Duration::from_millis(50), || progress(port).0 == "seeding")
        .unwrap_or_else(|e| panic!("{}", daemon.explain(&format!("never completed after the restart: {e}"))));
    assert_same_tree(&data, out.join("m.bin"));
    assert!(daemon.terminate(QUICK).expect("stops").success());
}

/// A daemon, and a two-file folder `data/s` (300,000 and 200,000 bytes of content
/// `seed`, `seed + 1`) with its torrent `s.torrent`, all in `dir`. Returns the daemon, its RPC
/// port, and the torrent's path.
fn daemon_and_torrent(dir: &Path, seed: u64) -> (Proc, u16, std::path::PathBuf) {
    let data = dir.join("data/s");
    make_test_file(data.join("a.bin"), 300_000, seed);
    make_test_file(data.join("b.bin"), 200_000, seed + 1);
    let torrent = dir.join("s.torrent");
    let mut cmd = shoal_raw(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent);
    assert!(support::run(cmd, QUICK).status.success());
    let port = free_port();
    (start_daemon(&dir.join("state"), port, &[]), port, torrent)
}

/// Runs `shoal ARGS --rpc 127.0.0.1:PORT`.
fn remote(port: u16, args: &[&str]) -> shoal_testkit::Captured {
    let mut cmd = shoal_raw(args);
    cmd.args(["--rpc", &format!("127.0.0.1:{port}")]);
    support::run(cmd, QUICK)
}

#[test]
fn set_verify_and_reannounce_from_the_command_line() {
    let dir = TempDir::new().expect("temp dir");
    let (mut daemon, port, torrent) = daemon_and_torrent(dir.path(), 78);
    let shoal = |args: &[&str]| remote(port, args);
    let folder = dir.path().join("data").display().to_string();
    assert!(shoal(&["add", torrent.to_str().expect("path"), "-o", &folder]).status.success());
    wait_until(QUICK, Duration::from_millis(20), || {
        call(port, "torrent.get", json!({"ids": [1]}))[0]["state"] == "seeding"
    })
    .expect("seeding");

    let out = shoal(&["set", "1", "--upload-limit", "1M", "--max-peers", "5", "--skip", "0", "--high", "1"]);
    assert!(out.status.success(), "{out:?}");
    let t = &call(port, "torrent.get", json!({"ids": [1]}))[0];
    assert_eq!((t["upload_limit"].as_u64(), t["max_connections"].as_u64()), (Some(1 << 20), Some(5)), "{t}");
    assert_eq!((t["files"][0]["priority"].as_str(), t["files"][1]["priority"].as_str()), (Some("skip"), Some("high")));
    let out = shoal(&["set", "1", "--upload-limit", "none", "--max-peers", "default"]);
    assert!(out.status.success(), "{out:?}");
    let t = &call(port, "torrent.get", json!({"ids": [1]}))[0];
    assert!(t["upload_limit"].is_null() && t["max_connections"].is_null(), "{t}");

    let out =
        shoal(&["set", "--global", "--download-limit", "2M", "--seed-ratio", "1.5", "--max-peers-per-torrent", "30"]);
    assert!(out.status.success(), "{out:?}");
    let s = call(port, "session.get", json!({}));
    assert_eq!(s["download_limit"], 2 << 20);
    assert_eq!(
        (s["seed_ratio_limit"].as_f64(), s["max_connections_per_torrent"].as_u64()),
        (Some(1.5), Some(30)),
        "{s}"
    );

    let out = shoal(&["set", "1"]);
    assert_eq!(out.status.code(), Some(2), "nothing to change: {out:?}");
    assert!(out.stderr.contains("nothing to change"), "{out:?}");
    let out = shoal(&["set", "1", "--global", "--upload-limit", "1k"]);
    assert_eq!(out.status.code(), Some(2), "ids and --global conflict: {out:?}");

    let out = shoal(&["verify", "1"]);
    assert!(out.status.success() && out.stdout.contains("checking: 1"), "{out:?}");
    wait_until(QUICK, Duration::from_millis(20), || {
        call(port, "torrent.get", json!({"ids": [1]}))[0]["state"] == "seeding"
    })
    .expect("seeding again after the check");
    // The torrent has no tracker: nothing is announced, and the answer says so.
    let out = shoal(&["reannounce", "1"]);
    assert!(out.status.success() && out.stdout.contains("announcing: none of them"), "{out:?}");
    let out = shoal(&["status", "1"]);
    // Checked from disk, where the skipped file's data is too.
    assert!(out.stdout.contains("a.bin (292.97 KiB, 100.0% done, skip)"), "per-file progress: {out:?}");
    assert!(out.stdout.contains("b.bin (195.31 KiB, 100.0% done, high)"), "{out:?}");
    assert!(out.stdout.contains("seed goal: ratio the daemon's, time the daemon's"), "{out:?}");
    let out = shoal(&["verify", "7"]);
    assert_eq!(out.status.code(), Some(2), "an unknown id is bad input: {out:?}");
    assert!(daemon.terminate(QUICK).expect("stops").success());
}

#[test]
fn labels_goals_order_move_and_free_space_from_the_command_line() {
    let dir = TempDir::new().expect("temp dir");
    let (mut daemon, port, torrent) = daemon_and_torrent(dir.path(), 80);
    let data = dir.path().join("data/s");
    let shoal = |args: &[&str]| remote(port, args);
    let folder = dir.path().join("data").display().to_string();
    let added = shoal(&["add", torrent.to_str().expect("path"), "-o", &folder, "--labels", "tv", "--sequential"]);
    assert!(added.status.success(), "{added:?}");
    let get = || call(port, "torrent.get", json!({"ids": [1]}))[0].clone();
    wait_until(QUICK, Duration::from_millis(20), || get()["state"] == "seeding").expect("seeding");
    assert_eq!((get()["labels"].clone(), get()["sequential"].clone()), (json!(["tv"]), json!(true)));

    let out = shoal(&[
        "set",
        "1",
        "--labels",
        "films, hd",
        "--seed-ratio",
        "unlimited",
        "--seed-idle",
        "600",
        "--sequential",
        "off",
    ]);
    assert!(out.status.success(), "{out:?}");
    let t = get();
    assert_eq!((t["labels"].clone(), t["sequential"].clone()), (json!(["films", "hd"]), json!(false)), "{t}");
    assert_eq!((t["seed_ratio_limit"].clone(), t["seed_idle_limit"].clone()), (json!("unlimited"), json!(600)));
    let out = shoal(&["status", "1"]);
    assert!(out.stdout.contains("labels:    films, hd"), "{out:?}");
    assert!(out.stdout.contains("seed goal: ratio unlimited, time the daemon's, idle 600 s"), "{out:?}");
    let out = shoal(&["set", "1", "--labels", "a,b,a,,c "]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(get()["labels"], json!(["a", "b", "c"]));

    let new = dir.path().join("elsewhere");
    let out = shoal(&["move", "1", "--to", new.to_str().expect("path")]);
    assert!(out.status.success() && out.stdout.contains("moved torrents 1 in"), "{out:?}");
    assert!(new.join("s/a.bin").is_file() && !data.exists(), "the files moved");
    wait_until(QUICK, Duration::from_millis(20), || get()["state"] == "seeding").expect("seeding from there");
    assert_eq!(get()["download_dir"], new.display().to_string());

    let out = shoal(&["free-space", new.to_str().expect("path")]);
    assert!(out.status.success() && out.stdout.contains(" free of "), "{out:?}");
    let out = shoal(&["free-space", "/no/such/folder"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("/no/such/folder"), "{out:?}");
    assert!(daemon.terminate(QUICK).expect("stops").success());
}
