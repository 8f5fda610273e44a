//! Fuzzes what search neighbours read from each other: `shoal_search` extension payloads
//! (queries, results, routing tables). No input may panic or allocate past the message bound;
//! a payload that decodes encodes to one that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_search::overlay::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let again = message.encode();
        assert_eq!(Message::decode(&again).as_ref(), Ok(&message));
    }
});
