//! Framing of peer wire messages (BEP 3, BEP 6, BEP 10): `<u32 length><id><payload>`.
//!
//! Decoding is zero-copy: a complete frame is split off the caller's `BytesMut` and frozen,
//! and variable payloads (`piece` data, `bitfield`, `extended`, unknown messages) are `Bytes`
//! slices of that frame. Encoding can likewise leave the payload out ([`Message::encode_head`])
//! so block data read from disk is written without being copied into the send buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Message, WireError};

/// Default limit on a frame's length (id + payload): one 16 KiB block with its header has a
/// 16,393-byte frame, but bitfields of huge torrents and `extended` messages carrying
/// metadata can be larger. Callers with a known piece count use [`max_message_len`].
pub const MAX_MESSAGE_LEN: u32 = 1024 * 1024 + 13;

/// The frame-length limit for a torrent with `piece_count` pieces: [`MAX_MESSAGE_LEN`], raised
/// when needed so the torrent's full `bitfield` fits.
pub fn max_message_len(piece_count: u32) -> u32 {
    MAX_MESSAGE_LEN.max(1 + piece_count.div_ceil(8))
}

/// The most [`decode_message`] reserves ahead for a partial frame. A peer announcing a large
/// frame only makes the buffer grow as its bytes actually arrive.
const RESERVE_AHEAD: usize = 64 * 1024;

const CHOKE: u8 = 0;
const UNCHOKE: u8 = 1;
const INTERESTED: u8 = 2;
const NOT_INTERESTED: u8 = 3;
const HAVE: u8 = 4;
const BITFIELD: u8 = 5;
const REQUEST: u8 = 6;
const PIECE: u8 = 7;
const CANCEL: u8 = 8;
const PORT: u8 = 9;
const SUGGEST_PIECE: u8 = 13;
const HAVE_ALL: u8 = 14;
const HAVE_NONE: u8 = 15;
const REJECT_REQUEST: u8 = 16;
const ALLOWED_FAST: u8 = 17;
const EXTENDED: u8 = 20;

/// Decodes one message from the front of `buf`.
///
/// * `Ok(None)`: the frame is not complete yet; nothing is consumed (some capacity may be
///   reserved for the rest). Read more bytes into `buf` and call again.
/// * `Ok(Some(msg))`: the frame was split off `buf`; payloads in `msg` share its memory.
/// * `Err(_)`: the peer sent a frame longer than `max_len` (checked as soon as the 4-byte
///   prefix is in, before buffering the rest) or a payload of the wrong size for its id. The
///   buffer is left as it was; the connection should be closed.
pub fn decode_message(buf: &mut BytesMut, max_len: u32) -> Result<Option<Message>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > max_len {
        return Err(WireError::TooLong { len, max: max_len });
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    if len == 0 {
        buf.advance(4);
        return Ok(Some(Message::KeepAlive));
    }
    let id = buf[4];
    // Validate before consuming so an error leaves the buffer untouched.
    check_payload_len(id, len as usize - 1)?;
    let mut frame = buf.split_to(total).freeze();
    frame.advance(5);
    Ok(Some(parse(id, frame)))
}

/// Checks the payload size required by each known id.
fn check_payload_len(id: u8, len: usize) -> Result<(), WireError> {
    let (ok, expected) = match id {
        CHOKE | UNCHOKE | INTERESTED | NOT_INTERESTED | HAVE_ALL | HAVE_NONE => (len == 0, "0"),
        HAVE | SUGGEST_PIECE | ALLOWED_FAST => (len == 4, "4"),
        REQUEST | CANCEL | REJECT_REQUEST => (len == 12, "12"),
        PIECE => (len >= 8, "at least 8"),
        PORT => (len == 2, "2"),
        EXTENDED => (len >= 1, "at least 1"),
        _ => (true, ""),
    };
    if ok { Ok(()) } else { Err(WireError::BadPayloadLength { message: name(id), len, expected }) }
}

/// Builds the message from a payload whose length [`check_payload_len`] accepted.
fn parse(id: u8, mut p: Bytes) -> Message {
    match id {
        CHOKE => Message::Choke,
        UNCHOKE => Message::Unchoke,
        INTERESTED => Message::Interested,
        NOT_INTERESTED => Message::NotInterested,
        HAVE => Message::Have(p.get_u32()),
        BITFIELD => Message::Bitfield(p),
        REQUEST => Message::Request { index: p.get_u32(), begin: p.get_u32(), length: p.get_u32() },
        PIECE => Message::Piece { index: p.get_u32(), begin: p.get_u32(), data: p },
        CANCEL => Message::Cancel { index: p.get_u32(), begin: p.get_u32(), length: p.get_u32() },
        PORT => Message::Port(p.get_u16()),
        SUGGEST_PIECE => Message::SuggestPiece(p.get_u32()),
        HAVE_ALL => Message::HaveAll,
        HAVE_NONE => Message::HaveNone,
        REJECT_REQUEST => Message::RejectRequest { index: p.get_u32(), begin: p.get_u32(), length: p.get_u32() },
        ALLOWED_FAST => Message::AllowedFast(p.get_u32()),
        EXTENDED => Message::Extended { id: p.get_u8(), payload: p },
        _ => Message::Unknown { id, payload: p },
    }
}

/// Name of a message id for errors and logs.
fn name(id: u8) -> &'static str {
    match id {
        CHOKE => "choke",
        UNCHOKE => "unchoke",
        INTERESTED => "interested",
        NOT_INTERESTED => "not interested",
        HAVE => "have",
        BITFIELD => "bitfield",
        REQUEST => "request",
        PIECE => "piece",
        CANCEL => "cancel",
        PORT => "port",
        SUGGEST_PIECE => "suggest piece",
        HAVE_ALL => "have all",
        HAVE_NONE => "have none",
        REJECT_REQUEST => "reject request",
        ALLOWED_FAST => "allowed fast",
        EXTENDED => "extended",
        _ => "unknown",
    }
}

impl Message {
    /// The message's name, as in BEP 3 and BEP 6 ("keep-alive", "piece", "have all", ...).
    pub fn name(&self) -> &'static str {
        match self.id() {
            Some(id) => name(id),
            None => "keep-alive",
        }
    }

    /// The message id byte; `None` for a keep-alive, which has none.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => CHOKE,
            Message::Unchoke => UNCHOKE,
            Message::Interested => INTERESTED,
            Message::NotInterested => NOT_INTERESTED,
            Message::Have(_) => HAVE,
            Message::Bitfield(_) => BITFIELD,
            Message::Request { .. } => REQUEST,
            Message::Piece { .. } => PIECE,
            Message::Cancel { .. } => CANCEL,
            Message::Port(_) => PORT,
            Message::SuggestPiece(_) => SUGGEST_PIECE,
            Message::HaveAll => HAVE_ALL,
            Message::HaveNone => HAVE_NONE,
            Message::RejectRequest { .. } => REJECT_REQUEST,
            Message::AllowedFast(_) => ALLOWED_FAST,
            Message::Extended { .. } => EXTENDED,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// The variable-length tail of the message (block data, bitfield, extended or unknown
    /// payload), which [`Message::encode_head`] leaves out.
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Message::Bitfield(b)
            | Message::Piece { data: b, .. }
            | Message::Extended { payload: b, .. }
            | Message::Unknown { payload: b, .. } => Some(b),
            _ => None,
        }
    }

    /// Total encoded size in bytes, including the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        let fixed = match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone
            | Message::Bitfield(_)
            | Message::Unknown { .. } => 1,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 5,
            Message::Request { .. } | Message::Cancel { .. } | Message::RejectRequest { .. } => 13,
            Message::Piece { .. } => 9,
            Message::Port(_) => 3,
            Message::Extended { .. } => 2,
        };
        4 + fixed + self.payload().map_or(0, Bytes::len)
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        self.encode_head(out);
        if let Some(payload) = self.payload() {
            out.extend_from_slice(payload);
        }
    }

    /// Appends the frame without its [`Message::payload`]: length prefix, id and fixed
    /// fields. Writing the payload right after it completes the frame.
    pub fn encode_head(&self, out: &mut BytesMut) {
        // Frames are bounded by the decoder's u32 limit; a payload over 4 GiB is a caller bug.
        out.put_u32((self.encoded_len() - 4) as u32);
        let Some(id) = self.id() else { return };
        out.put_u8(id);
        match self {
            Message::Have(n) | Message::SuggestPiece(n) | Message::AllowedFast(n) => out.put_u32(*n),
            Message::Request { index, begin, length }
            | Message::Cancel { index, begin, length }
            | Message::RejectRequest { index, begin, length } => {
                out.put_u32(*index);
                out.put_u32(*begin);
                out.put_u32(*length);
            }
            Message::Piece { index, begin, .. } => {
                out.put_u32(*index);
                out.put_u32(*begin);
            }
            Message::Port(port) => out.put_u16(*port),
            Message::Extended { id, .. } => out.put_u8(*id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = decode_message(&mut buf, MAX_MESSAGE_LEN).expect("valid") {
            out.push(m);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn known_encodings() {
        let cases: Vec<(Message, &[u8])> = vec![
            (Message::KeepAlive, &[0, 0, 0, 0]),
            (Message::Choke, &[0, 0, 0, 1, 0]),
            (Message::Interested, &[0, 0, 0, 1, 2]),
            (Message::Have(0x0102_0304), &[0, 0, 0, 5, 4, 1, 2, 3, 4]),
            (Message::Bitfield(Bytes::from_static(&[0xf0])), &[0, 0, 0, 2, 5, 0xf0]),
            (
                Message::Request { index: 1, begin: 16384, length: 16384 },
                &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece { index: 2, begin: 0, data: Bytes::from_static(b"ab") },
                &[0, 0, 0, 11, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'a', b'b'],
            ),
            (Message::Port(6881), &[0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (Message::HaveAll, &[0, 0, 0, 1, 14]),
            (Message::AllowedFast(9), &[0, 0, 0, 5, 17, 0, 0, 0, 9]),
            (Message::Extended { id: 0, payload: Bytes::from_static(b"de") }, &[0, 0, 0, 4, 20, 0, b'd', b'e']),
            (Message::Unknown { id: 99, payload: Bytes::new() }, &[0, 0, 0, 1, 99]),
        ];
        for (msg, bytes) in cases {
            let mut out = BytesMut::new();
            msg.encode(&mut out);
            assert_eq!(&out[..], bytes, "{msg:?}");
            assert_eq!(msg.encoded_len(), bytes.len());
            assert_eq!(decode_all(bytes), vec![msg]);
        }
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut whole = BytesMut::new();
        Message::Piece { index: 0, begin: 0, data: Bytes::from(vec![7u8; 100]) }.encode(&mut whole);
        Message::Have(3).encode(&mut whole);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in whole.iter() {
            buf.put_u8(*b);
            while let Some(m) = decode_message(&mut buf, MAX_MESSAGE_LEN).expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Message::Have(3));
        assert!(buf.is_empty());
    }

    #[test]
    fn piece_data_is_not_copied() {
        let mut buf = BytesMut::new();
        Message::Piece { index: 0, begin: 0, data: Bytes::from(vec![1u8; 16384]) }.encode(&mut buf);
        let frame_start = buf.as_ptr() as usize;
        let Some(Message::Piece { data, .. }) = decode_message(&mut buf, MAX_MESSAGE_LEN).expect("valid") else {
            panic!("expected a piece");
        };
        assert_eq!(data.as_ptr() as usize, frame_start + 13);
        assert_eq!(data.len(), 16384);
    }

    #[test]
    fn limits_and_sizes_are_enforced() {
        let mut buf = BytesMut::from(&[0, 0x10, 1, 0, 7][..]);
        let err = decode_message(&mut buf, MAX_MESSAGE_LEN).expect_err("too long");
        assert_eq!(err.to_string(), "message of 1048832 bytes exceeds the 1048589-byte limit");
        assert!(matches!(
            decode_message(&mut BytesMut::from(&[0, 0, 0, 14, 7][..]), 13),
            Err(WireError::TooLong { len: 14, max: 13 })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 4, 4, 0, 0, 1][..]);
        let err = decode_message(&mut buf, MAX_MESSAGE_LEN).expect_err("short have");
        assert_eq!(err.to_string(), "`have` message with a 3-byte payload (expected 4)");
        assert_eq!(buf.len(), 8, "buffer untouched on error");
        for bad in [&[0, 0, 0, 2, 0, 0][..], &[0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0], &[0, 0, 0, 1, 20]] {
            assert!(matches!(
                decode_message(&mut BytesMut::from(bad), MAX_MESSAGE_LEN),
                Err(WireError::BadPayloadLength { .. })
            ));
        }
    }

    #[test]
    fn limit_grows_with_piece_count() {
        assert_eq!(max_message_len(100), MAX_MESSAGE_LEN);
        assert_eq!(max_message_len(u32::MAX), 1 + u32::MAX.div_ceil(8));
    }

    #[test]
    fn huge_announced_frame_reserves_little() {
        let mut buf = BytesMut::from(&[0x00, 0x0f, 0xff, 0xff, 5][..]);
        assert_eq!(decode_message(&mut buf, MAX_MESSAGE_LEN), Ok(None));
        assert!(buf.capacity() <= 5 + RESERVE_AHEAD + 64);
    }

    #[test]
    fn head_plus_payload_equals_encode() {
        let m = Message::Piece { index: 5, begin: 32, data: Bytes::from_static(b"xyz") };
        let mut a = BytesMut::new();
        m.encode(&mut a);
        let mut b = BytesMut::new();
        m.encode_head(&mut b);
        b.extend_from_slice(m.payload().expect("piece has payload"));
        assert_eq!(a, b);
        assert_eq!(m.name(), "piece");
        assert_eq!(Message::KeepAlive.name(), "keep-alive");
    }

    fn bytes_strategy() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn message() -> impl Strategy<Value = Message> {
        let known = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20];
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(Message::Have),
            bytes_strategy().prop_map(Message::Bitfield),
            any::<(u32, u32, u32)>().prop_map(|(index, begin, length)| Message::Request { index, begin, length }),
            (any::<u32>(), any::<u32>(), bytes_strategy()).prop_map(|(index, begin, data)| Message::Piece {
                index,
                begin,
                data
            }),
            any::<(u32, u32, u32)>().prop_map(|(index, begin, length)| Message::Cancel { index, begin, length }),
            any::<u16>().prop_map(Message::Port),
            any::<u32>().prop_map(Message::SuggestPiece),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            any::<(u32, u32, u32)>()
                .prop_map(|(index, begin, length)| { Message::RejectRequest { index, begin, length } }),
            any::<u32>().prop_map(Message::AllowedFast),
            (any::<u8>(), bytes_strategy()).prop_map(|(id, payload)| Message::Extended { id, payload }),
            (any::<u8>().prop_filter("unknown id", move |id| !known.contains(id)), bytes_strategy())
                .prop_map(|(id, payload)| Message::Unknown { id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(msgs in proptest::collection::vec(message(), 0..8)) {
            let mut buf = BytesMut::new();
            for m in &msgs {
                m.encode(&mut buf);
            }
            let total: usize = msgs.iter().map(Message::encoded_len).sum();
            prop_assert_eq!(buf.len(), total);
            let mut back = Vec::new();
            while let Some(m) = decode_message(&mut buf, MAX_MESSAGE_LEN).expect("valid") {
                back.push(m);
            }
            prop_assert_eq!(back, msgs);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96), max in 0u32..200) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_message(&mut buf, max) {}
        }
    }
}
