//! Disk workers: OS threads, shared by every torrent of a session, that write received blocks
//! and hash completed pieces, so neither blocks the async runtime. Their number is fixed when
//! the session starts (`disk_threads`, two by default so the work uses both cores), whatever
//! the number of torrents: a daemon with thousands of torrents runs two disk threads, not
//! several per torrent.
//!
//! Pieces are sharded over the workers by torrent and piece, and one worker does all of a
//! piece's work: it writes each block and feeds it to the piece's SHA-1 as the blocks become
//! contiguous, so nothing is read back from disk (unless some of the piece's blocks did not
//! come through this session). A `Verify` job follows the piece's writes to the same worker,
//! so when its result comes back every block of the piece is on disk — the ordering resume
//! data relies on (a piece is recorded only after its data was written).
//!
//! A torrent hands over what it has in batches (everything one wake-up of its task produced),
//! so a worker is woken once per batch, not once per 16 KiB block. The received data between
//! the network and the hash is bounded in bytes for the whole session ([`BUDGET`]): a torrent
//! whose batch does not fit waits, its peers' messages wait in turn, and TCP slows the senders.
//! Memory therefore stays bounded whatever the disk or CPU speed and the number of torrents.
//!
//! A worker forgets the half-hashed pieces of a torrent that went away (its event channel is
//! closed) the next time it looks, so removing a torrent mid-download leaks nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_proto::{BlockRange, PieceIndex};
use shoal_storage::Storage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Bytes of received blocks handed to the workers and not yet written and hashed, for the
/// whole session. At 1 GB/s this is several milliseconds of data, enough to keep the workers
/// busy through scheduling hiccups, and small enough that a download of any size runs in
/// about 25 MiB of memory.
const BUDGET: usize = 4 << 20;

/// Bytes of received blocks read from the sockets and not yet taken by their torrent (waiting
/// in torrents' inboxes), for the whole session. With [`BUDGET`] this bounds the received data
/// held in memory.
pub(crate) const RECEIVED_BUDGET: usize = 2 << 20;

/// The largest batch (in bytes of blocks) sent in one go, so a batch always fits the budget.
const MAX_BATCH: usize = 1 << 20;

/// A worker looks for torrents that went away after this many batches.
const PURGE_EVERY: u32 = 1024;

/// Results sent back to the torrent.
#[derive(Debug)]
pub(crate) enum DiskEvent {
    /// A piece was hashed; `ok` when it matched. A v2 piece hashed as it arrived also gives
    /// the hash of each of its blocks (BEP 52 leaves), for blaming a failure on one block.
    Verified { piece: PieceIndex, ok: bool, leaves: Option<Vec<[u8; 32]>> },
    /// Writing or reading failed; the torrent cannot go on.
    Failed(String),
}

/// Disk work of one torrent.
#[derive(Debug)]
pub(crate) enum DiskJob {
    /// Write a received block (and hash it).
    Write(BlockRange, Bytes),
    /// Report whether the piece's hash matches, once its writes are done.
    Verify(PieceIndex),
}

impl DiskJob {
    fn piece(&self) -> PieceIndex {
        match self {
            DiskJob::Write(block, _) => block.piece,
            DiskJob::Verify(piece) => *piece,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            DiskJob::Write(_, data) => data.len(),
            DiskJob::Verify(_) => 0,
        }
    }
}

/// One torrent as the disk threads see it.
#[derive(Debug)]
struct Target {
    /// Unique in the session.
    id: u64,
    storage: Arc<Storage>,
    events: mpsc::UnboundedSender<DiskEvent>,
}

/// Jobs of one torrent for one worker, with the share of the budget their data holds.
struct Batch {
    target: Arc<Target>,
    jobs: Vec<DiskJob>,
    _budget: Option<OwnedSemaphorePermit>,
}

/// The session's disk threads. Cheap to clone; the threads stop once every clone (and every
/// [`Disk`]) is dropped and their queues drain.
#[derive(Clone, Debug)]
pub(crate) struct DiskPool {
    workers: Arc<[std::sync::mpsc::Sender<Batch>]>,
    budget: Arc<Semaphore>,
    received: Arc<Semaphore>,
    read_buffers: Arc<crate::peer::ReadBuffers>,
    next_id: Arc<AtomicU64>,
}

impl DiskPool {
    /// Starts `workers` disk threads (at least one).
    pub(crate) fn start(workers: usize) -> DiskPool {
        let workers: Vec<std::sync::mpsc::Sender<Batch>> = (0..workers.max(1))
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel::<Batch>();
                spawn(format!("shoal-disk-{i}"), move || work_loop(rx));
                tx
            })
            .collect();
        DiskPool {
            workers: workers.into(),
            budget: Arc::new(Semaphore::new(BUDGET)),
            received: Arc::new(Semaphore::new(RECEIVED_BUDGET)),
            read_buffers: Arc::default(),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The session's budget of received blocks waiting for their torrent ([`RECEIVED_BUDGET`]),
    /// taken by connection readers and given back once the torrent has the blocks.
    pub(crate) fn received(&self) -> Arc<Semaphore> {
        self.received.clone()
    }

    /// The session's pool of connection receive buffers (see [`crate::peer::ReadBuffers`]).
    pub(crate) fn read_buffers(&self) -> Arc<crate::peer::ReadBuffers> {
        self.read_buffers.clone()
    }

    /// A torrent's handle on the pool: its blocks are written to `storage` and its results
    /// come back on `events`.
    pub(crate) fn torrent(&self, storage: Arc<Storage>, events: mpsc::UnboundedSender<DiskEvent>) -> Disk {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Disk { pool: self.clone(), target: Arc::new(Target { id, storage, events }) }
    }
}

/// One torrent's handle on the session's [`DiskPool`].
#[derive(Debug)]
pub(crate) struct Disk {
    pool: DiskPool,
    target: Arc<Target>,
}

impl Disk {
    /// Hands `jobs` to the workers, in order for each piece, waiting while the session's
    /// budget of received data in flight is used up. The queue is emptied only as jobs are
    /// handed over, so a caller that stops waiting loses nothing.
    pub(crate) async fn submit(&self, jobs: &mut std::collections::VecDeque<DiskJob>) {
        let n = self.pool.workers.len();
        while !jobs.is_empty() {
            // Take a prefix of at most MAX_BATCH bytes and split it by worker.
            let (mut count, mut bytes) = (0, 0);
            for job in jobs.iter() {
                if count > 0 && bytes + job.bytes() > MAX_BATCH {
                    break;
                }
                count += 1;
                bytes += job.bytes();
            }
            let mut budget = match bytes {
                0 => None,
                b => match self.pool.budget.clone().acquire_many_owned(b as u32).await {
                    Ok(permit) => Some(permit),
                    Err(_) => return,
                },
            };
            let mut split: Vec<Vec<DiskJob>> = (0..n).map(|_| Vec::new()).collect();
            for job in jobs.drain(..count) {
                let shard = (self.target.id as usize).wrapping_mul(31).wrapping_add(job.piece().idx()) % n;
                split[shard].push(job);
            }
            for (i, part) in split.into_iter().enumerate() {
                if part.is_empty() {
                    continue;
                }
                // Each part holds the budget of its own data until its worker is done with it.
                let size: usize = part.iter().map(DiskJob::bytes).sum();
                let share = budget.as_mut().and_then(|b| if size == 0 { None } else { b.split(size) });
                let batch = Batch { target: self.target.clone(), jobs: part, _budget: share };
                if self.pool.workers[i].send(batch).is_err() {
                    return;
                }
            }
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.clone()).spawn(f) {
        tracing::error!("cannot start thread {name}: {e}");
    }
}

/// SHA-1 of one piece in progress, fed in offset order.
#[derive(Default)]
struct PieceHash {
    sha: Sha1,
    /// A v2-only or hybrid torrent's piece: Merkle hashing.
    v2: Option<shoal_storage::V2Hasher>,
    /// SHA-1 too (a v1 or hybrid torrent).
    sha_on: bool,
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
        self.update(&data);
        while let Some(data) = self.ahead.remove(&self.next) {
            self.update(&data);
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(v2) = &mut self.v2 {
            v2.update(data);
        }
        if self.sha_on {
            self.sha.update(data);
        }
        self.next += data.len() as u32;
    }
}

fn work_loop(rx: std::sync::mpsc::Receiver<Batch>) {
    // Pieces in progress, by torrent and piece.
    let mut pieces: HashMap<(u64, PieceIndex), (Arc<Target>, PieceHash)> = HashMap::new();
    let mut batches = 0u32;
    while let Ok(batch) = rx.recv() {
        batches = batches.wrapping_add(1);
        if batches.is_multiple_of(PURGE_EVERY) {
            pieces.retain(|_, (target, _)| !target.events.is_closed());
        }
        let target = &batch.target;
        for job in batch.jobs {
            match job {
                DiskJob::Write(block, data) => {
                    if let Err(e) = target.storage.write_block(block, &data) {
                        let _ = target.events.send(DiskEvent::Failed(e.to_string()));
                        continue;
                    }
                    let key = (target.id, block.piece);
                    pieces
                        .entry(key)
                        .or_insert_with(|| {
                            let layout = target.storage.layout();
                            let v2 = layout.v2_check(block.piece).map(shoal_storage::V2Hasher::new);
                            (target.clone(), PieceHash { v2, sha_on: layout.checks_sha1(), ..PieceHash::default() })
                        })
                        .1
                        .feed(block.begin, data);
                }
                DiskJob::Verify(piece) => {
                    let storage = &target.storage;
                    let layout = storage.layout();
                    let hashed = pieces
                        .remove(&(target.id, piece))
                        .map(|(_, h)| h)
                        .filter(|h| h.next == layout.geometry().piece_size(piece));
                    let result = match hashed {
                        Some(h) => {
                            let sha_ok =
                                || layout.piece_hash(piece).is_some_and(|want| h.sha.finalize().as_slice() == want);
                            match h.v2 {
                                // A hybrid's piece must match both (its SHA-1 is only worked out
                                // when the Merkle root matched).
                                Some(v2) => {
                                    let (ok, leaves) = v2.finish();
                                    Ok((ok && (!h.sha_on || sha_ok()), Some(leaves)))
                                }
                                None => Ok((sha_ok(), None)),
                            }
                        }
                        // Not every byte came through this session (some blocks of a piece
                        // fetched again, say): the disk copy is the truth, hash what is there.
                        None => storage.verify_piece(piece).map(|ok| (ok, None)),
                    };
                    let event = match result {
                        Ok((ok, leaves)) => DiskEvent::Verified { piece, ok, leaves },
                        Err(e) => DiskEvent::Failed(e.to_string()),
                    };
                    // A torrent that went away no longer listens; the others still do.
                    let _ = target.events.send(event);
                }
            }
        }
    }
}
