//! BitTorrent v2 (BEP 52): the per-file SHA-256 Merkle trees, the `file tree` of a v2 or hybrid
//! info dictionary, the `piece layers` of a `.torrent`, the v2 info-hash, and [`layout`], which
//! lays a v2-only torrent out as the piece space its peers use — every file starting on a piece
//! boundary, as if padding files sat between them — with one [`V2Check`] per piece. A hybrid is
//! read as the v1 torrent it also is; a v2-only info dictionary fetched from peers (a magnet
//! link) has no piece layers and is not read yet.
//!
//! The tree of a file: its leaves are SHA-256 hashes of its 16 KiB blocks (the last one may be
//! shorter), as many as the next power of two, the leaves past the file's end all zero; every
//! inner node is SHA-256 of its two children. The root is the file's `pieces root`. A file larger
//! than one piece also has a piece layer: the nodes whose subtrees cover one piece each
//! (`piece length / 16 KiB` leaves), listed in `piece layers` under the file's root; only the
//! pieces holding data are listed, so the root over the layer pads with the hash of an all-zero
//! subtree of a piece's height ([`pad_hash`]).
//!
//! [`parse`] takes untrusted bytes: recursion is bounded ([`MAX_DEPTH`]), names are checked
//! like v1 paths, the file count is bounded, and every piece layer is verified against its
//! file's root before it is accepted, so a torrent cannot carry hashes that disagree with
//! themselves.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use shoal_bencode::{Dict, Value, decode_with_spans};

use super::files::unsafe_reason;
use super::{MAX_FILES, MAX_PIECE_LENGTH, MAX_TOTAL_LENGTH, MetainfoError, expect_dict, missing, wrong_type};
use crate::types::InfoHash;

/// Bytes per leaf of a file's tree.
pub const BLOCK: usize = 16 * 1024;
/// Deepest `file tree` nesting accepted (folders in folders).
pub const MAX_DEPTH: usize = 32;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// One file of a v2 `file tree`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2File {
    /// Path components under the torrent's folder (each a checked file name).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// The root of its tree (absent for an empty file).
    pub pieces_root: Option<Hash>,
}

/// The v2 parts of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Torrent {
    /// The torrent's name.
    pub name: String,
    /// A power of two, at least 16 KiB.
    pub piece_length: u64,
    /// The files in `file tree` order (sorted by path).
    pub files: Vec<V2File>,
    /// Each larger-than-a-piece file's piece layer, by its root; every one verified.
    pub piece_layers: HashMap<Hash, Vec<Hash>>,
    /// SHA-256 of the info dictionary as it appears in the torrent.
    pub info_hash_v2: Hash,
}

impl V2Torrent {
    /// The 20 bytes a v2 swarm is named by on the wire, in trackers and the DHT (the v2
    /// info-hash truncated).
    pub fn swarm_hash(&self) -> InfoHash {
        let mut h = [0u8; 20];
        h.copy_from_slice(&self.info_hash_v2[..20]);
        InfoHash(h)
    }

    /// The expected hash of piece `index` of `file` (a piece layer entry, or the file's root when
    /// it fits in one piece); `None` past its end.
    pub fn piece_hash(&self, file: &V2File, index: usize) -> Option<Hash> {
        let root = file.pieces_root?;
        if file.length <= self.piece_length {
            return (index == 0).then_some(root);
        }
        self.piece_layers.get(&root)?.get(index).copied()
    }
}

/// How one piece of a v2 torrent is checked: the root of the Merkle subtree over the first
/// `data` bytes of the piece (its file's bytes; the rest is padding up to the next file), with
/// `width` leaves (the leaves past the data are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct V2Check {
    /// The expected root: a piece layer entry, or the file's root for a file of one piece.
    pub root: Hash,
    /// Bytes of the file in the piece.
    pub data: u32,
    /// Leaves of the subtree (a power of two): `piece length / 16 KiB`, or fewer for a file
    /// smaller than a piece (its whole tree).
    pub width: u32,
}

impl V2Check {
    /// Whether `data` (the piece's file bytes, without padding) has this root.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() == self.data as usize && root(&leaves(data), self.width as usize, [0u8; 32]) == self.root
    }
}

/// The piece space of a v2-only torrent: its files in order, each followed (but the last) by a
/// padding entry up to the next piece boundary, and one check per piece.
pub fn layout(t: &V2Torrent) -> (Vec<super::FileEntry>, Vec<V2Check>) {
    let mut files = Vec::new();
    let mut checks = Vec::new();
    let mut offset = 0u64;
    let pl = t.piece_length;
    for (i, f) in t.files.iter().enumerate() {
        files.push(super::FileEntry { path: f.path.clone(), length: f.length, offset, padding: false });
        offset += f.length;
        let pieces = f.length.div_ceil(pl);
        let width = if f.length > pl {
            (pl / BLOCK as u64) as u32
        } else {
            f.length.div_ceil(BLOCK as u64).max(1).next_power_of_two() as u32
        };
        for p in 0..pieces {
            let data = (f.length - p * pl).min(pl) as u32;
            let root = t.piece_hash(f, p as usize).expect("parse checked every layer");
            checks.push(V2Check { root, data, width });
        }
        let pad = (pl - f.length % pl) % pl;
        if pad > 0 && i + 1 < t.files.len() {
            files.push(super::FileEntry {
                path: vec![".pad".into(), pad.to_string()],
                length: pad,
                offset,
                padding: true,
            });
            offset += pad;
        }
    }
    (files, checks)
}

/// SHA-256 of one block (a leaf).
pub fn leaf(block: &[u8]) -> Hash {
    Sha256::digest(block).into()
}

/// SHA-256 of two child nodes: their parent.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of a subtree of all-zero leaves `height` levels tall (0: a zero leaf).
pub fn pad_hash(height: u32) -> Hash {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = node(&h, &h);
    }
    h
}

/// The root over `nodes` as the leftmost of `width` (a power of two, at least `nodes.len()`)
/// nodes of one level, the missing ones being `pad`; each level up pads with the hash of two
/// pads.
pub fn root(nodes: &[Hash], width: usize, pad: Hash) -> Hash {
    debug_assert!(width.is_power_of_two() && width >= nodes.len());
    let mut level: Vec<Hash> = nodes.to_vec();
    let (mut width, mut pad) = (width.max(1), pad);
    while width > 1 {
        let next: Vec<Hash> = level.chunks(2).map(|pair| node(&pair[0], pair.get(1).unwrap_or(&pad))).collect();
        level = next;
        pad = node(&pad, &pad);
        width /= 2;
    }
    level.first().copied().unwrap_or(pad)
}

/// The leaves of `data` (16 KiB blocks).
pub fn leaves(data: &[u8]) -> Vec<Hash> {
    data.chunks(BLOCK).map(leaf).collect()
}

/// The hash a piece of a file larger than one piece is checked against: the root of the
/// piece's subtree, `data` being the piece's bytes of the file (shorter for the file's last
/// piece; the leaves past them are zero).
pub fn piece_root(data: &[u8], piece_length: u64) -> Hash {
    let width = (piece_length as usize / BLOCK).max(1);
    root(&leaves(data), width, [0u8; 32])
}

/// A whole file's `pieces root`.
pub fn file_root(data: &[u8]) -> Hash {
    let leaves = leaves(data);
    root(&leaves, leaves.len().next_power_of_two(), [0u8; 32])
}

/// The root of a file of `length` bytes from its piece layer (`piece_length` a power of two, at
/// least [`BLOCK`]).
pub fn root_from_layer(layer: &[Hash], length: u64, piece_length: u64) -> Hash {
    let blocks = length.div_ceil(BLOCK as u64).max(1).next_power_of_two();
    let per_piece = piece_length / BLOCK as u64;
    let width = (blocks / per_piece).max(1) as usize;
    root(layer, width, pad_hash(per_piece.trailing_zeros()))
}

/// Reads the v2 parts of a `.torrent`: the info dictionary's `file tree`, `piece length`,
/// `meta version` 2, and the top level's `piece layers`, each layer checked against its file's
/// root.
pub fn parse(torrent: &[u8]) -> Result<V2Torrent, MetainfoError> {
    parse_torrent(torrent, true)
}

/// Reads a v2 info dictionary alone, as fetched from peers for a `urn:btmh` magnet link: its
/// piece layers are left empty, to be fetched with hash requests ([`crate::merkle`]) and
/// checked against each file's root.
pub fn parse_info(info: &[u8]) -> Result<V2Torrent, MetainfoError> {
    let mut torrent = Vec::with_capacity(info.len() + 8);
    torrent.extend_from_slice(b"d4:info");
    torrent.extend_from_slice(info);
    torrent.push(b'e');
    parse_torrent(&torrent, false)
}

/// A `.torrent` made of a v2 info dictionary and the piece layers of its files larger than a
/// piece (as `(pieces root, layer)`), which [`parse`] reads back.
pub fn torrent_with_layers(info: &[u8], layers: &[(Hash, Vec<Hash>)]) -> Vec<u8> {
    let mut sorted: Vec<&(Hash, Vec<Hash>)> = layers.iter().collect();
    sorted.sort_by_key(|(root, _)| *root);
    let mut out = b"d4:info".to_vec();
    out.extend_from_slice(info);
    out.extend_from_slice(b"12:piece layersd");
    for (root, layer) in sorted {
        out.extend_from_slice(b"32:");
        out.extend_from_slice(root);
        out.extend_from_slice(format!("{}:", layer.len() * 32).as_bytes());
        for h in layer {
            out.extend_from_slice(h);
        }
    }
    out.extend_from_slice(b"ee");
    out
}

fn parse_torrent(torrent: &[u8], need_layers: bool) -> Result<V2Torrent, MetainfoError> {
    let (top, spans) = decode_with_spans(torrent)?;
    let top = top.as_dict().ok_or(MetainfoError::NotADict(top.kind()))?;
    let info_value = top.get(&b"info"[..]).ok_or_else(|| missing("info"))?;
    let info = expect_dict(info_value, "info")?;
    let info_span =
        spans.into_iter().find(|(k, _)| *k == b"info").map(|(_, span)| span).ok_or_else(|| missing("info"))?;
    let info_hash_v2: Hash = Sha256::digest(&torrent[info_span]).into();
    match info.get(&b"meta version"[..]).and_then(Value::as_int) {
        Some(2) => {}
        Some(v) => {
            return Err(MetainfoError::V2Field { field: "meta version".into(), reason: format!("{v}, expected 2") });
        }
        None => return Err(missing("meta version")),
    }
    let piece_length = super::int(info, "piece length")?;
    if piece_length < BLOCK as i64
        || piece_length > i64::from(MAX_PIECE_LENGTH)
        || !(piece_length as u64).is_power_of_two()
    {
        return Err(MetainfoError::V2Field {
            field: "piece length".into(),
            reason: format!("{piece_length}, expected a power of two from 16 KiB to 256 MiB"),
        });
    }
    let piece_length = piece_length as u64;
    let name = super::files::name(info)?;
    let tree = info.get(&b"file tree"[..]).ok_or_else(|| missing("file tree"))?;
    let mut files = Vec::new();
    walk(expect_dict(tree, "file tree")?, &mut Vec::new(), &mut files)?;
    if files.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    let total = files.iter().try_fold(0u64, |sum, f| sum.checked_add(f.length)).filter(|&t| t <= MAX_TOTAL_LENGTH);
    if total.is_none() {
        return Err(MetainfoError::V2Field {
            field: "file tree".into(),
            reason: "the files add up to more than 1 PiB".into(),
        });
    }
    let mut piece_layers = HashMap::new();
    let layers = match top.get(&b"piece layers"[..]) {
        Some(v) => Some(expect_dict(v, "piece layers")?),
        None => None,
    };
    for file in files.iter().filter(|f| f.length > piece_length) {
        let root_hash = file.pieces_root.expect("a non-empty file has a root");
        let field = || format!("piece layers[{}]", file.path.join("/"));
        let Some(layers) = layers.filter(|_| need_layers) else {
            if need_layers {
                return Err(missing("piece layers"));
            }
            continue;
        };
        let raw = layers.get(&root_hash[..]).ok_or_else(|| missing(&field()))?;
        let raw = raw.as_bytes().ok_or_else(|| wrong_type(&field(), "a byte string", raw))?;
        let pieces = file.length.div_ceil(piece_length) as usize;
        if raw.len() != pieces * 32 {
            return Err(MetainfoError::V2Field {
                field: field(),
                reason: format!("{} bytes, expected {} hashes of 32 bytes", raw.len(), pieces),
            });
        }
        let layer: Vec<Hash> = raw.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
        if root_from_layer(&layer, file.length, piece_length) != root_hash {
            return Err(MetainfoError::V2Field {
                field: field(),
                reason: "the hashes do not add up to the file's pieces root".into(),
            });
        }
        piece_layers.insert(root_hash, layer);
    }
    Ok(V2Torrent { name, piece_length, files, piece_layers, info_hash_v2 })
}

/// Collects the files under `dir` (a `file tree` node); `path` is where it sits.
fn walk(dir: &Dict<'_>, path: &mut Vec<String>, files: &mut Vec<V2File>) -> Result<(), MetainfoError> {
    if path.len() >= MAX_DEPTH {
        return Err(MetainfoError::V2Field {
            field: "file tree".into(),
            reason: format!("folders nested deeper than {MAX_DEPTH}"),
        });
    }
    for (key, value) in dir {
        let name = String::from_utf8_lossy(key).into_owned();
        let where_ = format!("file tree/{}", path.iter().chain([&name]).cloned().collect::<Vec<_>>().join("/"));
        let field = || where_.clone();
        if let Some(reason) = unsafe_reason(&name) {
            return Err(MetainfoError::BadName { name, reason });
        }
        let entry = expect_dict(value, &field())?;
        path.push(name.clone());
        if let Some(file) = entry.get(&b""[..]) {
            if entry.len() != 1 {
                return Err(MetainfoError::V2Field { field: field(), reason: "a file that is also a folder".into() });
            }
            let file = expect_dict(file, &field())?;
            let length = super::int(file, "length")?;
            if length < 0 {
                return Err(MetainfoError::NegativeLength { field: field(), value: length });
            }
            let pieces_root = match file.get(&b"pieces root"[..]) {
                Some(v) => {
                    let raw = v.as_bytes().ok_or_else(|| wrong_type(&field(), "a byte string", v))?;
                    Some(<Hash>::try_from(raw).map_err(|_| MetainfoError::V2Field {
                        field: format!("{}.pieces root", field()),
                        reason: format!("{} bytes, expected 32", raw.len()),
                    })?)
                }
                None if length == 0 => None,
                None => return Err(missing(&format!("{}.pieces root", field()))),
            };
            if files.len() >= MAX_FILES {
                return Err(MetainfoError::TooManyFiles(files.len() + 1));
            }
            files.push(V2File { path: path.clone(), length: length as u64, pieces_root });
        } else {
            walk(entry, path, files)?;
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend(format!("{}:", s.len()).as_bytes());
        out.extend(s);
    }

    /// A v2 torrent over `files` (name, bytes), written by hand the way BEP 52 lays it out.
    fn torrent(files: &[(&str, Vec<u8>)], piece_length: u64) -> Vec<u8> {
        let mut tree = b"d".to_vec();
        let mut sorted: Vec<_> = files.iter().collect();
        sorted.sort_by_key(|(n, _)| *n);
        let mut layers = b"d".to_vec();
        for (name, data) in &sorted {
            enc_str(&mut tree, name.as_bytes());
            tree.extend(b"d0:d6:lengthi");
            tree.extend(data.len().to_string().as_bytes());
            tree.extend(b"e");
            if !data.is_empty() {
                let root = file_root(data);
                tree.extend(b"11:pieces root");
                enc_str(&mut tree, &root);
                if data.len() as u64 > piece_length {
                    let layer: Vec<u8> =
                        data.chunks(piece_length as usize).flat_map(|p| piece_root(p, piece_length)).collect();
                    enc_str(&mut layers, &root);
                    enc_str(&mut layers, &layer);
                }
            }
            tree.extend(b"ee");
        }
        tree.extend(b"e");
        layers.extend(b"e");
        let mut info = b"d9:file tree".to_vec();
        info.extend(&tree);
        info.extend(b"12:meta versioni2e4:name4:test12:piece lengthi");
        info.extend(piece_length.to_string().as_bytes());
        info.extend(b"ee");
        let mut t = b"d4:info".to_vec();
        t.extend(&info);
        t.extend(b"12:piece layers");
        t.extend(&layers);
        t.extend(b"e");
        t
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn a_one_block_file_is_its_own_root_and_pads_are_hashes_of_zeros() {
        let d = data(1000, 1);
        assert_eq!(file_root(&d), leaf(&d));
        assert_eq!(pad_hash(0), [0u8; 32]);
        assert_eq!(pad_hash(1), node(&[0; 32], &[0; 32]));
        // Three blocks: a tree of four leaves, the last zero.
        let d = data(3 * BLOCK - 5, 2);
        let l = leaves(&d);
        assert_eq!(file_root(&d), node(&node(&l[0], &l[1]), &node(&l[2], &[0; 32])));
    }

    #[test]
    fn a_piece_layer_adds_up_to_the_file_root() {
        for (len, piece) in [(5 * BLOCK + 7, 2 * BLOCK), (16 * BLOCK, 4 * BLOCK), (9 * BLOCK, 8 * BLOCK), (1, BLOCK)] {
            let d = data(len, 3);
            let piece = piece as u64;
            let layer: Vec<Hash> = d.chunks(piece as usize).map(|p| piece_root(p, piece)).collect();
            assert_eq!(root_from_layer(&layer, len as u64, piece), file_root(&d), "{len} bytes, pieces of {piece}");
        }
    }

    #[test]
    fn a_torrent_is_read_and_its_layers_checked() {
        let files = [("b.bin", data(70_000, 4)), ("a.txt", data(100, 5)), ("empty", Vec::new())];
        let t = torrent(&files, 32 * 1024);
        let v2 = parse(&t).expect("a valid v2 torrent");
        assert_eq!(v2.piece_length, 32 * 1024);
        let names: Vec<_> = v2.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(names, ["a.txt", "b.bin", "empty"]);
        assert_eq!(v2.files[2].pieces_root, None);
        let big = &v2.files[1];
        assert_eq!(v2.piece_layers[&big.pieces_root.expect("root")].len(), 3);
        assert_eq!(v2.piece_hash(big, 2), Some(piece_root(&files[0].1[65_536..], 32 * 1024)));
        assert_eq!(v2.piece_hash(&v2.files[0], 0), Some(file_root(&files[1].1)));
        assert_eq!(v2.piece_hash(&v2.files[0], 1), None);
        // A layer that does not add up to its root is refused, naming the file.
        let good = piece_root(&files[0].1[..32 * 1024], 32 * 1024);
        let pos = t.windows(32).position(|w| w == good).expect("the layer is in the torrent");
        let mut bad = t.clone();
        bad[pos] ^= 1;
        let e = parse(&bad).expect_err("a forged layer");
        assert!(e.to_string().contains("piece layers[b.bin]"), "{e}");
    }

    #[test]
    fn an_info_dictionary_alone_is_read_and_its_layers_put_back() {
        let files = [("b.bin", data(70_000, 4)), ("a.txt", data(100, 5))];
        let t = torrent(&files, 32 * 1024);
        let full = parse(&t).expect("valid");
        let layers_at = t.windows(15).position(|w| w == b"12:piece layers").expect("layers");
        let info = &t[b"d4:info".len()..layers_at];
        let bare = parse_info(info).expect("an info dictionary alone");
        assert!(bare.piece_layers.is_empty());
        assert_eq!((bare.files.clone(), bare.info_hash_v2), (full.files.clone(), full.info_hash_v2));
        let layers: Vec<(Hash, Vec<Hash>)> = full.piece_layers.clone().into_iter().collect();
        let rebuilt = parse(&torrent_with_layers(info, &layers)).expect("the rebuilt torrent");
        assert_eq!(rebuilt, full);
    }

    #[test]
    fn unsafe_names_deep_trees_and_bad_fields_are_refused() {
        let t = torrent(&[("..", data(10, 1))], BLOCK as u64);
        assert!(matches!(parse(&t), Err(MetainfoError::BadName { .. })));
        let t = torrent(&[("x", data(10, 1))], 3000);
        assert!(parse(&t).expect_err("piece length").to_string().contains("power of two"));
        let mut deep = b"d4:infod9:file tree".to_vec();
        for _ in 0..40 {
            deep.extend(b"d1:a");
        }
        deep.extend(b"de");
        deep.extend([b'e'; 40]);
        deep.extend(b"12:meta versioni2e4:name1:x12:piece lengthi16384eee");
        let e = parse(&deep).expect_err("too deep");
        assert!(e.to_string().contains("nested deeper"), "{e}");
        assert!(parse(b"d4:infod4:name1:xee").is_err());
    }
}
