//! Fuzzes the BitTorrent v2 hash messages (BEP 52 ids 21–23) as a hostile peer sends them:
//! the bytes (first byte the id, the rest the payload) are decoded; a request is checked and
//! answered from a real file's tree, and the answer must verify; `hashes` are verified against
//! the file's root and must never be taken unless they add up to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::merkle::{HashMessage, Levels, prove, verify};
use shoal_proto::metainfo::v2::leaves;

/// The tree of a 40-block file (64 leaves), built once.
fn tree() -> &'static Levels {
    static TREE: std::sync::OnceLock<Levels> = std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        let file: Vec<u8> = (0..40 * 16384u32).map(|i| (i % 251) as u8).collect();
        Levels::build(leaves(&file), 0, 64)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&id, payload)) = data.split_first() else { return };
    let levels = tree();
    let root = levels.root();
    let trusted = |layer: u32, index: u64| (layer == 6 && index == 0).then_some(root);
    match HashMessage::decode(id, payload) {
        Ok(HashMessage::Request(req)) | Ok(HashMessage::Reject(req)) => {
            if req.check(64).is_ok() {
                let answer = prove(&req, |l, i| levels.node(l, i)).expect("a checked request is answerable");
                if req.base + req.proof_layers + 1 == 6 {
                    assert!(verify(&req, &answer, trusted).is_ok(), "an honest answer verifies");
                }
            }
        }
        Ok(HashMessage::Hashes(req, hashes)) => {
            if let Ok(base) = verify(&req, &hashes, trusted) {
                // Taken only when every hash matches the real tree.
                for (i, h) in base.iter().enumerate() {
                    assert_eq!(Some(*h), levels.node(req.base, u64::from(req.index) + i as u64));
                }
            }
        }
        Err(_) => {}
    }
});
