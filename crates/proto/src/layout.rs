//! Piece and block geometry of a torrent: how many pieces, how long each is, and how each
//! piece splits into [`BLOCK_SIZE`] blocks. Every size check of a `request`, `piece` or
//! `reject` message goes through here.

use crate::types::{BLOCK_SIZE, BlockRange, PieceIndex};

/// Geometry of a torrent's content. Invariant: `piece_length > 0`, `total_length > 0` and the
/// piece count fits in `u32` (checked by [`Layout::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    total_length: u64,
    piece_length: u32,
    piece_count: u32,
}

impl Layout {
    /// `None` when either length is zero or the piece count does not fit in `u32`.
    pub fn new(total_length: u64, piece_length: u32) -> Option<Self> {
        if total_length == 0 || piece_length == 0 {
            return None;
        }
        let count = total_length.div_ceil(piece_length as u64);
        let piece_count = u32::try_from(count).ok()?;
        Some(Self { total_length, piece_length, piece_count })
    }

    /// Total content length in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Nominal piece length (every piece but the last has exactly this length).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Validates a raw piece index.
    pub fn piece(&self, index: u32) -> Option<PieceIndex> {
        PieceIndex::checked(index, self.piece_count)
    }

    /// Iterates over every piece index.
    pub fn pieces(&self) -> impl Iterator<Item = PieceIndex> + use<> {
        (0..self.piece_count).map(PieceIndex::new_unchecked)
    }

    /// Byte offset of the piece's first byte in the content.
    pub fn piece_offset(&self, piece: PieceIndex) -> u64 {
        piece.get() as u64 * self.piece_length as u64
    }

    /// Actual length of the piece (the last one may be shorter).
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        let rest = self.total_length - self.piece_offset(piece);
        rest.min(self.piece_length as u64) as u32
    }

    /// Number of blocks in the piece.
    pub fn block_count(&self, piece: PieceIndex) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// The `n`-th block of a piece; `None` when `n` is past the last block.
    pub fn block(&self, piece: PieceIndex, n: u32) -> Option<BlockRange> {
        let size = self.piece_size(piece);
        let begin = n.checked_mul(BLOCK_SIZE)?;
        if begin >= size {
            return None;
        }
        Some(BlockRange { piece, begin, length: (size - begin).min(BLOCK_SIZE) })
    }

    /// Validates a block named by a peer (`request`, `piece`, `cancel`, `reject`): the piece
    /// exists, the range is non-empty, at most [`BLOCK_SIZE`] long, and inside the piece.
    /// Blocks need not be aligned to [`BLOCK_SIZE`] (peers may ask for any sub-range).
    pub fn check_block(&self, index: u32, begin: u32, length: u32) -> Option<BlockRange> {
        let piece = self.piece(index)?;
        if length == 0 || length > BLOCK_SIZE {
            return None;
        }
        let end = begin.checked_add(length)?;
        if end > self.piece_size(piece) {
            return None;
        }
        Some(BlockRange { piece, begin, length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_block_are_short() {
        let l = Layout::new(100_000, 32_768).expect("valid");
        assert_eq!(l.piece_count(), 4);
        let last = l.piece(3).expect("in range");
        assert_eq!(l.piece_size(last), 100_000 - 3 * 32_768);
        assert_eq!(l.block_count(last), 1);
        assert_eq!(l.block(last, 0).expect("block").length, 1696);
        assert!(l.block(last, 1).is_none());
        assert!(l.piece(4).is_none());
    }

    #[test]
    fn check_block_rejects_out_of_range() {
        let l = Layout::new(100_000, 32_768).expect("valid");
        assert!(l.check_block(0, 0, BLOCK_SIZE).is_some());
        assert!(l.check_block(0, 16_384, BLOCK_SIZE).is_some());
        assert!(l.check_block(0, 16_385, BLOCK_SIZE).is_none());
        assert!(l.check_block(0, 0, BLOCK_SIZE + 1).is_none());
        assert!(l.check_block(0, 0, 0).is_none());
        assert!(l.check_block(3, 0, 1697).is_none());
        assert!(l.check_block(9, 0, 1).is_none());
        assert!(l.check_block(0, u32::MAX, 2).is_none());
    }

    #[test]
    fn zero_and_huge_are_refused() {
        assert!(Layout::new(0, 16_384).is_none());
        assert!(Layout::new(1, 0).is_none());
        assert!(Layout::new(u64::MAX, 1).is_none());
    }
}
