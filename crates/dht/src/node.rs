//! [`Node`]: a whole Mainline DHT node (BEP 5) as a sans-IO state machine.
//!
//! Message flow: the driver hands every received datagram to [`Node::handle_packet`] and
//! calls [`Node::tick`] when [`Node::poll_timeout`] says so; after either (and after
//! [`Node::get_peers`]) it drains [`Node::poll_output`], sending each [`Output::Send`] as one
//! UDP datagram and acting on each [`Event`]. The node never blocks, never reads a clock and
//! never touches a socket, so a network of thousands runs in virtual time in a test.
//!
//! What the node does:
//! * answers `ping`, `find_node`, `get_peers` and `announce_peer` with the transaction id
//!   echoed verbatim, whatever its length; replies error 203 to malformed queries that carry a
//!   transaction id and 204 to unknown methods; ignores anything else it cannot parse;
//!   includes the BEP 42 `ip` field in replies;
//! * matches responses to its own queries by (2-byte transaction id, source address);
//! * bootstraps with a `find_node` lookup for its own id through the bootstrap addresses (and
//!   saved nodes), then refreshes every bucket once; afterwards pings questionable nodes and
//!   refreshes buckets left unchanged for 15 minutes;
//! * runs `get_peers` lookups for the driver and announces to the closest nodes afterwards;
//!   peers of either address family found in `values` are passed on;
//! * answers BEP 51 `sample_infohashes` with the info-hashes it stores peers for: all of them
//!   while they fit in [`MAX_SAMPLES`], else a random choice of that many kept for
//!   [`SAMPLE_INTERVAL`] (the `interval` it announces); asks other nodes for theirs for the
//!   driver ([`Node::sample_infohashes`]).
//!
//! Bounds that hold whatever peers send: a per-IP packet rate limit, at most
//! [`Config::max_outstanding`] queries of ours in flight, an output queue of at most
//! [`Config::max_output`] datagrams (further replies are dropped, as UDP may do anyway), and the
//! [`PeerStore`] limits. This node speaks IPv4 only: datagrams from IPv6 addresses are ignored
//! and only `nodes` is used (a BEP 32 dual-stack node would run a second routing table).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use shoal_proto::InfoHash;

use crate::id::{NodeId, NodeInfo};
use crate::krpc::{self, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, Kind, Message, Query, Response};
use crate::limit::{RateLimit, RateLimiter};
use crate::lookup::{Lookup, LookupStats};
use crate::rng::Rng;
use crate::routing::{self, Contact, Heard, K, RoutingError, RoutingTable};
use crate::store::{PeerStore, StoreLimits};
use crate::tokens::Tokens;

/// The `v` we send: BEP 20 client code "SH" and version 0.1.
pub const VERSION: &[u8; 4] = b"SH\x00\x01";
/// How often [`Node::tick`] runs maintenance (pings, refreshes, purges, bootstrap retries).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
/// Pause before trying to bootstrap again after a bootstrap got no answer.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(30);
/// Questionable nodes pinged per maintenance round.
const PINGS_PER_ROUND: usize = 8;
/// Most peers returned in one `get_peers` reply (8 bytes each in the packet).
const MAX_VALUES_REPLY: usize = 50;
/// Most info-hashes in a `sample_infohashes` reply (20 bytes each in the packet).
pub const MAX_SAMPLES: usize = 20;
/// How long one sample is kept and answered (BEP 51 `interval`).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(300);
/// Longest error message we put in a reply.
const MAX_ERROR_TEXT: usize = 100;

/// Node settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our node id; random (from the seed) if `None`.
    pub id: Option<NodeId>,
    /// Addresses to bootstrap from (ids unknown).
    pub bootstrap: Vec<SocketAddr>,
    /// BEP 43 read-only: send `ro = 1` in queries and answer no queries.
    pub read_only: bool,
    /// How long a query may go unanswered before it counts as failed.
    pub query_timeout: Duration,
    /// Most of our queries in flight at once (clamped to 1..=65536: transaction ids are 2
    /// bytes).
    pub max_outstanding: usize,
    /// Most datagrams waiting in the output queue.
    pub max_output: usize,
    /// Incoming packet rate limit per source IP.
    pub rate_limit: RateLimit,
    /// Bounds of the announce store.
    pub store: StoreLimits,
    /// An IPv6 node (BEP 32): it speaks to IPv6 addresses only and sends and reads `nodes6`;
    /// otherwise IPv4 and `nodes`. A dual-stack host runs one node per family.
    pub ipv6: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: None,
            bootstrap: Vec::new(),
            read_only: false,
            query_timeout: Duration::from_secs(2),
            max_outstanding: 256,
            max_output: 1024,
            rate_limit: RateLimit::default(),
            store: StoreLimits::default(),
            ipv6: false,
        }
    }
}

/// Identifies one lookup started by [`Node::get_peers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// How to announce ourselves at the end of a `get_peers` lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    /// Announce this TCP port.
    Port(u16),
    /// Ask the receivers to use the source port of our UDP packets (`implied_port`).
    Implied,
}

/// Something for the driver to do or know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` as one UDP datagram to `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// Datagram payload.
        bytes: Vec<u8>,
    },
    /// Something happened.
    Event(Event),
}

/// What the node reports to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The first bootstrap lookup got answers: the node is part of the DHT.
    Bootstrapped,
    /// A lookup found peers (each reported once per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: InfoHash,
        /// Newly found peers.
        peers: Vec<SocketAddr>,
    },
    /// The answer to a [`Node::sample_infohashes`] request (`None`: no answer, an error, or a
    /// node that does not know BEP 51).
    Samples {
        /// The request.
        request: LookupId,
        /// The node asked.
        from: SocketAddr,
        /// What it said.
        reply: Option<SampleReply>,
    },
    /// A lookup finished (announces, if asked for, have been sent).
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: InfoHash,
        /// Its figures.
        stats: LookupStats,
    },
}

/// A node's BEP 51 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleReply {
    /// Info-hashes it stores peers for (a sample).
    pub samples: Vec<InfoHash>,
    /// How many it stores.
    pub num: u64,
    /// Seconds before its sample changes.
    pub interval: u32,
    /// Nodes close to the target asked about.
    pub nodes: Vec<NodeInfo>,
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to [`Node::handle_packet`].
    pub packets_in: u64,
    /// Datagrams dropped by the rate limit.
    pub rate_limited: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Queries answered (including with an error).
    pub queries_answered: u64,
    /// Datagrams dropped because the output queue was full.
    pub output_dropped: u64,
    /// Our queries that timed out.
    pub timeouts: u64,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Lookup(LookupId),
    Ping,
    Announce,
    Sample(LookupId),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LookupKind {
    Bootstrap,
    Refresh,
    GetPeers { info_hash: InfoHash, announce: Option<Announce> },
}

#[derive(Debug)]
struct Running {
    lookup: Lookup,
    kind: LookupKind,
}

/// A Mainline DHT node. See the [module documentation](self) for the call protocol.
#[derive(Debug)]
pub struct Node {
    config: Config,
    id: NodeId,
    table: RoutingTable,
    rng: Rng,
    tokens: Tokens,
    store: PeerStore,
    limiter: RateLimiter,
    /// Our queries in flight by (transaction id, address); at most `config.max_outstanding`.
    outstanding: HashMap<([u8; 2], SocketAddr), Pending>,
    next_tid: u16,
    lookups: HashMap<LookupId, Running>,
    next_lookup: u64,
    /// At most `config.max_output` `Send`s (events are never dropped).
    out: VecDeque<Output>,
    bootstrapped: bool,
    bootstrap_lookup: Option<LookupId>,
    bootstrap_at: Instant,
    next_maintenance: Instant,
    /// Nodes from a saved routing table, to bootstrap from.
    saved: Vec<NodeInfo>,
    counters: Counters,
    /// The sample answered to `sample_infohashes`, and when it was taken.
    sample: Option<(Instant, Vec<InfoHash>)>,
}

fn derive(seed: u64, label: &str) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    h.finalize().into()
}

impl Node {
    /// A node started at `now`. `seed` should come from the OS's random source in production
    /// (tests pass fixed seeds): the node id (unless configured), the token secret and the
    /// internal generator are each derived from it with SHA-1, so none can be guessed from
    /// another.
    pub fn new(mut config: Config, now: Instant, seed: u64) -> Self {
        config.max_outstanding = config.max_outstanding.clamp(1, 1 << 16);
        let id = config.id.unwrap_or(NodeId(derive(seed, "shoal-dht node id")));
        let [a, b, c, d, e, f, g, h, ..] = derive(seed, "shoal-dht rng");
        let mut rng = Rng::new(u64::from_be_bytes([a, b, c, d, e, f, g, h]));
        Node {
            id,
            table: RoutingTable::new(id, now),
            next_tid: rng.next_u64() as u16,
            rng,
            tokens: Tokens::new(derive(seed, "shoal-dht token key"), now),
            store: PeerStore::new(config.store),
            limiter: RateLimiter::new(config.rate_limit, now),
            outstanding: HashMap::new(),
            lookups: HashMap::new(),
            next_lookup: 0,
            out: VecDeque::new(),
            bootstrapped: false,
            bootstrap_lookup: None,
            bootstrap_at: now,
            next_maintenance: now,
            saved: Vec::new(),
            counters: Counters::default(),
            sample: None,
            config,
        }
    }

    /// A node restored from [`Node::routing_table_bytes`]: it keeps the saved id (overriding
    /// `config.id`) and bootstraps through the saved nodes as well as `config.bootstrap`.
    pub fn with_routing_table(mut config: Config, saved: &[u8], now: Instant, seed: u64) -> Result<Self, RoutingError> {
        let (id, nodes) = RoutingTable::from_bytes(saved)?;
        config.id = Some(id);
        let mut node = Node::new(config, now, seed);
        node.saved = nodes.into_iter().filter(|n| n.addr.is_ipv6() == node.config.ipv6).collect();
        Ok(node)
    }

    /// The routing table (and our id) in a form to keep across restarts.
    pub fn routing_table_bytes(&self) -> Vec<u8> {
        if self.table.is_empty() && !self.saved.is_empty() {
            // Not bootstrapped yet: keep what we were started with.
            return routing::save(&self.id, self.saved.iter());
        }
        self.table.to_bytes()
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The routing table, for inspection.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// The announce store, for inspection.
    pub fn peer_store(&self) -> &PeerStore {
        &self.store
    }

    /// Diagnostic counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether the first bootstrap has succeeded.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Pings `addr` (a node we heard of outside the DHT, e.g. from a peer's BEP 5 `port`
    /// message); if it answers, it enters the routing table like any node that responds.
    pub fn ping(&mut self, addr: SocketAddr, now: Instant) {
        if self.ours(addr) && addr.port() != 0 {
            self.send_query(addr, Query::Ping { id: self.id }, Purpose::Ping, now);
        }
    }

    /// When [`Node::tick`] should be called next (it may be called more often).
    pub fn poll_timeout(&self) -> Instant {
        self.outstanding.values().map(|p| p.deadline).fold(self.next_maintenance, Instant::min)
    }

    /// Starts a `get_peers` lookup for `info_hash`, announcing ourselves to the closest nodes
    /// at the end if `announce` is set. Peers arrive as [`Event::Peers`], the end as
    /// [`Event::LookupDone`].
    pub fn get_peers(&mut self, info_hash: InfoHash, announce: Option<Announce>, now: Instant) -> LookupId {
        self.start_lookup(info_hash.into(), LookupKind::GetPeers { info_hash, announce }, now)
    }

    /// Asks the node at `addr` for a sample of the info-hashes it stores (BEP 51) and for the
    /// nodes it knows closest to `target`. The answer comes as [`Event::Samples`] (also when
    /// there is none). `None` when no query can be sent now (too many in flight).
    pub fn sample_infohashes(&mut self, addr: SocketAddr, target: NodeId, now: Instant) -> Option<LookupId> {
        let request = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let query = Query::SampleInfohashes { id: self.id, target, want: None };
        (self.ours(addr) && self.send_query(addr, query, Purpose::Sample(request), now)).then_some(request)
    }

    fn start_lookup(&mut self, target: NodeId, kind: LookupKind, now: Instant) -> LookupId {
        let lid = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut lookup = Lookup::new(self.id, target, now);
        lookup.add_nodes(self.table.lookup_seeds(&target, 2 * K));
        if self.table.is_empty() || kind == LookupKind::Bootstrap {
            lookup.add_nodes(self.saved.iter().copied());
            let ipv6 = self.config.ipv6;
            for &addr in self.config.bootstrap.iter().filter(|a| a.is_ipv6() == ipv6) {
                lookup.add_candidate(None, addr);
            }
        }
        self.lookups.insert(lid, Running { lookup, kind });
        self.drive(lid, now);
        lid
    }

    /// Whether `addr` is of this node's family.
    fn ours(&self, addr: SocketAddr) -> bool {
        addr.is_ipv6() == self.config.ipv6
    }

    /// The nodes of a response in this node's family (`nodes6` for an IPv6 node).
    fn family_nodes(&self, nodes: Vec<NodeInfo>, nodes6: Vec<NodeInfo>) -> Vec<NodeInfo> {
        let list = if self.config.ipv6 { nodes6 } else { nodes };
        list.into_iter().filter(|n| self.ours(n.addr)).collect()
    }

    /// Puts `nodes` in the field of this node's family.
    fn put_nodes(&self, r: &mut Response, nodes: Vec<NodeInfo>) {
        if self.config.ipv6 {
            r.nodes6 = nodes;
        } else {
            r.nodes = nodes;
        }
    }

    /// Handles one datagram received from `from`.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.counters.packets_in += 1;
        if !self.ours(from) || from.port() == 0 {
            return;
        }
        if !self.limiter.allow(from.ip(), now) {
            self.counters.rate_limited += 1;
            return;
        }
        let msg = match krpc::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.counters.malformed += 1;
                if let Some(tid) = krpc::query_tid(bytes)
                    && !self.config.read_only
                {
                    self.reply(from, Message::error(tid, ERROR_PROTOCOL, truncate(e.to_string())));
                }
                return;
            }
        };
        match msg.kind {
            Kind::Query(q) => self.on_query(from, msg.tid, q, msg.read_only, now),
            Kind::Response(r) => self.on_response(from, &msg.tid, r, now),
            Kind::Error { .. } => self.on_error(from, &msg.tid, now),
        }
    }

    fn on_query(&mut self, from: SocketAddr, tid: Vec<u8>, q: Query, sender_read_only: bool, now: Instant) {
        if self.config.read_only {
            return;
        }
        let reply = match &q {
            Query::Unknown { method } => {
                Message::error(tid, ERROR_METHOD_UNKNOWN, truncate(format!("method unknown: {method}")))
            }
            Query::Ping { .. } => Message::response(tid, Response::id_only(self.id)),
            Query::FindNode { target, .. } => {
                let mut r = Response::id_only(self.id);
                self.put_nodes(&mut r, self.table.closest(target, K));
                Message::response(tid, r)
            }
            Query::GetPeers { info_hash, .. } => {
                let mut r = Response::id_only(self.id);
                self.put_nodes(&mut r, self.table.closest(&(*info_hash).into(), K));
                r.values = self.store.peers(info_hash, now, MAX_VALUES_REPLY, &mut self.rng);
                r.token = Some(self.tokens.token(from.ip(), now).to_vec());
                Message::response(tid, r)
            }
            Query::SampleInfohashes { target, .. } => {
                // While every info-hash fits in a reply, the reply is all of them, as they are;
                // past that, one random sample is kept for the interval (BEP 51).
                let all_fit = self.store.torrent_count() <= MAX_SAMPLES;
                let fresh =
                    self.sample.as_ref().is_some_and(|(at, _)| now.saturating_duration_since(*at) < SAMPLE_INTERVAL);
                if all_fit || !fresh {
                    let sample = self.store.sample(MAX_SAMPLES, &mut self.rng);
                    self.sample = Some((now, sample));
                }
                let mut r = Response::id_only(self.id);
                self.put_nodes(&mut r, self.table.closest(target, K));
                r.samples = self.sample.as_ref().map(|(_, s)| s.clone());
                r.num = Some(self.store.torrent_count() as u64);
                r.interval = Some(SAMPLE_INTERVAL.as_secs() as u32);
                Message::response(tid, r)
            }
            Query::AnnouncePeer { info_hash, port, implied_port, token, .. } => {
                let port = if *implied_port { from.port() } else { *port };
                if !self.tokens.check(from.ip(), token, now) {
                    Message::error(tid, ERROR_PROTOCOL, "bad token")
                } else if port == 0 {
                    Message::error(tid, ERROR_PROTOCOL, "bad port")
                } else {
                    self.store.announce(*info_hash, SocketAddr::new(from.ip(), port), now);
                    Message::response(tid, Response::id_only(self.id))
                }
            }
        };
        self.reply(from, reply);
        if let Some(id) = q.sender_id()
            && !sender_read_only
            && self.table.heard_from(NodeInfo { id, addr: from }, Contact::Query, now) == Heard::Added
        {
            // It took a free slot; find out at once whether it answers queries too.
            self.send_query(from, Query::Ping { id: self.id }, Purpose::Ping, now);
        }
    }

    fn reply(&mut self, to: SocketAddr, mut msg: Message) {
        self.counters.queries_answered += 1;
        msg.ip = Some(to);
        msg.version = Some(VERSION.to_vec());
        self.push_send(to, msg.encode());
    }

    fn push_send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.out.len() >= self.config.max_output {
            self.counters.output_dropped += 1;
        } else {
            self.out.push_back(Output::Send { to, bytes });
        }
    }

    fn take_pending(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        self.outstanding.remove(&(<[u8; 2]>::try_from(tid).ok()?, from))
    }

    fn on_response(&mut self, from: SocketAddr, tid: &[u8], r: Response, now: Instant) {
        let Some(pending) = self.take_pending(from, tid) else { return };
        self.table.heard_from(NodeInfo { id: r.id, addr: from }, Contact::Response, now);
        if let Purpose::Sample(request) = pending.purpose {
            // Without `samples` the node does not know BEP 51 (it answered by a `target`).
            let reply = r.samples.map(|samples| SampleReply {
                samples,
                num: r.num.unwrap_or(0),
                interval: r.interval.unwrap_or(0),
                nodes: self.family_nodes(r.nodes, r.nodes6),
            });
            self.out.push_back(Output::Event(Event::Samples { request, from, reply }));
            return;
        }
        let Purpose::Lookup(lid) = pending.purpose else { return };
        let nodes: Vec<NodeInfo> = self.family_nodes(r.nodes, r.nodes6);
        let Some(run) = self.lookups.get_mut(&lid) else { return };
        let peers = run.lookup.on_response(from, r.id, &nodes, &r.values, r.token);
        if let LookupKind::GetPeers { info_hash, .. } = run.kind
            && !peers.is_empty()
        {
            self.out.push_back(Output::Event(Event::Peers { lookup: lid, info_hash, peers }));
        }
        self.drive(lid, now);
    }

    fn on_error(&mut self, from: SocketAddr, tid: &[u8], now: Instant) {
        // The node is alive but could not help; only the lookup counts it as failed.
        let Some(pending) = self.take_pending(from, tid) else { return };
        if let Purpose::Sample(request) = pending.purpose {
            self.out.push_back(Output::Event(Event::Samples { request, from, reply: None }));
        }
        if let Purpose::Lookup(lid) = pending.purpose
            && let Some(run) = self.lookups.get_mut(&lid)
        {
            run.lookup.on_failure(from);
            self.drive(lid, now);
        }
    }

    /// Advances timers: query timeouts, and every few seconds maintenance (bootstrap retries,
    /// pings of questionable nodes, bucket refreshes, expiry of stored peers).
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<_> = self.outstanding.iter().filter(|(_, p)| p.deadline <= now).map(|(k, _)| *k).collect();
        for key in expired {
            let Some(p) = self.outstanding.remove(&key) else { continue };
            self.counters.timeouts += 1;
            self.table.failed(key.1, now);
            if let Purpose::Sample(request) = p.purpose {
                self.out.push_back(Output::Event(Event::Samples { request, from: key.1, reply: None }));
            }
            if let Purpose::Lookup(lid) = p.purpose
                && let Some(run) = self.lookups.get_mut(&lid)
            {
                run.lookup.on_failure(key.1);
            }
        }
        // Drive every lookup: some may have waited for room in the outstanding table.
        let mut ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        ids.sort();
        for lid in ids {
            self.drive(lid, now);
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_EVERY;
            self.maintain(now);
        }
    }

    fn maintain(&mut self, now: Instant) {
        self.store.purge(now);
        self.limiter.purge(now);
        for node in self.table.take_pings(now, PINGS_PER_ROUND) {
            self.send_query(node.addr, Query::Ping { id: self.id }, Purpose::Ping, now);
        }
        if !self.bootstrapped {
            if self.bootstrap_lookup.is_none() && now >= self.bootstrap_at {
                self.bootstrap_at = now + BOOTSTRAP_RETRY;
                let lid = self.start_lookup(self.id, LookupKind::Bootstrap, now);
                // With nothing to ask, the lookup is over already; retry later.
                self.bootstrap_lookup = self.lookups.contains_key(&lid).then_some(lid);
            }
            return;
        }
        for target in self.table.take_refresh_targets(now, &mut self.rng) {
            self.start_lookup(target, LookupKind::Refresh, now);
        }
    }

    /// Sends the queries a lookup wants and finishes it when it is done.
    fn drive(&mut self, lid: LookupId, now: Instant) {
        let Some(run) = self.lookups.get_mut(&lid) else { return };
        let room = self.config.max_outstanding.saturating_sub(self.outstanding.len());
        let mut to = Vec::new();
        while to.len() < room
            && let Some(addr) = run.lookup.next_query()
        {
            to.push(addr);
        }
        let query = match run.kind {
            LookupKind::GetPeers { info_hash, .. } => Query::GetPeers { id: self.id, info_hash, want: None },
            _ => Query::FindNode { id: self.id, target: run.lookup.target(), want: None },
        };
        let done = run.lookup.is_done();
        for addr in to {
            self.send_query(addr, query.clone(), Purpose::Lookup(lid), now);
        }
        if done {
            self.finish(lid, now);
        }
    }

    fn finish(&mut self, lid: LookupId, now: Instant) {
        let Some(run) = self.lookups.remove(&lid) else { return };
        let mut stats = run.lookup.stats(now);
        match run.kind {
            LookupKind::Bootstrap => {
                self.bootstrap_lookup = None;
                if stats.responded > 0 && !self.bootstrapped {
                    self.bootstrapped = true;
                    self.saved.clear();
                    self.out.push_back(Output::Event(Event::Bootstrapped));
                    // Fill the far buckets too: one refresh lookup per bucket but our own.
                    for i in 0..self.table.bucket_count().saturating_sub(1) {
                        let target = self.table.random_id_in_bucket(i, &mut self.rng);
                        self.start_lookup(target, LookupKind::Refresh, now);
                    }
                }
            }
            LookupKind::Refresh => {}
            LookupKind::GetPeers { info_hash, announce } => {
                if let Some(announce) = announce {
                    for (addr, token) in run.lookup.announce_targets() {
                        let (port, implied_port) = match announce {
                            Announce::Port(p) => (p, false),
                            Announce::Implied => (0, true),
                        };
                        let q = Query::AnnouncePeer { id: self.id, info_hash, port, implied_port, token };
                        if self.send_query(addr, q, Purpose::Announce, now) {
                            stats.announced += 1;
                        }
                    }
                }
                self.out.push_back(Output::Event(Event::LookupDone { lookup: lid, info_hash, stats }));
            }
        }
    }

    /// Sends a query with a fresh 2-byte transaction id; false if the outstanding table is full.
    fn send_query(&mut self, to: SocketAddr, query: Query, purpose: Purpose, now: Instant) -> bool {
        if self.outstanding.len() >= self.config.max_outstanding {
            return false;
        }
        // A counter, skipping ids still in flight to the same address (there are fewer of
        // those than ids, so this ends).
        let mut tid = self.next_tid.to_be_bytes();
        for _ in 0..=u16::MAX {
            self.next_tid = self.next_tid.wrapping_add(1);
            if !self.outstanding.contains_key(&(tid, to)) {
                break;
            }
            tid = self.next_tid.to_be_bytes();
        }
        self.outstanding.insert((tid, to), Pending { deadline: now + self.config.query_timeout, purpose });
        let mut msg = Message::query(tid.to_vec(), query);
        msg.version = Some(VERSION.to_vec());
        msg.read_only = self.config.read_only;
        self.push_send(to, msg.encode());
        true
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
