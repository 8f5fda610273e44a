//! Tests of the tier walk (BEP 12) over HTTP and UDP trackers together, on 127.0.0.1: Shoal's
//! own tracker answers both protocols, and a bound socket that never reads stands for a dead
//! UDP tracker (with a schedule shortened to 0.7 s).

use std::time::Duration;

use shoal_proto::tracker::AnnounceRequest;
use shoal_proto::{InfoHash, PeerId};
use tokio::net::UdpSocket;

use super::*;
use crate::tracker::{TrackerConfig, TrackerServer};

fn fast() -> Schedule {
    Schedule { first_timeout: Duration::from_millis(100), sends: 3 }
}

fn request(peer: u8, port: u16) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([9; 20]),
        peer_id: PeerId([peer; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 10,
        event: Some(Event::Started),
        compact: true,
        numwant: None,
        key: None,
        ip: None,
    }
}

#[tokio::test]
async fn tiers_mix_http_and_udp_and_the_tracker_that_answered_moves_to_the_front() {
    let server = TrackerServer::bind("127.0.0.1:0".parse().expect("address"), TrackerConfig::default())
        .await
        .expect("tracker starts");
    let (http, udp) = (server.announce_url(), server.udp_announce_url().expect("UDP is on"));
    let dead_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let dead = format!("udp://{}/announce", dead_socket.local_addr().expect("address"));
    let mut clients = Clients::new(fast()).expect("clients");

    // The dead UDP tracker is tried first and given up on; the HTTP one of the same tier answers.
    let mut tiers = vec![vec![dead.clone(), http.clone()], vec![udp.clone()]];
    let reply = clients.announce(&mut tiers, &request(1, 7001)).await.expect("HTTP answers");
    assert_eq!(reply.peers, vec![]);
    assert_eq!(tiers, vec![vec![http.clone(), dead.clone()], vec![udp.clone()]]);

    // A tier where nothing answers falls through to the next, where the UDP tracker answers
    // (after an unknown scheme is skipped) and sees the peer that announced over HTTP.
    let mut tiers = vec![vec![dead.clone()], vec!["wss://tracker.invalid/".to_owned(), udp.clone()]];
    let reply = clients.announce(&mut tiers, &request(2, 7002)).await.expect("UDP answers");
    assert_eq!(reply.peers, vec!["127.0.0.1:7001".parse().expect("address")]);
    assert_eq!(tiers, vec![vec![dead.clone()], vec![udp.clone(), "wss://tracker.invalid/".to_owned()]]);

    // When every tracker fails, the error is the last one's.
    let mut tiers = vec![vec![dead.clone()]];
    let err = clients.announce(&mut tiers, &request(3, 7003)).await.expect_err("nobody answers");
    assert!(err.starts_with(&format!("tracker {dead}: no reply to 3 requests in ")), "{err}");
    let mut none = vec![vec!["wss://tracker.invalid/".to_owned()]];
    let err = clients.announce(&mut none, &request(3, 7003)).await.expect_err("no usable tracker");
    assert_eq!(err, "the torrent lists no HTTP or UDP tracker");
}
