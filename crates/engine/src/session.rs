//! The node: a listening socket shared by all torrents, the set of torrents, and the handles
//! front ends use to drive them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shoal_proto::magnet::Magnet;
use shoal_proto::{InfoHash, Metainfo, PeerId};
use shoal_storage::{FileSpec, OpenMode, ResumeStore, Storage, StorageLayout};
use shoal_swarm::{Bitfield, Swarm};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::conn::{PeerStream, Wire};
use crate::dht::{AnnounceLoop, Dht, DhtConfig};
use crate::lsd::Lsd;
use crate::metadata::{self, MetadataProgress};
use crate::peer::Limits;
use crate::rate_limit::{Caps, RateLimiter};
pub use crate::torrent::PeerStatus;
use crate::torrent::{self, Control, Inbox, Setup};
use crate::{EngineError, TorrentState, TorrentStatus, peer, tracker};

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Address to accept peers on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Most connections per torrent.
    pub max_peers: usize,
    /// Most connections over all torrents.
    pub max_connections: usize,
    /// Disk threads of the session (they write and hash received data), shared by every torrent.
    pub disk_threads: usize,
    /// Swarm logic tunables.
    pub swarm: shoal_swarm::Config,
    /// Global upload cap in bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Global download cap in bytes per second (`None`: unlimited).
    pub download_limit: Option<u64>,
    /// Run a Mainline DHT node (BEP 5) with these settings (`None`: no DHT). If its UDP port
    /// is taken and it is the default 6881, any free port is used instead.
    pub dht: Option<DhtConfig>,
    /// Find and be found by peers on the local network (BEP 14 multicast). If its port cannot
    /// be opened the session runs without it.
    pub lsd: bool,
    /// Address to accept the TLS connections of SSL torrents on (`None`: no SSL listener; SSL
    /// torrents then only dial out). Port 0 picks a free port.
    pub ssl_listen: Option<SocketAddr>,
    /// Protocol encryption (MSE/PE) policy for plain peer connections.
    pub encryption: crate::mse::Encryption,
    /// uTP (BEP 29) on the listening port's UDP twin: on, prefer (dialled first) or off.
    pub utp: crate::UtpMode,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            max_peers: 80,
            max_connections: 500,
            disk_threads: 2,
            swarm: shoal_swarm::Config::default(),
            upload_limit: None,
            download_limit: None,
            dht: None,
            lsd: false,
            ssl_listen: None,
            encryption: crate::mse::Encryption::default(),
            utp: crate::UtpMode::default(),
        }
    }
}

/// A connection for a service of the listening port (see [`Session::serve`]); both
/// BitTorrent handshakes are done.
#[derive(Debug)]
pub struct ServiceConnection {
    /// The connection.
    pub stream: TcpStream,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The handshake the peer sent.
    pub handshake: shoal_proto::wire::Handshake,
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
    /// Each file's priority, in the torrent's file order (`None`, or missing entries: normal).
    /// Skipped files are not fetched, except pieces they share with a wanted file; high ones
    /// come first. Applied before any peer is dialled.
    pub file_priorities: Option<Vec<FilePriority>>,
    /// Fetch pieces first to last instead of rarest first (see [`Torrent::set_sequential`]).
    pub sequential: bool,
    /// Where resume records are kept (`None`: a file under `download_dir/.shoal/`).
    pub resume: Option<Arc<dyn shoal_storage::ResumeBackend>>,
    /// The TLS of an SSL torrent (one whose info dictionary has `ssl-cert`): required for
    /// those, ignored for others.
    pub ssl: Option<crate::SslTorrent>,
}

/// Data checks run at once. More than the cores: a check of a small torrent mostly waits
/// (opening files, reading its resume record from a database busy with other writes), and
/// sixteen waiting threads are cheap where thousands are not.
const CHECKS: usize = 16;

#[derive(Debug)]
struct Inner {
    peer_id: PeerId,
    listen_addr: SocketAddr,
    /// Where TLS connections of SSL torrents are accepted.
    ssl_listen_addr: Option<SocketAddr>,
    config: SessionConfig,
    torrents: Mutex<HashMap<InfoHash, Inbox>>,
    /// Session-wide upload and download caps.
    upload: Arc<RateLimiter>,
    download: Arc<RateLimiter>,
    dht: Option<Dht>,
    lsd: Option<Lsd>,
    /// Connections open over all torrents, and the most allowed.
    connections: Arc<(std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize)>,
    /// Incoming connections refused because they did not start with a BitTorrent handshake,
    /// as those using protocol encryption (MSE) do.
    unreadable: std::sync::atomic::AtomicUsize,
    /// Incoming connections accepted and still in their handshake.
    handshaking: std::sync::atomic::AtomicUsize,
    /// Incoming connections closed at once because the session had no room for them.
    refused: std::sync::atomic::AtomicUsize,
    /// The disk threads every torrent shares.
    disk: crate::disk::DiskPool,
    /// Services on the listening port that are not torrents (see [`Session::serve`]).
    services: Mutex<HashMap<InfoHash, tokio::sync::mpsc::Sender<ServiceConnection>>>,
    /// Where the torrents report peers that said they take part in the search overlay (see
    /// [`Session::on_search_peers`]).
    search_peers: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<SocketAddr>>>,
    /// Data checks running at once (see [`Session::add`]).
    checks: tokio::sync::Semaphore,
    /// How torrents dial peers: encryption policy and the uTP socket.
    dialer: peer::Dialer,
}

/// A running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
    accept: Arc<tokio::task::JoinHandle<()>>,
    ssl_accept: Option<Arc<tokio::task::JoinHandle<()>>>,
    utp_accept: Option<Arc<tokio::task::JoinHandle<()>>>,
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
        let mut listener = listener;
        let mut listen_addr =
            listener.local_addr().map_err(|source| EngineError::Listen { addr: config.listen, source })?;
        let mut utp = None;
        if config.utp != crate::UtpMode::Off {
            // uTP takes the UDP port of the TCP one's number; a port the system picked may be
            // taken on UDP: pick again (a few times) rather than split the two.
            for _ in 0..8 {
                match shoal_utp::UtpSocket::bind(listen_addr).await {
                    Ok(socket) => {
                        utp = Some(socket);
                        break;
                    }
                    Err(_) if config.listen.port() == 0 => {
                        listener = TcpListener::bind(config.listen)
                            .await
                            .map_err(|source| EngineError::Listen { addr: config.listen, source })?;
                        listen_addr = listener
                            .local_addr()
                            .map_err(|source| EngineError::Listen { addr: config.listen, source })?;
                    }
                    Err(_) => break,
                }
            }
            if utp.is_none() {
                utp = bind_utp(listen_addr).await;
            }
        }
        let ssl_listener = match config.ssl_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| EngineError::Listen { addr, source })?),
            None => None,
        };
        let ssl_listen_addr = ssl_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(|source| EngineError::Listen { addr: config.listen, source })?;
        let peer_id = PeerId::generate(rand::random());
        let (config_upload, config_download) = (config.upload_limit, config.download_limit);
        let max_connections = config.max_connections;
        check_open_file_limit(max_connections);
        let config_disk_threads = config.disk_threads;
        let dht = match &config.dht {
            Some(dht) => Some(start_dht(dht.clone()).await?),
            None => None,
        };
        let dialer = peer::Dialer { encryption: config.encryption, utp: utp.clone(), utp_mode: config.utp };
        let lsd = config.lsd.then(|| Lsd::start(listen_addr.port())).and_then(|r| {
            r.map_err(|e| tracing::warn!("local peer discovery is off: cannot join its multicast group: {e}")).ok()
        });
        let inner = Arc::new(Inner {
            peer_id,
            listen_addr,
            ssl_listen_addr,
            config,
            torrents: Mutex::new(HashMap::new()),
            upload: Arc::new(RateLimiter::new(config_upload)),
            download: Arc::new(RateLimiter::new(config_download)),
            dht,
            lsd,
            connections: Arc::new((
                std::sync::atomic::AtomicUsize::new(0),
                std::sync::atomic::AtomicUsize::new(max_connections),
            )),
            unreadable: std::sync::atomic::AtomicUsize::new(0),
            handshaking: std::sync::atomic::AtomicUsize::new(0),
            refused: std::sync::atomic::AtomicUsize::new(0),
            disk: crate::disk::DiskPool::start(config_disk_threads),
            checks: tokio::sync::Semaphore::new(CHECKS),
            services: Mutex::new(HashMap::new()),
            search_peers: Arc::new(std::sync::OnceLock::new()),
            dialer,
        });
        let utp_accept = utp.map(|utp| Arc::new(tokio::spawn(utp_accept_loop(utp, Arc::downgrade(&inner)))));
        let accept = tokio::spawn(accept_loop(listener, inner.clone(), false));
        let ssl_accept = ssl_listener.map(|l| Arc::new(tokio::spawn(accept_loop(l, inner.clone(), true))));
        Ok(Self { inner, accept: Arc::new(accept), ssl_accept, utp_accept })
    }

    /// The address peers can reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// The address SSL torrents' peers reach us on over TLS, if the session listens for them.
    pub fn ssl_listen_addr(&self) -> Option<SocketAddr> {
        self.inner.ssl_listen_addr
    }

    /// Changes the global upload and download caps (bytes per second; `None`: unlimited).
    pub fn set_limits(&self, upload: Option<u64>, download: Option<u64>) {
        self.inner.upload.set_rate(upload);
        self.inner.download.set_rate(download);
    }

    /// Changes the most connections over all torrents (existing ones are kept).
    pub fn set_max_connections(&self, n: usize) {
        self.inner.connections.1.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands plain connections whose BitTorrent handshake names `info_hash` (and no torrent of
    /// the session) to `to`, after answering the handshake: how a service such as the search
    /// overlay shares the peer port. A connection `to` has no room for is closed.
    pub fn serve(&self, info_hash: InfoHash, to: tokio::sync::mpsc::Sender<ServiceConnection>) {
        self.inner.services.lock().unwrap_or_else(|e| e.into_inner()).insert(info_hash, to);
    }

    /// From now on every torrent of the session (but SSL torrents) says in its extension
    /// handshakes that this node takes part in the search overlay (`shoal_search`), and the
    /// listen address of each peer that says so too goes to `to` (dropped when `to` is full).
    /// Once per session.
    pub fn on_search_peers(&self, to: tokio::sync::mpsc::Sender<SocketAddr>) {
        let _ = self.inner.search_peers.set(to);
    }

    /// Announces `info_hash` on the local network (BEP 14) with the session's port, as a torrent
    /// is, and returns the peers heard announcing it (`None` when local discovery is off): how a
    /// service of the listening port finds its peers nearby.
    pub fn lsd_watch(&self, info_hash: InfoHash) -> Option<tokio::sync::mpsc::Receiver<SocketAddr>> {
        let lsd = self.inner.lsd.as_ref()?;
        let (tx, rx) = tokio::sync::mpsc::channel(crate::lsd::SERVICE_QUEUE);
        lsd.add(info_hash, None, crate::lsd::Found::Service(tx));
        Some(rx)
    }
    /// Announces swarm `info_hash` (a service's, such as a live channel's) to `trackers`, one
    /// tier each, with this session's peer id and port, and sends every list of peers they give
    /// to the returned receiver; announces again at each interval (retrying with backoff) until
    /// the receiver is dropped, then says `stopped`.
    pub fn track(
        &self,
        trackers: &[String],
        info_hash: InfoHash,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Vec<SocketAddr>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tiers: Vec<Vec<String>> = trackers.iter().map(|t| vec![t.clone()]).collect();
        if !tiers.is_empty() {
            tokio::spawn(tracker::find_peers(tiers, info_hash, self.inner.peer_id, self.listen_addr().port(), tx));
        }
        rx
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// Incoming connections refused so far because they opened with neither a BitTorrent
    /// handshake nor a protocol encryption handshake Shoal could read.
    pub fn unreadable_handshakes(&self) -> usize {
        self.inner.unreadable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Incoming connections closed as soon as they were accepted because every connection
    /// the session allows (`max_connections`, counting those still in their handshake) was in
    /// use, or [`MAX_HANDSHAKING`] peers were already in their handshake.
    pub fn refused_connections(&self) -> usize {
        self.inner.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The DHT node, if the session runs one.
    pub fn dht(&self) -> Option<&Dht> {
        self.inner.dht.as_ref()
    }

    /// Ends session-wide work before the process exits: the DHT node saves its routing table.
    /// Stop the torrents first.
    pub async fn shutdown(&self) {
        if let Some(dht) = &self.inner.dht
            && let Err(e) = dht.shutdown().await
        {
            tracing::debug!("DHT shutdown: {e}");
        }
    }

    /// Adds a torrent: opens (and preallocates) its files, reuses verified data found on disk,
    /// then starts fetching and serving.
    pub async fn add(&self, add: AddTorrent) -> Result<Torrent, EngineError> {
        let meta = add.meta;
        let info_hash = meta.info_hash;
        if meta.info.ssl_cert.is_some() && add.ssl.is_none() {
            return Err(EngineError::NeedsCertificate(info_hash));
        }
        // An SSL torrent's peers reach it on the SSL listener; without one it only dials out.
        let ssl = if meta.info.ssl_cert.is_some() { add.ssl.clone() } else { None };
        let port = match (&ssl, self.inner.ssl_listen_addr) {
            (Some(_), Some(addr)) => addr.port(),
            _ => self.inner.listen_addr.port(),
        };
        // A hybrid torrent is also the v2 swarm named by its truncated SHA-256 info-hash:
        // announced and accepted under both.
        let alias = meta.hybrid.as_ref().map(shoal_proto::metainfo::Hybrid::swarm_hash);
        if self.torrents().contains_key(&info_hash) || alias.is_some_and(|a| self.torrents().contains_key(&a)) {
            return Err(EngineError::Duplicate(info_hash));
        }
        let layout = meta.info.layout;
        let status = Arc::new(watch::Sender::new(TorrentStatus {
            name: meta.info.name.clone(),
            total_length: layout.total_length(),
            state: TorrentState::Checking { done: 0, total: layout.piece_count() },
            stats: shoal_swarm::Stats { pieces_total: layout.piece_count(), ..Default::default() },
            tracker_error: None,
            trackers: Vec::new(),
            unreachable: Vec::new(),
        }));
        let files: Vec<FileSpec> = meta
            .info
            .files
            .iter()
            .map(|f| FileSpec { path: meta.info.file_components(f), length: f.length, padding: f.padding })
            .collect();
        let storage_layout =
            StorageLayout::new(add.download_dir.clone(), files, meta.info.piece_length, meta.info.pieces.clone())?;
        let storage_layout = match (&meta.info.v2, &meta.hybrid) {
            (Some(checks), _) => storage_layout.with_v2(checks.clone())?,
            (None, Some(hybrid)) => storage_layout.with_hybrid(hybrid.checks.clone())?,
            (None, None) => storage_layout,
        };
        let resume = Arc::new(match add.resume.clone() {
            Some(backend) => ResumeStore::with_backend(format!("the resume record of {info_hash}").into(), backend),
            None => ResumeStore::new(ResumeStore::default_path(&add.download_dir, &info_hash.to_hex())?),
        });
        let check_status = status.clone();
        let resume2 = resume.clone();
        // At most CHECKS data checks at once: adding thousands of torrents queues their
        // checks instead of starting thousands of threads.
        let _permit = self.inner.checks.acquire().await.map_err(|_| EngineError::Stopped)?;
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
        let verified = Arc::new(crate::stream::Verified::new(&have));
        let mut swarm = Swarm::new(layout, have, self.inner.config.swarm.clone(), Instant::now());
        let file_ranges: Vec<(u64, u64)> = meta.info.files.iter().map(|f| (f.offset, f.length)).collect();
        if let Some(priorities) = &add.file_priorities {
            let (wanted, high) = piece_priorities(&layout, &file_ranges, priorities);
            swarm.set_wanted(&wanted, &high);
        }
        swarm.set_sequential(add.sequential);
        let complete = swarm.is_complete();
        status.send_modify(|s| {
            s.stats = swarm.stats();
            s.state = if complete { TorrentState::Seeding } else { TorrentState::Downloading };
        });
        let torrent_upload = Arc::new(RateLimiter::new(None));
        let torrent_download = Arc::new(RateLimiter::new(None));
        let storage = Arc::new(storage);
        let inbox = torrent::spawn(Setup {
            info_hash,
            peer_id: self.inner.peer_id,
            listen_port: port,
            swarm,
            storage: storage.clone(),
            resume,
            status: status.clone(),
            max_peers: self.inner.config.max_peers,
            connections: self.inner.connections.clone(),
            disk: self.inner.disk.clone(),
            limits: Limits {
                upload: Caps(vec![torrent_upload.clone(), self.inner.upload.clone()]),
                download: Caps(vec![torrent_download.clone(), self.inner.download.clone()]),
            },
            info_bytes: meta.info_bytes.clone(),
            private: meta.info.private,
            dht: self.inner.dht.clone(),
            verified: verified.clone(),
            ssl: ssl.clone(),
            search_peers: self.inner.search_peers.clone(),
            dialer: self.inner.dialer.clone(),
            v2_checks: meta.info.v2.clone().or_else(|| meta.hybrid.as_ref().map(|h| h.checks.clone())),
        });
        if !add.peers.is_empty() {
            let _ = inbox.control.send(Control::Peers { addrs: add.peers, manual: true });
        }
        // Web seeds (BEP 19) join as peers of their own (see `webseed`).
        if !complete && !meta.web_seeds.is_empty() && meta.info.ssl_cert.is_none() {
            let shared = Arc::new(meta.clone());
            for (i, url) in meta.web_seeds.iter().enumerate() {
                let stream = crate::webseed::start(shared.clone(), url.clone(), i);
                let _ = inbox.control.send(Control::Connected {
                    stream: PeerStream::Duplex(stream),
                    addr: crate::webseed::address(i),
                    handshake: crate::webseed::handshake(&meta, i),
                    outgoing: false,
                });
            }
        }
        let announce_now = Arc::new(tokio::sync::Notify::new());
        let announcer = (add.use_trackers && !meta.announce_list.is_empty()).then(|| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = tokio::spawn(tracker::announce_loop(tracker::Announcer {
                tiers: meta.announce_list.clone(),
                info_hash,
                also: alias,
                peer_id: self.inner.peer_id,
                port,
                status: status.clone(),
                control: inbox.control.clone(),
                stop: stop_rx,
                now: announce_now.clone(),
            }));
            (stop_tx, task)
        });
        // Private torrents (BEP 27) learn peers from their trackers only.
        let dht_loops: Vec<AnnounceLoop> = match self.inner.dht.as_ref().filter(|_| !meta.info.private) {
            Some(dht) => std::iter::once(info_hash)
                .chain(alias)
                .map(|hash| {
                    let control = inbox.control.clone();
                    dht.announce_loop(hash, Some(port), move |addrs| {
                        let _ = control.send(Control::Peers { addrs, manual: false });
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        if let Some(lsd) = self.inner.lsd.as_ref().filter(|_| !meta.info.private) {
            lsd.add(info_hash, Some(port), crate::lsd::Found::Torrent(inbox.control.clone()));
        }
        self.torrents().insert(info_hash, inbox.clone());
        if let Some(alias) = alias {
            self.torrents().insert(alias, inbox.clone());
        }
        Ok(Torrent {
            info_hash,
            alias,
            status,
            control: inbox.control,
            announcer,
            announce_now,
            _dht_loops: dht_loops,
            session: self.clone(),
            caps: (torrent_upload, torrent_download),
            layout,
            file_ranges,
            file_progress: Default::default(),
            storage,
            verified,
        })
    }

    /// Fetches the info dictionary of a magnet link from peers (BEP 9): from the link's own
    /// peers, `extra_peers`, its trackers unless `use_trackers` is false, and the DHT. Returns
    /// the torrent (with the link's trackers, one tier each) and the peers known, to start the
    /// download with. `progress` follows the search. Peers that fail are asked again after a
    /// pause, so this runs until it succeeds or the future is dropped; it fails by itself only
    /// when there is no tracker and no DHT and every peer given was dropped (it proved it
    /// cannot provide the metadata) or none was given.
    pub async fn fetch_metadata(
        &self,
        magnet: &Magnet,
        extra_peers: Vec<SocketAddr>,
        use_trackers: bool,
        progress: watch::Sender<MetadataProgress>,
    ) -> Result<(Metainfo, Vec<SocketAddr>), EngineError> {
        let info_hash = magnet.info_hash;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut given: Vec<SocketAddr> = magnet.peer_addrs();
        given.extend(extra_peers);
        let tiers: Vec<Vec<String>> = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
        let trackers = (use_trackers && !tiers.is_empty()).then(|| {
            tokio::spawn(tracker::find_peers(
                tiers.clone(),
                info_hash,
                self.inner.peer_id,
                self.listen_addr().port(),
                tx.clone(),
            ))
        });
        let dht = self.inner.dht.clone().map(|dht| tokio::spawn(dht_find_peers(dht, info_hash, tx.clone())));
        drop(tx);
        let port = self.listen_addr().port();
        let result = metadata::fetch_metadata(
            (info_hash, magnet.v2_hash),
            self.inner.peer_id,
            port,
            self.inner.dialer.clone(),
            given,
            rx,
            progress,
        )
        .await;
        // The channel is closed now: the tracker task sends `stopped` and ends on its own.
        drop(trackers);
        if let Some(task) = dht {
            task.abort();
        }
        let (info, peers) = result.map_err(|reason| EngineError::Metadata { info_hash, reason })?;
        // A v2-only torrent came whole (info dictionary and piece layers), a v1 one as its
        // info dictionary.
        let parsed = match magnet.v2_hash {
            Some(_) => Metainfo::from_bytes(&info),
            None => Metainfo::from_info_bytes(&info),
        };
        let mut meta = parsed.map_err(|e| EngineError::Metadata {
            info_hash,
            reason: format!("the metadata is not a valid info dictionary: {e}"),
        })?;
        meta.announce = magnet.trackers.first().cloned();
        meta.announce_list = tiers;
        Ok((meta, peers))
    }

    fn torrents(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, Inbox>> {
        self.inner.torrents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if Arc::strong_count(&self.accept) == 1 {
            self.accept.abort();
            if let Some(ssl) = &self.ssl_accept {
                ssl.abort();
            }
            if let Some(utp) = &self.utp_accept {
                utp.abort();
            }
        }
    }
}

/// Starts the DHT node; the default port falls back to any free one.
async fn start_dht(config: DhtConfig) -> Result<Dht, EngineError> {
    match Dht::start(config.clone()).await {
        Ok(dht) => Ok(dht),
        Err(_) if config.listen.port() == 6881 => {
            let any = DhtConfig { listen: SocketAddr::new(config.listen.ip(), 0), ..config };
            Dht::start(any).await.map_err(EngineError::Dht)
        }
        Err(e) => Err(EngineError::Dht(e)),
    }
}

/// Looks the info-hash up on the DHT again and again (a lookup takes seconds and ends), handing
/// the peers found to `sink`, until the sink closes. Lookups are [`AGAIN`] apart, except that
/// one that began with an empty routing table (it could ask only the bootstrap nodes), or
/// before the table emptied, is followed by another [`SOON`] after the table gains nodes.
async fn dht_find_peers(dht: Dht, info_hash: InfoHash, sink: tokio::sync::mpsc::UnboundedSender<Vec<SocketAddr>>) {
    let mut table = dht.table();
    while !sink.is_closed() {
        let refills = table.borrow_and_update().refills;
        match dht.get_peers(info_hash, None).await {
            Ok(mut found) => {
                while let Some(batch) = found.recv().await {
                    if sink.send(batch).is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!("DHT lookup failed: {e}"),
        }
        let refilled = async {
            match table.wait_for(|t| t.refills > refills).await.map(|_| ()) {
                Ok(()) => tokio::time::sleep(SOON).await,
                // The node has stopped: nothing to wait for but the timer.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sink.closed() => return,
            _ = tokio::time::sleep(AGAIN) => {}
            () = refilled => {}
        }
    }
}

/// Pause between two DHT lookups of [`dht_find_peers`].
const AGAIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause of [`dht_find_peers`] between the routing table gaining nodes and the next lookup;
/// nodes that have just met ours may be announcing to it (as a seed's node does when we
/// bootstrap from it), and the lookup hands out what was announced to us.
const SOON: std::time::Duration = std::time::Duration::from_secs(1);

/// Descriptors kept for everything besides peer connections: files of active torrents, the
/// listener, DHT and RPC sockets, the state database.
const OTHER_DESCRIPTORS: u64 = 512;

/// Raises this process's soft limit on open files to its hard limit (many systems start
/// programs at 1,024, too few for hundreds of peers), once, and warns when `max_connections`
/// still does not fit in it: connections beyond the limit then fail to open or are refused.
fn check_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!("cannot raise the open-file limit: {e}");
            }
        }
    });
    if let Some(limit) = getrlimit(Resource::Nofile).current {
        let fits = limit.saturating_sub(OTHER_DESCRIPTORS);
        if max_connections as u64 > fits {
            tracing::warn!(
                "max-connections is {max_connections} but the open-file limit is {limit} (ulimit -n): \
                 about {fits} connections fit; raise the limit or lower max-connections"
            );
        }
    }
}

/// Incoming connections that may be in their handshake at once. A handshake takes one round
/// trip; many more than this at once is a flood, not a swarm.
pub(crate) const MAX_HANDSHAKING: usize = 64;

/// How often a refusal is logged at most (the count goes on in [`Session::refused_connections`]).
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether an incoming connection may be kept: room is checked before anything is read, so a
/// connection that cannot be kept costs a file descriptor (or a uTP slot) for no longer than
/// this, whatever the number of peers dialling. Counts and logs (at most every
/// [`REFUSAL_LOG_EVERY`]) a refusal.
fn admit(inner: &Inner, addr: SocketAddr, last_log: &mut Option<std::time::Instant>) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let (open, max) = (inner.connections.0.load(Relaxed), inner.connections.1.load(Relaxed));
    let handshaking = inner.handshaking.load(Relaxed);
    if open + handshaking >= max || handshaking >= MAX_HANDSHAKING {
        let refused = inner.refused.fetch_add(1, Relaxed) + 1;
        if last_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            *last_log = Some(std::time::Instant::now());
            tracing::warn!(
                %addr,
                "refusing incoming connections: {open} of {max} connections open (max-connections) and \
                 {handshaking} in their handshake (at most {MAX_HANDSHAKING}); {refused} refused so far"
            );
        }
        return false;
    }
    inner.handshaking.fetch_add(1, Relaxed);
    true
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, tls: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (EMFILE) lands here: wait for some to close.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !admit(&inner, addr, &mut last_log) {
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let result = if tls {
                incoming_tls(stream, addr, &inner).await
            } else {
                incoming(Wire::Tcp(stream), addr, &inner).await
            };
            inner.handshaking.fetch_sub(1, Relaxed);
            if let Err(e) = result {
                tracing::debug!(%addr, "incoming connection dropped: {e}");
            }
        });
    }
}

/// Binds the uTP socket (BEP 29) to the listening address's UDP port, as libtorrent does, so
/// peers reach both transports at one address; when that UDP port is taken, any free one
/// (uTP then works outgoing only, and the log says so).
async fn bind_utp(listen: SocketAddr) -> Option<shoal_utp::UtpSocket> {
    match shoal_utp::UtpSocket::bind(listen).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(
                "uTP: cannot listen on UDP port {} ({e}); dialling uTP from another port only",
                listen.port()
            );
            shoal_utp::UtpSocket::bind(SocketAddr::new(listen.ip(), 0))
                .await
                .map_err(|e| tracing::warn!("uTP is off: cannot open a UDP socket: {e}"))
                .ok()
        }
    }
}

/// Takes the uTP connections peers open, with the same admission rules as TCP's.
async fn utp_accept_loop(socket: shoal_utp::UtpSocket, inner: std::sync::Weak<Inner>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut last_log: Option<std::time::Instant> = None;
    while let Ok((stream, addr)) = socket.accept().await {
        let Some(inner) = inner.upgrade() else { return };
        if !admit(&inner, addr, &mut last_log) {
            continue;
        }
        tokio::spawn(async move {
            let result = incoming(Wire::Utp(Box::new(stream)), addr, &inner).await;
            inner.handshaking.fetch_sub(1, Relaxed);
            if let Err(e) = result {
                tracing::debug!(%addr, "incoming uTP connection dropped: {e}");
            }
        });
    }
}

async fn incoming(mut stream: Wire, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use crate::mse::{self, Encryption};
    if let Wire::Tcp(tcp) = &stream {
        tcp.set_nodelay(true)?;
    }
    let policy = inner.config.encryption;
    let mut first = [0u8; 20];
    tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)??;
    if !mse::is_plain_handshake(&first) {
        if policy == Encryption::Off {
            inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(peer::HandshakeError::Refused("an encrypted handshake, and encryption is off"));
        }
        return incoming_mse(stream, &first, addr, inner).await;
    }
    // A plain handshake for a service (search, live channels) is always taken: those are
    // Shoal's own swarms, not torrents.
    let theirs = match peer::read_handshake_after(&mut stream, &first).await {
        Err(e @ peer::HandshakeError::Wire(_)) => {
            inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e);
        }
        other => other?,
    };
    let is_torrent = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&theirs.info_hash);
    if policy == Encryption::Require && is_torrent {
        tracing::warn!(%addr, "refused a plaintext connection: --encryption require takes encrypted (MSE/PE) peers only");
        return Err(peer::HandshakeError::Refused("a plaintext connection, and encryption is required"));
    }
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&theirs.info_hash).cloned();
    let Some(inbox) = inbox else {
        let service = inner.services.lock().unwrap_or_else(|e| e.into_inner()).get(&theirs.info_hash).cloned();
        let Some(service) = service else {
            return Err(peer::HandshakeError::WrongTorrent);
        };
        if theirs.peer_id == inner.peer_id {
            return Err(peer::HandshakeError::SelfConnection);
        }
        let Wire::Tcp(mut stream) = stream else {
            return Err(peer::HandshakeError::Refused("Shoal's services take TCP connections only"));
        };
        let permit = service.try_reserve().map_err(|_| peer::HandshakeError::Refused("the service is busy"))?;
        peer::write_handshake(&mut stream, theirs.info_hash, inner.peer_id, inner.dht.is_some()).await?;
        permit.send(ServiceConnection { stream, addr, handshake: theirs });
        return Ok(());
    };
    if inbox.ssl.is_some() {
        // Not a byte of an SSL torrent goes over a plain connection (libtorrent's rule too).
        return Err(peer::HandshakeError::Refused("a plain connection asked for an SSL torrent"));
    }
    if theirs.peer_id == inner.peer_id {
        return Err(peer::HandshakeError::SelfConnection);
    }
    peer::write_handshake(&mut stream, theirs.info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let stream = stream.into_peer_stream();
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// An incoming MSE handshake (`first`: its first bytes): the torrent is found by its `req2`
/// hash among the session's plain torrents; then the BitTorrent handshake inside.
async fn incoming_mse(stream: Wire, first: &[u8], addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use crate::mse::{self, Encryption};
    let accept = match inner.config.encryption {
        Encryption::Require => mse::RC4,
        _ => mse::PLAINTEXT | mse::RC4,
    };
    // The info-hashes are copied under the lock; their `req2` hashes are computed only for a
    // handshake that got as far as naming one, and outside the lock.
    let known: Vec<InfoHash> = inner
        .torrents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, inbox)| inbox.ssl.is_none())
        .map(|(ih, _)| *ih)
        .collect();
    let find = |req2: &[u8; 20]| known.iter().find(|ih| mse::req2(ih) == *req2).copied();
    let accepted = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, mse::respond(stream, first, find, accept))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)?
        .map_err(|e| {
            match e {
                mse::MseError::NoCommonMethod { .. } => tracing::warn!(%addr, "refused an encrypted connection: {e}"),
                mse::MseError::Bad(_) => {
                    inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {}
            }
            peer::HandshakeError::Encryption(e.to_string())
        })?;
    let info_hash = accepted.info_hash;
    let mut stream = PeerStream::Mse(Box::new(accepted.stream));
    let theirs = peer::read_handshake(&mut stream).await?;
    if theirs.info_hash != info_hash {
        return Err(peer::HandshakeError::WrongTorrent);
    }
    if theirs.peer_id == inner.peer_id {
        return Err(peer::HandshakeError::SelfConnection);
    }
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&info_hash).cloned();
    let Some(inbox) = inbox else { return Err(peer::HandshakeError::WrongTorrent) };
    peer::write_handshake(&mut stream, info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// A connection on the SSL listener: the TLS ClientHello's SNI names the torrent (its hex
/// info-hash, of which the first 40 characters count, as libtorrent reads it); the TLS
/// handshake uses that torrent's configuration, which admits only certificates from its
/// authority; then the BitTorrent handshake runs inside TLS and must name the same torrent.
async fn incoming_tls(stream: TcpStream, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    // One deadline for the whole exchange, so a slow peer holds a handshake slot no longer
    // than a plain one would.
    tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, incoming_tls_steps(stream, addr, inner))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)?
}

async fn incoming_tls_steps(stream: TcpStream, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use peer::HandshakeError;
    stream.set_nodelay(true)?;
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, acceptor)
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Tls)?;
    let sni = start.client_hello().server_name().unwrap_or_default().to_string();
    let info_hash = sni
        .get(..40)
        .and_then(InfoHash::from_hex)
        .ok_or(HandshakeError::Refused("a TLS connection without a torrent's info-hash as SNI"))?;
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&info_hash).cloned();
    let Some(inbox) = inbox else {
        return Err(HandshakeError::WrongTorrent);
    };
    let Some(ssl) = inbox.ssl.clone() else {
        return Err(HandshakeError::Refused("a TLS connection asked for a torrent that is not an SSL torrent"));
    };
    let tls = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, start.into_stream(ssl.server))
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Tls)?;
    let mut stream = PeerStream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
    let theirs = peer::read_handshake(&mut stream).await?;
    if theirs.info_hash != info_hash {
        return Err(HandshakeError::WrongTorrent);
    }
    if theirs.peer_id == inner.peer_id {
        return Err(HandshakeError::SelfConnection);
    }
    peer::write_handshake(&mut stream, info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// Per piece, whether it is wanted and whether it is high priority, from the priorities of
/// the files it touches (`file_ranges`: offset and length of each file; missing priorities
/// count as normal). A piece shared by a skipped and a wanted file is wanted.
fn piece_priorities(
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
    info_hash: InfoHash,
    /// A hybrid torrent's v2 swarm hash (truncated SHA-256), also announced and accepted.
    alias: Option<InfoHash>,
    status: Arc<watch::Sender<TorrentStatus>>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    announcer: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// Wakes the announce loop for an announce now.
    announce_now: Arc<tokio::sync::Notify>,
    /// Keep the torrent announced on the DHT while it lives (a hybrid under both hashes).
    _dht_loops: Vec<AnnounceLoop>,
    session: Session,
    /// The torrent's own upload and download caps.
    caps: (Arc<RateLimiter>, Arc<RateLimiter>),
    layout: shoal_proto::Layout,
    /// Offset and length of each file.
    file_ranges: Vec<(u64, u64)>,
    /// The last answer of [`Torrent::file_progress`], with the verified byte count it was
    /// for.
    file_progress: FileProgressCache,
    storage: Arc<Storage>,
    /// Verified pieces, for streams.
    verified: Arc<crate::stream::Verified>,
}

/// The verified byte count and the per-file bytes last reported for it.
type FileProgressCache = Arc<std::sync::Mutex<Option<(u64, Vec<u64>)>>>;

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
