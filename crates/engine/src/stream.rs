//! Reading a file of a torrent while it downloads, for players.
//!
//! A [`FileStream`] reads a file of a running torrent at any offset. A read waits until the
//! piece under it is verified (nothing unverified is ever returned) and fails with a
//! [`StreamError`] when the torrent is paused, stopped or removed instead of waiting forever.
//! Every stream tells its torrent where it reads and how fast it consumes, and the torrent
//! gives the pieces ahead of it deadlines ([`shoal_swarm::stream`]): a seek moves the window at
//! once, and a stream that is dropped stops costing anything.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::{Layout, PieceIndex};
use shoal_storage::Storage;
use shoal_swarm::{Bitfield, Rate};
use tokio::sync::{Notify, mpsc, watch};

use crate::TorrentState;
use crate::torrent::Control;

pub mod http;

/// The most bytes one read returns.
pub const MAX_READ: usize = 1 << 20;

/// The most streams open on one torrent at once: each holds a window of piece deadlines, and
/// anyone who can reach the HTTP endpoint can open one.
pub const MAX_STREAMS: usize = 32;

/// Why a stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The torrent has no file with this index.
    #[error("the torrent has no file {index} (it has {count})")]
    NoSuchFile {
        /// The index asked for.
        index: usize,
        /// Files the torrent has.
        count: usize,
    },
    /// The torrent is paused: nothing will arrive until it is resumed.
    #[error("the torrent is paused")]
    Paused,
    /// The torrent was stopped or removed.
    #[error("the torrent was stopped or removed")]
    Stopped,
    /// The torrent stopped on an error.
    #[error("the torrent stopped: {0}")]
    Failed(String),
    /// Reading the verified data failed.
    #[error("cannot read the data: {0}")]
    Read(String),
    /// [`MAX_STREAMS`] streams of this torrent are open already.
    #[error("{MAX_STREAMS} streams of this torrent are open already; close one first")]
    TooMany,
}

/// The verified pieces of a torrent, shared by the torrent and its streams, with a wake-up
/// each time one is added.
#[derive(Debug)]
pub(crate) struct Verified {
    words: Vec<AtomicU64>,
    added: Notify,
    /// Streams of the torrent open now (at most [`MAX_STREAMS`]).
    streams: AtomicUsize,
    /// Where each file's index is, by the file's first offset, once a stream read its first
    /// bytes (later requests for the same file, a player's seeks, start out knowing it).
    indexes: std::sync::Mutex<std::collections::HashMap<u64, Range<u64>>>,
}

impl Verified {
    pub(crate) fn new(have: &Bitfield) -> Self {
        let n = have.len() as usize;
        let words = (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let v = Self { words, added: Notify::new(), streams: AtomicUsize::new(0), indexes: Default::default() };
        for i in 0..n {
            if have.get(PieceIndex::new_unchecked(i as u32)) {
                v.words[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
            }
        }
        v
    }

    fn index_of(&self, file_start: u64) -> Option<Range<u64>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner()).get(&file_start).cloned()
    }

    fn set_index(&self, file_start: u64, index: Range<u64>) {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner()).insert(file_start, index);
    }

    pub(crate) fn insert(&self, piece: PieceIndex) {
        let i = piece.idx();
        if let Some(w) = self.words.get(i / 64) {
            w.fetch_or(1 << (i % 64), Ordering::Release);
            self.added.notify_waiters();
        }
    }

    pub(crate) fn contains(&self, piece: PieceIndex) -> bool {
        let i = piece.idx();
        self.words.get(i / 64).is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
    }
}

/// What a torrent hands a new stream.
pub(crate) struct Source {
    pub(crate) layout: Layout,
    pub(crate) file: Range<u64>,
    pub(crate) storage: Arc<Storage>,
    pub(crate) verified: Arc<Verified>,
    pub(crate) status: watch::Receiver<crate::TorrentStatus>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

/// Numbers the streams of a process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A reader of one file of a torrent; see the module doc. Made by
/// [`crate::Torrent::stream`].
#[derive(Debug)]
pub struct FileStream {
    id: u64,
    layout: Layout,
    /// The file's bytes within the torrent.
    file: Range<u64>,
    storage: Arc<Storage>,
    verified: Arc<Verified>,
    status: watch::Receiver<crate::TorrentStatus>,
    control: mpsc::UnboundedSender<Control>,
    /// The piece the torrent was last told this stream reads, and the offset after the last
    /// read.
    told: Option<u32>,
    next: u64,
    rate: Rate,
    /// Where the file's index is (an MP4's `moov`), once its first bytes were read and told
    /// (see [`shoal_swarm::stream::mp4_index`]).
    index: Option<Range<u64>>,
    /// The first bytes were looked at.
    looked: bool,
}

impl FileStream {
    /// A stream, unless [`MAX_STREAMS`] of the torrent are open.
    pub(crate) fn open(source: Source) -> Result<Self, StreamError> {
        let Source { layout, file, storage, verified, status, control } = source;
        verified
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_STREAMS).then_some(n + 1))
            .map_err(|_| StreamError::TooMany)?;
        let index = verified.index_of(file.start);
        Ok(Self {
            looked: index.is_some(),
            index,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            layout,
            next: file.start,
            file,
            storage,
            verified,
            status,
            control,
            told: None,
            rate: Rate::new(Instant::now()),
        })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.file.end - self.file.start
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    /// Reads up to `max` bytes at `offset` in the file (fewer at a piece's end, none at the
    /// end of the file), waiting until they are verified.
    pub async fn read(&mut self, offset: u64, max: usize) -> Result<Bytes, StreamError> {
        let at = self.file.start.saturating_add(offset);
        if at >= self.file.end || max == 0 {
            return Ok(Bytes::new());
        }
        let piece_index = (at / u64::from(self.layout.piece_length())) as u32;
        let piece = self.layout.piece(piece_index).ok_or(StreamError::Stopped)?;
        let piece_start = self.layout.piece_offset(piece);
        let piece_end = (piece_start + u64::from(self.layout.piece_size(piece))).min(self.file.end);
        let len = (piece_end - at).min(max.min(MAX_READ) as u64) as usize;
        self.tell(at);
        self.wait_for(piece).await?;
        let storage = self.storage.clone();
        let begin = (at - piece_start) as u32;
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            storage.read_into(piece, begin, &mut buf).map(|()| Bytes::from(buf))
        })
        .await
        .map_err(|e| StreamError::Read(e.to_string()))?
        .map_err(|e| StreamError::Read(e.to_string()))?;
        self.next = at + len as u64;
        let now = Instant::now();
        self.rate.add(len as u64);
        self.rate.update(now);
        if at == self.file.start && !self.looked {
            // A player that read an MP4's first boxes goes for its index next: once the head
            // says where it is, it is fetched right away rather than guessed.
            self.looked = true;
            if let Some(found) = shoal_swarm::stream::mp4_index(&data, self.len()) {
                let index = self.file.start + found.start..self.file.start + found.end;
                self.verified.set_index(self.file.start, index.clone());
                self.index = Some(index);
                self.told = None;
                self.tell(self.next);
            }
        }
        Ok(data)
    }

    /// Tells the torrent that this stream is about to read at `offset` in the file, so the
    /// pieces there get their deadlines before the first read (`shoal play` does this as it
    /// starts: the player opens the URL a few milliseconds after the first peers unchoked us,
    /// and their first requests, for pieces picked at random, held the head up by one piece's
    /// time at the seed's pace).
    pub fn expect_read(&mut self, offset: u64) {
        self.tell(self.file.start.saturating_add(offset).min(self.file.end));
    }

    /// Tells the torrent where this stream reads when it moved to another piece (or jumped).
    fn tell(&mut self, at: u64) {
        let piece = (at / u64::from(self.layout.piece_length())) as u32;
        if self.told == Some(piece) && at == self.next {
            return;
        }
        let rate = self.rate.bytes_per_sec();
        let reader = shoal_swarm::stream::Reader {
            file: self.file.clone(),
            position: at,
            rate: (rate > 0.0).then_some(rate),
            since: Instant::now(),
            index: self.index.clone(),
        };
        self.told = Some(piece);
        let _ = self.control.send(Control::Reader { id: self.id, reader: Some(reader) });
    }

    async fn wait_for(&mut self, piece: PieceIndex) -> Result<(), StreamError> {
        loop {
            let added = self.verified.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if self.verified.contains(piece) {
                return Ok(());
            }
            match &self.status.borrow_and_update().state {
                TorrentState::Paused => return Err(StreamError::Paused),
                TorrentState::Stopped => return Err(StreamError::Stopped),
                TorrentState::Error(e) => return Err(StreamError::Failed(e.clone())),
                _ => {}
            }
            tokio::select! {
                _ = &mut added => {}
                changed = self.status.changed() => {
                    if changed.is_err() {
                        return Err(StreamError::Stopped);
                    }
                }
                // The torrent's actor may go away without a last status (its handle dropped).
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if self.control.is_closed() {
                        return Err(StreamError::Stopped);
                    }
                }
            }
        }
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        self.verified.streams.fetch_sub(1, Ordering::AcqRel);
        let _ = self.control.send(Control::Reader { id: self.id, reader: None });
    }
}
