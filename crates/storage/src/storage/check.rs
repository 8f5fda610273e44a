//! Re-checking pieces already on disk: the full check after adding a torrent whose files
//! exist, and the partial check of pieces that resume data does not vouch for.
//!
//! Pieces are verified on a few threads (see `crate::pool`) that pull indices from a shared
//! counter. Pieces touching a file that does not exist yet (see "Opening" in
//! [`crate::storage`]) are reported missing without a read, and without an error. The
//! progress callback runs only on the caller's thread.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use shoal_proto::PieceIndex;

use super::Storage;
use crate::error::StorageError;
use crate::pool::{self, FirstError};

impl Storage {
    /// Verifies every piece on disk and returns, per piece, whether it matches its hash.
    /// `progress` receives the number of pieces done so far (pieces of missing files
    /// included).
    pub fn check_existing(&self, progress: impl FnMut(u32)) -> Result<Vec<bool>, StorageError> {
        let all: Vec<PieceIndex> = self.layout.geometry().pieces().collect();
        let results = self.check_list(&all, progress)?;
        Ok(results)
    }

    /// Verifies only `pieces` (typically those resume data does not record) and returns the
    /// ones that match their hash, in the order given. Indices outside the torrent are errors.
    pub fn check_pieces(
        &self,
        pieces: impl IntoIterator<Item = PieceIndex>,
        progress: impl FnMut(u32),
    ) -> Result<Vec<PieceIndex>, StorageError> {
        let list: Vec<PieceIndex> = pieces.into_iter().collect();
        let results = self.check_list(&list, progress)?;
        Ok(list.into_iter().zip(results).filter(|&(_, ok)| ok).map(|(p, _)| p).collect())
    }

    /// Checks `list` in parallel; result `i` belongs to `list[i]`.
    fn check_list(&self, list: &[PieceIndex], mut progress: impl FnMut(u32)) -> Result<Vec<bool>, StorageError> {
        let results: Vec<AtomicBool> = list.iter().map(|_| AtomicBool::new(false)).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicU32::new(0);
        let error = FirstError::new();
        let work = |tick: &mut dyn FnMut()| {
            while !error.failed() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&piece) = list.get(i) else { break };
                match self.verify_piece(piece) {
                    Ok(good) => results[i].store(good, Ordering::Relaxed),
                    Err(e) => {
                        error.set(e);
                        break;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                tick();
            }
        };
        pool::run(pool::thread_count(list.len()), work, || progress(done.load(Ordering::Relaxed)));
        // The check's read buffers go: a daemon checks thousands of torrents at start and then
        // seeds them, and one kept buffer each (16 KiB to 1 MiB) was the largest thing a
        // seeding torrent held (17 MiB at 1,000 torrents).
        self.drop_buffers();
        error.into_result()?;
        progress(list.len() as u32);
        Ok(results.into_iter().map(AtomicBool::into_inner).collect())
    }
}
