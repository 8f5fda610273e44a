//! Which addresses a torrent dials, and when: the candidate peers learned from the user
//! (`--peer`, a magnet's `x.pe`), trackers, the DHT, local discovery and peer exchange
//! (BEP 11). Sans-IO: time is a parameter.
//!
//! Strangers add to this set (a peer-exchange message names up to 50 addresses), so it is
//! bounded and every operation costs O(log n):
//! - at most [`CandidateConfig::max_candidates`] addresses (the user's may go past it). When
//!   full, a new address replaces the worst one held — most failed dials first, then the least
//!   trusted source (peer exchange below trackers, DHT and local discovery), then the oldest —
//!   but only when that one is worse than the newcomer: it has failed, or it came from a less
//!   trusted source. Otherwise the newcomer is dropped. Addresses the user gave are never
//!   evicted;
//! - addresses no one can dial (port 0, unspecified, multicast, broadcast) are refused;
//! - a dial that fails waits 2, 4, 8, 16, then 32 s before the next; after
//!   [`CandidateConfig::max_failures`] failures in a row the address is forgotten (the user's
//!   own are retried for ever, every 32 s);
//! - [`Candidates::next`] hands out the best address ready now: the user's first, then those
//!   with fewest failures, in the order they were learned.
//!
//! The driver reports what happens to each dial ([`Candidates::connected`],
//! [`Candidates::failed`], [`Candidates::closed`]). An address handed out stays out of the
//! ready set until one of those is called.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Where a candidate address came from, least trusted first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A connected peer's peer-exchange message (BEP 11): any peer can name any address.
    Pex,
    /// The DHT, a tracker or local service discovery.
    Discovery,
    /// The user (`--peer`, a magnet link's `x.pe`): never evicted, never given up on.
    Manual,
}

/// Bounds of a [`Candidates`] set.
#[derive(Clone, Debug)]
pub struct CandidateConfig {
    /// Most addresses held.
    pub max_candidates: usize,
    /// Failed dials in a row after which an address (not the user's) is forgotten.
    pub max_failures: u32,
}

impl Default for CandidateConfig {
    fn default() -> Self {
        Self { max_candidates: 1000, max_failures: 8 }
    }
}

/// What happens to an address at the moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// May be dialled now (it is in `ready`).
    Ready,
    /// May be dialled from this time on (it is in `waiting`).
    Waiting(Instant),
    /// Handed out by [`Candidates::next`] or connected; in neither set.
    Out,
}

#[derive(Clone, Debug)]
struct Entry {
    state: State,
    failures: u32,
    source: Source,
    /// Order of arrival, for ties.
    seq: u64,
}

impl Entry {
    /// Key in `ready`: the user's first, then fewest failures, then oldest.
    fn ready_key(&self, addr: SocketAddr) -> (bool, u32, u64, SocketAddr) {
        (self.source != Source::Manual, self.failures, self.seq, addr)
    }

    /// Key in `evictable`: the first is evicted first.
    fn evict_key(&self, addr: SocketAddr) -> (Reverse<u32>, Source, u64, SocketAddr) {
        (Reverse(self.failures), self.source, self.seq, addr)
    }
}

/// The candidate peers of one torrent. See the module doc.
#[derive(Debug)]
pub struct Candidates {
    config: CandidateConfig,
    entries: HashMap<SocketAddr, Entry>,
    /// Entries in [`State::Ready`], best first.
    ready: BTreeSet<(bool, u32, u64, SocketAddr)>,
    /// Entries in [`State::Waiting`], soonest first.
    waiting: BTreeSet<(Instant, SocketAddr)>,
    /// Entries that may be evicted (not the user's, not out), worst first.
    evictable: BTreeSet<(Reverse<u32>, Source, u64, SocketAddr)>,
    next_seq: u64,
}

/// Whether anyone could accept a connection at `addr`.
pub fn is_dialable(addr: SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    };
    addr.port() != 0 && ip_ok
}

/// How long to wait before dialling again after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 5))
}

impl Candidates {
    /// An empty set.
    pub fn new(config: CandidateConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
            ready: BTreeSet::new(),
            waiting: BTreeSet::new(),
            evictable: BTreeSet::new(),
            next_seq: 0,
        }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no address is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `addr` is held.
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.entries.contains_key(addr)
    }

    /// Learns `addr` from `source`. Returns true if it was added (false: already known,
    /// undialable, or the set is full of better addresses). A known address learned again
    /// from the user becomes the user's.
    pub fn insert(&mut self, now: Instant, addr: SocketAddr, source: Source) -> bool {
        if !is_dialable(addr) {
            return false;
        }
        if let Some(entry) = self.entries.get(&addr) {
            if source == Source::Manual && entry.source != Source::Manual {
                let mut entry = entry.clone();
                self.unindex(addr, &entry);
                entry.source = Source::Manual;
                self.index(addr, &entry);
                self.entries.insert(addr, entry);
            }
            return false;
        }
        if self.entries.len() >= self.config.max_candidates && source != Source::Manual {
            let Some(&(Reverse(failures), worst_source, _, victim)) = self.evictable.first() else {
                return false;
            };
            if failures == 0 && worst_source >= source {
                return false;
            }
            self.remove(victim);
        }
        let entry = Entry { state: State::Waiting(now), failures: 0, source, seq: self.next_seq };
        self.next_seq += 1;
        self.index(addr, &entry);
        self.entries.insert(addr, entry);
        true
    }

    /// The best address that may be dialled at `now`, marked as out until the driver reports
    /// on it. `skip` leaves an address where it is (for example: its IP holds enough
    /// connections already); at most `max_skips` are looked at past the first.
    pub fn next(&mut self, now: Instant, mut skip: impl FnMut(SocketAddr) -> bool) -> Option<SocketAddr> {
        self.promote(now);
        let max_skips = 64;
        let addr = self.ready.iter().take(max_skips + 1).map(|k| k.3).find(|a| !skip(*a))?;
        let mut entry = self.entries.get(&addr)?.clone();
        self.unindex(addr, &entry);
        entry.state = State::Out;
        self.entries.insert(addr, entry);
        Some(addr)
    }

    /// True if some address may be dialled at `now`.
    pub fn any_ready(&mut self, now: Instant) -> bool {
        self.promote(now);
        !self.ready.is_empty()
    }

    /// A connection to (or from) `addr` is open; its failures are forgiven. An address not
    /// held is ignored (incoming peers need not be candidates).
    pub fn connected(&mut self, addr: SocketAddr) {
        self.update(addr, |e| {
            e.state = State::Out;
            e.failures = 0;
        });
    }

    /// A dial to `addr` failed: it waits (longer after each failure), or is forgotten after
    /// too many.
    pub fn failed(&mut self, now: Instant, addr: SocketAddr) {
        let Some(entry) = self.entries.get(&addr) else { return };
        let failures = entry.failures + 1;
        if failures >= self.config.max_failures && entry.source != Source::Manual {
            self.remove(addr);
            return;
        }
        self.update(addr, |e| {
            e.failures = failures;
            e.state = State::Waiting(now + backoff(failures));
        });
    }

    /// The connection to `addr` closed, or was refused after the handshake; it may be dialled
    /// again after `retry`.
    pub fn closed(&mut self, now: Instant, addr: SocketAddr, retry: Duration) {
        self.update(addr, |e| e.state = State::Waiting(now + retry));
    }

    /// Forgets `addr`.
    pub fn remove(&mut self, addr: SocketAddr) {
        if let Some(entry) = self.entries.remove(&addr) {
            self.unindex(addr, &entry);
        }
    }

    /// Moves the addresses whose wait is over into the ready set.
    fn promote(&mut self, now: Instant) {
        while let Some(&(at, addr)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.update(addr, |e| e.state = State::Ready);
        }
    }

    /// When the first waiting candidate may be dialled (`None`: none is waiting).
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.first().map(|&(at, _)| at)
    }

    /// Changes an entry, keeping the indexes in step.
    fn update(&mut self, addr: SocketAddr, change: impl FnOnce(&mut Entry)) {
        let Some(mut entry) = self.entries.get(&addr).cloned() else { return };
        self.unindex(addr, &entry);
        change(&mut entry);
        self.index(addr, &entry);
        self.entries.insert(addr, entry);
    }

    fn index(&mut self, addr: SocketAddr, entry: &Entry) {
        match entry.state {
            State::Ready => {
                self.ready.insert(entry.ready_key(addr));
            }
            State::Waiting(at) => {
                self.waiting.insert((at, addr));
            }
            State::Out => return,
        }
        if entry.source != Source::Manual {
            self.evictable.insert(entry.evict_key(addr));
        }
    }

    fn unindex(&mut self, addr: SocketAddr, entry: &Entry) {
        match entry.state {
            State::Ready => {
                self.ready.remove(&entry.ready_key(addr));
            }
            State::Waiting(at) => {
                self.waiting.remove(&(at, addr));
            }
            State::Out => {}
        }
        self.evictable.remove(&entry.evict_key(addr));
    }

    /// Checks that the indexes agree with the entries (tests).
    #[cfg(test)]
    fn check(&self) {
        let ready = self.entries.values().filter(|e| e.state == State::Ready).count();
        let waiting = self.entries.values().filter(|e| matches!(e.state, State::Waiting(_))).count();
        let evictable = self.entries.values().filter(|e| e.state != State::Out && e.source != Source::Manual).count();
        assert_eq!((self.ready.len(), self.waiting.len(), self.evictable.len()), (ready, waiting, evictable));
        assert!(
            self.entries.len() <= self.config.max_candidates
                || self.entries.values().any(|e| e.source == Source::Manual)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
    }

    fn small(max: usize) -> Candidates {
        Candidates::new(CandidateConfig { max_candidates: max, max_failures: 3 })
    }

    #[test]
    fn undialable_addresses_are_refused() {
        let mut c = small(10);
        let now = Instant::now();
        for bad in ["0.0.0.0:1", "10.0.0.1:0", "224.0.0.1:80", "255.255.255.255:80", "[::]:80", "[ff02::1]:80"] {
            assert!(!c.insert(now, bad.parse().expect("addr"), Source::Discovery), "{bad}");
        }
        assert!(c.is_empty());
    }

    #[test]
    fn the_users_addresses_come_first_then_fewest_failures() {
        let mut c = small(10);
        let t = Instant::now();
        c.insert(t, addr(1), Source::Pex);
        c.insert(t, addr(2), Source::Discovery);
        c.insert(t, addr(3), Source::Manual);
        assert_eq!(c.next(t, |_| false), Some(addr(3)));
        assert_eq!(c.next(t, |_| false), Some(addr(1)));
        c.failed(t, addr(1));
        assert_eq!(c.next(t, |_| false), Some(addr(2)));
        assert_eq!(c.next(t, |_| false), None, "addr(1) waits after its failure");
        assert_eq!(c.next(t + Duration::from_secs(2), |_| false), Some(addr(1)));
        c.check();
    }

    #[test]
    fn failures_back_off_and_are_forgotten_except_the_users() {
        let mut c = small(10);
        let mut t = Instant::now();
        c.insert(t, addr(1), Source::Discovery);
        c.insert(t, addr(2), Source::Manual);
        for _ in 0..5 {
            for _ in 0..2 {
                if let Some(a) = c.next(t, |_| false) {
                    c.failed(t, a);
                }
            }
            t += Duration::from_secs(40);
        }
        assert!(!c.contains(&addr(1)), "forgotten after 3 failures");
        assert!(c.contains(&addr(2)), "the user's address stays");
        c.check();
    }

    #[test]
    fn a_full_set_keeps_its_better_addresses() {
        let mut c = small(3);
        let t = Instant::now();
        for i in 1..=3 {
            assert!(c.insert(t, addr(i), Source::Discovery));
        }
        assert!(!c.insert(t, addr(4), Source::Pex), "an untried tracker address beats a PEX one");
        assert!(!c.insert(t, addr(5), Source::Discovery), "equal and untried: the older stays");
        let failed = c.next(t, |_| false).expect("one");
        c.failed(t, failed);
        assert!(c.insert(t, addr(6), Source::Pex), "a failed address makes room");
        assert!(!c.contains(&failed));
        assert!(c.insert(t, addr(7), Source::Manual), "the user's always go in");
        assert!(c.insert(t, addr(8), Source::Discovery), "a PEX address makes room for a tracker's");
        assert!(!c.contains(&addr(6)));
        c.check();
    }

    #[test]
    fn a_flood_stays_bounded_and_cheap() {
        let mut c = Candidates::new(CandidateConfig::default());
        let t = Instant::now();
        let started = std::time::Instant::now();
        for i in 0..200_000 {
            c.insert(t, addr(i), Source::Pex);
        }
        assert_eq!(c.len(), 1000);
        assert!(c.insert(t, addr(1 << 22), Source::Discovery), "a tracker's address still gets in");
        assert!(started.elapsed() < Duration::from_secs(20), "O(log n) per insert");
        c.check();
    }

    #[test]
    fn skipped_addresses_stay_ready() {
        let mut c = small(10);
        let t = Instant::now();
        c.insert(t, addr(1), Source::Discovery);
        c.insert(t, addr(2), Source::Discovery);
        assert_eq!(c.next(t, |a| a == addr(1)), Some(addr(2)));
        assert_eq!(c.next(t, |_| false), Some(addr(1)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u8),
        Next(u8),
        Connected(u32),
        Failed(u32),
        Closed(u32),
        Remove(u32),
        Advance(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..40, 0u8..3).prop_map(|(a, s)| Op::Insert(a, s)),
            any::<u8>().prop_map(Op::Next),
            (0u32..40).prop_map(Op::Connected),
            (0u32..40).prop_map(Op::Failed),
            (0u32..40).prop_map(Op::Closed),
            (0u32..40).prop_map(Op::Remove),
            any::<u8>().prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn indexes_stay_consistent(ops in proptest::collection::vec(op(), 0..300)) {
            let mut c = small(16);
            let mut t = Instant::now();
            let mut out = std::collections::HashSet::new();
            for op in ops {
                match op {
                    Op::Insert(a, s) => {
                        let source = [Source::Pex, Source::Discovery, Source::Manual][s as usize];
                        c.insert(t, addr(a), source);
                    }
                    Op::Next(k) => {
                        if let Some(a) = c.next(t, |a| (a.ip().to_string().len() as u8) % 7 == k % 7) {
                            prop_assert!(out.insert(a), "handed out twice: {a}");
                        }
                    }
                    Op::Connected(a) => c.connected(addr(a)),
                    Op::Failed(a) => { out.remove(&addr(a)); c.failed(t, addr(a)) }
                    Op::Closed(a) => { out.remove(&addr(a)); c.closed(t, addr(a), Duration::from_secs(5)) }
                    Op::Remove(a) => { out.remove(&addr(a)); c.remove(addr(a)) }
                    Op::Advance(s) => t += Duration::from_millis(u64::from(s) * 100),
                }
                c.check();
            }
        }
    }
}
