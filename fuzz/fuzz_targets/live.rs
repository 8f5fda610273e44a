//! Fuzzes what a live viewer reads from others: frames and chunks off the wire and channel
//! links. No input may panic; a frame or chunk that decodes encodes back to the same bytes, and
//! a link that parses prints as one that parses to the same channel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_live::wire::Frame;
use shoal_live::{ChannelLink, Chunk};

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = Chunk::decode(data) {
        assert_eq!(chunk.encode(), data);
    }
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(&frame.encode()[4..], data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(link) = ChannelLink::parse(text)
    {
        assert_eq!(ChannelLink::parse(&link.to_string()), Ok(link));
    }
});
