//! Fuzzes the bencode decoder: no input may panic, and whatever decodes must survive an
//! encode/decode round trip unchanged (and re-encode to the same canonical bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_bencode::{decode, decode_prefix, dict_value_span, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode(data) {
        let canonical = encode(&value);
        let again = decode(&canonical).expect("encoder output must decode");
        assert_eq!(again, value);
        assert_eq!(encode(&again), canonical);
        if let Some(span) = dict_value_span(data, b"info").expect("valid input has spans") {
            let info = decode(&data[span]).expect("a value's span decodes on its own");
            assert_eq!(Some(&info), value.get(b"info"));
        }
    }
    if let Ok((_, used)) = decode_prefix(data) {
        assert!(used <= data.len());
        assert!(decode(&data[..used]).is_ok());
    }
});
