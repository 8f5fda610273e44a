//! Fuzzes `.torrent` parsing, v1 and v2 (BEP 52): no input may panic, and every accepted torrent
//! must keep the invariants the rest of Shoal relies on (for v2: safe paths, and a piece layer for
//! every file larger than a piece).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::{Magnet, Metainfo};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = shoal_proto::metainfo::v2::parse(data) {
        for file in &t.files {
            assert!(file.path.iter().all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains(['/', '\\', '\0'])));
            if file.length > t.piece_length {
                assert!(t.piece_hash(file, 0).is_some(), "a verified layer for every large file");
            }
        }
    }
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    let info = &m.info;
    assert_eq!(info.pieces.len(), info.layout.piece_count() as usize);
    assert_eq!(info.layout.piece_length(), info.piece_length);
    let mut offset = 0u64;
    for file in &info.files {
        assert_eq!(file.offset, offset);
        assert!(!file.path.is_empty());
        for part in &file.path {
            assert!(!part.is_empty() && part != "." && part != "..");
            assert!(!part.contains(['/', '\\', '\0']));
        }
        offset += file.length;
    }
    assert_eq!(offset, info.total_length());
    let again = Metainfo::from_info_bytes(&m.info_bytes).expect("accepted info re-parses");
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(&again.info, info);
    let magnet = m.magnet();
    assert_eq!(Magnet::parse(&magnet.to_string()), Ok(magnet));
});
