//! The peer wire protocol (BEP 3) with the fast extension (BEP 6) and the extension protocol
//! envelope (BEP 10): the handshake and every length-prefixed message, encoded into and decoded
//! from byte buffers. No I/O: the engine feeds bytes in and writes bytes out.

use bytes::Bytes;

use crate::types::{InfoHash, PeerId};

/// The 68-byte handshake that opens every connection.
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
    Request { index: u32, begin: u32, length: u32 },
    /// id 7: a block of data.
    Piece { index: u32, begin: u32, data: Bytes },
    /// id 8: withdraw a request.
    Cancel { index: u32, begin: u32, length: u32 },
    /// id 9: the sender's DHT port (BEP 5).
    Port(u16),
    /// id 13 (BEP 6): the sender suggests this piece.
    SuggestPiece(u32),
    /// id 14 (BEP 6): the sender has every piece.
    HaveAll,
    /// id 15 (BEP 6): the sender has no piece.
    HaveNone,
    /// id 16 (BEP 6): the sender will not serve this request.
    RejectRequest { index: u32, begin: u32, length: u32 },
    /// id 17 (BEP 6): the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// id 20 (BEP 10): an extension message; `id` 0 is the extension handshake.
    Extended { id: u8, payload: Bytes },
    /// Any other message id: kept so the caller can ignore it rather than drop the peer.
    Unknown { id: u8, payload: Bytes },
}
