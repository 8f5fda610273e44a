//! Writing new `.torrent` files (BEP 3, BEP 12, BEP 27) in canonical bencode, v1 by default,
//! BitTorrent v2 or hybrid (BEP 52, with BEP 47 padding files in a hybrid's v1 part) with
//! [`build_torrent_v2`]. Hashing the content is the caller's job (it needs the disk); this
//! module only lays out the dictionary.

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
    info.insert(&b"pieces"[..], Value::Bytes(&pieces));
    finish(spec, info, Dict::new())
}

fn length(n: u64) -> Value<'static> {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// One file's v2 hashes, for [`build_torrent_v2`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHashes {
    /// The file's `pieces root` (none for an empty file).
    pub root: Option<[u8; 32]>,
    /// Its piece layer (empty unless the file is larger than one piece).
    pub layer: Vec<[u8; 32]>,
}

/// Encodes a BitTorrent v2 torrent (BEP 52), or a hybrid one when `v1_pieces` is given: those
/// are then the SHA-1s of the content laid out with a padding file after every file that does
/// not end on a piece boundary (the last excepted), which the v1 `files` list gets too (BEP 47,
/// attribute `p`, path `.pad/N`). `files` holds each file's hashes in content order, which must
/// be sorted by path (the `file tree` is a dictionary).
pub fn build_torrent_v2(spec: &CreateSpec, v1_pieces: Option<&[[u8; 20]]>, files: &[FileHashes]) -> Vec<u8> {
    let entries: Vec<(Vec<&str>, u64)> = match &spec.content {
        CreateContent::SingleFile { length } => vec![(vec![spec.name.as_str()], *length)],
        CreateContent::MultiFile(list) => {
            list.iter().map(|f| (f.path.iter().map(String::as_str).collect(), f.length)).collect()
        }
    };
    let mut tree = Dict::new();
    let mut layers = Dict::new();
    for ((path, len), hashes) in entries.iter().zip(files) {
        let mut node = &mut tree;
        for dir in &path[..path.len() - 1] {
            let next = node.entry(dir.as_bytes()).or_insert_with(|| Value::Dict(Dict::new()));
            let Value::Dict(d) = next else { unreachable!("folders are dictionaries") };
            node = d;
        }
        let mut file = Dict::new();
        file.insert(&b"length"[..], length(*len));
        if let Some(root) = &hashes.root {
            file.insert(&b"pieces root"[..], Value::Bytes(root));
            if !hashes.layer.is_empty() {
                layers.insert(&root[..], Value::Bytes(hashes.layer.as_flattened()));
            }
        }
        node.insert(path[path.len() - 1].as_bytes(), Value::dict([("", Value::Dict(file))]));
    }
    let mut info = Dict::new();
    info.insert(&b"file tree"[..], Value::Dict(tree));
    info.insert(&b"meta version"[..], Value::Int(2));
    let pieces = v1_pieces.map(<[[u8; 20]]>::concat);
    let pad_names: Vec<String> = entries
        .iter()
        .map(|(_, len)| {
            let pad =
                (u64::from(spec.piece_length) - len % u64::from(spec.piece_length)) % u64::from(spec.piece_length);
            pad.to_string()
        })
        .collect();
    if let Some(pieces) = &pieces {
        match &spec.content {
            CreateContent::SingleFile { length: len } => {
                info.insert(&b"length"[..], length(*len));
            }
            CreateContent::MultiFile(list) => {
                let mut out = Vec::new();
                for (i, f) in list.iter().enumerate() {
                    let path = f.path.iter().map(|c| Value::from(c.as_str())).collect();
                    out.push(Value::dict([("length", length(f.length)), ("path", Value::List(path))]));
                    if i + 1 < list.len() && pad_names[i] != "0" {
                        let pad: u64 = pad_names[i].parse().expect("a number");
                        out.push(Value::dict([
                            ("attr", Value::from("p")),
                            ("length", length(pad)),
                            ("path", Value::List(vec![Value::from(".pad"), Value::from(pad_names[i].as_str())])),
                        ]));
                    }
                }
                info.insert(&b"files"[..], Value::List(out));
            }
        }
        info.insert(&b"pieces"[..], Value::Bytes(pieces));
    }
    finish(spec, info, layers)
}

/// Adds the common info fields to `info` and writes the whole torrent (`layers`: BEP 52's
/// top-level `piece layers`, left out when empty).
fn finish<'a>(spec: &'a CreateSpec, mut info: Dict<'a>, layers: Dict<'a>) -> Vec<u8> {
    info.insert(&b"name"[..], Value::from(spec.name.as_str()));
    info.insert(&b"piece length"[..], Value::from(spec.piece_length));
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
    if !layers.is_empty() {
        root.insert(&b"piece layers"[..], Value::Dict(layers));
    }
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
