//! Fuzzes the `ut_pex` decoder: no input may panic, every accepted message must re-encode to
//! bytes that decode to the same message, and feeding its peers to a `PexState` must produce
//! messages that a receiver can follow exactly.
#![no_main]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use shoal_proto::pex::{MAX_PEX_PEERS, PEX_BATCH};
use shoal_proto::{PexMessage, PexState};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = PexMessage::decode(data) else {
        return;
    };
    assert_eq!(msg.added.len(), msg.added_flags.len());
    assert!(msg.added.len() <= 2 * MAX_PEX_PEERS && msg.dropped.len() <= 2 * MAX_PEX_PEERS);
    assert!(msg.added.iter().chain(&msg.dropped).all(|a| a.port() != 0));
    let again = PexMessage::decode(&msg.encode()).expect("encoded message decodes");
    assert_eq!(again, msg);

    // Connect to the added peers, then swap to the dropped ones.
    let mut state = PexState::new();
    let mut belief = BTreeSet::new();
    for current in [msg.added.iter().copied().collect::<BTreeSet<SocketAddr>>(), msg.dropped.iter().copied().collect()]
    {
        while let Some(delta) = state.diff(&current) {
            assert!(delta.added.len() <= PEX_BATCH && delta.dropped.len() <= PEX_BATCH);
            for a in &delta.added {
                assert!(belief.insert(*a));
            }
            for a in &delta.dropped {
                assert!(belief.remove(a));
            }
            assert_eq!(PexMessage::decode(&delta.encode()).as_ref().map(|m| m.added.len()), Ok(delta.added.len()));
        }
        assert_eq!(belief, current);
    }
});
