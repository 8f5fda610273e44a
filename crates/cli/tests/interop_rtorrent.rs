//! Interop with rTorrent 0.9.8 (a private, headless rtorrent per transfer, driven over its
//! XML-RPC socket through `drivers/rtorrent_client.py`), all on 127.0.0.1:
//!
//! - rTorrent downloads from a fresh `shoal share`, five times, each time from a new seed (so
//!   Shoal is initial seeding: it reveals pieces a few at a time with `have`s, since a
//!   [`bystander`] peer is connected first; a peer that comes alone is shown every piece) and a
//!   new rtorrent. rTorrent's encryption is `allow_incoming,try_outgoing,enable_retry`, the setting
//!   under which it used to stall ~29 s: when, at one of its request checks, it had already
//!   requested every piece revealed so far, it choked its own download side and looked again
//!   only at its next 30 s tick. Each download must complete within [`NO_STALL`] of `add_peer`.
//!   A stalled run is still waited for (up to [`STALLED_WAIT`]) so the failure says how long it
//!   took and shows rtorrent's progress lines.
//! - The same download once more through [`SplitRelay`], which hands rtorrent the seed's
//!   messages one per write and holds everything after an `unchoke` back for [`UNCHOKE_ALONE`].
//!   Before the fix the plain transfers above hit the stall only by chance (about one run in
//!   twenty when it was found, none in 80 runs when this test was written); this one makes one
//!   of its causes certain: a seed that unchokes before it has shown any piece leaves rtorrent
//!   unchoked with nothing to ask for, and before the fix rtorrent then got no data for ~30 s
//!   in every run.
//! - Shoal downloads from a seeding rtorrent with `shoal get --peer`.
//!
//! rtorrent 0.9.8 refuses a torrent without trackers while its DHT is off, so every torrent names
//! [`DEAD_TRACKER`], a closed loopback port; rtorrent's copy of it is disabled before the start.
//! Every transfer ends with a byte-for-byte comparison against the original file.
//!
//! rtorrent is never optional: when it is missing the tests fail and say how to install it
//! (`./scripts/test` does).

#[path = "support/shoal.rs"]
mod support;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_proto::magnet::Magnet;
use shoal_testkit::{Captured, Proc, TempDir, compare_files, make_test_file, repo_root, run_captured};
use support::{DOWNLOAD, MIB, QUICK, STOP_GRACE, Seed, complete_line, run, shoal, spawn_get};

/// A tracker nobody listens on (port 9 on loopback is closed): rtorrent needs one to accept the
/// torrent, and disables it before starting.
const DEAD_TRACKER: &str = "http://127.0.0.1:9/announce";
/// The rtorrent encryption setting that showed the stall (rtorrent dials with protocol
/// encryption first, which Shoal takes).
const ENCRYPTION: &str = "allow_incoming,try_outgoing,enable_retry";
/// rtorrent dialling in plaintext: the split relay reads the BitTorrent stream it forwards.
const PLAINTEXT_OUT: &str = "allow_incoming,enable_retry";
/// rtorrent requiring RC4-encrypted connections both ways.
const REQUIRE_RC4: &str = "allow_incoming,try_outgoing,require,require_RC4";
/// How many fresh seed / fresh rtorrent transfers the stall test runs.
const TRANSFERS: usize = 5;
/// How long one 32 MiB download may take from `add_peer` to complete (on loopback it takes well
/// under a second; the stall made it more than 29 s).
const NO_STALL: Duration = Duration::from_secs(10);
/// How long a download that has passed [`NO_STALL`] is still waited for, so the failure reports
/// how long the stall lasted.
const STALLED_WAIT: Duration = Duration::from_secs(45);
/// How long one driver command (load, start, add a peer, status) may take.
const RPC: Duration = Duration::from_secs(30);
/// How long rtorrent may take to start listening and answer its XML-RPC.
const RT_READY: Duration = Duration::from_secs(60);
/// How many lines of rtorrent's log a failure quotes.
const LOG_TAIL: usize = 40;
/// How long [`SplitRelay`] holds the seed's stream back after an `unchoke`: long enough for
/// rtorrent to act on the unchoke alone even on a busy machine.
const UNCHOKE_ALONE: Duration = Duration::from_millis(200);
/// How often the relay's accept loop checks whether it should stop.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

fn temp_dir(prefix: &str) -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix(prefix).tempdir().expect("temporary folder")
}

/// Panics with instructions unless `rtorrent` can be run; tests never skip because it is missing.
fn ensure_rtorrent() {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let mut cmd = Command::new("rtorrent");
        cmd.arg("-h");
        let out = run_captured(cmd, QUICK).and_then(Captured::ok)?;
        Ok(out.stdout.lines().next().unwrap_or_default().to_owned())
    });
    match checked {
        Ok(version) if !version.contains("version 0.9.8") => {
            eprintln!("warning: these tests are written against rTorrent 0.9.8; found {version:?}")
        }
        Ok(_) => {}
        Err(e) => panic!(
            "the rTorrent interop tests need rtorrent (0.9.8) on PATH; ./scripts/test installs it \
             (apt-get install -y rtorrent).\n{e}"
        ),
    }
}

/// A command running `drivers/rtorrent_client.py` with `args`.
fn rtorrent_client<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("drivers/rtorrent_client.py"))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// A torrent loaded into rtorrent.
struct Loaded {
    /// The info-hash (computed by the driver from the file; rtorrent listed the torrent under
    /// it), 40 lowercase hex digits.
    hash: String,
    /// The torrent's size as rtorrent reads it.
    size: u64,
}

/// How a wait for a complete torrent ended.
struct Waited {
    /// From the start of the wait (or its `add_peer` call) to the poll that saw it complete.
    seconds: Duration,
    /// The driver's final `{"done": ..., "seconds": ..., "longest_flat": ...}` object.
    result: Value,
    /// Its progress lines (JSON), for failure messages.
    progress: String,
}

/// A private rtorrent on 127.0.0.1 (see `rtorrent_client.py daemon`); stopped when dropped.
struct Rtorrent {
    daemon: Proc,
    home: TempDir,
    rpc: PathBuf,
    port: u16,
}

impl Rtorrent {
    /// Starts rtorrent with `encryption` in a new temporary folder and waits until its XML-RPC
    /// answers and it listens.
    fn start(encryption: &str) -> Rtorrent {
        let home = temp_dir("shoal-rt-");
        let mut cmd = rtorrent_client(["daemon", "--watch-stdin", "--encryption", encryption, "--home"]);
        cmd.arg(home.path());
        let daemon = Proc::spawn("rtorrent", cmd).unwrap_or_else(|e| panic!("{e}"));
        let line = daemon.wait_for_line("READY ", RT_READY).unwrap_or_else(|e| panic!("{e}"));
        // "READY <socket> <port>"
        let (rpc, port) = line["READY ".len()..]
            .rsplit_once(' ')
            .and_then(|(sock, port)| Some((PathBuf::from(sock), port.parse().ok()?)))
            .unwrap_or_else(|| panic!("{}", daemon.explain(&format!("bad READY line {line:?}"))));
        Rtorrent { daemon, home, rpc, port }
    }

    /// Where peers reach it.
    fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The folder it downloads into unless told otherwise.
    fn downloads(&self) -> PathBuf {
        self.home.path().join("downloads")
    }

    /// The last lines of rtorrent's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.home.path().join("rtorrent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    fn with_log(&self, error: &str) -> String {
        format!("{error}\n--- rtorrent log (last lines) ---\n{}\n--- end ---", self.log_tail())
    }

    /// Runs `rtorrent_client.py SUB --rpc SOCKET ARGS...` (at most `timeout`).
    fn client(&self, sub: &str, args: &[&OsStr], timeout: Duration) -> Result<Captured, String> {
        let mut cmd = rtorrent_client([sub, "--rpc"]);
        cmd.arg(&self.rpc).args(args);
        run_captured(cmd, timeout).and_then(Captured::ok).map_err(|e| self.with_log(&e))
    }

    /// Like [`Rtorrent::client`], panicking on failure; returns the last JSON line printed.
    fn command(&self, sub: &str, args: &[&OsStr]) -> Value {
        let out = self.client(sub, args, RPC).unwrap_or_else(|e| panic!("{e}"));
        last_json(&out.stdout)
            .unwrap_or_else(|| panic!("{}", self.with_log(&format!("{sub} printed no JSON: {out:?}"))))
    }

    /// Loads `torrent` (not started), its data in or going to `directory` (default: its
    /// downloads folder).
    fn add(&self, torrent: &Path, directory: Option<&Path>) -> Loaded {
        let mut args = vec![OsStr::new("--torrent"), torrent.as_os_str()];
        if let Some(dir) = directory {
            args.extend([OsStr::new("--directory"), dir.as_os_str()]);
        }
        let v = self.command("add", &args);
        match (v["hash"].as_str(), v["size_bytes"].as_u64()) {
            (Some(hash), Some(size)) => Loaded { hash: hash.to_ascii_lowercase(), size },
            _ => panic!("add printed {v}"),
        }
    }

    /// Runs `SUB --hash HASH EXTRA...`.
    fn on(&self, sub: &str, hash: &str, extra: &[&str]) -> Value {
        let mut args = vec![OsStr::new("--hash"), OsStr::new(hash)];
        args.extend(extra.iter().map(OsStr::new));
        self.command(sub, &args)
    }

    /// Waits (at most `timeout`) until torrent `hash` is complete; with `peer`, dials it first
    /// (rtorrent's `add_peer`) and counts the time from that call.
    fn wait(&self, hash: &str, peer: Option<SocketAddr>, timeout: Duration) -> Result<Waited, String> {
        let secs = timeout.as_secs_f64().to_string();
        let peer = peer.map(|p| p.to_string());
        let mut args = vec![OsStr::new("--hash"), OsStr::new(hash), OsStr::new("--timeout"), OsStr::new(&secs)];
        if let Some(p) = &peer {
            args.extend([OsStr::new("--peer"), OsStr::new(p)]);
        }
        let out = self.client("wait", &args, timeout + RPC)?;
        let result = last_json(&out.stdout).ok_or_else(|| format!("wait printed no result:\n{}", out.stdout))?;
        let seconds = result["seconds"].as_f64().ok_or_else(|| format!("wait printed {result}"))?;
        Ok(Waited { seconds: Duration::from_secs_f64(seconds), result, progress: out.stdout })
    }

    /// Torrent `hash`'s state and peers as rtorrent reports them (for failure messages).
    fn status(&self, hash: &str) -> String {
        let args = [OsStr::new("--hash"), OsStr::new(hash)];
        match self.client("status", &args, RPC) {
            Ok(out) => out.stdout,
            Err(e) => format!("(no status: {e})"),
        }
    }

    /// Stops rtorrent (SIGTERM; it closes its files) and checks the driver exited 0.
    fn stop(&mut self) {
        let status = self.daemon.terminate(STOP_GRACE).unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "{}", self.with_log(&self.daemon.explain(&format!("exited with {status}"))));
    }
}

/// The last line of `stdout` that parses as a JSON object.
fn last_json(stdout: &str) -> Option<Value> {
    stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
}

/// The info-hash in a `shoal share`'s `magnet:` line, lowercase hex.
fn share_info_hash(seed: &Seed) -> String {
    let line = seed.proc.wait_for_line("magnet: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let magnet = Magnet::parse(&line["magnet: ".len()..]).unwrap_or_else(|e| panic!("unparsable {line:?}: {e}"));
    magnet.info_hash.to_hex().to_ascii_lowercase()
}

/// A peer that connects to `seed`, exchanges handshakes and then only holds the connection
/// open, asking for nothing: the seed counts it (its first message, `have none`, says so), so
/// the next peer is not alone and is shown pieces a few at a time.
fn bystander(seed: SocketAddr, info_hash_hex: &str) -> TcpStream {
    use shoal_proto::{Handshake, InfoHash, PeerId};
    let info_hash = InfoHash::from_hex(info_hash_hex).expect("info-hash");
    let mut sock = TcpStream::connect(seed).expect("bystander: connect to the seed");
    sock.set_read_timeout(Some(QUICK)).expect("read timeout");
    sock.write_all(&Handshake::new(info_hash, PeerId(*b"-XX0000-bystander000")).encode()).expect("handshake");
    let mut theirs = [0u8; Handshake::LEN];
    sock.read_exact(&mut theirs).expect("bystander: the seed's handshake");
    let mut first = [0u8; 5];
    sock.read_exact(&mut first).expect("bystander: the seed's first message");
    assert_eq!(first, [0, 0, 0, 1, 0x0f], "the seed's first message is `have none`");
    sock
}

/// A TCP relay on 127.0.0.1 in front of a seed. What the dialler sends reaches the seed as is.
/// What the seed sends goes back one BitTorrent message per write, and after each `unchoke` the
/// relay waits [`UNCHOKE_ALONE`] before passing anything else on, so the dialler reads that
/// unchoke on its own. A stream that does not open with a plaintext BitTorrent handshake
/// (rtorrent's first, encrypted attempt, which Shoal refuses) is relayed unchanged. Stops
/// accepting when dropped; open connections end with the processes at either side.
struct SplitRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// One line per connection: what the seed sent before its first unchoke.
    seen: Arc<Mutex<Vec<String>>>,
}

impl SplitRelay {
    fn start(seed: SocketAddr) -> SplitRelay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("relay listener");
        listener.set_nonblocking(true).expect("non-blocking relay listener");
        let addr = listener.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stopped, noted) = (Arc::clone(&stop), Arc::clone(&seen));
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => relay_connection(client, seed, Arc::clone(&noted)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
                    Err(_) => break,
                }
            }
        });
        SplitRelay { addr, stop, seen }
    }

    /// What the seed sent before its first unchoke, one line per connection so far.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Drop for SplitRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Connects `client` to `seed` through two threads, one per direction.
fn relay_connection(client: TcpStream, seed: SocketAddr, seen: Arc<Mutex<Vec<String>>>) {
    let Ok(upstream) = TcpStream::connect(seed) else { return };
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_read), Ok(upstream_write)) = (client.try_clone(), upstream.try_clone()) else { return };
    thread::spawn(move || {
        let (mut from, mut to) = (client_read, upstream_write);
        let _ = std::io::copy(&mut from, &mut to);
        close_both(&from, &to);
    });
    thread::spawn(move || {
        let (mut from, mut to) = (upstream, client);
        forward_split(&mut from, &mut to, &|note| {
            seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(note);
        });
        close_both(&from, &to);
    });
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Relays the seed's side of one connection (see [`SplitRelay`]) until either side closes;
/// calls `note` once with what the seed sent before its first unchoke (as soon as it is known).
fn forward_split(seed: &mut TcpStream, client: &mut TcpStream, note: &dyn Fn(String)) {
    let mut handshake = [0u8; 68];
    if seed.read_exact(&mut handshake[..1]).is_err() {
        return note("closed before the seed sent anything".to_owned());
    }
    if handshake[0] != 19 {
        note("not a plaintext BitTorrent stream".to_owned());
        let _ = client.write_all(&handshake[..1]).and_then(|()| std::io::copy(seed, client));
        return;
    }
    if seed.read_exact(&mut handshake[1..]).and_then(|()| client.write_all(&handshake)).is_err() {
        return note("closed during the handshake".to_owned());
    }
    let (mut messages, mut haves) = (0usize, 0usize);
    loop {
        match relay_message(seed, client) {
            Ok(Some(1)) => break,
            Ok(Some(4)) => haves += 1,
            Ok(_) => {}
            Err(_) => return note(format!("closed without an unchoke after {messages} messages, {haves} haves")),
        }
        messages += 1;
    }
    note(format!("unchoke after {messages} messages, {haves} of them haves"));
    thread::sleep(UNCHOKE_ALONE);
    while let Ok(id) = relay_message(seed, client) {
        if id == Some(1) {
            thread::sleep(UNCHOKE_ALONE);
        }
    }
}

/// Copies one length-prefixed BitTorrent message from `from` to `to` in a single write; returns
/// its id (`None` for a keep-alive).
fn relay_message(from: &mut TcpStream, to: &mut TcpStream) -> std::io::Result<Option<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 1 << 20 {
        return Err(std::io::Error::new(ErrorKind::InvalidData, format!("a {n}-byte message")));
    }
    let mut msg = len.to_vec();
    msg.resize(4 + n, 0);
    from.read_exact(&mut msg[4..])?;
    to.write_all(&msg)?;
    Ok(msg.get(4).copied())
}

/// One transfer from a fresh `shoal share` of `data` to a fresh rtorrent (through a
/// [`SplitRelay`] when `split`); `label` names it in messages and `dir` holds its torrent.
/// Returns the time from `add_peer` to complete. Panics (with rtorrent's progress, state and
/// log, and the seed's output) when that takes longer than [`NO_STALL`] or the bytes differ.
fn rtorrent_downloads_from_a_fresh_seed(
    label: &str,
    data: &Path,
    dir: &Path,
    split: bool,
    earlier: &[Duration],
) -> Duration {
    std::fs::create_dir_all(dir).expect("transfer folder");
    let torrent = dir.join("blob.torrent");
    let mut seed = Seed::start("shoal share", data, &torrent, &["--tracker", DEAD_TRACKER]);
    let shoal_hash = share_info_hash(&seed);
    let _bystander = bystander(seed.addr, &shoal_hash);
    let relay = split.then(|| SplitRelay::start(seed.addr));
    let dial = relay.as_ref().map_or(seed.addr, |r| r.addr);
    let mut rt = Rtorrent::start(if split { PLAINTEXT_OUT } else { ENCRYPTION });
    let loaded = rt.add(&torrent, None);
    assert_eq!(loaded.hash, shoal_hash, "rTorrent and Shoal disagree on the info-hash");
    assert_eq!(loaded.size, 32 * MIB);
    rt.on("disable-trackers", &loaded.hash, &[]);
    rt.on("start", &loaded.hash, &[]);

    // `wait --peer` calls add_peer and counts from there.
    let t0 = Instant::now();
    let waited = rt.wait(&loaded.hash, Some(dial), STALLED_WAIT);
    let wall = t0.elapsed();
    let relayed = relay.as_ref().map(|r| format!("\n--- relay: the seed's connections ---\n{}", r.seen().join("\n")));
    let w = match waited {
        Ok(w) if w.result["done"] == true && w.seconds <= NO_STALL => w,
        other => {
            let failure = match other {
                Ok(w) => format!("took {:.1} s\n--- rtorrent progress ---\n{}", w.seconds.as_secs_f64(), w.progress),
                Err(e) => format!("failed after {:.1} s: {e}", wall.as_secs_f64()),
            };
            panic!(
                "{label}: rTorrent's download from a fresh Shoal seed was not complete within {NO_STALL:?} of \
                 add_peer (earlier transfers: {earlier:.2?}); it {failure}{}\n--- rtorrent status ---\n{}\n--- \
                 rtorrent log (last lines) ---\n{}\n{}",
                relayed.unwrap_or_default(),
                rt.status(&loaded.hash),
                rt.log_tail(),
                seed.proc.explain("the seed"),
            );
        }
    };
    println!(
        "{label}: complete {:.3} s after add_peer ({:.3} s with the driver's start; longest flat {} s){}",
        w.seconds.as_secs_f64(),
        wall.as_secs_f64(),
        w.result["longest_flat"],
        relayed.as_deref().unwrap_or_default(),
    );
    if let Some(relay) = &relay {
        let seen = relay.seen();
        assert!(
            seen.iter().any(|l| l.starts_with("unchoke after")),
            "{label}: the relay never saw an unchoke, so it tested nothing: {seen:?}"
        );
    }
    rt.stop();
    compare_files(data, rt.downloads().join("blob.bin")).unwrap_or_else(|e| panic!("{label}: {e}"));
    let status = seed.stop();
    assert!(status.success(), "{}", seed.proc.explain(&format!("exited with {status} after SIGTERM")));
    w.seconds
}

/// Pins the ~29 s stall of rTorrent 0.9.8 on Shoal's initial seeding (fixed in the swarm's
/// reveal rule): five fresh seeds, five fresh rtorrents, each download done within 10 s.
#[test]
fn r_rtorrent_stalls_on_a_fresh_shoal_seed() {
    ensure_rtorrent();
    let work = temp_dir("shoal-interop-rt-");
    let data = work.path().join("data/blob.bin");
    make_test_file(&data, 32 * MIB, 41);
    let mut took = Vec::new();
    for run in 1..=TRANSFERS {
        let label = format!("transfer {run} of {TRANSFERS}");
        let t =
            rtorrent_downloads_from_a_fresh_seed(&label, &data, &work.path().join(format!("run-{run}")), false, &took);
        took.push(t);
    }
    let secs: Vec<String> = took.iter().map(|t| format!("{:.2}", t.as_secs_f64())).collect();
    println!("rTorrent from fresh Shoal seeds, seconds from add_peer to complete: {}", secs.join(", "));
}

/// The same stall made certain: the seed's unchoke reaches rtorrent on its own. Before the fix
/// Shoal unchoked before showing any piece, and rtorrent then got no data for ~30 s.
#[test]
fn r_rtorrent_stalls_when_the_unchoke_arrives_before_any_have() {
    ensure_rtorrent();
    let work = temp_dir("shoal-interop-rt-");
    let data = work.path().join("data/blob.bin");
    make_test_file(&data, 32 * MIB, 43);
    rtorrent_downloads_from_a_fresh_seed(
        "transfer through the split relay",
        &data,
        &work.path().join("run"),
        true,
        &[],
    );
}

/// Shoal downloads from an rtorrent seed using `encryption`.
fn shoal_downloads_from_an_rtorrent_seed_with(encryption: &str, seed: u64) {
    ensure_rtorrent();
    let work = temp_dir("shoal-interop-rt-");
    let data = work.path().join("data/seeded.bin");
    make_test_file(&data, 24 * MIB + 4_321, seed);
    let torrent = work.path().join("seeded.torrent");
    let mut create = shoal(["create"]);
    create.arg(&data).arg("-o").arg(&torrent).args(["--tracker", DEAD_TRACKER]);
    let created = run(create, QUICK);
    assert!(created.status.success(), "shoal create failed: {created:?}");

    let mut rt = Rtorrent::start(encryption);
    let loaded = rt.add(&torrent, data.parent());
    rt.on("disable-trackers", &loaded.hash, &[]);
    rt.on("start", &loaded.hash, &[]);
    // rtorrent checks the data it was given, then seeds it.
    let checked = rt.wait(&loaded.hash, None, RPC).unwrap_or_else(|e| panic!("rtorrent did not check its data: {e}"));
    assert_eq!(checked.result["done"], true, "{}", checked.progress);

    let out = work.path().join("out");
    let t0 = Instant::now();
    let mut get = spawn_get("shoal get", &torrent, &out, &[rt.peer_addr()], &["--no-trackers"]);
    let complete = complete_line(&get, DOWNLOAD);
    let status = get.wait_exit(QUICK).unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{}", get.explain(&format!("exited with {status}")));
    println!(
        "shoal get from an rTorrent seed: {:.2} MiB in {:.3} s",
        complete.fetched / MIB as f64,
        t0.elapsed().as_secs_f64()
    );
    compare_files(&data, out.join("seeded.bin")).unwrap_or_else(|e| panic!("{e}"));
    rt.stop();
}

#[test]
fn shoal_downloads_from_an_rtorrent_seed() {
    shoal_downloads_from_an_rtorrent_seed_with(ENCRYPTION, 42);
}

/// rtorrent with `protocol.encryption.set = allow_incoming,try_outgoing,require,require_RC4`:
/// Shoal (at its default) downloads from it over RC4, and it downloads from Shoal.
#[test]
fn rtorrent_requiring_rc4_and_shoal_move_data_both_ways() {
    shoal_downloads_from_an_rtorrent_seed_with(REQUIRE_RC4, 44);
    ensure_rtorrent();
    let work = temp_dir("shoal-interop-rt-");
    let data = work.path().join("data/blob.bin");
    make_test_file(&data, 8 * MIB + 3, 45);
    let torrent = work.path().join("blob.torrent");
    let mut seed = Seed::start("shoal share", &data, &torrent, &["--tracker", DEAD_TRACKER]);
    let mut rt = Rtorrent::start(REQUIRE_RC4);
    let loaded = rt.add(&torrent, None);
    rt.on("disable-trackers", &loaded.hash, &[]);
    rt.on("start", &loaded.hash, &[]);
    let waited = rt.wait(&loaded.hash, Some(seed.addr), DOWNLOAD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(waited.result["done"], true, "{}\n{}", waited.progress, rt.log_tail());
    rt.stop();
    compare_files(&data, rt.downloads().join("blob.bin")).unwrap_or_else(|e| panic!("{e}"));
    let status = seed.stop();
    assert!(status.success(), "{}", seed.proc.explain(&format!("exited with {status} after SIGTERM")));
}
