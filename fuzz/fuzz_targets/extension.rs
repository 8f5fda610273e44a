//! Fuzzes the extension payload decoders on their own: the BEP 10 handshake, BEP 9
//! `ut_metadata` messages and Shoal's `shoal_wants` must round-trip, and the data of a decoded `Data` message is fed to
//! a `MetadataAssembler`, whose refusals, hash check and reset must be consistent.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shoal_proto::{ExtHandshake, InfoHash, MetadataAssembler, MetadataError, MetadataMessage, metadata_pieces};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = ExtHandshake::decode(data) {
        assert_eq!(ExtHandshake::decode(&h.encode()), Ok(h));
    }
    if let Ok(pieces) = shoal_proto::extension::decode_wants(data) {
        assert!(!pieces.is_empty() && pieces.len() <= shoal_proto::extension::MAX_WANTS);
        assert_eq!(shoal_proto::extension::encode_wants(&pieces), data);
    }
    let payload = Bytes::copy_from_slice(data);
    let Ok(msg) = MetadataMessage::decode(&payload) else {
        return;
    };
    assert_eq!(MetadataMessage::decode(&Bytes::from(msg.encode())), Ok(msg.clone()));
    let MetadataMessage::Data { piece, total_size, data: piece_data } = msg else {
        return;
    };

    // The piece as a peer sent it, to an assembler that cannot be satisfied (no SHA-1 is 0).
    if let Ok(mut wrong) = MetadataAssembler::new(InfoHash([0; 20]), total_size) {
        match wrong.on_data(piece, total_size, &piece_data) {
            Ok(None) => assert_eq!(wrong.received(), 1),
            Ok(Some(_)) => panic!("metadata matched an all-zero info-hash"),
            Err(MetadataError::HashMismatch { got, .. }) => {
                // A one-piece dictionary: reset, and accepted under its real hash.
                assert_eq!((wrong.received(), wrong.next_missing()), (0, Some(0)));
                let mut right = MetadataAssembler::new(got, total_size).expect("same size");
                assert_eq!(right.on_data(piece, total_size, &piece_data), Ok(Some(piece_data.to_vec())));
            }
            Err(_) => assert_eq!(wrong.received(), 0),
        }
    }

    // The piece's bytes as a whole info dictionary, served and reassembled.
    let Ok(size) = u32::try_from(piece_data.len()) else {
        return;
    };
    let Ok(mut first) = MetadataAssembler::new(InfoHash([0; 20]), size) else {
        return;
    };
    let mut hash = None;
    for m in metadata_pieces(&piece_data) {
        let MetadataMessage::Data { piece, total_size, data } = m else {
            panic!("metadata_pieces yields data");
        };
        match first.on_data(piece, total_size, &data) {
            Ok(None) => {}
            Err(MetadataError::HashMismatch { got, .. }) => hash = Some(got),
            other => panic!("unexpected {other:?}"),
        }
    }
    let hash = hash.expect("all pieces were served");
    let mut second = MetadataAssembler::new(hash, size).expect("same size");
    let mut done = None;
    while let Some(p) = second.request_next() {
        let MetadataMessage::Data { total_size, data, .. } = shoal_proto::serve_metadata_piece(&piece_data, p) else {
            panic!("requested pieces exist");
        };
        done = second.on_data(p, total_size, &data).expect("served pieces fit");
    }
    assert_eq!(done, Some(piece_data.to_vec()));
});
