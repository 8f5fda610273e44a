//! Validated identifiers shared by every layer: info-hashes, peer ids, piece indices and
//! block ranges. Raw integers and byte arrays are parsed into these at the edge, so inner code
//! never has to re-check them.

use std::fmt;

/// Size of one block, the unit of a `request`/`piece` message (BEP 3 recommends 16 KiB and
/// every mainstream client refuses larger requests).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The SHA-1 of a torrent's bencoded info dictionary (BEP 3), the torrent's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Lower-case hex form, as used in magnet links and logs.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Parses 32 base32 characters (RFC 4648 alphabet, either case), the older magnet form.
    pub fn from_base32(s: &str) -> Option<Self> {
        let upper = s.to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD.decode(upper.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 20-byte peer id (BEP 3). Shoal's own ids use the Azureus style `-SH0100-` prefix (BEP 20).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// Prefix of every peer id Shoal generates: client "SH", version 0.1.0.0.
    pub const PREFIX: &'static [u8; 8] = b"-SH0100-";

    /// A fresh random Shoal peer id from 12 random bytes.
    pub fn generate(random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(Self::PREFIX);
        // Keep the tail printable: some trackers and UIs show the id as text.
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for (dst, r) in id[8..].iter_mut().zip(random) {
            *dst = ALPHABET[(r as usize) % ALPHABET.len()];
        }
        Self(id)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", String::from_utf8_lossy(&self.0).escape_debug())
    }
}

/// Index of a piece, known to be below the torrent's piece count when it comes from a
/// [`PieceIndex::checked`] call. Wire decoders produce raw `u32`s; the swarm layer validates
/// them against the torrent before building a `PieceIndex`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PieceIndex(u32);

impl PieceIndex {
    /// `Some` when `index < piece_count`.
    pub fn checked(index: u32, piece_count: u32) -> Option<Self> {
        (index < piece_count).then_some(Self(index))
    }

    /// Builds an index the caller has already bounded (loops over `0..piece_count`).
    pub fn new_unchecked(index: u32) -> Self {
        Self(index)
    }

    /// The raw index, for the wire and for array indexing.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The raw index as `usize`, for indexing per-piece tables.
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A block inside a piece: `length` bytes starting at `begin`. Built by
/// [`crate::Layout::block`] or validated with [`crate::Layout::check_block`], so it never
/// crosses the end of its piece.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BlockRange {
    /// The piece holding the block.
    pub piece: PieceIndex,
    /// Offset of the first byte within the piece.
    pub begin: u32,
    /// Number of bytes, at most [`BLOCK_SIZE`].
    pub length: u32,
}
