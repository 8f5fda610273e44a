//! Tests of the UDP tracker packets: exact layouts, both sides of each exchange, the checks
//! a client makes on replies, and round trips.

use proptest::prelude::*;

use super::*;

const TID: TransactionId = TransactionId(0xdead_beef);
const CID: ConnectionId = ConnectionId(0x0102_0304_0506_0708);

fn announce() -> UdpAnnounceRequest {
    UdpAnnounceRequest {
        connection_id: CID,
        transaction_id: TID,
        info_hash: InfoHash([0xaa; 20]),
        peer_id: PeerId(*b"-SH0100-abcdefghijkl"),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: Some(Event::Started),
        ip: None,
        key: 0x1234_5678,
        num_want: None,
        port: 6881,
    }
}

fn a(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

#[test]
fn connect_exchange() {
    let req = ConnectRequest { transaction_id: TID };
    let bytes = req.encode();
    assert_eq!(bytes, b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\xde\xad\xbe\xef");
    assert_eq!(UdpRequest::decode(&bytes), Ok(UdpRequest::Connect(req)));

    let reply = UdpResponse::Connect(ConnectResponse { transaction_id: TID, connection_id: CID });
    let packet = reply.encode(AddressFamily::V4);
    assert_eq!(packet, b"\x00\x00\x00\x00\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08");
    assert_eq!(req.decode_response(&packet), Ok(ConnectResponse { transaction_id: TID, connection_id: CID }));
}

#[test]
fn announce_request_layout() {
    let mut req = announce();
    req.ip = Some(Ipv4Addr::new(10, 0, 0, 1));
    req.num_want = Some(50);
    let bytes = req.encode();
    assert_eq!(bytes.len(), 98);
    assert_eq!(&bytes[8..16], b"\x00\x00\x00\x01\xde\xad\xbe\xef");
    assert_eq!(&bytes[80..98], b"\x00\x00\x00\x02\x0a\x00\x00\x01\x12\x34\x56\x78\x00\x00\x00\x32\x1a\xe1");
    assert_eq!(UdpRequest::decode(&bytes), Ok(UdpRequest::Announce(req)));

    let defaults = announce().encode();
    assert_eq!(&defaults[84..88], &[0, 0, 0, 0], "no ip");
    assert_eq!(&defaults[92..96], &[0xff; 4], "num_want -1");
}

#[test]
fn announce_request_ignores_bep41_options_and_odd_values() {
    let mut bytes = announce().encode();
    bytes[80..84].copy_from_slice(&4u32.to_be_bytes()); // "paused"
    bytes[92..96].copy_from_slice(&(-7i32).to_be_bytes());
    bytes.extend_from_slice(b"\x02\x05/path\x01\x00");
    let Ok(UdpRequest::Announce(req)) = UdpRequest::decode(&bytes) else { panic!("valid") };
    assert_eq!((req.event, req.num_want), (None, None));
    let mut huge = announce();
    huge.num_want = Some(u32::MAX);
    assert_eq!(&huge.encode()[92..96], &i32::MAX.to_be_bytes());
}

#[test]
fn event_numbers_follow_bep15() {
    for (event, code) in
        [(None, 0u32), (Some(Event::Completed), 1), (Some(Event::Started), 2), (Some(Event::Stopped), 3)]
    {
        let req = UdpAnnounceRequest { event, ..announce() };
        assert_eq!(&req.encode()[80..84], &code.to_be_bytes());
    }
}

#[test]
fn announce_reply_v4_and_v6() {
    let reply = UdpAnnounceResponse {
        transaction_id: TID,
        interval: 1800,
        leechers: 5,
        seeders: 7,
        peers: vec![a("1.2.3.4:6881"), a("[2001:db8::1]:80"), a("[::ffff:5.6.7.8]:1")],
    };
    let v4 = reply.encode(AddressFamily::V4);
    assert_eq!(
        v4,
        b"\x00\x00\x00\x01\xde\xad\xbe\xef\x00\x00\x07\x08\x00\x00\x00\x05\x00\x00\x00\x07\
          \x01\x02\x03\x04\x1a\xe1\x05\x06\x07\x08\x00\x01"
    );
    let back = announce().decode_response(&v4, AddressFamily::V4).expect("valid");
    assert_eq!(back.peers, vec![a("1.2.3.4:6881"), a("5.6.7.8:1")]);
    assert_eq!((back.interval, back.leechers, back.seeders), (1800, 5, 7));

    let v6 = reply.encode(AddressFamily::V6);
    assert_eq!(v6.len(), 20 + 2 * 18);
    let back = announce().decode_response(&v6, AddressFamily::V6).expect("valid");
    assert_eq!(back.peers, vec![a("[2001:db8::1]:80"), a("[::ffff:5.6.7.8]:1")]);
}

#[test]
fn announce_reply_is_lenient_about_its_tail() {
    let mut packet = UdpAnnounceResponse { transaction_id: TID, interval: 1, leechers: 0, seeders: 0, peers: vec![] }
        .encode(AddressFamily::V4);
    packet.extend_from_slice(b"\x09\x09\x09\x09\x00\x00"); // port 0: dropped
    packet.extend_from_slice(b"\x01\x01\x01\x01\x00\x01\x02\x02"); // one peer and a partial entry
    let back = announce().decode_response(&packet, AddressFamily::V4).expect("valid");
    assert_eq!(back.peers, vec![a("1.1.1.1:1")]);
}

#[test]
fn client_checks_replies() {
    let req = announce();
    let err = |packet: &[u8]| req.decode_response(packet, AddressFamily::V4).expect_err("refused").to_string();
    let connect = UdpResponse::Connect(ConnectResponse { transaction_id: TID, connection_id: CID });
    assert_eq!(err(&connect.encode(AddressFamily::V4)), "expected an announce reply, got a connect reply");
    let other = UdpResponse::Connect(ConnectResponse { transaction_id: TransactionId(1), connection_id: CID });
    assert_eq!(err(&other.encode(AddressFamily::V4)), "reply has transaction id 0x00000001, expected 0xdeadbeef");
    let failure = ErrorResponse { transaction_id: TID, message: "unregistered torrent".into() }.encode();
    assert_eq!(err(&failure), "tracker error: unregistered torrent");
    assert_eq!(err(b"\x00\x00\x00\x01\xde\xad"), "reply of 6 bytes is too short, expected at least 8");
    assert_eq!(
        err(b"\x00\x00\x00\x01\xde\xad\xbe\xef\x00\x00\x00\x01"),
        "announce reply of 12 bytes is too short, expected at least 20"
    );
    assert_eq!(err(b"\x00\x00\x00\x09\xde\xad\xbe\xef"), "reply has unknown action 9");
    let connect_req = ConnectRequest { transaction_id: TID };
    assert_eq!(
        connect_req.decode_response(b"\x00\x00\x00\x00\xde\xad\xbe\xef\x01").map_err(|e| e.to_string()),
        Err("connect reply of 9 bytes is too short, expected at least 16".into())
    );
    assert_eq!(connect_req.decode_response(&failure), Err(UdpTrackerError::Failure("unregistered torrent".into())));
}

#[test]
fn scrape_exchange() {
    let req = ScrapeRequest {
        connection_id: CID,
        transaction_id: TID,
        info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
    };
    let bytes = req.encode();
    assert_eq!(bytes.len(), 56);
    assert_eq!(&bytes[8..12], &[0, 0, 0, 2]);
    assert_eq!(UdpRequest::decode(&bytes), Ok(UdpRequest::Scrape(req.clone())));

    let stats = vec![
        ScrapeStats { seeders: 1, completed: 2, leechers: 3 },
        ScrapeStats { seeders: 4, completed: 5, leechers: 6 },
        ScrapeStats { seeders: 7, completed: 8, leechers: 9 },
    ];
    let reply = ScrapeResponse { transaction_id: TID, stats: stats.clone() };
    let packet = reply.encode();
    assert_eq!(&packet[..12], b"\x00\x00\x00\x02\xde\xad\xbe\xef\x00\x00\x00\x01");
    let back = req.decode_response(&packet).expect("valid");
    assert_eq!(back.stats, stats[..2], "extra entries are ignored");
    let short = ScrapeResponse { transaction_id: TID, stats: stats[..1].to_vec() }.encode();
    assert_eq!(
        req.decode_response(&short).map_err(|e| e.to_string()),
        Err("scrape reply has 1 entries for 2 info-hashes".into())
    );
}

#[test]
fn server_refuses_bad_requests() {
    let err = |packet: &[u8]| UdpRequest::decode(packet).expect_err("refused").to_string();
    assert_eq!(err(&[0; 15]), "request of 15 bytes is too short, expected at least 16");
    let mut connect = ConnectRequest { transaction_id: TID }.encode();
    connect[7] = 0x81;
    assert_eq!(err(&connect), "connect request has protocol id 0x41727101981, expected 0x41727101980");
    connect[7] = 0x80;
    connect[11] = 3;
    assert_eq!(err(&connect), "request has action 3, expected 0 (connect), 1 (announce) or 2 (scrape)");
    assert_eq!(err(&announce().encode()[..97]), "announce request of 97 bytes is too short, expected at least 98");
    let scrape = |n: usize| {
        let mut p = ScrapeRequest { connection_id: CID, transaction_id: TID, info_hashes: vec![] }.encode();
        p.extend(std::iter::repeat_n(7u8, n));
        p
    };
    assert_eq!(err(&scrape(0)), "scrape request has no info-hash");
    assert_eq!(err(&scrape(30)), "scrape request has 30 bytes of info-hashes, not a multiple of 20");
    assert_eq!(err(&scrape(75 * 20)), "scrape request has 75 info-hashes, more than the limit of 74");
    assert!(UdpRequest::decode(&scrape(74 * 20)).is_ok());
}

#[test]
fn from_http_keeps_the_announce() {
    let http = AnnounceRequest {
        info_hash: InfoHash([3; 20]),
        peer_id: PeerId([4; 20]),
        port: 51413,
        uploaded: 10,
        downloaded: 20,
        left: 30,
        event: Some(Event::Stopped),
        compact: true,
        numwant: Some(80),
        key: Some(99),
        ip: Some("192.0.2.1".into()),
    };
    let udp = UdpAnnounceRequest::from_http(&http, CID, TID);
    assert_eq!((udp.uploaded, udp.downloaded, udp.left, udp.port), (10, 20, 30, 51413));
    assert_eq!((udp.event, udp.num_want, udp.key), (Some(Event::Stopped), Some(80), 99));
    assert_eq!(udp.ip, Some(Ipv4Addr::new(192, 0, 2, 1)));
    let udp = UdpAnnounceRequest::from_http(&AnnounceRequest { ip: Some("host.example".into()), ..http }, CID, TID);
    assert_eq!(udp.ip, None);
}

#[test]
fn family_of_mapped_addresses_is_v4() {
    assert_eq!(AddressFamily::of(&a("1.2.3.4:1")), AddressFamily::V4);
    assert_eq!(AddressFamily::of(&a("[::ffff:1.2.3.4]:1")), AddressFamily::V4);
    assert_eq!(AddressFamily::of(&a("[2001:db8::1]:1")), AddressFamily::V6);
}

fn event() -> impl Strategy<Value = Option<Event>> {
    proptest::option::of(prop_oneof![Just(Event::Started), Just(Event::Completed), Just(Event::Stopped)])
}

fn request() -> impl Strategy<Value = UdpRequest> {
    let announce = (
        (any::<u64>(), any::<u32>(), any::<[u8; 20]>(), any::<[u8; 20]>()),
        (any::<(u64, u64, u64)>(), event(), proptest::option::of(1u32..), any::<u32>()),
        (proptest::option::of(0..=i32::MAX as u32), any::<u16>()),
    )
        .prop_map(|((cid, tid, hash, id), ((d, l, u), event, ip, key), (num_want, port))| {
            UdpRequest::Announce(UdpAnnounceRequest {
                connection_id: ConnectionId(cid),
                transaction_id: TransactionId(tid),
                info_hash: InfoHash(hash),
                peer_id: PeerId(id),
                downloaded: d,
                left: l,
                uploaded: u,
                event,
                ip: ip.map(Ipv4Addr::from),
                key,
                num_want,
                port,
            })
        });
    prop_oneof![
        any::<u32>().prop_map(|t| UdpRequest::Connect(ConnectRequest { transaction_id: TransactionId(t) })),
        announce,
        (any::<u64>(), any::<u32>(), proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_SCRAPE_HASHES)).prop_map(
            |(c, t, hashes)| UdpRequest::Scrape(ScrapeRequest {
                connection_id: ConnectionId(c),
                transaction_id: TransactionId(t),
                info_hashes: hashes.into_iter().map(InfoHash).collect(),
            })
        ),
    ]
}

proptest! {
    #[test]
    fn request_roundtrip(req in request()) {
        prop_assert_eq!(UdpRequest::decode(&req.encode()), Ok(req));
    }

    #[test]
    fn announce_reply_roundtrip(
        tid in any::<u32>(),
        counts in any::<(u32, u32, u32)>(),
        v4 in proptest::collection::vec((any::<[u8; 4]>(), 1u16..), 0..20),
        v6 in proptest::collection::vec((any::<[u8; 16]>(), 1u16..), 0..20),
    ) {
        let base = UdpAnnounceResponse {
            transaction_id: TransactionId(tid),
            interval: counts.0,
            leechers: counts.1,
            seeders: counts.2,
            peers: Vec::new(),
        };
        let r4 = UdpAnnounceResponse { peers: v4.iter().map(|&p| SocketAddr::from(p)).collect(), ..base.clone() };
        prop_assert_eq!(UdpResponse::decode(&r4.encode(AddressFamily::V4), AddressFamily::V4), Ok(UdpResponse::Announce(r4)));
        let r6 = UdpAnnounceResponse { peers: v6.iter().map(|&p| SocketAddr::from(p)).collect(), ..base };
        prop_assert_eq!(UdpResponse::decode(&r6.encode(AddressFamily::V6), AddressFamily::V6), Ok(UdpResponse::Announce(r6)));
    }

    #[test]
    fn other_replies_roundtrip(tid in any::<u32>(), cid in any::<u64>(), stats in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..80), message in ".*") {
        let transaction_id = TransactionId(tid);
        let replies = [
            UdpResponse::Connect(ConnectResponse { transaction_id, connection_id: ConnectionId(cid) }),
            UdpResponse::Scrape(ScrapeResponse {
                transaction_id,
                stats: stats.iter().map(|&(seeders, completed, leechers)| ScrapeStats { seeders, completed, leechers }).collect(),
            }),
            UdpResponse::Error(ErrorResponse { transaction_id, message }),
        ];
        for reply in replies {
            prop_assert_eq!(reply.transaction_id(), transaction_id);
            prop_assert_eq!(UdpResponse::decode(&reply.encode(AddressFamily::V6), AddressFamily::V6), Ok(reply));
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>()) {
        let family = if v6 { AddressFamily::V6 } else { AddressFamily::V4 };
        if let Ok(req) = UdpRequest::decode(&bytes) {
            prop_assert_eq!(UdpRequest::decode(&req.encode()), Ok(req));
        }
        if let Ok(reply) = UdpResponse::decode(&bytes, family) {
            prop_assert_eq!(UdpResponse::decode(&reply.encode(family), family), Ok(reply));
        }
        let _ = announce().decode_response(&bytes, family);
    }
}
