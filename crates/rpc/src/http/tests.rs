//! The router on a real loopback socket, driven by reqwest, Python's `xmlrpc.client` and Debian's
//! `transmission-remote` (Transmission 3.00), against the in-memory fake [`Api`].

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use shoal_testkit::run_captured;

use super::*;
use crate::api::{Priority, TorrentState};
use crate::fake::Fake;

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

async fn serve(api: Arc<Fake>, config: Config) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = router_with(api, config);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn with_token() -> Config {
    Config {
        access: Access { token: Some("s3cret".into()), user_password: Some(("alice".into(), "pw:1".into())) },
        ..Config::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
}

fn jsonrpc_body(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string()
}

async fn post_json(addr: SocketAddr, body: String, auth: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = client().post(format!("http://{addr}/jsonrpc")).header("content-type", "application/json").body(body);
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    req.send().await.expect("request")
}

/// Runs a blocking command on a thread of its own so the server keeps running.
async fn run(cmd: Command) -> shoal_testkit::Captured {
    tokio::task::spawn_blocking(move || run_captured(cmd, TOOL_TIMEOUT)).await.expect("join").expect("command ran")
}

fn require(tool: &str, install: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "this test needs {tool}; ./scripts/test installs it ({install})");
}

#[test]
fn check_bind_refuses_open_non_loopback() {
    let open = Access::open();
    assert!(check_bind("127.0.0.1:9091".parse().expect("works"), &open).is_ok());
    assert!(check_bind("[::1]:9091".parse().expect("works"), &open).is_ok());
    let err = check_bind("0.0.0.0:9091".parse().expect("works"), &open).expect_err("fails");
    assert!(err.to_string().contains("0.0.0.0:9091"), "{err}");
    assert!(
        check_bind(
            "192.0.2.5:9091".parse().expect("works"),
            &Access { token: Some(String::new()), user_password: None }
        )
        .is_err()
    );
    assert!(
        check_bind("0.0.0.0:9091".parse().expect("works"), &Access { token: Some("t".into()), user_password: None })
            .is_ok()
    );
    let user = Access { token: None, user_password: Some(("u".into(), "p".into())) };
    assert!(check_bind("0.0.0.0:9091".parse().expect("works"), &user).is_ok());
    assert!(!format!("{:?}", with_token().access).contains("s3cret"));
}

#[tokio::test]
async fn auth_is_checked_before_anything_runs() {
    let fake = Arc::new(Fake::with_torrents(2));
    let addr = serve(fake.clone(), with_token()).await;
    let before = fake.snapshot();
    let remove = || jsonrpc_body("torrent.remove", json!({"ids": "all"}));
    let basic = |user: &str, pw: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
    };

    for auth in [
        None,
        Some(("authorization", "Bearer wrong".to_owned())),
        Some(("x-shoal-token", "s3cre".to_owned())),
        Some(("authorization", basic("alice", "pw"))),
        Some(("authorization", basic("bob", "pw:1"))),
        Some(("authorization", "Basic !!!".to_owned())),
    ] {
        let r = post_json(addr, remove(), auth.as_ref().map(|(n, v)| (*n, v.as_str()))).await;
        assert_eq!(r.status(), 401, "{auth:?}");
        let challenges: Vec<_> =
            r.headers().get_all("www-authenticate").iter().map(|v| v.to_str().expect("works").to_owned()).collect();
        assert_eq!(challenges, vec!["Basic realm=\"Shoal\"", "Bearer realm=\"Shoal\""]);
    }
    // Not even the Transmission handshake or the body limit is reached without credentials.
    let r = client().post(format!("http://{addr}/transmission/rpc")).body("{}").send().await.expect("works");
    assert_eq!(r.status(), 401);
    let r = client()
        .post(format!("http://{addr}/xmlrpc"))
        .header("content-type", "text/xml")
        .body("x")
        .send()
        .await
        .expect("works");
    assert_eq!(r.status(), 401);
    assert_eq!(fake.snapshot(), before);

    let list = || jsonrpc_body("torrent.list", json!({}));
    for (name, value) in [
        ("authorization", "Bearer s3cret".to_owned()),
        ("x-shoal-token", "s3cret".to_owned()),
        ("authorization", basic("alice", "pw:1")),
    ] {
        let r = post_json(addr, list(), Some((name, &value))).await;
        assert_eq!(r.status(), 200, "{name}: {value}");
        let v: Value = serde_json::from_slice(&r.bytes().await.expect("works")).expect("works");
        assert_eq!(v["result"].as_array().expect("works").len(), 2);
    }
}

#[tokio::test]
async fn http_checks_size_type_host_and_paths() {
    let fake = Arc::new(Fake::with_torrents(1));
    let addr = serve(fake.clone(), Config { body_limit: 1024, ..Config::default() }).await;
    let before = fake.snapshot();

    let big = jsonrpc_body("torrent.pause", json!({"ids": [1], "pad": "x".repeat(2000)}));
    assert_eq!(post_json(addr, big, None).await.status(), 413);
    let r = client()
        .post(format!("http://{addr}/jsonrpc"))
        .body(jsonrpc_body("torrent.pause", json!([[1]])))
        .send()
        .await
        .expect("works");
    assert_eq!(r.status(), 415);
    let r = client()
        .post(format!("http://{addr}/jsonrpc"))
        .header("content-type", "application/json")
        .header("host", "evil.example:9091")
        .body(jsonrpc_body("torrent.pause", json!([[1]])))
        .send()
        .await
        .expect("works");
    assert_eq!(r.status(), 421);
    assert_eq!(fake.snapshot(), before);

    let r = client().get(format!("http://{addr}/jsonrpc")).send().await.expect("works");
    assert_eq!(r.status(), 405);
    let r = client().get(format!("http://{addr}/nothing")).send().await.expect("works");
    assert_eq!(r.status(), 404);
    let notification = json!({"jsonrpc": "2.0", "method": "torrent.pause", "params": [[1]]}).to_string();
    assert_eq!(post_json(addr, notification, None).await.status(), 204);
    assert_eq!(fake.state_of(1), TorrentState::Paused);
    let r = client()
        .post(format!("http://{addr}/xmlrpc"))
        .header("content-type", "text/xml; charset=utf-8")
        .header("host", "localhost:9091")
        .body("<methodCall><methodName>torrent.resume</methodName><params><param><value><int>1</int></value></param></params></methodCall>")
        .send()
        .await
        .expect("works");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("works").contains("<int>1</int>"));
    assert_eq!(fake.state_of(1), TorrentState::Downloading);
}

#[tokio::test]
async fn transmission_session_id_handshake() {
    let fake = Arc::new(Fake::with_torrents(1));
    let addr = serve(fake.clone(), Config::default()).await;
    let url = format!("http://{addr}/transmission/rpc");
    let stop = json!({"method": "torrent-stop", "arguments": {"ids": [1]}, "tag": 5}).to_string();

    let r = client().post(&url).body(stop.clone()).send().await.expect("works");
    assert_eq!(r.status(), 409);
    let id = r.headers()[SESSION_ID_HEADER].to_str().expect("works").to_owned();
    assert_eq!(id.len(), 48);
    assert_eq!(fake.state_of(1), TorrentState::Downloading);
    let r = client().post(&url).header(SESSION_ID_HEADER, "stale").body(stop.clone()).send().await.expect("works");
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()[SESSION_ID_HEADER], id.as_str());
    let r = client().get(format!("{url}/")).send().await.expect("works");
    assert_eq!((r.status().as_u16(), r.headers()[SESSION_ID_HEADER].to_str().expect("works")), (409, id.as_str()));
    assert_eq!(fake.state_of(1), TorrentState::Downloading);

    let r = client().post(&url).header(SESSION_ID_HEADER, &id).body(stop).send().await.expect("works");
    assert_eq!(r.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.bytes().await.expect("works")).expect("works"),
        json!({"arguments": {}, "result": "success", "tag": 5})
    );
    assert_eq!(fake.state_of(1), TorrentState::Paused);

    let other = serve(fake.clone(), Config::default()).await;
    let r = client()
        .post(format!("http://{other}/transmission/rpc"))
        .header(SESSION_ID_HEADER, &id)
        .body("{}")
        .send()
        .await
        .expect("works");
    assert_eq!(r.status(), 409, "each server has its own session id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_xmlrpc_client_round_trip() {
    require("python3", "Python 3");
    let fake = Arc::new(Fake::with_torrents(2));
    let addr = serve(fake.clone(), Config::default()).await;
    let script = r#"
import sys, xmlrpc.client
s = xmlrpc.client.ServerProxy(sys.argv[1])
methods = s.system.listMethods()
print("methods", len(methods), ",".join(sorted(methods)))
ts = s.torrent.list()
print("list", len(ts), ts[0]["name"], ts[0]["state"], ts[0]["total_bytes"], "files" in ts[0])
print("get", s.torrent.get([2], ["name", "files"])[0]["files"][1]["path"])
added = s.torrent.add({"torrent": xmlrpc.client.Binary(b"d4:infod4:name1:xee"), "paused": True})
print("added", added["id"], added["duplicate"])
print("paused", s.torrent.pause([1, 2]))
print("set", s.torrent.set({"ids": [1], "upload_limit": 5000, "file_priorities": [[1, "high"]]}))
stats = s.session.stats()
print("stats", stats["torrent_count"], stats["cumulative"]["uploaded"])
try:
    s.torrent.remove([99])
except xmlrpc.client.Fault as f:
    print("fault", f.faultCode, f.faultString)
try:
    s.torrent.frobnicate()
except xmlrpc.client.Fault as f:
    print("fault", f.faultCode)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &format!("http://{addr}/xmlrpc")]);
    let out = run(cmd).await;
    assert!(out.status.success(), "python failed:\n{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let expected_methods = {
        let mut m = crate::method::METHODS.to_vec();
        m.sort_unstable();
        format!("methods {} {}", m.len(), m.join(","))
    };
    assert_eq!(
        lines,
        vec![
            expected_methods.as_str(),
            "list 2 torrent-1 downloading 3000000 False",
            "get torrent-2/b.bin",
            "added 3 False",
            "paused [1, 2]",
            "set [1]",
            "stats 3 7000000000",
            "fault -32001 no torrent 99",
            "fault -32601",
        ],
        "stderr: {}",
        out.stderr
    );
    let t = fake.torrent(1);
    assert_eq!((t.state, t.upload_limit, t.files[1].priority), (TorrentState::Paused, Some(5000), Priority::High));
    assert_eq!(fake.state_of(3), TorrentState::Paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_json_client_round_trip() {
    require("python3", "Python 3");
    let fake = Arc::new(Fake::with_torrents(1));
    let addr = serve(fake.clone(), with_token()).await;
    let script = r#"
import sys, json, urllib.request
def call(method, params, token="s3cret"):
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 7}).encode()
    req = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(req))
print(call("torrent.get", {"ids": [1], "fields": ["name", "progress"]})["result"])
print(call("torrent.pause", {"ids": ["nothex"]})["error"]["code"])
try:
    call("torrent.list", {}, token="nope")
except urllib.error.HTTPError as e:
    print("http", e.code)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &format!("http://{addr}/jsonrpc")]);
    let out = run(cmd).await;
    assert!(out.status.success(), "python failed:\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["[{'name': 'torrent-1', 'progress': 0.5}]", "-32602", "http 401"]
    );
}

fn remote(addr: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = Command::new("transmission-remote");
    cmd.arg(addr.to_string()).args(args);
    // transmission-remote reads ~/.netrc and TR_AUTH only when told to; keep its environment plain.
    cmd.env_remove("TR_AUTH");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_remote_drives_the_api() {
    require("transmission-remote", "apt-get install -y transmission-cli");
    let fake = Arc::new(Fake::with_torrents(2));
    let addr = serve(fake.clone(), Config::default()).await;

    let out = run(remote(addr, &["-l"])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows.len(), 4, "{}", out.stdout);
    assert!(
        rows[0].split_whitespace().eq(["ID", "Done", "Have", "ETA", "Up", "Down", "Ratio", "Status", "Name"]),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].split_whitespace().eq([
            "1",
            "50%",
            "1.50",
            "MB",
            "6",
            "sec",
            "50.0",
            "250.0",
            "0.2",
            "Up",
            "&",
            "Down",
            "torrent-1"
        ]),
        "{}",
        rows[1]
    );
    assert!(rows[3].starts_with("Sum:") && rows[3].contains("3.00 MB"), "{}", rows[3]);

    let out = run(remote(addr, &["-st"])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    for line in [
        "CURRENT SESSION",
        "Uploaded:   5.00 MB",
        "Downloaded: 20.00 MB",
        "Ratio:      0.2",
        "Started 12 times",
        "Uploaded:   7.00 GB",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?} in:\n{}", out.stdout);
    }

    let out = run(remote(addr, &["-t", "2", "-i"])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    for line in [
        "Id: 2",
        "Name: torrent-2",
        &format!("Hash: {}", fake.torrent(2).info_hash),
        "State: Up & Down",
        "Location: /downloads",
        "Percent Done: 50.0%",
        "Total size: 3.00 MB (3.00 MB wanted)",
        "Peers: connected to 3, uploading to 1, downloading from 2",
        "Piece Count: 12",
        "Peer limit: 50",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?} in:\n{}", out.stdout);
    }

    let out = run(remote(addr, &["-t", "1", "-S"])).await;
    assert!(out.status.success() && out.stdout.contains("responded: \"success\""), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.state_of(1), TorrentState::Paused);
    let out = run(remote(addr, &["-l"])).await;
    assert!(out.stdout.lines().nth(1).is_some_and(|l| l.contains("Stopped")), "{}", out.stdout);
    let out = run(remote(addr, &["-t", "1", "-s"])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.state_of(1), TorrentState::Downloading);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("new.torrent");
    std::fs::write(&file, b"d8:announce3:x:y4:infod4:name3:newee").expect("write torrent");
    let out = run(remote(addr, &["-a", file.to_str().expect("utf-8 path"), "-w", "/data"])).await;
    assert!(out.status.success() && out.stdout.contains("responded: \"success\""), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.count(), 3);
    assert_eq!(fake.torrent(3).download_dir, "/data");
    let out = run(remote(addr, &["-a", crate::fake::MAGNET])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.count(), 4);

    let out = run(remote(addr, &["-t", "3", "-r"])).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.count(), 3);

    // Errors reach the user as Transmission's "Error: ..." and change nothing.
    let before = fake.snapshot();
    let out = run(remote(addr, &["-t", "99", "-S"])).await;
    assert!(!out.status.success() && out.stdout.contains("Error: no torrent 99"), "{}\n{}", out.stdout, out.stderr);
    let out = run(remote(addr, &["-S"])).await;
    assert!(!out.status.success(), "no -t: transmission-remote sends id -1\n{}", out.stdout);
    let out = run(remote(addr, &["-a", "/nonexistent/file.torrent"])).await;
    assert!(
        !out.status.success() && out.stdout.contains("Error: cannot read torrent file"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_remote_with_credentials() {
    require("transmission-remote", "apt-get install -y transmission-cli");
    let fake = Arc::new(Fake::with_torrents(1));
    let addr = serve(fake.clone(), with_token()).await;

    let out = run(remote(addr, &["--auth", "alice:pw:1", "-l"])).await;
    assert!(out.status.success() && out.stdout.contains("torrent-1"), "{}\n{}", out.stdout, out.stderr);

    let before = fake.snapshot();
    for auth in [None, Some("alice:wrong"), Some("mallory:pw:1")] {
        let mut args = Vec::new();
        if let Some(auth) = auth {
            args.extend(["--auth", auth]);
        }
        args.extend(["-t", "1", "-r"]);
        let out = run(remote(addr, &args)).await;
        assert!(!out.status.success(), "{auth:?}: {}", out.stdout);
        assert!(out.stderr.contains("401"), "{auth:?}: {}\n{}", out.stdout, out.stderr);
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn r_a_client_that_disconnects_mid_add_does_not_cancel_it() {
    use tokio::io::AsyncWriteExt;
    let fake = Arc::new(Fake::with_torrents(0).with_add_delay(Duration::from_millis(500)));
    let addr = serve(fake.clone(), Config::default()).await;
    let body = jsonrpc_body("torrent.add", json!({"magnet": crate::fake::MAGNET}));
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    // Gone long before the add finishes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.snapshot().torrents.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the add was cancelled with the connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.snapshot().added, 1);
}
