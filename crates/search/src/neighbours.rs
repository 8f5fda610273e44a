//! The search overlay's driver: connections to search neighbours, carrying the [`overlay`]
//! policy's messages.
//!
//! Search neighbours speak the BitTorrent wire: the handshake names the search swarm's
//! info-hash ([`swarm`], the SHA-1 of `shoal-search-v1`), both sides set the extension bit and
//! send a BEP 10 extension handshake naming [`wire::EXTENSION`], and every later message is an
//! `extended` message (id 20) for that extension. A node listens on its peer port (the engine
//! hands it the connections for the search swarm, [`Neighbours::accept`]) and dials the
//! neighbours it is given ([`Neighbours::add`], `--search-peer`), redialling one that goes away
//! (5 s, doubling to 5 min). Nodes it only hears of ([`Neighbours::offer`]: the DHT's peers of
//! the search swarm) wait in a list of at most [`MAX_CANDIDATES`] and are dialled one at a time
//! while it has fewer than [`WANTED`] neighbours; one that fails is forgotten. Bounds: [`overlay::Config::max_neighbours`] neighbours, one
//! connection per peer id, frames of at most [`wire::MAX_MESSAGE`] bytes, 3 minutes of silence,
//! [`MAX_ANSWERING`] index lookups at once (queries beyond them are not answered), and a
//! connection's outgoing queue of [`OUT_QUEUE`] messages (a neighbour too slow to take them
//! loses messages, not memory).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_proto::extension::ExtHandshake;
use shoal_proto::{Handshake, InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::Index;
use crate::overlay::{self, Action, Message, Node, PeerKey, QueryId, wire};

/// The search swarm's info-hash: SHA-1 of `shoal-search-v1`.
pub fn swarm() -> InfoHash {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(b"shoal-search-v1");
    let mut hash = [0u8; 20];
    hash.copy_from_slice(&digest);
    InfoHash(hash)
}

/// The id we receive `shoal_search` messages on.
const OUR_EXT_ID: u8 = 1;
/// Nodes heard of and not dialled yet, kept at most.
pub const MAX_CANDIDATES: usize = 64;
/// Neighbours a node looks for among the nodes it hears of.
pub const WANTED: usize = 4;
/// Index lookups answering neighbours' queries at once.
pub const MAX_ANSWERING: usize = 4;
/// Messages waiting to go out on one connection.
pub const OUT_QUEUE: usize = 64;
/// Silence after which a connection is closed (keep-alives go every [`KEEP_ALIVE`]).
const IDLE: Duration = Duration::from_secs(180);
const KEEP_ALIVE: Duration = Duration::from_secs(60);
const HANDSHAKE: Duration = Duration::from_secs(10);
const REDIAL_FIRST: Duration = Duration::from_secs(5);
const REDIAL_MAX: Duration = Duration::from_secs(300);
/// Time between two ticks while the node is busy (tables to send, own queries widening).
const BUSY_TICK: Duration = Duration::from_millis(25);
/// Time between two ticks otherwise (dials, expiries and the status shown are that coarse).
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often the own filter is rebuilt at most after the index changed.
const OWN_EVERY: Duration = Duration::from_secs(2);

/// Settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our peer id (the session's, so that a node is one peer on its port).
    pub peer_id: PeerId,
    /// Our peer port, told to neighbours.
    pub port: u16,
    /// The policy's tunables.
    pub policy: overlay::Config,
}

/// A result of a query: the record's JSON (unchecked) and the neighbour it came through.
#[derive(Clone, Debug)]
pub struct Found {
    /// The record, as JSON.
    pub record: Vec<u8>,
    /// The neighbour it came through.
    pub via: SocketAddr,
    /// A node that says it holds the torrent's data (its peer address).
    pub holder: Option<SocketAddr>,
}

/// Counters and neighbours, for `search.query`'s callers and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The policy's counters.
    pub stats: overlay::Stats,
    /// Connected neighbours: where each accepts connections (its peer port), or the
    /// connection's address when it did not say.
    pub neighbours: Vec<SocketAddr>,
    /// Messages that could not be read, and connections closed for it.
    pub bad_messages: u64,
    /// Results messages sent answering neighbours' queries.
    pub answers: u64,
}

enum Cmd {
    Incoming(TcpStream, SocketAddr, PeerId),
    Add(SocketAddr),
    Offer(Vec<SocketAddr>),
    Up(Conn),
    Received(PeerKey, Message),
    Down(PeerKey, String),
    Query { words: String, want: u16, hop_limit: u8, results: mpsc::Sender<Found> },
    OwnChanged,
    Own(overlay::Bloom),
    Dialled(SocketAddr, Result<(), String>),
}

struct Conn {
    key: PeerKey,
    addr: SocketAddr,
    /// Where it accepts connections, when known.
    listen: Option<SocketAddr>,
    peer_id: PeerId,
    outgoing: bool,
    tx: mpsc::Sender<Message>,
    /// Dropping it closes the connection.
    _close: tokio::sync::oneshot::Sender<()>,
}

/// A running overlay node. Cheap to clone; the node stops when the last clone is dropped.
#[derive(Clone)]
pub struct Neighbours {
    tx: mpsc::Sender<Cmd>,
    status: Arc<Mutex<Status>>,
}

impl Neighbours {
    /// Starts the node; it answers from `index`.
    pub fn start(config: Config, index: Arc<Index>) -> Neighbours {
        let (tx, rx) = mpsc::channel(1024);
        let status = Arc::new(Mutex::new(Status::default()));
        let driver = Driver {
            node: Node::new(config.policy.clone(), rand::random()),
            config,
            index,
            conns: HashMap::new(),
            next_key: 1,
            waiters: HashMap::new(),
            wanted: HashMap::new(),
            candidates: Default::default(),
            tried: Default::default(),
            candidate_dialling: false,
            answering: Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING)),
            own_pending: true,
            own_at: None,
            status: status.clone(),
            tx: tx.downgrade(),
            bad: 0,
            answers: Default::default(),
        };
        tokio::spawn(driver.run(rx));
        let me = Neighbours { tx, status };
        me.own_changed();
        me
    }

    /// A connection for the search swarm whose handshakes are done.
    pub fn accept(&self, stream: TcpStream, addr: SocketAddr, peer_id: PeerId) {
        let _ = self.tx.try_send(Cmd::Incoming(stream, addr, peer_id));
    }

    /// Accepts search neighbours on `listener` by itself (a node with no engine session on
    /// its port, as the benchmark's): the BitTorrent handshake must name the search swarm. At
    /// most 16 handshakes run at once.
    pub fn listen(&self, listener: tokio::net::TcpListener, peer_id: PeerId) {
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        let weak = self.tx.downgrade();
        tokio::spawn(async move {
            while weak.upgrade().is_some() {
                let Ok((mut stream, addr)) = listener.accept().await else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let weak = weak.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let steps = async {
                        let mut buf = [0u8; Handshake::LEN];
                        stream.read_exact(&mut buf).await.ok()?;
                        let theirs = Handshake::decode(&buf).ok().filter(|h| h.info_hash == swarm())?;
                        stream.write_all(&Handshake::new(swarm(), peer_id).encode()).await.ok()?;
                        Some(theirs.peer_id)
                    };
                    if let Ok(Some(theirs)) = tokio::time::timeout(HANDSHAKE, steps).await
                        && let Some(tx) = weak.upgrade()
                    {
                        let _ = tx.try_send(Cmd::Incoming(stream, addr, theirs));
                    }
                });
            }
        });
    }

    /// Keeps a neighbour at `addr`, dialling it (again whenever it goes away).
    pub fn add(&self, addr: SocketAddr) {
        let _ = self.tx.try_send(Cmd::Add(addr));
    }

    /// Nodes heard of (e.g. through the DHT): dialled while this node has fewer than [`WANTED`]
    /// neighbours, once each.
    pub fn offer(&self, addrs: Vec<SocketAddr>) {
        let _ = self.tx.try_send(Cmd::Offer(addrs));
    }

    /// The local index changed: what this node can answer for is worked out again (at most
    /// every 2 s).
    pub fn own_changed(&self) {
        let _ = self.tx.try_send(Cmd::OwnChanged);
    }

    /// Asks the neighbours: results as they come, until `want` came or `wait` passed.
    pub async fn search(&self, words: &str, want: u16, hop_limit: u8, wait: Duration) -> Vec<Found> {
        let Some(mut rx) = self.ask(words, want, hop_limit).await else { return Vec::new() };
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while found.len() < usize::from(want) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(f)) => found.push(f),
                _ => break,
            }
        }
        found
    }

    /// Starts a query: its results arrive on the channel as they come (it closes when the
    /// query is forgotten, [`overlay::Config::route_life`] after it began, or sooner when this
    /// node stops). `None` when there is no word to look for.
    pub async fn ask(&self, words: &str, want: u16, hop_limit: u8) -> Option<mpsc::Receiver<Found>> {
        let (results, rx) = mpsc::channel(usize::from(want.clamp(1, wire::MAX_WANT)));
        let words = words.chars().filter(|c| !c.is_control()).collect::<String>();
        let words: String = words.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cut = words.len().min(wire::MAX_WORDS_BYTES);
        while !words.is_char_boundary(cut) {
            cut -= 1;
        }
        if words.is_empty() {
            return None;
        }
        let cmd = Cmd::Query { words: words[..cut].to_string(), want, hop_limit, results };
        self.tx.send(cmd).await.ok()?;
        Some(rx)
    }

    /// Counters and neighbours.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Wanted {
    next: Instant,
    gap: Duration,
    dialling: bool,
}

struct Driver {
    node: Node,
    config: Config,
    index: Arc<Index>,
    conns: HashMap<PeerKey, Conn>,
    next_key: PeerKey,
    waiters: HashMap<QueryId, mpsc::Sender<Found>>,
    wanted: HashMap<SocketAddr, Wanted>,
    /// Nodes heard of, to dial while neighbours are few, and those tried already.
    candidates: std::collections::VecDeque<SocketAddr>,
    tried: std::collections::HashSet<SocketAddr>,
    candidate_dialling: bool,
    answering: Arc<tokio::sync::Semaphore>,
    own_pending: bool,
    own_at: Option<Instant>,
    status: Arc<Mutex<Status>>,
    tx: mpsc::WeakSender<Cmd>,
    bad: u64,
    answers: Arc<std::sync::atomic::AtomicU64>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut last_tick = tokio::time::Instant::now();
        loop {
            // Often while tables go out or own queries widen; otherwise seldom, so an idle node
            // costs next to nothing.
            let period = if self.node.busy() { BUSY_TICK } else { IDLE_TICK };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tokio::time::sleep_until(last_tick + period) => {
                    last_tick = tokio::time::Instant::now();
                    self.tick();
                }
            }
            self.act();
        }
        // Dropping the connections closes them.
    }

    fn cmd_tx(&self) -> Option<mpsc::Sender<Cmd>> {
        self.tx.upgrade()
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Incoming(stream, addr, peer_id) => {
                if !self.node.has_room() || self.conns.values().any(|c| c.peer_id == peer_id) {
                    return;
                }
                self.connect(stream, addr, peer_id, false);
            }
            Cmd::Add(addr) => {
                self.wanted.entry(addr).or_insert(Wanted { next: now, gap: REDIAL_FIRST, dialling: false });
            }
            Cmd::Offer(addrs) => {
                for addr in addrs {
                    let known = self.tried.contains(&addr)
                        || self.wanted.contains_key(&addr)
                        || self.candidates.contains(&addr)
                        || self.conns.values().any(|c| c.addr == addr);
                    if !known && self.candidates.len() < MAX_CANDIDATES {
                        self.candidates.push_back(addr);
                    }
                }
            }
            Cmd::Dialled(addr, result) => {
                if !self.wanted.contains_key(&addr) {
                    self.candidate_dialling = false;
                }
                if let Err(e) = &result
                    && !self.wanted.contains_key(&addr)
                {
                    tracing::debug!(%addr, "search candidate: {e}");
                }
                if let Some(w) = self.wanted.get_mut(&addr) {
                    w.dialling = false;
                    if let Err(e) = result {
                        tracing::debug!(%addr, "search neighbour: {e}; again in {:?}", w.gap);
                        w.next = now + w.gap;
                        w.gap = (w.gap * 2).min(REDIAL_MAX);
                    }
                }
            }
            Cmd::Up(conn) => {
                if !self.node.has_room() || self.conns.values().any(|c| c.peer_id == conn.peer_id) {
                    return; // dropped: closed
                }
                if let Some(w) = self.wanted.get_mut(&conn.addr) {
                    w.gap = REDIAL_FIRST;
                }
                tracing::info!(addr = %conn.addr, outgoing = conn.outgoing, "search neighbour connected");
                self.node.connected(conn.key, now);
                self.conns.insert(conn.key, conn);
            }
            Cmd::Received(key, mut message) => {
                // The answering node's port becomes its address here, the first hop back.
                if let Message::Hits { holder: holder @ Some(overlay::Holder::Port(_)), .. } = &mut message
                    && let (Some(conn), Some(overlay::Holder::Port(port))) = (self.conns.get(&key), *holder)
                {
                    *holder = Some(overlay::Holder::Addr(SocketAddr::new(conn.addr.ip(), port)));
                }
                self.node.received(key, message, now)
            }
            Cmd::Down(key, why) => {
                if let Some(conn) = self.conns.remove(&key) {
                    tracing::info!(addr = %conn.addr, "search neighbour gone: {why}");
                    if let Some(w) = self.wanted.get_mut(&conn.addr) {
                        w.next = now + w.gap;
                    }
                }
                if why.starts_with("bad message") {
                    self.bad += 1;
                }
                self.node.disconnected(key);
            }
            Cmd::Query { words, want, hop_limit, results } => {
                let id = self.node.query(&words, want, hop_limit, now);
                self.waiters.insert(id, results);
            }
            Cmd::OwnChanged => self.own_pending = true,
            Cmd::Own(bloom) => self.node.set_own(bloom),
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.node.tick(now);
        self.waiters.retain(|id, tx| !tx.is_closed() && self.node.is_open(id));
        let mut due = Vec::new();
        for (addr, w) in &mut self.wanted {
            let connected = self.conns.values().any(|c| c.addr == *addr);
            if connected || w.dialling || now < w.next || !self.node.has_room() {
                continue;
            }
            w.dialling = true;
            due.push(*addr);
        }
        for addr in due {
            self.dial(addr);
        }
        if !self.candidate_dialling
            && self.conns.len() < WANTED
            && self.node.has_room()
            && let Some(addr) = self.candidates.pop_front()
        {
            // Each once: the memory of tried ones is cleared when it grows past a bound.
            if self.tried.len() >= 16 * MAX_CANDIDATES {
                self.tried.clear();
            }
            self.tried.insert(addr);
            self.candidate_dialling = true;
            self.dial(addr);
        }
        if self.own_pending && self.own_at.is_none_or(|at| now.duration_since(at) >= OWN_EVERY) {
            self.own_pending = false;
            self.own_at = Some(now);
            let (index, tx) = (self.index.clone(), self.tx.clone());
            tokio::task::spawn_blocking(move || {
                let mut bloom = overlay::Bloom::default();
                if let Err(e) = index.for_each_public_text(|text| bloom.insert_text(text)) {
                    tracing::warn!("search: cannot read the index for the neighbours' tables: {e}");
                    return;
                }
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.try_send(Cmd::Own(bloom));
                }
            });
        }
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.stats = self.node.stats();
        status.neighbours = self.conns.values().map(|c| c.listen.unwrap_or(c.addr)).collect();
        status.bad_messages = self.bad;
        status.answers = self.answers.load(std::sync::atomic::Ordering::Relaxed);
    }

    /// Dials `addr` in the background; the outcome comes back as [`Cmd::Dialled`].
    fn dial(&mut self, addr: SocketAddr) {
        let (config, tx) = (self.config.clone(), self.tx.clone());
        let key = self.next_key;
        self.next_key += 1;
        tokio::spawn(async move {
            let result = dial(addr, &config).await;
            let Some(tx) = tx.upgrade() else { return };
            match result {
                Ok((stream, peer_id)) => {
                    let _ = tx.send(Cmd::Dialled(addr, Ok(()))).await;
                    spawn_conn(stream, addr, peer_id, true, key, config.port, tx);
                }
                Err(e) => {
                    let _ = tx.send(Cmd::Dialled(addr, Err(e))).await;
                }
            }
        });
    }

    fn connect(&mut self, stream: TcpStream, addr: SocketAddr, peer_id: PeerId, outgoing: bool) {
        let key = self.next_key;
        self.next_key += 1;
        if let Some(tx) = self.cmd_tx() {
            spawn_conn(stream, addr, peer_id, outgoing, key, self.config.port, tx);
        }
    }

    fn act(&mut self) {
        for action in self.node.take_actions() {
            match action {
                Action::Send(key, message) => {
                    if let Some(conn) = self.conns.get(&key) {
                        // A full queue: the neighbour is not keeping up; this message is lost.
                        let _ = conn.tx.try_send(message);
                    }
                }
                Action::Answer { id, words, want, to } => {
                    let Some(conn) = self.conns.get(&to) else { continue };
                    let Ok(permit) = self.answering.clone().try_acquire_owned() else { continue };
                    let (index, tx, port) = (self.index.clone(), conn.tx.clone(), self.config.port);
                    let answers = self.answers.clone();
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let hits = match index.search(&words, &[], &[], want.min(wire::MAX_RECORDS)) {
                            Ok(hits) => hits,
                            Err(e) => {
                                tracing::warn!("search: answering a neighbour: {e}");
                                return;
                            }
                        };
                        // Torrents this node holds (its own records) in one message, naming its
                        // port; what it only learned of in another.
                        let (held, learned): (Vec<_>, Vec<_>) = hits.into_iter().partition(|h| h.source == "local");
                        for (hits, holder) in [(held, Some(overlay::Holder::Port(port))), (learned, None)] {
                            let mut records = Vec::new();
                            let mut size = 64;
                            for hit in hits {
                                let Ok(json) = serde_json::to_vec(&hit.record) else { continue };
                                if size + json.len() + 8 > wire::MAX_MESSAGE {
                                    break;
                                }
                                size += json.len() + 8;
                                records.push(json);
                            }
                            if !records.is_empty() && tx.try_send(Message::Hits { id, records, holder }).is_ok() {
                                answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    });
                }
                Action::Results { id, from, records, holder } => {
                    let Some(tx) = self.waiters.get(&id) else { continue };
                    let via = self.conns.get(&from).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.addr);
                    let holder = match holder {
                        Some(overlay::Holder::Addr(a)) => Some(a),
                        Some(overlay::Holder::Port(p)) => Some(SocketAddr::new(via.ip(), p)),
                        None => None,
                    };
                    for record in records {
                        let _ = tx.try_send(Found { record, via, holder });
                    }
                }
                Action::Disconnect(key, why) => {
                    if let Some(conn) = self.conns.remove(&key) {
                        tracing::info!(addr = %conn.addr, "search neighbour dropped: {why}");
                    }
                    self.node.disconnected(key);
                }
            }
        }
    }
}

/// Dials `addr` and exchanges BitTorrent handshakes for the search swarm.
async fn dial(addr: SocketAddr, config: &Config) -> Result<(TcpStream, PeerId), String> {
    let steps = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.write_all(&Handshake::new(swarm(), config.peer_id).encode()).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; Handshake::LEN];
        stream.read_exact(&mut buf).await.map_err(|e| format!("no handshake: {e}"))?;
        let theirs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
        if theirs.info_hash != swarm() {
            return Err("it answered for another swarm".to_string());
        }
        if theirs.peer_id == config.peer_id {
            return Err("that is this node".to_string());
        }
        if !theirs.supports_extensions() {
            return Err("it does not speak the extension protocol".to_string());
        }
        Ok((stream, theirs.peer_id))
    };
    tokio::time::timeout(HANDSHAKE, steps).await.map_err(|_| "no handshake within 10 s".to_string())?
}

/// One frame: length, message id, body.
async fn read_frame(read: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Result<(), String> {
    let len = read.read_u32().await.map_err(|e| format!("closed: {e}"))? as usize;
    if len > wire::MAX_MESSAGE + 2 {
        return Err(format!("bad message: a frame of {len} bytes (at most {})", wire::MAX_MESSAGE + 2));
    }
    buf.resize(len, 0);
    read.read_exact(buf).await.map_err(|e| format!("closed: {e}"))?;
    Ok(())
}

fn frame(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend(((payload.len() + 2) as u32).to_be_bytes());
    out.extend([20, ext_id]);
    out.extend(payload);
    out
}

fn spawn_conn(
    stream: TcpStream,
    addr: SocketAddr,
    peer_id: PeerId,
    outgoing: bool,
    key: PeerKey,
    port: u16,
    tx: mpsc::Sender<Cmd>,
) {
    tokio::spawn(async move {
        let why = match converse(stream, port, key, &tx, |out_tx, close, their_port| Conn {
            key,
            addr,
            // Where it accepts connections: the address dialled, or its IP with the port its
            // extension handshake names.
            listen: if outgoing { Some(addr) } else { their_port.map(|p| SocketAddr::new(addr.ip(), p)) },
            peer_id,
            outgoing,
            tx: out_tx,
            _close: close,
        })
        .await
        {
            Ok(()) => "closed".to_string(),
            Err(e) => e,
        };
        let _ = tx.send(Cmd::Down(key, why)).await;
    });
}

async fn converse(
    stream: TcpStream,
    port: u16,
    key: PeerKey,
    tx: &mpsc::Sender<Cmd>,
    conn: impl FnOnce(mpsc::Sender<Message>, tokio::sync::oneshot::Sender<()>, Option<u16>) -> Conn,
) -> Result<(), String> {
    let (mut read, mut write) = stream.into_split();
    let mut hs = ExtHandshake::default();
    hs.m.insert(wire::EXTENSION.to_string(), OUR_EXT_ID);
    hs.v = Some(format!("Shoal {}", env!("CARGO_PKG_VERSION")));
    hs.p = Some(port);
    write.write_all(&frame(0, &hs.encode())).await.map_err(|e| format!("closed: {e}"))?;
    // Their extension handshake first, within the handshake time, in the first few frames.
    let mut buf = Vec::new();
    let (their_id, their_port) = tokio::time::timeout(HANDSHAKE, async {
        for _ in 0..4 {
            read_frame(&mut read, &mut buf).await?;
            if buf.len() >= 2 && buf[0] == 20 && buf[1] == 0 {
                let theirs = ExtHandshake::decode(&buf[2..]).map_err(|e| format!("bad message: {e}"))?;
                let id = theirs
                    .id_of(wire::EXTENSION)
                    .ok_or_else(|| "bad message: it does not offer shoal_search".to_string())?;
                return Ok((id, theirs.p));
            }
        }
        Err("bad message: no extension handshake".to_string())
    })
    .await
    .map_err(|_| "no extension handshake within 10 s".to_string())??;
    let (out_tx, mut out) = mpsc::channel(OUT_QUEUE);
    let (close, closed) = tokio::sync::oneshot::channel::<()>();
    tx.send(Cmd::Up(conn(out_tx, close, their_port))).await.map_err(|_| "the node stopped".to_string())?;
    let writer = async {
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                m = out.recv() => match m {
                    Some(m) => write.write_all(&frame(their_id, &m.encode())).await.map_err(|e| format!("closed: {e}"))?,
                    None => return Ok::<(), String>(()),
                },
                _ = keep_alive.tick() => write.write_all(&[0, 0, 0, 0]).await.map_err(|e| format!("closed: {e}"))?,
            }
        }
    };
    let reader = async {
        loop {
            tokio::time::timeout(IDLE, read_frame(&mut read, &mut buf))
                .await
                .map_err(|_| "silent for 3 minutes".to_string())??;
            if buf.len() < 2 || buf[0] != 20 || buf[1] != OUR_EXT_ID {
                continue; // keep-alives and anything else
            }
            let message = Message::decode(&buf[2..]).map_err(|e| format!("bad message: {e}"))?;
            tx.send(Cmd::Received(key, message)).await.map_err(|_| "the node stopped".to_string())?;
        }
    };
    tokio::select! {
        r = writer => r,
        r = reader => r,
        _ = closed => Err("closed by this node".to_string()),
    }
}
