//! The daemon's RPC keeps answering while slow work goes on: adding a torrent whose 4 GiB of
//! existing data is being checked, removing torrents whose tracker never answers their
//! `stopped` announce, and restarting with a torrent that must be checked again. Every
//! `torrent.list` is timed; the test prints the worst and the 99th percentile and fails if
//! any call waited on that work: a call held up by it would take about as long as the work,
//! so the worst call must stay under half the work's duration (a bound that holds on a busy
//! machine too, where both take longer).

#[path = "support/shoal.rs"]
mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use shoal_proto::metainfo::{CreateContent, CreateSpec, build_torrent};
use shoal_testkit::{Proc, TempDir, free_port, make_test_file, wait_until};
use support::{QUICK, run, shoal_raw};

fn start_daemon(data: &Path, rpc_port: u16) -> Proc {
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).arg("--data-dir").arg(data);
    Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// One JSON-RPC call: the reply's `result` (or `error`) and how long
/// it took. `None` when nothing listens yet.
fn call(port: u16, method: &str, params: Value) -> Option<(Value, Duration)> {
    let (v, took) = support::jsonrpc_call(port, method, params)?;
    Some((if v.get("error").is_some() { v["error"].clone() } else { v["result"].clone() }, took))
}

/// Worst and 99th-percentile latency.
fn summary(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    (*times.last().unwrap_or(&Duration::ZERO), p99)
}

/// A torrent for a sparse file of zeros of `size` bytes at `dir/name`, in 4 MiB pieces, with
/// `trackers`.
fn zeros_torrent(dir: &Path, name: &str, size: u64, trackers: Vec<String>) -> Vec<u8> {
    let piece = 4u64 << 20;
    let file = std::fs::File::create(dir.join(name)).expect("create");
    file.set_len(size).expect("sparse file");
    let full: [u8; 20] = Sha1::digest(vec![0u8; piece as usize]).into();
    let mut hashes = vec![full; (size / piece) as usize];
    if !size.is_multiple_of(piece) {
        hashes.push(Sha1::digest(vec![0u8; (size % piece) as usize]).into());
    }
    let spec = CreateSpec {
        name: name.to_owned(),
        piece_length: piece as u32,
        content: CreateContent::SingleFile { length: size },
        trackers,
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    build_torrent(&spec, &hashes)
}

fn add(port: u16, torrent: &[u8], dir: &Path) -> Value {
    let params = json!({
        "torrent": base64::engine::general_purpose::STANDARD.encode(torrent),
        "download_dir": dir.display().to_string(),
    });
    call(port, "torrent.add", params).expect("the daemon answers").0
}

fn states(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().map(|t| t["state"].as_str().unwrap_or("?").to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn r_rpc_answers_while_a_large_torrent_is_checked_and_after_a_restart() {
    let dir = TempDir::new().expect("temp dir");
    let (state, data) = (dir.path().join("state"), dir.path().join("data"));
    std::fs::create_dir_all(&data).expect("mkdir");
    let torrent = zeros_torrent(&data, "big.bin", 4 << 30, vec![]);
    let port = free_port();
    let mut daemon = start_daemon(&state, port);
    daemon.wait_for_line("ready: ", QUICK).expect("ready");

    let check_started = Instant::now();
    let added = add(port, &torrent, &data);
    assert_eq!(added["id"], 1, "{added}");
    let (mut times, mut while_checking) = (Vec::new(), 0);
    wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
        let (list, took) = call(port, "torrent.list", json!({})).expect("answers");
        times.push(took);
        let s = states(&list);
        while_checking += usize::from(s == ["checking"]);
        s == ["seeding"]
    })
    .unwrap_or_else(|e| panic!("{}", daemon.explain(&format!("never seeding: {e}"))));
    let (worst, p99) = summary(&mut times);
    eprintln!(
        "add + 4 GiB check ({:?}): {} calls ({while_checking} while checking), worst {worst:?}, p99 {p99:?}",
        check_started.elapsed(),
        times.len()
    );
    assert!(while_checking >= 3, "the check overlapped the calls ({while_checking})");
    let check = check_started.elapsed();
    assert!(worst < check / 2, "torrent.list waited {worst:?} during a {check:?} check");

    // Forget the verified pieces so the next start checks again, then restart: the RPC
    // answers at once and shows the torrent as checking.
    let removed = call(port, "torrent.remove", json!({"ids": [1]})).expect("answers").0;
    assert_eq!(removed, json!([1]));
    assert_eq!(add(port, &torrent, &data)["id"], 2);
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        states(&call(port, "torrent.list", json!({})).expect("answers").0) == ["checking"]
    })
    .expect("checking");
    let killed = Command::new("kill").args(["-KILL", &daemon.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    daemon.wait_exit(QUICK).expect("died");
    let started = Instant::now();
    let mut daemon = start_daemon(&state, port);
    let mut first = None;
    wait_until(QUICK, Duration::from_millis(5), || {
        first = call(port, "torrent.list", json!({})).map(|(v, _)| (v, started.elapsed()));
        first.is_some()
    })
    .expect("the RPC answers after a restart");
    let (list, after) = first.expect("answered");
    eprintln!("after a restart: first answer after {after:?}, states {:?}", states(&list));
    assert_eq!(states(&list), ["checking"], "listed at once, as checking");
    assert!(after < Duration::from_secs(5), "the RPC answered {after:?} after the start");
    assert!(daemon.terminate(QUICK).is_ok());
}

#[test]
fn r_rpc_answers_while_torrents_whose_tracker_never_answers_are_removed() {
    let dir = TempDir::new().expect("temp dir");
    let (state, data) = (dir.path().join("state"), dir.path().join("data"));
    std::fs::create_dir_all(&data).expect("mkdir");
    // A tracker that accepts connections and never says a word.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tracker = format!("http://{}/announce", hole.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().take(64) {
            held.extend(conn.ok());
        }
    });
    let port = free_port();
    let mut daemon = start_daemon(&state, port);
    daemon.wait_for_line("ready: ", QUICK).expect("ready");
    for i in 0..3 {
        let name = format!("t{i}.bin");
        make_test_file(data.join(&name), 100_000 + i, 80 + i);
        let mut cmd = shoal_raw(["create"]);
        let out = dir.path().join(format!("{name}.torrent"));
        cmd.arg(data.join(&name)).arg("-o").arg(&out).args(["--tracker", &tracker]);
        assert!(run(cmd, QUICK).status.success());
        add(port, &std::fs::read(&out).expect("read"), &data);
    }
    wait_until(QUICK, Duration::from_millis(20), || {
        states(&call(port, "torrent.list", json!({})).expect("answers").0) == ["seeding", "seeding", "seeding"]
    })
    .expect("three seeding");
    let remover = std::thread::spawn(move || call(port, "torrent.remove", json!({"ids": "all"})));
    let mut times = Vec::new();
    wait_until(Duration::from_secs(60), Duration::from_millis(10), || {
        let (list, took) = call(port, "torrent.list", json!({})).expect("answers");
        times.push(took);
        list.as_array().is_some_and(Vec::is_empty) && remover.is_finished()
    })
    .expect("all removed");
    let (removed, remove_took) = remover.join().expect("thread").expect("answered");
    assert_eq!(removed, json!([1, 2, 3]));
    let (worst, p99) = summary(&mut times);
    eprintln!("remove of 3 took {remove_took:?}; {} list calls meanwhile, worst {worst:?}, p99 {p99:?}", times.len());
    assert!(worst < remove_took / 2, "torrent.list waited {worst:?} during a {remove_took:?} removal");
    assert!(daemon.terminate(QUICK).is_ok());
}
