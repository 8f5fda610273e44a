//! The `resume` table: which pieces of a torrent are verified on disk, so a restart (also
//! after `kill -9` or a power cut) goes on without re-hashing or re-fetching them.
//!
//! This is the database form of `shoal_storage::resume`; the rules are the same.
//!
//! # The caller's contract
//! A piece may be recorded in [`ResumeData::pieces`] only if its bytes are durable. So the
//! caller saves in this order:
//! 1. `fsync` every file written since the last save (`Storage::flush`). Each piece in
//!    `pieces` was written before it was verified, so it is now on stable storage.
//! 2. Read each file's length and modification time ([`FileStamp`]), after the flush, so
//!    they describe the durable state.
//! 3. [`Store::save_resume`]: one transaction replaces the torrent's row; with the store's
//!    `synchronous = FULL` it is durable when the call returns. A crash before that leaves
//!    the previous row, never a mix.
//!
//! Hence every piece a loaded row marks had its bytes durable before the row existed; pieces
//! verified after the last save are absent, and the caller re-checks them.
//!
//! # Checks on load
//! [`Store::load_resume`] hands back what was saved; it does not look at the files. The
//! caller then (as `shoal_storage` does)
//! - drops the whole row if [`ResumeData::fingerprint`] or the piece count differ from the
//!   torrent's current layout (other content), and
//! - compares each file's current length and modification time with [`ResumeData::files`];
//!   every piece touching a file that differs is dropped and re-checked, pieces in unchanged
//!   files stay trusted.
//!
//! Shoal's own writes after the last save also change a file's time, so after a crash the
//! files being downloaded are re-checked and the finished ones are not; a clean shutdown saves
//! after the last write, so nothing is re-checked.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use crate::error::StateError;
use crate::store::{Store, from_unix, to_i64, to_u64, to_unix};
use crate::torrents::{TorrentId, exists};

/// Bytes per file record in the `files` blob.
const FILE_RECORD_LEN: usize = 8 + 8 + 4;

/// Length and modification time of one file, as seen when the resume data was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Length in bytes.
    pub length: u64,
    /// Modification time, seconds since 1970 (`st_mtime`).
    pub mtime_secs: i64,
    /// Nanoseconds part of the modification time (`st_mtime_nsec`), below 10^9.
    pub mtime_nanos: u32,
}

/// One torrent's resume record. See the module doc for what the caller must guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    /// Identifies the storage layout `pieces` and `files` refer to (`StorageLayout::fingerprint`:
    /// a hash of piece length and count, paths, lengths and piece hashes).
    pub fingerprint: [u8; 20],
    /// Per piece: verified and durable when saved.
    pub pieces: Vec<bool>,
    /// Per file, in layout order.
    pub files: Vec<FileStamp>,
    /// When it was saved (whole seconds are kept).
    pub saved_at: SystemTime,
}

impl Store {
    /// Replaces the torrent's resume record in one transaction (durable on return).
    /// `NoSuchTorrent` if the torrent is not stored.
    pub fn save_resume(&self, id: TorrentId, data: &ResumeData) -> Result<(), StateError> {
        let piece_count = to_i64("piece count", data.pieces.len() as u64)?;
        let have = encode_bits(&data.pieces);
        let files = encode_files(&data.files)?;
        let saved_at = to_unix("save time", data.saved_at)?;
        self.write(|tx| {
            exists(tx, id)?;
            tx.execute(
                "INSERT INTO resume (torrent_id, fingerprint, piece_count, have, files, saved_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (torrent_id) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 piece_count = excluded.piece_count, have = excluded.have, files = excluded.files, \
                 saved_at = excluded.saved_at",
                params![id.get(), data.fingerprint, piece_count, have, files, saved_at],
            )?;
            Ok(())
        })
    }

    /// The torrent's resume record, or `None` if none was saved (or the torrent is not
    /// stored). `Err(Corrupt)` for a record that is not as [`Store::save_resume`] writes them;
    /// the caller then re-checks everything.
    pub fn load_resume(&self, id: TorrentId) -> Result<Option<ResumeData>, StateError> {
        type Raw = (Vec<u8>, i64, Vec<u8>, Vec<u8>, i64);
        let raw: Option<Raw> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT fingerprint, piece_count, have, files, saved_at FROM resume WHERE torrent_id = ?1",
                    [id.get()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .optional()?)
        })?;
        let Some((fingerprint, piece_count, have, files, saved_at)) = raw else {
            return Ok(None);
        };
        let corrupt = |what: &str| StateError::Corrupt(format!("resume record of torrent {id}: {what}"));
        let fingerprint = fingerprint.try_into().map_err(|_| corrupt("fingerprint is not 20 bytes"))?;
        let piece_count = usize::try_from(to_u64("piece count", piece_count)?).map_err(|_| corrupt("piece count"))?;
        let pieces =
            decode_bits(&have, piece_count).ok_or_else(|| corrupt("bitfield does not match the piece count"))?;
        let files = decode_files(&files).ok_or_else(|| corrupt("file records are malformed"))?;
        Ok(Some(ResumeData { fingerprint, pieces, files, saved_at: from_unix(saved_at) }))
    }

    /// Deletes the torrent's resume record (to force a full re-check). Not an error if there
    /// is none.
    pub fn clear_resume(&self, id: TorrentId) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute("DELETE FROM resume WHERE torrent_id = ?1", [id.get()])?;
            Ok(())
        })
    }
}

/// BEP 3 bitfield: piece 0 in the high bit of byte 0, spare bits clear.
fn encode_bits(pieces: &[bool]) -> Vec<u8> {
    let mut bits = vec![0u8; pieces.len().div_ceil(8)];
    for (i, _) in pieces.iter().enumerate().filter(|(_, have)| **have) {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    bits
}

fn decode_bits(bits: &[u8], count: usize) -> Option<Vec<bool>> {
    if bits.len() != count.div_ceil(8) {
        return None;
    }
    let spare = count % 8;
    if spare != 0 && bits.last().is_some_and(|&b| b & (0xff >> spare) != 0) {
        return None;
    }
    Some((0..count).map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0).collect())
}

fn encode_files(files: &[FileStamp]) -> Result<Vec<u8>, StateError> {
    let mut out = Vec::with_capacity(files.len() * FILE_RECORD_LEN);
    for stamp in files {
        if stamp.mtime_nanos >= 1_000_000_000 {
            return Err(StateError::invalid("file stamp", format!("{} nanoseconds", stamp.mtime_nanos)));
        }
        out.extend_from_slice(&stamp.length.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_secs.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_nanos.to_le_bytes());
    }
    Ok(out)
}

fn decode_files(bytes: &[u8]) -> Option<Vec<FileStamp>> {
    if !bytes.len().is_multiple_of(FILE_RECORD_LEN) {
        return None;
    }
    bytes
        .chunks_exact(FILE_RECORD_LEN)
        .map(|record| {
            let (length, rest) = record.split_first_chunk::<8>()?;
            let (secs, rest) = rest.split_first_chunk::<8>()?;
            let nanos = u32::from_le_bytes(rest.try_into().ok()?);
            (nanos < 1_000_000_000).then_some(FileStamp {
                length: u64::from_le_bytes(*length),
                mtime_secs: i64::from_le_bytes(*secs),
                mtime_nanos: nanos,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_roundtrip_and_reject_garbage() {
        for count in [0, 1, 7, 8, 9, 17] {
            let pieces: Vec<bool> = (0..count).map(|i| i % 3 == 0).collect();
            assert_eq!(decode_bits(&encode_bits(&pieces), count), Some(pieces));
        }
        assert_eq!(encode_bits(&[true, false, true]), vec![0b1010_0000]);
        assert_eq!(decode_bits(&[0b1010_0001], 3), None, "spare bit set");
        assert_eq!(decode_bits(&[0, 0], 3), None, "too long");
    }

    #[test]
    fn file_records_roundtrip_and_reject_garbage() {
        let files = vec![
            FileStamp { length: 0, mtime_secs: -5, mtime_nanos: 999_999_999 },
            FileStamp { length: u64::MAX, mtime_secs: 1_700_000_000, mtime_nanos: 0 },
        ];
        let bytes = encode_files(&files).expect("valid");
        assert_eq!(decode_files(&bytes), Some(files));
        assert_eq!(decode_files(&bytes[1..]), None);
        let bad = FileStamp { length: 1, mtime_secs: 1, mtime_nanos: 1_000_000_000 };
        assert!(encode_files(&[bad]).is_err());
    }
}
