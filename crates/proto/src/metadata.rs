//! Metadata exchange bookkeeping, BEP 9: [`MetadataAssembler`] collects the 16 KiB pieces of
//! a torrent's info dictionary while downloading from a magnet link, and
//! [`serve_metadata_piece`] answers other peers' requests for ours. The messages themselves
//! are [`MetadataMessage`]s (see [`crate::extension`]).
//!
//! Flow when fetching: once a peer's extension handshake announces `ut_metadata` and a
//! `metadata_size`, the engine creates one assembler for the torrent with
//! [`MetadataAssembler::new`] (which refuses absurd sizes), then repeatedly takes
//! [`MetadataAssembler::request_next`] and sends a `Request` for it. Every `Data` reply goes
//! to [`MetadataAssembler::on_data`]; every `Reject`, timeout or disconnect of the peer that
//! was asked goes to [`MetadataAssembler::on_reject`], so the piece is asked from someone
//! else. When the last piece arrives the whole buffer is checked against the info-hash: a
//! match hands the bytes over (ready for [`crate::Metainfo::from_info_bytes`]), a mismatch
//! returns [`MetadataError::HashMismatch`] and starts over, since one of the peers lied.
//!
//! No clock and no peer identities live here: deciding which peer to ask, timeouts and
//! banning the peer that sent bad data belong to the caller.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::extension::{METADATA_PIECE_LEN, MetadataMessage};
use crate::types::InfoHash;

/// Largest `metadata_size` accepted: 16 MiB.
///
/// An info dictionary is mostly 20 bytes of SHA-1 per piece plus the file list, so 16 MiB
/// holds about 800,000 piece hashes (13 TB of content in 16 MiB pieces) and beats any real
/// torrent by far. The limit exists because the size comes from an untrusted peer and the
/// assembler allocates a buffer of that size: without it one handshake could make us
/// reserve up to 4 GiB per magnet link.
pub const MAX_METADATA_SIZE: u32 = 16 * 1024 * 1024;

/// Why metadata cannot be assembled, or a received piece was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The peer announced an empty info dictionary.
    #[error("metadata_size is 0")]
    ZeroSize,
    /// The peer announced an info dictionary larger than [`MAX_METADATA_SIZE`].
    #[error("metadata_size {0} exceeds the limit of {MAX_METADATA_SIZE} bytes")]
    TooLarge(u32),
    /// A `Data` message whose `total_size` differs from the size the assembler was built
    /// with.
    #[error("metadata piece has total_size {got}, but the metadata is {expected} bytes")]
    TotalSizeMismatch {
        /// The assembler's size.
        expected: u32,
        /// The message's `total_size`.
        got: u32,
    },
    /// A piece index at or past the piece count.
    #[error("metadata piece {piece} does not exist: the metadata has {count} pieces")]
    PieceOutOfRange {
        /// The index received.
        piece: u32,
        /// The number of pieces.
        count: u32,
    },
    /// A piece whose data is not 16 KiB (or, for the last one, the remainder).
    #[error("metadata piece {piece} has {got} bytes, expected {expected}")]
    BadPieceLength {
        /// The piece.
        piece: u32,
        /// Bytes received.
        got: usize,
        /// Bytes that piece must have.
        expected: u32,
    },
    /// All pieces arrived, but their SHA-1 is not the info-hash. The assembler has been
    /// reset: every piece is missing again.
    #[error("assembled metadata hashes to {got}, not to the info-hash {expected}")]
    HashMismatch {
        /// The torrent's info-hash.
        expected: InfoHash,
        /// The SHA-1 of what was received.
        got: InfoHash,
    },
}

/// State of one metadata piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Missing,
    Requested,
    Received,
}

/// Collects the pieces of one torrent's info dictionary (BEP 9); see the module
/// documentation for the call protocol.
#[derive(Clone, Debug)]
pub struct MetadataAssembler {
    info_hash: InfoHash,
    /// A v2-only torrent's SHA-256 info-hash (BEP 52), which the dictionary is checked
    /// against instead of the SHA-1 one.
    v2_hash: Option<[u8; 32]>,
    /// 1..=[`MAX_METADATA_SIZE`].
    size: u32,
    /// `size` bytes once the first piece arrived (empty before, and after completion): each
    /// `Received` piece sits at `index * METADATA_PIECE_LEN`.
    buf: Vec<u8>,
    /// One entry per piece: `size.div_ceil(METADATA_PIECE_LEN)` of them.
    slots: Vec<Slot>,
    /// Number of `Received` slots.
    received: u32,
}

impl MetadataAssembler {
    /// An assembler for the torrent `info_hash` whose info dictionary a peer says is
    /// `metadata_size` bytes; refuses 0 and sizes above [`MAX_METADATA_SIZE`].
    pub fn new(info_hash: InfoHash, metadata_size: u32) -> Result<Self, MetadataError> {
        if metadata_size == 0 {
            return Err(MetadataError::ZeroSize);
        }
        if metadata_size > MAX_METADATA_SIZE {
            return Err(MetadataError::TooLarge(metadata_size));
        }
        let count = metadata_size.div_ceil(METADATA_PIECE_LEN);
        Ok(Self {
            info_hash,
            v2_hash: None,
            size: metadata_size,
            buf: Vec::new(),
            slots: vec![Slot::Missing; count as usize],
            received: 0,
        })
    }

    /// Checks the dictionary against a v2-only torrent's SHA-256 info-hash (BEP 52) instead:
    /// `info_hash` is then its first 20 bytes.
    pub fn with_v2(mut self, v2_hash: [u8; 32]) -> Self {
        self.v2_hash = Some(v2_hash);
        self
    }

    /// The torrent.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Size of the info dictionary in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of 16 KiB pieces.
    pub fn piece_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Pieces received and kept so far (reset to 0 by a hash mismatch).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The length piece `piece` must have: 16 KiB, except for a shorter last piece.
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        let start = piece.checked_mul(METADATA_PIECE_LEN).filter(|&s| s < self.size)?;
        Some((self.size - start).min(METADATA_PIECE_LEN))
    }

    /// The lowest piece neither received nor requested.
    pub fn next_missing(&self) -> Option<u32> {
        self.slots.iter().position(|&s| s == Slot::Missing).map(|i| i as u32)
    }

    /// Records that `piece` has been asked for, so [`MetadataAssembler::next_missing`] skips
    /// it. Does nothing for a piece already received or out of range.
    pub fn mark_requested(&mut self, piece: u32) {
        if let Some(slot @ Slot::Missing) = self.slots.get_mut(piece as usize) {
            *slot = Slot::Requested;
        }
    }

    /// [`MetadataAssembler::next_missing`] and [`MetadataAssembler::mark_requested`] in one.
    pub fn request_next(&mut self) -> Option<u32> {
        let piece = self.next_missing()?;
        self.mark_requested(piece);
        Some(piece)
    }

    /// The request for `piece` will not be answered (a `Reject`, a timeout, or the peer
    /// left): it becomes missing again. Does nothing for a piece already received.
    pub fn on_reject(&mut self, piece: u32) {
        if let Some(slot @ Slot::Requested) = self.slots.get_mut(piece as usize) {
            *slot = Slot::Missing;
        }
    }

    /// Takes the `data` of a `Data` message. Returns `Ok(None)` while pieces are missing
    /// (a repeated piece is ignored), and `Ok(Some(info_bytes))` when the last piece completes
    /// metadata whose SHA-1 is the info-hash; the assembler then has nothing left to do.
    ///
    /// A refused piece of a valid index becomes missing again, so it can be asked from
    /// another peer. A [`MetadataError::HashMismatch`] resets every piece.
    pub fn on_data(&mut self, piece: u32, total_size: u32, data: &[u8]) -> Result<Option<Vec<u8>>, MetadataError> {
        let count = self.piece_count();
        let expected = self.piece_len(piece).ok_or(MetadataError::PieceOutOfRange { piece, count })?;
        let refused = if total_size != self.size {
            Some(MetadataError::TotalSizeMismatch { expected: self.size, got: total_size })
        } else if data.len() != expected as usize {
            Some(MetadataError::BadPieceLength { piece, got: data.len(), expected })
        } else {
            None
        };
        if let Some(err) = refused {
            self.on_reject(piece);
            return Err(err);
        }
        let index = piece as usize;
        match self.slots.get(index) {
            Some(Slot::Missing | Slot::Requested) => {}
            _ => return Ok(None),
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.size as usize];
        }
        let start = index * METADATA_PIECE_LEN as usize;
        let Some(dst) = self.buf.get_mut(start..start + data.len()) else {
            return Ok(None);
        };
        dst.copy_from_slice(data);
        self.slots[index] = Slot::Received;
        self.received += 1;
        if self.received < count {
            return Ok(None);
        }
        let got = match self.v2_hash {
            Some(v2) => {
                let sha256: [u8; 32] = sha2::Sha256::digest(&self.buf).into();
                // A mismatch is reported by the truncated hash that names the swarm.
                let truncated = InfoHash(sha256[..20].try_into().expect("20 bytes"));
                if sha256 == v2 {
                    self.info_hash
                } else if truncated == self.info_hash {
                    InfoHash([0; 20])
                } else {
                    truncated
                }
            }
            None => InfoHash(Sha1::digest(&self.buf).into()),
        };
        if got != self.info_hash {
            self.slots.fill(Slot::Missing);
            self.received = 0;
            return Err(MetadataError::HashMismatch { expected: self.info_hash, got });
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }
}

/// Our answer to a peer's `Request` for metadata piece `piece` of our info dictionary
/// `info_bytes`: a `Data` message whose data is a slice of `info_bytes` (no copy), or a
/// `Reject` when the piece does not exist.
pub fn serve_metadata_piece(info_bytes: &Bytes, piece: u32) -> MetadataMessage {
    let Ok(total_size) = u32::try_from(info_bytes.len()) else {
        return MetadataMessage::Reject { piece };
    };
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN as usize).filter(|&s| s < info_bytes.len());
    let Some(start) = start else {
        return MetadataMessage::Reject { piece };
    };
    let end = (start + METADATA_PIECE_LEN as usize).min(info_bytes.len());
    MetadataMessage::Data { piece, total_size, data: info_bytes.slice(start..end) }
}

/// Every piece of `info_bytes` as a `Data` message, in order.
pub fn metadata_pieces(info_bytes: &Bytes) -> impl Iterator<Item = MetadataMessage> {
    let count = info_bytes.len().div_ceil(METADATA_PIECE_LEN as usize);
    (0..count).map_while(|piece| {
        let piece = u32::try_from(piece).ok()?;
        match serve_metadata_piece(info_bytes, piece) {
            data @ MetadataMessage::Data { .. } => Some(data),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests;
