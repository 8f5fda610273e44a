//! The server peer (`shoal daemon --server-listen`) and `shoal push`, end to end on 127.0.0.1
//! with discovery off:
//!
//! - the owner pushes a 64 MiB group share to a server daemon that allows the group's
//!   members, waits for "held" and stops; a second member then downloads it from the server
//!   alone, byte for byte, while a non-member gets nothing from it;
//! - a pusher the server does not allow is refused and nothing is written under the server's
//!   folder; a push over the quota is refused with the quota named; a server that is not who
//!   the pusher asked for is refused; a group share pushed to a server outside the group is
//!   refused with a clear message; one address gets at most 8 connections to the endpoint;
//! - `kill -9` of the server during a push: after a restart it goes on and the push completes;
//!   `--list` shows it held; `--withdraw` deletes the data;
//! - a sealed share pushed to a server that holds no key of the group (a seed-only member):
//!   nothing under the server's folder holds a byte of the plaintext or its names, a member
//!   downloads from the server alone and gets the plaintext, and the server cannot open it;
//! - a tampered ciphertext piece fails the member's piece check (it never reaches
//!   decryption) and no plaintext is written; with the piece restored the share opens;
//! - a daemon pushes one of its torrents over RPC (`push.start`, `push.status`,
//!   `push.withdraw`, refused without RPC credentials), and the server's `server.pushes` and
//!   `torrent.get` show who pushed what.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;
#[path = "support/probe.rs"]
mod probe;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interop::{LISTEN_ANY, NO_DISCOVERY, START_TIMEOUT, TRANSFER_TIMEOUT, ok, shoal, spawn_get};
use people::{identity, invite_and_join, rpc, run, run_ok, s};
use probe::{info_hash_bytes, member_client, tls_probe};
use shoal_testkit::{Proc, TempDir, compare_files, ensure_tools, make_test_file};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-push-").tempdir().expect("temporary folder")
}

/// A server daemon on `home`, its push endpoint on `push_port`, with `extra` flags.
struct Server {
    proc: Proc,
    /// Its RPC port.
    rpc: u16,
    /// `ID@127.0.0.1:PORT` for `push --to`.
    target: String,
    /// Where group members reach it (TLS).
    tls: String,
}

fn start_server(home: &Path, push_port: u16, extra: &[&str]) -> Server {
    let rpc = shoal_testkit::free_port();
    let mut cmd = shoal(["daemon", "--listen", LISTEN_ANY, "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc}")).args(NO_DISCOVERY).arg("--data-dir").arg(home);
    cmd.arg("--server-listen").arg(format!("127.0.0.1:{push_port}")).args(extra);
    let proc = ok(Proc::spawn("server", cmd));
    let line = ok(proc.wait_for_line("server: pushes on ", START_TIMEOUT));
    let target = line.rsplit("--to ").next().expect("target").trim().to_string();
    let tls = ok(proc.wait_for_line("group shares: TLS peers on ", START_TIMEOUT));
    let tls = tls.rsplit(' ').next().expect("address").to_string();
    ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    Server { proc, rpc, target, tls }
}

fn push_cmd(home: &Path, source: &Path, target: &str, extra: &[&str]) -> Command {
    let mut cmd = shoal(["push"]);
    cmd.arg(source).args(["--to", target, "--listen", LISTEN_ANY]).args(NO_DISCOVERY).arg("--data-dir").arg(home);
    cmd.args(extra);
    cmd
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_group_share_pushed_to_a_server_is_served_to_members_after_its_owner_left() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob, carol, home) = (dir("alice"), dir("bob"), dir("carol"), dir("server"));
    run_ok(&alice, &["group", "create", "lab"]);
    invite_and_join(&alice, "lab", &home);
    invite_and_join(&alice, "lab", &bob);
    // carol leads a group of the same name, with an authority of her own.
    run_ok(&carol, &["group", "create", "lab"]);
    let mut server = start_server(&home, shoal_testkit::free_port(), &["--allow", "group:lab"]);

    let data = dir("src").join("film.bin");
    make_test_file(&data, 64 * MIB, 31);
    let mut push = ok(Proc::spawn("push", push_cmd(&alice, &data, &server.target, &["--group", "lab"])));
    ok(push.wait_success(TRANSFER_TIMEOUT));
    let pushed = ok(push.wait_for_line("pushed: ", START_TIMEOUT));
    let hash = pushed.rsplit(' ').next().expect("info-hash").to_string();
    let held = ok(push.wait_for_line("held: ", START_TIMEOUT));
    assert!(held.contains("film.bin (64.00 MiB)"), "{held}");
    let torrent = dir("src").join("film.bin.torrent");
    assert!(torrent.is_file(), "no .torrent beside the pushed file");
    drop(push);

    // The owner's process is gone: bob fetches from the server alone.
    let out = dir("bob-out");
    let mut get = spawn_get("bob", &torrent, &out, &["--peer", &server.tls, "--data-dir", s(&bob)]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(compare_files(&data, out.join("film.bin")));

    // carol is no member of alice's group: the server does not even answer her handshake,
    // while bob's is answered.
    let addr = server.tls.parse().expect("address");
    let info_hash = info_hash_bytes(&hash);
    assert_eq!(
        tls_probe(addr, member_client(&carol, "lab", "film.bin"), &hash, &info_hash),
        0,
        "a non-member was answered"
    );
    assert_eq!(tls_probe(addr, member_client(&bob, "lab", "film.bin"), &hash, &info_hash), 68, "a member was refused");

    // The pusher sees it held in its list.
    let listed = run_ok(&alice, &["push", "--list", "--to", &server.target]);
    assert!(listed.contains("held") && listed.contains("film.bin"), "{listed}");
    let status = ok(server.proc.terminate(Duration::from_secs(15)));
    assert!(status.success(), "{}", server.proc.explain("the server did not stop cleanly"));
}

#[test]
fn pushes_the_server_does_not_allow_or_cannot_keep_are_refused_before_anything_is_stored() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, dave, home) = (dir("alice"), dir("dave"), dir("server"));
    let alice_id = identity(&alice);
    identity(&dave);
    let pushed = dir("pushed");
    let mut server = start_server(
        &home,
        shoal_testkit::free_port(),
        &["--allow", &alice_id, "--quota", "10M", "--server-dir", s(&pushed)],
    );
    let small = dir("src").join("notes.bin");
    make_test_file(&small, 2 * MIB, 5);

    // dave is not allowed: refused, and nothing lands under the server's folder.
    let (code, _, stderr) =
        run(&dave, &["push", s(&small), "--to", &server.target, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("may not push to this server"), "{stderr}");
    assert!(files_under(&pushed).is_empty(), "a refused push stored {:?}", files_under(&pushed));

    // Over the quota: refused, the quota named.
    let big = dir("src").join("big.bin");
    make_test_file(&big, 12 * MIB, 6);
    let (code, _, stderr) =
        run(&alice, &["push", s(&big), "--to", &server.target, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("over quota") && stderr.contains("whole quota here (10.0 MiB)"), "{stderr}");
    assert!(files_under(&pushed).is_empty(), "a refused push stored {:?}", files_under(&pushed));

    // A server that is not the identity asked for: refused before anything is sent.
    let wrong = format!("{alice_id}@{}", server.target.rsplit('@').next().expect("addr"));
    let (code, _, stderr) =
        run(&alice, &["push", s(&small), "--to", &wrong, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("it proved another identity"), "{stderr}");

    // A group share for a server outside the group: refused, saying how to fix it.
    run_ok(&alice, &["group", "create", "lab"]);
    let (code, _, stderr) = run(
        &alice,
        &[
            "push",
            s(&small),
            "--to",
            &server.target,
            "--group",
            "lab",
            "--listen",
            LISTEN_ANY,
            "--no-dht",
            "--no-lsd",
            "-o",
            s(&dir("lab.torrent")),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a member of") && stderr.contains("shoal group invite GROUP"), "{stderr}");
    assert!(!stderr.contains(s(&home)), "the refusal names the server's folder: {stderr}");
    assert!(files_under(&pushed).is_empty(), "a refused push stored {:?}", files_under(&pushed));

    // Within the quota: held.
    run_ok(&alice, &["push", s(&small), "--to", &server.target, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    let kept = files_under(&pushed);
    assert_eq!(kept.len(), 1, "{kept:?}");
    ok(compare_files(&small, &kept[0]));
    // 2 MiB kept: 9 MiB more would pass the 10 MiB quota.
    let nine = dir("src").join("nine.bin");
    make_test_file(&nine, 9 * MIB, 7);
    let (code, _, stderr) =
        run(&alice, &["push", s(&nine), "--to", &server.target, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("keeps 2.0 MiB of its 10.0 MiB quota here (8.0 MiB free)"), "{stderr}");

    // One address holds at most 8 connections to the push endpoint: a 9th is closed at once.
    let endpoint = server.target.rsplit('@').next().expect("addr").to_string();
    let held: Vec<std::net::TcpStream> =
        (0..8).map(|_| std::net::TcpStream::connect(&endpoint).expect("connect")).collect();
    let mut ninth = std::net::TcpStream::connect(&endpoint).expect("connect");
    ninth.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    assert!(matches!(std::io::Read::read(&mut ninth, &mut byte), Ok(0)), "a 9th connection from one address was kept");
    drop(held);
    ok(server.proc.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn a_push_survives_a_killed_server_and_a_withdrawn_push_leaves_no_data() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, home) = (dir("alice"), dir("server"));
    let alice_id = identity(&alice);
    let port = shoal_testkit::free_port();
    let flags = ["--allow", alice_id.as_str()];
    let mut server = start_server(&home, port, &flags);
    let data = dir("src").join("album.bin");
    make_test_file(&data, 24 * MIB, 77);
    // Slow enough to be caught half way.
    let mut push = ok(Proc::spawn("push", push_cmd(&alice, &data, &server.target, &["--upload-limit", "2M"])));
    let line = ok(push.wait_for_line("pushed: ", START_TIMEOUT));
    let hash = line.rsplit(' ').next().expect("info-hash").to_string();
    let on_disk = home.join("pushed").join(&hash).join("album.bin");
    let partly = || {
        let list = run_ok(&alice, &["push", "--list", "--json", "--to", &server.target]);
        let v: serde_json::Value = serde_json::from_str(&list).expect("json");
        v["pushes"][0]["have"].as_u64().unwrap_or(0) >= 2 * MIB
    };
    ok(shoal_testkit::wait_until(TRANSFER_TIMEOUT, Duration::from_millis(200), partly));
    let killed = Command::new("kill").args(["-KILL", &server.proc.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let _ = server.proc.wait_exit(START_TIMEOUT);
    assert!(push.try_status().expect("status").is_none(), "{}", push.explain("the push ended with the server"));

    // Restarted on the same folder and endpoint: it goes on, and the push completes.
    let mut server = start_server(&home, port, &flags);
    ok(push.wait_success(TRANSFER_TIMEOUT));
    ok(push.wait_for_line("held: ", START_TIMEOUT));
    ok(compare_files(&data, &on_disk));

    let withdrawn = run_ok(&alice, &["push", "--withdraw", &hash[..12], "--to", &server.target]);
    assert!(withdrawn.contains("deleted its data"), "{withdrawn}");
    assert!(!home.join("pushed").join(&hash).exists(), "the withdrawn push's folder is still there");
    let listed = run_ok(&alice, &["push", "--list", "--to", &server.target]);
    assert!(listed.starts_with("0 push(es)"), "{listed}");
    // A second withdrawal names what is wrong.
    let (code, _, stderr) = run(&alice, &["push", "--withdraw", &hash, "--to", &server.target]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("pushed nothing matching"), "{stderr}");
    ok(server.proc.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn a_daemon_pushes_over_rpc_and_the_server_reports_who_pushed_what() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (laptop, home) = (dir("laptop"), dir("server"));
    let laptop_id = identity(&laptop);
    let mut server = start_server(&home, shoal_testkit::free_port(), &["--allow", &laptop_id]);
    let token = "push-test-token-0123456789";
    let config = dir("laptop.toml");
    std::fs::write(&config, format!("[rpc]\ntoken = \"{token}\"\n")).expect("config");
    let port = shoal_testkit::free_port();
    let start = |config: Option<&Path>| {
        let mut cmd = shoal(["daemon", "--listen", LISTEN_ANY, "--rpc-listen"]);
        cmd.arg(format!("127.0.0.1:{port}")).args(NO_DISCOVERY).arg("--data-dir").arg(&laptop);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let daemon = ok(Proc::spawn("laptop", cmd));
        ok(daemon.wait_for_line("ready: ", START_TIMEOUT));
        daemon
    };
    // Pushing acts as the daemon's identity: not over an RPC without credentials.
    let mut open = start(None);
    let refused = rpc(port, None, "push.start", serde_json::json!({"to": server.target, "torrent": 1}));
    let message = refused["error"]["message"].as_str().unwrap_or_else(|| panic!("{refused}"));
    assert!(message.contains("needs the daemon's RPC credentials"), "{message}");
    ok(open.terminate(Duration::from_secs(15)).map(drop));
    let mut daemon = start(Some(&config));

    let src = dir("src");
    let data = src.join("report.bin");
    make_test_file(&data, 6 * MIB + 5, 8);
    let torrent = dir("report.torrent");
    let hash = interop::shoal_create(&data, &torrent, &[]);
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&torrent).expect("torrent"))
    };
    let added = rpc(port, Some(token), "torrent.add", serde_json::json!({"torrent": b64, "download_dir": s(&src)}));
    let id = added["result"]["id"].as_u64().unwrap_or_else(|| panic!("{added}"));
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        rpc(port, Some(token), "torrent.get", serde_json::json!({"ids": [id], "fields": ["state"]}))["result"][0]["state"]
            == "seeding"
    }));

    let started = rpc(port, Some(token), "push.start", serde_json::json!([server.target, id]));
    assert_eq!(started["result"]["reply"], "pushed", "{started}");
    ok(shoal_testkit::wait_until(TRANSFER_TIMEOUT, Duration::from_millis(200), || {
        let status = rpc(port, Some(token), "push.status", serde_json::json!({"to": server.target, "info_hash": hash}));
        status["result"]["push"]["held"] == true
    }));
    let on_server = home.join("pushed").join(&hash).join("report.bin");
    ok(compare_files(&data, &on_server));

    // The server's view: who pushed what, and its quota use.
    let view = rpc(server.rpc, None, "server.pushes", serde_json::json!({}));
    let pushes = &view["result"]["pushes"];
    assert_eq!(pushes.as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(pushes[0]["pusher"], laptop_id.as_str(), "{view}");
    assert_eq!(pushes[0]["held"], true, "{view}");
    assert_eq!(view["result"]["usage"][0]["used"], 6 * MIB + 5, "{view}");
    let listed = rpc(server.rpc, None, "torrent.list", serde_json::json!({"fields": ["pushed_by", "labels"]}));
    assert_eq!(listed["result"][0]["pushed_by"][0], laptop_id.as_str(), "{listed}");

    let withdrawn =
        rpc(port, Some(token), "push.withdraw", serde_json::json!({"to": server.target, "info_hash": hash}));
    assert_eq!(withdrawn["result"]["deleted"], true, "{withdrawn}");
    assert!(!on_server.exists(), "the withdrawn data is still on the server");
    let view = rpc(server.rpc, None, "server.pushes", serde_json::json!({}));
    assert_eq!(view["result"]["pushes"].as_array().map(Vec::len), Some(0), "{view}");
    ok(daemon.terminate(Duration::from_secs(15)).map(drop));
    ok(server.proc.terminate(Duration::from_secs(15)).map(drop));
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    files_under(dir)
        .into_iter()
        .find(|f| std::fs::read(f).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)))
}

/// A folder of two files holding `marker`, under a name that holds it too.
fn marked_folder(root: &Path, marker: &str) -> PathBuf {
    let folder = root.join(format!("trip-{marker}"));
    std::fs::create_dir_all(&folder).expect("folder");
    let mut photo = shoal_testkit::test_bytes(5 * MIB as usize, 41);
    photo[1_000_000..1_000_000 + marker.len()].copy_from_slice(marker.as_bytes());
    std::fs::write(folder.join("photo.bin"), photo).expect("photo");
    std::fs::write(folder.join(format!("notes-{marker}.txt")), format!("meet at noon {marker}\n")).expect("notes");
    folder
}

#[test]
fn a_sealed_share_on_a_server_is_ciphertext_there_and_plaintext_for_members() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob, home) = (dir("alice"), dir("bob"), dir("server"));
    run_ok(&alice, &["group", "create", "lab"]);
    invite_and_join(&alice, "lab", &bob);
    // The server may fetch and seed the group's shares, but gets no key.
    let server_id = identity(&home);
    let invitation = home.join("invitation.txt");
    run_ok(&alice, &["group", "invite", "lab", &server_id, "--seed-only", "-o", s(&invitation)]);
    run_ok(&home, &["group", "join", s(&invitation)]);
    let listed = run_ok(&home, &["group", "list"]);
    assert!(listed.contains("seed-only (cannot open sealed shares)"), "{listed}");
    let mut server = start_server(&home, shoal_testkit::free_port(), &["--allow", "group:lab"]);

    let marker = "c0ffee5eeded";
    let folder = marked_folder(&dir("src"), marker);
    let mut push = ok(Proc::spawn("push", push_cmd(&alice, &folder, &server.target, &["--group", "lab", "--sealed"])));
    ok(push.wait_success(TRANSFER_TIMEOUT));
    let held = ok(push.wait_for_line("held: ", START_TIMEOUT));
    assert!(held.contains(&format!("trip-{marker} (sealed)")), "{held}");
    drop(push);
    // Pushed again without the options it was made with: told what to add.
    let (code, _, stderr) =
        run(&alice, &["push", s(&folder), "--to", &server.target, "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a sealed share; add --group NAME --sealed"), "{stderr}");
    // Not a byte of the content, nor a name, anywhere in the server's folder (its database
    // and the stored .torrent included).
    assert!(!files_under(&home.join("pushed")).is_empty(), "the server holds nothing");
    assert_eq!(any_file_holds(&home, marker.as_bytes()), None, "plaintext on the server");
    assert_eq!(any_file_holds(&home, b"meet at noon"), None, "plaintext on the server");

    // bob opens it from the server alone.
    let torrent = dir("src").join(format!("trip-{marker}.torrent"));
    let out = dir("bob-out");
    let mut get = spawn_get("bob", &torrent, &out, &["--peer", &server.tls, "--data-dir", s(&bob)]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(get.wait_for_line("opened: ", START_TIMEOUT));
    shoal_testkit::assert_same_tree(&folder, out.join(format!("trip-{marker}")));

    // bob plays it from the server too: ranges across chunks come back as plaintext.
    let mut play = shoal(["play"]);
    play.arg(&torrent).arg("-o").arg(dir("bob-play")).args([
        "--no-player",
        "--http",
        "127.0.0.1:0",
        "--listen",
        LISTEN_ANY,
    ]);
    play.args(NO_DISCOVERY).args(["--peer", &server.tls, "--data-dir", s(&bob)]);
    let mut play = ok(Proc::spawn("play", play));
    let url = ok(play.wait_for_line("stream: ", START_TIMEOUT));
    let url = url.trim_start_matches("stream: ").trim().to_string();
    assert!(url.ends_with("/photo.bin"), "the stream is named after the real file: {url}");
    let photo = std::fs::read(folder.join("photo.bin")).expect("photo");
    for (start, end) in [(999_000usize, 1_070_000usize), (0, 10), (photo.len() - 1000, photo.len())] {
        let body = http_range(&url, start, end - 1);
        assert!(body == photo[start..end], "bytes {start}-{end} of the played file differ from the plaintext");
    }
    ok(play.terminate(Duration::from_secs(15)).map(drop));

    // The server's own identity cannot open it.
    let (code, _, stderr) = run(&home, &["get", s(&torrent), "-o", s(&dir("server-out")), "--no-dht", "--no-lsd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds no key"), "{stderr}");
    ok(server.proc.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn a_tampered_ciphertext_piece_fails_its_piece_check_and_is_never_opened() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob) = (dir("alice"), dir("bob"));
    run_ok(&alice, &["group", "create", "lab"]);
    invite_and_join(&alice, "lab", &bob);
    let folder = marked_folder(&dir("src"), "feedface");
    let mut cmd = shoal(["share"]);
    cmd.arg(&folder).args(["--group", "lab", "--sealed", "--listen", LISTEN_ANY]).args(NO_DISCOVERY);
    cmd.arg("--data-dir").arg(&alice);
    let mut share = ok(Proc::spawn("share", cmd));
    let sealed_line = ok(share.wait_for_line("sealed: ", START_TIMEOUT));
    let tls = ok(share.wait_for_line("group share of ", START_TIMEOUT));
    let tls = tls.rsplit(' ').next().expect("address").to_string();
    ok(share.wait_for_line("ready: ", START_TIMEOUT));
    let cipher_dir = PathBuf::from(sealed_line.split(" in ").nth(1).and_then(|r| r.split(';').next()).expect("folder"));
    // The photo's ciphertext: the largest file.
    let cipher = files_under(&cipher_dir)
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .unwrap_or_else(|| panic!("no ciphertext in {sealed_line}"));

    // One byte of the ciphertext changes after the seed checked it: it sends a bad piece.
    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).expect("ciphertext");
        bytes[100_000] ^= 0x01;
        std::fs::write(path, bytes).expect("write");
    };
    flip(&cipher);
    let torrent = dir("src").join("trip-feedface.torrent");
    let out = dir("bob-out");
    let mut get = spawn_get("bob", &torrent, &out, &["--peer", &tls, "--data-dir", s(&bob), "--timeout", "8"]);
    let status = ok(get.wait_exit(TRANSFER_TIMEOUT));
    assert!(!status.success(), "{}", get.explain("a tampered share completed"));
    let said = get.output();
    assert!(said.contains("piece failed its hash check"), "{}", get.explain("the bad piece was not caught"));
    assert!(!said.contains("does not open"), "{}", get.explain("the bad piece reached decryption"));
    assert!(!out.join("trip-feedface").exists(), "plaintext was written from a tampered share");
    let parts: Vec<PathBuf> =
        files_under(&out).into_iter().filter(|f| f.to_string_lossy().ends_with(".shoal-part")).collect();
    assert!(parts.is_empty(), "partial plaintext left behind: {parts:?}");

    // Restored, the same share opens.
    flip(&cipher);
    let mut get = spawn_get("bob", &torrent, &out, &["--peer", &tls, "--data-dir", s(&bob)]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    shoal_testkit::assert_same_tree(&folder, out.join("trip-feedface"));
    ok(share.terminate(Duration::from_secs(15)).map(drop));
}

/// `GET url` with `Range: bytes=first-last`; returns the body of the 206 answer.
fn http_range(url: &str, first: usize, last: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the stream");
    stream.set_read_timeout(Some(TRANSFER_TIMEOUT)).expect("timeout");
    let request =
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes={first}-{last}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("reply");
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    let head = String::from_utf8_lossy(&reply[..split]).to_string();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    reply[split..].to_vec()
}
