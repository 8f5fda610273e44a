//! Fuzzes the peer wire decoders: the handshake, the message framing, and the extension
//! payloads carried in `extended` messages. Every decoded message must re-encode to a frame
//! that decodes to the same message.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal_proto::extension::{ExtHandshake, MetadataMessage};
use shoal_proto::{Handshake, MAX_MESSAGE_LEN, Message, decode_message};

fuzz_target!(|data: &[u8]| {
    // A stream that opens with a valid handshake continues with messages after it.
    let mut messages = data;
    if let Some(prefix) = data.first_chunk::<68>() {
        if let Ok(h) = Handshake::decode(prefix) {
            assert_eq!(&h.encode(), prefix);
            messages = &data[68..];
        }
    }
    // The last byte picks a small or the default frame limit, to reach both paths.
    let limit = match data.last() {
        Some(b) if b % 4 == 1 => u32::from(*b) * 64,
        _ => MAX_MESSAGE_LEN,
    };
    let mut buf = BytesMut::from(messages);
    while let Ok(Some(msg)) = decode_message(&mut buf, limit) {
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(out.len(), msg.encoded_len());
        assert_eq!(decode_message(&mut out, u32::MAX), Ok(Some(msg.clone())));
        assert!(out.is_empty());
        if let Message::Extended { payload, .. } = &msg {
            if let Ok(h) = ExtHandshake::decode(payload) {
                assert_eq!(ExtHandshake::decode(&h.encode()), Ok(h));
            }
            if let Ok(m) = MetadataMessage::decode(payload) {
                assert_eq!(MetadataMessage::decode(&Bytes::from(m.encode())), Ok(m));
            }
        }
    }
});
