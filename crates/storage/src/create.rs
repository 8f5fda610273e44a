//! Content hashing for `shoal create`: find the files to share ([`scan_path`]) and compute
//! their piece hashes ([`hash_pieces`]).
//!
//! # Scanning
//! The path given is resolved (following links: the user named it). A directory is walked
//! recursively; each directory's entries are taken in byte order of their names, depth
//! first, so the file order is the same on every machine. Symbolic links inside are *not*
//! followed and are left out, as are sockets, FIFOs and devices; they are listed in
//! [`Scanned::skipped`] so the caller can say so. Hidden files are included. Empty
//! directories cannot be expressed in a torrent and vanish. Names must be valid UTF-8 and
//! safe as torrent path components.
//!
//! # Hashing
//! The piece range is cut into batches of consecutive pieces (about 8 MiB each) that a few
//! threads take in turn, each reading its batch with 4 MiB positioned reads streamed across
//! file boundaries and hashing as it goes. Neighbouring batches keep the threads reading
//! close to each other, which suits spinning disks, while two cores double the SHA-1
//! throughput on cached or fast storage (about 3 GB/s from the page cache on the 2-core
//! development machine, see `examples/hash_speed.rs`).

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use sha1::{Digest, Sha1};
use shoal_proto::{Layout, PieceIndex};

use crate::error::{IoOp, StorageError};
use crate::layout::{FileMap, FileSpec, component_is_safe};
use crate::pool::{self, FirstError};

/// Approximate size of one batch of pieces handed to a hashing thread.
const BATCH_BYTES: u64 = 8 << 20;

/// Size of each read while hashing.
const CHUNK_BYTES: u64 = 4 << 20;

/// What [`scan_path`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// Torrent name: the last component of the scanned path.
    pub name: String,
    /// Files in torrent order. For a directory, paths are relative to it (the metainfo
    /// `files` list); for a single file, the one path is `[name]`.
    pub files: Vec<FileSpec>,
    /// `true` for a directory (a multi-file torrent).
    pub is_dir: bool,
    /// The folder holding the scanned file or directory: pass it as the root to
    /// [`hash_pieces`] and to a `StorageLayout` for seeding.
    pub parent: PathBuf,
    /// Entries left out: symbolic links and special files.
    pub skipped: Vec<PathBuf>,
}

impl Scanned {
    /// Sum of all file lengths.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// The files relative to [`Scanned::parent`], as a `StorageLayout` wants them: for a
    /// directory each path gains the name as its first component.
    pub fn storage_files(&self) -> Vec<FileSpec> {
        if !self.is_dir {
            return self.files.clone();
        }
        let prefixed = |f: &FileSpec| {
            let path = std::iter::once(self.name.clone()).chain(f.path.iter().cloned());
            FileSpec { path: path.collect(), length: f.length, padding: f.padding }
        };
        self.files.iter().map(prefixed).collect()
    }
}

impl Scanned {
    /// The files with a BEP 47 padding file (`.pad/N`, attribute `p`) after every one that does
    /// not end on a piece boundary, the last excepted: a hybrid torrent's v1 layout, where each
    /// file starts a piece as in v2.
    pub fn padded(&self, piece_length: u32) -> Scanned {
        let pl = u64::from(piece_length);
        let mut files = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            files.push(f.clone());
            let pad = (pl - f.length % pl) % pl;
            if pad > 0 && i + 1 < self.files.len() {
                files.push(FileSpec { path: vec![".pad".into(), pad.to_string()], length: pad, padding: true });
            }
        }
        Scanned { files, ..self.clone() }
    }
}

/// BitTorrent v2 hashes of every file (BEP 52): its `pieces root` and, for a file larger than
/// one piece, its piece layer. Reads each file once, in order; `progress` gets byte counts.
pub fn hash_v2_files(
    root: &Path,
    scanned: &Scanned,
    piece_length: u32,
    mut progress: impl FnMut(u64),
) -> Result<Vec<shoal_proto::metainfo::FileHashes>, StorageError> {
    use shoal_proto::metainfo::v2::{BLOCK, leaf, root as merkle_root, root_from_layer};
    let pl = u64::from(piece_length);
    let per_piece = (pl / BLOCK as u64).max(1) as usize;
    let mut out = Vec::new();
    let mut buf = vec![0u8; BLOCK];
    for spec in scanned.storage_files().iter().filter(|f| !f.padding) {
        if spec.length == 0 {
            out.push(shoal_proto::metainfo::FileHashes { root: None, layer: Vec::new() });
            continue;
        }
        let mut path = root.to_path_buf();
        path.extend(&spec.path);
        let file = File::open(&path).map_err(|e| StorageError::io(IoOp::Open, &path, e))?;
        let (mut leaves, mut layer) = (Vec::with_capacity(per_piece), Vec::new());
        let mut offset = 0u64;
        while offset < spec.length {
            let n = (spec.length - offset).min(BLOCK as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    StorageError::Truncated { path: path.clone(), offset: offset + n as u64 }
                } else {
                    StorageError::io(IoOp::Read, &path, e)
                }
            })?;
            leaves.push(leaf(&buf[..n]));
            offset += n as u64;
            progress(n as u64);
            if leaves.len() == per_piece || offset == spec.length {
                layer.push(merkle_root(&leaves, per_piece, [0u8; 32]));
                leaves.clear();
            }
        }
        let hashes = if spec.length > pl {
            shoal_proto::metainfo::FileHashes { root: Some(root_from_layer(&layer, spec.length, pl)), layer }
        } else {
            // One piece: the file's root is its own tree, as wide as its blocks need.
            let mut leaves = Vec::new();
            let mut offset = 0u64;
            while offset < spec.length {
                let n = (spec.length - offset).min(BLOCK as u64) as usize;
                file.read_exact_at(&mut buf[..n], offset).map_err(|e| StorageError::io(IoOp::Read, &path, e))?;
                leaves.push(leaf(&buf[..n]));
                offset += n as u64;
            }
            let width = leaves.len().next_power_of_two();
            shoal_proto::metainfo::FileHashes { root: Some(merkle_root(&leaves, width, [0u8; 32])), layer: Vec::new() }
        };
        out.push(hashes);
    }
    Ok(out)
}

/// Finds the files to share at `path`. See the module doc for the rules.
pub fn scan_path(path: &Path) -> Result<Scanned, StorageError> {
    let full = std::fs::canonicalize(path).map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    let nothing = || StorageError::NothingToShare { path: path.to_owned() };
    let (Some(name), Some(parent)) = (full.file_name(), full.parent()) else {
        return Err(nothing());
    };
    let name = utf8_name(name, &full)?;
    let meta = std::fs::metadata(&full).map_err(|e| StorageError::io(IoOp::Stat, &full, e))?;
    let mut scanned = Scanned {
        name: name.clone(),
        files: Vec::new(),
        is_dir: meta.is_dir(),
        parent: parent.to_owned(),
        skipped: Vec::new(),
    };
    if meta.is_file() {
        scanned.files.push(FileSpec { path: vec![name], length: meta.len(), padding: false });
    } else if meta.is_dir() {
        walk(&full, &mut Vec::new(), &mut scanned)?;
    } else {
        return Err(StorageError::WrongKind { path: full, expected: "regular file" });
    }
    if scanned.total_length() == 0 {
        return Err(nothing());
    }
    Ok(scanned)
}

fn utf8_name(name: &std::ffi::OsStr, full: &Path) -> Result<String, StorageError> {
    name.to_str().map(str::to_owned).ok_or_else(|| StorageError::NonUtf8Name { path: full.into() })
}

/// Appends the files below `dir` (whose path relative to the scanned folder is `prefix`).
fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Scanned) -> Result<(), StorageError> {
    let list_err = |e| StorageError::io(IoOp::List, dir, e);
    let mut entries = std::fs::read_dir(dir).map_err(list_err)?.collect::<io::Result<Vec<_>>>().map_err(list_err)?;
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StorageError::io(IoOp::Stat, &path, e))?;
        if kind.is_symlink() || !(kind.is_dir() || kind.is_file()) {
            out.skipped.push(path);
            continue;
        }
        let name = utf8_name(&entry.file_name(), &path)?;
        if !component_is_safe(&name) {
            return Err(StorageError::UnsafeComponent { file: out.files.len(), component: name });
        }
        prefix.push(name);
        if kind.is_dir() {
            walk(&path, prefix, out)?;
        } else {
            let meta = entry.metadata().map_err(|e| StorageError::io(IoOp::Stat, &path, e))?;
            out.files.push(FileSpec { path: prefix.clone(), length: meta.len(), padding: false });
        }
        prefix.pop();
    }
    Ok(())
}

/// Computes the SHA-1 of every piece of `scanned`'s content, read from under `root`
/// (normally [`Scanned::parent`]), with pieces of `piece_length` bytes. `progress` receives
/// the number of bytes hashed so far. Fails if a file changed length since the scan.
pub fn hash_pieces(
    root: &Path,
    scanned: &Scanned,
    piece_length: u32,
    mut progress: impl FnMut(u64),
) -> Result<Vec<[u8; 20]>, StorageError> {
    let files = scanned.storage_files();
    let total = scanned.total_length();
    let bad = || StorageError::BadGeometry { total_length: total, piece_length };
    let map = FileMap::new(files.iter().map(|f| f.length)).ok_or_else(bad)?;
    let geometry = Layout::new(total, piece_length).ok_or_else(bad)?;
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let mut path = root.to_path_buf();
            path.extend(&f.path);
            path
        })
        .collect();
    let content = Content { paths: &paths, specs: &files, map: &map };

    let per_batch = BATCH_BYTES.div_ceil(piece_length as u64).max(1) as u32;
    let batches = geometry.piece_count().div_ceil(per_batch) as usize;
    let hashes = Mutex::new(vec![[0u8; 20]; geometry.piece_count() as usize]);
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let error = FirstError::new();
    let work = |tick: &mut dyn FnMut()| {
        let mut reader = Reader { content, open: None };
        let mut buf = vec![0u8; CHUNK_BYTES.min(total) as usize];
        let mut out = Vec::with_capacity(per_batch as usize);
        while !error.failed() {
            let batch = next.fetch_add(1, Ordering::Relaxed);
            if batch >= batches {
                break;
            }
            let first = batch as u32 * per_batch;
            let end = (first + per_batch).min(geometry.piece_count());
            out.clear();
            let hashed = hash_batch(&geometry, first..end, &mut reader, &mut buf, &mut out, |n| {
                done.fetch_add(n, Ordering::Relaxed);
                tick();
            });
            match hashed {
                Ok(()) => {
                    let mut all = hashes.lock().unwrap_or_else(PoisonError::into_inner);
                    all[first as usize..end as usize].copy_from_slice(&out);
                }
                Err(e) => error.set(e),
            }
        }
    };
    pool::run(pool::thread_count(batches), work, || progress(done.load(Ordering::Relaxed)));
    error.into_result()?;
    progress(total);
    Ok(hashes.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// The files being hashed.
#[derive(Clone, Copy)]
struct Content<'a> {
    paths: &'a [PathBuf],
    specs: &'a [FileSpec],
    map: &'a FileMap,
}

/// One thread's view of the content: reads byte ranges across files, keeping the current
/// file open.
struct Reader<'a> {
    content: Content<'a>,
    open: Option<(usize, File)>,
}

impl Reader<'_> {
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut at = 0usize;
        for seg in self.content.map.segments(offset, buf.len() as u64) {
            if self.content.specs[seg.file].padding {
                // BEP 47: a padding file holds zeros and is nowhere on disk.
                buf[at..at + seg.length as usize].fill(0);
                at += seg.length as usize;
                continue;
            }
            let path = &self.content.paths[seg.file];
            let file = match &self.open {
                Some((index, file)) if *index == seg.file => file,
                _ => {
                    let file = File::open(path).map_err(|e| StorageError::io(IoOp::Open, path, e))?;
                    let len = file.metadata().map_err(|e| StorageError::io(IoOp::Stat, path, e))?.len();
                    let expected = self.content.specs[seg.file].length;
                    if len > expected {
                        let path = path.clone();
                        return Err(StorageError::FileTooLong { path, actual: len, expected });
                    }
                    &self.open.insert((seg.file, file)).1
                }
            };
            let len = seg.length as usize;
            file.read_exact_at(&mut buf[at..at + len], seg.offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    StorageError::Truncated { path: path.clone(), offset: seg.offset + seg.length }
                } else {
                    StorageError::io(IoOp::Read, path, e)
                }
            })?;
            at += len;
        }
        Ok(())
    }
}

/// Hashes pieces `range` into `out`, reading `buf.len()` bytes at a time and calling
/// `tick` with the byte count after each read.
fn hash_batch(
    geometry: &Layout,
    range: std::ops::Range<u32>,
    reader: &mut Reader<'_>,
    buf: &mut [u8],
    out: &mut Vec<[u8; 20]>,
    mut tick: impl FnMut(u64),
) -> Result<(), StorageError> {
    let size = |p: u32| geometry.piece_size(PieceIndex::new_unchecked(p)) as u64;
    let start = geometry.piece_offset(PieceIndex::new_unchecked(range.start));
    let end = geometry.piece_offset(PieceIndex::new_unchecked(range.end - 1)) + size(range.end - 1);
    let mut hasher = Sha1::new();
    let mut piece = range.start;
    let mut piece_left = size(piece);
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        reader.read(pos, &mut buf[..n])?;
        let mut data = &buf[..n];
        while !data.is_empty() {
            let take = data.len().min(piece_left as usize);
            hasher.update(&data[..take]);
            data = &data[take..];
            piece_left -= take as u64;
            if piece_left == 0 {
                out.push(hasher.finalize_reset().into());
                piece += 1;
                if piece < range.end {
                    piece_left = size(piece);
                }
            }
        }
        pos += n as u64;
        tick(n as u64);
    }
    Ok(())
}
