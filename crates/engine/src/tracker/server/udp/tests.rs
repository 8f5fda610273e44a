//! Tests of the UDP tracker responder: connection ids in virtual time, the reply (or silence)
//! for every kind of packet through [`handle`] without sockets, and one real-socket check that
//! garbage does not stop the responder.

use std::net::SocketAddr;
use std::sync::Mutex;

use shoal_proto::tracker::Event;
use shoal_proto::udp_tracker::{ConnectRequest, ScrapeRequest, ScrapeStats};
use shoal_proto::{InfoHash, PeerId};

use super::*;
use crate::tracker::server::{Swarms, TrackerConfig};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn shared(config: TrackerConfig) -> Shared {
    Shared { config, swarms: Mutex::new(Swarms::default()) }
}

/// A tracker and its connection ids, at a fixed start time.
struct Tracker {
    shared: Shared,
    ids: ConnectionIds,
    now: Instant,
}

impl Tracker {
    fn new() -> Self {
        Self::with(TrackerConfig::default())
    }

    fn with(config: TrackerConfig) -> Self {
        let now = Instant::now();
        Self { shared: shared(config), ids: ConnectionIds::new(now), now }
    }

    fn send(&self, packet: &[u8], from: SocketAddr) -> Option<UdpResponse> {
        let reply = handle(&self.shared, &self.ids, packet, from, self.now)?;
        Some(UdpResponse::decode(&reply, AddressFamily::of(&from)).expect("replies decode"))
    }

    fn connect(&self, from: SocketAddr) -> ConnectionId {
        let request = ConnectRequest { transaction_id: TransactionId(5) };
        match self.send(&request.encode(), from) {
            Some(UdpResponse::Connect(r)) if r.transaction_id == TransactionId(5) => r.connection_id,
            other => panic!("connect got {other:?}"),
        }
    }

    /// Connects from `from` and announces peer `peer` with `left` bytes missing.
    fn announce(&self, from: &str, peer: u8, left: u64, event: Option<Event>) -> UdpResponse {
        let from = addr(from);
        let request = announce(self.connect(from), peer, left, event);
        self.send(&request.encode(), from).expect("an announce with a valid id is answered")
    }
}

fn announce(connection_id: ConnectionId, peer: u8, left: u64, event: Option<Event>) -> UdpAnnounceRequest {
    UdpAnnounceRequest {
        connection_id,
        transaction_id: TransactionId(0x0a0b_0c0d),
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([peer; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event,
        ip: None,
        key: 0,
        num_want: None,
        port: 6000 + u16::from(peer),
    }
}

fn peers(reply: UdpResponse) -> Vec<SocketAddr> {
    match reply {
        UdpResponse::Announce(mut r) => {
            r.peers.sort();
            r.peers
        }
        other => panic!("expected an announce reply, got {other:?}"),
    }
}

fn error_message(reply: Option<UdpResponse>) -> String {
    match reply {
        Some(UdpResponse::Error(e)) => e.message,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn connection_ids_last_two_minutes_and_belong_to_one_address() {
    let start = Instant::now();
    let ids = ConnectionIds::new(start);
    let client = addr("192.0.2.1:6881");
    for offset in [0, 1, 15, 29, 30, 59, 61, 3600] {
        let issued = start + Duration::from_secs(offset);
        let id = ids.issue(client, issued);
        assert!(ids.check(id, client, issued), "at once, issued at +{offset}s");
        assert!(ids.check(id, client, issued + Duration::from_secs(120)), "two minutes later, issued at +{offset}s");
        assert!(!ids.check(id, client, issued + Duration::from_secs(151)), "2.5 minutes later, issued at +{offset}s");
        assert!(!ids.check(id, addr("192.0.2.1:6882"), issued), "another port");
        assert!(!ids.check(id, addr("192.0.2.2:6881"), issued), "another address");
    }
    let other_tracker = ConnectionIds::new(start);
    assert!(!other_tracker.check(ids.issue(client, start), client, start), "another secret");
    // A dual-stack socket's view of an IPv4 client is the same client.
    assert!(ids.check(ids.issue(client, start), addr("[::ffff:192.0.2.1]:6881"), start));
}

#[test]
fn peers_of_one_torrent_see_each_other_and_stopped_removes() {
    let t = Tracker::new();
    assert_eq!(peers(t.announce("127.0.0.1:40001", 1, 10, Some(Event::Started))), vec![]);
    assert_eq!(peers(t.announce("127.0.0.1:40002", 2, 0, Some(Event::Started))), vec![addr("127.0.0.1:6001")]);
    match t.announce("127.0.0.1:40001", 1, 10, None) {
        UdpResponse::Announce(r) => {
            assert_eq!((r.seeders, r.leechers, r.interval), (1, 1, 60));
            assert_eq!(r.transaction_id, TransactionId(0x0a0b_0c0d));
            assert_eq!(r.peers, vec![addr("127.0.0.1:6002")]);
        }
        other => panic!("{other:?}"),
    }
    t.announce("127.0.0.1:40002", 2, 0, Some(Event::Stopped));
    assert_eq!(peers(t.announce("127.0.0.1:40001", 1, 10, None)), vec![]);
}

#[test]
fn peers_are_listed_only_to_clients_of_their_address_family() {
    let t = Tracker::new();
    t.announce("127.0.0.1:40001", 1, 10, None);
    t.announce("[::1]:40002", 2, 10, None);
    assert_eq!(peers(t.announce("127.0.0.1:40003", 3, 10, None)), vec![addr("127.0.0.1:6001")]);
    assert_eq!(peers(t.announce("[::1]:40004", 4, 10, None)), vec![addr("[::1]:6002")]);
    // A dual-stack socket's IPv4 client is listed as IPv4.
    let v4 = peers(t.announce("[::ffff:127.0.0.2]:40005", 5, 10, None));
    assert_eq!(v4, vec![addr("127.0.0.1:6001"), addr("127.0.0.1:6003")]);
    assert!(peers(t.announce("127.0.0.1:40006", 6, 10, None)).contains(&addr("127.0.0.2:6005")));
}

#[test]
fn scrape_counts_seeders_leechers_and_completed_downloads() {
    let t = Tracker::new();
    t.announce("127.0.0.1:40001", 1, 0, Some(Event::Started));
    t.announce("127.0.0.1:40002", 2, 10, Some(Event::Started));
    t.announce("127.0.0.1:40003", 3, 10, Some(Event::Started));
    t.announce("127.0.0.1:40003", 3, 0, Some(Event::Completed));
    let from = addr("127.0.0.1:40009");
    let scrape = ScrapeRequest {
        connection_id: t.connect(from),
        transaction_id: TransactionId(77),
        info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
    };
    match t.send(&scrape.encode(), from) {
        Some(UdpResponse::Scrape(r)) => {
            assert_eq!(r.transaction_id, TransactionId(77));
            assert_eq!(r.stats, vec![ScrapeStats { seeders: 2, completed: 1, leechers: 1 }, ScrapeStats::default()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.shared.swarms.lock().expect("lock").torrents.len(), 1, "a scrape adds no torrent");
}

#[test]
fn requests_without_a_valid_connection_id_get_no_reply() {
    let t = Tracker::new();
    let from = addr("127.0.0.1:40001");
    let id = t.connect(addr("127.0.0.1:40002"));
    assert_eq!(t.send(&announce(id, 1, 10, None).encode(), from), None, "id of another client");
    assert_eq!(t.send(&announce(ConnectionId(0x417_2710_1980), 1, 10, None).encode(), from), None);
    let scrape = ScrapeRequest { connection_id: id, transaction_id: TransactionId(1), info_hashes: vec![] };
    assert_eq!(t.send(&scrape.encode(), from), None, "malformed, and not verified");
    assert_eq!(t.shared.swarms.lock().expect("lock").torrents.len(), 0);
    // A connect without the protocol id, and packets too short for a transaction id.
    let mut bad_connect = ConnectRequest { transaction_id: TransactionId(1) }.encode();
    bad_connect[0] ^= 1;
    assert_eq!(t.send(&bad_connect, from), None);
    for len in [0, 1, 8, 15] {
        assert_eq!(t.send(&vec![0; len], from), None, "{len} bytes");
    }
}

#[test]
fn malformed_requests_with_a_valid_connection_id_get_an_error_reply() {
    let t = Tracker::new();
    let from = addr("127.0.0.1:40001");
    let id = t.connect(from);
    let short = announce(id, 1, 10, None).encode();
    assert!(error_message(t.send(&short[..60], from)).contains("too short"));
    let mut unknown = short.clone();
    unknown[8..12].copy_from_slice(&9u32.to_be_bytes());
    assert!(error_message(t.send(&unknown, from)).contains("action 9"));
    let mut error_action = short.clone();
    error_action[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert!(error_message(t.send(&error_action, from)).contains("action 3"));
    let scrape = ScrapeRequest { connection_id: id, transaction_id: TransactionId(1), info_hashes: vec![] };
    assert!(error_message(t.send(&scrape.encode(), from)).contains("no info-hash"));
    let too_many = ScrapeRequest { info_hashes: vec![InfoHash([3; 20]); 75], ..scrape };
    assert!(error_message(t.send(&too_many.encode(), from)).contains("75"));
}

#[test]
fn a_full_tracker_answers_with_an_error() {
    let t = Tracker::with(TrackerConfig { max_torrents: 1, ..TrackerConfig::default() });
    t.announce("127.0.0.1:40001", 1, 10, None);
    let from = addr("127.0.0.1:40002");
    let mut other = announce(t.connect(from), 2, 10, None);
    other.info_hash = InfoHash([2; 20]);
    assert_eq!(error_message(t.send(&other.encode(), from)), "the tracker is full");
}

#[test]
fn random_packets_never_panic() {
    let t = Tracker::new();
    let from = addr("127.0.0.1:40001");
    let id = t.connect(from);
    // A fixed xorshift sequence: packets of every length up to 200 bytes, half of them
    // starting with a valid connection id so that they reach the decoders.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..20_000 {
        let len = i % 200;
        let mut packet: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if i % 2 == 0 && len >= 16 {
            packet[..8].copy_from_slice(&id.0.to_be_bytes());
            packet[8..12].copy_from_slice(&(x % 4).to_be_bytes()[4..]);
        }
        let _ = t.send(&packet, from);
    }
}

#[tokio::test]
async fn responder_keeps_answering_after_garbage() {
    let server =
        super::super::TrackerServer::bind(addr("127.0.0.1:0"), TrackerConfig::default()).await.expect("tracker starts");
    let tracker = server.udp_addr().expect("UDP is on");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for garbage in [&b""[..], b"x", &[0xff; 16], &[0; 3000]] {
        socket.send_to(garbage, tracker).await.expect("send");
    }
    let request = ConnectRequest { transaction_id: TransactionId(99) };
    socket.send_to(&request.encode(), tracker).await.expect("send");
    let mut buf = [0; 64];
    // Only the connect is answered: the first datagram back is its reply.
    let (len, from) =
        tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buf)).await.expect("reply").expect("recv");
    assert_eq!(from, tracker);
    assert!(request.decode_response(&buf[..len]).is_ok(), "{:?}", &buf[..len]);
}
