//! The iterative lookup of BEP 5 (and Kademlia): ask the nodes closest to a target for nodes
//! closer still, until the closest ones known have all been asked.
//!
//! A [`Lookup`] only keeps the bookkeeping; the node sends the queries it hands out and feeds
//! back responses and failures (timeouts):
//! * candidates are kept sorted by XOR distance to the target (contacts whose id is not known
//!   yet, such as bootstrap addresses, sort last until they answer);
//! * at most [`ALPHA`] queries are in flight, always to the closest not-yet-asked candidates
//!   among the [`K`] closest that have not failed;
//! * it is done when those K closest have all answered or failed, or when [`MAX_QUERIES`] have
//!   been sent and none is still in flight;
//! * `get_peers` answers add peers (`values`) and tokens; afterwards
//!   [`Lookup::announce_targets`] gives the K closest nodes that answered with a token, to
//!   receive `announce_peer`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::id::{Distance, NodeId, NodeInfo};
use crate::routing::K;

/// Queries in flight at once per lookup.
pub const ALPHA: usize = 3;
/// Most queries one lookup sends.
pub const MAX_QUERIES: usize = 100;
/// Most candidates remembered (the farthest unasked ones are forgotten first).
const MAX_CANDIDATES: usize = 128;
/// Most distinct peers remembered per lookup.
const MAX_PEERS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Responded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    /// Distance of `id` to the target ([`Distance::MAX`] while the id is unknown).
    key: Distance,
    id: Option<NodeId>,
    addr: SocketAddr,
    state: State,
    token: Option<Vec<u8>>,
}

/// Figures of a finished (or running) lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent.
    pub queried: usize,
    /// Queries answered.
    pub responded: usize,
    /// Distinct peers found.
    pub peers: usize,
    /// `announce_peer` queries sent after the lookup.
    pub announced: usize,
    /// Time from start to the end of the lookup.
    pub duration: Duration,
}

/// One iterative lookup towards a target id.
#[derive(Clone, Debug)]
pub struct Lookup {
    own: NodeId,
    target: NodeId,
    /// Sorted by distance to `target`, unknown ids last; distinct addresses.
    candidates: Vec<Candidate>,
    in_flight: usize,
    queried: usize,
    responded: usize,
    peers: HashSet<SocketAddr>,
    started: Instant,
}

impl Lookup {
    /// A lookup for `target` run by the node `own` (which never queries itself).
    pub fn new(own: NodeId, target: NodeId, now: Instant) -> Self {
        Lookup {
            own,
            target,
            candidates: Vec::new(),
            in_flight: 0,
            queried: 0,
            responded: 0,
            peers: HashSet::new(),
            started: now,
        }
    }

    /// The target id.
    pub fn target(&self) -> NodeId {
        self.target
    }

    fn key(&self, id: Option<NodeId>) -> Distance {
        id.map_or(Distance::MAX, |id| id.distance(&self.target))
    }

    fn insert(&mut self, mut c: Candidate) {
        c.key = self.key(c.id);
        let at = self.candidates.partition_point(|x| x.key <= c.key);
        self.candidates.insert(at, c);
        if self.candidates.len() > MAX_CANDIDATES
            && let Some(i) = self.candidates.iter().rposition(|c| c.state == State::Fresh)
        {
            self.candidates.remove(i);
        }
    }

    /// Adds a contact to ask, by id if known. Our own id and known addresses are ignored.
    pub fn add_candidate(&mut self, id: Option<NodeId>, addr: SocketAddr) {
        if id == Some(self.own) || addr.port() == 0 || self.candidates.iter().any(|c| c.addr == addr) {
            return;
        }
        self.insert(Candidate { key: Distance::MAX, id, addr, state: State::Fresh, token: None });
    }

    /// Adds known nodes as contacts to ask.
    pub fn add_nodes(&mut self, nodes: impl IntoIterator<Item = NodeInfo>) {
        for n in nodes {
            self.add_candidate(Some(n.id), n.addr);
        }
    }

    /// The K closest candidates that have not failed.
    fn top(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| c.state != State::Failed).take(K)
    }

    /// Whether the lookup has finished.
    pub fn is_done(&self) -> bool {
        let pending = self.top().any(|c| matches!(c.state, State::Fresh | State::InFlight));
        !pending || (self.queried >= MAX_QUERIES && self.in_flight == 0)
    }

    /// The next address to query, if the lookup wants one now; it counts as in flight.
    pub fn next_query(&mut self) -> Option<SocketAddr> {
        if self.is_done() || self.in_flight >= ALPHA || self.queried >= MAX_QUERIES {
            return None;
        }
        let addr = self.top().find(|c| c.state == State::Fresh)?.addr;
        let c = self.candidates.iter_mut().find(|c| c.addr == addr)?;
        c.state = State::InFlight;
        self.in_flight += 1;
        self.queried += 1;
        Some(addr)
    }

    fn settle(&mut self, addr: SocketAddr, state: State) -> Option<usize> {
        let i = self.candidates.iter().position(|c| c.addr == addr && c.state == State::InFlight)?;
        self.candidates[i].state = state;
        self.in_flight -= 1;
        Some(i)
    }

    /// Feeds an answer from `addr` (which claims `id`): its closer `nodes`, any peers
    /// (`values`) and its token. Returns the peers not seen before in this lookup.
    pub fn on_response(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        nodes: &[NodeInfo],
        values: &[SocketAddr],
        token: Option<Vec<u8>>,
    ) -> Vec<SocketAddr> {
        let Some(i) = self.settle(addr, State::Responded) else { return Vec::new() };
        self.responded += 1;
        let mut c = self.candidates.remove(i);
        c.id = Some(id);
        c.token = token;
        self.insert(c);
        self.add_nodes(nodes.iter().copied());
        let mut new = Vec::new();
        for &p in values {
            if p.port() != 0 && self.peers.len() < MAX_PEERS && self.peers.insert(p) {
                new.push(p);
            }
        }
        new
    }

    /// Records that the query to `addr` failed (timed out or was answered with an error).
    pub fn on_failure(&mut self, addr: SocketAddr) {
        self.settle(addr, State::Failed);
    }

    /// The K closest nodes that answered with a token, for `announce_peer`.
    pub fn announce_targets(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| Some((c.addr, c.token.clone()?)))
            .take(K)
            .collect()
    }

    /// The K closest nodes that answered.
    pub fn closest_responded(&self) -> Vec<NodeInfo> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| Some(NodeInfo { id: c.id?, addr: c.addr }))
            .take(K)
            .collect()
    }

    /// Figures so far (`announced` is left at 0 for the node to fill in).
    pub fn stats(&self, now: Instant) -> LookupStats {
        LookupStats {
            queried: self.queried,
            responded: self.responded,
            peers: self.peers.len(),
            announced: 0,
            duration: now.saturating_duration_since(self.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::rng::{RandomNodeId, Rng};

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + n), 6881))
    }

    /// Every node of a static network knows up to K nodes per bucket of its own and answers
    /// with the K closest of those; one in ten is down. A lookup must end at the true K
    /// closest live nodes (or nearly), within the query cap, and then offer them for announcing.
    #[test]
    fn converges_on_the_true_closest() {
        let mut rng = Rng::new(9);
        let nodes: Vec<NodeInfo> = (0..500).map(|i| NodeInfo { id: rng.node_id(), addr: addr(i) }).collect();
        let down = |n: &NodeInfo| n.id.0[19].is_multiple_of(10);
        let tables: Vec<Vec<NodeInfo>> = nodes
            .iter()
            .map(|me| {
                let mut per_bucket = [0usize; 161];
                let mut table = Vec::new();
                for other in nodes.iter().filter(|o| o.id != me.id) {
                    let b = me.id.distance(&other.id).leading_zeros() as usize;
                    if per_bucket[b] < K {
                        per_bucket[b] += 1;
                        table.push(*other);
                    }
                }
                table
            })
            .collect();
        let sorted = |list: &[NodeInfo], t: &NodeId| {
            let mut all = list.to_vec();
            all.sort_by_key(|x| x.id.distance(t));
            all
        };
        let mut total_overlap = 0;
        for round in 0..20 {
            let target = rng.node_id();
            let mut l = Lookup::new(rng.node_id(), target, Instant::now());
            let start = nodes.iter().skip(round).find(|n| !down(n)).expect("a live node");
            l.add_candidate(None, start.addr);
            while !l.is_done() {
                let mut asked = Vec::new();
                while let Some(a) = l.next_query() {
                    asked.push(a);
                }
                assert!(!asked.is_empty(), "not done but nothing to ask");
                for a in asked {
                    let i = nodes.iter().position(|n| n.addr == a).expect("known address");
                    if down(&nodes[i]) {
                        l.on_failure(a);
                    } else {
                        let reply: Vec<NodeInfo> = sorted(&tables[i], &target).into_iter().take(K).collect();
                        l.on_response(a, nodes[i].id, &reply, &[], Some(vec![i as u8]));
                    }
                }
            }
            let live: Vec<NodeInfo> = nodes.iter().filter(|n| !down(n)).copied().collect();
            let truth: Vec<NodeInfo> = sorted(&live, &target).into_iter().take(K).collect();
            let found = l.closest_responded();
            assert_eq!(found.first(), truth.first(), "round {round}: the closest node is found");
            let overlap = found.iter().filter(|n| truth.contains(n)).count();
            assert!(overlap >= K - 2, "round {round}: only {overlap} of the {K} closest found");
            total_overlap += overlap;
            assert_eq!(l.announce_targets().len(), found.len());
            let stats = l.stats(Instant::now());
            assert!(stats.queried <= MAX_QUERIES && stats.queried >= stats.responded, "{stats:?}");
        }
        // K per bucket means a node can be missing from every table that should list it, so
        // the K closest are not always found exactly, but nearly.
        assert!(total_overlap >= 20 * K * 95 / 100, "{total_overlap}");
    }

    #[test]
    fn empty_lookup_is_done_and_peers_are_deduplicated() {
        let mut l = Lookup::new(NodeId([0; 20]), NodeId([1; 20]), Instant::now());
        assert!(l.is_done());
        assert_eq!(l.next_query(), None);
        l.add_candidate(Some(NodeId([0; 20])), addr(1));
        assert!(l.is_done(), "own id is never a candidate");
        l.add_candidate(Some(NodeId([2; 20])), addr(2));
        assert_eq!(l.next_query(), Some(addr(2)));
        assert_eq!(l.next_query(), None, "nothing else to ask");
        let peers = [addr(50), addr(50), addr(51)];
        assert_eq!(l.on_response(addr(2), NodeId([2; 20]), &[], &peers, None), vec![addr(50), addr(51)]);
        assert_eq!(l.on_response(addr(2), NodeId([2; 20]), &[], &peers, None), vec![], "answered once only");
        assert!(l.is_done());
        assert!(l.announce_targets().is_empty(), "no token given");
    }
}
