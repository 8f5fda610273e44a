//! The handle front ends hold on a torrent of a [`Session`]: its status, its controls (limits,
//! pause, file priorities, streams) and its progress per file.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_proto::InfoHash;
use shoal_storage::Storage;
use tokio::sync::{oneshot, watch};

use super::Session;
use crate::TorrentStatus;
use crate::dht::AnnounceLoop;
use crate::rate_limit::RateLimiter;
use crate::torrent::{Control, PeerStatus};

/// Per piece, whether it is wanted and whether it is high priority, from the priorities of
/// the files it touches (`file_ranges`: offset and length of each file; missing priorities
/// count as normal). A piece shared by a skipped and a wanted file is wanted.
pub(super) fn piece_priorities(
    layout: &shoal_proto::Layout,
    file_ranges: &[(u64, u64)],
    priorities: &[FilePriority],
) -> (Vec<bool>, Vec<bool>) {
    let of = |i: usize| priorities.get(i).copied().unwrap_or(FilePriority::Normal);
    let touching = |piece| {
        let start = layout.piece_offset(piece);
        let end = start + layout.piece_size(piece) as u64;
        file_ranges
            .iter()
            .enumerate()
            .filter(move |(_, (offset, length))| *length > 0 && *offset < end && offset + length > start)
            .map(|(i, _)| of(i))
    };
    let wanted = layout.pieces().map(|p| touching(p).any(|f| f != FilePriority::Skip)).collect();
    let high = layout.pieces().map(|p| touching(p).any(|f| f == FilePriority::High)).collect();
    (wanted, high)
}

/// How much a file is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePriority {
    /// Not downloaded.
    Skip,
    /// Downloaded.
    Normal,
    /// Downloaded before the others.
    High,
}

/// Handle on a torrent in a [`Session`].
#[derive(Debug)]
pub struct Torrent {
    pub(super) info_hash: InfoHash,
    /// A hybrid torrent's v2 swarm hash (truncated SHA-256), also announced and accepted.
    pub(super) alias: Option<InfoHash>,
    pub(super) status: Arc<watch::Sender<TorrentStatus>>,
    pub(super) control: tokio::sync::mpsc::UnboundedSender<Control>,
    pub(super) announcer: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// Wakes the announce loop for an announce now.
    pub(super) announce_now: Arc<tokio::sync::Notify>,
    /// Keep the torrent announced on the DHT while it lives (a hybrid under both hashes).
    pub(super) _dht_loops: Vec<AnnounceLoop>,
    pub(super) session: Session,
    /// The torrent's own upload and download caps.
    pub(super) caps: (Arc<RateLimiter>, Arc<RateLimiter>),
    pub(super) layout: shoal_proto::Layout,
    /// Offset and length of each file.
    pub(super) file_ranges: Vec<(u64, u64)>,
    /// The last answer of [`Torrent::file_progress`], with the verified byte count it was
    /// for.
    pub(super) file_progress: FileProgressCache,
    pub(super) storage: Arc<Storage>,
    /// Verified pieces, for streams.
    pub(super) verified: Arc<crate::stream::Verified>,
}

/// The verified byte count and the per-file bytes last reported for it.
pub(super) type FileProgressCache = Arc<std::sync::Mutex<Option<(u64, Vec<u64>)>>>;

/// Bytes of each file (offset, length) in verified pieces (`have`, one flag per piece).
fn file_bytes(layout: &shoal_proto::Layout, files: &[(u64, u64)], have: &[bool]) -> Vec<u64> {
    files
        .iter()
        .map(|&(offset, length)| {
            let end = offset + length;
            let mut done = 0;
            if length > 0 {
                let first = (offset / u64::from(layout.piece_length())) as u32;
                let last = ((end - 1) / u64::from(layout.piece_length())) as u32;
                for p in first..=last {
                    if let Some(piece) = layout.piece(p).filter(|_| have.get(p as usize) == Some(&true)) {
                        let start = layout.piece_offset(piece);
                        let stop = start + u64::from(layout.piece_size(piece));
                        done += stop.min(end) - start.max(offset);
                    }
                }
            }
            done
        })
        .collect()
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Torrent {
    /// The torrent's info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The latest status.
    pub fn status(&self) -> TorrentStatus {
        self.status.borrow().clone()
    }

    /// What `f` reads of the current status, without copying the status (its name, tracker
    /// list and so on): for code that looks at thousands of torrents every second.
    pub fn peek<R>(&self, f: impl FnOnce(&TorrentStatus) -> R) -> R {
        f(&self.status.borrow())
    }

    /// A receiver that wakes on every status change.
    pub fn subscribe(&self) -> watch::Receiver<TorrentStatus> {
        self.status.subscribe()
    }

    /// Adds peers to connect to.
    pub fn add_peers(&self, addrs: Vec<SocketAddr>) {
        let _ = self.control.send(Control::Peers { addrs, manual: true });
    }

    /// Caps this torrent's upload and download (bytes per second; `None`: only the session's
    /// caps apply).
    pub fn set_limits(&self, upload: Option<u64>, download: Option<u64>) {
        self.caps.0.set_rate(upload);
        self.caps.1.set_rate(download);
    }

    /// The most connections for this torrent; extra ones are closed.
    pub fn set_max_peers(&self, n: usize) {
        let _ = self.control.send(Control::MaxPeers(n));
    }

    /// Announces to the trackers now instead of at the next interval. False when the torrent
    /// has no tracker to announce to.
    pub fn reannounce(&self) -> bool {
        self.announce_now.notify_one();
        self.announcer.is_some()
    }

    /// Pauses the torrent: closes its connections and takes no new ones until resumed.
    pub fn pause(&self) {
        let _ = self.control.send(Control::Pause(true));
    }

    /// Resumes a paused torrent.
    pub fn resume(&self) {
        let _ = self.control.send(Control::Pause(false));
    }

    /// Chooses the files to download (`wanted[i]` for file `i`; missing entries count as
    /// wanted). Pieces shared with a wanted file are fetched whole.
    pub fn set_files_wanted(&self, wanted: &[bool]) {
        let priorities: Vec<FilePriority> =
            wanted.iter().map(|w| if *w { FilePriority::Normal } else { FilePriority::Skip }).collect();
        self.set_file_priorities(&priorities);
    }

    /// Sets each file's priority (missing entries: normal): skipped files are not fetched
    /// (except pieces they share with wanted ones), high ones are fetched first.
    pub fn set_file_priorities(&self, priorities: &[FilePriority]) {
        let (wanted, high) = piece_priorities(&self.layout, &self.file_ranges, priorities);
        let _ = self.control.send(Control::Wanted(wanted, high));
    }

    /// Fetches pieces in order, first to last (`true`), or rarest first (the default): for
    /// files read while they download. File priorities still come first.
    pub fn set_sequential(&self, sequential: bool) {
        let _ = self.control.send(Control::Sequential(sequential));
    }

    /// The connected peers. The request is sent at once; the returned future, which borrows
    /// nothing, waits for the answer (so a caller can drop its locks before awaiting it).
    pub fn peers(&self) -> impl Future<Output = Vec<PeerStatus>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.control.send(Control::ListPeers(tx)).is_ok();
        async move { if sent { rx.await.unwrap_or_default() } else { Vec::new() } }
    }

    /// [`Torrent::file_progress`] when it can be answered without asking the torrent (no
    /// piece verified since the last answer).
    pub fn file_progress_now(&self) -> Option<Vec<u64>> {
        let have_now = self.status.borrow().stats.bytes_have;
        lock(&self.file_progress).as_ref().filter(|(have, _)| *have == have_now).map(|(_, f)| f.clone())
    }

    /// Bytes verified in each file, in file order. Sent and
    /// awaited like [`Torrent::peers`].
    pub fn file_progress(&self) -> impl Future<Output = Vec<u64>> + Send + 'static {
        // Answered from the last answer while no piece was verified since (a seeding torrent
        // is asked once), so listing thousands of torrents does not wake each of them.
        let have_now = self.status.borrow().stats.bytes_have;
        let cached = lock(&self.file_progress).as_ref().filter(|(have, _)| *have == have_now).map(|(_, f)| f.clone());
        let query = cached.is_none().then(|| {
            let (tx, rx) = oneshot::channel();
            let sent = self.control.send(Control::Have(tx)).is_ok();
            (sent, rx, self.layout, self.file_ranges.clone(), self.file_progress.clone())
        });
        async move {
            let (sent, rx, layout, files, cache) = match (cached, query) {
                (Some(cached), _) => return cached,
                (None, Some(query)) => query,
                (None, None) => return Vec::new(),
            };
            let have = if sent { rx.await.ok() } else { None };
            let Some(have) = have else { return vec![0; files.len()] };
            let progress = file_bytes(&layout, &files, &have);
            *lock(&cache) = Some((have_now, progress.clone()));
            progress
        }
    }

    /// Whether piece `piece` is verified (false for an index past the end).
    pub fn has_piece(&self, piece: u32) -> bool {
        self.verified.contains(shoal_proto::PieceIndex::new_unchecked(piece))
    }

    /// [`Torrent::has_piece`] as a function that can go to another thread and outlive this
    /// handle (it then keeps answering from the last verified set).
    pub fn piece_check(&self) -> impl Fn(u32) -> bool + Send + Sync + 'static {
        let verified = self.verified.clone();
        move |piece| verified.contains(shoal_proto::PieceIndex::new_unchecked(piece))
    }

    /// A reader of file `index` (in the torrent's order) that waits for verified data and
    /// moves the torrent's piece deadlines with it; see [`crate::stream`].
    pub fn stream(&self, index: usize) -> Result<crate::FileStream, crate::StreamError> {
        let &(offset, length) = self
            .file_ranges
            .get(index)
            .ok_or(crate::StreamError::NoSuchFile { index, count: self.file_ranges.len() })?;
        crate::FileStream::open(crate::stream::Source {
            layout: self.layout,
            file: offset..offset + length,
            storage: self.storage.clone(),
            verified: self.verified.clone(),
            status: self.status.subscribe(),
            control: self.control.clone(),
        })
    }

    /// Stops the torrent: tells the trackers, closes connections, saves resume data.
    pub async fn stop(mut self) {
        if let Some((stop, task)) = self.announcer.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        self.session.torrents().remove(&self.info_hash);
        if let Some(alias) = self.alias {
            self.session.torrents().remove(&alias);
        }
        if let Some(lsd) = &self.session.inner.lsd {
            lsd.remove(self.info_hash);
        }
    }
}
