//! Tests of the LSD announce format: exact bytes, tolerant parsing, limits and round trips.

use proptest::prelude::*;

use super::*;

fn hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

#[test]
fn encodes_the_bep_layout() {
    let a = LsdAnnounce::new(6881, vec![hash(0xab), hash(1)]).with_cookie("c00k1e");
    assert_eq!(
        String::from_utf8(a.encode().expect("valid")).expect("ascii"),
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
         Infohash: abababababababababababababababababababab\r\n\
         Infohash: 0101010101010101010101010101010101010101\r\ncookie: c00k1e\r\n\r\n\r\n"
    );
    let v6 = LsdAnnounce::new_v6(1, vec![hash(2)]);
    assert_eq!(
        String::from_utf8(v6.encode().expect("valid")).expect("ascii"),
        "BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\nPort: 1\r\n\
         Infohash: 0202020202020202020202020202020202020202\r\n\r\n\r\n"
    );
    assert_eq!(LsdGroup::V4.addr(), "239.192.152.143:6771".parse().expect("addr"));
    assert_eq!(LsdGroup::V6.addr(), "[ff15::efc0:988f]:6771".parse().expect("addr"));
    assert_eq!(LsdGroup::V6.addr().to_string(), LSD_HOST_V6);
}

#[test]
fn parses_what_libtorrent_sends() {
    let packet = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n\
                   Infohash: ABABABABABABABABABABABABABABABABABABABAB\r\ncookie: 1a2b\r\n\r\n\r\n";
    let a = LsdAnnounce::parse(packet).expect("valid");
    assert_eq!(a, LsdAnnounce::new(51413, vec![hash(0xab)]).with_cookie("1a2b"));
}

#[test]
fn parsing_is_tolerant_where_http_is() {
    let packet = b"BT-SEARCH * HTTP/1.0\nhost:[ff15::efc0:988f]:6771\nPORT:  6881 \nX-Other: whatever\n\
                   infohash: 0101010101010101010101010101010101010101\r\n\
                   INFOHASH:0202020202020202020202020202020202020202\n\
                   InfoHash: 0101010101010101010101010101010101010101\nport: 1\nCookie: \x01bad\n\nnot a header";
    let a = LsdAnnounce::parse(packet).expect("valid");
    assert_eq!(a.group, LsdGroup::V6);
    assert_eq!(a.port, 6881, "first Port wins");
    assert_eq!(a.info_hashes, vec![hash(1), hash(2)], "repeats kept once");
    assert_eq!(a.cookie, None, "control characters make the cookie absent");
    // No Host, no terminating empty line.
    let bare = b"BT-SEARCH * HTTP/1.1\r\nPort: 9\r\nInfohash: 0101010101010101010101010101010101010101";
    assert_eq!(LsdAnnounce::parse(bare), Ok(LsdAnnounce::new(9, vec![hash(1)])));
}

#[test]
fn parse_errors_say_what_is_wrong() {
    let err = |p: &[u8]| LsdAnnounce::parse(p).expect_err("invalid").to_string();
    let ih = "Infohash: 0101010101010101010101010101010101010101\r\n";
    assert_eq!(
        err(b"M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n"),
        "packet starts with \"M-SEARCH * HTTP/1.1\", not \"BT-SEARCH * HTTP/1.1\""
    );
    assert_eq!(err(b""), "packet starts with \"\", not \"BT-SEARCH * HTTP/1.1\"");
    assert_eq!(
        err(b"BT-SEARCH * SIP/2.0\r\n"),
        "packet starts with \"BT-SEARCH * SIP/2.0\", not \"BT-SEARCH * HTTP/1.1\""
    );
    assert_eq!(err(format!("BT-SEARCH * HTTP/1.1\r\n{ih}\r\n").as_bytes()), "LSD announce has no `Port` header");
    assert_eq!(
        err(format!("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n{ih}").as_bytes()),
        "LSD announce has port \"0\", expected 1 to 65535"
    );
    assert_eq!(
        err(format!("BT-SEARCH * HTTP/1.1\r\nPort: +80\r\n{ih}").as_bytes()),
        "LSD announce has port \"+80\", expected 1 to 65535"
    );
    assert_eq!(err(b"BT-SEARCH * HTTP/1.1\r\nPort: 80\r\n\r\n"), "LSD announce has no `Infohash` header");
    assert_eq!(
        err(b"BT-SEARCH * HTTP/1.1\r\nPort: 80\r\nInfohash: 0101\r\n"),
        "LSD announce has infohash \"0101\", expected 40 hex digits"
    );
    assert_eq!(
        err(b"BT-SEARCH * HTTP/1.1\r\nPort: 80\r\nInfohash: 0101010101010101010101010101010101010g01\r\n"),
        "LSD announce has infohash \"0101010101010101010101010101010101010g01\", expected 40 hex digits"
    );
    assert_eq!(err(b"BT-SEARCH * HTTP/1.1\r\nPort 80\r\n"), "LSD header line \"Port 80\" has no colon");
    let many = format!("BT-SEARCH * HTTP/1.1\r\nPort: 80\r\n{}", ih.repeat(MAX_INFO_HASHES + 1));
    assert_eq!(err(many.as_bytes()), "LSD announce has more than 64 info-hashes");
    let long = vec![b' '; MAX_RECEIVE_LEN + 1];
    assert_eq!(err(&long), "LSD packet of 4097 bytes exceeds the 4096-byte limit");
}

#[test]
fn encode_refuses_what_parse_refuses() {
    assert_eq!(LsdAnnounce::new(0, vec![hash(1)]).encode(), Err(LsdError::BadPort("0".into())));
    assert_eq!(LsdAnnounce::new(1, vec![]).encode(), Err(LsdError::NoInfoHashes));
    assert_eq!(LsdAnnounce::new(1, vec![hash(1); 65]).encode(), Err(LsdError::TooManyInfoHashes));
    for bad in ["", " x", "a\r\nPort: 1", "tab\there"] {
        assert_eq!(LsdAnnounce::new(1, vec![hash(1)]).with_cookie(bad).encode(), Err(LsdError::BadCookie(bad.into())));
    }
}

#[test]
fn batches_stay_below_the_mtu() {
    let hashes: Vec<InfoHash> = (0..60).map(hash).collect();
    let batches = LsdAnnounce::batch(LsdGroup::V6, 65535, Some("0123456789abcdef"), &hashes);
    let sizes: Vec<usize> = batches.iter().map(|b| b.info_hashes.len()).collect();
    assert_eq!(sizes, vec![25, 25, 10]);
    for b in &batches {
        let bytes = b.encode().expect("valid");
        assert!(bytes.len() <= MAX_SEND_LEN, "{} bytes", bytes.len());
    }
    let with_one_more = LsdAnnounce { info_hashes: (0..26).map(hash).collect(), ..batches[0].clone() };
    assert!(with_one_more.encode().expect("valid").len() > MAX_SEND_LEN, "25 is the most that fits");
    let flat: Vec<InfoHash> = batches.into_iter().flat_map(|b| b.info_hashes).collect();
    assert_eq!(flat, hashes);
    let huge_cookie = "x".repeat(2000);
    assert_eq!(LsdAnnounce::batch(LsdGroup::V4, 1, Some(&huge_cookie), &hashes[..2]).len(), 2);
    assert!(LsdAnnounce::batch(LsdGroup::V4, 1, None, &[]).is_empty());
}

proptest! {
    #[test]
    fn roundtrip(
        v6 in any::<bool>(),
        port in 1u16..,
        hashes in proptest::collection::btree_set(any::<[u8; 20]>(), 1..=MAX_INFO_HASHES),
        cookie in proptest::option::of("[!-~]([ -~]{0,30}[!-~])?"),
    ) {
        let a = LsdAnnounce {
            group: if v6 { LsdGroup::V6 } else { LsdGroup::V4 },
            port,
            info_hashes: hashes.into_iter().map(InfoHash).collect(),
            cookie,
        };
        prop_assert_eq!(LsdAnnounce::parse(&a.encode().expect("valid")), Ok(a));
    }

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in "\\PC{0,200}") {
        let _ = LsdAnnounce::parse(&bytes);
        let packet = format!("BT-SEARCH * HTTP/1.1\r\n{text}");
        if let Ok(a) = LsdAnnounce::parse(packet.as_bytes()) {
            prop_assert_eq!(LsdAnnounce::parse(&a.encode().expect("parsed announces encode")), Ok(a));
        }
    }
}
