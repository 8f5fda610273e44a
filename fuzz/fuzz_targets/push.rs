//! Fuzzes the push protocol's decoders (`shoal_rpc::push`): a server reads requests from any
//! identity that completes a TLS handshake, and a pusher reads the server's replies. The first
//! byte picks which. No input may panic; a decoded message must encode to a frame that decodes
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_rpc::push::{Reply, Request, decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which % 2 == 0 {
        if let Ok(Some((request, used))) = decode_frame::<Request>(rest) {
            assert!(used <= rest.len());
            let again = encode_frame(&request).expect("a decoded request encodes");
            assert_eq!(decode_frame::<Request>(&again).expect("re-decodes").map(|(r, _)| r), Some(request));
        }
    } else if let Ok(Some((reply, _))) = decode_frame::<Reply>(rest) {
        let again = encode_frame(&reply).expect("a decoded reply encodes");
        assert_eq!(decode_frame::<Reply>(&again).expect("re-decodes").map(|(r, _)| r), Some(reply));
    }
});
