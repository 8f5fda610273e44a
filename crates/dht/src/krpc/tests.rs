use proptest::prelude::*;

use super::*;

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

#[test]
fn bep5_examples_decode() {
    let ping = decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").expect("ping");
    assert_eq!(ping, Message::query(b"aa".to_vec(), Query::Ping { id: id(b"abcdefghij0123456789") }));

    let find = decode(b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe")
        .expect("find_node");
    assert_eq!(
        find.kind,
        Kind::Query(Query::FindNode {
            id: id(b"abcdefghij0123456789"),
            target: id(b"mnopqrstuvwxyz123456"),
            want: None
        })
    );

    let peers = decode(b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re")
        .expect("get_peers response");
    let Kind::Response(r) = peers.kind else { panic!("not a response") };
    assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert_eq!(r.values, vec![read_compact_addr(b"axje.u").expect("6"), read_compact_addr(b"idhtnm").expect("6")]);

    let announce = decode(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    )
    .expect("announce");
    assert_eq!(
        announce.kind,
        Kind::Query(Query::AnnouncePeer {
            id: id(b"abcdefghij0123456789"),
            info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
            port: 6881,
            implied_port: true,
            token: b"aoeusnth".to_vec(),
        })
    );

    let err = decode(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee").expect("error");
    assert_eq!(err, Message::error(b"aa".to_vec(), 201, "A Generic Error Ocurred"));
}

#[test]
fn encodes_bep5_bytes() {
    let ping = Message::query(b"aa".to_vec(), Query::Ping { id: id(b"abcdefghij0123456789") });
    assert_eq!(ping.encode(), b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    let pong = Message::response(b"aa".to_vec(), Response::id_only(id(b"mnopqrstuvwxyz123456")));
    assert_eq!(pong.encode(), b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    let err = Message::error(b"aa".to_vec(), 201, "A Generic Error Ocurred");
    assert_eq!(err.encode(), b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
}

#[test]
fn malformed_packets_name_the_problem() {
    let cases: &[(&[u8], KrpcError)] = &[
        (b"d1:y1:qe", KrpcError::Missing("t")),
        (b"d1:t2:aae", KrpcError::Missing("y")),
        (b"d1:t2:aa1:y1:xe", KrpcError::BadMessageType("x".into())),
        (b"d1:ti1e1:y1:qe", KrpcError::WrongType { key: "t", expected: "a byte string", found: "integer" }),
        (b"d1:t17:aaaaaaaaaaaaaaaaa1:y1:qe", KrpcError::TidTooLong { len: 17 }),
        (b"li1ee", KrpcError::NotADict { found: "list" }),
        (b"d1:q4:ping1:t2:aa1:y1:qe", KrpcError::Missing("a")),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", KrpcError::BadId { key: "id", len: 3 }),
        (b"d1:rd2:id20:abcdefghij01234567895:nodes3:xyze1:t2:aa1:y1:re", KrpcError::BadNodes {
            key: "nodes",
            len: 3,
            entry: 26,
        }),
        (b"d1:rd2:id20:abcdefghij01234567896:valuesl3:abcee1:t2:aa1:y1:re", KrpcError::BadPeer { len: 3 }),
        (b"d1:eli201ee1:t2:aa1:y1:ee", KrpcError::BadError),
        (b"d2:ip2:xx1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re", KrpcError::BadIp { len: 2 }),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
            KrpcError::BadPort(70000),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode(bytes).as_ref(), Err(expected), "{}", bytes.escape_ascii());
    }
    assert!(matches!(decode(b"d1:t"), Err(KrpcError::Bencode(_))));
    assert!(matches!(decode(&vec![b'x'; MAX_PACKET_LEN + 1]), Err(KrpcError::TooLarge { .. })));
}

#[test]
fn unknown_method_and_query_tid() {
    let m = decode(b"d1:ad2:id20:abcdefghij0123456789e1:q3:get1:t1:x1:y1:qe").expect("decodes");
    assert_eq!(m.kind, Kind::Query(Query::Unknown { method: "get".into() }));
    assert_eq!(m.tid, b"x");
    // Unknown methods need no arguments at all.
    assert!(decode(b"d1:q3:foo1:t0:1:y1:qe").is_ok());
    assert_eq!(query_tid(b"d1:q4:ping1:t2:aa1:y1:qe"), Some(b"aa".to_vec()));
    assert_eq!(query_tid(b"d1:t2:aa1:y1:re"), None);
    assert_eq!(query_tid(b"garbage"), None);
}

#[test]
fn reads_a_bep_51_reply_and_refuses_a_broken_sample() {
    // As BEP 51 writes it: samples concatenated, num and interval as integers.
    let mut bytes = b"d1:rd2:id20:".to_vec();
    bytes.extend([7u8; 20]);
    bytes.extend(b"8:intervali30000e3:numi3e7:samples40:");
    bytes.extend([1u8; 20]);
    bytes.extend([2u8; 20]);
    bytes.extend(b"e1:t2:aa1:y1:re");
    let Kind::Response(r) = decode(&bytes).expect("decodes").kind else { panic!("not a response") };
    assert_eq!(r.samples, Some(vec![InfoHash([1; 20]), InfoHash([2; 20])]));
    assert_eq!((r.num, r.interval), (Some(3), Some(MAX_SAMPLE_INTERVAL)), "an interval over 6 h is read as 6 h");
    let mut broken = b"d1:rd2:id20:".to_vec();
    broken.extend([7u8; 20]);
    broken.extend(b"7:samples3:abce1:t2:aa1:y1:re");
    assert_eq!(decode(&broken), Err(KrpcError::BadSamples(3)));
    let q = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target20:bbbbbbbbbbbbbbbbbbbbe1:q17:sample_infohashes1:t2:xx1:y1:qe";
    let Kind::Query(q) = decode(q).expect("decodes").kind else { panic!("not a query") };
    assert_eq!(
        q,
        Query::SampleInfohashes {
            id: NodeId(*b"aaaaaaaaaaaaaaaaaaaa"),
            target: NodeId(*b"bbbbbbbbbbbbbbbbbbbb"),
            want: None
        }
    );
}

#[test]
fn caps_nodes_and_values() {
    let mut r = Response::id_only(NodeId([1; 20]));
    for i in 0..300u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        r.values.push(SocketAddr::from((ip, 1000)));
        r.nodes.push(NodeInfo { id: NodeId([i as u8; 20]), addr: SocketAddr::from((ip, 2000)) });
    }
    let back = decode(&Message::response(vec![], r).encode()).expect("decodes");
    let Kind::Response(r) = back.kind else { panic!("not a response") };
    assert_eq!(r.values.len(), MAX_VALUES);
    assert_eq!(r.nodes.len(), MAX_NODES);
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn addr_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn want() -> impl Strategy<Value = Option<Want>> {
    proptest::option::of((any::<bool>(), any::<bool>()).prop_map(|(n4, n6)| Want { n4, n6 }))
}

fn query() -> impl Strategy<Value = Query> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        node_id().prop_map(|id| Query::Ping { id }),
        (node_id(), node_id(), want()).prop_map(|(id, target, want)| Query::FindNode { id, target, want }),
        (node_id(), node_id(), want()).prop_map(|(id, target, want)| Query::SampleInfohashes { id, target, want }),
        (node_id(), any::<[u8; 20]>(), want()).prop_map(|(id, ih, want)| Query::GetPeers {
            id,
            info_hash: InfoHash(ih),
            want
        }),
        (node_id(), any::<[u8; 20]>(), any::<u16>(), any::<bool>(), bytes(MAX_TOKEN_LEN)).prop_map(
            |(id, ih, port, implied_port, token)| Query::AnnouncePeer {
                id,
                info_hash: InfoHash(ih),
                port,
                implied_port,
                token
            }
        ),
        "[a-z_]{1,12}"
            .prop_filter("known", |m| {
                !["ping", "find_node", "get_peers", "announce_peer", "sample_infohashes"].contains(&m.as_str())
            })
            .prop_map(|method| Query::Unknown { method }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let v4_nodes = proptest::collection::vec((node_id(), addr_v4()), 0..10);
    let v6_nodes = proptest::collection::vec((node_id(), addr_v6()), 0..4);
    let values = proptest::collection::vec(prop_oneof![addr_v4(), addr_v6()], 0..12);
    let token = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..MAX_TOKEN_LEN));
    let samples = proptest::option::of(proptest::collection::vec(any::<[u8; 20]>().prop_map(InfoHash), 0..5));
    let counts = (proptest::option::of(0..u64::MAX / 2), proptest::option::of(0..=MAX_SAMPLE_INTERVAL));
    (node_id(), v4_nodes, v6_nodes, values, token, samples, counts).prop_map(
        |(id, n4, n6, values, token, samples, (num, interval))| {
            let info = |(id, addr)| NodeInfo { id, addr };
            Response {
                id,
                nodes: n4.into_iter().map(info).collect(),
                nodes6: n6.into_iter().map(info).collect(),
                values,
                token,
                samples,
                num,
                interval,
            }
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        query().prop_map(Kind::Query),
        response().prop_map(Kind::Response),
        (any::<i64>(), ".{0,20}").prop_map(|(code, message)| Kind::Error { code, message }),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..=MAX_TID_LEN),
        kind,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
        proptest::option::of(prop_oneof![addr_v4(), addr_v6()]),
        any::<bool>(),
    )
        .prop_map(|(tid, kind, version, ip, read_only)| Message { tid, kind, version, ip, read_only })
}

proptest! {
    #[test]
    fn roundtrip(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(decode(&bytes), Ok(m));
        // The encoding is canonical bencode.
        let v = shoal_bencode::decode(&bytes).expect("bencode");
        prop_assert_eq!(shoal_bencode::encode(&v), bytes);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        let _ = query_tid(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = m.encode();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        let _ = decode(&bytes);
    }
}
