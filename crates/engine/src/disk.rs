//! Disk workers: OS threads that write received blocks and hash completed pieces, so neither
//! blocks the async runtime.
//!
//! One writer thread takes jobs in the order the swarm produced them. After each block is
//! written it goes on to a hasher thread (pieces are sharded over the session's `disk_threads`
//! hashers, two by default, so hashing uses both cores), which hashes each piece incrementally
//! from the blocks in memory as they become contiguous: nothing is read back from disk, unless
//! some of the piece's blocks did not come through this session. A `Verify` job follows the piece's writes through
//! the same writer, so when its result comes back every block of the piece is on disk — the
//! ordering resume data relies on (a piece is recorded only after its data was written).
//! A single writer also avoids two threads contending for one file's inode lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_proto::{BlockRange, PieceIndex};
use shoal_storage::Storage;
use tokio::sync::mpsc;

/// Jobs queued for the writer, and for each hasher, before the stage feeding it waits (which
/// in the end slows the peers down): memory per torrent stays bounded whatever the disk or CPU
/// speed.
const QUEUE: usize = 1024;

/// Work for the writer thread.
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

/// Handle on the disk threads of one torrent. Dropping it stops them once their queues drain.
#[derive(Debug)]
pub(crate) struct Disk {
    writer: mpsc::Sender<Job>,
}

impl Disk {
    pub(crate) fn start(storage: Arc<Storage>, hashers: usize, events: mpsc::UnboundedSender<DiskEvent>) -> Self {
        let hashers: Vec<std::sync::mpsc::SyncSender<Job>> = (0..hashers.max(1))
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
                let (storage, events) = (storage.clone(), events.clone());
                spawn(format!("shoal-hash-{i}"), move || hash_loop(&storage, rx, &events));
                tx
            })
            .collect();
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        spawn("shoal-write".into(), move || write_loop(&storage, rx, &hashers, &events));
        Self { writer: tx }
    }

    pub(crate) async fn write(&self, block: BlockRange, data: Bytes) {
        let _ = self.writer.send(Job::Write { block, data }).await;
    }

    pub(crate) async fn verify(&self, piece: PieceIndex) {
        let _ = self.writer.send(Job::Verify { piece }).await;
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.clone()).spawn(f) {
        tracing::error!("cannot start thread {name}: {e}");
    }
}

fn write_loop(
    storage: &Storage,
    mut rx: mpsc::Receiver<Job>,
    hashers: &[std::sync::mpsc::SyncSender<Job>],
    events: &mpsc::UnboundedSender<DiskEvent>,
) {
    while let Some(job) = rx.blocking_recv() {
        let piece = match &job {
            Job::Write { block, data } => {
                if let Err(e) = storage.write_block(*block, data) {
                    let _ = events.send(DiskEvent::Failed(e.to_string()));
                    return;
                }
                block.piece
            }
            Job::Verify { piece } => *piece,
        };
        if hashers[piece.idx() % hashers.len()].send(job).is_err() {
            return;
        }
    }
}

/// SHA-1 of one piece in progress, fed in offset order.
#[derive(Default)]
struct PieceHash {
    sha: Sha1,
    /// Offset of the next byte to hash.
    next: u32,
    /// Blocks that arrived ahead of `next`.
    ahead: BTreeMap<u32, Bytes>,
}

impl PieceHash {
    fn feed(&mut self, begin: u32, data: Bytes) {
        if begin != self.next {
            self.ahead.insert(begin, data);
            return;
        }
        self.sha.update(&data);
        self.next += data.len() as u32;
        while let Some(data) = self.ahead.remove(&self.next) {
            self.sha.update(&data);
            self.next += data.len() as u32;
        }
    }
}

fn hash_loop(storage: &Storage, rx: std::sync::mpsc::Receiver<Job>, events: &mpsc::UnboundedSender<DiskEvent>) {
    let layout = storage.layout();
    let geometry = layout.geometry();
    let mut pieces: HashMap<PieceIndex, PieceHash> = HashMap::new();
    while let Ok(job) = rx.recv() {
        let event = match job {
            Job::Write { block, data } => {
                pieces.entry(block.piece).or_default().feed(block.begin, data);
                continue;
            }
            Job::Verify { piece } => {
                let hashed = pieces.remove(&piece).filter(|h| h.next == geometry.piece_size(piece));
                let result = match hashed {
                    Some(h) => Ok(layout.piece_hash(piece).is_some_and(|want| h.sha.finalize().as_slice() == want)),
                    // Not every byte came through this session (cannot happen with the swarm's
                    // ordering, but the disk copy is the truth): hash what is on disk.
                    None => storage.verify_piece(piece),
                };
                match result {
                    Ok(ok) => DiskEvent::Verified { piece, ok },
                    Err(e) => DiskEvent::Failed(e.to_string()),
                }
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}
