//! Metainfo (`.torrent`) files, BEP 3 v1 format, with multiple trackers (BEP 12), the private
//! flag (BEP 27) and padding files (BEP 47).
//!
//! BitTorrent v2 (BEP 52): a v2-only `.torrent` (a `meta version` of 2 or a `file tree`, and no
//! `pieces`) is read through [`v2`] — file tree, Merkle roots and piece layers checked against
//! each other — into the piece space its peers use: files on piece boundaries with padding
//! entries between them, a [`v2::V2Check`] per piece ([`Info::v2`]), the swarm named by the
//! truncated SHA-256 info-hash ([`Metainfo::v2_hash`] keeps the whole). A bare v2-only info
//! dictionary (a magnet's metadata from peers) has no piece layers and is refused with
//! [`MetainfoError::V2Only`]. A hybrid torrent, which carries the v1 `pieces` and file list
//! beside the v2 `file tree`, is read as the v1 torrent it also is (its v2 fields are ignored
//! and the info-hash is the v1 SHA-1).
//!
//! [`Metainfo::from_bytes`] is the one validating entry point for untrusted `.torrent` bytes;
//! [`Metainfo::from_info_bytes`] does the same for an info dictionary fetched from peers
//! (BEP 9). A [`Metainfo`] that exists has been checked for:
//! * required fields with the right types (`info`, `name`, `piece length`, `pieces`, and
//!   exactly one of `length` / `files`);
//! * sane sizes: piece length 1 byte..=256 MiB, total length 1 byte..=2^50 bytes, at most
//!   [`MAX_FILES`] files, one 20-byte hash per piece;
//! * safe names: the torrent name and every path component is a single, non-empty file name
//!   that cannot leave the download directory (`.`, `..`, separators, NUL and drive letters are
//!   refused), and no two files share a path or use a file as a directory.
//!
//! The info-hash is SHA-1 over the `info` dictionary exactly as it appears in the input,
//! whatever its key order, and those bytes are kept in [`Metainfo::info_bytes`] to serve them
//! to peers (BEP 9). Text fields prefer their `.utf-8` variants when present and valid;
//! otherwise invalid UTF-8 is replaced with U+FFFD, which is deterministic.
//!
//! File layout: in a multi-file torrent ([`Info::multi_file`]) the files live under a
//! directory named [`Info::name`] and [`FileEntry::path`] is relative to it; in a single-file
//! torrent the one file is named [`Info::name`] and its `path` is `[name]`.
//! [`Info::file_path`] gives the path relative to the download directory in both cases.

mod create;
mod files;
#[cfg(test)]
mod tests;
pub mod v2;

use std::path::PathBuf;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_bencode::{DecodeError, Dict, Value, decode, decode_with_spans};

use crate::layout::Layout;
use crate::magnet::Magnet;
use crate::types::{InfoHash, PieceIndex};

pub use create::{
    CREATED_BY, CreateContent, CreateFile, CreateSpec, FileHashes, build_torrent, build_torrent_v2,
    default_piece_length,
};

/// Largest accepted `piece length`: 256 MiB.
pub const MAX_PIECE_LENGTH: u32 = 256 * 1024 * 1024;
/// Largest accepted total content length: 2^50 bytes (1 PiB).
pub const MAX_TOTAL_LENGTH: u64 = 1 << 50;
/// Largest accepted number of files in a multi-file torrent.
pub const MAX_FILES: usize = 1_000_000;
/// Largest `shoal-sealed` header accepted.
pub const MAX_SEALED_HEADER: usize = 4 << 20;

/// Why bytes are not an acceptable torrent. Field names in messages are the bencode keys,
/// with list positions for files (`files[3].path`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The input is not valid bencode (truncated, malformed, trailing bytes, ...).
    #[error("not bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The input is bencode but not a dictionary.
    #[error("the top level is {}, not a dictionary", shoal_bencode::Value::kind_with_article(.0))]
    NotADict(&'static str),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong bencode type.
    #[error("field `{field}` is {}, expected {expected}", shoal_bencode::Value::kind_with_article(.found))]
    WrongType {
        /// The field.
        field: String,
        /// What BEP 3 requires.
        expected: &'static str,
        /// What the torrent has.
        found: &'static str,
    },
    /// Both `length` and `files` are present, so the layout is ambiguous.
    #[error("the info dictionary has both `length` and `files`")]
    LengthAndFiles,
    /// A multi-file torrent with an empty `files` list.
    #[error("field `files` is an empty list")]
    NoFiles,
    /// More files than [`MAX_FILES`].
    #[error("field `files` lists {0} files, more than the limit of {MAX_FILES}")]
    TooManyFiles(usize),
    /// A file length below zero.
    #[error("field `{field}` is negative ({value})")]
    NegativeLength {
        /// The field.
        field: String,
        /// Its value.
        value: i64,
    },
    /// `piece length` is zero, negative or above [`MAX_PIECE_LENGTH`].
    #[error("field `piece length` is {0}, expected 1 byte to 256 MiB")]
    BadPieceLength(i64),
    /// A BitTorrent v2 field (BEP 52) has an unusable value.
    #[error("field `{field}`: {reason}")]
    V2Field {
        /// The field (`file tree/dir/name`, `piece layers[path]`, ...).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field has the right type but an unusable value.
    #[error("field `{0}` {1}")]
    BadField(&'static str, &'static str),
    /// The files add up to zero bytes.
    #[error("the torrent's total length is 0 bytes")]
    EmptyContent,
    /// The files add up to more than [`MAX_TOTAL_LENGTH`].
    #[error("the torrent's total length is more than 2^50 bytes")]
    TooLarge,
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("field `pieces` is {0} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    /// `pieces` has a different number of hashes than the content needs.
    #[error(
        "field `pieces` holds {found} hashes, but {total_length} bytes in pieces of \
         {piece_length} bytes need {expected}"
    )]
    PieceCountMismatch {
        /// Hashes in `pieces`.
        found: usize,
        /// Pieces the content needs.
        expected: u64,
        /// Total content length.
        total_length: u64,
        /// `piece length`.
        piece_length: u32,
    },
    /// The torrent name is not a safe single file name.
    #[error("field `name` (\"{name}\") is not a safe file name: {reason}")]
    BadName {
        /// The name, after UTF-8 decoding.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file path is empty or has a component that is not a safe single file name.
    #[error("field `{field}` has an unsafe component \"{component}\": {reason}")]
    BadPath {
        /// The field (`files[3].path`).
        field: String,
        /// The offending component.
        component: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files have the same path.
    #[error("file path \"{0}\" appears more than once")]
    DuplicatePath(String),
    /// A file's path is also used as a directory by another file.
    #[error("file path \"{0}\" is used both as a file and as a directory")]
    PathConflict(String),
    /// A bare info dictionary that is BitTorrent v2 only (BEP 52): without the `.torrent`'s
    /// piece layers its pieces cannot be checked.
    #[error(
        "this is a BitTorrent v2-only info dictionary (BEP 52) without its piece layers; Shoal reads v2-only torrents \
         from their .torrent file"
    )]
    V2Only,
}

/// A validated `.torrent` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of [`Metainfo::info_bytes`].
    pub info_hash: InfoHash,
    /// The validated info dictionary.
    pub info: Info,
    /// The `announce` tracker URL, if any.
    pub announce: Option<String>,
    /// Tracker tiers (BEP 12), each a list of URLs tried in order. When the torrent has no
    /// usable `announce-list` but an `announce`, this is one tier holding that URL.
    pub announce_list: Vec<Vec<String>>,
    /// Free-form comment.
    pub comment: Option<String>,
    /// Name of the program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time in seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// Web seeds (BEP 19 `url-list`): http(s) URLs serving the content, at most
    /// [`MAX_WEB_SEEDS`].
    pub web_seeds: Vec<String>,
    /// The info dictionary exactly as received (what the info-hash covers).
    pub info_bytes: Bytes,
    /// A v2-only torrent's SHA-256 info-hash (BEP 52); `info_hash` is then its first 20 bytes,
    /// which name the swarm on the wire, in trackers and the DHT.
    pub v2_hash: Option<[u8; 32]>,
    /// A hybrid torrent's v2 side (BEP 52), when it describes the same files at the same
    /// offsets as the v1 side: the torrent is also the v2 swarm named by its SHA-256 info-hash.
    pub hybrid: Option<Hybrid>,
}

/// The v2 side of a hybrid torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hybrid {
    /// SHA-256 of the info dictionary.
    pub v2_hash: [u8; 32],
    /// The Merkle root of each piece, from the piece layers (for answering hash requests).
    pub checks: std::sync::Arc<[v2::V2Check]>,
}

impl Hybrid {
    /// The 20 bytes that name the torrent's v2 swarm.
    pub fn swarm_hash(&self) -> InfoHash {
        InfoHash(self.v2_hash[..20].try_into().expect("20 bytes"))
    }
}

/// Web seeds kept from one torrent.
pub const MAX_WEB_SEEDS: usize = 16;

/// The `url-list` of a torrent: one URL or a list; http(s) ones of at most 2,048 bytes kept.
fn web_seeds(value: Option<&Value<'_>>) -> Vec<String> {
    let one = |v: &Value<'_>| {
        v.as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .filter(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048)
            .filter(|u| !u.chars().any(char::is_control))
            .map(str::to_owned)
    };
    let mut out: Vec<String> = match value {
        Some(v) if v.as_list().is_some() => v.as_list().unwrap_or_default().iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    };
    out.dedup();
    out.truncate(MAX_WEB_SEEDS);
    out
}

/// The validated info dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Torrent name: the file name (single-file) or directory name (multi-file). A safe single
    /// path component.
    pub name: String,
    /// Nominal piece length, 1 byte..=[`MAX_PIECE_LENGTH`].
    pub piece_length: u32,
    /// SHA-1 of each piece; exactly `layout.piece_count()` entries.
    pub pieces: Vec<[u8; 20]>,
    /// Files in content order; their lengths add up to `layout.total_length()`.
    pub files: Vec<FileEntry>,
    /// BEP 27 private torrent: peers only from the torrent's trackers (no DHT, PEX, LSD).
    pub private: bool,
    /// `true` when the torrent has a `files` list: files live under a directory named `name`.
    pub multi_file: bool,
    /// The `ssl-cert` of an SSL torrent (libtorrent's scheme): the PEM certificate of the
    /// authority whose member certificates alone let peers in. Only its presence and text are
    /// checked here.
    pub ssl_cert: Option<String>,
    /// `shoal-sealed`: the header of a sealed share (Shoal's own key; other clients ignore
    /// it): the content key wrapped for the group and the sealed manifest of the real names.
    /// The listed files are ciphertext. Only its presence and size are checked here.
    pub sealed: Option<Vec<u8>>,
    /// Piece geometry derived from the total length and piece length.
    pub layout: Layout,
    /// A v2-only torrent (BEP 52): how each piece is checked (SHA-256 Merkle roots); `pieces`
    /// is then all zeros and unused. `files` holds padding entries up to each piece boundary.
    pub v2: Option<std::sync::Arc<[v2::V2Check]>>,
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components, each a safe file name. In a multi-file torrent this is relative to the
    /// torrent's directory `name`; in a single-file torrent it is `[name]`.
    pub path: Vec<String>,
    /// Length in bytes (may be 0).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's content.
    pub offset: u64,
    /// BEP 47 padding file (attribute `p`): takes space in the pieces, holds zeros, and is
    /// not written to disk by clients that know about padding.
    pub padding: bool,
}

impl Metainfo {
    /// Parses and validates a `.torrent` file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        let (root, spans) = decode_with_spans(bytes)?;
        let dict = root.as_dict().ok_or(MetainfoError::NotADict(root.kind()))?;
        let info_value = dict.get(&b"info"[..]).ok_or_else(|| missing("info"))?;
        let info_dict = expect_dict(info_value, "info")?;
        let mut v2_hash = None;
        let mut hybrid = None;
        let info = if is_v2_only(info_dict) {
            let t = v2::parse(bytes)?;
            v2_hash = Some(t.info_hash_v2);
            Info::from_v2(&t, info_dict)?
        } else {
            let info = Info::from_dict(info_dict)?;
            if info_dict.contains_key(&b"file tree"[..]) {
                hybrid = hybrid_side(bytes, &info);
            }
            info
        };
        let span = spans
            .into_iter()
            .find_map(|(key, span)| (key == b"info").then_some(span))
            .ok_or_else(|| missing("info"))?;
        let info_bytes = Bytes::copy_from_slice(&bytes[span]);

        let announce = dict.get(&b"announce"[..]).and_then(tracker_url);
        let mut announce_list = dict
            .get(&b"announce-list"[..])
            .and_then(Value::as_list)
            .map(|tiers| parse_tiers(tiers))
            .unwrap_or_default();
        if announce_list.is_empty()
            && let Some(url) = &announce
        {
            announce_list.push(vec![url.clone()]);
        }
        let info_hash = match v2_hash {
            Some(h) => InfoHash(h[..20].try_into().expect("20 bytes")),
            None => sha1_hash(&info_bytes),
        };
        Ok(Self {
            info_hash,
            info,
            announce,
            announce_list,
            comment: text(dict, "comment"),
            created_by: text(dict, "created by"),
            creation_date: dict.get(&b"creation date"[..]).and_then(Value::as_int),
            web_seeds: web_seeds(dict.get(&b"url-list"[..])),
            info_bytes,
            v2_hash,
            hybrid,
        })
    }

    /// Builds a metainfo from a bare info dictionary, as fetched from peers for a magnet link
    /// (BEP 9). Trackers and other top-level fields are empty; the caller adds the magnet's.
    pub fn from_info_bytes(info_bytes: &[u8]) -> Result<Self, MetainfoError> {
        let value = decode(info_bytes)?;
        let info = Info::from_dict(expect_dict(&value, "info")?)?;
        Ok(Self {
            info_hash: sha1_hash(info_bytes),
            info,
            announce: None,
            announce_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            web_seeds: Vec::new(),
            info_bytes: Bytes::copy_from_slice(info_bytes),
            v2_hash: None,
            hybrid: None,
        })
    }

    /// Every tracker URL of every tier, in tier order, without duplicates.
    pub fn trackers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for url in self.announce_list.iter().flatten() {
            if !out.contains(&url.as_str()) {
                out.push(url);
            }
        }
        out
    }

    /// A magnet link for this torrent: info-hash, name and trackers.
    pub fn magnet(&self) -> Magnet {
        Magnet {
            info_hash: self.info_hash,
            v2_hash: self.v2_hash,
            hybrid_v2: self.hybrid.as_ref().map(|h| h.v2_hash),
            display_name: Some(self.info.name.clone()),
            trackers: self.trackers().into_iter().map(str::to_owned).collect(),
            peers: Vec::new(),
            select_only: None,
        }
    }
}

impl Info {
    /// The info of a v2-only torrent: its files laid out on piece boundaries, with padding
    /// entries between them, and a Merkle check per piece.
    fn from_v2(t: &v2::V2Torrent, info: &Dict<'_>) -> Result<Self, MetainfoError> {
        let (files, checks) = v2::layout(t);
        let total_length = files.last().map_or(0, |f| f.offset + f.length);
        if total_length == 0 {
            return Err(MetainfoError::EmptyContent);
        }
        let piece_length =
            u32::try_from(t.piece_length).map_err(|_| MetainfoError::BadPieceLength(t.piece_length as i64))?;
        let layout = Layout::new(total_length, piece_length)
            .filter(|l| l.piece_count() as usize == checks.len())
            .ok_or(MetainfoError::V2Field { field: "file tree".into(), reason: "the pieces do not add up".into() })?;
        let multi_file = !(t.files.len() == 1 && t.files[0].path.len() == 1);
        Ok(Self {
            name: t.name.clone(),
            piece_length,
            pieces: vec![[0u8; 20]; checks.len()],
            files,
            private: info.get(&b"private"[..]).and_then(Value::as_int) == Some(1),
            multi_file,
            ssl_cert: None,
            sealed: None,
            layout,
            v2: Some(checks.into()),
        })
    }

    /// Parses and validates a bare bencoded info dictionary.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        let value = decode(bytes)?;
        Self::from_dict(expect_dict(&value, "info")?)
    }

    fn from_dict(info: &Dict<'_>) -> Result<Self, MetainfoError> {
        if is_v2_only(info) {
            return Err(MetainfoError::V2Only);
        }
        let name = files::name(info)?;
        let piece_length = int(info, "piece length")?;
        let piece_length = u32::try_from(piece_length)
            .ok()
            .filter(|&l| l > 0 && l <= MAX_PIECE_LENGTH)
            .ok_or(MetainfoError::BadPieceLength(piece_length))?;
        let pieces_raw = bytes(info, "pieces")?;
        if pieces_raw.len() % 20 != 0 {
            return Err(MetainfoError::PiecesNotMultipleOf20(pieces_raw.len()));
        }
        let (files, multi_file) = match (info.get(&b"files"[..]), info.get(&b"length"[..])) {
            (Some(_), Some(_)) => return Err(MetainfoError::LengthAndFiles),
            (Some(list), None) => (files::multi(list)?, true),
            (None, Some(length)) => (files::single(&name, length)?, false),
            (None, None) => return Err(missing("length` or `files")),
        };
        let total_length = files.last().map_or(0, |f| f.offset + f.length);
        if total_length == 0 {
            return Err(MetainfoError::EmptyContent);
        }
        let found = pieces_raw.len() / 20;
        let expected = total_length.div_ceil(u64::from(piece_length));
        let layout = Layout::new(total_length, piece_length)
            .filter(|l| l.piece_count() as usize == found)
            .ok_or(MetainfoError::PieceCountMismatch { found, expected, total_length, piece_length })?;
        let pieces = pieces_raw
            .chunks_exact(20)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let private = info.get(&b"private"[..]).and_then(Value::as_int) == Some(1);
        let ssl_cert = match info.get(&b"ssl-cert"[..]) {
            None => None,
            Some(v) => {
                let text = v
                    .as_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .filter(|t| t.contains("-----BEGIN CERTIFICATE-----"))
                    .ok_or(MetainfoError::BadField("ssl-cert", "must be a PEM certificate"))?;
                Some(text.to_string())
            }
        };
        let sealed = match info.get(&b"shoal-sealed"[..]) {
            None => None,
            Some(v) => Some(
                v.as_bytes()
                    .filter(|b| b.len() <= MAX_SEALED_HEADER)
                    .ok_or(MetainfoError::BadField("shoal-sealed", "must be a byte string of at most 4 MiB"))?
                    .to_vec(),
            ),
        };
        Ok(Self { name, piece_length, pieces, files, private, multi_file, ssl_cert, sealed, layout, v2: None })
    }

    /// `true` when the files live under a directory named [`Info::name`].
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }

    /// Total content length in bytes.
    pub fn total_length(&self) -> u64 {
        self.layout.total_length()
    }

    /// Where a file goes, relative to the download directory: `name/<path...>` in a
    /// multi-file torrent, `name` in a single-file one.
    pub fn file_path(&self, file: &FileEntry) -> PathBuf {
        self.file_components(file).iter().collect()
    }

    /// [`Info::file_path`] as path components, each a validated file name.
    pub fn file_components(&self, file: &FileEntry) -> Vec<String> {
        let prefix = self.multi_file.then(|| self.name.clone());
        prefix.into_iter().chain(file.path.iter().cloned()).collect()
    }

    /// The expected SHA-1 of a piece; `None` if the index belongs to another torrent.
    pub fn piece_hash(&self, piece: PieceIndex) -> Option<&[u8; 20]> {
        self.pieces.get(piece.idx())
    }
}

/// The v2 side of a hybrid `.torrent` whose v1 side `info` was read: kept only when its piece
/// layers are valid and it lays out the same files, at the same offsets, in the same pieces
/// (BEP 52 asks a client to check this before joining both swarms); otherwise the torrent is
/// read as v1 alone.
fn hybrid_side(torrent: &[u8], info: &Info) -> Option<Hybrid> {
    let t = v2::parse(torrent).ok()?;
    let (files, checks) = v2::layout(&t);
    let real = |files: &[FileEntry]| -> Vec<(Vec<String>, u64, u64)> {
        files.iter().filter(|f| !f.padding && f.length > 0).map(|f| (f.path.clone(), f.offset, f.length)).collect()
    };
    let v1_paths: Vec<(Vec<String>, u64, u64)> =
        real(&info.files).into_iter().map(|(p, o, l)| (if info.multi_file { p } else { vec![] }, o, l)).collect();
    let v2_paths: Vec<(Vec<String>, u64, u64)> =
        real(&files).into_iter().map(|(p, o, l)| (if info.multi_file { p } else { vec![] }, o, l)).collect();
    let same = v1_paths == v2_paths && u64::from(info.piece_length) == t.piece_length;
    (same && checks.len() == info.pieces.len()).then(|| Hybrid { v2_hash: t.info_hash_v2, checks: checks.into() })
}

/// `true` for a BEP 52 info dictionary without the v1 fields of a hybrid torrent.
fn is_v2_only(info: &Dict<'_>) -> bool {
    let v2 = info.get(&b"meta version"[..]).and_then(Value::as_int) == Some(2) || info.contains_key(&b"file tree"[..]);
    v2 && !info.contains_key(&b"pieces"[..])
}

fn sha1_hash(bytes: &[u8]) -> InfoHash {
    InfoHash(Sha1::digest(bytes).into())
}

fn missing(field: &str) -> MetainfoError {
    MetainfoError::MissingField(field.to_owned())
}

fn wrong_type(field: &str, expected: &'static str, found: &Value<'_>) -> MetainfoError {
    MetainfoError::WrongType { field: field.to_owned(), expected, found: found.kind() }
}

fn expect_dict<'v, 'a>(value: &'v Value<'a>, field: &str) -> Result<&'v Dict<'a>, MetainfoError> {
    value.as_dict().ok_or_else(|| wrong_type(field, "a dictionary", value))
}

fn int(dict: &Dict<'_>, key: &str) -> Result<i64, MetainfoError> {
    let value = dict.get(key.as_bytes()).ok_or_else(|| missing(key))?;
    value.as_int().ok_or_else(|| wrong_type(key, "an integer", value))
}

fn bytes<'a>(dict: &Dict<'a>, key: &str) -> Result<&'a [u8], MetainfoError> {
    let value = dict.get(key.as_bytes()).ok_or_else(|| missing(key))?;
    value.as_bytes().ok_or_else(|| wrong_type(key, "a byte string", value))
}

/// An optional text field, preferring `<key>.utf-8` when it is valid UTF-8.
fn text(dict: &Dict<'_>, key: &str) -> Option<String> {
    let utf8_key = format!("{key}.utf-8");
    if let Some(s) = dict.get(utf8_key.as_bytes()).and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    dict.get(key.as_bytes()).and_then(Value::as_bytes).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A tracker URL: a non-empty byte string, trimmed. Anything else is ignored.
fn tracker_url(value: &Value<'_>) -> Option<String> {
    let url = String::from_utf8_lossy(value.as_bytes()?).trim().to_owned();
    (!url.is_empty()).then_some(url)
}

/// BEP 12 tiers, tolerating the mess found in real torrents: non-list tiers holding a single
/// URL, non-string entries and empty tiers are skipped or repaired rather than refused.
fn parse_tiers(tiers: &[Value<'_>]) -> Vec<Vec<String>> {
    tiers
        .iter()
        .map(|tier| match tier {
            Value::List(urls) => urls.iter().filter_map(tracker_url).collect(),
            other => tracker_url(other).into_iter().collect(),
        })
        .filter(|tier: &Vec<String>| !tier.is_empty())
        .collect()
}
