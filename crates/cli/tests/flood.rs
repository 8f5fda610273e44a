//! A remote peer without credentials must not be able to cripple a download:
//! - a peer-exchange flood (BEP 11: 200 addresses per message, ten messages a second) teaches
//!   the leecher at most one message's worth of 50 addresses per 45 s, and nothing at all from
//!   a peer that never negotiated `ut_pex`; the download still completes;
//! - one IP holding every connection slot of a torrent gives one up when an honest seed
//!   arrives from another address, so the seed is served at once (not after a 30 s refusal).
//!
//! The attackers are written here with std sockets and threads. They connect from 127.0.0.2
//! (the whole 127.0.0.0/8 range is loopback on Linux) and name only 127.x addresses, which
//! refuse connections at once: nothing leaves this machine.

#[path = "support/shoal.rs"]
mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shoal_proto::extension::{ExtHandshake, UT_PEX};
use shoal_proto::{Handshake, InfoHash, Message, Metainfo, PeerId, PexMessage, decode_message};
use shoal_testkit::{Proc, TempDir, assert_same_tree, make_test_file, wait_until};
use support::{DOWNLOAD, MIB, QUICK, Seed, listen_addr, log_lines, run, shoal, spawn_get};

/// Dials `to` from `from_ip` (port chosen by the OS).
fn dial_from(from_ip: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from_ip, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// An attacker's connection: handshake done, Shoal's extension handshake read.
struct Attacker {
    stream: TcpStream,
    /// Shoal's id for `ut_pex` messages, from its extension handshake.
    their_pex: Option<u8>,
}

/// Connects from `from_ip`, says it speaks `ut_pex` when `pex`, and reads until Shoal's
/// extension handshake.
fn attack(from_ip: [u8; 4], to: SocketAddr, info_hash: InfoHash, pex: bool, seed: u8) -> Attacker {
    let mut stream = dial_from(from_ip, to).expect("the attacker connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&Handshake::new(info_hash, PeerId([seed; 20])).encode()).expect("handshake");
    let mut buf = [0u8; 68];
    stream.read_exact(&mut buf).expect("Shoal answers the handshake");
    let mut m = std::collections::BTreeMap::new();
    if pex {
        m.insert(UT_PEX.to_string(), 1);
    }
    let hello = ExtHandshake { m, ..Default::default() };
    let mut out = BytesMut::new();
    Message::HaveNone.encode(&mut out);
    Message::Extended { id: 0, payload: hello.encode().into() }.encode(&mut out);
    stream.write_all(&out).expect("extension handshake");
    let mut inbox = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match decode_message(&mut inbox, 1 << 26).expect("Shoal's messages decode") {
            Some(Message::Extended { id: 0, payload }) => {
                let theirs = ExtHandshake::decode(&payload).expect("Shoal's extension handshake");
                return Attacker { their_pex: theirs.id_of(UT_PEX), stream };
            }
            Some(_) => continue,
            None => {}
        }
        assert!(Instant::now() < deadline, "no extension handshake from Shoal");
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "Shoal closed the attacker's connection before its extension handshake");
        inbox.extend_from_slice(&chunk[..n]);
    }
}

/// Reads and drops whatever Shoal sends on `stream` until it closes; counts the close.
fn drain(mut stream: TcpStream, closed: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    if !stop.load(Ordering::SeqCst) {
        closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// 200 addresses 127.`net`.x.y:p, different in every message `round`.
fn flood_message(net: u8, round: u32) -> PexMessage {
    let added = (0..200u32)
        .map(|i| {
            let n = round * 200 + i;
            SocketAddr::from(([127, net, (n >> 8) as u8, n as u8], 1000 + (n % 50_000) as u16))
        })
        .collect();
    PexMessage { added, added_flags: vec![], dropped: vec![] }
}

/// Distinct addresses in 127.`net`.0.0/16 that the leecher's log says it dialled.
fn dialled(leech: &Proc, net: u8) -> HashSet<String> {
    let prefix = format!("127.{net}.");
    let mut out = HashSet::new();
    for line in log_lines(leech).iter().filter(|l| l.contains("connect failed")) {
        for word in line.split(|c: char| c.is_whitespace() || c == '=') {
            if word.starts_with(&prefix) {
                out.insert(word.to_owned());
            }
        }
    }
    out
}

#[test]
fn r_pex_flood_teaches_a_bounded_few_addresses_and_the_download_completes() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/f.bin");
    make_test_file(&data, 16 * MIB, 71);
    let torrent = dir.path().join("f.torrent");
    // 2 MiB/s: the download takes about 8 s, the flood runs all along.
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "2M"]);
    let info_hash = Metainfo::from_bytes(&std::fs::read(&torrent).expect("read")).expect("parse").info_hash;
    let out = dir.path().join("leech");
    let mut leech = spawn_get("leech", &torrent, &out, &[seed.addr], &["-vv"]);
    let to = listen_addr(&leech);

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // One attacker that negotiated ut_pex (127.1.x.x addresses), one that did not (127.2.x.x).
    for (net, negotiates, id) in [(1u8, true, 0xA1u8), (2, false, 0xA2)] {
        let a = attack([127, 0, 0, 2], to, info_hash, negotiates, id);
        let their_pex = a.their_pex.expect("Shoal offers ut_pex on a public torrent");
        let (reader, mut writer) = (a.stream.try_clone().expect("clone"), a.stream);
        let (closed, stop2) = (Arc::new(AtomicUsize::new(0)), stop.clone());
        threads.push(thread::spawn(move || drain(reader, closed, stop2)));
        let stop = stop.clone();
        threads.push(thread::spawn(move || {
            for round in 0..150u32 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut out = BytesMut::new();
                let payload = flood_message(net, round).encode();
                Message::Extended { id: their_pex, payload: payload.into() }.encode(&mut out);
                if writer.write_all(&out).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    let started = Instant::now();
    leech.wait_success(DOWNLOAD).expect("the download completes during the flood");
    eprintln!("completed {:.1?} after the flood started", started.elapsed());
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    assert_same_tree(&data, out.join("f.bin"));
    let from_negotiated = dialled(&leech, 1);
    let from_other = dialled(&leech, 2);
    eprintln!("dialled {} addresses from the ut_pex flood, {} from the other", from_negotiated.len(), from_other.len());
    assert!(from_other.is_empty(), "peer exchange from a peer that never negotiated it was used: {from_other:?}");
    assert!(
        from_negotiated.len() <= 50,
        "{} flooded addresses dialled; one message of 50 per 45 s is the most",
        from_negotiated.len()
    );
    assert!(!from_negotiated.is_empty(), "the first message is honoured (else this test proves nothing)");
}

#[test]
fn r_one_ip_holding_every_slot_gives_one_up_for_an_honest_seed() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/s.bin");
    make_test_file(&data, 8 * MIB, 72);
    let torrent = dir.path().join("s.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent);
    assert!(run(cmd, QUICK).status.success());
    let info_hash = Metainfo::from_bytes(&std::fs::read(&torrent).expect("read")).expect("parse").info_hash;
    let out = dir.path().join("leech");
    // No peers yet: the leecher waits, and the attacker takes its 80 slots.
    let mut leech = spawn_get("leech", &torrent, &out, &[], &["-v"]);
    let to = listen_addr(&leech);
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..80u8 {
        let a = attack([127, 0, 0, 2], to, info_hash, false, i);
        let (closed, stop) = (closed.clone(), stop.clone());
        threads.push(thread::spawn(move || drain(a.stream, closed, stop)));
    }
    assert_eq!(closed.load(Ordering::SeqCst), 0, "all 80 attacker connections are open");

    // The honest seed dials the leecher (share --peer) and must be let in at once.
    let seed_started = Instant::now();
    let mut seed = Seed::start("seed", &data, &torrent, &["--peer", &to.to_string()]);
    let seed_ready = seed_started.elapsed();
    wait_until(Duration::from_secs(20), Duration::from_millis(50), || matches!(leech.try_status(), Ok(Some(_))))
        .unwrap_or_else(|e| {
            panic!("{}", leech.explain(&format!("the seed was not served within 20 s of starting: {e}")))
        });
    leech.wait_success(QUICK).expect("the download completes");
    eprintln!(
        "seed ready after {seed_ready:.1?}, download done {:.1?} after the seed started; {} attacker connections closed",
        seed_started.elapsed(),
        closed.load(Ordering::SeqCst)
    );
    assert!(
        log_lines(&leech).iter().any(|l| l.contains("to make room")),
        "{}",
        leech.explain("an attacker connection was closed to make room")
    );
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    assert_same_tree(&data, out.join("s.bin"));
    assert!(seed.stop().success());
}
