//! The torrent actor: one task per torrent that owns its [`Swarm`], its peer connections, its
//! disk workers and its resume data, and carries out the swarm's actions.
//!
//! Message flow: peer reader tasks -> bounded peer inbox (back-pressure reaches the sockets);
//! listener, connect tasks, trackers and the handle -> unbounded control inbox; disk workers ->
//! unbounded disk inbox. The loop is `select! { biased; control, disk, peers, tick }`, and after
//! every event it drains the swarm's actions. Status is published on a `watch` channel once per
//! tick and on every state change.
//!
//! Peer exchange (BEP 11): when a message goes to a peer and whether one from it is read is
//! decided by a [`PexSchedule`] per connection (`shoal_swarm::pex`); the actor builds the
//! messages from its connections ([`PexState`]) and filters the addresses it reads.
//!
//! Submodules: `admission` (which addresses are dialled and which connections are taken),
//! `hashes` (BitTorrent v2's hash exchange and the blame for bad blocks), `revocations` (the
//! revocation lists of group torrents).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::extension::{ExtHandshake, MetadataMessage, UT_METADATA, UT_PEX};
use shoal_proto::{Handshake, InfoHash, Message, PeerId, PexMessage, PexState, serve_metadata_piece};
use shoal_storage::{ResumeStore, Storage};
use shoal_swarm::{Action, CandidateConfig, CandidateSource, Candidates, PeerKey, PexSchedule, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use crate::conn::PeerStream;
use crate::disk::{Disk, DiskEvent, DiskJob};
use crate::metadata::{
    OUR_SHOAL_REVOCATIONS, OUR_SHOAL_WANTS, OUR_UT_METADATA, OUR_UT_PEX, SHOAL_REVOCATIONS, SHOAL_SEARCH,
};
use crate::peer::{self, Outgoing, PeerEvent, PeerLink, PeerSink};
use crate::{TorrentState, TorrentStatus};

mod admission;
mod hashes;
mod revocations;

/// Peer messages queued per torrent before readers wait.
const PEER_INBOX: usize = 4096;
/// How often the swarm ticks and status is published.
const TICK: Duration = Duration::from_millis(500);
/// Ticks with nothing going on (no connection, none being made, nothing to dial, nothing to
/// save) after which the torrent stops ticking: long enough for its published rates to fall
/// to 0. It wakes up for any event, and when a waiting candidate becomes due.
const IDLE_AFTER: u32 = 6;
/// The longest an idle torrent sleeps without an event.
const IDLE_TICK: Duration = Duration::from_secs(300);
/// Resume data is saved at most this often while pieces are being verified.
const RESUME_EVERY: Duration = Duration::from_secs(2);
/// What was written is `fsync`ed once this many bytes were verified since the last flush or
/// save, when none is under way, so on a fast download the writes go to disk as they come
/// instead of all at once when the last piece arrives (at 1 GB/s, 2 s is 2 GB of dirty pages,
/// and the save at completion alone took about 0.6 s for 1 GiB). Only the data is flushed, no
/// resume record is written: a daemon keeps those in its database, whose other users must
/// not wait behind dozens of commits a second. 1 GiB from one peer on loopback: 1.48 s with
/// saves every 2 s only, 1.12 s flushing every 64 MiB, 1.03 s every 16 MiB (smaller `fsync`s
/// hold up the writers less), 1.05 s every 8 MiB.
const FLUSH_BYTES: u64 = 16 << 20;
/// Requests we accept in flight from one peer (sent as BEP 10 `reqq`).
const OUR_REQQ: u32 = 2000;
/// Connections to one IP address per torrent (loopback excepted: every local test peer and
/// every process on this machine shares it). Beyond it, new connections from that address
/// are refused.
const MAX_PER_IP: usize = 8;

/// Banned addresses (and ids) one torrent remembers; past it, the list starts over, so a
/// flood of misbehaving peers costs bounded memory.
const MAX_BANNED: usize = 4096;

/// Departed peers whose addresses a torrent remembers.
const MAX_DEPARTED: usize = 256;

/// A torrent says it is refusing peers for lack of room at most this often.
const REFUSAL_LOG: Duration = Duration::from_secs(10);
/// A connection that moved no data either way and wanted nothing for this long may be closed
/// to make room for a newcomer when the torrent has no free slot.
const IDLE_EVICT_AFTER: Duration = Duration::from_secs(60);

/// A request to the torrent from outside its peer connections.
#[derive(Debug)]
pub(crate) enum Control {
    /// A connection whose handshakes are done (incoming or outgoing).
    Connected { stream: PeerStream, addr: SocketAddr, handshake: Handshake, outgoing: bool },
    /// An outgoing attempt failed, and why.
    ConnectFailed { addr: SocketAddr, error: String },
    /// A dial's first transport failed and the next is being tried: why, for the status.
    DialNote { addr: SocketAddr, error: String },
    /// Addresses to try (tracker reply, DHT, `--peer`).
    Peers { addrs: Vec<SocketAddr>, manual: bool },
    /// Stop: close connections, save resume data, then answer.
    Shutdown(oneshot::Sender<()>),
    /// Pause (true) or resume (false).
    Pause(bool),
    /// The most connections for this torrent.
    MaxPeers(usize),
    /// Which pieces are wanted, and which of them first, one flag per piece each.
    Wanted(Vec<bool>, Vec<bool>),
    /// Fetch pieces in order (true) or rarest first.
    Sequential(bool),
    /// Report the connected peers.
    ListPeers(oneshot::Sender<Vec<PeerStatus>>),
    /// Report which pieces are verified, one flag per piece.
    Have(oneshot::Sender<Vec<bool>>),
    /// A stream reads here now (`None`: it went away); see [`crate::stream`].
    Reader { id: u64, reader: Option<shoal_swarm::stream::Reader> },
}

/// One connected peer, for front ends.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    /// Its address.
    pub addr: SocketAddr,
    /// Its client, from its extension handshake, if it said.
    pub client: Option<String>,
    /// We dialled it.
    pub outgoing: bool,
    /// Pieces it has.
    pub pieces: u32,
    /// Bytes per second from it.
    pub down_rate: f64,
    /// Bytes per second to it.
    pub up_rate: f64,
    /// We are choking it.
    pub am_choking: bool,
    /// It is choking us.
    pub peer_choking: bool,
    /// We want its data.
    pub am_interested: bool,
    /// It wants ours.
    pub peer_interested: bool,
}

/// Cheap cloneable sender side of a torrent's inboxes.
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    /// Where the connections' reader tasks send what they read.
    peers: PeerSink,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// An SSL torrent's TLS: its peers connect only over TLS, on the session's SSL listener.
    pub(crate) ssl: Option<crate::SslTorrent>,
}

/// What the actor needs to start.
pub(crate) struct Setup {
    pub(crate) info_hash: InfoHash,
    pub(crate) peer_id: PeerId,
    pub(crate) listen_port: u16,
    pub(crate) swarm: Swarm,
    pub(crate) storage: Arc<Storage>,
    pub(crate) resume: Arc<ResumeStore>,
    pub(crate) status: Arc<watch::Sender<TorrentStatus>>,
    pub(crate) max_peers: usize,
    /// Connections of every torrent of the session, and the most allowed.
    pub(crate) connections: Arc<(std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize)>,
    /// The session's disk threads.
    pub(crate) disk: crate::disk::DiskPool,
    pub(crate) limits: peer::Limits,
    /// The info dictionary as it was hashed, served to peers fetching metadata (BEP 9).
    pub(crate) info_bytes: Bytes,
    /// A private torrent (BEP 27) learns peers from its trackers only: no peer exchange.
    pub(crate) private: bool,
    /// The session's DHT node, told about peers' DHT ports (BEP 5 `port` messages).
    pub(crate) dht: Option<crate::Dht>,
    /// Verified pieces, shared with the torrent's streams.
    pub(crate) verified: Arc<crate::stream::Verified>,
    /// An SSL torrent's TLS (every connection dialled or accepted uses it).
    pub(crate) ssl: Option<crate::SslTorrent>,
    /// The session's sink for peers in the search overlay (see [`crate::Session::on_search_peers`]).
    pub(crate) search_peers: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<SocketAddr>>>,
    /// How the session dials (protocol encryption, uTP), for the connections this torrent dials.
    pub(crate) dialer: peer::Dialer,
    /// The Merkle root of each piece of a v2-only or hybrid torrent, for the hash exchange.
    pub(crate) v2_checks: Option<Arc<[shoal_proto::metainfo::v2::V2Check]>>,
}

/// What a peer told us in its extension handshake (BEP 10), and our peer exchange with it.
#[derive(Debug)]
struct PeerExt {
    /// Where the peer accepts connections: the address we dialled, or its IP with the port
    /// from its extension handshake.
    listen: Option<SocketAddr>,
    /// We dialled the peer (rather than it us).
    outgoing: bool,
    /// Its client name (`v` of its extension handshake).
    client: Option<String>,
    /// The peer's message id for `ut_metadata`.
    ut_metadata: Option<u8>,
    /// When peer exchange messages go to the peer and which of its own are read, and its
    /// message id for `ut_pex`.
    pex_schedule: PexSchedule,
    /// What we told the peer about others so far.
    pex: PexState,
    /// When the connection opened.
    since: Instant,
    /// The certificate a TLS peer presented (DER).
    cert: Option<Vec<u8>>,
    /// Our exchange of revocation lists with the peer.
    revocations: revocations::Exchange,
    /// The peer's id for `shoal_wants`.
    wants: Option<u8>,
}

struct Actor {
    info_hash: InfoHash,
    peer_id: PeerId,
    listen_port: u16,
    swarm: Swarm,
    storage: Arc<Storage>,
    disk: Disk,
    links: HashMap<PeerKey, PeerLink>,
    ids: HashMap<PeerKey, PeerId>,
    next_key: u64,
    /// Addresses to dial: bounded, with backoff (see `shoal_swarm::candidates`).
    candidates: Candidates,
    /// The peers the user named, and why the last dial of each failed (`None`: it did not).
    named: HashMap<SocketAddr, Option<String>>,
    /// Connections open (or being dialled) per address and per IP.
    link_addrs: HashSet<SocketAddr>,
    per_ip: HashMap<IpAddr, usize>,
    connecting: usize,
    banned_ips: HashSet<IpAddr>,
    /// Listening addresses of banned peers: on an address many peers share (loopback), what
    /// names a peer that comes back from another port with another peer id.
    banned_listen: HashSet<SocketAddr>,
    /// The addresses (connection, listening) of the last peers that left, so data they sent
    /// and that is judged later can still be blamed by address.
    departed: std::collections::VecDeque<(PeerKey, SocketAddr, Option<SocketAddr>)>,
    banned_ids: HashSet<PeerId>,
    resume: Arc<ResumeStore>,
    resume_dirty: bool,
    last_resume: Instant,
    /// Bytes of pieces verified since the last flush or save (see [`FLUSH_BYTES`]).
    verified_since_flush: u64,
    /// The periodic resume save in flight, awaited before the last one at shutdown so an
    /// older record never lands after a newer one (or after the owner cleared it).
    saving: Option<tokio::task::JoinHandle<()>>,
    status: Arc<watch::Sender<TorrentStatus>>,
    max_peers: usize,
    connections: Arc<(std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize)>,
    inbox: Inbox,
    error: Option<String>,
    max_message: u32,
    disk_backlog: std::collections::VecDeque<DiskJob>,
    limits: peer::Limits,
    /// When the upload caps were last read, and what they had taken then (see `Caps::usage`).
    upload_readings: (Instant, Vec<u64>),
    info_bytes: Bytes,
    private: bool,
    exts: HashMap<PeerKey, PeerExt>,
    dht: Option<crate::Dht>,
    dialer: peer::Dialer,
    /// Where peers in the search overlay go (unset: this node is not in it); never for an SSL
    /// torrent.
    search_peers: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<SocketAddr>>>,
    /// Paused by the user: no connections.
    paused: bool,
    /// When a refusal for lack of room was last logged (at most one line per [`REFUSAL_LOG`]).
    refusal_logged: Option<Instant>,
    /// Verified pieces, shared with the torrent's streams.
    verified: Arc<crate::stream::Verified>,
    /// Where each stream of this torrent reads.
    readers: std::collections::BTreeMap<u64, shoal_swarm::stream::Reader>,
    /// A v2-only torrent's hash exchange (BEP 52): serving hashes, blaming bad blocks.
    v2: Option<hashes::V2Hashes>,
    /// Byte ranges of the torrent that are padding, sorted.
    padding: Vec<(u64, u64)>,
}

/// Starts the actor; returns its inbox.
pub(crate) fn spawn(setup: Setup) -> Inbox {
    let (peer_tx, peer_rx) = mpsc::channel(PEER_INBOX);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (disk_tx, disk_rx) = mpsc::unbounded_channel();
    let inbox = Inbox {
        peers: PeerSink::new(peer_tx, setup.disk.received(), setup.disk.read_buffers()),
        control: ctl_tx,
        ssl: setup.ssl.clone(),
    };
    let pieces = setup.swarm.layout().piece_count();
    let v2 = setup.v2_checks.and_then(|checks| hashes::V2Hashes::new(&setup.storage, checks));
    let layout = setup.storage.layout();
    let padding: Vec<(u64, u64)> = (0..layout.files().len())
        .filter(|&i| layout.files()[i].padding && layout.files()[i].length > 0)
        .map(|i| (layout.file_offset(i), layout.file_offset(i) + layout.files()[i].length))
        .collect();
    let actor = Actor {
        info_hash: setup.info_hash,
        peer_id: setup.peer_id,
        listen_port: setup.listen_port,
        disk: setup.disk.torrent(setup.storage.clone(), disk_tx),
        swarm: setup.swarm,
        storage: setup.storage,
        links: HashMap::new(),
        ids: HashMap::new(),
        next_key: 1,
        candidates: Candidates::new(CandidateConfig::default()),
        named: HashMap::new(),
        link_addrs: HashSet::new(),
        per_ip: HashMap::new(),
        connecting: 0,
        banned_ips: HashSet::new(),
        banned_listen: HashSet::new(),
        departed: Default::default(),
        banned_ids: HashSet::new(),
        resume: setup.resume,
        resume_dirty: false,
        last_resume: Instant::now(),
        verified_since_flush: 0,
        saving: None,
        status: setup.status,
        max_peers: setup.max_peers,
        connections: setup.connections,
        inbox: inbox.clone(),
        error: None,
        disk_backlog: Default::default(),
        limits: setup.limits,
        upload_readings: (Instant::now(), Vec::new()),
        max_message: shoal_proto::max_message_len(pieces),
        info_bytes: setup.info_bytes,
        private: setup.private,
        exts: HashMap::new(),
        dht: setup.dht,
        dialer: setup.dialer,
        search_peers: if setup.ssl.is_some() { Default::default() } else { setup.search_peers },
        paused: false,
        refusal_logged: None,
        verified: setup.verified,
        readers: Default::default(),
        v2,
        padding,
    };
    let span = tracing::info_span!("torrent", hash = %actor.info_hash);
    tokio::spawn(tracing::Instrument::instrument(actor.run(peer_rx, ctl_rx, disk_rx), span));
    inbox
}

impl Actor {
    async fn run(
        mut self,
        mut peer_rx: mpsc::Receiver<PeerEvent>,
        mut ctl_rx: mpsc::UnboundedReceiver<Control>,
        mut disk_rx: mpsc::UnboundedReceiver<DiskEvent>,
    ) {
        let mut next_tick = tokio::time::Instant::now() + TICK;
        let mut idle_ticks = 0u32;
        let mut revoked_rx = self.revocations().map(|r| r.watch());
        loop {
            let mut ticked = false;
            tokio::select! {
                biased;
                changed = revocations::changed(&mut revoked_rx) => match changed {
                    Ok(()) => self.on_revoked(),
                    Err(_) => revoked_rx = None,
                },
                ctl = ctl_rx.recv() => match ctl {
                    Some(Control::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(ctl) => self.on_control(ctl),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(event) = disk_rx.recv() => self.on_disk(event),
                Some(event) = peer_rx.recv() => self.on_peer(event),
                _ = tokio::time::sleep_until(next_tick) => {
                    self.on_tick();
                    ticked = true;
                }
            }
            self.drain().await;
            // An idle torrent costs nothing until something happens: a thousand seeds
            // without peers must not wake up a thousand times a second.
            let now = Instant::now();
            if !ticked {
                idle_ticks = 0;
                next_tick = next_tick.min(tokio::time::Instant::from_std(now + TICK));
            } else if self.is_idle(now) {
                idle_ticks = idle_ticks.saturating_add(1);
                if idle_ticks == IDLE_AFTER {
                    // Nobody to serve: its files need no descriptors until someone comes.
                    self.storage.close_files();
                }
                let sleep = if idle_ticks >= IDLE_AFTER {
                    let due = self.candidates.next_due().map_or(IDLE_TICK, |at| at.saturating_duration_since(now));
                    due.clamp(TICK, IDLE_TICK)
                } else {
                    TICK
                };
                next_tick = tokio::time::Instant::from_std(now + sleep);
            } else {
                idle_ticks = 0;
                next_tick = tokio::time::Instant::from_std(now + TICK);
            }
        }
    }

    /// Nothing for the tick to do: no connection open or being made, no candidate to dial
    /// now, no resume record to save.
    fn is_idle(&mut self, now: Instant) -> bool {
        self.links.is_empty()
            && self.connecting == 0
            && !self.resume_dirty
            && (self.paused || self.error.is_some() || !self.candidates.any_ready(now))
    }

    fn on_control(&mut self, ctl: Control) {
        match ctl {
            Control::Connected { stream, addr, handshake, outgoing } => {
                if outgoing {
                    self.connecting = self.connecting.saturating_sub(1);
                    self.candidates.connected(addr);
                }
                self.on_connected(stream, addr, handshake, outgoing);
            }
            Control::DialNote { addr, error } => {
                if let Some(last) = self.named.get_mut(&addr) {
                    *last = Some(error);
                }
            }
            Control::ConnectFailed { addr, error } => {
                self.connecting = self.connecting.saturating_sub(1);
                self.candidates.failed(Instant::now(), addr);
                if let Some(last) = self.named.get_mut(&addr) {
                    *last = Some(error);
                }
            }
            Control::Peers { addrs, manual } => {
                let source = if manual { CandidateSource::Manual } else { CandidateSource::Discovery };
                if manual {
                    for addr in &addrs {
                        self.named.entry(*addr).or_insert(None);
                    }
                }
                self.learn(addrs, source);
            }
            Control::Shutdown(_) => {}
            Control::Pause(paused) => {
                self.paused = paused;
                if paused {
                    let keys: Vec<PeerKey> = self.links.keys().copied().collect();
                    for key in keys {
                        self.close(key);
                    }
                } else {
                    self.connect_more();
                }
                self.publish();
            }
            Control::MaxPeers(n) => {
                self.max_peers = n;
                let extra: Vec<PeerKey> = self.links.keys().copied().skip(n).collect();
                for key in extra {
                    self.close(key);
                }
            }
            Control::Wanted(pieces, high) => {
                self.swarm.set_wanted(&pieces, &high);
                self.publish();
            }
            Control::Sequential(on) => self.swarm.set_sequential(on),
            Control::Have(reply) => {
                let _ = reply.send(self.swarm.have().to_bools());
            }
            Control::Reader { id, reader } => {
                match reader {
                    Some(reader) => self.readers.insert(id, reader),
                    None => self.readers.remove(&id),
                };
                self.update_deadlines();
            }
            Control::ListPeers(reply) => {
                let peers = self
                    .swarm
                    .peers()
                    .filter_map(|(key, v)| {
                        let link = self.links.get(&key)?;
                        let ext = self.exts.get(&key);
                        Some(PeerStatus {
                            addr: link.addr,
                            client: ext.and_then(|e| e.client.clone()),
                            outgoing: ext.is_some_and(|e| e.outgoing),
                            pieces: v.pieces,
                            down_rate: v.down_rate,
                            up_rate: v.up_rate,
                            am_choking: v.am_choking,
                            peer_choking: v.peer_choking,
                            am_interested: v.am_interested,
                            peer_interested: v.peer_interested,
                        })
                    })
                    .collect();
                let _ = reply.send(peers);
            }
        }
    }

    fn on_peer(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Messages(key, msgs, _received) => {
                for msg in msgs {
                    if !self.links.contains_key(&key) {
                        return;
                    }
                    self.on_message(key, msg);
                }
            }
            PeerEvent::Unsent(key, bytes) => self.swarm.not_sent(key, bytes),
            PeerEvent::Closed(key, peer::Ended::Violation(reason)) => self.drop_violator(key, &reason),
            PeerEvent::Closed(key, peer::Ended::Closed(reason)) => {
                if let Some(link) = self.links.get(&key) {
                    tracing::debug!(addr = %link.addr, "peer closed: {reason}");
                    self.close(key);
                }
            }
        }
    }

    fn on_message(&mut self, key: PeerKey, msg: Message) {
        match msg {
            Message::Extended { id: 0, payload } => {
                let Ok(ext) = ExtHandshake::decode(&payload) else {
                    return;
                };
                if let Some(reqq) = ext.reqq {
                    self.swarm.set_peer_reqq(key, reqq);
                }
                let addr = self.links.get(&key).map(|l| l.addr);
                if let Some(state) = self.exts.get_mut(&key) {
                    state.client = ext.v.clone();
                    state.ut_metadata = ext.id_of(UT_METADATA);
                    state.pex_schedule.handle_handshake(ext.id_of(UT_PEX));
                    if state.listen.is_none()
                        && let (Some(addr), Some(port)) = (addr, ext.p.filter(|p| *p != 0))
                    {
                        state.listen = Some(SocketAddr::new(addr.ip(), port));
                    }
                    state.revocations.id = ext.id_of(SHOAL_REVOCATIONS);
                    if ext.id_of(SHOAL_SEARCH).is_some()
                        && let (Some(listen), Some(to)) = (state.listen, self.search_peers.get())
                    {
                        let _ = to.try_send(listen);
                    }
                    state.wants = ext.id_of(shoal_proto::extension::SHOAL_WANTS);
                    self.swarm.peer_extensions(key, state.wants.is_some());
                    if state.listen.is_some_and(|l| self.banned_listen.contains(&l)) {
                        tracing::info!(?addr, listen = ?state.listen, "refusing a banned peer back from another port");
                        return self.close(key);
                    }
                }
                self.send_revocations(key);
            }
            Message::Extended { id: OUR_SHOAL_WANTS, payload } => {
                match shoal_proto::extension::decode_wants(&payload) {
                    Ok(pieces) => self.swarm.handle_wants(key, &pieces),
                    Err(e) => tracing::debug!("ignoring a bad shoal_wants message: {e}"),
                }
            }
            Message::Extended { id: OUR_SHOAL_REVOCATIONS, payload } => self.on_revocations(key, payload),
            Message::Extended { id: OUR_UT_METADATA, payload } => self.on_metadata_message(key, &payload),
            Message::Port(port) if port != 0 => {
                if let (Some(dht), Some(link)) = (self.dht.clone(), self.links.get(&key)) {
                    let node = SocketAddr::new(link.addr.ip(), port);
                    tokio::spawn(async move {
                        let _ = dht.add_node(node).await;
                    });
                }
            }
            Message::Extended { id: OUR_UT_PEX, payload } => self.on_pex(key, &payload),
            Message::Unknown { id: id @ 21..=23, payload } => self.on_hash_message(key, id, &payload),
            msg => {
                match self.swarm.handle_message(Instant::now(), key, msg) {
                    // The swarm let go of this peer earlier in the same batch; its disconnect
                    // is already queued.
                    Ok(()) | Err(shoal_swarm::PeerError::UnknownPeer) => {}
                    Err(e) => self.drop_violator(key, &e.to_string()),
                }
            }
        }
    }

    /// A peer exchange message (BEP 11). Whether it is read, and how many of its addresses,
    /// is [`PexSchedule::accept`]'s call; loopback addresses are taken only from a peer on
    /// loopback itself.
    fn on_pex(&mut self, key: PeerKey, payload: &Bytes) {
        let now = Instant::now();
        let Some(state) = self.exts.get_mut(&key) else { return };
        let Some(max_added) = state.pex_schedule.accept(now) else { return };
        let from_loopback = self.links.get(&key).is_some_and(|l| l.addr.ip().is_loopback());
        match PexMessage::decode(payload) {
            Ok(pex) => {
                tracing::debug!(offered = pex.added.len(), "peer exchange");
                let addrs: Vec<SocketAddr> =
                    pex.added.into_iter().filter(|a| from_loopback || !a.ip().is_loopback()).take(max_added).collect();
                self.learn(addrs, CandidateSource::Pex);
            }
            Err(e) => tracing::debug!("ignoring a bad peer exchange message: {e}"),
        }
    }

    /// A peer asks for a piece of the info dictionary (BEP 9).
    fn on_metadata_message(&mut self, key: PeerKey, payload: &Bytes) {
        let Some(their_id) = self.exts.get(&key).and_then(|e| e.ut_metadata) else {
            return;
        };
        if let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(payload) {
            let reply = serve_metadata_piece(&self.info_bytes, piece);
            self.send(key, Message::Extended { id: their_id, payload: reply.encode().into() });
        }
    }

    /// Tells each peer that takes part in peer exchange (BEP 11) which peers joined and left
    /// since the last message, when its [`PexSchedule`] says a message is due.
    fn exchange_peers(&mut self, now: Instant) {
        if !self.exts.values().any(|e| e.pex_schedule.send_due(now)) {
            return;
        }
        let listening: BTreeSet<SocketAddr> = self.exts.values().filter_map(|e| e.listen).collect();
        let mut out = Vec::new();
        for (&key, state) in self.exts.iter_mut() {
            let Some(id) = state.pex_schedule.poll_send(now) else { continue };
            let mut others = listening.clone();
            if let Some(own) = state.listen {
                others.remove(&own);
            }
            if let Some(msg) = state.pex.diff(&others) {
                out.push((key, Message::Extended { id, payload: msg.encode().into() }));
            }
        }
        for (key, msg) in out {
            self.send(key, msg);
        }
    }

    /// Closes the connection of a peer that broke the protocol.
    fn drop_violator(&mut self, key: PeerKey, reason: &str) {
        if let Some(link) = self.links.get(&key) {
            tracing::info!(addr = %link.addr, "dropping peer: {reason}");
            self.close(key);
        }
    }

    /// Gives the pieces ahead of the streams their deadlines (none once no stream is left).
    fn update_deadlines(&mut self) {
        let readers: Vec<shoal_swarm::stream::Reader> = self.readers.values().cloned().collect();
        let have = self.swarm.have();
        let urgent = shoal_swarm::stream::deadlines(&readers, self.swarm.layout(), |p| have.get(p));
        self.swarm.set_deadlines(Instant::now(), urgent);
    }

    fn on_disk(&mut self, event: DiskEvent) {
        match event {
            DiskEvent::Verified { piece, ok, leaves } => {
                if !ok {
                    tracing::warn!(piece = piece.get(), "piece failed its hash check; fetching it again");
                    if let Some(leaves) = leaves
                        && self.blame_failed_piece(piece, leaves)
                    {
                        return;
                    }
                }
                let was_complete = self.swarm.is_complete();
                self.swarm.handle_verified(Instant::now(), piece, ok);
                if ok {
                    self.verified.insert(piece);
                    self.resume_dirty = true;
                    self.verified_since_flush += u64::from(self.swarm.layout().piece_size(piece));
                }
                if !was_complete && self.swarm.is_complete() {
                    self.save_resume();
                    self.publish();
                } else if self.verified_since_flush >= FLUSH_BYTES
                    && self.saving.as_ref().is_none_or(|s| s.is_finished())
                {
                    self.flush_written();
                }
            }
            DiskEvent::Failed(e) => {
                tracing::error!("disk error: {e}");
                self.error = Some(e);
                let keys: Vec<PeerKey> = self.links.keys().copied().collect();
                for key in keys {
                    self.close(key);
                }
                self.publish();
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let (last, readings) = &mut self.upload_readings;
        let used = self.limits.upload.usage(readings, now.saturating_duration_since(*last));
        *last = now;
        self.swarm.set_upload_use(used);
        self.swarm.tick(now);
        self.tick_blames(now);
        self.exchange_peers(now);
        self.connect_more();
        if self.resume_dirty && now.duration_since(self.last_resume) >= RESUME_EVERY {
            self.save_resume();
        }
        self.publish();
    }

    /// Starts outgoing connections while below the peer limit: the best candidates first,
    /// each O(log n), none to an address already connected or an IP at its limit.
    fn connect_more(&mut self) {
        if self.error.is_some() || self.paused {
            return;
        }
        let now = Instant::now();
        while self.links.len() + self.connecting < self.max_peers && !self.session_full() {
            let (links, per_ip) = (&self.link_addrs, &self.per_ip);
            let skip = |a: SocketAddr| {
                links.contains(&a) || (!a.ip().is_loopback() && per_ip.get(&a.ip()).copied().unwrap_or(0) >= MAX_PER_IP)
            };
            let Some(addr) = self.candidates.next(now, skip) else { break };
            self.connecting += 1;
            let (info_hash, peer_id, control) = (self.info_hash, self.peer_id, self.inbox.control.clone());
            let dht = self.dht.is_some();
            let tls = self.inbox.ssl.as_ref().map(|s| s.client.clone());
            let dialer = self.dialer.clone();
            tracing::debug!(%addr, "dialling");
            tokio::spawn(async move {
                let notes = control.clone();
                let note = move |error: String| {
                    let _ = notes.send(Control::DialNote { addr, error });
                };
                let msg = match peer::connect(addr, info_hash, peer_id, dht, tls, &dialer, &note).await {
                    Ok((stream, handshake)) => Control::Connected { stream, addr, handshake, outgoing: true },
                    Err(e) => {
                        tracing::debug!(%addr, "connect failed: {e}");
                        Control::ConnectFailed { addr, error: e.to_string() }
                    }
                };
                let _ = control.send(msg);
            });
        }
    }

    fn send(&mut self, key: PeerKey, msg: Message) {
        let Some(link) = self.links.get(&key) else {
            return;
        };
        if link.tx.try_send(Outgoing::Msg(msg)).is_err() {
            tracing::debug!(addr = %link.addr, "send queue full; closing");
            self.close(key);
        }
    }

    /// Closes a connection and forgets the peer.
    fn close(&mut self, key: PeerKey) {
        self.swarm.remove_peer(key);
        self.unlink(key, Duration::from_secs(5));
    }

    /// Drops our side of a connection (the writer closes the socket when its link goes); the
    /// address may be dialled again after `retry`. Returns the peer's address and id.
    fn unlink(&mut self, key: PeerKey, retry: Duration) -> Option<(SocketAddr, Option<PeerId>)> {
        let id = self.ids.remove(&key);
        let listen = self.exts.remove(&key).and_then(|e| e.listen);
        let link = self.links.remove(&key)?;
        if self.departed.len() >= MAX_DEPARTED {
            self.departed.pop_front();
        }
        self.departed.push_back((key, link.addr, listen));
        self.connections.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.link_addrs.remove(&link.addr);
        if let Some(n) = self.per_ip.get_mut(&link.addr.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&link.addr.ip());
            }
        }
        self.candidates.closed(Instant::now(), link.addr, retry);
        Some((link.addr, id))
    }

    /// Whether the block lies wholly in padding (never fetched: it is zeros).
    fn is_padding(&self, index: u32, begin: u32, length: u32) -> bool {
        let start = u64::from(index) * u64::from(self.swarm.layout().piece_length()) + u64::from(begin);
        let end = start + u64::from(length);
        let at = self.padding.partition_point(|&(_, pad_end)| pad_end <= start);
        self.padding.get(at).is_some_and(|&(pad_start, pad_end)| pad_start <= start && end <= pad_end)
    }

    /// A peer's connection and listening addresses, while it is connected or shortly after.
    fn addresses(&self, key: PeerKey) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self.links.get(&key) {
            Some(link) => (Some(link.addr), self.exts.get(&key).and_then(|e| e.listen)),
            None => self
                .departed
                .iter()
                .rev()
                .find(|(k, ..)| *k == key)
                .map_or((None, None), |(_, addr, listen)| (Some(*addr), *listen)),
        }
    }

    /// Carries out the swarm's actions that need no waiting; disk work is queued.
    fn dispatch(&mut self) {
        while let Some(action) = self.swarm.poll_action() {
            match action {
                Action::Send { peer, msg: Message::Request { index, begin, length } }
                    if self.is_padding(index, begin, length) =>
                {
                    if let Some(block) = self.swarm.layout().check_block(index, begin, length) {
                        tracing::trace!(?block, "padding block: zeros, not fetched");
                        self.swarm.fill_padding(Instant::now(), peer, block);
                    }
                }
                Action::Send { peer, msg } => self.send(peer, msg),
                // A block is counted as uploaded when it is queued; one that does not go out
                // after all is taken back (here, and when a writer stops with blocks queued),
                // so the totals shown are bytes sent.
                Action::Serve { peer, block } => {
                    // A full queue drops the request; the peer times out and asks again.
                    if self.links.get(&peer).is_some_and(|link| !link.serve(block)) {
                        self.swarm.not_sent(peer, u64::from(block.length));
                    }
                }
                Action::Withdraw { peer, block } => {
                    if self.links.get(&peer).is_some_and(|link| link.withdraw(block)) {
                        self.swarm.not_sent(peer, u64::from(block.length));
                    }
                }
                Action::Want { peer, pieces } => {
                    if let Some(id) = self.exts.get(&peer).and_then(|e| e.wants) {
                        let ids: Vec<u32> = pieces.iter().map(|p| p.get()).collect();
                        tracing::debug!(?ids, "asking a peer to show pieces a reader waits for");
                        let payload = shoal_proto::extension::encode_wants(&ids);
                        self.send(peer, Message::Extended { id, payload: payload.into() });
                    }
                }
                Action::Write { block, data } => self.disk_backlog.push_back(DiskJob::Write(block, data)),
                Action::Verify { piece } => self.disk_backlog.push_back(DiskJob::Verify(piece)),
                Action::Disconnect { peer, ban, reason } => {
                    let listen = self.exts.get(&peer).and_then(|e| e.listen);
                    let Some((addr, id)) = self.unlink(peer, Duration::from_secs(30)) else { continue };
                    tracing::info!(%addr, ?listen, ban, "disconnecting: {reason}");
                    if ban {
                        // Every local program shares loopback, so there only the peer's id and
                        // listening address are banned.
                        if self.banned_ips.len() >= MAX_BANNED {
                            self.banned_ips.clear();
                        }
                        if self.banned_listen.len() >= MAX_BANNED {
                            self.banned_listen.clear();
                        }
                        if self.banned_ids.len() >= MAX_BANNED {
                            self.banned_ids.clear();
                        }
                        if !addr.ip().is_loopback() {
                            self.banned_ips.insert(addr.ip());
                        }
                        self.banned_listen.extend(listen);
                        self.banned_ids.extend(id);
                    }
                }
            }
        }
    }

    /// Dispatches actions and hands queued disk work to the workers (waiting if they are busy).
    async fn drain(&mut self) {
        self.dispatch();
        if !self.disk_backlog.is_empty() {
            self.disk.submit(&mut self.disk_backlog).await;
        }
    }

    fn save_resume(&mut self) {
        self.resume_dirty = false;
        self.last_resume = Instant::now();
        self.verified_since_flush = 0;
        let storage = self.storage.clone();
        let resume = self.resume.clone();
        let have = self.swarm.have().to_bools();
        self.after_saves(move || {
            if let Err(e) = resume.save(&storage, &have) {
                tracing::warn!("cannot save resume data to {}: {e}", resume.path().display());
            }
        });
    }

    /// `fsync`s what was written so far, without saving a resume record (see
    /// [`FLUSH_BYTES`]).
    fn flush_written(&mut self) {
        self.verified_since_flush = 0;
        let storage = self.storage.clone();
        self.after_saves(move || {
            // The files stay marked as written: the next save flushes them again.
            if let Err(e) = storage.flush() {
                tracing::warn!("cannot flush downloaded data: {e}");
            }
        });
    }

    /// Runs `work` on a blocking thread once the saves and flushes asked for before it are
    /// done, so they happen in the order they were asked for.
    fn after_saves(&mut self, work: impl FnOnce() + Send + 'static) {
        let previous = self.saving.take();
        self.saving = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let _ = tokio::task::spawn_blocking(work).await;
        }));
    }

    fn publish(&self) {
        let stats = self.swarm.stats();
        let state = if let Some(e) = &self.error {
            TorrentState::Error(e.clone())
        } else if self.paused {
            TorrentState::Paused
        } else if self.swarm.is_complete() {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        };
        let unreachable: Vec<(SocketAddr, String)> =
            self.named.iter().filter_map(|(a, e)| Some((*a, e.clone()?))).collect();
        self.status.send_modify(|s| {
            s.state = state;
            s.stats = stats;
            s.unreachable = unreachable;
        });
    }

    async fn shutdown(&mut self) {
        self.links.clear();
        self.drain().await;
        let storage = self.storage.clone();
        let resume = self.resume.clone();
        let have = self.swarm.have().to_bools();
        if let Some(saving) = self.saving.take() {
            let _ = saving.await;
        }
        let _ = tokio::task::spawn_blocking(move || resume.save(&storage, &have)).await;
        // The last figures, for whoever still watches the status (an idle torrent may not
        // have ticked since its last transfer).
        self.publish();
        self.status.send_modify(|s| s.state = TorrentState::Stopped);
    }
}
