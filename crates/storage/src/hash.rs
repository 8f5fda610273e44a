//! SHA-1 piece hashing shared by verification and torrent creation, with one shortcut: a
//! piece read back as all zeros (a never-written hole in a preallocated file) is compared
//! against the hash of a zero piece, computed once per piece size, instead of being hashed.
//! Checking for zeros runs several times faster than SHA-1, and after a restart most pieces
//! that are not yet downloaded are holes.

use sha1::{Digest, Sha1};

/// Source of zero bytes fed to the hasher when a run of zeros turns out not to be the whole
/// piece.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The SHA-1 of a piece's bytes, as stored in a torrent's `pieces` string.
pub fn hash_piece_data(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// The SHA-1 of `len` zero bytes.
pub(crate) fn zero_hash(len: u64) -> [u8; 20] {
    let mut hasher = Sha1::new();
    feed_zeros(&mut hasher, len);
    hasher.finalize().into()
}

fn feed_zeros(hasher: &mut Sha1, mut len: u64) {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

/// `true` when every byte is zero. Works in 4 KiB strides whose OR-fold the compiler
/// vectorises, and stops at the first stride holding data.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096).all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Incremental piece hasher that defers hashing while everything seen so far is zero.
pub(crate) struct PieceHasher {
    hasher: Sha1,
    /// Zero bytes seen but not yet fed to `hasher`; only non-zero while `all_zero`.
    pending_zeros: u64,
    all_zero: bool,
}

impl PieceHasher {
    pub(crate) fn new() -> Self {
        Self { hasher: Sha1::new(), pending_zeros: 0, all_zero: true }
    }

    /// Feeds the next bytes of the piece.
    pub(crate) fn update(&mut self, data: &[u8]) {
        if self.all_zero {
            if is_zero(data) {
                self.pending_zeros += data.len() as u64;
                return;
            }
            feed_zeros(&mut self.hasher, self.pending_zeros);
            self.pending_zeros = 0;
            self.all_zero = false;
        }
        self.hasher.update(data);
    }

    /// The piece's hash; `zero` supplies the hash of an all-zero piece of this size, called
    /// only when every byte was zero.
    pub(crate) fn finish(self, zero: impl FnOnce() -> [u8; 20]) -> [u8; 20] {
        if self.all_zero { zero() } else { self.hasher.finalize().into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_zeros_hash_like_plain_sha1() {
        let mut data = vec![0u8; 200_000];
        data[150_000] = 7;
        let mut h = PieceHasher::new();
        for chunk in data.chunks(10_000) {
            h.update(chunk);
        }
        assert_eq!(h.finish(|| unreachable!()), hash_piece_data(&data));

        let zeros = vec![0u8; 70_000];
        let mut h = PieceHasher::new();
        h.update(&zeros);
        assert_eq!(h.finish(|| zero_hash(70_000)), hash_piece_data(&zeros));
        assert!(is_zero(&zeros));
        assert!(!is_zero(&data));
        assert!(is_zero(&[]));
    }
}

/// Incremental v2 piece hasher (BEP 52): SHA-256 of each 16 KiB block of the piece's file
/// bytes, then their Merkle root; bytes past the check's `data` (padding) are not hashed.
#[derive(Debug)]
pub struct V2Hasher {
    check: shoal_proto::metainfo::v2::V2Check,
    leaves: Vec<[u8; 32]>,
    block: Vec<u8>,
    fed: u32,
}

impl V2Hasher {
    /// A hasher for a piece checked by `check`.
    pub fn new(check: shoal_proto::metainfo::v2::V2Check) -> Self {
        Self { check, leaves: Vec::new(), block: Vec::with_capacity(shoal_proto::metainfo::v2::BLOCK), fed: 0 }
    }

    /// Feeds the next bytes of the piece (padding past the file's data included or not).
    pub fn update(&mut self, mut data: &[u8]) {
        use shoal_proto::metainfo::v2::{BLOCK, leaf};
        let room = (self.check.data - self.fed) as usize;
        data = &data[..data.len().min(room)];
        self.fed += data.len() as u32;
        while !data.is_empty() {
            let take = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK {
                self.leaves.push(leaf(&self.block));
                self.block.clear();
            }
        }
    }

    /// Whether the piece's bytes have the expected root (all of its file's bytes fed).
    pub fn matches(self) -> bool {
        self.finish().0
    }

    /// Whether the piece's bytes have the expected root, and the hash of each of its blocks
    /// (so a failed piece's blocks can be compared with the hashes peers send).
    pub fn finish(mut self) -> (bool, Vec<[u8; 32]>) {
        use shoal_proto::metainfo::v2::{leaf, root};
        if !self.block.is_empty() {
            self.leaves.push(leaf(&self.block));
        }
        let ok = self.fed == self.check.data
            && self.leaves.len() <= self.check.width as usize
            && root(&self.leaves, self.check.width as usize, [0u8; 32]) == self.check.root;
        (ok, self.leaves)
    }
}
