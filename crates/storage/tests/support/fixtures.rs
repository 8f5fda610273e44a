//! Helpers shared by the storage integration tests: deterministic content and layouts built
//! from it.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use shoal_storage::{FileSpec, StorageLayout, hash_piece_data};

/// Deterministic pseudo-random bytes (xorshift), never all zero.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A file spec with `/`-separated components.
pub fn spec(path: &str, length: u64) -> FileSpec {
    FileSpec { path: path.split('/').map(str::to_owned).collect(), length, padding: false }
}

/// A BEP 47 padding file spec with `/`-separated components.
pub fn pad(path: &str, length: u64) -> FileSpec {
    FileSpec { padding: true, ..spec(path, length) }
}

/// Piece hashes of `data` cut into `piece_length` pieces.
pub fn piece_hashes(data: &[u8], piece_length: u32) -> Vec<[u8; 20]> {
    data.chunks(piece_length as usize).map(hash_piece_data).collect()
}

/// A layout under `root` for `files` whose concatenated content is `data`.
pub fn layout_for(root: &Path, files: &[FileSpec], data: &[u8], piece_length: u32) -> StorageLayout {
    StorageLayout::new(root.to_owned(), files.to_vec(), piece_length, piece_hashes(data, piece_length))
        .expect("valid layout")
}
