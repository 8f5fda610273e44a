//! Tests of metadata assembly and serving: piece geometry, refusals, hash checks and resets.

use proptest::prelude::*;

use super::*;

/// Fake info dictionary bytes of `len` bytes and their info-hash.
fn info(len: usize) -> (Bytes, InfoHash) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let hash = InfoHash(Sha1::digest(&bytes).into());
    (Bytes::from(bytes), hash)
}

const PL: usize = METADATA_PIECE_LEN as usize;

#[test]
fn refuses_absurd_sizes() {
    let h = InfoHash([0; 20]);
    assert_eq!(MetadataAssembler::new(h, 0).map(|_| ()), Err(MetadataError::ZeroSize));
    assert_eq!(
        MetadataAssembler::new(h, MAX_METADATA_SIZE + 1).map(|_| ()).map_err(|e| e.to_string()),
        Err("metadata_size 16777217 exceeds the limit of 16777216 bytes".into())
    );
    let max = MetadataAssembler::new(h, MAX_METADATA_SIZE).expect("16 MiB is fine");
    assert_eq!(max.piece_count(), 1024);
    assert_eq!(max.piece_len(1023), Some(METADATA_PIECE_LEN));
    assert_eq!(max.piece_len(1024), None);
}

#[test]
fn piece_geometry() {
    let a = MetadataAssembler::new(InfoHash([0; 20]), 2 * METADATA_PIECE_LEN + 5).expect("valid");
    assert_eq!(a.piece_count(), 3);
    assert_eq!((a.piece_len(0), a.piece_len(2), a.piece_len(3)), (Some(16384), Some(5), None));
    assert_eq!(a.piece_len(u32::MAX), None);
    let exact = MetadataAssembler::new(InfoHash([0; 20]), METADATA_PIECE_LEN).expect("valid");
    assert_eq!((exact.piece_count(), exact.piece_len(0)), (1, Some(16384)));
}

#[test]
fn assembles_out_of_order() {
    let (bytes, hash) = info(2 * PL + 100);
    let mut a = MetadataAssembler::new(hash, bytes.len() as u32).expect("valid");
    assert_eq!(
        (a.request_next(), a.request_next(), a.request_next(), a.request_next()),
        (Some(0), Some(1), Some(2), None)
    );
    a.on_reject(1);
    assert_eq!(a.next_missing(), Some(1));
    let total = bytes.len() as u32;
    assert_eq!(a.on_data(2, total, &bytes[2 * PL..]), Ok(None));
    assert_eq!(a.on_data(0, total, &bytes[..PL]), Ok(None));
    assert_eq!(a.on_data(0, total, &bytes[..PL]), Ok(None), "repeats are ignored");
    assert_eq!(a.received(), 2);
    assert_eq!(a.on_data(1, total, &bytes[PL..2 * PL]), Ok(Some(bytes.to_vec())));
    assert_eq!(a.next_missing(), None);
}

#[test]
fn refused_pieces_become_missing() {
    let (bytes, hash) = info(PL + 10);
    let mut a = MetadataAssembler::new(hash, bytes.len() as u32).expect("valid");
    let total = bytes.len() as u32;
    let err = |r: Result<Option<Vec<u8>>, MetadataError>| r.expect_err("refused").to_string();
    assert_eq!(a.request_next(), Some(0));
    assert_eq!(
        err(a.on_data(0, total + 1, &bytes[..PL])),
        format!("metadata piece has total_size {}, but the metadata is {total} bytes", total + 1)
    );
    assert_eq!(a.request_next(), Some(0), "refused piece is missing again");
    assert_eq!(err(a.on_data(0, total, &bytes[..PL - 1])), "metadata piece 0 has 16383 bytes, expected 16384");
    assert_eq!(err(a.on_data(1, total, &bytes[..PL])), "metadata piece 1 has 16384 bytes, expected 10");
    assert_eq!(err(a.on_data(2, total, &bytes[..10])), "metadata piece 2 does not exist: the metadata has 2 pieces");
    assert_eq!(a.received(), 0);
}

#[test]
fn r_hash_mismatch_resets_for_another_peer() {
    let (bytes, hash) = info(PL + 10);
    let total = bytes.len() as u32;
    let mut a = MetadataAssembler::new(hash, total).expect("valid");
    let mut forged = bytes[PL..].to_vec();
    forged[0] ^= 1;
    assert_eq!(a.on_data(0, total, &bytes[..PL]), Ok(None));
    let Err(MetadataError::HashMismatch { expected, got }) = a.on_data(1, total, &forged) else {
        panic!("forged data must not pass");
    };
    assert_eq!(expected, hash);
    assert_ne!(got, hash);
    assert_eq!((a.received(), a.next_missing()), (0, Some(0)));
    assert_eq!(a.on_data(1, total, &bytes[PL..]), Ok(None));
    assert_eq!(a.on_data(0, total, &bytes[..PL]), Ok(Some(bytes.to_vec())));
}

#[test]
fn serves_our_info_dict() {
    let (bytes, _) = info(PL + 3);
    let MetadataMessage::Data { piece: 1, total_size, data } = serve_metadata_piece(&bytes, 1) else {
        panic!("piece 1 exists");
    };
    assert_eq!(total_size as usize, PL + 3);
    assert_eq!(&data[..], &bytes[PL..]);
    assert_eq!(data.as_ptr(), bytes[PL..].as_ptr(), "no copy");
    assert_eq!(serve_metadata_piece(&bytes, 2), MetadataMessage::Reject { piece: 2 });
    assert_eq!(serve_metadata_piece(&bytes, u32::MAX), MetadataMessage::Reject { piece: u32::MAX });
    assert_eq!(metadata_pieces(&bytes).count(), 2);
    assert_eq!(metadata_pieces(&Bytes::new()).count(), 0);
}

proptest! {
    #[test]
    fn serve_then_assemble(len in 1usize..5 * PL, order in any::<u64>()) {
        let (bytes, hash) = info(len);
        let mut a = MetadataAssembler::new(hash, len as u32).expect("valid");
        let mut messages: Vec<MetadataMessage> = metadata_pieces(&bytes).collect();
        prop_assert_eq!(messages.len() as u32, a.piece_count());
        // A deterministic shuffle from `order`.
        let n = messages.len();
        messages.rotate_left(order as usize % n);
        let mut done = None;
        for msg in messages {
            let encoded = Bytes::from(msg.encode());
            let MetadataMessage::Data { piece, total_size, data } = MetadataMessage::decode(&encoded).expect("valid") else {
                unreachable!("only data");
            };
            prop_assert!(done.is_none());
            done = a.on_data(piece, total_size, &data).expect("valid piece");
        }
        prop_assert_eq!(done, Some(bytes.to_vec()));
    }

    #[test]
    fn arbitrary_data_never_panics(size in 1u32..70_000, piece in 0u32..6, total in 0u32..70_000, len in 0usize..20_000) {
        let mut a = MetadataAssembler::new(InfoHash([9; 20]), size).expect("valid");
        let _ = a.on_data(piece, total, &vec![1; len]);
        let _ = a.on_data(piece, size, &vec![1; len]);
        prop_assert!(a.received() <= a.piece_count());
    }
}
