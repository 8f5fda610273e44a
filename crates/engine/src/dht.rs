//! The DHT driver: one tokio task that owns a UDP socket and a sans-IO [`shoal_dht::Node`]
//! (Mainline DHT, BEP 5), and [`Dht`], the cheap cloneable handle the rest of the engine uses.
//!
//! Message flow. [`Dht::start`] binds the socket and spawns the task; the task resolves the
//! bootstrap host names, restores the routing table from [`DhtConfig::state_file`] (or starts
//! fresh: silently when the file does not exist yet, with a warning when it cannot be read or
//! holds no valid table), and then loops over
//! `select! { biased; inbox, socket, timer }`:
//! - inbox: commands from handles (`get_peers`, `add_node`, `stats`, `shutdown`); when every
//!   handle is gone the inbox closes, and the task saves the table and ends;
//! - socket: each datagram goes to [`Node::handle_packet`];
//! - timer: [`Node::tick`] at [`Node::poll_timeout`], and a save of the routing table every
//!   [`SAVE_EVERY`] (written to a temporary file, then renamed over the old one).
//!
//! After each step the node's output is drained: datagrams are sent, and [`Event::Peers`] and
//! [`Event::LookupDone`] are forwarded to the channel of the `get_peers` call that started the
//! lookup, which closes when the lookup ends. Then the size of the routing table is published
//! on a watch channel every handle holds ([`TableState`]), so announces and lookups can wait
//! for a table that has nodes instead of running into an empty one. The node works with
//! `std::time::Instant`; the task reads tokio's clock and converts
//! (`tokio::time::Instant::into_std` / `from_std`), so the node also follows tokio's clock when
//! it is paused in tests.
//!
//! A `get_peers` lookup never asks our own node, so peers announced *to us* are taken from
//! [`Node::peer_store`] and sent first.
//!
//! [`Dht::announce_loop`] announces as soon as the routing table holds nodes, not at a fixed
//! time: a node whose bootstrap nodes answer late, or not at all until another node finds it
//! (two fresh nodes, one bootstrapped from the other), announces the moment it meets someone,
//! rather than into an empty table and then not again for [`ANNOUNCE_EVERY`].
//!
//! IPv4 only, as the node is.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_dht::lookup::MAX_QUERIES;
use shoal_dht::rng::Rng;
use shoal_dht::{Announce, Config, Counters, Event, LookupId, Node, NodeId, Output, RateLimit};
use shoal_proto::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant as TokioInstant, sleep_until, timeout};
use tracing::Instrument;

/// The public routers a node bootstraps from by default.
pub const DEFAULT_BOOTSTRAP: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];
/// How often the routing table is saved to [`DhtConfig::state_file`] (and at shutdown).
pub const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);
/// How often [`Dht::announce_loop`] looks a torrent up and announces it again (it also does
/// whenever the routing table gains nodes after being empty).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);

/// Commands waiting for the task; senders wait (bounded by [`COMMAND_TIMEOUT`]) when it is full.
const INBOX: usize = 64;
/// How long a handle waits for the task to take a command or answer it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Dht::shutdown`] waits for the task to save its table and stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving one bootstrap host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the state file may take.
const SAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest datagram read; longer ones are truncated (and then fail to decode).
const RECV_BUFFER: usize = 64 * 1024;
/// Batches of peers one lookup can produce: one per answered query, plus the local store's.
/// The channel has room for all of them, so forwarding never has to wait or drop.
const PEER_BATCHES: usize = MAX_QUERIES + 1;
/// Most stored peers handed out from our own store at the start of a lookup.
const LOCAL_PEERS: usize = 200;
/// Longest a round of [`Dht::announce_loop`] may take.
const ANNOUNCE_ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// DHT settings.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// UDP address to listen on; an IPv6 address makes an IPv6 node (BEP 32), which speaks to
    /// IPv6 nodes only.
    pub listen: SocketAddr,
    /// Nodes to bootstrap from, as `host:port`, resolved at start (unresolvable ones are
    /// skipped with a warning).
    pub bootstrap: Vec<String>,
    /// Where the routing table is kept across restarts: read at start if present and valid,
    /// written every [`SAVE_EVERY`] and at shutdown. `None` keeps nothing.
    pub state_file: Option<PathBuf>,
    /// Incoming packet rate limit per source IP. The default suits the Internet; tests with
    /// many nodes on 127.0.0.1 need a higher one, since every node there shares one IP.
    pub rate_limit: RateLimit,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6881)),
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| (*s).to_owned()).collect(),
            state_file: None,
            rate_limit: RateLimit::default(),
        }
    }
}

/// Why a DHT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The UDP socket could not be opened.
    #[error("cannot listen for DHT traffic on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The DHT task has stopped (after [`Dht::shutdown`], or it ended).
    #[error("the DHT has stopped")]
    Stopped,
    /// The DHT task did not take or answer a command in time.
    #[error("the DHT did not answer within {0:?}")]
    Timeout(Duration),
}

/// A snapshot of the node, from [`Dht::stats`].
#[derive(Clone, Debug)]
pub struct DhtStats {
    /// Our node id (kept across restarts with a state file).
    pub id: NodeId,
    /// Nodes in the routing table.
    pub nodes: usize,
    /// Whether the first bootstrap has succeeded.
    pub bootstrapped: bool,
    /// Nodes read from the state file at start (0 without a file or when it was unreadable).
    pub restored_nodes: usize,
    /// `get_peers` lookups whose channel is still open.
    pub lookups: usize,
    /// Peers others announced to us, over all torrents.
    pub stored_peers: usize,
    /// The node's diagnostic counters.
    pub counters: Counters,
}

enum Command {
    GetPeers { info_hash: InfoHash, announce: Option<Announce>, peers: mpsc::Sender<Vec<SocketAddr>> },
    AddNode(SocketAddr),
    Sample { addr: SocketAddr, target: NodeId, reply: oneshot::Sender<Option<shoal_dht::SampleReply>> },
    Nodes(usize, oneshot::Sender<Vec<SocketAddr>>),
    Stats(oneshot::Sender<DhtStats>),
    Shutdown(oneshot::Sender<()>),
}

/// What handles see of the routing table, published by the DHT task after every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableState {
    /// Nodes in the routing table.
    pub(crate) nodes: usize,
    /// Times the table went from empty to holding nodes (the first time included), so a waiter
    /// that was not looking at that moment still sees that it happened.
    pub(crate) refills: u64,
}

/// A handle to the running DHT node; cheap to clone. The node stops when
/// [`Dht::shutdown`] is called or when every handle is dropped (saving its table either way).
#[derive(Clone, Debug)]
pub struct Dht {
    inbox: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    /// Closes (every `changed` fails) when the task ends.
    table: watch::Receiver<TableState>,
}

impl Dht {
    /// Binds the UDP socket and starts the node's task. Bootstrap names are resolved and the
    /// state file is read by the task, so this returns at once; only a bind failure is an
    /// error. Must be called within a tokio runtime.
    pub async fn start(config: DhtConfig) -> Result<Dht, DhtError> {
        let socket =
            UdpSocket::bind(config.listen).await.map_err(|source| DhtError::Bind { addr: config.listen, source })?;
        let local_addr = socket.local_addr().map_err(|source| DhtError::Bind { addr: config.listen, source })?;
        let (tx, rx) = mpsc::channel(INBOX);
        let (table_tx, table) = watch::channel(TableState::default());
        let span = tracing::info_span!("dht", addr = %local_addr);
        tokio::spawn(run(config, socket, rx, table_tx).instrument(span));
        Ok(Dht { inbox: tx, local_addr, table })
    }

    /// The routing table's size and refills, as the task last published them.
    pub(crate) fn table(&self) -> watch::Receiver<TableState> {
        self.table.clone()
    }

    /// The address the UDP socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn send(&self, cmd: Command) -> Result<(), DhtError> {
        match timeout(COMMAND_TIMEOUT, self.inbox.send(cmd)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(DhtError::Stopped),
            Err(_) => Err(DhtError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    /// Starts a `get_peers` lookup for `info_hash`. The channel yields peers in batches as
    /// they are found (peers announced to this node first, then each batch new to the
    /// lookup, so a peer may appear twice) and closes when the lookup is over. With
    /// `announce_port`, the lookup ends by announcing this TCP port to the closest nodes;
    /// `Some(0)` asks them to use our UDP source port instead (`implied_port`).
    pub async fn get_peers(
        &self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
    ) -> Result<mpsc::Receiver<Vec<SocketAddr>>, DhtError> {
        let announce = announce_port.map(|p| if p == 0 { Announce::Implied } else { Announce::Port(p) });
        let (tx, rx) = mpsc::channel(PEER_BATCHES);
        self.send(Command::GetPeers { info_hash, announce, peers: tx }).await?;
        Ok(rx)
    }

    /// Asks the node at `addr` whether it is a DHT node, and adds it to the routing table if
    /// it answers (for BEP 5 `port` messages from peers). Returns once the request is queued.
    pub async fn add_node(&self, addr: SocketAddr) -> Result<(), DhtError> {
        self.send(Command::AddNode(addr)).await
    }

    /// Asks the node at `addr` for a sample of the info-hashes it stores peers for (BEP 51)
    /// and the nodes it knows near `target`. `None`: no answer within the query timeout, an
    /// error, or a node that does not know BEP 51.
    pub async fn sample_infohashes(
        &self,
        addr: SocketAddr,
        target: [u8; 20],
    ) -> Result<Option<shoal_dht::SampleReply>, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Sample { addr, target: NodeId(target), reply: tx }).await?;
        match timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(DhtError::Stopped),
            Err(_) => Err(DhtError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    /// Up to `max` addresses of nodes in the routing table.
    pub async fn nodes(&self, max: usize) -> Result<Vec<SocketAddr>, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Nodes(max, tx)).await?;
        match timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(nodes)) => Ok(nodes),
            Ok(Err(_)) => Err(DhtError::Stopped),
            Err(_) => Err(DhtError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    /// A snapshot of the node.
    pub async fn stats(&self) -> Result<DhtStats, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        match timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(_)) => Err(DhtError::Stopped),
            Err(_) => Err(DhtError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    /// Saves the routing table (with a state file) and stops the node; every handle then gets
    /// [`DhtError::Stopped`]. Waits at most ten seconds.
    pub async fn shutdown(&self) -> Result<(), DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Shutdown(tx)).await?;
        match timeout(SHUTDOWN_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(DhtError::Stopped),
            Err(_) => Err(DhtError::Timeout(SHUTDOWN_TIMEOUT)),
        }
    }

    /// Keeps `info_hash` announced: runs a `get_peers` lookup that announces `port` (see
    /// [`Dht::get_peers`]) as soon as the routing table holds nodes, then every
    /// [`ANNOUNCE_EVERY`], and again whenever the table gains nodes after being empty; every
    /// batch of peers found goes to `sink`. The loop does not keep the node alive: it ends when
    /// the node stops, and when the returned guard is dropped.
    pub fn announce_loop<F>(&self, info_hash: InfoHash, port: Option<u16>, sink: F) -> AnnounceLoop
    where
        F: FnMut(Vec<SocketAddr>) + Send + 'static,
    {
        let handle = WeakDht { inbox: self.inbox.downgrade(), local_addr: self.local_addr, table: self.table() };
        let span = tracing::debug_span!("dht_announce", info_hash = %info_hash.to_hex());
        let task = tokio::spawn(announce_rounds(handle, info_hash, port, sink).instrument(span));
        AnnounceLoop { task }
    }
}

/// A handle that does not keep the node alive, for [`Dht::announce_loop`].
struct WeakDht {
    inbox: mpsc::WeakSender<Command>,
    local_addr: SocketAddr,
    table: watch::Receiver<TableState>,
}

impl WeakDht {
    /// A handle, if the node still runs.
    fn upgrade(&self) -> Option<Dht> {
        Some(Dht { inbox: self.inbox.upgrade()?, local_addr: self.local_addr, table: self.table.clone() })
    }
}

async fn announce_rounds<F>(mut weak: WeakDht, info_hash: InfoHash, port: Option<u16>, mut sink: F)
where
    F: FnMut(Vec<SocketAddr>) + Send + 'static,
{
    loop {
        // A lookup through an empty table can ask only the bootstrap nodes, and announces to no
        // one when they are silent: wait until someone is in the table. Fails when the node
        // has stopped.
        let Ok(refills) = weak.table.wait_for(|t| t.nodes > 0).await.map(|t| t.refills) else { return };
        let Some(dht) = weak.upgrade() else { return };
        let mut peers = match dht.get_peers(info_hash, port).await {
            Ok(rx) => rx,
            Err(DhtError::Stopped) => return,
            Err(e) => {
                tracing::debug!("announce round skipped: {e}");
                tokio::time::sleep(COMMAND_TIMEOUT).await;
                continue;
            }
        };
        // Only the channel keeps the round going, not a handle.
        drop(dht);
        let round = async {
            while let Some(batch) = peers.recv().await {
                sink(batch);
            }
        };
        if timeout(ANNOUNCE_ROUND_TIMEOUT, round).await.is_err() {
            tracing::debug!("announce round took longer than {ANNOUNCE_ROUND_TIMEOUT:?}");
        }
        // The round may have reached few nodes, or none, if the table emptied meanwhile: a
        // table refilled since it began is announced to at once.
        let refilled = weak.table.wait_for(|t| t.refills > refills);
        tokio::select! {
            () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
            r = refilled => if r.is_err() { return },
        }
    }
}

/// The task behind [`Dht::announce_loop`]; dropping it stops the loop.
#[derive(Debug)]
pub struct AnnounceLoop {
    task: JoinHandle<()>,
}

impl AnnounceLoop {
    /// Stops the loop (as dropping it does).
    pub fn stop(self) {}
}

impl Drop for AnnounceLoop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node's clock reading: tokio's clock, so a paused clock in tests moves the node too.
fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

/// The state of the DHT task. Every field is touched only by that task.
struct Driver {
    node: Node,
    socket: UdpSocket,
    state_file: Option<PathBuf>,
    /// Open `get_peers` channels by lookup; an entry goes when its lookup ends or its
    /// receiver is dropped.
    lookups: HashMap<LookupId, mpsc::Sender<Vec<SocketAddr>>>,
    /// Open `sample_infohashes` requests.
    samples: HashMap<LookupId, oneshot::Sender<Option<shoal_dht::SampleReply>>>,
    rng: Rng,
    restored_nodes: usize,
    next_save: TokioInstant,
    /// What handles see of the routing table; see [`Driver::publish_table`].
    table: watch::Sender<TableState>,
}

enum Step {
    Command(Option<Command>),
    Packet(io::Result<(usize, SocketAddr)>),
    Timer,
}

async fn run(
    config: DhtConfig,
    socket: UdpSocket,
    mut inbox: mpsc::Receiver<Command>,
    table: watch::Sender<TableState>,
) {
    // The node speaks the family of its socket (BEP 32: an IPv6 node keeps its own table).
    let ipv6 = config.listen.is_ipv6();
    let bootstrap = resolve(&config.bootstrap, ipv6).await;
    tracing::debug!("bootstrapping from {} address(es)", bootstrap.len());
    let node_config = Config { bootstrap, rate_limit: config.rate_limit, ipv6, ..Config::default() };
    let seed: u64 = rand::random();
    let (node, restored_nodes) = restore(node_config, config.state_file.as_deref(), seed).await;
    let mut driver = Driver {
        node,
        socket,
        state_file: config.state_file,
        lookups: HashMap::new(),
        samples: HashMap::new(),
        rng: Rng::new(rand::random()),
        restored_nodes,
        next_save: TokioInstant::now() + SAVE_EVERY,
        table,
    };
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        driver.flush().await;
        let deadline = TokioInstant::from_std(driver.node.poll_timeout());
        let deadline = if driver.state_file.is_some() { deadline.min(driver.next_save) } else { deadline };
        let step = tokio::select! {
            biased;
            cmd = inbox.recv() => Step::Command(cmd),
            r = driver.socket.recv_from(&mut buf) => Step::Packet(r),
            () = sleep_until(deadline) => Step::Timer,
        };
        match step {
            Step::Command(None) => break,
            Step::Command(Some(Command::Shutdown(done))) => {
                driver.save().await;
                let _ = done.send(());
                tracing::debug!("stopped");
                return;
            }
            Step::Command(Some(cmd)) => driver.on_command(cmd).await,
            Step::Packet(Ok((len, from))) => driver.on_packet(from, &buf[..len]).await,
            Step::Packet(Err(e)) => tracing::debug!("receive failed: {e}"),
            Step::Timer => {}
        }
        // Also after packets and commands, so a busy socket cannot hold the timers back.
        let now = TokioInstant::now();
        if now.into_std() >= driver.node.poll_timeout() {
            driver.node.tick(now.into_std());
        }
        if driver.state_file.is_some() && now >= driver.next_save {
            driver.next_save = now + SAVE_EVERY;
            driver.save().await;
        }
        driver.publish_table();
    }
    driver.save().await;
    tracing::debug!("every handle dropped; stopped");
}

/// Resolves `host:port` names (all at once, each within [`RESOLVE_TIMEOUT`]) to IPv4
/// addresses, without duplicates.
async fn resolve(names: &[String], ipv6: bool) -> Vec<SocketAddr> {
    let mut jobs = JoinSet::new();
    for name in names {
        let name = name.clone();
        jobs.spawn(async move {
            let r = timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.clone())).await;
            (name, r)
        });
    }
    let mut addrs = Vec::new();
    while let Some(joined) = jobs.join_next().await {
        let Ok((name, r)) = joined else { continue };
        match r {
            Ok(Ok(found)) => {
                let mut any = false;
                for addr in found.filter(|a| a.is_ipv6() == ipv6) {
                    any = true;
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                if !any {
                    let family = if ipv6 { "IPv6" } else { "IPv4" };
                    tracing::warn!("DHT bootstrap node {name} has no {family} address");
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot resolve DHT bootstrap node {name}: {e}"),
            Err(_) => tracing::warn!("resolving DHT bootstrap node {name} took longer than {RESOLVE_TIMEOUT:?}"),
        }
    }
    addrs
}

/// A node restored from `state_file` if it holds a valid table, else a fresh one (with a
/// warning unless the file simply does not exist yet); also the number of nodes restored.
async fn restore(config: Config, state_file: Option<&Path>, seed: u64) -> (Node, usize) {
    let now = now();
    let Some(path) = state_file else { return (Node::new(config, now, seed), 0) };
    let bytes = match timeout(SAVE_TIMEOUT, tokio::fs::read(path)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => return (Node::new(config, now, seed), 0),
        Ok(Err(e)) => {
            tracing::warn!("cannot read the DHT state file {}: {e}; starting with an empty table", path.display());
            return (Node::new(config, now, seed), 0);
        }
        Err(_) => {
            tracing::warn!("reading the DHT state file {} timed out; starting with an empty table", path.display());
            return (Node::new(config, now, seed), 0);
        }
    };
    match Node::with_routing_table(config.clone(), &bytes, now, seed) {
        Ok(node) => {
            let restored = shoal_dht::RoutingTable::from_bytes(&bytes).map_or(0, |(_, nodes)| nodes.len());
            tracing::debug!("restored {restored} node(s) from {}", path.display());
            (node, restored)
        }
        Err(e) => {
            tracing::warn!("ignoring the DHT state file {}: {e}; starting with an empty table", path.display());
            (Node::new(config, now, seed), 0)
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so the
/// file is always either the old or the new table.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl Driver {
    /// Publishes the routing table's size if it changed, counting a refill when it had been
    /// empty. Waiters wake only on a change.
    fn publish_table(&self) {
        let nodes = self.node.routing_table().len();
        self.table.send_if_modified(|t| {
            if t.nodes == nodes {
                return false;
            }
            if t.nodes == 0 {
                t.refills += 1;
            }
            t.nodes = nodes;
            true
        });
    }

    /// Sends every datagram the node wants sent and forwards its events.
    async fn flush(&mut self) {
        while let Some(out) = self.node.poll_output() {
            self.emit(out).await;
        }
    }

    async fn emit(&mut self, out: Output) {
        match out {
            Output::Send { to, bytes } => {
                if let Err(e) = self.socket.send_to(&bytes, to).await {
                    tracing::debug!(%to, "send failed: {e}");
                }
            }
            Output::Event(Event::Bootstrapped) => {
                tracing::info!("DHT bootstrapped: {} node(s) in the routing table", self.node.routing_table().len());
            }
            Output::Event(Event::Peers { lookup, peers, .. }) => {
                if let Some(tx) = self.lookups.get(&lookup)
                    && let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(peers)
                {
                    self.lookups.remove(&lookup);
                }
            }
            Output::Event(Event::Samples { request, reply, .. }) => {
                if let Some(tx) = self.samples.remove(&request) {
                    let _ = tx.send(reply);
                }
            }
            Output::Event(Event::LookupDone { lookup, info_hash, stats }) => {
                tracing::debug!(info_hash = %info_hash.to_hex(), ?stats, "lookup done");
                // Dropping the sender closes the caller's channel.
                self.lookups.remove(&lookup);
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::GetPeers { info_hash, announce, peers } => {
                let now = now();
                let local = self.node.peer_store().peers(&info_hash, now, LOCAL_PEERS, &mut self.rng);
                if !local.is_empty() {
                    // The channel is new and has room.
                    let _ = peers.try_send(local);
                }
                let lookup = self.node.get_peers(info_hash, announce, now);
                self.lookups.insert(lookup, peers);
                // A lookup with nobody to ask is over at once; its LookupDone is in the
                // output queue and closes the channel in the next flush.
            }
            Command::AddNode(addr) => {
                if !self.node.routing_table().entries().any(|e| e.info.addr == addr) {
                    self.node.ping(addr, now());
                }
            }
            Command::Sample { addr, target, reply } => match self.node.sample_infohashes(addr, target, now()) {
                Some(request) => {
                    self.samples.retain(|_, tx| !tx.is_closed());
                    self.samples.insert(request, reply);
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            Command::Nodes(max, reply) => {
                let _ = reply.send(self.node.routing_table().entries().map(|e| e.info.addr).take(max).collect());
            }
            Command::Stats(reply) => {
                self.lookups.retain(|_, tx| !tx.is_closed());
                let _ = reply.send(DhtStats {
                    id: self.node.id(),
                    nodes: self.node.routing_table().len(),
                    bootstrapped: self.node.is_bootstrapped(),
                    restored_nodes: self.restored_nodes,
                    lookups: self.lookups.len(),
                    stored_peers: self.node.peer_store().peer_count(),
                    counters: self.node.counters(),
                });
            }
            // Handled by the loop.
            Command::Shutdown(_) => {}
        }
    }

    async fn on_packet(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.node.handle_packet(from, bytes, now());
    }

    /// Writes the routing table to the state file, if there is one; failures are logged.
    async fn save(&mut self) {
        let Some(path) = self.state_file.clone() else { return };
        let bytes = self.node.routing_table_bytes();
        let job = tokio::task::spawn_blocking(move || {
            let r = write_atomically(&path, &bytes);
            (path, r)
        });
        match timeout(SAVE_TIMEOUT, job).await {
            Ok(Ok((_, Ok(())))) => tracing::debug!("routing table saved"),
            Ok(Ok((path, Err(e)))) => tracing::warn!("cannot save the DHT state to {}: {e}", path.display()),
            Ok(Err(e)) => tracing::warn!("saving the DHT state failed: {e}"),
            Err(_) => tracing::warn!("saving the DHT state took longer than {SAVE_TIMEOUT:?}"),
        }
    }
}
