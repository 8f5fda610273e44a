//! The peer wire protocol (BEP 3) with the fast extension (BEP 6) and the extension protocol
//! envelope (BEP 10): the handshake and every length-prefixed message, encoded into and decoded
//! from byte buffers. No I/O: the engine feeds bytes in and writes bytes out.
//!
//! Flow on a connection: both sides send a 68-byte [`Handshake`] ([`Handshake::encode`] /
//! [`Handshake::decode`]), then a stream of frames `<u32 big-endian length><id><payload>`.
//! The engine appends received bytes to a `BytesMut` and calls [`decode_message`] until it
//! returns `Ok(None)`; each decoded frame is split off the buffer and frozen, so `piece`
//! data and `bitfield`/`extended` payloads are slices of the received bytes, never copies.
//! Outgoing messages go through [`Message::encode`], or [`Message::encode_head`] plus
//! [`Message::payload`] for vectored writes that avoid copying block data.

mod message;

pub use message::{MAX_MESSAGE_LEN, decode_message, max_message_len};

use bytes::Bytes;

use crate::types::{InfoHash, PeerId};

/// Why bytes from a peer are not a valid handshake or message. Any of these ends the
/// connection: the stream can no longer be trusted to be in sync.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake does not start with `\x13BitTorrent protocol`.
    #[error("handshake names protocol \"{0}\", expected \"BitTorrent protocol\"")]
    BadProtocol(String),
    /// A length prefix above the caller's limit (a peer trying to make us buffer too much).
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// The announced length (id and payload).
        len: u32,
        /// The limit passed to [`decode_message`].
        max: u32,
    },
    /// A message whose payload size does not fit its id (for example a 3-byte `have`).
    #[error("`{message}` message with a {len}-byte payload (expected {expected})")]
    BadPayloadLength {
        /// The message name.
        message: &'static str,
        /// The payload length received (after the id byte).
        len: usize,
        /// What the message requires.
        expected: &'static str,
    },
}

/// The 68-byte handshake that opens every connection: `\x13BitTorrent protocol`, 8 reserved
/// bytes, the info-hash and the peer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bits: bit 0x04 of byte 7 = fast extension (BEP 6), bit 0x10 of byte 5 =
    /// extension protocol (BEP 10), bit 0x01 of byte 7 = DHT (BEP 5).
    pub reserved: [u8; 8],
    /// The torrent the connection is about.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

/// One peer wire message. Piece and block indices are raw: the swarm layer validates them
/// against the torrent's [`crate::Layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Zero-length message that keeps an idle connection open.
    KeepAlive,
    /// id 0: the sender will not serve requests.
    Choke,
    /// id 1: the sender will serve requests.
    Unchoke,
    /// id 2: the sender wants data from the receiver.
    Interested,
    /// id 3: the sender wants nothing from the receiver.
    NotInterested,
    /// id 4: the sender now has this piece.
    Have(u32),
    /// id 5: the sender's pieces, one bit each, high bit first; spare bits must be zero.
    Bitfield(Bytes),
    /// id 6: please send this block.
    Request {
        /// Piece index.
        index: u32,
        /// Offset of the block within the piece.
        begin: u32,
        /// Block length in bytes.
        length: u32,
    },
    /// id 7: a block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Offset of the block within the piece.
        begin: u32,
        /// The block's bytes; a slice of the received frame, never a copy.
        data: Bytes,
    },
    /// id 8: withdraw a request.
    Cancel {
        /// Piece index.
        index: u32,
        /// Offset of the block within the piece.
        begin: u32,
        /// Block length in bytes.
        length: u32,
    },
    /// id 9: the sender's DHT port (BEP 5).
    Port(u16),
    /// id 13 (BEP 6): the sender suggests this piece.
    SuggestPiece(u32),
    /// id 14 (BEP 6): the sender has every piece.
    HaveAll,
    /// id 15 (BEP 6): the sender has no piece.
    HaveNone,
    /// id 16 (BEP 6): the sender will not serve this request.
    RejectRequest {
        /// Piece index.
        index: u32,
        /// Offset of the block within the piece.
        begin: u32,
        /// Block length in bytes.
        length: u32,
    },
    /// id 17 (BEP 6): the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// id 20 (BEP 10): an extension message; `id` 0 is the extension handshake.
    Extended {
        /// Extended message id: 0 for the handshake, otherwise an id from the receiver's
        /// extension handshake `m` dictionary.
        id: u8,
        /// Everything after the extended id (bencoded, possibly followed by raw data).
        payload: Bytes,
    },
    /// Any other message id: kept so the caller can ignore it rather than drop the peer.
    Unknown {
        /// The message id Shoal does not know.
        id: u8,
        /// Everything after the id.
        payload: Bytes,
    },
}

impl std::fmt::Display for Message {
    /// One short line for logs: the message's name and numbers, never a payload's bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::KeepAlive => f.write_str("keep-alive"),
            Message::Choke => f.write_str("choke"),
            Message::Unchoke => f.write_str("unchoke"),
            Message::Interested => f.write_str("interested"),
            Message::NotInterested => f.write_str("not-interested"),
            Message::Have(i) => write!(f, "have {i}"),
            Message::Bitfield(b) => write!(f, "bitfield ({} bytes)", b.len()),
            Message::Request { index, begin, length } => write!(f, "request {index}+{begin} ({length} B)"),
            Message::Piece { index, begin, data } => write!(f, "piece {index}+{begin} ({} B)", data.len()),
            Message::Cancel { index, begin, length } => write!(f, "cancel {index}+{begin} ({length} B)"),
            Message::Port(port) => write!(f, "port {port}"),
            Message::SuggestPiece(i) => write!(f, "suggest {i}"),
            Message::HaveAll => f.write_str("have-all"),
            Message::HaveNone => f.write_str("have-none"),
            Message::RejectRequest { index, begin, length } => write!(f, "reject {index}+{begin} ({length} B)"),
            Message::AllowedFast(i) => write!(f, "allowed-fast {i}"),
            Message::Extended { id, payload } => write!(f, "extended {id} ({} bytes)", payload.len()),
            Message::Unknown { id, payload } => write!(f, "unknown id {id} ({} bytes)", payload.len()),
        }
    }
}

impl Handshake {
    /// Encoded size of a handshake.
    pub const LEN: usize = 68;
    /// The protocol string, preceded on the wire by its length byte 19.
    pub const PROTOCOL: &'static [u8; 19] = b"BitTorrent protocol";
    /// Reserved bits Shoal sends: the fast extension (BEP 6) and the extension protocol
    /// (BEP 10). The engine adds the DHT bit with [`Handshake::with_dht`] when it runs one.
    pub const SHOAL_RESERVED: [u8; 8] = [0, 0, 0, 0, 0, EXTENSION_BIT, 0, FAST_BIT];

    /// A handshake with Shoal's reserved bits ([`Handshake::SHOAL_RESERVED`]).
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Self { reserved: Self::SHOAL_RESERVED, info_hash, peer_id }
    }

    /// Sets or clears the DHT bit (BEP 5: the sender answers DHT queries and sends `port`).
    pub fn with_dht(mut self, on: bool) -> Self {
        if on {
            self.reserved[7] |= DHT_BIT;
        } else {
            self.reserved[7] &= !DHT_BIT;
        }
        self
    }

    /// The peer supports the fast extension (BEP 6): `have all`, `have none`, `reject`, ...
    pub fn supports_fast(&self) -> bool {
        self.reserved[7] & FAST_BIT != 0
    }

    /// The peer supports the extension protocol (BEP 10): `extended` messages.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[5] & EXTENSION_BIT != 0
    }

    /// The peer runs a DHT node (BEP 5) and may send `port`.
    pub fn supports_dht(&self) -> bool {
        self.reserved[7] & DHT_BIT != 0
    }

    /// The 68 bytes to send.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(Self::PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Parses a received handshake. Only the protocol string is checked; whether the
    /// info-hash is one we serve is the engine's decision.
    pub fn decode(bytes: &[u8; Self::LEN]) -> Result<Self, WireError> {
        if bytes[0] != 19 || &bytes[1..20] != Self::PROTOCOL {
            let shown = usize::from(bytes[0]).min(Self::LEN - 1);
            let pstr = bytes[1..1 + shown].escape_ascii().to_string();
            return Err(WireError::BadProtocol(pstr));
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&bytes[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Self { reserved, info_hash: InfoHash(info_hash), peer_id: PeerId(peer_id) })
    }
}

/// Byte 5, BEP 10.
const EXTENSION_BIT: u8 = 0x10;
/// Byte 7, BEP 6.
const FAST_BIT: u8 = 0x04;
/// Byte 7, BEP 5.
const DHT_BIT: u8 = 0x01;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake::new(InfoHash([0xab; 20]), PeerId::generate([7; 12]))
    }

    #[test]
    fn handshake_roundtrip_and_layout() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], b"BitTorrent protocol");
        assert_eq!(&bytes[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert_eq!(&bytes[28..48], &[0xab; 20]);
        assert_eq!(&bytes[48..56], b"-SH0100-");
        assert_eq!(Handshake::decode(&bytes), Ok(h));
    }

    #[test]
    fn reserved_bits() {
        let h = sample();
        assert!(h.supports_fast() && h.supports_extensions() && !h.supports_dht());
        let h = h.with_dht(true);
        assert!(h.supports_dht() && h.supports_fast());
        assert!(!h.with_dht(false).supports_dht());
        let plain = Handshake { reserved: [0; 8], ..sample() };
        assert!(!plain.supports_fast() && !plain.supports_extensions());
    }

    #[test]
    fn wrong_protocol_is_rejected() {
        let mut bytes = sample().encode();
        bytes[1] = b'b';
        let err = Handshake::decode(&bytes).expect_err("bad pstr");
        assert_eq!(
            err.to_string(),
            "handshake names protocol \"bitTorrent protocol\", expected \"BitTorrent protocol\""
        );
        let mut bytes = sample().encode();
        bytes[0] = 255;
        assert!(matches!(Handshake::decode(&bytes), Err(WireError::BadProtocol(_))));
        bytes[0] = 0;
        assert_eq!(Handshake::decode(&bytes), Err(WireError::BadProtocol(String::new())));
    }
}
