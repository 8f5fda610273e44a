//! A fixed-length set of pieces, stored as the BEP 3 `bitfield` message lays it out: one bit
//! per piece, high bit first, spare bits in the last byte zero.

use bytes::Bytes;
use shoal_proto::PieceIndex;

/// Which pieces someone has. Invariant: `bits.len() == len.div_ceil(8)`, spare bits are zero
/// and `count` equals the number of set bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: u32,
    count: u32,
}

/// Why a received bitfield was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitfieldError {
    /// The message's byte length does not match the torrent's piece count.
    #[error("bitfield is {got} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes the piece count calls for.
        expected: usize,
        /// The torrent's piece count.
        pieces: u32,
    },
    /// Bits past the last piece were set.
    #[error("bitfield has spare bits set past piece {pieces}")]
    SpareBitsSet {
        /// The torrent's piece count.
        pieces: u32,
    },
}

impl Bitfield {
    /// An empty set for `len` pieces.
    pub fn new(len: u32) -> Self {
        Self { bits: vec![0; len.div_ceil(8) as usize], len, count: 0 }
    }

    /// A full set for `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        for byte in b.bits.iter_mut() {
            *byte = 0xff;
        }
        let spare = b.bits.len() as u32 * 8 - len;
        if let Some(last) = b.bits.last_mut() {
            *last &= 0xffu8 << spare;
        }
        b.count = len;
        b
    }

    /// Builds a set from one flag per piece.
    pub fn from_bools(flags: &[bool]) -> Self {
        let mut b = Self::new(flags.len() as u32);
        for (i, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
            b.set(PieceIndex::new_unchecked(i as u32));
        }
        b
    }

    /// Parses a received `bitfield` payload for a torrent of `len` pieces.
    pub fn from_wire(payload: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = len.div_ceil(8) as usize;
        if payload.len() != expected {
            return Err(BitfieldError::WrongLength { got: payload.len(), expected, pieces: len });
        }
        let spare = expected as u32 * 8 - len;
        if spare > 0 && payload[expected - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBitsSet { pieces: len });
        }
        let count = payload.iter().map(|b| b.count_ones()).sum();
        Ok(Self { bits: payload.to_vec(), len, count })
    }

    /// The payload of a `bitfield` message.
    pub fn to_wire(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bits)
    }

    /// Number of pieces the set covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True for a set over zero pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces present.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when every piece is present.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Byte index and bit mask of a piece; `None` past the end.
    fn position(&self, piece: PieceIndex) -> Option<(usize, u8)> {
        let i = piece.idx();
        (piece.get() < self.len).then_some((i / 8, 0x80 >> (i % 8)))
    }

    /// Whether the piece is present.
    pub fn get(&self, piece: PieceIndex) -> bool {
        self.position(piece).is_some_and(|(byte, mask)| self.bits[byte] & mask != 0)
    }

    /// Marks the piece present or absent; returns true if that changed anything.
    fn assign(&mut self, piece: PieceIndex, present: bool) -> bool {
        let Some((byte, mask)) = self.position(piece) else {
            return false;
        };
        let bits = &mut self.bits[byte];
        if (*bits & mask != 0) == present {
            return false;
        }
        if present {
            *bits |= mask;
            self.count += 1;
        } else {
            *bits &= !mask;
            self.count -= 1;
        }
        true
    }

    /// Marks the piece present; returns true if it was absent.
    pub fn set(&mut self, piece: PieceIndex) -> bool {
        self.assign(piece, true)
    }

    /// Marks the piece absent; returns true if it was present.
    pub fn clear(&mut self, piece: PieceIndex) -> bool {
        self.assign(piece, false)
    }

    /// Iterates over the present pieces in order.
    pub fn ones(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.bits.iter().enumerate().flat_map(move |(byte_i, &byte)| {
            (0..8u32)
                .filter(move |bit| byte & (0x80 >> bit) != 0)
                .map(move |bit| PieceIndex::new_unchecked(byte_i as u32 * 8 + bit))
        })
    }

    /// One flag per piece.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(PieceIndex::new_unchecked(i))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_roundtrip_and_spare_bits() {
        let mut b = Bitfield::new(10);
        b.set(PieceIndex::new_unchecked(0));
        b.set(PieceIndex::new_unchecked(9));
        assert_eq!(b.to_wire().as_ref(), &[0x80, 0x40]);
        assert_eq!(Bitfield::from_wire(&[0x80, 0x40], 10), Ok(b.clone()));
        assert_eq!(Bitfield::from_wire(&[0x80, 0x41], 10), Err(BitfieldError::SpareBitsSet { pieces: 10 }));
        assert!(matches!(Bitfield::from_wire(&[0x80], 10), Err(BitfieldError::WrongLength { .. })));
        assert_eq!(b.ones().map(|p| p.get()).collect::<Vec<_>>(), vec![0, 9]);
    }

    #[test]
    fn full_has_no_spare_bits() {
        let b = Bitfield::full(10);
        assert_eq!(b.to_wire().as_ref(), &[0xff, 0xc0]);
        assert!(b.is_full());
        assert_eq!(b.count(), 10);
    }

    #[test]
    fn set_and_clear_keep_count() {
        let mut b = Bitfield::new(3);
        assert!(b.set(PieceIndex::new_unchecked(1)));
        assert!(!b.set(PieceIndex::new_unchecked(1)));
        assert_eq!(b.count(), 1);
        assert!(b.clear(PieceIndex::new_unchecked(1)));
        assert_eq!(b.count(), 0);
        assert!(!b.set(PieceIndex::new_unchecked(3)));
    }
}
