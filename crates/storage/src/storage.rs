//! [`Storage`]: a torrent's files on disk, opened for positioned reads and writes of blocks,
//! piece verification and full re-checks.
//!
//! # Opening
//! [`Storage::open`] first inspects every path without changing anything, then opens what
//! exists, so a refused open (a symbolic link, a file longer than the torrent says, a
//! directory in the way) leaves the disk as it was. In [`OpenMode::ReadWrite`]:
//! - an existing file is opened without truncation so its data can be checked and reused; a
//!   shorter one is extended with `set_len`; a longer one is an error
//!   ([`StorageError::FileTooLong`]): Shoal never cuts user data, the user decides;
//! - a file that does not exist is not created by the open but by the first write that
//!   touches it, together with the directories leading to it, and grown to its final length
//!   with `set_len`, which makes a sparse file: no zeros are written and no blocks are
//!   allocated. Files the user chose not to download (`so=` in a magnet link, skipped file
//!   priorities) therefore never appear, with one exception: a piece shared by a chosen file
//!   and a skipped neighbour is written whole, so it leaves a partial (sparse, full-length)
//!   file of the skipped one. An empty file holds no bytes and is never written, so the open
//!   creates it;
//! - a symbolic link anywhere below the download folder (a directory or the file itself) is an
//!   error ([`StorageError::Symlink`]), so a torrent can never write outside the folder. The
//!   download folder itself may be, or sit under, a link: the user chose it. The open checks
//!   every existing path, and creating a file later checks its directories again, one
//!   component at a time. The check is a `stat` before `open`, so someone who can already
//!   write into the download folder could swap a link in between; that attacker could
//!   rewrite the data anyway.
//!
//! Until a file exists its bytes are absent: a piece touching it is simply not verified
//! ([`Storage::verify_piece`] and the checks report it missing without reading anything),
//! and reading its bytes is an error ([`StorageError::FileMissing`]).
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
//! The flags of the files that exist at open start set, so the first flush also makes durable
//! whatever an earlier run left in the page cache. [`crate::ResumeStore::save`] relies on
//! this.

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
    /// cleared by [`Storage::flush`] before syncing; set at open for every file that exists.
    /// Never set for a padding file or a file that does not exist.
    dirty: Vec<AtomicBool>,
    /// `present[i]`: file `i` exists on disk, because it existed at open or a write has
    /// created it since. Only ever goes from `false` to `true`; never set for padding files.
    present: Vec<AtomicBool>,
    /// Held while creating a file on its first write, so two writers never race to create
    /// the same file.
    create_lock: Mutex<()>,
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
        let mut present = vec![false; file_count];
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
                // Created by the first write that touches it; see the module doc.
                Found::Missing if spec.length > 0 => continue,
                Found::Missing => create_file(layout.root(), &spec.path, &path, 0, &mut made_dirs)?,
                Found::File { len } => open_existing(&path, len, spec.length, writable)?,
            };
            present[index] = true;
            handles.insert(index, file);
        }
        Ok(Self {
            dirty: present.iter().map(|&p| AtomicBool::new(p)).collect(),
            present: present.into_iter().map(AtomicBool::new).collect(),
            create_lock: Mutex::new(()),
            handles,
            mode,
            layout,
            buffers: Mutex::new(Vec::new()),
            zero_hashes: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// Closes the files kept open; they reopen when next read or written. A torrent with no
    /// peer calls this so that thousands of idle torrents hold no file descriptors.
    pub fn close_files(&self) {
        self.handles.clear();
    }

    /// Files kept open now.
    pub fn open_files(&self) -> usize {
        self.handles.open_count()
    }

    /// The layout this storage was opened with.
    pub fn layout(&self) -> &StorageLayout {
        &self.layout
    }

    /// The mode this storage was opened with.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// `true` when file `index` is on disk: it existed at open or a write has created it
    /// since. Always `false` for a padding file.
    pub fn file_exists(&self, index: usize) -> bool {
        self.present.get(index).is_some_and(|p| p.load(Ordering::Acquire))
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
            self.create_on_first_write(seg.file)?;
            let path = self.layout.file_path(seg.file);
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
    /// range must lie inside the piece. Bytes of a file that does not exist yet are an error
    /// ([`StorageError::FileMissing`]).
    pub fn read_into(&self, piece: PieceIndex, begin: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut at = 0usize;
        for seg in self.layout.segments(piece, begin, buf.len() as u64)? {
            let len = seg.length as usize;
            let spec = &self.layout.files()[seg.file];
            if spec.padding {
                buf[at..at + len].fill(0);
                at += len;
                continue;
            }
            let path = self.layout.file_path(seg.file);
            if !self.file_exists(seg.file) {
                return Err(StorageError::FileMissing { path, expected: spec.length });
            }
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

    /// The BitTorrent v2 block hashes (BEP 52 leaves) of the first `data` bytes of `piece` (its
    /// file's bytes in a v2 or hybrid torrent), read from disk.
    pub fn piece_leaves(&self, piece: PieceIndex, data: u32) -> Result<Vec<[u8; 32]>, StorageError> {
        let mut buf = vec![0u8; data as usize];
        self.read_into(piece, 0, &mut buf)?;
        Ok(shoal_proto::metainfo::v2::leaves(&buf))
    }

    /// Reads `piece` back from disk and compares its SHA-1 with the expected hash (a v2 piece:
    /// its Merkle root; a hybrid's: both). A piece
    /// touching a file that does not exist yet is not verified (`false`, nothing is read).
    pub fn verify_piece(&self, piece: PieceIndex) -> Result<bool, StorageError> {
        let geometry = self.layout.geometry();
        let expected = self.layout.piece_hash(piece).ok_or(StorageError::OutOfRange {
            piece: piece.get(),
            begin: 0,
            length: 0,
        })?;
        if self.touches_missing_file(piece) {
            return Ok(false);
        }
        if let Some(check) = self.layout.v2_check(piece) {
            let mut buf = vec![0u8; check.data as usize];
            self.read_into(piece, 0, &mut buf)?;
            let ok = check.matches(&buf);
            // A hybrid's piece must match its SHA-1 as well.
            if !ok || !self.layout.checks_sha1() {
                return Ok(ok);
            }
        }
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

    /// `true` when some byte of `piece` lies in a file that does not exist yet.
    fn touches_missing_file(&self, piece: PieceIndex) -> bool {
        let specs = self.layout.files();
        self.layout.piece_files(piece).any(|i| specs[i].length > 0 && !specs[i].padding && !self.file_exists(i))
    }

    /// Creates file `index` if it does not exist yet: the first write touching it. The
    /// directories leading to it are created (or checked, when they exist) one component at
    /// a time, refusing links, as at open. A file that appeared since the open is treated as
    /// the open would have: checked, opened without truncation and extended if short.
    fn create_on_first_write(&self, index: usize) -> Result<(), StorageError> {
        if self.file_exists(index) {
            return Ok(());
        }
        let _creating = self.create_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.file_exists(index) {
            return Ok(());
        }
        let spec = &self.layout.files()[index];
        let path = self.layout.file_path(index);
        let file = create_file(self.layout.root(), &spec.path, &path, spec.length, &mut HashSet::new())?;
        self.handles.insert(index, file);
        // After the handle is cached: a reader that sees the flag finds the file.
        self.present[index].store(true, Ordering::Release);
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

    /// Frees the reusable verification buffers (after a check: the next one allocates anew).
    fn drop_buffers(&self) {
        *self.buffers.lock().unwrap_or_else(PoisonError::into_inner) = Vec::new();
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
            Some(meta) => {
                let len = check_existing_file(&path, &meta, spec.length)?;
                if len < spec.length && mode == OpenMode::ReadOnly {
                    return Err(missing());
                }
                Found::File { len }
            }
        };
        found.push(entry);
    }
    Ok(found)
}

/// Refuses a link, anything but a regular file and a file longer than `expected`; returns
/// the file's length.
fn check_existing_file(path: &Path, meta: &std::fs::Metadata, expected: u64) -> Result<u64, StorageError> {
    if meta.file_type().is_symlink() {
        return Err(StorageError::Symlink { path: path.to_owned() });
    }
    if !meta.is_file() {
        return Err(StorageError::WrongKind { path: path.to_owned(), expected: "regular file" });
    }
    if meta.len() > expected {
        return Err(StorageError::FileTooLong { path: path.to_owned(), actual: meta.len(), expected });
    }
    Ok(meta.len())
}

/// Opens a file that passed [`check_existing_file`] without truncating it; one shorter than
/// `length` (`len` bytes now) is extended, which only happens when `writable`.
fn open_existing(path: &Path, len: u64, length: u64, writable: bool) -> Result<File, StorageError> {
    let file =
        File::options().read(true).write(writable).open(path).map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    if len < length {
        set_len(&file, path, length)?;
    }
    Ok(file)
}

/// Creates the file at `path` (`components` below `root`) and the directories leading to
/// it, sparse at `length` bytes. Should the file exist after all (it appeared since the
/// inspection), it is checked and opened like an existing one.
fn create_file(
    root: &Path,
    components: &[String],
    path: &Path,
    length: u64,
    made_dirs: &mut HashSet<PathBuf>,
) -> Result<File, StorageError> {
    create_parents(root, components, made_dirs)?;
    match File::options().read(true).write(true).create_new(true).open(path) {
        Ok(file) => {
            set_len(&file, path, length)?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = stat(path)?.ok_or_else(|| StorageError::io(IoOp::Create, path, e))?;
            let len = check_existing_file(path, &meta, length)?;
            open_existing(path, len, length, true)
        }
        Err(e) => Err(StorageError::io(IoOp::Create, path, e)),
    }
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

    #[test]
    fn a_check_keeps_no_read_buffer_once_done() {
        use sha1::{Digest, Sha1};
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..4 * 16_384u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("a.bin"), &data).expect("write");
        let hashes = data.chunks(16_384).map(|c| Sha1::digest(c).into()).collect();
        let files = vec![crate::FileSpec { path: vec!["a.bin".into()], length: data.len() as u64, padding: false }];
        let layout = StorageLayout::new(dir.path().to_owned(), files, 16_384, hashes).expect("layout");
        let storage = Storage::open(layout, OpenMode::ReadWrite).expect("open");
        assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true; 4]);
        assert!(storage.buffers.lock().expect("lock").is_empty(), "a buffer was kept after the check");
        // A single piece checked later (a download's piece hashed from disk) may keep one.
        assert!(storage.verify_piece(PieceIndex::new_unchecked(2)).expect("verify"));
        assert_eq!(storage.buffers.lock().expect("lock").len(), 1);
    }
}
