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

use crate::conn::PeerStream;
use crate::dht::{AnnounceLoop, Dht, DhtConfig};
use crate::lsd::Lsd;
use crate::metadata::{self, MetadataProgress};
use crate::peer::Limits;
use crate::rate_limit::{Caps, RateLimiter};
pub use crate::torrent::PeerStatus;
use crate::torrent::{self, Control, Inbox, Setup};
use crate::{EngineError, TorrentState, TorrentStatus, peer, tracker};

mod handle;
mod incoming;

use handle::piece_priorities;
pub use handle::{FilePriority, Torrent};
use incoming::{accept_loop, bind_utp, check_open_file_limit, utp_accept_loop};

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
