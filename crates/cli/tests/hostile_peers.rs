//! `shoal get` against hostile peers. A fake peer written here (std sockets and threads) is
//! named with `--peer` next to a real Shoal seed whose upload is capped, so the download takes
//! a few seconds. The fake answers Shoal's handshake properly, reads Shoal's first message,
//! then misbehaves:
//! - (i) announces a frame of 0xFFFFFFF0 bytes;
//! - (ii) sends `have` for the first piece index past the end of the torrent;
//! - (iii) sends a `piece` Shoal never requested;
//! - (iv) sends random bytes;
//! - (v) claims every piece (`have all` + `unchoke`) and answers every request with zeros;
//! - (vi) the same on a BitTorrent v2 torrent, and answers Shoal's `hash request` for the block
//!   hashes of a failed piece with hashes of its own (a forged Merkle proof).
//!
//! Each test checks that Shoal closes the fake's connection within a few seconds, while the
//! download is still running (so the close is a decision, not the exit); that the download
//! still completes from the real seed with the original bytes; and that the `-v` log names
//! the problem (`dropping peer: <reason>`, or for (v) a ban for data that failed
//! verification).

#[path = "support/shoal.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shoal_proto::merkle::HashMessage;
use shoal_proto::{Handshake, InfoHash, Message, Metainfo, PeerId, decode_message};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file, test_bytes, wait_until};
use support::{DOWNLOAD, MIB, Seed, log_lines, spawn_get};

/// How long Shoal may take to dial the fake, answer its handshake and send its first message.
const CONNECT: Duration = Duration::from_secs(20);
/// How long Shoal may take to close the connection once the fake misbehaved.
const REACT: Duration = Duration::from_secs(5);
/// How long the fake waits on a read before checking whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// What the fake does after the handshake and Shoal's first message.
#[derive(Clone, Debug)]
enum Behaviour {
    /// (i) A length prefix of 0xFFFFFFF0 (after `have none`).
    HugeLength,
    /// (ii) `have none`, then `have` with this piece index.
    HaveOutOfRange(u32),
    /// (iii) `have none`, then a `piece` message for this block that Shoal never asked for.
    UnrequestedPiece { length: u32 },
    /// (iv) These bytes, raw.
    Garbage(Vec<u8>),
    /// (v) `have all` and `unchoke`, then zeros for every request.
    Liar,
    /// (vi) as the liar, and forged hashes for every `hash request` (BEP 52).
    ForgedProofs,
}

/// What happened on one connection, as the fake saw it.
#[derive(Clone, Debug, Default)]
struct ConnLog {
    /// The first message Shoal sent after its handshake.
    first_message: Option<String>,
    /// When the fake finished sending its hostile bytes (for the liar: its first zero block).
    hostile_at: Option<Instant>,
    /// When the fake saw the connection closed by Shoal, and how.
    closed: Option<(Instant, String)>,
    /// Forged `hashes` answers sent.
    forged_proofs: usize,
    /// Blocks of zeros served (liar).
    zero_blocks: u32,
    /// Something the fake did not expect from Shoal.
    problems: Vec<String>,
    /// Shoal opened with a protocol encryption handshake, which the fake (a plaintext-only
    /// peer) closed at once; Shoal then dials again in plaintext.
    encrypted: bool,
}

/// A fake peer listening on 127.0.0.1; stops its threads when dropped.
struct FakePeer {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<ConnLog>>>,
    stop: Arc<AtomicBool>,
}

impl FakePeer {
    fn start(info_hash: InfoHash, behaviour: Behaviour) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the fake peer binds");
        let addr = listener.local_addr().expect("fake address");
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let index = {
                    let mut all = lock(&c);
                    all.push(ConnLog::default());
                    all.len() - 1
                };
                let (c, s, b) = (c.clone(), s.clone(), behaviour.clone());
                thread::spawn(move || serve(stream, info_hash, b, &c, index, &s));
            }
        });
        FakePeer { addr, conns, stop }
    }

    /// What the first plaintext connection saw, once it exists.
    fn first(&self) -> Option<ConnLog> {
        lock(&self.conns).iter().find(|c| !c.encrypted).cloned()
    }

    /// Plaintext connections so far.
    fn connections(&self) -> usize {
        lock(&self.conns).iter().filter(|c| !c.encrypted).count()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection of the fake peer.
struct Conn<'a> {
    stream: TcpStream,
    buf: BytesMut,
    log: &'a Mutex<Vec<ConnLog>>,
    index: usize,
    stop: &'a AtomicBool,
}

/// Why a connection loop ended.
enum End {
    /// Shoal closed the connection (end of stream, or a reset).
    Closed(String),
    /// The test is over, or the fake gave up.
    Stop,
}

impl Conn<'_> {
    fn note(&self, f: impl FnOnce(&mut ConnLog)) {
        f(&mut lock(self.log)[self.index]);
    }

    /// Reads more bytes into the buffer; `Ok(false)` when nothing arrived within [`POLL`].
    fn fill(&mut self) -> Result<bool, End> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(End::Stop);
        }
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(End::Closed("end of stream".into())),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                Ok(false)
            }
            Err(e) => Err(End::Closed(format!("receive failed: {e}"))),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.stream.write_all(bytes).map_err(|e| End::Closed(format!("send failed: {e}")))
    }

    fn send_msg(&mut self, msg: &Message) -> Result<(), End> {
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        self.send(&out)
    }

    /// The next message from Shoal, waiting at most `timeout`.
    fn next_message(&mut self, timeout: Duration) -> Result<Message, End> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode_message(&mut self.buf, 64 * 1024 * 1024) {
                Ok(Some(msg)) => return Ok(msg),
                Ok(None) => {}
                Err(e) => {
                    self.note(|l| l.problems.push(format!("Shoal sent a bad frame: {e}")));
                    return Err(End::Stop);
                }
            }
            if Instant::now() >= deadline {
                self.note(|l| l.problems.push(format!("Shoal sent no message within {timeout:?}")));
                return Err(End::Stop);
            }
            self.fill()?;
        }
    }
}

fn serve(
    stream: TcpStream,
    info_hash: InfoHash,
    behaviour: Behaviour,
    log: &Mutex<Vec<ConnLog>>,
    index: usize,
    stop: &AtomicBool,
) {
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut conn = Conn { stream, buf: BytesMut::new(), log, index, stop };
    let end = match run_conn(&mut conn, info_hash, &behaviour) {
        Ok(()) => End::Stop,
        Err(end) => end,
    };
    if let End::Closed(how) = end {
        conn.note(|l| l.closed = Some((Instant::now(), how)));
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
}

fn run_conn(conn: &mut Conn<'_>, info_hash: InfoHash, behaviour: &Behaviour) -> Result<(), End> {
    // Shoal dials, so it speaks first.
    let deadline = Instant::now() + CONNECT;
    while conn.buf.len() < Handshake::LEN {
        if Instant::now() >= deadline {
            conn.note(|l| l.problems.push("no handshake from Shoal".into()));
            return Err(End::Stop);
        }
        conn.fill()?;
    }
    if !conn.buf.starts_with(b"\x13BitTorrent protocol") {
        // Not a plaintext handshake: a plaintext-only peer hangs up.
        conn.note(|l| l.encrypted = true);
        return Err(End::Stop);
    }
    let theirs = conn.buf.split_to(Handshake::LEN);
    let theirs: [u8; Handshake::LEN] = theirs[..].try_into().expect("68 bytes");
    match Handshake::decode(&theirs) {
        Ok(h) if h.info_hash == info_hash => {}
        other => {
            conn.note(|l| l.problems.push(format!("unexpected handshake from Shoal: {other:?}")));
            return Err(End::Stop);
        }
    }
    // Fast extension on (have all / have none), extension protocol off.
    let ours =
        Handshake { reserved: [0, 0, 0, 0, 0, 0, 0, 0x04], info_hash, peer_id: PeerId(*b"-FK0001-hostile-peer") };
    conn.send(&ours.encode())?;
    let first = conn.next_message(CONNECT)?;
    conn.note(|l| l.first_message = Some(first.name().to_owned()));

    match behaviour {
        Behaviour::HugeLength => {
            conn.send_msg(&Message::HaveNone)?;
            conn.send(&0xFFFF_FFF0u32.to_be_bytes())?;
        }
        Behaviour::HaveOutOfRange(index) => {
            conn.send_msg(&Message::HaveNone)?;
            conn.send_msg(&Message::Have(*index))?;
        }
        Behaviour::UnrequestedPiece { length } => {
            conn.send_msg(&Message::HaveNone)?;
            conn.send_msg(&Message::Piece { index: 0, begin: 0, data: Bytes::from(vec![0u8; *length as usize]) })?;
        }
        Behaviour::Garbage(bytes) => conn.send(bytes)?,
        Behaviour::Liar | Behaviour::ForgedProofs => {
            conn.send_msg(&Message::HaveAll)?;
            conn.send_msg(&Message::Unchoke)?;
        }
    }
    let liar = matches!(behaviour, Behaviour::Liar | Behaviour::ForgedProofs);
    if !liar {
        conn.note(|l| l.hostile_at = Some(Instant::now()));
    }
    // Read (and, as the liar, answer) until Shoal closes the connection or the test ends.
    loop {
        let msg = conn.next_message(Duration::from_secs(3600))?;
        if let (Behaviour::ForgedProofs, Message::Unknown { id, payload }) = (behaviour, &msg)
            && let Ok(HashMessage::Request(req)) = HashMessage::decode(*id, payload)
        {
            let forged = vec![[0x42u8; 32]; (req.count + req.uncles()) as usize];
            conn.send_msg(&HashMessage::Hashes(req, forged).to_message())?;
            conn.note(|l| l.forged_proofs += 1);
        }
        if let (true, Message::Request { index, begin, length }) = (liar, &msg) {
            let zeros = Message::Piece { index: *index, begin: *begin, data: Bytes::from(vec![0u8; *length as usize]) };
            conn.send_msg(&zeros)?;
            conn.note(|l| {
                l.zero_blocks += 1;
                l.hostile_at.get_or_insert_with(Instant::now);
            });
        }
    }
}

/// A test's seed, torrent and output folder.
struct Setup {
    _dir: TempDir,
    data: std::path::PathBuf,
    torrent: std::path::PathBuf,
    out: std::path::PathBuf,
    seed: Seed,
    meta: Metainfo,
}

/// 8 MiB of data in 16 KiB pieces, seeded by Shoal at 2 MiB/s: the download takes about 4 s.
fn setup(seed_no: u64) -> Setup {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/target.bin");
    make_test_file(&data, 8 * MIB, seed_no);
    let torrent = dir.path().join("target.torrent");
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "2M", "--piece-size", "16384"]);
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).expect("read torrent")).expect("parse torrent");
    let out = dir.path().join("leech");
    Setup { _dir: dir, data, torrent, out, seed, meta }
}

/// Starts `shoal get -v` with the fake first and the real seed second.
fn leech(s: &Setup, fake: &FakePeer) -> Proc {
    spawn_get("leech", &s.torrent, &s.out, &[fake.addr, s.seed.addr], &["-v"])
}

/// Waits until the fake has misbehaved and Shoal has closed its connection; checks that this
/// happened within [`REACT`] and while the download was still running. Returns the first
/// connection's log.
fn wait_for_close(fake: &FakePeer, leech: &mut Proc) -> ConnLog {
    let explain =
        |fake: &FakePeer, leech: &Proc, what: &str| leech.explain(&format!("{what}; the fake saw {:?}", fake.first()));
    wait_until(CONNECT, Duration::from_millis(10), || fake.first().is_some_and(|c| c.hostile_at.is_some()))
        .unwrap_or_else(|e| panic!("{}", explain(fake, leech, &format!("the fake never got to misbehave: {e}"))));
    wait_until(REACT, Duration::from_millis(5), || fake.first().is_some_and(|c| c.closed.is_some()))
        .unwrap_or_else(|e| panic!("{}", explain(fake, leech, &format!("Shoal kept the connection open: {e}"))));
    let still_running = leech.try_status().expect("poll").is_none();
    let completed = leech.stdout_lines().iter().any(|l| l.starts_with("complete: "));
    assert!(
        still_running && !completed,
        "{}",
        explain(fake, leech, "the connection closed only when the download ended, not because of the misbehaviour")
    );
    let log = fake.first().expect("first connection");
    assert!(log.problems.is_empty(), "the fake saw Shoal misbehave: {:?}", log.problems);
    assert!(
        matches!(log.first_message.as_deref(), Some("have none" | "bitfield")),
        "Shoal's first message must say what it has: {log:?}"
    );
    let (closed_at, _) = log.closed.clone().expect("closed");
    let hostile_at = log.hostile_at.expect("hostile");
    assert!(closed_at.duration_since(hostile_at) <= REACT, "{log:?}");
    log
}

/// Waits for the download to finish and compares the bytes.
fn finish(s: &Setup, leech: &mut Proc) {
    leech.wait_success(DOWNLOAD).expect("the download completes from the real seed");
    assert_same_tree(&s.data, s.out.join("target.bin"));
}

/// The `-v` log line saying the fake was dropped, which must contain every fragment.
fn assert_dropped_with(leech: &Proc, fake: &FakePeer, fragments: &[&str]) {
    let addr = fake.addr.to_string();
    let lines = log_lines(leech);
    let found = lines
        .iter()
        .any(|l| l.contains("dropping peer:") && l.contains(&addr) && fragments.iter().all(|f| l.contains(f)));
    assert!(found, "no `dropping peer:` line for {addr} mentioning {fragments:?} in the -v log:\n{}", lines.join("\n"));
}

#[test]
fn huge_length_prefix() {
    let started = Instant::now();
    let s = setup(31);
    let fake = FakePeer::start(s.meta.info_hash, Behaviour::HugeLength);
    let mut leech = leech(&s, &fake);
    wait_for_close(&fake, &mut leech);
    finish(&s, &mut leech);
    assert_dropped_with(&leech, &fake, &[&0xFFFF_FFF0u32.to_string()]);
    eprintln!("huge length prefix: {:.2?}, {} connection(s) from Shoal", started.elapsed(), fake.connections());
}

#[test]
fn have_with_out_of_range_index() {
    let started = Instant::now();
    let s = setup(32);
    let pieces = s.meta.info.layout.piece_count();
    let fake = FakePeer::start(s.meta.info_hash, Behaviour::HaveOutOfRange(pieces));
    let mut leech = leech(&s, &fake);
    wait_for_close(&fake, &mut leech);
    finish(&s, &mut leech);
    assert_dropped_with(&leech, &fake, &["out of range", &pieces.to_string()]);
    eprintln!("have out of range: {:.2?}", started.elapsed());
}

#[test]
fn piece_that_was_never_requested() {
    let started = Instant::now();
    let s = setup(33);
    let length = s.meta.info.piece_length.min(16_384);
    let fake = FakePeer::start(s.meta.info_hash, Behaviour::UnrequestedPiece { length });
    let mut leech = leech(&s, &fake);
    wait_for_close(&fake, &mut leech);
    finish(&s, &mut leech);
    assert_dropped_with(&leech, &fake, &["unrequested"]);
    eprintln!("unrequested piece: {:.2?}", started.elapsed());
}

#[test]
fn random_garbage() {
    let started = Instant::now();
    let s = setup(34);
    let garbage = test_bytes(4096, 0xbad);
    // These bytes are no valid message stream: the first frame announces more than any
    // limit Shoal could use.
    let announced = u32::from_be_bytes([garbage[0], garbage[1], garbage[2], garbage[3]]);
    assert!(announced > 64 * 1024 * 1024, "pick another seed: the garbage announces only {announced} bytes");
    let fake = FakePeer::start(s.meta.info_hash, Behaviour::Garbage(garbage));
    let mut leech = leech(&s, &fake);
    wait_for_close(&fake, &mut leech);
    finish(&s, &mut leech);
    assert_dropped_with(&leech, &fake, &[&announced.to_string()]);
    eprintln!("random garbage: {:.2?}", started.elapsed());
}

#[test]
fn liar_serving_zeros_is_banned() {
    let started = Instant::now();
    let s = setup(35);
    let fake = FakePeer::start(s.meta.info_hash, Behaviour::Liar);
    let mut leech = leech(&s, &fake);
    let log = wait_for_close(&fake, &mut leech);
    assert!(log.zero_blocks >= 2, "the liar served {} blocks before the ban", log.zero_blocks);
    finish(&s, &mut leech);
    let addr = fake.addr.to_string();
    let lines = log_lines(&leech);
    let banned = lines.iter().any(|l| {
        l.contains("disconnecting: sent data that failed verification repeatedly")
            && l.contains("ban=true")
            && l.contains(&addr)
    });
    assert!(banned, "no ban of {addr} in the -v log:\n{}", lines.join("\n"));
    eprintln!(
        "liar: {:.2?}, {} zero blocks served, {} connection(s) from Shoal",
        started.elapsed(),
        log.zero_blocks,
        fake.connections()
    );
}

/// (vi) A peer that serves zeros on a v2 torrent, then forges the block hashes Shoal asks it
/// for to find the bad block, is banned for the forged proof; nothing it sent is verified.
#[test]
fn forged_merkle_proofs_are_banned() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/target.bin");
    make_test_file(&data, 2 * MIB, 36);
    let torrent = dir.path().join("target.torrent");
    // The seed only writes the v2 torrent; the leech knows the fake alone.
    let _seed = Seed::start("seed", &data, &torrent, &["--v2", "--piece-size", "65536"]);
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).expect("read torrent")).expect("parse torrent");
    assert!(meta.v2_hash.is_some(), "a v2-only torrent");
    let fake = FakePeer::start(meta.info_hash, Behaviour::ForgedProofs);
    let out = dir.path().join("leech");
    let mut leech = spawn_get("leech", &torrent, &out, &[fake.addr], &["-v"]);
    wait_until(CONNECT, Duration::from_millis(10), || fake.first().is_some_and(|c| c.closed.is_some()))
        .unwrap_or_else(|e| panic!("{}", leech.explain(&format!("Shoal kept the forger connected: {e}"))));
    let log = fake.first().expect("first connection");
    assert!(log.forged_proofs >= 1, "Shoal never asked the fake for block hashes: {log:?}");
    let addr = fake.addr.to_string();
    let lines = log_lines(&leech);
    let banned =
        lines.iter().any(|l| l.contains("a forged Merkle proof") && l.contains("ban=true") && l.contains(&addr));
    assert!(banned, "no ban of {addr} for a forged proof in the -v log:\n{}", lines.join("\n"));
    assert!(
        !leech.stdout_lines().iter().any(|l| l.starts_with("complete: ")),
        "nothing the forger sent may be taken as verified"
    );
    let _ = leech.terminate(Duration::from_secs(15));
}
