//! The node: a listening socket shared by all torrents, the set of torrents, and the handles
//! front ends use to drive them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shoal_proto::{InfoHash, Metainfo, PeerId};
use shoal_storage::{FileSpec, OpenMode, ResumeStore, Storage, StorageLayout};
use shoal_swarm::{Bitfield, Swarm};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::peer::Limits;
use crate::rate_limit::RateLimiter;
use crate::torrent::{self, Control, Inbox, Setup};
use crate::{EngineError, TorrentState, TorrentStatus, peer, tracker};

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Address to accept peers on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Most connections per torrent.
    pub max_peers: usize,
    /// Disk threads per torrent.
    pub disk_threads: usize,
    /// Swarm logic tunables.
    pub swarm: shoal_swarm::Config,
    /// Global upload cap in bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Global download cap in bytes per second (`None`: unlimited).
    pub download_limit: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            max_peers: 80,
            disk_threads: 2,
            swarm: shoal_swarm::Config::default(),
            upload_limit: None,
            download_limit: None,
        }
    }
}

/// What to add.
#[derive(Clone, Debug)]
pub struct AddTorrent {
    /// The parsed torrent.
    pub meta: Metainfo,
    /// Folder the content is stored under.
    pub download_dir: PathBuf,
    /// Peers to connect to directly, retried until they answer.
    pub peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers.
    pub use_trackers: bool,
}

#[derive(Debug)]
struct Inner {
    peer_id: PeerId,
    listen_addr: SocketAddr,
    config: SessionConfig,
    torrents: Mutex<HashMap<InfoHash, Inbox>>,
    limits: Limits,
}

/// A running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
    accept: Arc<tokio::task::JoinHandle<()>>,
}

impl Session {
    /// Opens the listening socket and starts accepting peers.
    pub async fn start(config: SessionConfig) -> Result<Self, EngineError> {
        let listener = match TcpListener::bind(config.listen).await {
            Ok(l) => l,
            // The default port is taken (another client?): any free port will do.
            Err(_) if config.listen.port() == 6881 => {
                let any = SocketAddr::new(config.listen.ip(), 0);
                TcpListener::bind(any).await.map_err(|source| EngineError::Listen { addr: any, source })?
            }
            Err(source) => {
                return Err(EngineError::Listen { addr: config.listen, source });
            }
        };
        let listen_addr =
            listener.local_addr().map_err(|source| EngineError::Listen { addr: config.listen, source })?;
        let peer_id = PeerId::generate(rand::random());
        let (config_upload, config_download) = (config.upload_limit, config.download_limit);
        let inner = Arc::new(Inner {
            peer_id,
            listen_addr,
            config,
            torrents: Mutex::new(HashMap::new()),
            limits: Limits {
                upload: Arc::new(RateLimiter::new(config_upload)),
                download: Arc::new(RateLimiter::new(config_download)),
            },
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(Self { inner, accept: Arc::new(accept) })
    }

    /// The address peers can reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// Changes the global upload and download caps (bytes per second; `None`: unlimited).
    pub fn set_limits(&self, upload: Option<u64>, download: Option<u64>) {
        self.inner.limits.upload.set_rate(upload);
        self.inner.limits.download.set_rate(download);
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// Adds a torrent: opens (and preallocates) its files, reuses verified data found on disk,
    /// then starts fetching and serving.
    pub async fn add(&self, add: AddTorrent) -> Result<Torrent, EngineError> {
        let meta = add.meta;
        let info_hash = meta.info_hash;
        if self.torrents().contains_key(&info_hash) {
            return Err(EngineError::Duplicate(info_hash));
        }
        let layout = meta.info.layout;
        let status = Arc::new(watch::Sender::new(TorrentStatus {
            name: meta.info.name.clone(),
            total_length: layout.total_length(),
            state: TorrentState::Checking { done: 0, total: layout.piece_count() },
            stats: shoal_swarm::Stats { pieces_total: layout.piece_count(), ..Default::default() },
            tracker_error: None,
        }));
        let files: Vec<FileSpec> =
            meta.info.files.iter().map(|f| FileSpec { path: meta.info.file_components(f), length: f.length }).collect();
        let storage_layout =
            StorageLayout::new(add.download_dir.clone(), files, meta.info.piece_length, meta.info.pieces.clone())?;
        let resume = Arc::new(ResumeStore::new(ResumeStore::default_path(&add.download_dir, &info_hash.to_hex())?));
        let check_status = status.clone();
        let resume2 = resume.clone();
        let (storage, have) = tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
            let storage = Storage::open(storage_layout, OpenMode::ReadWrite)?;
            let total = layout.piece_count();
            let progress = |done: u32| check_status.send_modify(|s| s.state = TorrentState::Checking { done, total });
            let have = match resume2.load(storage.layout()) {
                // Pieces recorded as verified are trusted; the rest may have been written
                // after the last save, so they are checked.
                Some(mut recorded) => {
                    let unrecorded: Vec<_> = layout.pieces().filter(|p| !recorded[p.idx()]).collect();
                    for piece in storage.check_pieces(unrecorded, progress)? {
                        recorded[piece.idx()] = true;
                    }
                    recorded
                }
                None => storage.check_existing(progress)?,
            };
            Ok((storage, have))
        })
        .await
        .map_err(|_| EngineError::Stopped)??;
        let have = Bitfield::from_bools(&have);
        let swarm = Swarm::new(layout, have, self.inner.config.swarm.clone(), Instant::now());
        let complete = swarm.is_complete();
        status.send_modify(|s| {
            s.stats = swarm.stats();
            s.state = if complete { TorrentState::Seeding } else { TorrentState::Downloading };
        });
        let inbox = torrent::spawn(Setup {
            info_hash,
            peer_id: self.inner.peer_id,
            listen_port: self.inner.listen_addr.port(),
            swarm,
            storage: Arc::new(storage),
            resume,
            status: status.clone(),
            max_peers: self.inner.config.max_peers,
            disk_threads: self.inner.config.disk_threads,
            limits: self.inner.limits.clone(),
        });
        if !add.peers.is_empty() {
            let _ = inbox.control.send(Control::Peers { addrs: add.peers, manual: true });
        }
        let announcer = (add.use_trackers && !meta.announce_list.is_empty()).then(|| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = tokio::spawn(tracker::announce_loop(tracker::Announcer {
                tiers: meta.announce_list.clone(),
                info_hash,
                peer_id: self.inner.peer_id,
                port: self.inner.listen_addr.port(),
                status: status.clone(),
                control: inbox.control.clone(),
                stop: stop_rx,
            }));
            (stop_tx, task)
        });
        self.torrents().insert(info_hash, inbox.clone());
        Ok(Torrent { info_hash, status, control: inbox.control, announcer, session: self.clone() })
    }

    fn torrents(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, Inbox>> {
        self.inner.torrents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if Arc::strong_count(&self.accept) == 1 {
            self.accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = incoming(stream, addr, &inner).await {
                tracing::debug!(%addr, "incoming connection dropped: {e}");
            }
        });
    }
}

async fn incoming(mut stream: TcpStream, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    stream.set_nodelay(true)?;
    let theirs = peer::read_handshake(&mut stream).await?;
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&theirs.info_hash).cloned();
    let Some(inbox) = inbox else {
        return Err(peer::HandshakeError::WrongTorrent);
    };
    if theirs.peer_id == inner.peer_id {
        return Err(peer::HandshakeError::SelfConnection);
    }
    peer::write_handshake(&mut stream, theirs.info_hash, inner.peer_id).await?;
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// Handle on a torrent in a [`Session`].
#[derive(Debug)]
pub struct Torrent {
    info_hash: InfoHash,
    status: Arc<watch::Sender<TorrentStatus>>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    announcer: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    session: Session,
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

    /// A receiver that wakes on every status change.
    pub fn subscribe(&self) -> watch::Receiver<TorrentStatus> {
        self.status.subscribe()
    }

    /// Adds peers to connect to.
    pub fn add_peers(&self, addrs: Vec<SocketAddr>) {
        let _ = self.control.send(Control::Peers { addrs, manual: true });
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
    }
}
