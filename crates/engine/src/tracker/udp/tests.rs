//! Tests of the UDP tracker client over real sockets on 127.0.0.1: against Shoal's own tracker,
//! and against fake trackers written here that answer with errors, wrong transaction ids,
//! datagrams from other addresses, or nothing at all. The schedule is shortened to 100, 200
//! and 400 ms, so a tracker that never answers is given up on in 0.7 s.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::tracker::{AnnounceRequest, Event};
use shoal_proto::udp_tracker::{
    AddressFamily, ConnectResponse, ConnectionId, ErrorResponse, TransactionId, UdpAnnounceResponse, UdpRequest,
    UdpResponse,
};
use shoal_proto::{InfoHash, PeerId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::*;
use crate::tracker::{TrackerConfig, TrackerServer};

/// Bound on every wait of a test for something that should happen in milliseconds.
const WAIT: Duration = Duration::from_secs(10);

fn fast() -> Schedule {
    Schedule { first_timeout: Duration::from_millis(100), sends: 3 }
}

fn request(peer: u8, port: u16, event: Option<Event>) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([7; 20]),
        peer_id: PeerId([peer; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event,
        compact: true,
        numwant: Some(80),
        key: None,
        ip: None,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn connect_reply(tid: TransactionId, id: u64) -> Vec<u8> {
    UdpResponse::Connect(ConnectResponse { transaction_id: tid, connection_id: ConnectionId(id) })
        .encode(AddressFamily::V4)
}

fn announce_reply(tid: TransactionId, peers: &[&str]) -> Vec<u8> {
    let peers = peers.iter().map(|p| addr(p)).collect();
    UdpAnnounceResponse { transaction_id: tid, interval: 900, leechers: 3, seeders: 4, peers }.encode(AddressFamily::V4)
}

fn error_reply(tid: TransactionId, message: &str) -> Vec<u8> {
    ErrorResponse { transaction_id: tid, message: message.to_owned() }.encode()
}

/// Where a fake tracker sends a datagram from.
enum Via {
    /// The tracker's own socket.
    Tracker,
    /// Another socket on 127.0.0.1.
    Elsewhere,
}

/// A fake UDP tracker on 127.0.0.1 that reports every request it decodes and answers with
/// what its script says. Stops when dropped.
struct Fake {
    url: String,
    seen: mpsc::UnboundedReceiver<UdpRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    async fn start<F>(mut script: F) -> Fake
    where
        F: FnMut(&UdpRequest) -> Vec<(Via, Vec<u8>)> + Send + 'static,
    {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind the fake tracker");
        let other = UdpSocket::bind("127.0.0.1:0").await.expect("bind the other socket");
        let url = format!("udp://{}/announce", socket.local_addr().expect("local address"));
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 2048];
            loop {
                let Ok((len, client)) = socket.recv_from(&mut buf).await else { return };
                let Ok(request) = UdpRequest::decode(&buf[..len]) else { continue };
                for (from, packet) in script(&request) {
                    let sender = match from {
                        Via::Tracker => &socket,
                        Via::Elsewhere => &other,
                    };
                    sender.send_to(&packet, client).await.expect("fake tracker sends");
                }
                let _ = tx.send(request);
            }
        });
        Fake { url, seen, task }
    }

    /// The next request the fake received, waiting at most [`WAIT`].
    async fn next(&mut self) -> UdpRequest {
        tokio::time::timeout(WAIT, self.seen.recv()).await.expect("a request in time").expect("the fake is running")
    }

    /// Every request received so far, after waiting for `at_least` of them.
    async fn requests(&mut self, at_least: usize) -> Vec<UdpRequest> {
        let mut all = Vec::new();
        while all.len() < at_least {
            all.push(self.next().await);
        }
        while let Ok(r) = self.seen.try_recv() {
            all.push(r);
        }
        all
    }
}

/// A fake that answers connects with id 42 and announces with `announce(tid)`.
async fn fake_with_announce<F>(mut announce: F) -> Fake
where
    F: FnMut(TransactionId) -> Vec<(Via, Vec<u8>)> + Send + 'static,
{
    Fake::start(move |r| match r {
        UdpRequest::Connect(c) => vec![(Via::Tracker, connect_reply(c.transaction_id, 42))],
        UdpRequest::Announce(a) if a.connection_id == ConnectionId(42) => announce(a.transaction_id),
        _ => vec![],
    })
    .await
}

#[test]
fn urls() {
    assert_eq!(parse_url("udp://tracker.example:6969/announce"), Some(("tracker.example", 6969)));
    assert_eq!(parse_url("udp://127.0.0.1:80"), Some(("127.0.0.1", 80)));
    assert_eq!(parse_url("udp://[::1]:1337/announce?passkey=x"), Some(("::1", 1337)));
    assert_eq!(parse_url("udp://h:1?x"), Some(("h", 1)));
    for bad in [
        "udp://tracker.example/announce",
        "udp://tracker.example:0",
        "udp://tracker.example:65536",
        "udp://:80",
        "udp://::1:80",
        "udp://[::1]/x",
        "udp://user@host:80",
        "http://host:80",
    ] {
        assert_eq!(parse_url(bad), None, "{bad}");
    }
}

#[test]
fn bep15_schedule_is_15_30_60_seconds() {
    let s = Schedule::BEP15;
    let waits: Vec<u64> = (0..s.sends).map(|n| s.timeout(n).as_secs()).collect();
    assert_eq!(waits, [15, 30, 60]);
    assert_eq!(s.total(), Duration::from_secs(105));
}

#[tokio::test]
async fn two_peers_see_each_other_through_shoals_tracker_and_stopped_removes() {
    let config = TrackerConfig { interval: Duration::from_secs(77), ..TrackerConfig::default() };
    let server = TrackerServer::bind(addr("127.0.0.1:0"), config).await.expect("tracker starts");
    let url = server.udp_announce_url().expect("the tracker answers UDP");
    assert_eq!(server.udp_addr().map(|a| a.port()), Some(server.addr().port()), "same port as HTTP");
    let (mut a, mut b) = (UdpTrackers::new(fast()), UdpTrackers::new(fast()));

    let first = a.announce(&url, &request(1, 7001, Some(Event::Started))).await.expect("A announces");
    assert_eq!(first.peers, vec![]);
    assert_eq!(first.interval, 77);
    let mut seed = request(2, 7002, Some(Event::Started));
    seed.left = 0;
    let second = b.announce(&url, &seed).await.expect("B announces");
    assert_eq!(second.peers, vec![addr("127.0.0.1:7001")]);
    assert_eq!((second.complete, second.incomplete), (Some(1), Some(1)));
    let again = a.announce(&url, &request(1, 7001, None)).await.expect("A announces again");
    assert_eq!(again.peers, vec![addr("127.0.0.1:7002")]);

    seed.event = Some(Event::Stopped);
    b.announce(&url, &seed).await.expect("B stops");
    let alone = a.announce(&url, &request(1, 7001, None)).await.expect("A announces a third time");
    assert_eq!(alone.peers, vec![]);
    assert_eq!((alone.complete, alone.incomplete), (Some(0), Some(1)));
}

#[tokio::test]
async fn error_reply_surfaces_the_trackers_message() {
    let mut fake = fake_with_announce(|tid| vec![(Via::Tracker, error_reply(tid, "torrent not registered"))]).await;
    let mut udp = UdpTrackers::new(fast());
    let err = udp.announce(&fake.url, &request(1, 7001, None)).await.expect_err("the tracker refuses");
    assert!(matches!(&err, UdpAnnounceError::Failure(m) if m == "torrent not registered"), "{err:?}");
    let seen = fake.requests(2).await;
    assert!(matches!(seen[..], [UdpRequest::Connect(_), UdpRequest::Announce(_)]), "{seen:?}");

    // Through the announce loop's clients, the error names the tracker.
    let mut clients = super::super::client::Clients::new(fast()).expect("clients");
    let mut tiers = vec![vec![fake.url.clone()]];
    let err = clients.announce(&mut tiers, &request(1, 7001, None)).await.expect_err("refused");
    assert_eq!(err, format!("tracker {}: torrent not registered", fake.url));
}

#[tokio::test]
async fn reply_with_a_wrong_transaction_id_is_skipped_and_the_right_one_accepted() {
    let wrong = |tid: TransactionId| TransactionId(tid.0.wrapping_add(1));
    let mut fake = Fake::start(move |r| match r {
        UdpRequest::Connect(c) => vec![
            (Via::Tracker, connect_reply(wrong(c.transaction_id), 666)),
            (Via::Tracker, connect_reply(c.transaction_id, 42)),
        ],
        UdpRequest::Announce(a) if a.connection_id == ConnectionId(42) => vec![
            (Via::Tracker, announce_reply(wrong(a.transaction_id), &["10.6.6.6:666"])),
            (Via::Tracker, error_reply(wrong(a.transaction_id), "not for you")),
            (Via::Tracker, announce_reply(a.transaction_id, &["10.0.0.1:6881", "10.0.0.2:6882"])),
        ],
        _ => vec![],
    })
    .await;
    let mut udp = UdpTrackers::new(fast());
    let reply = udp.announce(&fake.url, &request(1, 7001, None)).await.expect("accepted");
    assert_eq!(reply.peers, vec![addr("10.0.0.1:6881"), addr("10.0.0.2:6882")]);
    assert_eq!((reply.interval, reply.complete, reply.incomplete), (900, Some(4), Some(3)));
    assert_eq!(fake.requests(2).await.len(), 2, "one connect and one announce: no retransmission");
}

#[tokio::test]
async fn reply_from_another_address_is_ignored() {
    let fake = fake_with_announce(|tid| {
        vec![
            (Via::Elsewhere, announce_reply(tid, &["10.6.6.6:666"])),
            (Via::Tracker, announce_reply(tid, &["10.0.0.1:6881"])),
        ]
    })
    .await;
    let mut udp = UdpTrackers::new(fast());
    let reply = udp.announce(&fake.url, &request(1, 7001, None)).await.expect("accepted");
    assert_eq!(reply.peers, vec![addr("10.0.0.1:6881")]);
}

#[tokio::test]
async fn silent_tracker_is_given_up_on_after_the_schedule() {
    let mut fake = Fake::start(|_| vec![]).await;
    let mut udp = UdpTrackers::new(fast());
    let started = std::time::Instant::now();
    let err = udp.announce(&fake.url, &request(1, 7001, None)).await.expect_err("no answer");
    let took = started.elapsed();
    assert!(matches!(err, UdpAnnounceError::Timeout { sends: 3, .. }), "{err:?}");
    // 100 + 200 + 400 ms, and not much more (a busy machine may wake the timer late).
    assert!(took >= Duration::from_millis(690) && took < Duration::from_secs(5), "{took:?}");
    let seen = fake.requests(3).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|r| matches!(r, UdpRequest::Connect(_))), "{seen:?}");
    let tids: Vec<_> = seen.iter().map(UdpRequest::transaction_id).collect();
    assert!(tids.windows(2).all(|w| w[0] == w[1]), "copies of one request: {tids:?}");
}

#[tokio::test]
async fn tracker_that_stops_answering_announces_costs_the_same_bounded_time() {
    let mut fake = fake_with_announce(|_| vec![]).await;
    let mut udp = UdpTrackers::new(fast());
    let started = std::time::Instant::now();
    let err = udp.announce(&fake.url, &request(1, 7001, None)).await.expect_err("no answer");
    assert!(matches!(err, UdpAnnounceError::Timeout { sends: 4, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let seen = fake.requests(4).await;
    assert!(matches!(seen[0], UdpRequest::Connect(_)), "{seen:?}");
    assert!(seen[1..].iter().all(|r| matches!(r, UdpRequest::Announce(_))), "{seen:?}");
}

#[tokio::test]
async fn connection_id_is_reused_within_a_minute() {
    let mut fake = fake_with_announce(|tid| vec![(Via::Tracker, announce_reply(tid, &[]))]).await;
    let mut udp = UdpTrackers::new(fast());
    for _ in 0..3 {
        udp.announce(&fake.url, &request(1, 7001, None)).await.expect("announce");
    }
    let seen = fake.requests(4).await;
    let connects = seen.iter().filter(|r| matches!(r, UdpRequest::Connect(_))).count();
    assert_eq!((connects, seen.len()), (1, 4), "{seen:?}");
}

#[tokio::test]
async fn forgotten_connection_id_leads_to_a_new_connect() {
    // The tracker "restarts" after the first announce: ids from before are ignored.
    let mut next_id = 1u64;
    let mut fake = Fake::start(move |r| match r {
        UdpRequest::Connect(c) => {
            next_id += 1;
            vec![(Via::Tracker, connect_reply(c.transaction_id, next_id))]
        }
        UdpRequest::Announce(a) if a.connection_id == ConnectionId(next_id) => {
            next_id += 1;
            vec![(Via::Tracker, announce_reply(a.transaction_id, &["10.0.0.1:6881"]))]
        }
        _ => vec![],
    })
    .await;
    let mut udp = UdpTrackers::new(fast());
    udp.announce(&fake.url, &request(1, 7001, None)).await.expect("first announce");
    let reply = udp.announce(&fake.url, &request(1, 7001, None)).await.expect("second announce");
    assert_eq!(reply.peers, vec![addr("10.0.0.1:6881")]);
    let kinds: Vec<&str> = fake
        .requests(5)
        .await
        .iter()
        .map(|r| if matches!(r, UdpRequest::Connect(_)) { "connect" } else { "announce" })
        .collect();
    assert_eq!(kinds, ["connect", "announce", "announce", "connect", "announce"]);
}

#[tokio::test]
async fn malformed_url_fails_at_once() {
    let mut udp = UdpTrackers::new(fast());
    let err = udp.announce("udp://no-port.invalid/announce", &request(1, 7001, None)).await.expect_err("bad URL");
    assert!(matches!(err, UdpAnnounceError::BadUrl), "{err:?}");
}

#[tokio::test]
async fn ipv6_tracker_is_asked_from_an_ipv6_socket_and_lists_ipv6_peers() {
    let server = TrackerServer::bind(addr("[::1]:0"), TrackerConfig::default())
        .await
        .expect("this test needs the IPv6 loopback address [::1]");
    let url = server.udp_announce_url().expect("the tracker answers UDP");
    assert!(url.starts_with("udp://[::1]:"), "{url}");
    let (mut a, mut b) = (UdpTrackers::new(fast()), UdpTrackers::new(fast()));
    a.announce(&url, &request(1, 7001, Some(Event::Started))).await.expect("A announces");
    let reply = b.announce(&url, &request(2, 7002, Some(Event::Started))).await.expect("B announces");
    assert_eq!(reply.peers, vec![addr("[::1]:7001")]);
    assert!(b.v4.is_none() && b.v6.is_some(), "only an IPv6 socket was bound");
}
