//! Whole DHT networks in virtual time: every node is a real [`Node`], datagrams travel through
//! a time-ordered queue with a random per-hop latency (and optional loss), and nodes are
//! ticked exactly when their [`Node::poll_timeout`] falls due. Runs are exact and repeatable.
//!
//! Scenario: N nodes join one after another, all bootstrapping from node 0; after a minute one
//! node announces an info-hash, then a set of other random nodes look it up. Every lookup must
//! find the announcer. `cargo test -p shoal-dht --test virtual_net -- --nocapture` prints the
//! lookup times (virtual ms) and query counts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use shoal_dht::{Announce, Config, Event, LookupId, LookupStats, Node, Output};
use shoal_proto::InfoHash;

/// A tiny xorshift for the network's own randomness (latency, loss, choices).
struct Rand(u64);

impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

enum Happening {
    Deliver { from: SocketAddr, to: SocketAddr, bytes: Vec<u8> },
    Timer { node: SocketAddr },
}

struct Net {
    t0: Instant,
    now: Duration,
    nodes: HashMap<SocketAddr, Node>,
    /// Earliest tick scheduled per node (later entries in the queue for it are stale).
    timers: HashMap<SocketAddr, Duration>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    /// Happenings by the sequence number in `queue`.
    pending: HashMap<usize, Happening>,
    seq: u64,
    rand: Rand,
    /// Probability of losing a datagram, in per mille.
    loss_per_mille: u64,
    events: Vec<(SocketAddr, Duration, Event)>,
    /// Finished lookups, also in `events`, indexed for the run loop's stop checks.
    finished: HashMap<(SocketAddr, LookupId), LookupStats>,
    datagrams: u64,
}

impl Net {
    fn new(seed: u64, loss_per_mille: u64) -> Self {
        Net {
            t0: Instant::now(),
            now: Duration::ZERO,
            nodes: HashMap::new(),
            timers: HashMap::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            rand: Rand(seed),
            loss_per_mille,
            events: Vec::new(),
            finished: HashMap::new(),
            datagrams: 0,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn push(&mut self, at: Duration, h: Happening) {
        self.seq += 1;
        let key = self.seq as usize;
        self.pending.insert(key, h);
        self.queue.push(Reverse((at, self.seq, key)));
    }

    fn add(&mut self, addr: SocketAddr, config: Config, seed: u64) {
        let node = Node::new(config, self.at(), seed);
        self.nodes.insert(addr, node);
        self.after(addr);
    }

    /// Collects what `addr` wants to do and schedules its next tick.
    fn after(&mut self, addr: SocketAddr) {
        let Some(node) = self.nodes.get_mut(&addr) else { return };
        let mut sends = Vec::new();
        while let Some(o) = node.poll_output() {
            match o {
                Output::Send { to, bytes } => sends.push((to, bytes)),
                Output::Event(e) => {
                    if let Event::LookupDone { lookup, stats, .. } = e {
                        self.finished.insert((addr, lookup), stats);
                    }
                    self.events.push((addr, self.now, e));
                }
            }
        }
        let next = node.poll_timeout().saturating_duration_since(self.t0);
        for (to, bytes) in sends {
            self.datagrams += 1;
            if self.rand.below(1000) < self.loss_per_mille {
                continue;
            }
            let latency = Duration::from_millis(10 + self.rand.below(50));
            self.push(self.now + latency, Happening::Deliver { from: addr, to, bytes });
        }
        if self.timers.get(&addr).is_none_or(|&t| next < t) {
            self.timers.insert(addr, next);
            self.push(next, Happening::Timer { node: addr });
        }
    }

    /// Runs until `end` or until `stop` holds, whichever comes first.
    fn run(&mut self, end: Duration, mut stop: impl FnMut(&Net) -> bool) {
        while let Some(&Reverse((at, _, key))) = self.queue.peek() {
            if stop(self) {
                return;
            }
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let now = self.at();
            match self.pending.remove(&key) {
                Some(Happening::Deliver { from, to, bytes }) => {
                    if let Some(node) = self.nodes.get_mut(&to) {
                        node.handle_packet(from, &bytes, now);
                        self.after(to);
                    }
                }
                // A timer replaced by an earlier one for the same node is stale.
                Some(Happening::Timer { node: addr }) if self.timers.get(&addr) == Some(&at) => {
                    self.timers.remove(&addr);
                    if let Some(node) = self.nodes.get_mut(&addr) {
                        node.tick(now);
                    }
                    self.after(addr);
                }
                _ => {}
            }
        }
        self.now = end;
    }

    fn done(&self, who: SocketAddr, lookup: LookupId) -> Option<LookupStats> {
        self.finished.get(&(who, lookup)).copied()
    }

    fn found(&self, who: SocketAddr, lookup: LookupId) -> Vec<SocketAddr> {
        self.events
            .iter()
            .filter(|(a, _, _)| *a == who)
            .flat_map(|(_, _, e)| match e {
                Event::Peers { lookup: l, peers, .. } if *l == lookup => peers.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
}

fn addr(i: usize) -> SocketAddr {
    if IPV6.with(std::cell::Cell::get) {
        SocketAddr::from((Ipv6Addr::from(0x2001_0db8_u128 << 96 | (i as u128 + 1)), 6881))
    } else {
        SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i as u32 + 1), 6881))
    }
}

thread_local! {
    /// This test's nodes are IPv6 nodes (BEP 32) on IPv6 addresses.
    static IPV6: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn percentile(sorted: &[u128], p: usize) -> u128 {
    sorted[(sorted.len() - 1) * p / 100]
}

/// Builds a network of `n` nodes, announces one info-hash from one node, looks it up from
/// `searchers` others, checks every lookup finds the announcer, and prints the figures.
fn scenario(n: usize, searchers: usize, loss_per_mille: u64, seed: u64) {
    let wall = Instant::now();
    let mut net = Net::new(seed, loss_per_mille);
    let boot = addr(0);
    for i in 0..n {
        // Nodes join 20 ms apart, all through node 0.
        net.run(Duration::from_millis(20 * i as u64), |_| false);
        let bootstrap = if i == 0 { Vec::new() } else { vec![boot] };
        let ipv6 = IPV6.with(std::cell::Cell::get);
        net.add(addr(i), Config { bootstrap, ipv6, ..Config::default() }, seed * 1000 + i as u64);
    }
    let joined = net.now;
    net.run(joined + Duration::from_secs(60), |_| false);
    let bootstrapped =
        net.events.iter().filter(|(_, _, e)| *e == Event::Bootstrapped).map(|(a, _, _)| *a).collect::<Vec<_>>();
    let table_sizes: Vec<usize> = net.nodes.values().map(|n| n.routing_table().len()).collect();
    let avg_table = table_sizes.iter().sum::<usize>() as f64 / n as f64;

    let info_hash = InfoHash([0xab; 20]);
    let announcer = addr(1 + net.rand.below(n as u64 - 1) as usize);
    let start = net.now;
    let lookup = net.nodes.get_mut(&announcer).expect("announcer").get_peers(
        info_hash,
        Some(Announce::Port(51413)),
        net.t0 + start,
    );
    net.after(announcer);
    net.run(start + Duration::from_secs(60), |net| net.done(announcer, lookup).is_some());
    let announce = net.done(announcer, lookup).expect("announce lookup finished");
    // Let the announce_peer queries land.
    let t = net.now;
    net.run(t + Duration::from_secs(1), |_| false);
    let expected = SocketAddr::new(announcer.ip(), 51413);

    let mut lookups = Vec::new();
    let start = net.now;
    while lookups.len() < searchers {
        let who = addr(net.rand.below(n as u64) as usize);
        if who == announcer || lookups.iter().any(|(w, _)| *w == who) {
            continue;
        }
        let id = net.nodes.get_mut(&who).expect("node").get_peers(info_hash, None, net.t0 + start);
        net.after(who);
        lookups.push((who, id));
    }
    net.run(start + Duration::from_secs(60), |net| lookups.iter().all(|&(w, l)| net.done(w, l).is_some()));

    let mut times = Vec::new();
    let mut queries = Vec::new();
    let mut misses = Vec::new();
    for &(who, id) in &lookups {
        let stats = net.done(who, id).expect("lookup finished");
        // Time to the first answer carrying the announcer, or the whole lookup if never.
        let first_hit = net.events.iter().find_map(|(a, at, e)| match e {
            Event::Peers { lookup, peers, .. } if *a == who && *lookup == id && peers.contains(&expected) => {
                Some(*at - start)
            }
            _ => None,
        });
        if !net.found(who, id).contains(&expected) {
            misses.push(who);
        }
        times.push((first_hit.unwrap_or(stats.duration).as_millis(), stats.duration.as_millis()));
        queries.push(stats.queried);
    }
    let mut found_ms: Vec<u128> = times.iter().map(|t| t.0).collect();
    let mut done_ms: Vec<u128> = times.iter().map(|t| t.1).collect();
    found_ms.sort_unstable();
    done_ms.sort_unstable();
    queries.sort_unstable();
    println!(
        "{n} nodes, {:.1}% loss: {} bootstrapped, routing tables avg {avg_table:.1} nodes (min {}, max {}); \
         announce lookup {} ms, {} queries, announced to {}",
        loss_per_mille as f64 / 10.0,
        bootstrapped.len(),
        table_sizes.iter().min().unwrap_or(&0),
        table_sizes.iter().max().unwrap_or(&0),
        announce.duration.as_millis(),
        announce.queried,
        announce.announced,
    );
    println!(
        "  {searchers} get_peers lookups: {} found the peer; first hit ms p50 {} p90 {} max {}; \
         lookup done ms p50 {} p90 {} max {}; queries p50 {} max {}",
        searchers - misses.len(),
        percentile(&found_ms, 50),
        percentile(&found_ms, 90),
        percentile(&found_ms, 100),
        percentile(&done_ms, 50),
        percentile(&done_ms, 90),
        percentile(&done_ms, 100),
        percentile(&queries.iter().map(|&q| q as u128).collect::<Vec<_>>(), 50),
        queries.last().unwrap_or(&0),
    );
    println!(
        "  {} datagrams over {:.1} virtual s, {:.2} wall s",
        net.datagrams,
        net.now.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    assert_eq!(bootstrapped.len(), n, "every node bootstraps (the first once others know it)");
    assert!(announce.announced >= 6, "announced to {}", announce.announced);
    assert!(misses.is_empty(), "lookups from {misses:?} missed the announcer");
}

#[test]
fn fifty_nodes_find_an_announced_peer() {
    scenario(50, 20, 0, 1);
}

#[test]
fn fifty_nodes_with_packet_loss() {
    scenario(50, 20, 30, 2);
}

/// BEP 32: IPv6 nodes on IPv6 addresses exchange `nodes6` and compact IPv6 peers.
#[test]
fn fifty_ipv6_nodes_find_an_announced_peer() {
    IPV6.with(|v| v.set(true));
    scenario(50, 20, 10, 4);
}

/// An IPv6 node answers nothing to IPv4 addresses and an IPv4 node nothing to IPv6 ones.
#[test]
fn a_node_speaks_only_its_own_family() {
    let t0 = Instant::now();
    let v4: SocketAddr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881));
    let v6: SocketAddr = SocketAddr::from((Ipv6Addr::LOCALHOST, 6881));
    let mut six = Node::new(Config { ipv6: true, ..Config::default() }, t0, 1);
    let mut four = Node::new(Config::default(), t0, 2);
    six.ping(v4, t0);
    four.ping(v6, t0);
    assert!(six.poll_output().is_none() && four.poll_output().is_none(), "no query across families");
    // A ping from the other family is not answered.
    let mut asker = Node::new(Config::default(), t0, 3);
    asker.ping(v6, t0);
    let mut asker6 = Node::new(Config { ipv6: true, ..Config::default() }, t0, 4);
    asker6.ping(v6, t0);
    let Some(Output::Send { bytes, .. }) = asker6.poll_output() else { panic!("the IPv6 node pings") };
    six.handle_packet(v4, &bytes, t0);
    assert!(six.poll_output().is_none(), "an IPv6 node answered an IPv4 address");
    six.handle_packet(v6, &bytes, t0);
    assert!(matches!(six.poll_output(), Some(Output::Send { .. })), "an IPv6 node answers an IPv6 address");
    assert!(asker.poll_output().is_none());
}

#[test]
fn five_hundred_nodes_find_an_announced_peer() {
    scenario(500, 50, 10, 3);
}
