//! Tests of the HTTP tracker formats: exact encodings, lenient parsing and round trips.

use proptest::prelude::*;

use super::*;

fn request() -> AnnounceRequest {
    let mut hash = [0u8; 20];
    hash[..6].copy_from_slice(&[0x00, 0x7f, b'a', b' ', b'+', 0xff]);
    AnnounceRequest {
        info_hash: InfoHash(hash),
        peer_id: PeerId(*b"-SH0100-abcdefghijkl"),
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: Some(Event::Started),
        compact: true,
        numwant: Some(50),
        key: Some(0xdead_beef),
        ip: None,
    }
}

#[test]
fn query_encodes_binary_bytes() {
    let q = request().to_query();
    assert_eq!(
        q,
        "info_hash=%00%7Fa%20%2B%FF%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
         &peer_id=-SH0100-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3&compact=1\
         &event=started&numwant=50&key=DEADBEEF"
    );
}

#[test]
fn announce_url_appends_to_existing_query() {
    let r = request();
    assert!(r.announce_url("http://t.example/announce").starts_with("http://t.example/announce?info_hash="));
    assert!(r.announce_url("http://t.example/a?passkey=x").starts_with("http://t.example/a?passkey=x&info_hash="));
    assert!(r.announce_url("http://t.example/a?").starts_with("http://t.example/a?info_hash="));
}

#[test]
fn from_query_parses_what_clients_send() {
    let r = request();
    assert_eq!(AnnounceRequest::from_query(&r.to_query()), Ok(r.clone()));
    assert_eq!(AnnounceRequest::from_query(&format!("?{}", r.to_query())), Ok(r));

    // Form encoding: `+` is a space.
    let q = "info_hash=%00%7Fa+%2B%FF%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
             &peer_id=-SH0100-abcdefghijkl&port=6881&event=paused&numwant=-1&key=zz&ip=1.2.3.4";
    let parsed = AnnounceRequest::from_query(q).expect("valid");
    assert_eq!(parsed.info_hash, request().info_hash);
    assert_eq!((parsed.uploaded, parsed.downloaded, parsed.left), (0, 0, 0));
    assert_eq!((parsed.event, parsed.numwant, parsed.key), (None, None, None));
    assert!(!parsed.compact);
    assert_eq!(parsed.ip.as_deref(), Some("1.2.3.4"));
}

#[test]
fn from_query_errors_name_the_parameter() {
    let base = request().to_query();
    let without =
        |name: &str| base.split('&').filter(|p| !p.starts_with(&format!("{name}="))).collect::<Vec<_>>().join("&");
    let err = |q: &str| AnnounceRequest::from_query(q).expect_err("invalid").to_string();
    assert_eq!(err(&without("info_hash")), "announce request is missing `info_hash`");
    assert_eq!(err(&without("peer_id")), "announce request is missing `peer_id`");
    assert_eq!(err(&without("port")), "announce request is missing `port`");
    assert_eq!(
        err(&format!("{}&info_hash=abc", without("info_hash"))),
        "announce request has a malformed `info_hash`: expected 20 bytes"
    );
    assert_eq!(
        err(&format!("{}&port=70000", without("port"))),
        "announce request has a malformed `port`: expected 1 to 65535"
    );
    assert_eq!(
        err(&format!("{}&port=0", without("port"))),
        "announce request has a malformed `port`: expected 1 to 65535"
    );
    assert_eq!(
        err(&format!("{}&left=-5", without("left"))),
        "announce request has a malformed `left`: expected a non-negative integer"
    );
}

#[test]
fn parses_compact_reply() {
    let reply = b"d8:completei5e10:incompletei3e8:intervali900e12:min intervali60e5:peers12:\
\x0a\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x00\x506:peers618:\
\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e";
    let r = AnnounceResponse::parse(reply).expect("valid");
    assert_eq!(r.interval, 900);
    assert_eq!(r.min_interval, Some(60));
    assert_eq!((r.complete, r.incomplete), (Some(5), Some(3)));
    let expected: Vec<SocketAddr> =
        ["10.0.0.1:6881", "127.0.0.1:80", "[2001:db8::1]:6882"].iter().map(|s| s.parse().expect("addr")).collect();
    assert_eq!(r.peers, expected);
    assert_eq!(r.warning, None);
}

#[test]
fn parses_dictionary_peer_list() {
    let reply = b"d8:intervali1800e5:peersld2:ip8:10.0.0.27:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti51413eed2:ip11:example.com4:porti1eed2:ip3:::14:porti2eed2:ip7:1.2.3.44:porti0eeee";
    let r = AnnounceResponse::parse(reply).expect("valid");
    let expected: Vec<SocketAddr> = vec!["10.0.0.2:51413".parse().expect("addr"), "[::1]:2".parse().expect("addr")];
    assert_eq!(r.peers, expected);
}

#[test]
fn failure_and_warning() {
    assert_eq!(
        AnnounceResponse::parse(&encode_failure("unregistered torrent")),
        Err(TrackerError::Failure("unregistered torrent".into()))
    );
    assert_eq!(encode_failure("x"), b"d14:failure reason1:xe");
    let r = AnnounceResponse::parse(b"d15:warning message4:slow5:peers0:e").expect("valid");
    assert_eq!(r.warning.as_deref(), Some("slow"));
    assert_eq!(r.interval, DEFAULT_INTERVAL);
}

#[test]
fn lenient_where_trackers_differ() {
    // Negative interval, trailing partial compact entry, newline after the dictionary.
    let r = AnnounceResponse::parse(b"d8:intervali-5e5:peers8:\x01\x02\x03\x04\x00\x01\xff\xffe\n").expect("tolerated");
    assert_eq!(r.interval, DEFAULT_INTERVAL);
    assert_eq!(r.peers, vec!["1.2.3.4:1".parse::<SocketAddr>().expect("addr")]);
    let r = AnnounceResponse::parse(b"d8:intervali99999999999ee").expect("tolerated");
    assert_eq!(r.interval, u32::MAX);
}

#[test]
fn reply_errors() {
    assert!(matches!(AnnounceResponse::parse(b"<html>"), Err(TrackerError::Bencode(_))));
    assert_eq!(AnnounceResponse::parse(b"le"), Err(TrackerError::NotADict("list")));
    assert_eq!(
        AnnounceResponse::parse(b"").expect_err("empty").to_string(),
        "tracker reply is not valid bencode: unexpected end of input at byte 0"
    );
}

#[test]
fn encode_compact_layout() {
    let r = AnnounceResponse {
        interval: 1800,
        min_interval: None,
        complete: Some(1),
        incomplete: Some(0),
        peers: vec![
            "1.2.3.4:258".parse().expect("addr"),
            "[::ffff:5.6.7.8]:1".parse().expect("addr"),
            "[2001:db8::2]:3".parse().expect("addr"),
        ],
        warning: None,
    };
    let bytes = r.encode_compact();
    assert!(bytes.starts_with(
        b"d8:completei1e10:incompletei0e8:intervali1800e5:peers12:\x01\x02\x03\x04\x01\x02\x05\x06\x07\x08\x00\x016:peers618:"
    ));
    let back = AnnounceResponse::parse(&bytes).expect("valid");
    assert_eq!(back.peers[1], "5.6.7.8:1".parse::<SocketAddr>().expect("addr"));
    assert_eq!(back.peers[2], r.peers[2]);
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), 1u16..)
            .prop_filter("not v4-mapped", |(ip, _)| Ipv6Addr::from(*ip).to_ipv4_mapped().is_none())
            .prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

proptest! {
    #[test]
    fn response_roundtrip(
        interval in any::<u32>(),
        min_interval in proptest::option::of(any::<u32>()),
        complete in proptest::option::of(any::<u32>()),
        incomplete in proptest::option::of(any::<u32>()),
        peers in proptest::collection::vec(addr(), 0..10),
        warning in proptest::option::of(".*"),
    ) {
        let r = AnnounceResponse { interval, min_interval, complete, incomplete, peers, warning };
        let mut back = AnnounceResponse::parse(&r.encode_compact()).expect("valid");
        // Encoding groups IPv4 before IPv6.
        let mut expected = r.clone();
        expected.peers.sort_by_key(|p| p.is_ipv6());
        back.peers.sort_by_key(|p| p.is_ipv6());
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn request_roundtrip(
        hash in any::<[u8; 20]>(),
        id in any::<[u8; 20]>(),
        port in 1u16..,
        counters in any::<(u64, u64, u64)>(),
        event in proptest::option::of(prop_oneof![Just(Event::Started), Just(Event::Completed), Just(Event::Stopped)]),
        compact in any::<bool>(),
        numwant in proptest::option::of(any::<u32>()),
        key in proptest::option::of(any::<u32>()),
        ip in proptest::option::of(".+"),
    ) {
        let r = AnnounceRequest {
            info_hash: InfoHash(hash),
            peer_id: PeerId(id),
            port,
            uploaded: counters.0,
            downloaded: counters.1,
            left: counters.2,
            event,
            compact,
            numwant,
            key,
            ip,
        };
        prop_assert_eq!(AnnounceRequest::from_query(&r.to_query()), Ok(r));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128), q in ".{0,120}") {
        let _ = AnnounceResponse::parse(&bytes);
        let _ = AnnounceRequest::from_query(&q);
    }
}
