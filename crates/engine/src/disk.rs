//! Disk workers: OS threads, shared by every torrent of a session, that write received blocks
//! and hash completed pieces, so neither blocks the async runtime. Their number is fixed when
//! the session starts (one writer and `disk_threads` hashers, two by default so hashing uses
//! both cores), whatever the number of torrents: a daemon with thousands of torrents runs
//! three disk threads, not three per torrent.
//!
//! One writer thread takes jobs in the order the torrents produced them. After each block is
//! written it goes on to a hasher thread (pieces are sharded over the hashers by torrent and
//! piece), which hashes each piece incrementally from the blocks in memory as they become
//! contiguous: nothing is read back from disk, unless some of the piece's blocks did not come
//! through this session. A `Verify` job follows the piece's writes through the same writer,
//! so when its result comes back every block of the piece is on disk — the ordering resume
//! data relies on (a piece is recorded only after its data was written). A single writer
//! also avoids two threads contending for one file's inode lock.
//!
//! A hasher forgets the half-hashed pieces of a torrent that went away (its event channel is
//! closed) the next time it looks, so removing a torrent mid-download leaks nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_proto::{BlockRange, PieceIndex};
use shoal_storage::Storage;
use tokio::sync::mpsc;

/// Jobs queued for the writer, and for each hasher, before the stage feeding it waits (which
/// in the end slows the peers down): memory stays bounded whatever the disk or CPU speed.
const QUEUE: usize = 1024;

/// A hasher looks for torrents that went away after this many jobs.
const PURGE_EVERY: u32 = 4096;

/// Results sent back to the torrent.
#[derive(Debug)]
pub(crate) enum DiskEvent {
    /// A piece was hashed; `ok` when it matched.
    Verified { piece: PieceIndex, ok: bool },
    /// Writing or reading failed; the torrent cannot go on.
    Failed(String),
}

/// One torrent as the disk threads see it.
#[derive(Debug)]
struct Target {
    /// Unique in the session.
    id: u64,
    storage: Arc<Storage>,
    events: mpsc::UnboundedSender<DiskEvent>,
}

/// Work for the disk threads.
#[derive(Debug)]
enum Job {
    Write { target: Arc<Target>, block: BlockRange, data: Bytes },
    Verify { target: Arc<Target>, piece: PieceIndex },
}

impl Job {
    fn target(&self) -> &Arc<Target> {
        match self {
            Job::Write { target, .. } | Job::Verify { target, .. } => target,
        }
    }
}

/// The session's disk threads. Cheap to clone; the threads stop once every clone (and every
/// [`Disk`]) is dropped and their queues drain.
#[derive(Clone, Debug)]
pub(crate) struct DiskPool {
    writer: mpsc::Sender<Job>,
    next_id: Arc<AtomicU64>,
}

impl DiskPool {
    /// Starts one writer and `hashers` hasher threads (at least one).
    pub(crate) fn start(hashers: usize) -> DiskPool {
        let hashers: Vec<std::sync::mpsc::SyncSender<Job>> = (0..hashers.max(1))
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
                spawn(format!("shoal-hash-{i}"), move || hash_loop(rx));
                tx
            })
            .collect();
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        spawn("shoal-write".into(), move || write_loop(rx, &hashers));
        DiskPool { writer: tx, next_id: Arc::new(AtomicU64::new(0)) }
    }

    /// A torrent's handle on the pool: its blocks are written to `storage` and its results
    /// come back on `events`.
    pub(crate) fn torrent(&self, storage: Arc<Storage>, events: mpsc::UnboundedSender<DiskEvent>) -> Disk {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Disk { writer: self.writer.clone(), target: Arc::new(Target { id, storage, events }) }
    }
}

/// One torrent's handle on the session's [`DiskPool`].
#[derive(Debug)]
pub(crate) struct Disk {
    writer: mpsc::Sender<Job>,
    target: Arc<Target>,
}

impl Disk {
    pub(crate) async fn write(&self, block: BlockRange, data: Bytes) {
        let _ = self.writer.send(Job::Write { target: self.target.clone(), block, data }).await;
    }

    pub(crate) async fn verify(&self, piece: PieceIndex) {
        let _ = self.writer.send(Job::Verify { target: self.target.clone(), piece }).await;
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.clone()).spawn(f) {
        tracing::error!("cannot start thread {name}: {e}");
    }
}

fn write_loop(mut rx: mpsc::Receiver<Job>, hashers: &[std::sync::mpsc::SyncSender<Job>]) {
    while let Some(job) = rx.blocking_recv() {
        let piece = match &job {
            Job::Write { target, block, data } => {
                if let Err(e) = target.storage.write_block(*block, data) {
                    let _ = target.events.send(DiskEvent::Failed(e.to_string()));
                    continue;
                }
                block.piece
            }
            Job::Verify { piece, .. } => *piece,
        };
        let shard = (job.target().id as usize).wrapping_mul(31).wrapping_add(piece.idx()) % hashers.len();
        if hashers[shard].send(job).is_err() {
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

fn hash_loop(rx: std::sync::mpsc::Receiver<Job>) {
    // Pieces in progress, by torrent and piece.
    let mut pieces: HashMap<(u64, PieceIndex), (Arc<Target>, PieceHash)> = HashMap::new();
    let mut jobs = 0u32;
    while let Ok(job) = rx.recv() {
        jobs = jobs.wrapping_add(1);
        if jobs.is_multiple_of(PURGE_EVERY) {
            pieces.retain(|_, (target, _)| !target.events.is_closed());
        }
        match job {
            Job::Write { target, block, data } => {
                let key = (target.id, block.piece);
                pieces.entry(key).or_insert_with(|| (target, PieceHash::default())).1.feed(block.begin, data);
            }
            Job::Verify { target, piece } => {
                let storage = &target.storage;
                let layout = storage.layout();
                let hashed = pieces
                    .remove(&(target.id, piece))
                    .map(|(_, h)| h)
                    .filter(|h| h.next == layout.geometry().piece_size(piece));
                let result = match hashed {
                    Some(h) => Ok(layout.piece_hash(piece).is_some_and(|want| h.sha.finalize().as_slice() == want)),
                    // Not every byte came through this session (cannot happen with the swarm's
                    // ordering, but the disk copy is the truth): hash what is on disk.
                    None => storage.verify_piece(piece),
                };
                let event = match result {
                    Ok(ok) => DiskEvent::Verified { piece, ok },
                    Err(e) => DiskEvent::Failed(e.to_string()),
                };
                // A torrent that went away no longer listens; the others still do.
                let _ = target.events.send(event);
            }
        }
    }
}
