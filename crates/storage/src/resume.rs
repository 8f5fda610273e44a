//! Durable resume data: which pieces are verified on disk, so a restart (including one after
//! `kill -9` or a power cut) continues without re-hashing or re-fetching them.
//!
//! # Format (version 1, integers little-endian)
//! ```text
//! magic        8   "SHOALRES"
//! version      4   1
//! fingerprint 20   SHA-1 of the layout: piece length and count, every path and length,
//!                  every expected piece hash (a file from another torrent never matches)
//! piece_length 4
//! piece_count  4
//! file_count   8
//! per file    20   length u64, mtime seconds i64, mtime nanoseconds u32; a file that is
//!                  not on disk (a BEP 47 padding file, or a file no write has created
//!                  yet) has its torrent length and mtime seconds i64::MIN
//! bitfield     ⌈piece_count / 8⌉, piece 0 in the high bit of byte 0 (as BEP 3)
//! checksum    20   SHA-1 of every byte above
//! ```
//! A file with the wrong size, magic, version, checksum or fingerprint is ignored as a whole
//! ([`ResumeStore::load`] returns `None`) and the caller re-checks everything.
//!
//! # Crash safety
//! [`ResumeStore::save`] runs in this order:
//! 1. [`Storage::flush`]: `fsync` every file written since the last save (every file on the
//!    first save). The data of every piece in `verified` was written before it was verified,
//!    so it is now on stable storage.
//! 2. Record each file's length and modification time (after the flush, so they describe the
//!    durable state).
//! 3. Write the resume file under a temporary name, `fsync` it, `rename` it over the old one
//!    and `fsync` the directory. A crash at any point leaves either the old file or the new
//!    one, never a mix; a torn temporary file is never read, and a torn final file (a
//!    filesystem that broke the rename promise) fails the checksum.
//!
//! Hence every piece a loaded resume file marks as verified had its bytes durable before the
//! file existed. Pieces verified after the last save are simply absent from it: the caller
//! re-checks every piece the resume data does not vouch for ([`Storage::check_pieces`]) and
//! fetches what fails, so nothing verified is ever fetched twice, and nothing unverified is
//! ever trusted.
//!
//! # Files changed behind Shoal's back
//! On load, each file's current length and modification time are compared with the recorded
//! ones. A file that differs lost its vouchers: every piece touching it is dropped from the
//! result (and so re-checked by the caller), while pieces in unchanged files stay trusted.
//! Shoal's own writes after the last save also change a file's time, so after a crash the
//! files that were being downloaded are re-checked, and the finished ones are not. A clean
//! shutdown saves after the last write, so nothing is re-checked. The comparison cannot see
//! a modification that keeps the length and lands within the same filesystem timestamp tick
//! as the save (a few milliseconds at worst); that is the usual limit of mtime-based resume.
//! Padding files are never on disk, so they are never compared (a record written before
//! Shoal made them virtual, holding the stamp of a real `.pad` file, still loads).
//!
//! A file that is not on disk at load vouches for nothing: every piece touching it is
//! dropped. It counts as changed only when it was on disk at the save; a file that was not
//! created then and still is not (one the user skipped) is not a change. A file created
//! after the save counts as changed, which costs nothing: no piece touching it could have
//! been verified at the save.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha1::{Digest, Sha1};

use crate::error::{IoOp, StorageError};
use crate::layout::StorageLayout;
use crate::storage::Storage;

const MAGIC: &[u8; 8] = b"SHOALRES";
const VERSION: u32 = 1;
/// Bytes before the per-file records.
const HEADER_LEN: usize = 8 + 4 + 20 + 4 + 4 + 8;
/// Bytes per file record.
const FILE_RECORD_LEN: usize = 8 + 8 + 4;

/// Reads and writes one torrent's resume data: a file of its own, or records kept elsewhere
/// (a [`ResumeBackend`], such as the daemon's database). Saves are serialised by an internal
/// lock.
#[derive(Debug)]
pub struct ResumeStore {
    path: PathBuf,
    backend: Option<std::sync::Arc<dyn ResumeBackend>>,
    save_lock: Mutex<()>,
}

/// One torrent's resume record as a [`ResumeBackend`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRecord {
    /// [`StorageLayout::fingerprint`] of the content it describes.
    pub fingerprint: [u8; 20],
    /// Per piece: verified when saved.
    pub verified: Vec<bool>,
    /// Length and modification time of each file when saved, in layout order.
    pub files: Vec<FileStamp>,
}

/// Length and modification time of one file, as recorded at a save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub length: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime_secs: i64,
    /// Nanoseconds past `mtime_secs`.
    pub mtime_nanos: u32,
}

/// Somewhere other than a file that keeps a torrent's resume record. `save` must be durable
/// when it returns (the data files were flushed before it is called).
pub trait ResumeBackend: Send + Sync + std::fmt::Debug {
    /// The record last saved, if any.
    fn load(&self) -> io::Result<Option<ResumeRecord>>;
    /// Replaces the record.
    fn save(&self, record: &ResumeRecord) -> io::Result<()>;
    /// Forgets the record.
    fn remove(&self) -> io::Result<()>;
}

/// Why a resume file was not used.
#[derive(Debug, thiserror::Error)]
pub enum ResumeRejected {
    /// There is no resume file (first start, or it was removed).
    #[error("no resume file")]
    Missing,
    /// The resume file exists but could not be read.
    #[error("cannot read resume file: {0}")]
    Unreadable(#[source] io::Error),
    /// Wrong size, magic or checksum: a torn write or not a resume file.
    #[error("resume file is corrupt")]
    Corrupt,
    /// Written by a different format version.
    #[error("resume file has unsupported version {0}")]
    Version(u32),
    /// Intact, but describes different content (another torrent or other files).
    #[error("resume file belongs to other content")]
    Foreign,
}

/// A resume file that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    /// Per piece: verified at the last save and its files unchanged since.
    pub verified: Vec<bool>,
    /// Indices of files whose length or modification time differs from the recorded ones;
    /// their pieces are not in `verified`.
    pub changed_files: Vec<usize>,
}

/// Length and modification time of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    length: u64,
    mtime_secs: i64,
    mtime_nanos: u32,
}

impl Stamp {
    /// The record of a file of `length` bytes that is not on disk: mtime seconds `i64::MIN`,
    /// which no real file has, so it never equals a file's current stamp. The length is the
    /// torrent's, so the length checks of older readers still accept it.
    fn not_on_disk(length: u64) -> Self {
        Stamp { length, mtime_secs: i64::MIN, mtime_nanos: 0 }
    }

    /// `true` for a record made by [`Stamp::not_on_disk`].
    fn is_not_on_disk(&self) -> bool {
        self.mtime_secs == i64::MIN
    }
}

impl ResumeStore {
    /// A store for the resume file at `path` (the caller chooses; see
    /// [`ResumeStore::default_path`]).
    pub fn new(path: PathBuf) -> Self {
        Self { path, backend: None, save_lock: Mutex::new(()) }
    }

    /// A store whose records live in `backend`; `name` names it in messages.
    pub fn with_backend(name: PathBuf, backend: std::sync::Arc<dyn ResumeBackend>) -> Self {
        Self { path: name, backend: Some(backend), save_lock: Mutex::new(()) }
    }

    /// `<root>/.shoal/<id>.resume`, where `id` is the torrent's info-hash as 40 (v1) or 64
    /// (v2) hex digits, lower-cased here. Note that a torrent whose own top-level name is
    /// `.shoal` would share that folder; the caller may pick another path.
    pub fn default_path(root: &Path, id_hex: &str) -> Result<PathBuf, StorageError> {
        let ok_len = id_hex.len() == 40 || id_hex.len() == 64;
        if !ok_len || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::BadId(id_hex.to_owned()));
        }
        Ok(root.join(".shoal").join(format!("{}.resume", id_hex.to_ascii_lowercase())))
    }

    /// The resume file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The verified pieces recorded for `layout`, or `None` when the file is missing, torn,
    /// foreign or of another version (then the caller checks everything). Pieces touching
    /// files changed since the save are left out. See the module doc.
    pub fn load(&self, layout: &StorageLayout) -> Option<Vec<bool>> {
        self.load_explained(layout).ok().map(|data| data.verified)
    }

    /// Like [`ResumeStore::load`], saying why a file was refused and which files changed.
    pub fn load_explained(&self, layout: &StorageLayout) -> Result<ResumeData, ResumeRejected> {
        let (stamps, mut verified) = match &self.backend {
            Some(backend) => {
                let record = backend.load().map_err(ResumeRejected::Unreadable)?.ok_or(ResumeRejected::Missing)?;
                from_record(record, layout)?
            }
            None => {
                let bytes = match std::fs::read(&self.path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ResumeRejected::Missing),
                    Err(e) => return Err(ResumeRejected::Unreadable(e)),
                };
                decode(&bytes, layout)?
            }
        };
        let mut changed_files = Vec::new();
        for (index, recorded) in stamps.iter().enumerate() {
            if layout.files()[index].padding {
                continue;
            }
            let now = current_stamp(&layout.file_path(index)).ok();
            if now.as_ref() == Some(recorded) {
                continue;
            }
            if now.is_some() || !recorded.is_not_on_disk() {
                changed_files.push(index);
            }
            for piece in file_pieces(layout, index) {
                verified[piece] = false;
            }
        }
        Ok(ResumeData { verified, changed_files })
    }

    /// Makes `verified` durable: flushes the storage's files, then atomically replaces the
    /// resume file. `verified` must only hold pieces whose data was written (and verified)
    /// before this call. See the module doc for the ordering and why it is crash-safe.
    pub fn save(&self, storage: &Storage, verified: &[bool]) -> Result<(), StorageError> {
        let layout = storage.layout();
        if verified.len() != layout.piece_count() as usize {
            return Err(StorageError::ResumeLength { expected: layout.piece_count(), actual: verified.len() });
        }
        let _guard = self.save_lock.lock().unwrap_or_else(PoisonError::into_inner);
        storage.flush()?;
        let stamps = (layout.files().iter().enumerate())
            .map(|(i, spec)| {
                if spec.padding {
                    return Ok(Stamp::not_on_disk(spec.length));
                }
                let path = layout.file_path(i);
                match current_stamp(&path) {
                    Ok(stamp) => Ok(stamp),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stamp::not_on_disk(spec.length)),
                    Err(e) => Err(StorageError::io(IoOp::Stat, &path, e)),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(backend) = &self.backend {
            let record = ResumeRecord {
                fingerprint: layout.fingerprint(),
                verified: verified.to_vec(),
                files: stamps
                    .iter()
                    .map(|s| FileStamp { length: s.length, mtime_secs: s.mtime_secs, mtime_nanos: s.mtime_nanos })
                    .collect(),
            };
            return backend.save(&record).map_err(|e| StorageError::io(IoOp::Write, &self.path, e));
        }
        let bytes = encode(layout, &stamps, verified);
        write_atomically(&self.path, &bytes)
    }

    /// Deletes the resume file (after removing a torrent, or to force a full check).
    pub fn remove(&self) -> Result<(), StorageError> {
        if let Some(backend) = &self.backend {
            return backend.remove().map_err(|e| StorageError::io(IoOp::Write, &self.path, e));
        }
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io(IoOp::Write, &self.path, e)),
            _ => Ok(()),
        }
    }
}

/// A backend's record, checked against `layout` as a file's header would be.
fn from_record(record: ResumeRecord, layout: &StorageLayout) -> Result<(Vec<Stamp>, Vec<bool>), ResumeRejected> {
    let same_files = record.files.len() == layout.files().len()
        && record.files.iter().zip(layout.files()).all(|(stamp, spec)| stamp.length == spec.length);
    if record.fingerprint != layout.fingerprint()
        || record.verified.len() != layout.geometry().piece_count() as usize
        || !same_files
    {
        return Err(ResumeRejected::Foreign);
    }
    let stamps = record
        .files
        .iter()
        .map(|f| Stamp { length: f.length, mtime_secs: f.mtime_secs, mtime_nanos: f.mtime_nanos })
        .collect();
    Ok((stamps, record.verified))
}

fn current_stamp(path: &Path) -> io::Result<Stamp> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(Stamp {
        length: meta.len(),
        mtime_secs: meta.mtime(),
        mtime_nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    })
}

/// Indices of the pieces holding bytes of file `index` (none for an empty file).
fn file_pieces(layout: &StorageLayout, index: usize) -> std::ops::Range<usize> {
    let length = layout.files()[index].length;
    if length == 0 {
        return 0..0;
    }
    let piece_length = layout.geometry().piece_length() as u64;
    let start = layout.file_offset(index);
    let first = start / piece_length;
    let last = (start + length - 1) / piece_length;
    first as usize..last as usize + 1
}

fn encoded_len(piece_count: u32, file_count: usize) -> usize {
    HEADER_LEN + file_count * FILE_RECORD_LEN + (piece_count as usize).div_ceil(8) + 20
}

fn encode(layout: &StorageLayout, stamps: &[Stamp], verified: &[bool]) -> Vec<u8> {
    let geometry = layout.geometry();
    let mut out = Vec::with_capacity(encoded_len(geometry.piece_count(), stamps.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&layout.fingerprint());
    out.extend_from_slice(&geometry.piece_length().to_le_bytes());
    out.extend_from_slice(&geometry.piece_count().to_le_bytes());
    out.extend_from_slice(&(stamps.len() as u64).to_le_bytes());
    for stamp in stamps {
        out.extend_from_slice(&stamp.length.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_secs.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_nanos.to_le_bytes());
    }
    let mut bits = vec![0u8; verified.len().div_ceil(8)];
    for (i, _) in verified.iter().enumerate().filter(|(_, v)| **v) {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    out.extend_from_slice(&bits);
    let checksum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&checksum);
    out
}

/// Splits `n` bytes off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], ResumeRejected> {
    if bytes.len() < n {
        return Err(ResumeRejected::Corrupt);
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn take_array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], ResumeRejected> {
    take(bytes, N)?.try_into().map_err(|_| ResumeRejected::Corrupt)
}

fn decode(bytes: &[u8], layout: &StorageLayout) -> Result<(Vec<Stamp>, Vec<bool>), ResumeRejected> {
    let geometry = layout.geometry();
    if bytes.len() < HEADER_LEN + 20 || &bytes[..8] != MAGIC {
        return Err(ResumeRejected::Corrupt);
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 20);
    if Sha1::digest(body).as_slice() != checksum {
        return Err(ResumeRejected::Corrupt);
    }
    let mut rest = &body[8..];
    let version = u32::from_le_bytes(take_array(&mut rest)?);
    if version != VERSION {
        return Err(ResumeRejected::Version(version));
    }
    let fingerprint: [u8; 20] = take_array(&mut rest)?;
    let piece_length = u32::from_le_bytes(take_array(&mut rest)?);
    let piece_count = u32::from_le_bytes(take_array(&mut rest)?);
    let file_count = u64::from_le_bytes(take_array(&mut rest)?);
    if fingerprint != layout.fingerprint()
        || piece_length != geometry.piece_length()
        || piece_count != geometry.piece_count()
        || file_count != layout.files().len() as u64
    {
        return Err(ResumeRejected::Foreign);
    }
    if bytes.len() != encoded_len(piece_count, layout.files().len()) {
        return Err(ResumeRejected::Corrupt);
    }
    let mut stamps = Vec::with_capacity(layout.files().len());
    for spec in layout.files() {
        let stamp = Stamp {
            length: u64::from_le_bytes(take_array(&mut rest)?),
            mtime_secs: i64::from_le_bytes(take_array(&mut rest)?),
            mtime_nanos: u32::from_le_bytes(take_array(&mut rest)?),
        };
        if stamp.length != spec.length {
            return Err(ResumeRejected::Foreign);
        }
        stamps.push(stamp);
    }
    let bits = take(&mut rest, (piece_count as usize).div_ceil(8))?;
    let verified: Vec<bool> = (0..piece_count as usize).map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0).collect();
    // Spare bits past the last piece must be clear in a file Shoal wrote.
    let spare = (piece_count % 8) as usize;
    if spare != 0 && bits.last().is_some_and(|&b| b & (0xff >> spare) != 0) {
        return Err(ResumeRejected::Corrupt);
    }
    Ok((stamps, verified))
}

/// Writes `bytes` to `path` via a temporary file, `fsync`, `rename` and a directory `fsync`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io(IoOp::Create, dir, e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp).map_err(|e| StorageError::io(IoOp::Create, &tmp, e))?;
    file.write_all(bytes).map_err(|e| StorageError::io(IoOp::Write, &tmp, e))?;
    file.sync_all().map_err(|e| StorageError::io(IoOp::Sync, &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io(IoOp::Rename, path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StorageError::io(IoOp::Sync, dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileSpec;

    fn layout(hash_seed: u8) -> StorageLayout {
        let files = vec![
            FileSpec { path: vec!["a".into()], length: 10, padding: false },
            FileSpec { path: vec!["b".into()], length: 0, padding: false },
            FileSpec { path: vec!["c".into()], length: 7, padding: false },
        ];
        StorageLayout::new("/nowhere".into(), files, 4, vec![[hash_seed; 20]; 5]).expect("layout")
    }

    fn stamps() -> Vec<Stamp> {
        [10, 0, 7].map(|length| Stamp { length, mtime_secs: 5, mtime_nanos: 6 }).to_vec()
    }

    #[test]
    fn encode_decode_roundtrip_and_rejections() {
        let l = layout(1);
        let verified = vec![true, false, true, true, false];
        let bytes = encode(&l, &stamps(), &verified);
        assert_eq!(bytes.len(), encoded_len(5, 3));
        let (s, v) = decode(&bytes, &l).expect("decode");
        assert_eq!((s, v), (stamps(), verified));

        assert!(matches!(decode(&bytes, &layout(2)), Err(ResumeRejected::Foreign)));
        for cut in [0, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], &l).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 3] ^= 1;
        assert!(matches!(decode(&flipped, &l), Err(ResumeRejected::Corrupt)));
    }

    #[test]
    fn pieces_of_a_file() {
        let l = layout(1);
        assert_eq!(file_pieces(&l, 0), 0..3);
        assert_eq!(file_pieces(&l, 1), 0..0);
        assert_eq!(file_pieces(&l, 2), 2..5);
    }

    #[test]
    fn default_path_checks_the_id() {
        let id = "AB".repeat(20);
        let path = ResumeStore::default_path(Path::new("/dl"), &id).expect("valid id");
        assert_eq!(path, Path::new("/dl/.shoal").join(format!("{}.resume", "ab".repeat(20))));
        assert!(ResumeStore::default_path(Path::new("/dl"), "../etc").is_err());
        assert!(ResumeStore::default_path(Path::new("/dl"), &"g".repeat(40)).is_err());
    }

    #[derive(Debug, Default)]
    struct Memory(std::sync::Mutex<Option<ResumeRecord>>);

    impl ResumeBackend for Memory {
        fn load(&self) -> io::Result<Option<ResumeRecord>> {
            Ok(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone())
        }
        fn save(&self, record: &ResumeRecord) -> io::Result<()> {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(record.clone());
            Ok(())
        }
        fn remove(&self) -> io::Result<()> {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
            Ok(())
        }
    }

    #[test]
    fn a_backend_keeps_records_checked_like_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let at = |seed: u8| {
            let files = vec![
                FileSpec { path: vec!["a".into()], length: 10, padding: false },
                FileSpec { path: vec!["b".into()], length: 0, padding: false },
                FileSpec { path: vec!["c".into()], length: 7, padding: false },
            ];
            StorageLayout::new(dir.path().to_path_buf(), files, 4, vec![[seed; 20]; 5]).expect("layout")
        };
        let layout = at(1);
        let storage = Storage::open(layout.clone(), crate::OpenMode::ReadWrite).expect("open");
        // Files are created by their first write; write every piece so both exist.
        for piece in layout.geometry().pieces() {
            let size = layout.geometry().piece_size(piece) as usize;
            storage.write_at(piece, 0, &vec![0; size]).expect("write");
        }
        let backend = std::sync::Arc::new(Memory::default());
        let store = ResumeStore::with_backend(PathBuf::from("memory"), backend.clone());
        assert!(matches!(store.load_explained(&layout), Err(ResumeRejected::Missing)));
        let verified: Vec<bool> = (0..layout.piece_count()).map(|i| i % 2 == 0).collect();
        store.save(&storage, &verified).expect("save");
        assert_eq!(store.load(&layout), Some(verified.clone()));
        // Another torrent's record is refused.
        let other = at(2);
        assert!(matches!(store.load_explained(&other), Err(ResumeRejected::Foreign)));
        store.remove().expect("remove");
        assert!(backend.load().expect("load").is_none());
    }
}
