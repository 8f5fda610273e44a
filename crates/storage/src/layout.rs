//! Where a torrent's bytes live on disk: the list of files under the download folder, how the
//! piece stream maps onto them, and the expected piece hashes.
//!
//! A torrent's content is the concatenation of its files in order; pieces are cut from that
//! stream without regard to file boundaries, so one piece may span several files and a file
//! of length zero occupies no bytes at all (it is still created). [`StorageLayout::segments`]
//! turns a range inside a piece into per-file `(file, offset, length)` [`Segment`]s.
//!
//! A BEP 47 padding file ([`FileSpec::padding`]) takes its place in the piece stream like any
//! other file, but it is virtual: its bytes are zeros that never reach the disk (see
//! [`crate::storage`]). Padding files are exempt from the path clash rules below, because
//! BEP 47 names them `.pad/<size>` and two pads of one size share a path.
//!
//! Paths are checked here, before anything touches the disk, even though the metainfo parser
//! already validates them: a component that is empty, `.`, `..`, or contains `/`, `\` or NUL
//! is refused, as are two files sharing a path or a file sitting where another file needs a
//! directory. Symbolic links below the download folder are refused when the storage is opened
//! (see [`crate::storage`]).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use shoal_proto::{Layout, PieceIndex};

use crate::error::StorageError;

/// One file of a torrent, as the caller describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Path components relative to the download folder (for a multi-file torrent the first
    /// component is normally the torrent's name).
    pub path: Vec<String>,
    /// Length in bytes; zero-length files are created but hold no piece bytes.
    pub length: u64,
    /// BEP 47 padding file: its bytes are zeros, it is never created, opened or written, and
    /// reads of it return zeros.
    pub padding: bool,
}

/// A run of bytes inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file in the layout's file list.
    pub file: usize,
    /// Offset of the first byte inside that file.
    pub offset: u64,
    /// Number of bytes, never zero.
    pub length: u64,
}

/// Offsets of each file in the content stream. Invariant: `ends[i] = starts[i] + lengths[i]`,
/// both non-decreasing, and `ends.last()` is the total length.
#[derive(Clone, Debug)]
pub(crate) struct FileMap {
    starts: Vec<u64>,
    ends: Vec<u64>,
}

impl FileMap {
    /// `None` when the lengths overflow `u64`.
    pub(crate) fn new(lengths: impl IntoIterator<Item = u64>) -> Option<Self> {
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        let mut at = 0u64;
        for length in lengths {
            starts.push(at);
            at = at.checked_add(length)?;
            ends.push(at);
        }
        Some(Self { starts, ends })
    }

    /// Sum of all file lengths.
    pub(crate) fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Splits `len` bytes from content offset `offset` into per-file segments. The caller
    /// keeps the range inside the content.
    pub(crate) fn segments(&self, offset: u64, len: u64) -> Segments<'_> {
        let file = self.ends.partition_point(|&end| end <= offset);
        Segments { map: self, file, offset, remaining: len }
    }

    /// Indices of the files holding any of the bytes in `offset..offset + len` (possibly with
    /// zero-length files in between).
    pub(crate) fn files_in(&self, offset: u64, len: u64) -> Range<usize> {
        if len == 0 {
            return 0..0;
        }
        let first = self.ends.partition_point(|&end| end <= offset);
        let last = self.ends.partition_point(|&end| end < offset + len);
        first..(last + 1).min(self.ends.len())
    }
}

/// Iterator over the [`Segment`]s of a content range; see [`StorageLayout::segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    map: &'a FileMap,
    file: usize,
    offset: u64,
    remaining: u64,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.remaining == 0 {
            return None;
        }
        // Skip zero-length files (and any file already passed).
        while *self.map.ends.get(self.file)? <= self.offset {
            self.file += 1;
        }
        let end = self.map.ends[self.file];
        let length = self.remaining.min(end - self.offset);
        let segment = Segment { file: self.file, offset: self.offset - self.map.starts[self.file], length };
        self.offset += length;
        self.remaining -= length;
        Some(segment)
    }
}

/// A torrent's files under a download folder, its piece geometry and expected piece hashes.
/// Invariant (checked by [`StorageLayout::new`]): every path is safe and distinct, the
/// geometry is valid and there is exactly one hash per piece.
#[derive(Clone, Debug)]
pub struct StorageLayout {
    root: PathBuf,
    files: Vec<FileSpec>,
    map: FileMap,
    geometry: Layout,
    hashes: Vec<[u8; 20]>,
    /// A v2-only torrent's checks (BEP 52 Merkle roots), one per piece; `hashes` is unused then
    /// unless `hybrid`.
    v2: Option<std::sync::Arc<[shoal_proto::metainfo::v2::V2Check]>>,
    /// A hybrid torrent: each piece must match both its SHA-1 and its v2 root.
    hybrid: bool,
}

impl StorageLayout {
    /// Validates paths, geometry and hash count. Touches no file.
    pub fn new(
        root: PathBuf,
        files: Vec<FileSpec>,
        piece_length: u32,
        hashes: Vec<[u8; 20]>,
    ) -> Result<Self, StorageError> {
        check_paths(&files)?;
        let bad = |total_length| StorageError::BadGeometry { total_length, piece_length };
        let map = FileMap::new(files.iter().map(|f| f.length)).ok_or(bad(u64::MAX))?;
        let geometry = Layout::new(map.total(), piece_length).ok_or(bad(map.total()))?;
        if hashes.len() != geometry.piece_count() as usize {
            return Err(StorageError::HashCount { pieces: geometry.piece_count(), hashes: hashes.len() });
        }
        Ok(Self { root, files, map, geometry, hashes, v2: None, hybrid: false })
    }

    /// Checks pieces by BitTorrent v2 Merkle roots (a v2-only torrent), one per piece.
    pub fn with_v2(
        mut self,
        checks: std::sync::Arc<[shoal_proto::metainfo::v2::V2Check]>,
    ) -> Result<Self, StorageError> {
        if checks.len() != self.geometry.piece_count() as usize {
            return Err(StorageError::HashCount { pieces: self.geometry.piece_count(), hashes: checks.len() });
        }
        self.v2 = Some(checks);
        Ok(self)
    }

    /// Checks pieces by their SHA-1 hashes and their BitTorrent v2 Merkle roots both (a hybrid
    /// torrent: BEP 52 asks a client in both swarms to verify both).
    pub fn with_hybrid(
        self,
        checks: std::sync::Arc<[shoal_proto::metainfo::v2::V2Check]>,
    ) -> Result<Self, StorageError> {
        Ok(Self { hybrid: true, ..self.with_v2(checks)? })
    }

    /// Whether pieces are checked by SHA-1 (a v1 or hybrid torrent).
    pub fn checks_sha1(&self) -> bool {
        self.v2.is_none() || self.hybrid
    }

    /// A v2-only or hybrid torrent's check of `piece` (`None` for a v1 torrent).
    pub fn v2_check(&self, piece: PieceIndex) -> Option<shoal_proto::metainfo::v2::V2Check> {
        self.v2.as_ref()?.get(piece.idx()).copied()
    }

    /// The download folder every file path is relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files, in torrent order.
    pub fn files(&self) -> &[FileSpec] {
        &self.files
    }

    /// Full path of file `index` (root joined with its components). Panics if out of range.
    pub fn file_path(&self, index: usize) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(&self.files[index].path);
        path
    }

    /// Piece and block geometry.
    pub fn geometry(&self) -> Layout {
        self.geometry
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.geometry.piece_count()
    }

    /// Validates a raw piece index against this torrent.
    pub fn piece(&self, index: u32) -> Option<PieceIndex> {
        self.geometry.piece(index)
    }

    /// The expected SHA-1 of a piece; `None` when the index is out of range.
    pub fn piece_hash(&self, piece: PieceIndex) -> Option<&[u8; 20]> {
        self.hashes.get(piece.idx())
    }

    /// Offset of file `index`'s first byte in the content stream. Panics if out of range.
    pub fn file_offset(&self, index: usize) -> u64 {
        self.map.starts[index]
    }

    /// The per-file segments holding `len` bytes at `begin` inside `piece`; errors when the
    /// range does not lie inside the piece. Zero-length files never appear.
    pub fn segments(&self, piece: PieceIndex, begin: u32, len: u64) -> Result<Segments<'_>, StorageError> {
        let offset = self.range_offset(piece, begin, len)?;
        Ok(self.map.segments(offset, len))
    }

    /// Indices of the files holding bytes of `piece` (a contiguous range, which may include
    /// zero-length files).
    pub fn piece_files(&self, piece: PieceIndex) -> Range<usize> {
        if piece.get() >= self.piece_count() {
            return 0..0;
        }
        let offset = self.geometry.piece_offset(piece);
        self.map.files_in(offset, self.geometry.piece_size(piece) as u64)
    }

    /// Content offset of `begin` inside `piece`, after checking the range fits in the piece.
    pub(crate) fn range_offset(&self, piece: PieceIndex, begin: u32, len: u64) -> Result<u64, StorageError> {
        let out = || StorageError::OutOfRange { piece: piece.get(), begin, length: len };
        if piece.get() >= self.piece_count() {
            return Err(out());
        }
        let end = (begin as u64).checked_add(len).ok_or_else(out)?;
        if end > self.geometry.piece_size(piece) as u64 {
            return Err(out());
        }
        Ok(self.geometry.piece_offset(piece) + begin as u64)
    }

    /// A digest of everything that identifies this content: geometry, paths, lengths and
    /// piece hashes. Resume data carries it so a file from another torrent is never trusted.
    pub(crate) fn fingerprint(&self) -> [u8; 20] {
        let mut h = Sha1::new();
        h.update(b"shoal resume layout v1");
        h.update(self.geometry.piece_length().to_le_bytes());
        h.update(self.geometry.piece_count().to_le_bytes());
        h.update((self.files.len() as u64).to_le_bytes());
        for file in &self.files {
            h.update((file.path.len() as u64).to_le_bytes());
            for component in &file.path {
                h.update((component.len() as u64).to_le_bytes());
                h.update(component.as_bytes());
            }
            h.update(file.length.to_le_bytes());
        }
        for hash in &self.hashes {
            h.update(hash);
        }
        for check in self.v2.iter().flat_map(|c| c.iter()) {
            h.update(check.root);
        }
        h.finalize().into()
    }
}

/// `true` for a component that is safe to join under a folder.
pub(crate) fn component_is_safe(component: &str) -> bool {
    !(component.is_empty() || component == "." || component == ".." || component.contains(['/', '\\', '\0']))
}

/// Refuses unsafe components, empty paths, duplicate paths and a file used as a directory.
/// Padding files are only checked for safe components: they never touch the disk.
fn check_paths(files: &[FileSpec]) -> Result<(), StorageError> {
    let mut file_at: HashMap<&[String], usize> = HashMap::new();
    let mut dir_of: HashMap<&[String], usize> = HashMap::new();
    let clash = |file, other, path: &[String]| StorageError::PathClash { file, other, path: path.iter().collect() };
    for (index, file) in files.iter().enumerate() {
        if file.path.is_empty() {
            return Err(StorageError::EmptyPath { file: index });
        }
        if let Some(bad) = file.path.iter().find(|c| !component_is_safe(c)) {
            return Err(StorageError::UnsafeComponent { file: index, component: bad.clone() });
        }
        if file.padding {
            continue;
        }
        let path = file.path.as_slice();
        if let Some(&other) = file_at.get(path).or_else(|| dir_of.get(path)) {
            return Err(clash(index, other, path));
        }
        for depth in 1..path.len() {
            let dir = &path[..depth];
            if let Some(&other) = file_at.get(dir) {
                return Err(clash(index, other, dir));
            }
            dir_of.entry(dir).or_insert(index);
        }
        file_at.insert(path, index);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &[&str], length: u64) -> FileSpec {
        FileSpec { path: path.iter().map(|s| s.to_string()).collect(), length, padding: false }
    }

    fn layout(lengths: &[u64], piece_length: u32) -> StorageLayout {
        let files = lengths.iter().enumerate().map(|(i, &l)| spec(&[&format!("f{i}")], l));
        let total: u64 = lengths.iter().sum();
        let count = total.div_ceil(piece_length as u64) as usize;
        StorageLayout::new("/r".into(), files.collect(), piece_length, vec![[0; 20]; count]).expect("valid layout")
    }

    fn segs(l: &StorageLayout, piece: u32, begin: u32, len: u64) -> Vec<(usize, u64, u64)> {
        let piece = l.piece(piece).expect("piece");
        l.segments(piece, begin, len).expect("in range").map(|s| (s.file, s.offset, s.length)).collect()
    }

    #[test]
    fn piece_spans_files_and_skips_empty_ones() {
        // Files: 10, 0, 5, 0, 0, 20 bytes; pieces of 8.
        let l = layout(&[10, 0, 5, 0, 0, 20], 8);
        assert_eq!(l.piece_count(), 5);
        assert_eq!(segs(&l, 0, 0, 8), vec![(0, 0, 8)]);
        assert_eq!(segs(&l, 1, 0, 8), vec![(0, 8, 2), (2, 0, 5), (5, 0, 1)]);
        assert_eq!(segs(&l, 1, 2, 5), vec![(2, 0, 5)]);
        assert_eq!(segs(&l, 4, 0, 3), vec![(5, 17, 3)]);
        let p1 = l.piece(1).expect("piece");
        assert_eq!(l.piece_files(p1), 0..6);
        assert_eq!(l.piece_files(l.piece(2).expect("piece")), 5..6);
        assert!(l.segments(l.piece(4).expect("piece"), 0, 4).is_err());
        assert!(l.segments(p1, u32::MAX, 2).is_err());
    }

    #[test]
    fn empty_files_at_start_and_end() {
        let l = layout(&[0, 0, 4, 0], 4);
        assert_eq!(segs(&l, 0, 0, 4), vec![(2, 0, 4)]);
        assert_eq!(l.piece_files(l.piece(0).expect("piece")), 2..3);
    }

    #[test]
    fn r_path_traversal_component_refused() {
        for bad in ["..", ".", "", "a/b", "a\\b", "nul\0"] {
            let files = vec![spec(&["ok", "x"], 1), spec(&["dir", bad, "f"], 1)];
            let err = StorageLayout::new("/r".into(), files, 4, vec![[0; 20]]);
            match err {
                Err(StorageError::UnsafeComponent { file: 1, component }) => {
                    assert_eq!(component, bad)
                }
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
        let msg = StorageError::UnsafeComponent { file: 3, component: "..".into() }.to_string();
        assert_eq!(msg, "unsafe path component \"..\" in file 3");
    }

    #[test]
    fn clashing_paths_refused() {
        let dup = vec![spec(&["a", "b"], 1), spec(&["a", "b"], 1)];
        assert!(matches!(
            StorageLayout::new("/r".into(), dup, 4, vec![[0; 20]]),
            Err(StorageError::PathClash { file: 1, other: 0, .. })
        ));
        let file_then_dir = vec![spec(&["a"], 1), spec(&["a", "b"], 1)];
        assert!(StorageLayout::new("/r".into(), file_then_dir, 4, vec![[0; 20]]).is_err());
        let dir_then_file = vec![spec(&["a", "b"], 1), spec(&["a"], 1)];
        assert!(StorageLayout::new("/r".into(), dir_then_file, 4, vec![[0; 20]]).is_err());
        let empty = vec![FileSpec { path: vec![], length: 1, padding: false }];
        assert!(StorageLayout::new("/r".into(), empty, 4, vec![[0; 20]]).is_err());
    }

    #[test]
    fn r_padding_files_of_equal_size_share_a_path() {
        let pad = || FileSpec { path: vec!["t".into(), ".pad".into(), "3".into()], length: 3, padding: true };
        let files = vec![spec(&["t", "a"], 1), pad(), spec(&["t", "b"], 1), pad(), spec(&["t", "c"], 4)];
        assert!(StorageLayout::new("/r".into(), files, 4, vec![[0; 20]; 3]).is_ok());
        let unsafe_pad = vec![spec(&["a"], 1), FileSpec { path: vec!["..".into()], length: 3, padding: true }];
        assert!(StorageLayout::new("/r".into(), unsafe_pad, 4, vec![[0; 20]]).is_err());
    }

    #[test]
    fn geometry_and_hash_count_checked() {
        let files = vec![spec(&["a"], 0)];
        assert!(matches!(StorageLayout::new("/r".into(), files, 4, vec![]), Err(StorageError::BadGeometry { .. })));
        let files = vec![spec(&["a"], 9)];
        assert!(matches!(
            StorageLayout::new("/r".into(), files, 4, vec![[0; 20]; 2]),
            Err(StorageError::HashCount { pieces: 3, hashes: 2 })
        ));
    }

    proptest::proptest! {
        #[test]
        fn segments_cover_range_exactly(
            lengths in proptest::collection::vec(0u64..50, 1..8),
            piece_length in 1u32..40,
        ) {
            let total: u64 = lengths.iter().sum();
            proptest::prop_assume!(total > 0);
            let l = layout(&lengths, piece_length);
            let mut expected_offset = 0u64;
            for piece in l.geometry().pieces() {
                let size = l.geometry().piece_size(piece) as u64;
                for seg in l.segments(piece, 0, size).expect("whole piece") {
                    proptest::prop_assert!(seg.length > 0);
                    proptest::prop_assert_eq!(l.file_offset(seg.file) + seg.offset, expected_offset);
                    proptest::prop_assert!(seg.offset + seg.length <= lengths[seg.file]);
                    proptest::prop_assert!(l.piece_files(piece).contains(&seg.file));
                    expected_offset += seg.length;
                }
            }
            proptest::prop_assert_eq!(expected_offset, total);
        }
    }
}
