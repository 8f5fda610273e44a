//! [`Storage`]: a torrent's files on disk, opened for positioned reads and writes of blocks,
//! piece verification and full re-checks.
//!
//! # Opening
//! [`Storage::open`] first inspects every path without changing anything, then creates what
//! is missing, so a refused open (a symbolic link, a file longer than the torrent says, a
//! directory in the way) leaves the disk as it was. In [`OpenMode::ReadWrite`]:
//! - missing directories and files are created; every file is grown to its final length with
//!   `set_len`, which makes a sparse file: no zeros are written and no blocks are allocated;
//! - an existing file is opened without truncation so its data can be checked and reused; a
//!   shorter one is extended with `set_len`; a longer one is an error
//!   ([`StorageError::FileTooLong`]): Shoal never cuts user data, the user decides;
//! - a symbolic link anywhere below the download folder (a directory or the file itself) is an
//!   error ([`StorageError::Symlink`]), so a torrent can never write outside the folder. The
//!   download folder itself may be, or sit under, a link: the user chose it. The check is a
//!   `stat` before `open`, so someone who can already write into the download folder could
//!   swap a link in between; that attacker could rewrite the data anyway.
//!
//! [`OpenMode::ReadOnly`] (seeding, checking) creates nothing and requires every file to
//! exist with exactly its length.
//!
//! # Padding files
//! BEP 47 padding files ([`crate::FileSpec::padding`]) are virtual in both modes: they are
//! never created, opened or even looked at, so seeding data that already sits in the user's
//! folder needs no `.pad/` folder there and downloading leaves none behind. Reads of their
//! ranges return zeros (what BEP 47 says they hold, so piece hashes still match) and writes
//! to them are dropped.
//!
//! # Threads
//! `Storage` is `Send + Sync` and every I/O method takes `&self`: reads and writes use
//! `pread`/`pwrite` on shared handles from a bounded cache (see `handles`), so the engine can
//! run many of them at once on blocking threads. Writes to one byte range from two threads at
//! once are the caller's business (the swarm layer never assigns one block twice to disk).
//!
//! # Durability bookkeeping
//! Each file has a `dirty` flag, set after a write completes and cleared by
//! [`Storage::flush`] just before it `fsync`s the file. Setting it *after* the write means a
//! flush racing a write either sees the flag (and syncs) or the next flush will; setting it
//! before could let a flush clear the flag, sync, and then miss the write that lands after.
//! All flags start set, so the first flush also makes durable whatever an earlier run left in
//! the page cache. [`crate::ResumeStore::save`] relies on this.

mod check;
mod handles;

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use shoal_proto::{BlockRange, PieceIndex};

use crate::error::{IoOp, StorageError};
use crate::hash::{PieceHasher, zero_hash};
use crate::layout::StorageLayout;
use handles::HandleCache;

/// Default bound on open file handles per [`Storage`].
pub const DEFAULT_MAX_OPEN_FILES: usize = 64;

/// Largest read made while verifying a piece; longer pieces are hashed in chunks.
const VERIFY_CHUNK: u32 = 1 << 20;

/// How [`Storage::open`] treats the download folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create what is missing, extend short files, allow writes (downloading).
    ReadWrite,
    /// Create nothing, require every file at its exact length, refuse writes (seeding a
    /// finished download or content just hashed by `shoal create`).
    ReadOnly,
}

/// A torrent's content on disk. See the module doc.
#[derive(Debug)]
pub struct Storage {
    layout: StorageLayout,
    mode: OpenMode,
    handles: HandleCache,
    /// `dirty[i]`: file `i` may hold data not yet `fsync`ed. Set after each write completes,
    /// cleared by [`Storage::flush`] before syncing; all set at open except padding files',
    /// which are never set.
    dirty: Vec<AtomicBool>,
    /// `fresh[i]`: this open created file `i` and nothing has been written to it since, so
    /// its bytes are holes and a check need not read them.
    fresh: Vec<AtomicBool>,
    /// Reusable verification buffers of `VERIFY_CHUNK.min(piece_length)` bytes.
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Hash of an all-zero piece of the nominal length and of the last piece's length.
    zero_hashes: [OnceLock<[u8; 20]>; 2],
}

/// What the inspection pass found at a file's path.
enum Found {
    /// A padding file: not looked for.
    Padding,
    Missing,
    File {
        len: u64,
    },
}

impl Storage {
    /// Opens (and in [`OpenMode::ReadWrite`], creates) every file of `layout`, keeping at most
    /// [`DEFAULT_MAX_OPEN_FILES`] handles open.
    pub fn open(layout: StorageLayout, mode: OpenMode) -> Result<Self, StorageError> {
        Self::open_with_limit(layout, mode, DEFAULT_MAX_OPEN_FILES)
    }

    /// Like [`Storage::open`], with an explicit bound on open file handles (at least 1).
    pub fn open_with_limit(layout: StorageLayout, mode: OpenMode, max_open_files: usize) -> Result<Self, StorageError> {
        let writable = mode == OpenMode::ReadWrite;
        let found = inspect(&layout, mode)?;
        let file_count = layout.files().len();
        let handles = HandleCache::new(file_count, max_open_files, writable);
        let fresh: Vec<AtomicBool> = (0..file_count).map(|_| AtomicBool::new(false)).collect();
        if writable {
            let root = layout.root();
            std::fs::create_dir_all(root).map_err(|e| StorageError::io(IoOp::Create, root, e))?;
        }
        let mut made_dirs = HashSet::new();
        for (index, found) in found.into_iter().enumerate() {
            let spec = &layout.files()[index];
            let path = layout.file_path(index);
            let file = match found {
                Found::Padding => continue,
                Found::Missing => {
                    create_parents(layout.root(), &spec.path, &mut made_dirs)?;
                    let file = File::options()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| StorageError::io(IoOp::Create, &path, e))?;
                    fresh[index].store(true, Ordering::Relaxed);
                    set_len(&file, &path, spec.length)?;
                    file
                }
                Found::File { len } => {
                    let file = File::options()
                        .read(true)
                        .write(writable)
                        .open(&path)
                        .map_err(|e| StorageError::io(IoOp::Open, &path, e))?;
                    if len < spec.length {
                        set_len(&file, &path, spec.length)?;
                    }
                    file
                }
            };
            handles.insert(index, file);
        }
        Ok(Self {
            dirty: layout.files().iter().map(|f| AtomicBool::new(!f.padding)).collect(),
            fresh,
            handles,
            mode,
            layout,
            buffers: Mutex::new(Vec::new()),
            zero_hashes: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// The layout this storage was opened with.
    pub fn layout(&self) -> &StorageLayout {
        &self.layout
    }

    /// The mode this storage was opened with.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// `true` when this open created file `index` and nothing has been written to it since.
    pub fn is_untouched_new_file(&self, index: usize) -> bool {
        self.fresh.get(index).is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Writes one block (which may span files). `data` must be exactly the block's length.
    pub fn write_block(&self, block: BlockRange, data: &[u8]) -> Result<(), StorageError> {
        if data.len() != block.length as usize {
            return Err(StorageError::DataLength { expected: block.length, actual: data.len() });
        }
        self.write_at(block.piece, block.begin, data)
    }

    /// Writes `data` at offset `begin` inside `piece`; the range must lie inside the piece.
    pub fn write_at(&self, piece: PieceIndex, begin: u32, data: &[u8]) -> Result<(), StorageError> {
        if self.mode == OpenMode::ReadOnly {
            return Err(StorageError::ReadOnly);
        }
        let mut at = 0usize;
        for seg in self.layout.segments(piece, begin, data.len() as u64)? {
            let len = seg.length as usize;
            if self.layout.files()[seg.file].padding {
                at += len;
                continue;
            }
            let path = self.layout.file_path(seg.file);
            self.fresh[seg.file].store(false, Ordering::Relaxed);
            let file = self.handles.get(seg.file, &path)?;
            file.write_all_at(&data[at..at + len], seg.offset).map_err(|e| StorageError::io(IoOp::Write, &path, e))?;
            // After the write: see "Durability bookkeeping" in the module doc.
            self.dirty[seg.file].store(true, Ordering::Release);
            at += len;
        }
        Ok(())
    }

    /// Reads one block into a new buffer.
    pub fn read_block(&self, block: BlockRange) -> Result<Bytes, StorageError> {
        let mut buf = vec![0u8; block.length as usize];
        self.read_into(block.piece, block.begin, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Fills `buf` with the bytes at offset `begin` inside `piece`, without allocating; the
    /// range must lie inside the piece.
    pub fn read_into(&self, piece: PieceIndex, begin: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut at = 0usize;
        for seg in self.layout.segments(piece, begin, buf.len() as u64)? {
            let len = seg.length as usize;
            if self.layout.files()[seg.file].padding {
                buf[at..at + len].fill(0);
                at += len;
                continue;
            }
            let path = self.layout.file_path(seg.file);
            let file = self.handles.get(seg.file, &path)?;
            file.read_exact_at(&mut buf[at..at + len], seg.offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    StorageError::Truncated { path: path.clone(), offset: seg.offset + seg.length }
                } else {
                    StorageError::io(IoOp::Read, &path, e)
                }
            })?;
            at += len;
        }
        Ok(())
    }

    /// Reads `piece` back from disk and compares its SHA-1 with the expected hash.
    pub fn verify_piece(&self, piece: PieceIndex) -> Result<bool, StorageError> {
        let geometry = self.layout.geometry();
        let expected = self.layout.piece_hash(piece).ok_or(StorageError::OutOfRange {
            piece: piece.get(),
            begin: 0,
            length: 0,
        })?;
        let size = geometry.piece_size(piece);
        let mut buf = self.take_buffer();
        let mut hasher = PieceHasher::new();
        let mut pos = 0u32;
        let result = loop {
            if pos >= size {
                break Ok(());
            }
            let n = (size - pos).min(buf.len() as u32);
            let chunk = &mut buf[..n as usize];
            if let Err(e) = self.read_into(piece, pos, chunk) {
                break Err(e);
            }
            hasher.update(chunk);
            pos += n;
        };
        self.put_buffer(buf);
        result?;
        let is_last = piece.get() + 1 == geometry.piece_count();
        let slot = &self.zero_hashes[usize::from(is_last)];
        let actual = hasher.finish(|| *slot.get_or_init(|| zero_hash(size as u64)));
        Ok(actual == *expected)
    }

    /// `fsync`s every file written since the last flush (all files on the first flush), so
    /// every completed write is on stable storage when this returns. Uses `sync_all` rather
    /// than `sync_data` so the files' modification times, which resume data records, are
    /// durable too.
    pub fn flush(&self) -> Result<(), StorageError> {
        for (index, dirty) in self.dirty.iter().enumerate() {
            if !dirty.swap(false, Ordering::Acquire) {
                continue;
            }
            let path = self.layout.file_path(index);
            let synced = self
                .handles
                .get(index, &path)
                .and_then(|f| f.sync_all().map_err(|e| StorageError::io(IoOp::Sync, &path, e)));
            if let Err(e) = synced {
                dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    fn take_buffer(&self) -> Vec<u8> {
        let pooled = self.buffers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        pooled.unwrap_or_else(|| vec![0u8; self.layout.geometry().piece_length().min(VERIFY_CHUNK) as usize])
    }

    fn put_buffer(&self, buf: Vec<u8>) {
        let mut pool = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 8 {
            pool.push(buf);
        }
    }
}

/// Pass 1 of opening: looks at every path (and the directories leading to it) without
/// changing anything; refuses links, wrong kinds, over-long files and, read-only, anything
/// missing or short. Padding files are skipped.
fn inspect(layout: &StorageLayout, mode: OpenMode) -> Result<Vec<Found>, StorageError> {
    let mut seen_dirs: HashSet<PathBuf> = HashSet::new();
    let mut found = Vec::with_capacity(layout.files().len());
    for (index, spec) in layout.files().iter().enumerate() {
        if spec.padding {
            found.push(Found::Padding);
            continue;
        }
        let path = layout.file_path(index);
        let missing = || StorageError::FileMissing { path: path.clone(), expected: spec.length };
        let mut dir = layout.root().to_path_buf();
        let mut parents_exist = true;
        for component in &spec.path[..spec.path.len() - 1] {
            dir.push(component);
            if seen_dirs.contains(&dir) {
                continue;
            }
            match stat(&dir)? {
                None => {
                    parents_exist = false;
                    break;
                }
                Some(meta) if meta.file_type().is_symlink() => {
                    return Err(StorageError::Symlink { path: dir });
                }
                Some(meta) if !meta.is_dir() => {
                    return Err(StorageError::WrongKind { path: dir, expected: "directory" });
                }
                Some(_) => {
                    seen_dirs.insert(dir.clone());
                }
            }
        }
        let meta = if parents_exist { stat(&path)? } else { None };
        let entry = match meta {
            None if mode == OpenMode::ReadOnly => return Err(missing()),
            None => Found::Missing,
            Some(meta) if meta.file_type().is_symlink() => {
                return Err(StorageError::Symlink { path });
            }
            Some(meta) if !meta.is_file() => {
                return Err(StorageError::WrongKind { path, expected: "regular file" });
            }
            Some(meta) if meta.len() > spec.length => {
                return Err(StorageError::FileTooLong { path, actual: meta.len(), expected: spec.length });
            }
            Some(meta) if meta.len() < spec.length && mode == OpenMode::ReadOnly => {
                return Err(missing());
            }
            Some(meta) => Found::File { len: meta.len() },
        };
        found.push(entry);
    }
    Ok(found)
}

/// `lstat`, with "not found" as `None`.
fn stat(path: &Path) -> Result<Option<std::fs::Metadata>, StorageError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(IoOp::Stat, path, e)),
    }
}

/// Creates the directories leading to a file, one component at a time, refusing links.
fn create_parents(root: &Path, components: &[String], made: &mut HashSet<PathBuf>) -> Result<(), StorageError> {
    let mut dir = root.to_path_buf();
    for component in &components[..components.len().saturating_sub(1)] {
        dir.push(component);
        if made.contains(&dir) {
            continue;
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = stat(&dir)?;
                if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
                    return Err(StorageError::Symlink { path: dir });
                }
                if !meta.is_some_and(|m| m.is_dir()) {
                    return Err(StorageError::WrongKind { path: dir, expected: "directory" });
                }
            }
            Err(e) => return Err(StorageError::io(IoOp::Create, &dir, e)),
        }
        made.insert(dir.clone());
    }
    Ok(())
}

fn set_len(file: &File, path: &Path, len: u64) -> Result<(), StorageError> {
    file.set_len(len).map_err(|e| StorageError::io(IoOp::Resize, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Storage>();
    }
}
