//! Fuzzes the LSD announce parser: no input may panic, and every accepted announce must
//! encode (parsing accepts nothing the encoder refuses) to a packet that parses back to the
//! same announce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::LsdAnnounce;
use shoal_proto::lsd::MAX_INFO_HASHES;

fuzz_target!(|data: &[u8]| {
    let Ok(announce) = LsdAnnounce::parse(data) else {
        return;
    };
    assert!(!announce.info_hashes.is_empty() && announce.info_hashes.len() <= MAX_INFO_HASHES);
    assert_ne!(announce.port, 0);
    let packet = announce.encode().expect("a parsed announce encodes");
    assert_eq!(LsdAnnounce::parse(&packet), Ok(announce.clone()));
    let batches = LsdAnnounce::batch(announce.group, announce.port, announce.cookie.as_deref(), &announce.info_hashes);
    let hashes: Vec<_> = batches.iter().flat_map(|b| b.info_hashes.iter().copied()).collect();
    assert_eq!(hashes, announce.info_hashes);
    for batch in batches {
        let packet = batch.encode().expect("a batch encodes");
        assert_eq!(LsdAnnounce::parse(&packet), Ok(batch));
    }
});
