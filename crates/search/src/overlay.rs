//! Search with no server: the policy of a node among its search neighbours, without I/O.
//!
//! Shoal nodes keep a few search neighbours (other Shoal nodes, connected over the BitTorrent
//! wire with the `shoal_search` BEP 10 extension, see [`wire`]) and answer each other's queries
//! from their local index. A query travels with a hop limit; every node keeps the query's id
//! for [`Config::route_life`] and drops a second copy (so a query is answered and forwarded at
//! most once per node, whatever the loops in the graph); results travel back along the path the
//! query came (each node forwards them only to the neighbour it had the query from, and only
//! from neighbours it sent the query to, at most as many as were asked for).
//!
//! Where a query goes is decided by query routing tables ([`table`]): each node tells each
//! neighbour which words it and the nodes behind it can answer for, by distance, and a query
//! is sent on only where its words can match within its remaining hops. A neighbour whose table
//! has not come yet gets every query (plain flooding). The node that asks uses Gnutella's
//! dynamic querying: it sends to its most promising neighbours first, a few at a time
//! ([`Config::wave_width`] every [`Config::wave_gap`]), and stops widening once enough
//! results came. Costs and bounds: each neighbour's queries go through a token bucket
//! ([`Config::query_rate`], [`Config::query_burst`]) and a neighbour that keeps sending over it
//! is dropped; a table is taken from a neighbour at most once per [`Config::table_gap`]; at
//! most [`Config::max_routes`] queries are remembered (the oldest go first); everything done
//! per message is a hash lookup or one pass over at most [`Config::max_neighbours`]
//! neighbours' tables.

pub mod table;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use table::{Bloom, Table};
pub use wire::{Holder, Message, QueryId};

/// A SplitMix64 sequence: query ids here, and the simulator's and the benchmark's choices.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A neighbour, as the driver names its connections.
pub type PeerKey = u64;

/// Tunables.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most neighbours.
    pub max_neighbours: usize,
    /// Queries a neighbour may send per second, sustained.
    pub query_rate: f64,
    /// Queries a neighbour may send at once.
    pub query_burst: f64,
    /// Queries over the rate after which a neighbour is dropped.
    pub strikes: usize,
    /// Least time between two tables sent to, or taken from, one neighbour.
    pub table_gap: Duration,
    /// How long a query's id (and its way back) is kept.
    pub route_life: Duration,
    /// Most queries remembered.
    pub max_routes: usize,
    /// Neighbours an own query is sent to at a time.
    pub wave_width: usize,
    /// Time between two waves of an own query.
    pub wave_gap: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_neighbours: 8,
            query_rate: 20.0,
            query_burst: 40.0,
            strikes: 100,
            table_gap: Duration::from_secs(1),
            route_life: Duration::from_secs(30),
            max_routes: 4096,
            wave_width: 2,
            wave_gap: Duration::from_millis(60),
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this message to this neighbour.
    Send(PeerKey, Message),
    /// Look `words` up in the local index and send at most `want` records back to `to` as
    /// [`Message::Hits`] for `id`.
    Answer {
        /// The query.
        id: QueryId,
        /// Its words.
        words: String,
        /// Most records.
        want: usize,
        /// Where to send them.
        to: PeerKey,
    },
    /// Results of one of this node's own queries, from neighbour `from` (unchecked JSON).
    Results {
        /// The query.
        id: QueryId,
        /// The neighbour they came through.
        from: PeerKey,
        /// The records.
        records: Vec<Vec<u8>>,
        /// Where they can be fetched, when the answering node holds them.
        holder: Option<Holder>,
    },
    /// Close this neighbour's connection, for this reason.
    Disconnect(PeerKey, String),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queries taken from neighbours (first copies).
    pub queries: u64,
    /// Second copies dropped.
    pub duplicates: u64,
    /// Queries dropped because their sender was over its rate.
    pub rate_limited: u64,
    /// Query messages sent (own and forwarded).
    pub queries_sent: u64,
    /// Own queries not sent because this node was over [`OWN_QUERY_RATE`].
    pub own_limited: u64,
    /// Results messages passed back towards a query's origin.
    pub hits_relayed: u64,
    /// Results for no query of ours, or from a neighbour the query was not sent to.
    pub unsolicited: u64,
    /// Tables taken.
    pub tables_taken: u64,
    /// Tables sent.
    pub tables_sent: u64,
}

struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    /// Refills at `rate` per second up to `burst`, then takes one if there is one.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = self.at.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = Some(now);
        let there = self.tokens >= 1.0;
        if there {
            self.tokens -= 1.0;
        }
        there
    }
}

/// Own queries per second a node sends, sustained (half what a neighbour takes from it).
pub const OWN_QUERY_RATE: f64 = 10.0;
/// Own queries a node sends at once.
pub const OWN_QUERY_BURST: f64 = 20.0;

struct Neighbour {
    table: Option<Table>,
    taken_at: Option<Instant>,
    sent: Option<Table>,
    sent_at: Option<Instant>,
    bucket: Bucket,
    strikes: usize,
}

struct Own {
    /// Neighbours not asked yet, most promising first.
    pending: VecDeque<PeerKey>,
    next_wave: Instant,
    words: String,
    ttl: u8,
    want: u16,
}

struct Route {
    from: Option<PeerKey>,
    sent_to: Vec<PeerKey>,
    at: Instant,
    /// Records still to pass back.
    left: usize,
    own: Option<Own>,
}

/// One node's search policy.
pub struct Node {
    config: Config,
    neighbours: HashMap<PeerKey, Neighbour>,
    own: Bloom,
    routes: HashMap<QueryId, Route>,
    order: VecDeque<(Instant, QueryId)>,
    tables_dirty: bool,
    actions: Vec<Action>,
    rng: SplitMix64,
    /// This node's own queries, so that a busy local user cannot get it cut off by its
    /// neighbours' rate limits.
    own_bucket: Bucket,
    stats: Stats,
}

impl Node {
    /// A node; `seed` makes its query ids (give each node a random one).
    pub fn new(config: Config, seed: u64) -> Node {
        Node {
            config,
            neighbours: HashMap::new(),
            own: Bloom::default(),
            routes: HashMap::new(),
            order: VecDeque::new(),
            tables_dirty: true,
            actions: Vec::new(),
            rng: SplitMix64(seed | 1),
            own_bucket: Bucket { tokens: OWN_QUERY_BURST, at: None },
            stats: Stats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many neighbours.
    pub fn neighbours(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether another neighbour fits.
    pub fn has_room(&self) -> bool {
        self.neighbours.len() < self.config.max_neighbours
    }

    /// What to do now.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn next_id(&mut self) -> QueryId {
        self.rng.next_u64().to_be_bytes()
    }

    /// A new neighbour; refused (a [`Action::Disconnect`]) when there is no room.
    pub fn connected(&mut self, peer: PeerKey, now: Instant) -> bool {
        if !self.has_room() {
            self.actions.push(Action::Disconnect(peer, format!("already {} search neighbours", self.neighbours.len())));
            return false;
        }
        let bucket = Bucket { tokens: self.config.query_burst, at: Some(now) };
        self.neighbours
            .insert(peer, Neighbour { table: None, taken_at: None, sent: None, sent_at: None, bucket, strikes: 0 });
        self.tables_dirty = true;
        true
    }

    /// A neighbour went away.
    pub fn disconnected(&mut self, peer: PeerKey) {
        if self.neighbours.remove(&peer).is_some() {
            self.tables_dirty = true;
        }
    }

    /// What this node itself can answer for (its level 0).
    pub fn set_own(&mut self, own: Bloom) {
        if own != self.own {
            self.own = own;
            self.tables_dirty = true;
        }
    }

    /// Neighbours (other than `except`) where `keys` can match within `ttl` hops, nearest first;
    /// those whose table has not come last.
    fn candidates(&self, keys: &[String], ttl: u8, except: Option<PeerKey>) -> Vec<PeerKey> {
        let mut found: Vec<(usize, PeerKey)> = self
            .neighbours
            .iter()
            .filter(|(k, _)| Some(**k) != except)
            .filter_map(|(k, n)| match &n.table {
                Some(table) => table.nearest(keys, usize::from(ttl)).map(|level| (level, *k)),
                None => Some((table::LEVELS, *k)),
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, k)| k).collect()
    }

    fn remember(&mut self, id: QueryId, route: Route, now: Instant) {
        while self.routes.len() >= self.config.max_routes.max(1) {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.routes.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back((now, id));
        self.routes.insert(id, route);
    }

    fn send_query(&mut self, to: PeerKey, id: QueryId, words: &str, ttl: u8, want: u16) {
        self.stats.queries_sent += 1;
        self.actions.push(Action::Send(to, Message::Query { id, words: words.to_string(), ttl, want }));
    }

    /// Starts a query of this node's own for `words`, wanting `want` results, travelling at
    /// most `hop_limit` hops (1 to [`wire::MAX_TTL`]). Results come as [`Action::Results`].
    /// Past [`OWN_QUERY_RATE`] (burst [`OWN_QUERY_BURST`]) nothing is sent and no result comes.
    pub fn query(&mut self, words: &str, want: u16, hop_limit: u8, now: Instant) -> QueryId {
        let id = self.next_id();
        if !self.own_bucket.take(OWN_QUERY_RATE, OWN_QUERY_BURST, now) {
            self.stats.own_limited += 1;
            return id;
        }
        let hop_limit = hop_limit.clamp(1, wire::MAX_TTL);
        let want = want.clamp(1, wire::MAX_WANT);
        let pending = self.candidates(&table::query_keys(words), hop_limit, None).into();
        let own = Own { pending, next_wave: now, words: words.to_string(), ttl: hop_limit - 1, want };
        let route = Route { from: None, sent_to: Vec::new(), at: now, left: usize::from(want), own: Some(own) };
        self.remember(id, route, now);
        self.waves(now);
        id
    }

    /// Sends the next wave of every own query that is due and still short of results.
    fn waves(&mut self, now: Instant) {
        let mut sends = Vec::new();
        for (id, route) in &mut self.routes {
            let Some(own) = &mut route.own else { continue };
            if route.left == 0 || now < own.next_wave || own.pending.is_empty() {
                continue;
            }
            own.next_wave = now + self.config.wave_gap;
            for _ in 0..self.config.wave_width.max(1) {
                let Some(to) = own.pending.pop_front() else { break };
                if self.neighbours.contains_key(&to) {
                    route.sent_to.push(to);
                    sends.push((to, *id, own.words.clone(), own.ttl, own.want));
                }
            }
        }
        for (to, id, words, ttl, want) in sends {
            self.send_query(to, id, &words, ttl, want);
        }
    }

    /// A message from a neighbour.
    pub fn received(&mut self, from: PeerKey, message: Message, now: Instant) {
        let Some(n) = self.neighbours.get_mut(&from) else { return };
        match message {
            Message::Query { id, words, ttl, want } => {
                if !n.bucket.take(self.config.query_rate, self.config.query_burst, now) {
                    self.stats.rate_limited += 1;
                    n.strikes += 1;
                    if n.strikes > self.config.strikes {
                        self.actions.push(Action::Disconnect(
                            from,
                            format!("more than {} queries over its rate", self.config.strikes),
                        ));
                    }
                    return;
                }
                if self.routes.contains_key(&id) {
                    self.stats.duplicates += 1;
                    return;
                }
                self.stats.queries += 1;
                let forward_to =
                    if ttl == 0 { Vec::new() } else { self.candidates(&table::query_keys(&words), ttl, Some(from)) };
                let route = Route {
                    from: Some(from),
                    sent_to: forward_to.clone(),
                    at: now,
                    left: usize::from(want),
                    own: None,
                };
                self.remember(id, route, now);
                self.actions.push(Action::Answer { id, words: words.clone(), want: usize::from(want), to: from });
                for to in forward_to {
                    self.send_query(to, id, &words, ttl - 1, want);
                }
            }
            Message::Hits { id, mut records, holder } => {
                let Some(route) = self.routes.get_mut(&id).filter(|r| r.sent_to.contains(&from)) else {
                    self.stats.unsolicited += 1;
                    return;
                };
                records.truncate(route.left);
                if records.is_empty() {
                    return;
                }
                route.left -= records.len();
                match route.from {
                    Some(back) => {
                        if self.neighbours.contains_key(&back) {
                            self.stats.hits_relayed += 1;
                            self.actions.push(Action::Send(back, Message::Hits { id, records, holder }));
                        }
                    }
                    None => self.actions.push(Action::Results { id, from, records, holder }),
                }
            }
            Message::Table(mut table) => {
                if n.taken_at.is_some_and(|at| now.saturating_duration_since(at) < self.config.table_gap) {
                    self.stats.rate_limited += 1;
                    return;
                }
                table.levels.truncate(table::LEVELS);
                n.taken_at = Some(now);
                if n.table.as_ref() != Some(&table) {
                    n.table = Some(table);
                    self.tables_dirty = true;
                }
                self.stats.tables_taken += 1;
            }
        }
    }

    /// The table for neighbour `to`: this node's words, then what its other neighbours told it,
    /// one level further each.
    fn table_for(&self, to: PeerKey) -> Table {
        let mut levels = vec![self.own.clone()];
        for level in 1..table::LEVELS {
            let mut union = Bloom::default();
            for (k, n) in &self.neighbours {
                if *k != to
                    && let Some(below) = n.table.as_ref().and_then(|t| t.levels.get(level - 1))
                {
                    union.union(below);
                }
            }
            levels.push(union);
        }
        // Empty levels at the end say nothing: left out.
        while levels.len() > 1 && levels.last().is_some_and(Bloom::is_empty) {
            levels.pop();
        }
        Table { levels }
    }

    /// Time passes: expired queries are forgotten, own queries widen, changed tables go out
    /// (each neighbour at most once per [`Config::table_gap`]). Call it every few tens of
    /// milliseconds.
    pub fn tick(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.order.front() {
            if now.saturating_duration_since(at) < self.config.route_life {
                break;
            }
            self.order.pop_front();
            if self.routes.get(&id).is_some_and(|r| r.at == at) {
                self.routes.remove(&id);
            }
        }
        self.waves(now);
        if !self.tables_dirty {
            return;
        }
        let mut waiting = false;
        let keys: Vec<PeerKey> = self.neighbours.keys().copied().collect();
        for k in keys {
            let table = self.table_for(k);
            let Some(n) = self.neighbours.get_mut(&k) else { continue };
            if n.sent.as_ref() == Some(&table) {
                continue;
            }
            if n.sent_at.is_some_and(|at| now.saturating_duration_since(at) < self.config.table_gap) {
                waiting = true;
                continue;
            }
            n.sent = Some(table.clone());
            n.sent_at = Some(now);
            self.stats.tables_sent += 1;
            self.actions.push(Action::Send(k, Message::Table(table)));
        }
        self.tables_dirty = waiting;
    }

    /// Whether something is due soon: tables to send, or own queries still widening. The driver
    /// may call [`Node::tick`] less often when not.
    pub fn busy(&self) -> bool {
        self.tables_dirty
            || self.routes.values().any(|r| r.own.as_ref().is_some_and(|o| !o.pending.is_empty()) && r.left > 0)
    }

    /// Whether an own query still waits for results (it asked a neighbour, is short of results
    /// and its id is remembered).
    pub fn is_open(&self, id: &QueryId) -> bool {
        self.routes.get(id).is_some_and(|r| r.own.is_some() && r.left > 0)
    }
}

#[cfg(test)]
mod tests;
