//! Search with no server, end to end: three daemons on 127.0.0.1 (DHT and LSD off) keep each
//! other as search neighbours (`--search-peer`) in a ring, a loop. One asks; the others answer
//! for the torrents they hold, with their signed records and their peer address; the asking
//! node ranks the results of a publisher it trusts first, checks a result against the torrent's metadata (fetched from the holder) and marks it
//! verified; `shoal get @N` fetches a result from the node that holds it; what was learned
//! stays in the asking node's index; a query with `--no-peers` stays at home. A neighbour that
//! passes on a record whose signature does not match it has that record dropped, and counted.
//! Two daemons that share a torrent (and were told nothing else) become search neighbours: a
//! torrent's peer that says `shoal_search` in its extension handshake is dialled.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;

use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::{LISTEN_ANY, NO_DISCOVERY, START_TIMEOUT, ok, shoal, shoal_create};
use people::{identity, rpc, run_ok, s, torrent_b64};
use shoal_testkit::{Proc, TempDir, compare_files, ensure_tools, make_test_file};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-search-peers-").tempdir().expect("temporary folder")
}

struct Node {
    proc: Proc,
    rpc: u16,
    home: PathBuf,
}

fn start(home: &Path, peer_port: u16, neighbour: u16, extra: &[&str]) -> Node {
    let rpc = shoal_testkit::free_port();
    let mut cmd = shoal(["daemon", "--listen", &format!("127.0.0.1:{peer_port}"), "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc}")).args(NO_DISCOVERY).arg("--data-dir").arg(home);
    cmd.arg("--search-peer").arg(format!("127.0.0.1:{neighbour}")).args(extra);
    let proc = ok(Proc::spawn("daemon", cmd));
    ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    Node { proc, rpc, home: home.to_path_buf() }
}

/// Makes a file of `size` bytes named `name` under `home/src`, its torrent, and seeds it from
/// the daemon.
fn seed(node: &Node, name: &str, size: u64) -> PathBuf {
    let src = node.home.join("src");
    std::fs::create_dir_all(&src).expect("src");
    let data = src.join(name);
    make_test_file(&data, size, 3);
    let torrent = node.home.join(format!("{name}.torrent"));
    shoal_create(&data, &torrent, &[]);
    let added = rpc(
        node.rpc,
        None,
        "torrent.add",
        serde_json::json!({"torrent": torrent_b64(&torrent), "download_dir": s(&src)}),
    );
    let id = added["result"]["id"].as_u64().unwrap_or_else(|| panic!("{added}"));
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let t = rpc(node.rpc, None, "torrent.get", serde_json::json!({"ids": [id], "fields": ["state"]}));
        t["result"][0]["state"] == "seeding"
    }));
    data
}

fn search_json(node: &Node, words: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let url = format!("http://127.0.0.1:{}", node.rpc);
    let mut args = vec!["search", words, "--json", "--rpc", &url];
    args.extend(extra);
    let out = run_ok(&node.home, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn neighbours_answer_for_what_they_hold_and_get_at_n_fetches_it_from_them() {
    ensure_tools();
    let work = temp_dir();
    let ports: Vec<u16> = (0..3).map(|_| shoal_testkit::free_port()).collect();
    let homes: Vec<PathBuf> = ["ann", "ben", "cat"].iter().map(|n| work.path().join(n)).collect();
    // A ring: ann → ben → cat → ann; ann trusts cat's records.
    let cat = identity(&homes[2]);
    let trust = ["--trust", cat.as_str()];
    let nodes: Vec<Node> =
        (0..3).map(|i| start(&homes[i], ports[i], ports[(i + 1) % 3], if i == 0 { &trust } else { &[] })).collect();
    let report = seed(&nodes[1], "quarterly-report.bin", 2 * MIB + 11);
    seed(&nodes[2], "holiday-photos.bin", MIB);
    // Nothing at home yet.
    assert!(search_json(&nodes[0], "quarterly", &["--no-peers"]).is_empty());
    let mut found = Vec::new();
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        found = search_json(&nodes[0], "quarterly rep", &[]);
        !found.is_empty()
    }));
    assert_eq!(found.len(), 1, "{found:?}");
    let hit = &found[0];
    assert_eq!(hit["name"], "quarterly-report.bin");
    assert_eq!(hit["source"], "peers");
    assert_eq!(hit["publisher"].as_str(), Some(identity(&homes[1]).replace('-', "").as_str()), "{hit}");
    assert_eq!(hit["verified"], false, "a name from a neighbour is not verified until its metadata is fetched");
    let holder = format!("x.pe=127.0.0.1:{}", ports[1]);
    assert!(hit["magnet"].as_str().is_some_and(|m| m.contains(&holder)), "{hit}");
    // The text view says where a result came from and that it is not checked yet (the check
    // starts once the answer is out: holiday-photos is asked for the first time here).
    let url = format!("http://127.0.0.1:{}", nodes[0].rpc);
    let text = run_ok(&nodes[0].home, &["search", "holiday", "--rpc", &url]);
    assert!(text.contains("holiday-photos.bin") && text.contains("[peers]"), "{text}");
    assert!(text.contains("(not verified yet)"), "{text}");
    // In the background the asking node fetched the metadata from the holder and compared it.
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        search_json(&nodes[0], "quarterly", &[]).first().is_some_and(|h| h["verified"] == true)
    }));
    // Both others answer a word they share; the trusted publisher's result comes first.
    let both = search_json(&nodes[0], "bin", &[]);
    let names: Vec<&str> = both.iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(names, ["holiday-photos.bin", "quarterly-report.bin"], "{both:?}");
    assert_eq!((&both[0]["trusted"], &both[1]["trusted"]), (&true.into(), &false.into()), "{both:?}");
    assert_eq!(search_json(&nodes[0], "quarterly", &[]).len(), 1);
    // @1 is fetched from the node that holds it (its address came with the answer).
    let out = work.path().join("out");
    run_ok(&nodes[0].home, &["get", "@1", "-o", s(&out), "--listen", LISTEN_ANY, "--no-dht", "--no-lsd"]);
    ok(compare_files(&report, out.join("quarterly-report.bin")));
    // The same search over XML-RPC (Python's xmlrpc.client), from the node's own index.
    let script = "import sys, xmlrpc.client as x; \
                  r = x.ServerProxy(sys.argv[1]).search.query({'q': 'quarterly', 'peers': False}); \
                  print(r[0]['name'], r[0]['source'], r[0]['verified'])";
    let mut py = std::process::Command::new("python3");
    py.args(["-c", script, &format!("http://127.0.0.1:{}/xmlrpc", nodes[0].rpc)]);
    let out = ok(ok(shoal_testkit::run_captured(py, START_TIMEOUT)).ok());
    assert_eq!(out.stdout.trim(), "quarterly-report.bin peers True", "{out:?}");
    // What was learned is in the asking node's index now.
    let kept = search_json(&nodes[0], "quarterly", &["--no-peers"]);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((&kept[0]["source"], &kept[0]["verified"]), (&"peers".into(), &true.into()), "{kept:?}");
    for mut node in nodes {
        ok(node.proc.terminate(Duration::from_secs(15)).map(drop));
    }
}

/// A search neighbour played by the test: it accepts the daemon's connection on `listener`,
/// and answers the first query with `records` (JSON). Returns once it has answered.
fn lying_neighbour(listener: std::net::TcpListener, records: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
    use shoal_proto::extension::ExtHandshake;
    use shoal_proto::{Handshake, PeerId};
    use shoal_search::overlay::Message;
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("the daemon dials its search peer");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut theirs = [0u8; Handshake::LEN];
        s.read_exact(&mut theirs).expect("their handshake");
        let theirs = Handshake::decode(&theirs).expect("a BitTorrent handshake");
        assert_eq!(theirs.info_hash, shoal_search::neighbours::swarm(), "the search swarm");
        s.write_all(&Handshake::new(theirs.info_hash, PeerId::generate([9; 12])).encode()).expect("handshake");
        let frame = |ext: u8, payload: &[u8]| {
            let mut f = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
            f.extend([20, ext]);
            f.extend(payload);
            f
        };
        let mut hs = ExtHandshake::default();
        hs.m.insert("shoal_search".into(), 3);
        s.write_all(&frame(0, &hs.encode())).expect("extension handshake");
        let mut their_id = None;
        loop {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).expect("a frame");
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).expect("its body");
            if body.len() < 2 || body[0] != 20 {
                continue;
            }
            if body[1] == 0 {
                their_id = ExtHandshake::decode(&body[2..]).expect("handshake").id_of("shoal_search");
                continue;
            }
            if let Ok(Message::Query { id, .. }) = Message::decode(&body[2..]) {
                let hits = Message::Hits { id, records, holder: None };
                s.write_all(&frame(their_id.expect("their id first"), &hits.encode())).expect("answer");
                return;
            }
        }
    })
}

#[test]
fn a_forged_record_from_a_neighbour_is_dropped_and_counted() {
    ensure_tools();
    let work = temp_dir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let neighbour = listener.local_addr().expect("addr").port();
    let node = start(&work.path().join("ann"), shoal_testkit::free_port(), neighbour, &[]);
    let (someone, _) = shoal_identity::Identity::load_or_create(&work.path().join("someone"), None).expect("identity");
    let body = |name: &str, hash: char| shoal_search::RecordBody {
        info_hash: hash.to_string().repeat(40),
        name: name.into(),
        size: 1000,
        files: Vec::new(),
        file_count: 1,
        tags: Vec::new(),
        trackers: Vec::new(),
        group: None,
        publisher: someone.id().compact(),
        published_at: 1,
    };
    let honest = shoal_search::Record::sign(body("annual report honest", 'a'), &someone).expect("sign");
    // Signed, then renamed: the signature no longer matches what it says.
    let mut forged = shoal_search::Record::sign(body("annual report forged", 'b'), &someone).expect("sign");
    forged.body.name = "annual report free money".into();
    let records = [&forged, &honest].map(|r| serde_json::to_vec(r).expect("json")).to_vec();
    let answering = lying_neighbour(listener, records);
    let mut found = Vec::new();
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        found = search_json(&node, "annual report", &[]);
        !found.is_empty()
    }));
    answering.join().expect("the neighbour answered");
    let names: Vec<&str> = found.iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(names, ["annual report honest"], "{found:?}");
    let status = rpc(node.rpc, None, "search.status", serde_json::json!({}));
    assert_eq!(status["result"]["bad_records"], 1, "{status}");
    let mut node = node;
    ok(node.proc.terminate(Duration::from_secs(15)).map(drop));
}

#[test]
fn the_peers_of_a_shared_torrent_become_search_neighbours() {
    ensure_tools();
    let work = temp_dir();
    let (ann_port, ben_port) = (shoal_testkit::free_port(), shoal_testkit::free_port());
    // Neither is told of the other as a search peer; each names a port nobody listens on.
    let nobody = shoal_testkit::free_port();
    let ann = start(&work.path().join("ann"), ann_port, nobody, &[]);
    let ben = start(&work.path().join("ben"), ben_port, nobody, &[]);
    let shared = seed(&ann, "common-dataset.bin", MIB);
    seed(&ann, "lighthouse-log.bin", MIB);
    // ben fetches the shared torrent from ann: its peer says it is in the search overlay.
    let torrent = ann.home.join("common-dataset.bin.torrent");
    let out = work.path().join("ben-out");
    std::fs::create_dir_all(&out).expect("out");
    let peer = format!("127.0.0.1:{ann_port}");
    let params = serde_json::json!({"torrent": torrent_b64(&torrent), "download_dir": s(&out), "peers": [peer]});
    let added = rpc(ben.rpc, None, "torrent.add", params);
    assert!(added["result"]["id"].is_u64(), "{added}");
    let mut found = Vec::new();
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        found = search_json(&ben, "lighthouse", &[]);
        !found.is_empty()
    }));
    assert_eq!((&found[0]["name"], &found[0]["source"]), (&"lighthouse-log.bin".into(), &"peers".into()), "{found:?}");
    // The neighbour is shown by its peer port, whichever side dialled.
    let status = rpc(ben.rpc, None, "search.status", serde_json::json!({}));
    assert_eq!(status["result"]["neighbours"], serde_json::json!([format!("127.0.0.1:{ann_port}")]), "{status}");
    let id = added["result"]["id"].as_u64().expect("id");
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let t = rpc(ben.rpc, None, "torrent.get", serde_json::json!({"ids": [id], "fields": ["state"]}));
        t["result"][0]["state"] == "seeding"
    }));
    ok(compare_files(&shared, out.join("common-dataset.bin")));
    for mut node in [ann, ben] {
        ok(node.proc.terminate(Duration::from_secs(15)).map(drop));
    }
}
