//! The index server (`shoal index`), `shoal publish` and `shoal search`, end to end on
//! 127.0.0.1 with discovery off:
//!
//! - a signed record is published, found by the start of its words and ranked by name, and
//!   `shoal get @1` fetches it;
//! - a record whose signature does not match (altered after signing, or claiming another
//!   publisher) is refused, and so is a publisher past its limit;
//! - a group share's record is shown only to a caller that proves membership of that group
//!   (a signed query with its member certificate), not to others, nor to the member of another
//!   group of the same name.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;

use std::path::Path;
use std::time::Duration;

use interop::{LISTEN_ANY, NO_DISCOVERY, START_TIMEOUT, ok, shoal, shoal_create};
use people::{invite_and_join, run, run_ok, s};
use shoal_testkit::{Proc, TempDir, compare_files, ensure_tools, make_test_file};

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-search-").tempdir().expect("temporary folder")
}

fn start_index(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let mut cmd = shoal(["index", "--listen", "127.0.0.1:0"]);
    cmd.arg("--data-dir").arg(dir).args(extra);
    let proc = ok(Proc::spawn("index", cmd));
    let line = ok(proc.wait_for_line("index: ", START_TIMEOUT));
    let url = line.split_whitespace().nth(1).expect("url").trim_end_matches('/').to_string();
    (proc, url)
}

/// Raw `POST url/publish` of `body`; returns (status line, body).
fn post(url: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

#[test]
fn a_published_record_is_found_ranked_and_fetched_with_get_at_n() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob) = (dir("alice"), dir("bob"));
    let (mut index, url) = start_index(&dir("index"), &[]);
    let src = dir("src");
    let iso = src.join("ubuntu-24.04-desktop-amd64.iso");
    make_test_file(&iso, 3 << 20, 4);
    let notes = src.join("release-notes.txt");
    make_test_file(&notes, 1000, 5);
    let (iso_t, notes_t) = (dir("iso.torrent"), dir("notes.torrent"));
    // The ISO's torrent lists the index's own tracker, so its results count its seeders.
    shoal_create(&iso, &iso_t, &["--tracker", &format!("{url}/announce")]);
    shoal_create(&notes, &notes_t, &[]);
    // The tag's match goes in first, so that only the ranking puts the name's first.
    run_ok(&alice, &["publish", s(&notes_t), "--index", &url, "--tags", "ubuntu"]);
    let said = run_ok(&alice, &["publish", s(&iso_t), "--index", &url, "--tags", "linux,distro"]);
    assert!(said.starts_with("published: ubuntu-24.04-desktop-amd64.iso"), "{said}");

    // Word starts, every word required, a match in the name ranked over one in the tags.
    let found = run_ok(&bob, &["search", "ubu", "--index", &url]);
    let lines: Vec<&str> = found.lines().filter(|l| l.contains(". ")).collect();
    assert_eq!(lines.len(), 2, "{found}");
    assert!(lines[0].contains("1. ubuntu-24.04-desktop-amd64.iso"), "{found}");
    let found = run_ok(&bob, &["search", "ubuntu", "24", "linux", "--index", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_str(found.trim()).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(v[0]["tags"], serde_json::json!(["linux", "distro"]));
    assert!(v[0]["magnet"].as_str().is_some_and(|m| m.starts_with("magnet:?xt=urn:btih:")), "{found}");
    assert_eq!(v[0]["seeders"], 0, "nobody seeds it yet: {found}");

    // A seed announces to the index's tracker: the results count it.
    let mut share = shoal(["share"]);
    share.arg(&iso).arg("-o").arg(&iso_t).args(["--listen", LISTEN_ANY]).args(NO_DISCOVERY);
    let share = ok(Proc::spawn("share", share));
    ok(share.wait_for_line("ready: ", START_TIMEOUT));
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        let found = run_ok(&bob, &["search", "ubuntu", "24", "linux", "--index", &url, "--json"]);
        serde_json::from_str::<serde_json::Value>(found.trim()).expect("json")[0]["seeders"] == 1
    }));
    assert!(run_ok(&bob, &["search", "ubuntu", "24", "--index", &url]).contains("1 seeder"));
    // @1 is the last search's first result, found through the tracker its magnet link names.
    let out = dir("out");
    run_ok(&bob, &["get", "@1", "-o", s(&out), "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    ok(compare_files(&iso, out.join("ubuntu-24.04-desktop-amd64.iso")));
    let (code, _, stderr) = run(&bob, &["get", "@9", "-o", s(&out)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the last search had 1 result"), "{stderr}");
    drop(share);
    ok(index.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn forged_records_and_publishers_past_their_limit_are_refused() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, mallory) = (dir("alice"), dir("mallory"));
    let (mut index, url) = start_index(&dir("index"), &["--per-identity", "1"]);
    let data = dir("a.bin");
    make_test_file(&data, 1000, 1);
    let torrent = dir("a.torrent");
    shoal_create(&data, &torrent, &[]);
    run_ok(&alice, &["publish", s(&torrent), "--index", &url]);
    let again = run_ok(&alice, &["publish", s(&torrent), "--index", &url]);
    assert!(again.contains("it had this record already"), "{again}");
    // The same record, altered, and one claiming alice as its publisher.
    let found = run_ok(&mallory, &["search", "a.bin", "--index", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_str(found.trim()).expect("json");
    let alice_id = v[0]["publisher"].as_str().expect("publisher").to_string();
    let mut record = serde_json::json!({
        "body": {
            "info_hash": "ab".repeat(20), "name": "totally legit", "size": 1, "files": [], "file_count": 0,
            "tags": [], "trackers": [], "group": null, "publisher": alice_id, "published_at": 1
        },
        "signature": "00".repeat(64)
    });
    let (status, body) = post(&url, &record.to_string());
    assert!(status.contains("400") && body.contains("signature"), "{status} {body}");
    record["signature"] = serde_json::json!("not hex");
    let (status, body) = post(&url, &record.to_string());
    assert!(status.contains("400"), "{status} {body}");
    let (status, body) = post(&url, "{\"body\": 1}");
    assert!(status.contains("400"), "{status} {body}");
    let found = run_ok(&mallory, &["search", "legit", "--index", &url]);
    assert!(found.contains("nothing found"), "{found}");
    // alice keeps one record here: a second is refused, naming the limit.
    let other = dir("b.bin");
    make_test_file(&other, 1000, 2);
    let other_t = dir("b.torrent");
    shoal_create(&other, &other_t, &[]);
    let (code, _, stderr) = run(&alice, &["publish", s(&other_t), "--index", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("keeps 1 records here"), "{stderr}");
    ok(index.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn a_group_share_record_is_shown_only_to_the_groups_members() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob, carol) = (dir("alice"), dir("bob"), dir("carol"));
    run_ok(&alice, &["group", "create", "lab"]);
    invite_and_join(&alice, "lab", &bob);
    run_ok(&carol, &["group", "create", "lab"]);
    let (mut index, url) = start_index(&dir("index"), &[]);
    let data = dir("lecture-notes.pdf");
    make_test_file(&data, 5000, 3);
    let torrent = dir("lecture.torrent");
    shoal_create(&data, &torrent, &["--group", "lab", "--data-dir", s(&alice)]);
    run_ok(&alice, &["publish", s(&torrent), "--index", &url]);

    let anyone = run_ok(&carol, &["search", "lecture", "--index", &url]);
    assert!(anyone.contains("nothing found"), "a stranger saw a group record: {anyone}");
    let other_lab = run_ok(&carol, &["search", "lecture", "--index", &url, "--member", "lab"]);
    assert!(other_lab.contains("nothing found"), "another authority's member saw it: {other_lab}");
    let member = run_ok(&bob, &["search", "lecture", "--index", &url, "--member", "lab"]);
    assert!(member.contains("lecture-notes.pdf") && member.contains("(group share)"), "{member}");
    // A magnet link cannot open a group share: @1 says what to do instead.
    let (code, _, stderr) = run(&bob, &["get", "@1", "-o", s(&dir("out"))]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a group share: ask its publisher or a member for the .torrent"), "{stderr}");
    ok(index.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn the_daemon_searches_its_own_torrents_then_its_index_servers() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob) = (dir("alice"), dir("bob"));
    let (mut index, url) = start_index(&dir("index"), &[]);
    let src = dir("src");
    let (mine, theirs) = (src.join("ubuntu-server-notes.txt"), src.join("ubuntu-24.04-desktop.iso"));
    make_test_file(&mine, 2000, 1);
    make_test_file(&theirs, 3000, 2);
    let (mine_t, theirs_t) = (dir("mine.torrent"), dir("theirs.torrent"));
    shoal_create(&mine, &mine_t, &[]);
    shoal_create(&theirs, &theirs_t, &[]);
    run_ok(&alice, &["publish", s(&theirs_t), "--index", &url]);
    // The daemon's own torrent is published too: it is shown once, as its own.
    run_ok(&alice, &["publish", s(&mine_t), "--index", &url]);

    let port = shoal_testkit::free_port();
    let mut cmd = shoal(["daemon", "--listen", LISTEN_ANY, "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{port}")).args(NO_DISCOVERY).arg("--data-dir").arg(&bob);
    cmd.args(["--search-index", &url, "--download-dir"]).arg(&src);
    let mut daemon = ok(Proc::spawn("daemon", cmd));
    ok(daemon.wait_for_line("ready: ", START_TIMEOUT));
    let rpc = format!("127.0.0.1:{port}");
    let mut add = shoal(["add"]);
    add.arg(&mine_t).args(["--rpc", &rpc]);
    ok(ok(shoal_testkit::run_captured(add, START_TIMEOUT)).ok());

    let found = run_ok(&bob, &["search", "ubuntu", "--rpc", &rpc, "--json"]);
    let v: serde_json::Value = serde_json::from_str(found.trim()).expect("json");
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 2, "{found}");
    assert_eq!(rows[0]["name"], "ubuntu-server-notes.txt", "{found}");
    assert_eq!(rows[0]["source"], "local", "{found}");
    assert_eq!(rows[1]["name"], "ubuntu-24.04-desktop.iso", "{found}");
    assert_eq!(rows[1]["source"], "index", "{found}");
    assert!(rows[1]["publisher"].is_string(), "{found}");
    let text = run_ok(&bob, &["search", "ubu", "desk", "--rpc", &rpc]);
    assert!(text.contains("1. ubuntu-24.04-desktop.iso") && text.contains("[index]"), "{text}");
    assert_eq!(rows[1]["seeders"], 0, "the index's tracker counted no seeder: {found}");
    // With the index gone, the daemon still answers with its own and with what it learned.
    ok(index.terminate(Duration::from_secs(15)).map(drop));
    let found = run_ok(&bob, &["search", "ubuntu", "--rpc", &rpc, "--json"]);
    let v: serde_json::Value = serde_json::from_str(found.trim()).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{found}");
    assert_eq!((&v[1]["source"], &v[1]["verified"]), (&"index".into(), &false.into()), "{found}");
    assert_eq!(v[1]["seeders"], 0, "the seeders last seen are kept: {found}");
    ok(daemon.terminate(Duration::from_secs(15)).map(drop));
}
