//! `shoal daemon` end to end on 127.0.0.1: its state survives `kill -9` (paused stays paused,
//! seeding goes on), the same API answers as JSON-RPC, XML-RPC (Python's `xmlrpc.client`) and
//! Transmission RPC (Debian's `transmission-remote`), bad requests change nothing, the RPC
//! refuses to listen beyond loopback without credentials and refuses wrong ones, and the remote
//! commands (`shoal add`, `list`, `status`, `pause`, `resume`, `remove`) drive it.

#[path = "support/shoal.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use shoal_testkit::{Proc, TempDir, ensure_tools, free_port, make_test_file};
use support::{MIB, QUICK, run, shoal_raw};

/// A daemon on 127.0.0.1 with its data in `data`, no DHT and no LSD.
fn start_daemon(data: &Path, rpc_port: u16, extra: &[&str]) -> Proc {
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).arg("--data-dir").arg(data).args(extra);
    let proc = Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    proc
}

/// A JSON-RPC call with plain HTTP (curl-free: Python's urllib), returning the whole reply.
fn jsonrpc(port: u16, body: &str, token: Option<&str>) -> (u16, String) {
    let script = r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"content-type": "application/json"})
if len(sys.argv) > 3:
    req.add_header("Authorization", "Bearer " + sys.argv[3])
try:
    r = urllib.request.urlopen(req, timeout=30)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &format!("http://127.0.0.1:{port}/jsonrpc"), body]);
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = run(cmd, QUICK);
    let mut lines = out.stdout.splitn(2, '\n');
    let status = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("{out:?}"));
    (status, lines.next().unwrap_or_default().to_owned())
}

fn call(port: u16, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let (status, reply) = jsonrpc(port, &body, None);
    assert_eq!(status, 200, "{reply}");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

fn states(port: u16) -> Vec<(u64, String)> {
    let reply = call(port, "torrent.list", json!({}));
    reply["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|t| (t["id"].as_u64().unwrap_or(0), t["state"].as_str().unwrap_or("?").to_owned()))
        .collect()
}

/// Makes a file and its torrent; returns the torrent's path.
fn torrent(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let data = dir.join("data").join(name);
    make_test_file(&data, MIB + seed, seed);
    let out = dir.join(format!("{name}.torrent"));
    let mut cmd = shoal_raw(["create"]);
    cmd.arg(&data).arg("-o").arg(&out);
    assert!(run(cmd, QUICK).status.success());
    out
}

fn remote(port: u16, args: &[&str]) -> shoal_testkit::Captured {
    let mut cmd = shoal_raw(args);
    cmd.args(["--rpc", &format!("http://127.0.0.1:{port}/jsonrpc")]);
    run(cmd, QUICK)
}

#[test]
fn state_survives_kill_and_the_remote_commands_drive_it() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("state");
    let port = free_port();
    let mut daemon = start_daemon(&data, port, &[]);
    let a = torrent(dir.path(), "a.bin", 1);
    let b = torrent(dir.path(), "b.bin", 2);
    let folder = dir.path().join("data").display().to_string();

    let added = remote(port, &["add", a.to_str().expect("path"), "-o", &folder]);
    assert!(added.status.success() && added.stdout.starts_with("added: 1 a.bin"), "{added:?}");
    let added = remote(port, &["add", b.to_str().expect("path"), "-o", &folder, "--paused", "--json"]);
    let result: Value = serde_json::from_str(&added.stdout).unwrap_or_else(|e| panic!("{e}: {added:?}"));
    assert_eq!(result["id"], 2);
    let again = remote(port, &["add", a.to_str().expect("path"), "-o", &folder]);
    assert!(again.stdout.starts_with("already there: 1"), "{again:?}");
    shoal_testkit::wait_until(QUICK, std::time::Duration::from_millis(50), || {
        states(port) == vec![(1, "seeding".to_owned()), (2, "paused".to_owned())]
    })
    .unwrap_or_else(|e| panic!("seeding and paused: {e}; {:?}", states(port)));
    assert!(!dir.path().join("data/.shoal").exists(), "resume records go to the database, not beside the data");
    let listed = remote(port, &["list"]);
    assert!(listed.stdout.lines().any(|l| l.contains("seeding") && l.ends_with("a.bin")), "{listed:?}");

    // A second daemon on the same data folder is refused while the first runs.
    let mut second = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    second.arg(format!("127.0.0.1:{}", free_port())).arg("--data-dir").arg(&data);
    let out = run(second, QUICK);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("another shoal daemon is using"), "{out:?}");

    // kill -9, start again on the same data: the same torrents in the same states.
    let killed = Command::new("kill").args(["-KILL", &daemon.id().to_string()]).status().expect("run kill");
    assert!(killed.success());
    daemon.wait_exit(QUICK).expect("the daemon died");
    let mut daemon = start_daemon(&data, port, &[]);
    shoal_testkit::wait_until(QUICK, std::time::Duration::from_millis(50), || {
        states(port) == vec![(1, "seeding".to_owned()), (2, "paused".to_owned())]
    })
    .unwrap_or_else(|e| panic!("restored: {e}; {:?}", states(port)));

    assert!(remote(port, &["resume", "2"]).stdout.starts_with("resumed: 2"));
    assert!(remote(port, &["pause", "1"]).stdout.starts_with("paused: 1"));
    let status = remote(port, &["status", "1"]);
    assert!(status.stdout.contains("state:     paused"), "{status:?}");
    let removed = remote(port, &["remove", "2", "--delete-data"]);
    assert!(removed.stdout.starts_with("removed with their data: 2"), "{removed:?}");
    assert!(!dir.path().join("data/b.bin").exists(), "the data of b.bin was deleted");
    assert!(dir.path().join("data/a.bin").exists(), "a.bin was left alone");
    let missing = remote(port, &["status", "99"]);
    assert_eq!(missing.status.code(), Some(2), "an unknown id is bad input: {missing:?}");
    assert!(missing.stderr.starts_with("shoal: ") && missing.stderr.contains("99"), "{missing:?}");
    let _ = daemon.terminate(QUICK);
}

#[test]
fn three_protocols_and_bad_requests() {
    ensure_tools();
    let dir = TempDir::new().expect("temp dir");
    let port = free_port();
    let _daemon = start_daemon(&dir.path().join("state"), port, &[]);
    let a = torrent(dir.path(), "a.bin", 3);
    let folder = dir.path().join("data").display().to_string();

    // Transmission RPC, through Debian's transmission-remote.
    let tr = |args: &[&str]| {
        let mut cmd = Command::new("transmission-remote");
        cmd.arg(format!("127.0.0.1:{port}")).args(args);
        run(cmd, QUICK)
    };
    let added = tr(&["-a", a.to_str().expect("path"), "-w", &folder]);
    assert!(added.status.success() && added.stdout.contains("success"), "{added:?}");
    let listed = tr(&["-l"]);
    assert!(listed.stdout.contains("a.bin"), "{listed:?}");
    assert!(tr(&["-t", "1", "-S"]).status.success());
    assert_eq!(states(port), vec![(1, "paused".to_owned())], "-S stops it");
    assert!(tr(&["-t", "1", "-s"]).status.success());
    assert_ne!(states(port)[0].1, "paused", "-s starts it");
    let info = tr(&["-t", "1", "-i"]);
    assert!(info.stdout.contains("Name: a.bin") && info.stdout.contains("Hash:"), "{info:?}");
    let stats = tr(&["-st"]);
    assert!(stats.status.success() && stats.stdout.contains("CURRENT SESSION"), "{stats:?}");
    // Labels, "seed regardless of ratio", and moving the data.
    assert!(tr(&["-t", "1", "-L", "tv,hd"]).status.success());
    assert!(tr(&["-t", "1", "-SR"]).status.success());
    let t = &call(port, "torrent.get", json!({"ids": [1]}))["result"];
    assert_eq!((t[0]["labels"].clone(), t[0]["seed_ratio_limit"].clone()), (json!(["tv", "hd"]), json!("unlimited")));
    let moved = dir.path().join("moved");
    let out = tr(&["-t", "1", "--move", moved.to_str().expect("path")]);
    assert!(out.status.success() && out.stdout.contains("success"), "{out:?}");
    assert!(moved.join("a.bin").is_file(), "the data moved");
    let t = &call(port, "torrent.get", json!({"ids": [1]}))["result"];
    assert_eq!(t[0]["download_dir"], moved.display().to_string());
    let added = tr(&["-a", torrent(dir.path(), "b.bin", 5).to_str().expect("path"), "-w", &folder]);
    assert!(added.stdout.contains("success"), "{added:?}");
    assert!(tr(&["-t", "2", "-r"]).status.success());
    assert_eq!(states(port).iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1], "-r removes it");

    // XML-RPC, through Python's standard client.
    let mut py = Command::new("python3");
    py.args([
        "-c",
        "import sys, xmlrpc.client as x; s = x.ServerProxy(sys.argv[1]); \
         print(','.join(s.system.listMethods())); print(s.torrent.list()[0]['name']); \
         \ntry:\n  s.torrent.pause({'ids': [42]})\nexcept x.Fault as f:\n  print('FAULT', f.faultCode, f.faultString)",
        &format!("http://127.0.0.1:{port}/xmlrpc"),
    ]);
    let out = run(py, QUICK);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.first().is_some_and(|l| l.contains("torrent.add") && l.contains("session.stats")), "{out:?}");
    assert_eq!(lines.get(1), Some(&"a.bin"), "{out:?}");
    assert!(lines.get(2).is_some_and(|l| l.starts_with("FAULT") && l.contains("42")), "{out:?}");

    // JSON-RPC errors; nothing changes.
    let before = states(port);
    for (body, code) in [
        ("{not json", -32700),
        (r#"{"jsonrpc":"2.0","id":1,"method":"torrent.explode"}"#, -32601),
        (r#"{"jsonrpc":"2.0","id":1,"method":"torrent.pause","params":{"ids":{"x":1}}}"#, -32602),
        (r#"{"jsonrpc":"2.0","id":1,"method":"torrent.remove","params":{"ids":[77]}}"#, -32001),
    ] {
        let (_, reply) = jsonrpc(port, body, None);
        let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"));
        assert_eq!(v["error"]["code"], code, "{body}: {reply}");
    }
    assert_eq!(states(port), before, "bad requests changed nothing");
}

#[test]
fn rpc_credentials() {
    let dir = TempDir::new().expect("temp dir");
    // Beyond loopback without credentials: refused before anything starts.
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen", "0.0.0.0:0"]);
    cmd.arg("--data-dir").arg(dir.path().join("open"));
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.starts_with("shoal: ") && out.stderr.contains("0.0.0.0"), "{out:?}");

    // With a token in the config file: wrong or missing tokens get 401 and change nothing.
    let config = dir.path().join("shoal.toml");
    std::fs::write(&config, "[rpc]\ntoken = \"s3cret\"\n").expect("config");
    let port = free_port();
    let _daemon = start_daemon(&dir.path().join("state"), port, &["--config", config.to_str().expect("path")]);
    let a = torrent(dir.path(), "a.bin", 4);
    let bytes = std::fs::read(&a).expect("torrent");
    use base64::Engine;
    let add = json!({"jsonrpc": "2.0", "id": 1, "method": "torrent.add",
        "params": {"torrent": base64::engine::general_purpose::STANDARD.encode(bytes), "paused": true}})
    .to_string();
    for token in [None, Some("wrong")] {
        let (status, _) = jsonrpc(port, &add, token);
        assert_eq!(status, 401, "token {token:?}");
    }
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "torrent.list"}).to_string();
    let (status, reply) = jsonrpc(port, &list, Some("s3cret"));
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&reply).expect("json")["result"], json!([]), "nothing was added");
    let (status, reply) = jsonrpc(port, &add, Some("s3cret"));
    assert_eq!(status, 200, "{reply}");
}

/// A `shoal share` seed of `data` (no DHT, no LSD); returns it with its magnet link.
fn seed(data: &Path, torrent: &Path) -> (support::Seed, String) {
    let seed = support::Seed::start("seed", data, torrent, &[]);
    let magnet = seed.proc.wait_for_line("magnet: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let magnet = magnet.trim_start_matches("magnet: ").to_owned();
    (seed, magnet)
}

fn wait_states(port: u16, want: &[(u64, &str)]) {
    let want: Vec<(u64, String)> = want.iter().map(|(i, s)| (*i, (*s).to_owned())).collect();
    shoal_testkit::wait_until(support::DOWNLOAD, std::time::Duration::from_millis(100), || states(port) == want)
        .unwrap_or_else(|e| panic!("states {want:?}: {e}; now {:?}", states(port)));
}

#[test]
fn magnets_queue_and_seeding_goal() {
    let dir = TempDir::new().expect("temp dir");
    // Two seeds to fetch from.
    let one = dir.path().join("seed/one.bin");
    let two = dir.path().join("seed/two.bin");
    make_test_file(&one, 3 * MIB, 81);
    make_test_file(&two, 3 * MIB, 82);
    let (seed_one, magnet_one) = seed(&one, &dir.path().join("one.torrent"));
    let (seed_two, magnet_two) = seed(&two, &dir.path().join("two.torrent"));

    // One download at a time, 1 MiB/s, and seeds stop as soon as they are complete (ratio 0).
    let config = dir.path().join("shoal.toml");
    std::fs::write(&config, "[limits]\ndownload = 1048576\nmax_active_downloads = 1\nseed_ratio = 0.0\n")
        .expect("config");
    let port = free_port();
    let mut daemon = start_daemon(&dir.path().join("state"), port, &["--config", config.to_str().expect("path")]);
    let out = dir.path().join("downloads").display().to_string();
    for (magnet, seed) in [(&magnet_one, &seed_one), (&magnet_two, &seed_two)] {
        let link = format!("{magnet}&x.pe={}", seed.addr);
        let added = remote(port, &["add", &link, "-o", &out]);
        assert!(added.status.success(), "{added:?}");
    }
    // The second waits in the queue while the first downloads.
    wait_states(port, &[(1, "downloading"), (2, "queued")]);
    // Both complete in turn, and each stops at its seeding goal.
    wait_states(port, &[(1, "paused"), (2, "paused")]);
    for (name, original) in [("one.bin", &one), ("two.bin", &two)] {
        let got = std::fs::read(dir.path().join("downloads").join(name)).expect("downloaded");
        assert_eq!(got, std::fs::read(original).expect("original"), "{name}");
    }
    // Lifetime totals outlive the run.
    assert!(daemon.terminate(QUICK).expect("stopped").success());
    let _daemon = start_daemon(&dir.path().join("state"), port, &["--config", config.to_str().expect("path")]);
    let stats = call(port, "session.stats", json!({}));
    let downloaded = stats["result"]["cumulative"]["downloaded"].as_u64().unwrap_or(0);
    assert!(downloaded >= 6 * MIB, "cumulative downloads kept: {stats}");
    assert_eq!(stats["result"]["current"]["downloaded"], 0, "{stats}");
}
