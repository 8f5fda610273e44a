//! BEP 5 on the peer wire: a Shoal node that runs a DHT node sets the DHT bit in its
//! handshake and tells a peer that sets it too where its DHT node listens (`port`).

#[path = "support/shoal.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shoal_proto::{Handshake, Message, Metainfo, PeerId, decode_message};
use shoal_testkit::{Proc, TempDir, make_test_file};
use support::{QUICK, listen_addr, run, shoal, shoal_with_dht};

#[test]
fn r_the_handshake_has_the_dht_bit_and_a_port_message_follows() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("d.bin");
    make_test_file(&data, 200_000, 5);
    let torrent = dir.path().join("d.torrent");
    let mut cmd = shoal(["create"]);
    cmd.arg(&data).arg("-o").arg(&torrent);
    assert!(run(cmd, QUICK).status.success());
    let info_hash = Metainfo::from_bytes(&std::fs::read(&torrent).expect("read")).expect("parse").info_hash;
    // A DHT node bootstrapped from a closed local port: it never reaches anyone.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let nowhere = closed.local_addr().expect("addr");
    drop(closed);
    let mut cmd = shoal_with_dht(["get"]);
    cmd.arg(&torrent).arg("-o").arg(dir.path().join("out")).args(["--listen", "127.0.0.1:0", "--dht-port", "0"]);
    cmd.args(["--dht-bootstrap", &nowhere.to_string()]);
    cmd.env("HOME", dir.path()).env("XDG_DATA_HOME", dir.path().join("xdg"));
    let mut get = Proc::spawn("get", cmd).unwrap_or_else(|e| panic!("{e}"));
    let dht_line = get.wait_for_line("dht: node on ", QUICK).expect("a DHT node");
    let dht: SocketAddr = dht_line.trim_start_matches("dht: node on ").trim().parse().expect("dht address");
    let to = listen_addr(&get);

    let mut stream = TcpStream::connect(to).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&Handshake::new(info_hash, PeerId([7; 20])).with_dht(true).encode()).expect("handshake");
    let mut buf = [0u8; 68];
    stream.read_exact(&mut buf).expect("Shoal's handshake");
    let theirs = Handshake::decode(&buf).expect("decodes");
    assert!(theirs.supports_dht(), "Shoal runs a DHT node and says so: {:?}", theirs.reserved);
    let mut inbox = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Some(msg) = decode_message(&mut inbox, 1 << 20).expect("decodes") {
            if let Message::Port(p) = msg {
                break p;
            }
            continue;
        }
        assert!(Instant::now() < deadline, "no port message");
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed before a port message");
        inbox.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(port, dht.port(), "the port of the node it printed");
    let _ = get.terminate(QUICK);
}
