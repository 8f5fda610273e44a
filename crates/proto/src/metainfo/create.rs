//! Writing new `.torrent` files (BEP 3, BEP 12, BEP 27) in canonical bencode. Hashing the
//! content is the caller's job (it needs the disk); this module only lays out the dictionary.

use shoal_bencode::{Dict, Value, encode};

/// The `created by` value Shoal writes.
pub const CREATED_BY: &str = concat!("Shoal ", env!("CARGO_PKG_VERSION"));

/// What a new torrent describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSpec {
    /// Torrent name: the file name or the top directory name. Should be a safe single path
    /// component (see [`super::Metainfo`]).
    pub name: String,
    /// Piece length in bytes, usually [`default_piece_length`] of the total.
    pub piece_length: u32,
    /// The content.
    pub content: CreateContent,
    /// Tracker URLs. The first becomes `announce`; with more than one, all go into
    /// `announce-list`, one tier each (BEP 12).
    pub trackers: Vec<String>,
    /// Optional `comment`.
    pub comment: Option<String>,
    /// `creation date` in seconds since the Unix epoch, supplied by the caller (this crate
    /// has no clock).
    pub creation_date: Option<i64>,
    /// Mark the torrent private (BEP 27).
    pub private: bool,
    /// Make it an SSL torrent: the authority's PEM certificate, stored as `ssl-cert`.
    pub ssl_cert: Option<String>,
    /// A sealed share's header, stored as `shoal-sealed` (see [`crate::metainfo::Info::sealed`]).
    pub sealed: Option<Vec<u8>>,
    /// Web seeds (BEP 19), stored as `url-list`.
    pub web_seeds: Vec<String>,
}

/// The content of a new torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateContent {
    /// One file, named after the torrent.
    SingleFile {
        /// Its length in bytes.
        length: u64,
    },
    /// A directory named after the torrent holding these files, in content order.
    MultiFile(Vec<CreateFile>),
}

/// One file of a new multi-file torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateFile {
    /// Path components below the torrent directory.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
}

impl CreateSpec {
    /// Sum of the file lengths.
    pub fn total_length(&self) -> u64 {
        match &self.content {
            CreateContent::SingleFile { length } => *length,
            CreateContent::MultiFile(files) => files.iter().map(|f| f.length).sum(),
        }
    }
}

/// A piece length for `total` bytes of content: the smallest power of two from 16 KiB to
/// 16 MiB that keeps the torrent at or under 2,000 pieces (so 1,000 to 2,000 pieces for
/// anything between 32 MiB and 32 GiB).
pub fn default_piece_length(total: u64) -> u32 {
    const MIN: u64 = 16 * 1024;
    const MAX: u64 = 16 * 1024 * 1024;
    const MOST_PIECES: u64 = 2000;
    let wanted = total.div_ceil(MOST_PIECES).max(1);
    // `clamp` keeps the value at most 16 MiB, so the cast cannot truncate.
    wanted.checked_next_power_of_two().unwrap_or(MAX).clamp(MIN, MAX) as u32
}

/// Encodes a torrent in canonical bencode. `piece_hashes` are the SHA-1s of the content's
/// pieces in order. The output is not re-validated here: feed it to
/// [`super::Metainfo::from_bytes`] to check it and get its info-hash. Lengths above
/// `i64::MAX` (not representable in bencode) are written as `i64::MAX`.
pub fn build_torrent(spec: &CreateSpec, piece_hashes: &[[u8; 20]]) -> Vec<u8> {
    let pieces = piece_hashes.concat();
    let length = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));

    let mut info = Dict::new();
    match &spec.content {
        CreateContent::SingleFile { length: len } => {
            info.insert(&b"length"[..], length(*len));
        }
        CreateContent::MultiFile(files) => {
            let list = files
                .iter()
                .map(|f| {
                    let path = f.path.iter().map(|c| Value::from(c.as_str())).collect();
                    Value::dict([("length", length(f.length)), ("path", Value::List(path))])
                })
                .collect();
            info.insert(&b"files"[..], Value::List(list));
        }
    }
    info.insert(&b"name"[..], Value::from(spec.name.as_str()));
    info.insert(&b"piece length"[..], Value::from(spec.piece_length));
    info.insert(&b"pieces"[..], Value::Bytes(&pieces));
    if let Some(cert) = &spec.ssl_cert {
        info.insert(&b"ssl-cert"[..], Value::from(cert.as_str()));
    }
    if let Some(sealed) = &spec.sealed {
        info.insert(&b"shoal-sealed"[..], Value::Bytes(sealed));
    }
    if spec.private {
        info.insert(&b"private"[..], Value::Int(1));
    }

    let mut root = Dict::new();
    if let Some(first) = spec.trackers.first() {
        root.insert(&b"announce"[..], Value::from(first.as_str()));
    }
    if spec.trackers.len() > 1 {
        let tiers = spec.trackers.iter().map(|url| Value::List(vec![Value::from(url.as_str())])).collect();
        root.insert(&b"announce-list"[..], Value::List(tiers));
    }
    if let Some(comment) = &spec.comment {
        root.insert(&b"comment"[..], Value::from(comment.as_str()));
    }
    if !spec.web_seeds.is_empty() {
        let urls = spec.web_seeds.iter().map(|u| Value::from(u.as_str())).collect();
        root.insert(&b"url-list"[..], Value::List(urls));
    }
    root.insert(&b"created by"[..], Value::from(CREATED_BY));
    if let Some(date) = spec.creation_date {
        root.insert(&b"creation date"[..], Value::Int(date));
    }
    root.insert(&b"info"[..], Value::Dict(info));
    encode(&Value::Dict(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_length_targets_1000_to_2000_pieces() {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        assert_eq!(default_piece_length(0), 16 * 1024);
        assert_eq!(default_piece_length(1), 16 * 1024);
        assert_eq!(default_piece_length(10 * MIB), 16 * 1024);
        assert_eq!(default_piece_length(700 * MIB), 512 * 1024);
        assert_eq!(default_piece_length(GIB), 1024 * 1024);
        assert_eq!(default_piece_length(100 * GIB), 16 * 1024 * 1024);
        assert_eq!(default_piece_length(u64::MAX), 16 * 1024 * 1024);
        for total in [40 * MIB, 700 * MIB, 4 * GIB + 17, 31 * GIB] {
            let pieces = total.div_ceil(u64::from(default_piece_length(total)));
            assert!((1000..=2000).contains(&pieces), "{total}: {pieces} pieces");
        }
        for total in (0..64).map(|s| 1u64 << s) {
            assert!(default_piece_length(total).is_power_of_two());
        }
    }

    #[test]
    fn created_by_names_shoal() {
        assert!(CREATED_BY.starts_with("Shoal "));
    }
}
