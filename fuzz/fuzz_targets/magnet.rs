//! Fuzzes magnet link parsing: no input may panic, and every accepted link must print to a
//! link that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::Magnet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(magnet) = Magnet::parse(text) {
        assert_eq!(Magnet::parse(&magnet.to_string()), Ok(magnet));
    }
});
