//! A node of a live channel: the [`Mesh`] policy over its connections (dialled, taken on the
//! peer port, found through trackers, the DHT, local discovery and neighbours), each chunk's
//! signature checked off the wire, forgers banned.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_engine::rate_limit::RateLimiter;
use shoal_engine::{ServiceConnection, Session};
use shoal_identity::IdentityId;
use shoal_live::mesh::{self, Action, Mesh, Msg, Seq};
use shoal_live::wire::{Frame, swarm_of};
use shoal_live::{ChannelLink, Chunk};
use shoal_proto::{Handshake, InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};

use super::now_ms;

/// Neighbours a node looks for.
const WANTED: usize = 8;
/// Neighbours a node keeps at most; one more is told of others and closed.
const MAX_NEIGHBOURS: usize = 16;
/// Addresses heard of and not dialled yet, kept at most.
const MAX_CANDIDATES: usize = 64;
/// Frames waiting to go out on one connection.
const OUT_QUEUE: usize = 512;
const HANDSHAKE: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(25);
const PEX_EVERY: Duration = Duration::from_secs(20);
const REDIAL_FIRST: Duration = Duration::from_secs(2);
const REDIAL_MAX: Duration = Duration::from_secs(60);
/// What the node's task is told.
pub(super) enum Cmd {
    Incoming(ServiceConnection),
    Dialled(SocketAddr, Result<(TcpStream, PeerId), String>),
    Up { key: u64, source: bool, port: u16 },
    Frame(u64, Frame),
    Forged(u64),
    Down(u64, String),
    Sent(u64, Seq),
    Found(Vec<SocketAddr>),
    Cut(Chunk),
    Output(Outlet),
    WhenEndSpread(tokio::sync::oneshot::Sender<()>),
    Stats(tokio::sync::oneshot::Sender<NodeStats>),
}

/// Where a viewer's chunks go as they fall due, and the flag raised when the broadcast ended.
pub(super) struct Outlet {
    pub(super) tx: broadcast::Sender<Bytes>,
    pub(super) ended: tokio::sync::watch::Sender<bool>,
}

/// Counters of a node.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NodeStats {
    pub(super) mesh: mesh::Stats,
    pub(super) neighbours: usize,
    pub(super) cut: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
}

/// A running node; dropping it stops it.
pub(super) struct NodeHandle {
    pub(super) tx: mpsc::Sender<Cmd>,
    _tasks: Vec<AbortOnDrop>,
}

impl NodeHandle {
    pub(super) async fn stats(&self) -> NodeStats {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Cmd::Stats(tx)).await;
        rx.await.unwrap_or_default()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Out {
    Frame(Vec<u8>),
    Chunk(Seq, Arc<Vec<u8>>),
}

struct Conn {
    addr: SocketAddr,
    /// Where it takes connections (once its hello came).
    listen: Option<SocketAddr>,
    peer_id: PeerId,
    up: bool,
    tx: mpsc::Sender<Out>,
    _close: tokio::sync::oneshot::Sender<()>,
}

struct Wanted {
    next: Instant,
    gap: Duration,
    dialling: bool,
}

struct Node {
    mesh: Mesh<u64>,
    key: IdentityId,
    swarm: InfoHash,
    peer_id: PeerId,
    port: u16,
    quiet: bool,
    /// Chunks held: their frame, ready to send, and their payload.
    store: HashMap<Seq, (Arc<Vec<u8>>, Bytes)>,
    conns: HashMap<u64, Conn>,
    next_key: u64,
    wanted: HashMap<SocketAddr, Wanted>,
    candidates: VecDeque<SocketAddr>,
    tried: HashSet<SocketAddr>,
    dialling: usize,
    banned_ids: HashSet<PeerId>,
    banned_addrs: HashSet<SocketAddr>,
    output: Option<Outlet>,
    end_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    limiter: Arc<RateLimiter>,
    tx: mpsc::WeakSender<Cmd>,
    /// A group channel's TLS configurations.
    tls: Option<shoal_identity::PeerTls>,
    start: u64,
    stats: NodeStats,
    last_pex: Instant,
    last_status: Instant,
}

pub(super) fn start_node(
    session: &Session,
    link: &ChannelLink,
    mesh: Mesh<u64>,
    upload_limit: Option<u64>,
    peers: &[SocketAddr],
    tls: Option<shoal_identity::PeerTls>,
    quiet: bool,
) -> NodeHandle {
    let (tx, rx) = mpsc::channel(1024);
    let key = link.key;
    let swarm = InfoHash(swarm_of(&key.0));
    let port = session.listen_addr().port();
    let mut tasks = Vec::new();
    // Connections for the channel's swarm on the peer port come here.
    let (in_tx, mut in_rx) = mpsc::channel::<ServiceConnection>(16);
    session.serve(swarm, in_tx);
    {
        let tx = tx.clone();
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(conn) = in_rx.recv().await {
                if tx.send(Cmd::Incoming(conn)).await.is_err() {
                    break;
                }
            }
        })));
    }
    // The DHT and local discovery find other nodes of the channel.
    if let Some(dht) = session.dht() {
        let tx = tx.clone();
        let announce = dht.announce_loop(swarm, Some(port), move |found| {
            let _ = tx.try_send(Cmd::Found(found));
        });
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let _keep = announce;
            std::future::pending::<()>().await;
        })));
    }
    if !link.trackers.is_empty() {
        let mut found = session.track(&link.trackers, swarm);
        let tx = tx.clone();
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(addrs) = found.recv().await {
                let _ = tx.try_send(Cmd::Found(addrs));
            }
        })));
    }
    if let Some(mut nearby) = session.lsd_watch(swarm) {
        let tx = tx.clone();
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(addr) = nearby.recv().await {
                let _ = tx.try_send(Cmd::Found(vec![addr]));
            }
        })));
    }
    let now = Instant::now();
    let node = Node {
        mesh,
        key,
        swarm,
        peer_id: session.peer_id(),
        port,
        quiet,
        store: HashMap::new(),
        conns: HashMap::new(),
        next_key: 1,
        wanted: peers.iter().map(|&a| (a, Wanted { next: now, gap: REDIAL_FIRST, dialling: false })).collect(),
        candidates: VecDeque::new(),
        tried: HashSet::new(),
        dialling: 0,
        banned_ids: HashSet::new(),
        banned_addrs: HashSet::new(),
        output: None,
        end_waiters: Vec::new(),
        limiter: Arc::new(RateLimiter::new(upload_limit)),
        tx: tx.downgrade(),
        tls,
        start: now_ms(),
        stats: NodeStats::default(),
        last_pex: now,
        last_status: now,
    };
    tasks.push(AbortOnDrop(tokio::spawn(node.run(rx))));
    NodeHandle { tx, _tasks: tasks }
}

impl Node {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tick.tick() => self.tick(),
            }
            self.act();
        }
    }

    fn now(&self) -> u64 {
        now_ms()
    }

    fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = self.now();
        match cmd {
            Cmd::Incoming(c) => {
                let id = c.handshake.peer_id;
                if self.banned_ids.contains(&id) || self.conns.values().any(|k| k.peer_id == id) {
                    return;
                }
                if self.conns.len() >= MAX_NEIGHBOURS && self.tls.is_some() {
                    return; // a group channel tells no stranger of its members
                }
                if self.conns.len() >= MAX_NEIGHBOURS {
                    // Full: tell it of others and close.
                    let others = self.neighbour_addrs(None);
                    tokio::spawn(async move {
                        let mut stream = c.stream;
                        let _ = stream.write_all(&Frame::Hello { source: false, port: 0 }.encode()).await;
                        let _ = stream.write_all(&Frame::Peers(others).encode()).await;
                        let _ = stream.shutdown().await;
                    });
                    return;
                }
                self.connect(c.stream, c.addr, id, false);
            }
            Cmd::Dialled(addr, result) => {
                self.dialling = self.dialling.saturating_sub(1);
                let w = self.wanted.get_mut(&addr);
                match result {
                    Ok((stream, id)) => {
                        if let Some(w) = w {
                            w.dialling = false;
                        }
                        if self.banned_ids.contains(&id) || self.conns.values().any(|k| k.peer_id == id) {
                            return;
                        }
                        self.connect(stream, addr, id, true);
                    }
                    Err(e) => {
                        tracing::debug!(%addr, "live: cannot reach: {e}");
                        if let Some(w) = w {
                            w.dialling = false;
                            w.next = Instant::now() + w.gap;
                            w.gap = (w.gap * 2).min(REDIAL_MAX);
                        }
                    }
                }
            }
            Cmd::Up { key, source, port } => {
                let Some(conn) = self.conns.get_mut(&key) else { return };
                conn.up = true;
                if port != 0 {
                    conn.listen = Some(SocketAddr::new(conn.addr.ip(), port));
                }
                if let Some(w) = self.wanted.get_mut(&conn.addr) {
                    w.gap = REDIAL_FIRST;
                }
                if conn.listen.is_some_and(|l| self.banned_addrs.contains(&l)) {
                    self.close(key, "banned");
                    return;
                }
                tracing::info!(addr = %conn.addr, source, "live neighbour connected");
                let others = self.neighbour_addrs(Some(key));
                if let Some(conn) = self.conns.get(&key)
                    && !others.is_empty()
                {
                    let _ = conn.tx.try_send(Out::Frame(Frame::Peers(others).encode()));
                }
                self.mesh.connected(key, source);
            }
            Cmd::Frame(key, frame) => {
                if !self.conns.get(&key).is_some_and(|c| c.up) {
                    return;
                }
                match frame {
                    Frame::Mesh(msg) => self.mesh.received(key, msg, now),
                    Frame::Chunk(chunk) => {
                        let end = chunk.payload.is_empty();
                        let (seq, at) = (chunk.seq, chunk.at_ms);
                        let fresh = !self.mesh.holds(seq);
                        self.mesh.chunk(key, seq, at, end, now);
                        if fresh && self.mesh.holds(seq) {
                            let frame = Arc::new(Frame::Chunk(chunk.clone()).encode());
                            self.store.insert(seq, (frame, Bytes::from(chunk.payload)));
                        }
                    }
                    Frame::Peers(addrs) => self.offer(addrs),
                    Frame::Hello { .. } | Frame::KeepAlive => {}
                }
            }
            Cmd::Forged(key) => {
                if let Some(conn) = self.conns.get(&key) {
                    let who = conn.listen.unwrap_or(conn.addr);
                    self.say(format!("dropped {who}: it sent a chunk the channel's key did not sign (banned)"));
                    self.banned_ids.insert(conn.peer_id);
                    self.banned_addrs.insert(who);
                    self.wanted.remove(&who);
                }
                self.close(key, "forged chunk");
            }
            Cmd::Down(key, why) => {
                if let Some(conn) = self.conns.remove(&key) {
                    tracing::info!(addr = %conn.addr, "live neighbour gone: {why}");
                    if let Some(w) = self.wanted.get_mut(&conn.addr) {
                        w.next = Instant::now() + w.gap;
                    }
                    self.mesh.disconnected(key);
                }
            }
            Cmd::Sent(key, seq) => {
                self.mesh.sent(key, seq, now);
            }
            Cmd::Found(addrs) => self.offer(addrs),
            Cmd::Cut(chunk) => {
                let end = chunk.payload.is_empty();
                self.stats.cut += u64::from(!end);
                self.stats.bytes_in += chunk.payload.len() as u64;
                let frame = Arc::new(Frame::Chunk(chunk.clone()).encode());
                let seq = chunk.seq;
                self.store.insert(seq, (frame, Bytes::from(chunk.payload)));
                self.mesh.cut(seq, chunk.at_ms, end);
            }
            Cmd::Output(tx) => self.output = Some(tx),
            Cmd::WhenEndSpread(tx) => self.end_waiters.push(tx),
            Cmd::Stats(tx) => {
                let mut stats = self.stats;
                stats.mesh = self.mesh.stats();
                stats.neighbours = self.mesh.neighbours();
                let _ = tx.send(stats);
            }
        }
    }

    fn offer(&mut self, addrs: Vec<SocketAddr>) {
        let me = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), self.port);
        for addr in addrs {
            let known = addr.port() == 0
                || addr == me
                || self.banned_addrs.contains(&addr)
                || self.tried.contains(&addr)
                || self.wanted.contains_key(&addr)
                || self.candidates.contains(&addr)
                || self.conns.values().any(|c| c.addr == addr || c.listen == Some(addr));
            if !known && self.candidates.len() < MAX_CANDIDATES {
                self.candidates.push_back(addr);
            }
        }
    }

    fn neighbour_addrs(&self, except: Option<u64>) -> Vec<SocketAddr> {
        self.conns
            .iter()
            .filter(|(k, _)| Some(**k) != except)
            .filter_map(|(_, c)| c.listen)
            .take(shoal_live::wire::MAX_PEERS)
            .collect()
    }

    fn close(&mut self, key: u64, why: &str) {
        if self.conns.remove(&key).is_some() {
            tracing::info!("live neighbour dropped: {why}");
            self.mesh.disconnected(key);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.mesh.tick(self.now());
        // Dial: the --peer addresses when due, then others heard of while neighbours are few.
        let mut due = Vec::new();
        for (addr, w) in &mut self.wanted {
            let connected = self.conns.values().any(|c| c.addr == *addr || c.listen == Some(*addr));
            if !connected && !w.dialling && now >= w.next {
                w.dialling = true;
                due.push(*addr);
            }
        }
        for addr in due {
            self.dial(addr);
        }
        while self.conns.len() + self.dialling < WANTED && self.dialling < 2 {
            let Some(addr) = self.candidates.pop_front() else { break };
            if self.tried.len() >= 16 * MAX_CANDIDATES {
                self.tried.clear();
            }
            self.tried.insert(addr);
            self.dial(addr);
        }
        if now.duration_since(self.last_pex) >= PEX_EVERY {
            self.last_pex = now;
            for (&key, conn) in &self.conns {
                let others = self.neighbour_addrs(Some(key));
                if conn.up && !others.is_empty() {
                    let _ = conn.tx.try_send(Out::Frame(Frame::Peers(others).encode()));
                }
            }
        }
        if !self.end_waiters.is_empty() && (self.mesh.all_have_end() || self.conns.is_empty()) {
            for w in self.end_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        if !self.mesh.is_source() && now.duration_since(self.last_status) >= Duration::from_secs(5) {
            self.last_status = now;
            let s = self.mesh.stats();
            tracing::info!(
                neighbours = self.conns.len(),
                played = s.played,
                skipped = s.skipped,
                relayed = s.uploaded,
                "live"
            );
        }
    }

    fn dial(&mut self, addr: SocketAddr) {
        self.dialling += 1;
        let (swarm, peer_id, tx) = (self.swarm, self.peer_id, self.tx.clone());
        tokio::spawn(async move {
            let result = dial(addr, swarm, peer_id).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Cmd::Dialled(addr, result)).await;
            }
        });
    }

    fn connect(&mut self, stream: TcpStream, addr: SocketAddr, peer_id: PeerId, outgoing: bool) {
        let key = self.next_key;
        self.next_key += 1;
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
        self.conns.insert(key, Conn { addr, listen: None, peer_id, up: false, tx: out_tx, _close: close_tx });
        let Some(tx) = self.tx.upgrade() else { return };
        let hello = Frame::Hello { source: self.mesh.is_source(), port: self.port };
        let (limiter, channel, tls, swarm) = (self.limiter.clone(), self.key, self.tls.clone(), self.swarm);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let talk = async {
                let Some(tls) = tls else {
                    return converse(stream, key, hello, channel, out_rx, limiter, &tx).await;
                };
                // A group channel: TLS between members after the (plain) handshakes.
                let stream = tokio::time::timeout(HANDSHAKE, async {
                    if outgoing {
                        let name = shoal_identity::server_name(&swarm.to_hex()).map_err(|e| e.to_string())?;
                        let s = tokio_rustls::TlsConnector::from(tls.client.clone()).connect(name, stream).await;
                        s.map(tokio_rustls::TlsStream::from).map_err(|e| e.to_string())
                    } else {
                        let s = tokio_rustls::TlsAcceptor::from(tls.server.clone()).accept(stream).await;
                        s.map(tokio_rustls::TlsStream::from).map_err(|e| e.to_string())
                    }
                })
                .await
                .map_err(|_| "no TLS handshake within 10 s".to_string())?
                .map_err(|e| format!("not a member of the channel's group (TLS: {e})"))?;
                converse(stream, key, hello, channel, out_rx, limiter, &tx).await
            };
            let why = tokio::select! {
                r = talk => r.err().unwrap_or_else(|| "closed".into()),
                _ = close_rx => "dropped".into(),
            };
            let _ = tx.send(Cmd::Down(key, why)).await;
        });
    }

    fn act(&mut self) {
        for action in self.mesh.take_actions() {
            match action {
                Action::Send(key, Msg::Chunk(seq)) => {
                    let sent = match (self.conns.get(&key), self.store.get(&seq)) {
                        (Some(conn), Some((frame, _))) => conn.tx.try_send(Out::Chunk(seq, frame.clone())).is_ok(),
                        _ => false,
                    };
                    if !sent {
                        self.mesh.sent(key, seq, self.now());
                    }
                }
                Action::Send(key, msg) => {
                    if let Some(conn) = self.conns.get(&key) {
                        let _ = conn.tx.try_send(Out::Frame(Frame::Mesh(msg).encode()));
                    }
                }
                Action::Play(seq) => {
                    if let Some((_, payload)) = self.store.get(&seq) {
                        self.stats.bytes_out += payload.len() as u64;
                        if let Some(out) = &self.output
                            && !payload.is_empty()
                        {
                            let _ = out.tx.send(payload.clone());
                        }
                    }
                }
                Action::Skip(seq) => {
                    tracing::debug!(seq, "live: chunk left out (not here in time)");
                }
                Action::Forget(seq) => {
                    self.store.remove(&seq);
                }
                Action::Drop(key, why) => self.close(key, why),
                Action::Ended => {
                    let s = self.mesh.stats();
                    self.say(format!(
                        "the broadcast ended ({} chunks played, {} left out, {} s)",
                        s.played,
                        s.skipped,
                        now_ms().saturating_sub(self.start) / 1000
                    ));
                    // The writers and the HTTP readers end once they took what came before.
                    if let Some(out) = self.output.take() {
                        let _ = out.ended.send(true);
                    }
                }
            }
        }
        if self.mesh.is_source() {
            // Chunks the broadcaster no longer keeps are not in the mesh either.
            let floor = self.mesh.newest().map_or(0, |n| n.saturating_sub(self.mesh.config().keep));
            self.store.retain(|&s, _| s >= floor);
        }
    }
}

/// Dials `addr` and exchanges BitTorrent handshakes for the channel's swarm.
async fn dial(addr: SocketAddr, swarm: InfoHash, peer_id: PeerId) -> Result<(TcpStream, PeerId), String> {
    let steps = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.write_all(&Handshake::new(swarm, peer_id).encode()).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; Handshake::LEN];
        stream.read_exact(&mut buf).await.map_err(|e| format!("no handshake: {e}"))?;
        let theirs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
        if theirs.info_hash != swarm {
            return Err("it answered for another swarm".to_string());
        }
        if theirs.peer_id == peer_id {
            return Err("that is this node".to_string());
        }
        Ok((stream, theirs.peer_id))
    };
    tokio::time::timeout(HANDSHAKE, steps).await.map_err(|_| "no handshake within 10 s".to_string())?
}

/// Runs one connection: hello both ways, then frames in (each chunk's signature checked) and
/// out (chunks through the upload limiter, each reported sent).
async fn converse(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin,
    key: u64,
    hello: Frame,
    channel: IdentityId,
    mut out: mpsc::Receiver<Out>,
    limiter: Arc<RateLimiter>,
    tx: &mpsc::Sender<Cmd>,
) -> Result<(), String> {
    let (mut read, mut write) = tokio::io::split(stream);
    let writer = {
        let tx = tx.clone();
        async move {
            write.write_all(&hello.encode()).await.map_err(|e| format!("closed: {e}"))?;
            loop {
                let next = tokio::time::timeout(KEEP_ALIVE, out.recv()).await;
                match next {
                    Err(_) => write.write_all(&Frame::KeepAlive.encode()).await,
                    Ok(None) => return Ok::<(), String>(()),
                    Ok(Some(Out::Frame(bytes))) => write.write_all(&bytes).await,
                    Ok(Some(Out::Chunk(seq, bytes))) => {
                        limiter.acquire(bytes.len() as u64).await;
                        let r = write.write_all(&bytes).await;
                        let _ = tx.send(Cmd::Sent(key, seq)).await;
                        r
                    }
                }
                .map_err(|e| format!("closed: {e}"))?;
            }
        }
    };
    let reader = async move {
        let mut buf = Vec::new();
        let mut first = true;
        loop {
            let len = tokio::time::timeout(IDLE, read.read_u32())
                .await
                .map_err(|_| "silent for a minute".to_string())?
                .map_err(|e| format!("closed: {e}"))? as usize;
            Frame::check_len(len).map_err(|e| format!("bad message: {e}"))?;
            buf.resize(len, 0);
            read.read_exact(&mut buf).await.map_err(|e| format!("closed: {e}"))?;
            let frame = Frame::decode(&buf).map_err(|e| format!("bad message: {e}"))?;
            if first {
                let Frame::Hello { source, port } = frame else {
                    return Err("bad message: it did not start with a hello".to_string());
                };
                first = false;
                tx.send(Cmd::Up { key, source, port }).await.map_err(|_| "stopping".to_string())?;
                continue;
            }
            if let Frame::Chunk(chunk) = &frame
                && !chunk.verify(&channel)
            {
                let _ = tx.send(Cmd::Forged(key)).await;
                return Err("forged chunk".to_string());
            }
            tx.send(Cmd::Frame(key, frame)).await.map_err(|_| "stopping".to_string())?;
        }
    };
    tokio::select! {
        r = writer => r,
        r = reader => r,
    }
}
