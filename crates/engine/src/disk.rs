//! Disk workers: OS threads that write received blocks and hash completed pieces, so neither
//! blocks the async runtime. Jobs are sharded by piece index, and each worker runs its jobs in
//! order, so every block of a piece is on disk before that piece is hashed — the ordering the
//! swarm's `Write`/`Verify` actions rely on. Two workers let hashing use both cores.

use std::sync::Arc;

use bytes::Bytes;
use shoal_proto::{BlockRange, PieceIndex};
use shoal_storage::Storage;
use tokio::sync::mpsc;

/// Jobs queued per worker before the torrent waits (which in turn slows its peers down).
const QUEUE: usize = 1024;

/// Work for a disk thread.
#[derive(Debug)]
enum Job {
    Write { block: BlockRange, data: Bytes },
    Verify { piece: PieceIndex },
}

/// Results sent back to the torrent.
#[derive(Debug)]
pub(crate) enum DiskEvent {
    /// A piece was hashed; `ok` when it matched.
    Verified { piece: PieceIndex, ok: bool },
    /// Writing or reading failed; the torrent cannot go on.
    Failed(String),
}

/// Handle on the disk workers of one torrent. Dropping it stops them once their queues drain.
#[derive(Debug)]
pub(crate) struct Disk {
    workers: Vec<mpsc::Sender<Job>>,
}

impl Disk {
    pub(crate) fn start(storage: Arc<Storage>, threads: usize, events: mpsc::UnboundedSender<DiskEvent>) -> Self {
        let workers = (0..threads.max(1))
            .map(|i| {
                let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
                let storage = storage.clone();
                let events = events.clone();
                let spawned = std::thread::Builder::new().name(format!("shoal-disk-{i}")).spawn(move || {
                    while let Some(job) = rx.blocking_recv() {
                        let event = match job {
                            Job::Write { block, data } => match storage.write_block(block, &data) {
                                Ok(()) => continue,
                                Err(e) => DiskEvent::Failed(e.to_string()),
                            },
                            Job::Verify { piece } => match storage.verify_piece(piece) {
                                Ok(ok) => DiskEvent::Verified { piece, ok },
                                Err(e) => DiskEvent::Failed(e.to_string()),
                            },
                        };
                        if events.send(event).is_err() {
                            return;
                        }
                    }
                });
                if let Err(e) = spawned {
                    tracing::error!("cannot start disk thread: {e}");
                }
                tx
            })
            .collect();
        Self { workers }
    }

    fn worker(&self, piece: PieceIndex) -> &mpsc::Sender<Job> {
        &self.workers[piece.idx() % self.workers.len()]
    }

    pub(crate) async fn write(&self, block: BlockRange, data: Bytes) {
        let _ = self.worker(block.piece).send(Job::Write { block, data }).await;
    }

    pub(crate) async fn verify(&self, piece: PieceIndex) {
        let _ = self.worker(piece).send(Job::Verify { piece }).await;
    }
}
