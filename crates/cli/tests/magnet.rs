//! End-to-end tests of magnet links and torrent URLs on loopback: `shoal get` fetches the
//! metadata from a `shoal share` seed (BEP 9) found through the link's `x.pe` or its tracker,
//! checks it against the info-hash, then downloads; `so` (BEP 53) limits the download to the
//! chosen files; an http URL of a .torrent file works like its path. Every download is compared
//! byte for byte with the original.

#[path = "support/shoal.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Instant;

use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file};
use support::{DOWNLOAD, MIB, QUICK, Seed, complete_line, shoal};

/// `shoal get SOURCE -o OUT --listen 127.0.0.1:0 --no-dht EXTRA...` as a captured child.
fn spawn_get_source(name: &str, source: &str, out: &Path, extra: &[&str]) -> Proc {
    let mut cmd = shoal(["get", source, "-o"]);
    cmd.arg(out).args(["--listen", "127.0.0.1:0"]).args(extra);
    Proc::spawn(name, cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// The magnet link a seed printed.
fn magnet_of(seed: &Seed) -> String {
    let line = seed.proc.wait_for_line("magnet: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    line.trim_start_matches("magnet: ").to_owned()
}

#[test]
fn magnet_with_a_peer_address_fetches_metadata_then_data() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/film.bin");
    let size = 4 * MIB + 777;
    make_test_file(&data, size, 31);
    let seed = Seed::start("seed", &data, &dir.path().join("film.torrent"), &[]);
    let link = format!("{}&x.pe={}", magnet_of(&seed), seed.addr);

    let out = dir.path().join("leech");
    let mut leech = spawn_get_source("leech", &link, &out, &[]);
    leech.wait_for_line("fetching metadata of film.bin", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let meta_line = leech.wait_for_line("metadata: ", DOWNLOAD).unwrap_or_else(|e| panic!("{e}"));
    assert!(meta_line.starts_with("metadata: film.bin ("), "{meta_line}");
    complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("film.bin"));
    println!("magnet download took {:?}", started.elapsed());
}

#[test]
fn magnet_with_only_a_tracker_finds_the_seed() {
    let dir = TempDir::new().expect("temp dir");
    let tracker = Proc::spawn("tracker", {
        let mut cmd = shoal(["tracker", "--listen", "127.0.0.1:0", "--interval", "1"]);
        cmd.env("SHOAL_LOG", "info");
        cmd
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let line = tracker.wait_for_line("tracker listening on http://", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let url = line.trim_start_matches("tracker listening on ").to_owned();

    let data = dir.path().join("seed/set");
    make_test_file(data.join("a.bin"), MIB + 5, 41);
    make_test_file(data.join("b.bin"), 300_000, 42);
    let seed = Seed::start("seed", &data, &dir.path().join("set.torrent"), &["--tracker", &url]);
    let link = magnet_of(&seed);
    assert!(link.contains("tr="), "the seed's magnet link lists its tracker: {link}");

    let out = dir.path().join("leech");
    let mut leech = spawn_get_source("leech", &link, &out, &[]);
    complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("set"));
}

#[test]
fn magnet_select_only_fetches_the_chosen_file() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/set");
    // Files are listed in name order: a.bin is file 0, b.bin file 1, c.bin file 2.
    make_test_file(data.join("a.bin"), 2 * MIB, 51);
    make_test_file(data.join("b.bin"), 3 * MIB + 17, 52);
    make_test_file(data.join("c.bin"), 2 * MIB, 53);
    let torrent = dir.path().join("set.torrent");
    let seed = Seed::start("seed", &data, &torrent, &["--piece-size", "65536"]);
    let link = format!("{}&x.pe={}&so=1", magnet_of(&seed), seed.addr);

    let out = dir.path().join("leech");
    let mut leech = spawn_get_source("leech", &link, &out, &[]);
    let done = complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(data.join("b.bin"), out.join("set/b.bin"));
    // Only the pieces of b.bin (and the two it shares with its neighbours) were fetched.
    let wanted = (3 * MIB + 17) as f64;
    assert!(done.fetched < wanted + 2.0 * 65536.0 + 1.0, "fetched {} for a {wanted}-byte file", done.fetched);
    // The summary counts the chosen file only.
    assert!((done.verified - wanted).abs() < 0.01 * wanted, "{done:?} for a {wanted}-byte choice");
    for other in ["a.bin", "c.bin"] {
        let same = std::fs::read(out.join("set").join(other)).ok() == std::fs::read(data.join(other)).ok();
        assert!(!same, "{other} was not selected but was downloaded whole");
    }
    // A file not chosen is created only when a piece it shares with the chosen one is
    // written: c.bin starts in b.bin's last piece; a.bin ends on a piece boundary.
    assert!(!out.join("set/a.bin").exists(), "a.bin shares no piece with b.bin and was not chosen");
    assert!(out.join("set/c.bin").exists(), "c.bin shares b.bin's last piece");
}

#[test]
fn r_magnet_select_only_past_the_last_file_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/set");
    for (i, f) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        make_test_file(data.join(f), MIB, 55 + i as u64);
    }
    let torrent = dir.path().join("set.torrent");
    let seed = Seed::start("seed", &data, &torrent, &[]);
    let link = format!("{}&x.pe={}&so=7", magnet_of(&seed), seed.addr);
    let out = dir.path().join("leech");
    let mut leech = spawn_get_source("leech", &link, &out, &[]);
    let status = leech.wait_exit(DOWNLOAD).expect("get ends");
    assert_eq!(status.code(), Some(2), "{}", leech.explain("so=7 on 3 files"));
    let stderr = support::log_lines(&leech);
    assert!(stderr.iter().any(|l| l.contains("so= names file 7") && l.contains("3 files")), "{stderr:?}");
    assert!(leech.stdout_lines().iter().all(|l| !l.starts_with("complete:")), "nothing reported complete");
    assert!(!out.join("set").exists(), "no files created: {:?}", support::list_tree(&out));
}

#[test]
fn http_url_of_a_torrent_file_works_like_its_path() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/doc.bin");
    make_test_file(&data, MIB + 3, 61);
    let torrent = dir.path().join("doc.torrent");
    let seed = Seed::start("seed", &data, &torrent, &[]);
    let body = std::fs::read(&torrent).expect("torrent bytes");
    let server = serve_once(body);

    let out = dir.path().join("leech");
    let url = format!("http://{server}/doc.torrent");
    let mut leech = spawn_get_source("leech", &url, &out, &["--peer", &seed.addr.to_string()]);
    complete_line(&leech, DOWNLOAD);
    leech.wait_success(QUICK).expect("get exits 0");
    assert_same_tree(&data, out.join("doc.bin"));
}

/// A one-request HTTP server on 127.0.0.1 answering `body` with status 200.
fn serve_once(body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else { return };
        let _ = conn.set_read_timeout(Some(QUICK));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
    });
    addr
}
