//! Re-checking pieces already on disk: the full check after adding a torrent whose files
//! exist, and the partial check of pieces that resume data does not vouch for.
//!
//! Pieces are verified on a few threads (see `crate::pool`) that pull indices from a shared
//! counter. Pieces lying wholly in files this open created and nobody has written since are
//! holes and are reported missing without a read. The progress callback runs only on the
//! caller's thread.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use shoal_proto::PieceIndex;

use super::Storage;
use crate::error::StorageError;
use crate::pool::{self, FirstError};

impl Storage {
    /// Verifies every piece on disk and returns, per piece, whether it matches its hash.
    /// `progress` receives the number of pieces done so far (skipped holes included).
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

    /// `true` when every byte of `piece` lies in files created by this open and not written
    /// since (or in padding files), with at least one such new file: the piece is a hole.
    fn piece_is_hole(&self, piece: PieceIndex) -> bool {
        let files = self.layout.piece_files(piece);
        let specs = self.layout.files();
        let fresh = |i: usize| self.fresh[i].load(Ordering::Relaxed);
        files.clone().any(fresh) && files.into_iter().all(|i| specs[i].length == 0 || specs[i].padding || fresh(i))
    }

    fn check_one(&self, piece: PieceIndex) -> Result<bool, StorageError> {
        if piece.get() >= self.layout.piece_count() {
            return Err(StorageError::OutOfRange { piece: piece.get(), begin: 0, length: 0 });
        }
        if self.piece_is_hole(piece) {
            return Ok(false);
        }
        self.verify_piece(piece)
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
                match self.check_one(piece) {
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
        error.into_result()?;
        progress(list.len() as u32);
        Ok(results.into_iter().map(AtomicBool::into_inner).collect())
    }
}
