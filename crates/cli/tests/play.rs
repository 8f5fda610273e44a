//! `shoal play`: a file of a torrent served over HTTP while it downloads, read by a real
//! client (ffprobe) and by plain HTTP requests: ranges, seeks, several readers, a reader that
//! goes away, bad requests, and seeds that are Shoal or libtorrent.

#[path = "support/shoal.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_testkit::{Proc, TempDir, run_captured, tools};
use support::{QUICK, STOP_GRACE, Seed, shoal};

/// How long one HTTP answer may take (it waits for its pieces to arrive and be verified).
const ANSWER: Duration = Duration::from_secs(120);

/// A 30 s H.264 video of about 2 Mbit/s (noise keeps the encoder at the bitrate), with its
/// index (`moov`) at the end unless `faststart`.
fn make_video(path: &Path, faststart: bool) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=30")
        .args(["-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M"]);
    if faststart {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg(path);
    let out = run_captured(cmd, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("ffmpeg is needed (./scripts/test installs it): {e}"));
    assert!(out.status.success(), "ffmpeg failed: {}", out.stderr);
}

/// `shoal play TORRENT --no-player` from `peer`, and the URL it printed.
fn start_play(torrent: &Path, out: &Path, peer: &str, extra: &[&str]) -> (Proc, String) {
    let mut cmd = shoal(["play"]);
    cmd.arg(torrent).arg("-o").arg(out).args([
        "--no-player",
        "--no-trackers",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        peer,
    ]);
    cmd.args(extra);
    let proc = Proc::spawn("play", cmd).unwrap_or_else(|e| panic!("{e}"));
    let line = proc.wait_for_line("stream: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let url = line["stream: ".len()..].trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (proc, url)
}

/// One HTTP/1.1 answer: status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Splits `http://HOST:PORT/PATH` into the address and the path.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.to_owned(), format!("/{path}"))
}

/// Sends one request on a new connection (closed after the answer) and reads the answer.
fn request(url: &str, method: &str, range: Option<&str>) -> Answer {
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    request_with(url, method, &range, b"")
}

/// [`request`] with header lines (each ending in CRLF) and a body.
fn request_with(url: &str, method: &str, headers: &str, body: &[u8]) -> Answer {
    let (host, path) = split_url(url);
    let mut s = TcpStream::connect(&host).expect("connect");
    s.set_read_timeout(Some(ANSWER)).expect("timeout");
    let length = if body.is_empty() { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}{length}Connection: close\r\n\r\n").expect("send");
    s.write_all(body).expect("send the body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: raw[end + 4..].to_vec() }
}

/// How many of the file's 16 KiB blocks are on disk with the right bytes.
fn blocks_present(original: &[u8], downloaded: &Path) -> (usize, usize) {
    let on_disk = std::fs::read(downloaded).unwrap_or_default();
    let total = original.len().div_ceil(16384);
    let present = original
        .chunks(16384)
        .enumerate()
        .filter(|(i, chunk)| on_disk.get(i * 16384..i * 16384 + chunk.len()) == Some(*chunk))
        .count();
    (present, total)
}

fn ffprobe(url: &str) -> (String, f64) {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "default=nw=1", url]);
    let out =
        run_captured(cmd, ANSWER).unwrap_or_else(|e| panic!("ffprobe is needed (./scripts/test installs it): {e}"));
    assert!(out.status.success(), "ffprobe {url} failed: {}", out.stderr);
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {:?}", out.stdout))
            .to_owned()
    };
    (field("codec_name"), field("duration").parse().expect("a duration"))
}

#[test]
fn a_video_is_probed_sought_and_read_by_several_readers_while_it_downloads() {
    let dir = TempDir::new().expect("temp dir");
    let video = dir.path().join("seed").join("film.mp4");
    std::fs::create_dir_all(video.parent().expect("parent")).expect("mkdir");
    // The index at the end: a player needs the file's last bytes before it can start.
    make_video(&video, false);
    let original = std::fs::read(&video).expect("read the video");
    let torrent = dir.path().join("film.torrent");
    // The seed sends 256 KiB/s: the whole file takes far longer than anything asked below.
    let mut seed = Seed::start("seed", &video, &torrent, &["--upload-limit", "256k"]);
    let out = dir.path().join("out");
    let (mut play, url) = start_play(&torrent, &out, &seed.addr.to_string(), &[]);
    let downloaded: PathBuf = out.join("film.mp4");

    let started = Instant::now();
    let (codec, duration) = ffprobe(&url);
    assert_eq!(codec, "h264");
    assert!((duration - 30.0).abs() < 0.5, "duration {duration}");
    let (present, total) = blocks_present(&original, &downloaded);
    assert!(present < total, "ffprobe answered only once the whole file was there");
    println!("ffprobe answered after {:.2?} with {present} of {total} blocks on disk", started.elapsed());

    // A seek far ahead: the bytes there come before the ones in between.
    let far = original.len() * 4 / 5;
    let seek = request(&url, "GET", Some(&format!("bytes={far}-{}", far + 99_999)));
    assert_eq!(seek.status, 206);
    assert_eq!(seek.header("content-range"), Some(format!("bytes {far}-{}/{}", far + 99_999, original.len()).as_str()));
    assert!(seek.body == original[far..far + 100_000], "the bytes at the seek position differ");
    let (present, total) = blocks_present(&original, &downloaded);
    assert!(present < total, "the seek was answered only once the whole file was there");

    // Two readers at once, at different places.
    let readers: Vec<_> = [original.len() / 3, original.len() / 2]
        .into_iter()
        .map(|at| {
            let url = url.clone();
            std::thread::spawn(move || (at, request(&url, "GET", Some(&format!("bytes={at}-{}", at + 199_999)))))
        })
        .collect();
    for reader in readers {
        let (at, answer) = reader.join().expect("reader");
        assert_eq!(answer.status, 206);
        assert!(answer.body == original[at..at + 200_000], "reader at {at} got other bytes");
    }

    // A reader that goes away in the middle of the file costs nothing later: the node goes on
    // serving and downloading.
    {
        let (host, path) = split_url(&url);
        let mut s = TcpStream::connect(&host).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send");
        let mut some = [0u8; 65536];
        s.set_read_timeout(Some(ANSWER)).expect("timeout");
        let n = s.read(&mut some).expect("the start of the answer");
        assert!(n > 0);
    }
    let whole = request(&url, "GET", None);
    assert_eq!(whole.status, 200);
    assert!(whole.body == original, "the whole file read over HTTP differs from the original");
    // Everything was read, so everything is on disk too: the data stays for a later `get`.
    assert_eq!(
        blocks_present(&original, &downloaded),
        (original.len().div_ceil(16384), original.len().div_ceil(16384))
    );
    assert!(play.terminate(STOP_GRACE).expect("stops").success(), "{}", play.output());
    seed.stop();
}

#[test]
fn a_request_for_bytes_not_here_yet_gets_its_headers_at_once() {
    // A player that seeks opens a new request and closes the old one only once the new one's
    // headers came: they must not wait for the bytes. Here no bytes can come (the seed is gone).
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed").join("talk.mp4");
    std::fs::create_dir_all(data.parent().expect("parent")).expect("mkdir");
    shoal_testkit::make_test_file(&data, 1 << 20, 9);
    let torrent = dir.path().join("talk.torrent");
    let mut seed = Seed::start("seed", &data, &torrent, &[]);
    let gone = seed.addr.to_string();
    seed.stop();
    let (mut play, url) = start_play(&torrent, &dir.path().join("out"), &gone, &[]);
    let (host, path) = split_url(&url);
    let mut s = TcpStream::connect(&host).expect("connect");
    s.set_read_timeout(Some(QUICK)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes=500000-599999\r\n\r\n").expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n =
            s.read(&mut byte).unwrap_or_else(|e| panic!("no headers ({e}); got {:?}", String::from_utf8_lossy(&head)));
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(head.contains("content-range: bytes 500000-599999/1048576"), "{head}");
    drop(s);
    assert!(play.terminate(STOP_GRACE).expect("stops").success(), "{}", play.output());
}

#[test]
fn http_answers_follow_the_rules_and_a_libtorrent_seed_serves_the_stream() {
    shoal_testkit::ensure_tools();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed");
    std::fs::create_dir_all(&data).expect("mkdir");
    let video = data.join("clip.mkv");
    shoal_testkit::make_test_file(&video, 3 << 20, 11);
    let original = std::fs::read(&video).expect("read");
    let torrent = dir.path().join("clip.torrent");
    tools::lt_create(&video, &torrent, &[]).unwrap_or_else(|e| panic!("{e}"));
    let (mut lt_seed, port) = tools::spawn_lt_seed(&torrent, &data, &[]).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let (mut play, url) = start_play(&torrent, &out, &format!("127.0.0.1:{port}"), &["--file", "0"]);
    assert!(url.ends_with("/0/clip.mkv"), "{url}");
    let len = original.len();

    let head = request(&url, "HEAD", None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert_eq!(head.header("content-type"), Some("video/x-matroska"));
    assert_eq!(head.header("content-length"), Some(len.to_string().as_str()));
    assert!(head.body.is_empty());

    let first = request(&url, "GET", Some("bytes=0-99"));
    assert_eq!((first.status, first.header("content-range")), (206, Some(format!("bytes 0-99/{len}").as_str())));
    assert!(first.body == original[..100]);
    let last = request(&url, "GET", Some("bytes=-100"));
    assert_eq!(last.header("content-range"), Some(format!("bytes {}-{}/{len}", len - 100, len - 1).as_str()));
    assert!(last.body == original[len - 100..]);
    let tail = request(&url, "GET", Some(&format!("bytes={}-", len - 5000)));
    assert_eq!(tail.status, 206);
    assert!(tail.body == original[len - 5000..]);

    let past = request(&url, "GET", Some(&format!("bytes={len}-")));
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some(format!("bytes */{len}").as_str()));

    let (host, _) = split_url(&url);
    let missing = request(&format!("http://{host}/7/clip.mkv"), "GET", None);
    assert_eq!(missing.status, 404);
    assert!(
        String::from_utf8_lossy(&missing.body).contains("no file 7"),
        "{:?}",
        String::from_utf8_lossy(&missing.body)
    );
    let post = request(&url, "POST", None);
    assert_eq!(post.status, 405);

    // None of that disturbed the download.
    let whole = request(&url, "GET", None);
    assert_eq!(whole.status, 200);
    assert!(whole.body == original, "the stream from the libtorrent seed differs from the file");
    assert!(play.terminate(STOP_GRACE).expect("stops").success(), "{}", play.output());
    lt_seed.terminate(STOP_GRACE).expect("the libtorrent seed stops");
}

#[test]
fn bad_file_choices_are_refused_naming_the_files() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("one.bin");
    shoal_testkit::make_test_file(&data, 100_000, 3);
    let torrent = dir.path().join("one.torrent");
    let mut create = shoal(["create"]);
    create.arg(&data).arg("-o").arg(&torrent);
    assert!(support::run(create, QUICK).status.success());
    for (file, mentions) in [("5", vec!["--file 5", "0 to 0"]), ("nope.mkv", vec!["nope.mkv", "one.bin"])] {
        let mut cmd = shoal(["play"]);
        cmd.arg(&torrent).arg("-o").arg(dir.path().join("out")).args(["--no-player", "--listen", "127.0.0.1:0"]);
        cmd.args(["--file", file]);
        let out = support::run(cmd, QUICK);
        support::assert_input_error(&out, &mentions);
    }
}

/// A JSON-RPC call to the daemon with the token; its `result`.
fn rpc(port: u16, token: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let headers = format!("Content-Type: application/json\r\nX-Shoal-Token: {token}\r\n");
    let answer = request_with(&format!("http://127.0.0.1:{port}/jsonrpc"), "POST", &headers, body.as_bytes());
    assert_eq!(answer.status, 200, "{method}: {}", String::from_utf8_lossy(&answer.body));
    let v: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

#[test]
fn the_daemon_streams_files_under_the_rpc_credentials() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed").join("talk.mp4");
    std::fs::create_dir_all(data.parent().expect("parent")).expect("mkdir");
    shoal_testkit::make_test_file(&data, 2 << 20, 5);
    let original = std::fs::read(&data).expect("read");
    let torrent = dir.path().join("talk.torrent");
    let mut seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "512k"]);
    let config = dir.path().join("shoal.toml");
    std::fs::write(&config, "[rpc]\ntoken = \"s3cret\"\n").expect("config");
    let port = shoal_testkit::free_port();
    let mut cmd = support::shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(dir.path().join("state")).arg("--config").arg(&config);
    let mut daemon = Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"));
    daemon.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&torrent).expect("torrent"));
    let added = rpc(
        port,
        "s3cret",
        "torrent.add",
        serde_json::json!({
            "torrent": encoded, "download_dir": dir.path().join("dl"), "peers": [seed.addr.to_string()], "paused": true
        }),
    );
    let id = added["id"].as_u64().expect("id");
    // Paused, nothing arrives: a reader is told so at once instead of waiting.
    let paused =
        request_with(&format!("http://127.0.0.1:{port}/stream/{id}/0"), "GET", "X-Shoal-Token: s3cret\r\n", b"");
    assert_eq!(paused.status, 503);
    assert!(String::from_utf8_lossy(&paused.body).contains("paused"), "{}", String::from_utf8_lossy(&paused.body));
    rpc(port, "s3cret", "torrent.resume", serde_json::json!({"ids": [id]}));
    let got = rpc(port, "s3cret", "torrent.get", serde_json::json!({"ids": [id], "fields": ["files"]}));
    let path = got[0]["files"][0]["stream"].as_str().expect("a stream path").to_owned();
    assert_eq!(path, format!("/stream/{id}/0"));
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}{path}");

    assert_eq!(request(&url, "GET", None).status, 401, "no credentials");
    assert_eq!(request(&format!("{url}?token=wrong"), "GET", None).status, 401, "a wrong token");
    let part = request(&format!("{url}?token=s3cret"), "GET", Some("bytes=1000000-1000099"));
    assert_eq!(part.status, 206);
    assert!(part.body == original[1_000_000..1_000_100]);
    let whole = request_with(&url, "GET", "X-Shoal-Token: s3cret\r\n", b"");
    assert_eq!(whole.status, 200);
    assert!(whole.body == original, "the streamed file differs from the original");

    for (bad, says) in [("/stream/99/0".to_string(), "no torrent 99"), (format!("/stream/{id}/5"), "no file 5")] {
        let answer = request(&format!("{base}{bad}?token=s3cret"), "GET", None);
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, 404, "{bad}: {text}");
        assert!(text.contains(says), "{bad}: {text}");
    }
    assert!(daemon.terminate(STOP_GRACE).expect("stops").success(), "{}", daemon.output());
    seed.stop();
}
