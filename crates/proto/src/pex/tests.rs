//! Tests of the `ut_pex` codec and of the delta computation.

use proptest::prelude::*;

use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

#[test]
fn decodes_a_mixed_message() {
    let payload = b"d5:added12:\x01\x02\x03\x04\x1a\xe1\x05\x06\x07\x08\x00\x507:added.f1:\x126:added618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe17:dropped6:\x0a\x00\x00\x01\x00\x01e";
    let msg = PexMessage::decode(payload).expect("valid");
    assert_eq!(msg.added, vec![a("1.2.3.4:6881"), a("5.6.7.8:80"), a("[2001:db8::1]:6881")]);
    assert_eq!(msg.added_flags, vec![FLAG_SEED | FLAG_REACHABLE, 0, 0], "short flags are padded");
    assert_eq!(msg.dropped, vec![a("10.0.0.1:1")]);
}

#[test]
fn encodes_exact_bytes() {
    let msg = PexMessage {
        added: vec![a("1.2.3.4:6881"), a("[2001:db8::1]:6881")],
        added_flags: vec![FLAG_UTP, FLAG_SEED, 0xff],
        dropped: vec![a("10.0.0.1:1")],
    };
    let bytes = msg.encode();
    assert_eq!(
        bytes,
        b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x046:added618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe18:added6.f1:\x027:dropped6:\x0a\x00\x00\x01\x00\x01e"
    );
    let back = PexMessage::decode(&bytes).expect("valid");
    assert_eq!(back.added_flags, vec![FLAG_UTP, FLAG_SEED], "extra flags are dropped");
    assert_eq!(PexMessage::default().encode(), b"d5:added0:7:added.f0:7:dropped0:e");
    assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
}

#[test]
fn flags_are_advisory() {
    let msg = PexMessage::decode(b"d5:added6:\x01\x02\x03\x04\x00\x017:added.f3:abce").expect("long flags");
    assert_eq!(msg.added_flags, vec![b'a']);
    let msg = PexMessage::decode(b"d5:added6:\x01\x02\x03\x04\x00\x017:added.fi3ee").expect("wrong type");
    assert_eq!(msg.added_flags, vec![0]);
}

#[test]
fn port_zero_contacts_are_skipped_with_their_flags() {
    let msg = PexMessage::decode(b"d5:added12:\x01\x01\x01\x01\x00\x00\x02\x02\x02\x02\x00\x027:added.f2:\x01\x02e")
        .expect("valid");
    assert_eq!(msg.added, vec![a("2.2.2.2:2")]);
    assert_eq!(msg.added_flags, vec![2]);
}

#[test]
fn errors_name_the_key() {
    let err = |p: &[u8]| PexMessage::decode(p).expect_err("invalid").to_string();
    assert_eq!(err(b"d5:added5:abcdee"), "ut_pex `added` is 5 bytes long, not a multiple of 6");
    assert_eq!(err(b"d8:dropped66:abcdefe"), "ut_pex `dropped6` is 6 bytes long, not a multiple of 18");
    assert_eq!(err(b"d7:droppedi1ee"), "ut_pex `dropped` is an integer, expected a byte string");
    assert_eq!(err(b"le"), "ut_pex message is a list, not a dictionary");
    assert!(matches!(PexMessage::decode(b"d5:added"), Err(PexError::Bencode(_))));
    let mut big = b"d5:added1206:".to_vec();
    big.extend(std::iter::repeat_n(1u8, 1206));
    big.push(b'e');
    assert_eq!(err(&big), "ut_pex `added` lists 201 peers, more than the limit of 200");
    big.truncate(8);
    big.extend_from_slice(b"1200:");
    big.extend(std::iter::repeat_n(1u8, 1200));
    big.push(b'e');
    assert_eq!(PexMessage::decode(&big).map(|m| m.added.len()), Ok(200));
}

#[test]
fn state_adds_then_drops() {
    let mut state = PexState::new();
    let mut current: BTreeSet<SocketAddr> = [a("1.1.1.1:1"), a("[::2]:2")].into();
    let first = state.diff(&current).expect("two added");
    assert_eq!(first.added, vec![a("1.1.1.1:1"), a("[::2]:2")]);
    assert_eq!(first.added_flags, vec![0, 0]);
    assert!(first.dropped.is_empty());
    assert_eq!(state.diff(&current), None, "nothing changed");

    current.remove(&a("1.1.1.1:1"));
    current.insert(a("3.3.3.3:3"));
    let second = state.diff(&current).expect("one each");
    assert_eq!(second.added, vec![a("3.3.3.3:3")]);
    assert_eq!(second.dropped, vec![a("1.1.1.1:1")]);
    assert_eq!(state.announced(), &current);
}

#[test]
fn state_elides_transient_connections() {
    let mut state = PexState::new();
    let current: BTreeSet<SocketAddr> = [a("1.1.1.1:1")].into();
    state.diff(&current);
    // 2.2.2.2 connected and disconnected between two messages: never mentioned.
    let later: BTreeSet<SocketAddr> = [a("1.1.1.1:1")].into();
    assert_eq!(state.diff(&later), None);
}

#[test]
fn state_batches_fifty_per_message() {
    let mut state = PexState::new();
    let current: BTreeMap<SocketAddr, u8> =
        (0..120u16).map(|i| (SocketAddr::from(([10, 0, 0, 1], i + 1)), FLAG_REACHABLE)).collect();
    let sizes: Vec<usize> = std::iter::from_fn(|| state.diff_with_flags(&current)).map(|m| m.added.len()).collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    let none = BTreeMap::new();
    let msgs: Vec<PexMessage> = std::iter::from_fn(|| state.diff_with_flags(&none)).collect();
    assert_eq!(msgs.iter().map(|m| m.dropped.len()).collect::<Vec<_>>(), vec![50, 50, 20]);
    assert!(msgs.iter().all(|m| m.added.is_empty()));
    assert!(state.announced().is_empty());
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), 1u16..).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

proptest! {
    #[test]
    fn roundtrip(added in proptest::collection::vec((addr(), any::<u8>()), 0..40),
                 dropped in proptest::collection::vec(addr(), 0..40)) {
        let mut msg = PexMessage {
            added: added.iter().map(|(a, _)| *a).collect(),
            added_flags: added.iter().map(|(_, f)| *f).collect(),
            dropped,
        };
        let back = PexMessage::decode(&msg.encode()).expect("valid");
        // Encoding groups IPv4 before IPv6.
        let mut pairs: Vec<(SocketAddr, u8)> = msg.added.iter().copied().zip(msg.added_flags.iter().copied()).collect();
        pairs.sort_by_key(|(a, _)| a.is_ipv6());
        msg.added = pairs.iter().map(|(a, _)| *a).collect();
        msg.added_flags = pairs.iter().map(|(_, f)| *f).collect();
        msg.dropped.sort_by_key(SocketAddr::is_ipv6);
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn state_converges(steps in proptest::collection::vec(proptest::collection::btree_set(addr(), 0..80), 1..6)) {
        let mut state = PexState::new();
        // What the receiving peer believes, rebuilt only from the messages it got.
        let mut belief = BTreeSet::new();
        for current in &steps {
            while let Some(msg) = state.diff(current) {
                prop_assert!(msg.added.len() <= PEX_BATCH && msg.dropped.len() <= PEX_BATCH);
                for addr in &msg.added {
                    prop_assert!(belief.insert(*addr), "added twice");
                }
                for addr in &msg.dropped {
                    prop_assert!(belief.remove(addr), "dropped without being added");
                }
                prop_assert_eq!(PexMessage::decode(&msg.encode()).map(|m| m.added.len()), Ok(msg.added.len()));
            }
            prop_assert_eq!(&belief, current);
        }
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(msg) = PexMessage::decode(&bytes) {
            prop_assert_eq!(msg.added.len(), msg.added_flags.len());
        }
    }
}
