//! The tokio driver over real loopback sockets: bytes out equal bytes in, and what a hostile
//! sender can make a socket hold is bounded.

use std::time::Duration;

use shoal_utp::UtpSocket;
use shoal_utp::packet::{Header, Type, encode};
use shoal_utp::socket::MAX_PER_IP;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_stream_carries_its_bytes_both_ways_and_ends() {
    let server = UtpSocket::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let client = UtpSocket::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let sent = data.clone();
    let addr = server.local_addr();
    let serve = tokio::spawn(async move {
        let (mut s, _) = server.accept().await.expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read to the FIN");
        s.write_all(b"thanks").await.expect("answer");
        s.shutdown().await.expect("close");
        got
    });
    let mut c = tokio::time::timeout(LIMIT, client.connect(addr)).await.expect("in time").expect("connect");
    assert!(c.payload_size() > 1_400, "Shoal peers on loopback agree on large datagrams");
    c.write_all(&sent).await.expect("write");
    c.shutdown().await.expect("close");
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, c.read_to_end(&mut answer)).await.expect("in time").expect("read");
    assert_eq!(answer, b"thanks");
    let got = tokio::time::timeout(LIMIT, serve).await.expect("in time").expect("server");
    assert!(got == data, "bytes out equal bytes in");
}

#[tokio::test]
async fn a_syn_flood_from_one_address_is_bounded_and_garbage_is_counted() {
    let server = UtpSocket::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = server.local_addr();
    // Whoever connects is taken and held, so only the per-address bound limits the flood.
    let accepting = server.clone();
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok(Ok((s, _))) = tokio::time::timeout(Duration::from_secs(2), accepting.accept()).await {
            streams.push(s);
        }
        streams.len()
    });
    let flood = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut buf = Vec::new();
    for id in 0..500u16 {
        let syn = Header {
            ty: Type::Syn,
            conn_id: id * 2,
            timestamp: 1,
            timestamp_diff: 0,
            wnd_size: 1 << 20,
            seq_nr: 1,
            ack_nr: 0,
        };
        encode(&mut buf, &syn, None, None, &[]);
        flood.send_to(&buf, addr).await.expect("send");
        flood.send_to(b"d1:ad2:id20:not a utp packet at alle", addr).await.expect("send");
        if id % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let refused = 500 - MAX_PER_IP as u64;
    tokio::time::timeout(LIMIT, async {
        while server.counters().refused < refused || server.counters().malformed < 500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the flood was not all seen: {:?}", server.counters()));
    assert!(server.connections() <= MAX_PER_IP, "{} connections from one address", server.connections());
    assert_eq!(server.counters().refused, refused);
    let taken = held.await.expect("accept loop");
    assert_eq!(taken, MAX_PER_IP, "the first {MAX_PER_IP} SYNs opened connections");
}
