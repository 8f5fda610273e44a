//! The routing table of BEP 5 ("Routing Table"): k-buckets of at most [`K`] nodes over the
//! XOR distance from our own id.
//!
//! Buckets are kept as a list indexed by the length of the prefix a node shares with our id:
//! bucket `i` holds nodes whose distance has exactly `i` leading zero bits, and the last bucket
//! holds everything at least that close. That last bucket is the one whose range contains our
//! own id, so it is the only one BEP 5 allows to split; splitting it moves the closer half into
//! a new last bucket. This is the same tree as BEP 5's `min <= N < max` ranges, stored flat.
//!
//! Node states follow BEP 5: *good* if it answered one of our queries in the last 15 minutes
//! (or answered once and queried us in the last 15 minutes), *bad* after [`MAX_FAILURES`]
//! queries in a row went unanswered, *questionable* otherwise. A full bucket takes a new node
//! only in place of a bad one (or of one that never answered us, if the newcomer did); answered
//! newcomers that find no room wait in a small replacement list and step in when a member goes
//! bad. Questionable nodes are handed out for pinging by [`RoutingTable::take_pings`], buckets
//! unchanged for 15 minutes for refreshing by [`RoutingTable::take_refresh_targets`].
//!
//! One table holds one address family; a dual-stack node (BEP 32) keeps two.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_bencode::Value;

use crate::id::{COMPACT_NODE_V4, COMPACT_NODE_V6, Distance, NodeId, NodeInfo, read_compact_node, write_compact_node};
use crate::rng::{RandomNodeId, Rng};

/// Bucket size (BEP 5's K).
pub const K: usize = 8;
/// How long an answer keeps a node good, and how long a bucket may go unchanged before it
/// needs a refresh.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Unanswered queries in a row after which a node is bad ("try once more before discarding").
pub const MAX_FAILURES: u8 = 2;
/// A questionable node is pinged at most this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Number of bits in an id, hence the most buckets there can be.
const ID_BITS: usize = 160;

/// BEP 5 node state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Answered us recently.
    Good,
    /// Not heard from lately, or never answered.
    Questionable,
    /// Failed to answer [`MAX_FAILURES`] queries in a row.
    Bad,
}

/// What [`RoutingTable::heard_from`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// The node was added. If it was added from a query, it counts as pinged now: the caller
    /// should ping it to learn whether it answers.
    Added,
    /// The node was in the table already; its times were updated.
    Updated,
    /// The node is not in the table (no room, or not believed).
    Ignored,
}

/// How we heard from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact {
    /// It answered one of our queries.
    Response,
    /// It sent us a query (which proves nothing about whether it answers).
    Query,
}

/// One node in the table.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its id and address.
    pub info: NodeInfo,
    /// When it last answered one of our queries.
    pub last_response: Option<Instant>,
    /// When it last sent us a query.
    pub last_query: Option<Instant>,
    /// Unanswered queries in a row.
    pub failures: u8,
    /// When we last handed it out for a ping.
    last_ping: Option<Instant>,
}

impl Entry {
    fn new(info: NodeInfo, contact: Contact, now: Instant) -> Self {
        let last_ping = (contact == Contact::Query).then_some(now);
        let mut e = Entry { info, last_response: None, last_query: None, failures: 0, last_ping };
        e.touch(contact, now);
        e
    }

    fn touch(&mut self, contact: Contact, now: Instant) {
        match contact {
            Contact::Response => {
                self.last_response = Some(now);
                self.failures = 0;
            }
            Contact::Query => self.last_query = Some(now),
        }
    }

    /// The BEP 5 state at `now`.
    pub fn state(&self, now: Instant) -> NodeState {
        let recent = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if self.failures >= MAX_FAILURES {
            NodeState::Bad
        } else if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_response.max(self.last_query)
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    /// At most [`K`] entries.
    entries: Vec<Entry>,
    /// Nodes that answered us but found the bucket full, newest last; at most [`K`].
    replacements: Vec<NodeInfo>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket { entries: Vec::new(), replacements: Vec::new(), last_changed: now }
    }
}

/// The k-bucket routing table.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: NodeId,
    /// Never empty; at most 160 buckets.
    buckets: Vec<Bucket>,
    /// Address of every entry to its id: one entry per address.
    by_addr: HashMap<SocketAddr, NodeId>,
}

impl RoutingTable {
    /// An empty table (one bucket covering the whole id space) around our own id.
    pub fn new(own: NodeId, now: Instant) -> Self {
        RoutingTable { own, buckets: vec![Bucket::new(now)], by_addr: HashMap::new() }
    }

    /// Our own id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }

    /// Number of nodes in the table.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// True if the table holds no node.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// All entries, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        (self.own.distance(id).leading_zeros() as usize).min(self.buckets.len() - 1)
    }

    /// Records that we heard from `node`, adding it if there is room.
    pub fn heard_from(&mut self, node: NodeInfo, contact: Contact, now: Instant) -> Heard {
        if node.id == self.own {
            return Heard::Ignored;
        }
        if let Some(&known) = self.by_addr.get(&node.addr)
            && known != node.id
        {
            // Another id at a known address: believe it only if it answered from there.
            if contact == Contact::Query {
                return Heard::Ignored;
            }
            self.remove(&NodeInfo { id: known, addr: node.addr });
        }
        let mut b = self.bucket_index(&node.id);
        if let Some(e) = self.buckets[b].entries.iter_mut().find(|e| e.info.id == node.id) {
            if e.info.addr != node.addr {
                // An id moving to a new address could be a hijack; allow it only for a proven,
                // answering node replacing one that is no longer good.
                if contact == Contact::Query || e.state(now) == NodeState::Good {
                    return Heard::Ignored;
                }
                self.by_addr.remove(&e.info.addr);
                self.by_addr.insert(node.addr, node.id);
                e.info.addr = node.addr;
            }
            e.touch(contact, now);
            if contact == Contact::Response {
                self.buckets[b].last_changed = now;
            }
            return Heard::Updated;
        }
        while self.buckets[b].entries.len() >= K && b == self.buckets.len() - 1 && self.buckets.len() < ID_BITS {
            self.split(now);
            b = self.bucket_index(&node.id);
        }
        let bucket = &mut self.buckets[b];
        let slot = if bucket.entries.len() < K {
            None
        } else if let Some(i) = bucket.entries.iter().position(|e| e.state(now) == NodeState::Bad) {
            Some(i)
        } else if let Some(i) =
            bucket.entries.iter().position(|e| e.last_response.is_none()).filter(|_| contact == Contact::Response)
        {
            Some(i)
        } else {
            if contact == Contact::Response {
                bucket.replacements.retain(|r| r.id != node.id && r.addr != node.addr);
                if bucket.replacements.len() >= K {
                    bucket.replacements.remove(0);
                }
                bucket.replacements.push(node);
            }
            return Heard::Ignored;
        };
        let entry = Entry::new(node, contact, now);
        match slot {
            None => bucket.entries.push(entry),
            Some(i) => {
                let old = std::mem::replace(&mut bucket.entries[i], entry);
                self.by_addr.remove(&old.info.addr);
            }
        }
        self.buckets[b].last_changed = now;
        self.by_addr.insert(node.addr, node.id);
        Heard::Added
    }

    /// Records that a query to `addr` went unanswered. A node that becomes bad is replaced by
    /// the newest waiting replacement, if any.
    pub fn failed(&mut self, addr: SocketAddr, now: Instant) {
        let Some(&id) = self.by_addr.get(&addr) else { return };
        let b = self.bucket_index(&id);
        let bucket = &mut self.buckets[b];
        let Some(i) = bucket.entries.iter().position(|e| e.info.id == id) else { return };
        let e = &mut bucket.entries[i];
        e.failures = e.failures.saturating_add(1);
        if e.state(now) != NodeState::Bad {
            return;
        }
        while let Some(r) = bucket.replacements.pop() {
            if !self.by_addr.contains_key(&r.addr) {
                let old = std::mem::replace(&mut bucket.entries[i], Entry::new(r, Contact::Response, now));
                bucket.last_changed = now;
                self.by_addr.remove(&old.info.addr);
                self.by_addr.insert(r.addr, r.id);
                return;
            }
        }
    }

    fn remove(&mut self, node: &NodeInfo) {
        let b = self.bucket_index(&node.id);
        self.buckets[b].entries.retain(|e| e.info.id != node.id);
        self.by_addr.remove(&node.addr);
    }

    fn split(&mut self, now: Instant) {
        let last = self.buckets.len() - 1;
        let own = self.own;
        let closer = |id: &NodeId| own.distance(id).leading_zeros() as usize > last;
        let old = &mut self.buckets[last];
        let mut new = Bucket::new(now);
        new.last_changed = old.last_changed;
        (new.entries, old.entries) = old.entries.drain(..).partition(|e| closer(&e.info.id));
        (new.replacements, old.replacements) = old.replacements.drain(..).partition(|r| closer(&r.id));
        self.buckets.push(new);
    }

    /// Up to `n` nodes closest to `target` that have answered us and are not bad: what we give
    /// out in `find_node` and `get_peers` replies.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<NodeInfo> {
        self.closest_where(target, n, |e| e.last_response.is_some() && e.failures < MAX_FAILURES)
    }

    /// Up to `n` nodes closest to `target` that are not bad, answered or not: starting points
    /// for our own lookups, which find out soon enough whether they answer.
    pub fn lookup_seeds(&self, target: &NodeId, n: usize) -> Vec<NodeInfo> {
        self.closest_where(target, n, |e| e.failures < MAX_FAILURES)
    }

    fn closest_where(&self, target: &NodeId, n: usize, keep: impl Fn(&Entry) -> bool) -> Vec<NodeInfo> {
        let mut all: Vec<(Distance, NodeInfo)> =
            self.entries().filter(|e| keep(e)).map(|e| (e.info.id.distance(target), e.info)).collect();
        all.sort_unstable_by_key(|(d, _)| *d);
        all.into_iter().take(n).map(|(_, i)| i).collect()
    }

    /// Up to `max` questionable nodes to ping now, least recently seen first; each is handed out
    /// at most once per [`PING_INTERVAL`].
    pub fn take_pings(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let mut due: Vec<&mut Entry> = self
            .buckets
            .iter_mut()
            .flat_map(|b| b.entries.iter_mut())
            .filter(|e| e.state(now) == NodeState::Questionable)
            .filter(|e| e.last_ping.is_none_or(|t| now.saturating_duration_since(t) >= PING_INTERVAL))
            .collect();
        due.sort_by_key(|e| e.last_seen());
        due.into_iter()
            .take(max)
            .map(|e| {
                e.last_ping = Some(now);
                e.info
            })
            .collect()
    }

    /// A random target id for each bucket unchanged for [`GOOD_FOR`] (BEP 5 bucket refresh);
    /// those buckets count as changed now, so each is handed out once per period.
    pub fn take_refresh_targets(&mut self, now: Instant, rng: &mut Rng) -> Vec<NodeId> {
        let stale: Vec<usize> = (0..self.buckets.len())
            .filter(|&i| now.saturating_duration_since(self.buckets[i].last_changed) >= GOOD_FOR)
            .collect();
        stale
            .into_iter()
            .map(|i| {
                self.buckets[i].last_changed = now;
                self.random_id_in_bucket(i, rng)
            })
            .collect()
    }

    /// A random id that falls in bucket `i`.
    pub fn random_id_in_bucket(&self, i: usize, rng: &mut Rng) -> NodeId {
        let mut id = rng.node_id();
        for bit in 0..=i.min(ID_BITS - 1) {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let own_bit = self.own.0[byte] & mask;
            // The first i bits match ours; bit i differs, except in the last bucket.
            let want = if bit < i {
                own_bit
            } else if i < self.buckets.len() - 1 {
                own_bit ^ mask
            } else {
                break;
            };
            id.0[byte] = (id.0[byte] & !mask) | want;
        }
        id
    }

    /// The table in a form to keep across restarts: a bencoded dictionary with our `id` and
    /// every node that is not bad as compact `nodes` (IPv4) and `nodes6` (IPv6).
    pub fn to_bytes(&self) -> Vec<u8> {
        save(&self.own, self.entries().filter(|e| e.failures < MAX_FAILURES).map(|e| &e.info))
    }

    /// Reads what [`RoutingTable::to_bytes`] wrote: our id and the saved nodes. The nodes are
    /// not trusted as table entries; the caller contacts them to rebuild the table.
    pub fn from_bytes(bytes: &[u8]) -> Result<(NodeId, Vec<NodeInfo>), RoutingError> {
        let v = shoal_bencode::decode(bytes)?;
        let id = v.get(b"id").and_then(Value::as_bytes).ok_or(RoutingError::Missing("id"))?;
        let id = NodeId(id.try_into().map_err(|_| RoutingError::BadId { len: id.len() })?);
        let mut nodes = Vec::new();
        for (key, entry) in [("nodes", COMPACT_NODE_V4), ("nodes6", COMPACT_NODE_V6)] {
            let b = v.get(key.as_bytes()).and_then(Value::as_bytes).unwrap_or_default();
            if b.len() % entry != 0 {
                return Err(RoutingError::BadNodes { key, len: b.len() });
            }
            nodes.extend(b.chunks_exact(entry).filter_map(read_compact_node));
        }
        Ok((id, nodes))
    }
}

/// The saved form of a table: `own` and `nodes`, as read by [`RoutingTable::from_bytes`].
pub(crate) fn save<'a>(own: &NodeId, nodes: impl Iterator<Item = &'a NodeInfo>) -> Vec<u8> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for n in nodes {
        write_compact_node(if n.addr.is_ipv4() { &mut v4 } else { &mut v6 }, n);
    }
    let mut d = shoal_bencode::Dict::new();
    d.insert(b"id", Value::from(&own.0));
    d.insert(b"nodes", Value::Bytes(&v4));
    d.insert(b"nodes6", Value::Bytes(&v6));
    shoal_bencode::encode(&Value::Dict(d))
}

/// Why saved routing-table bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// Not bencode.
    #[error("saved routing table is not bencode: {0}")]
    Bencode(#[from] shoal_bencode::DecodeError),
    /// A required key is absent or of the wrong type.
    #[error("saved routing table has no \"{0}\" byte string")]
    Missing(&'static str),
    /// The saved id is not 20 bytes.
    #[error("saved node id is {len} bytes, expected 20")]
    BadId {
        /// Its length.
        len: usize,
    },
    /// A node list whose length is not a multiple of the entry size.
    #[error("saved \"{key}\" is {len} bytes, not a whole number of nodes")]
    BadNodes {
        /// `nodes` or `nodes6`.
        key: &'static str,
        /// Its length.
        len: usize,
    },
}

#[cfg(test)]
mod tests;
