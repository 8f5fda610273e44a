//! A swarm simulator in virtual time: one seed and any number of leechers, each running the
//! real [`Swarm`] logic, connected by links whose upload is capped per node.
//!
//! It is event-driven (a time-ordered queue of deliveries, finished transmissions and ticks),
//! so its cost follows the number of messages, not the simulated time: a thousand peers run in
//! seconds. Model:
//! - control messages arrive one latency after they are sent;
//! - `piece` messages wait for the sender's upload: each node sends one block at a time at its
//!   capped rate, taking its connections in turn (so its capacity is shared evenly among the
//!   peers it serves), and the block arrives one latency after its last byte left;
//! - downloads are not capped (so `F/d_min` does not bound the optimum);
//! - written blocks are checked against the true content, so a piece passes verification only
//!   if every byte was right; nodes listed in `liars` send wrong data, to test banning.
//!
//! Nothing touches a socket, a disk or the wall clock: runs are exact and repeatable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::{BLOCK_SIZE, Layout, Message};

use crate::{Action, Bitfield, Config, PeerKey, Swarm};

/// Parameters of a simulated swarm.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Content size in bytes.
    pub file_size: u64,
    /// Piece length in bytes.
    pub piece_length: u32,
    /// Number of leechers (the seed is extra).
    pub leechers: usize,
    /// The seed's upload capacity, bytes per second.
    pub seed_upload: f64,
    /// Each leecher's upload capacity, bytes per second.
    pub leecher_upload: f64,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Each node dials random others until it has this many connections (all others when the
    /// swarm is smaller); nodes accept up to one and a half times as many.
    pub max_connections: usize,
    /// Give up after this much virtual time.
    pub time_limit: Duration,
    /// Leechers (by number, 1-based) that send corrupted data.
    pub liars: Vec<usize>,
    /// Swarm logic settings for every node (its seed is varied per node).
    pub swarm: Config,
    /// Every node's upload cap is set to its link's capacity (see `Swarm::set_upload_use`).
    pub capped: bool,
    /// Leecher 1 plays the file while it downloads.
    pub stream: Option<StreamConfig>,
    /// Nodes speak Shoal's `shoal_wants` extension (a player asks an initial seed for the
    /// pieces it waits for). Default: true, as Shoal nodes do.
    pub wants: bool,
}

/// A player on leecher 1: it starts once the first `startup` of playback is verified, then
/// reads `bitrate` bytes per second from the start of the content, stalling whenever the piece
/// under it is missing; it tells its swarm where it reads ([`crate::stream`] deadlines).
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Bytes per second the player consumes.
    pub bitrate: f64,
    /// Playback buffered before the first frame.
    pub startup: Duration,
}

/// What the player on leecher 1 saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamReport {
    /// From the start to the first frame (`None`: playback never started).
    pub first_frame: Option<Duration>,
    /// Times playback stopped for missing data.
    pub stalls: u32,
    /// Time spent stalled.
    pub stalled: Duration,
}

/// The player's state while the simulation runs.
struct Player {
    bitrate: f64,
    startup_bytes: u64,
    /// Playback position, once started.
    position: Option<f64>,
    last: Instant,
    stalled_since: Option<Instant>,
    told_piece: Option<u32>,
    report: StreamReport,
}

/// The extension message id the simulator uses for `shoal_wants`.
const SIM_WANTS: u8 = 4;

/// How often the player advances, in virtual time.
const PLAY_STEP: Duration = Duration::from_millis(50);

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            file_size: 16 * 1024 * 1024,
            piece_length: 256 * 1024,
            leechers: 20,
            seed_upload: 4.0 * 1024.0 * 1024.0,
            leecher_upload: 2.0 * 1024.0 * 1024.0,
            latency: Duration::from_millis(10),
            max_connections: 50,
            time_limit: Duration::from_secs(3600),
            liars: Vec::new(),
            swarm: Config::default(),
            stream: None,
            capped: false,
            wants: true,
        }
    }
}

/// What a simulation run measured.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// Virtual time at which each honest leecher completed (`None`: it did not).
    pub completion: Vec<Option<Duration>>,
    /// Time until the last honest leecher completed, if all did.
    pub all_done: Option<Duration>,
    /// The theoretical minimum distribution time, max(F/u_s, N·F/(u_s + Σu_i)).
    pub t_min: Duration,
    /// Pieces that failed verification, summed over all nodes.
    pub hash_failures: u32,
    /// Peers banned, summed over all nodes.
    pub bans: usize,
    /// Mean fraction of its upload capacity each honest leecher used until the end.
    pub leecher_utilization: f64,
    /// Bytes the seed uploaded, as a multiple of the file size (1.0: every byte sent once).
    pub seed_copies: f64,
    /// When the seed had sent every block at least once (the bound F/u_s needs this at F/u_s).
    pub seed_first_copy: Option<Duration>,
    /// Per second of virtual time: the fraction of the seed's upload capacity used, and the
    /// mean fraction of the honest leechers' capacity used.
    pub timeline: Vec<(f64, f64)>,
    /// Events processed (a measure of the simulation's own cost).
    pub events: u64,
    /// The player's figures, when [`SimConfig::stream`] is set.
    pub stream: Option<StreamReport>,
    /// Bytes each honest leecher uploaded (leecher 1, the player when there is one, first).
    pub uploaded: Vec<f64>,
}

impl SimReport {
    /// Efficiency: t_min / T (1.0 is the theoretical optimum).
    pub fn eta(&self) -> Option<f64> {
        self.all_done.map(|t| self.t_min.as_secs_f64() / t.as_secs_f64())
    }
}

struct Link {
    to: usize,
    /// Blocks waiting for upload capacity.
    queue: VecDeque<Message>,
    open: bool,
}

struct Node {
    swarm: Swarm,
    /// Seconds to send one byte.
    byte_time: f64,
    links: Vec<Link>,
    /// Link index by peer node.
    link_of: HashMap<usize, usize>,
    /// Links with queued blocks, in the order they take turns.
    turns: VecDeque<usize>,
    /// A block is on its way out.
    sending: bool,
    /// Pieces with a corrupted block written.
    corrupt: Vec<bool>,
    done: Option<Duration>,
    liar: bool,
    sent: f64,
    /// `sent` at the last tick.
    sent_at_tick: f64,
    /// Upload per second of virtual time, bytes.
    sent_per_second: Vec<f64>,
}

// `Extensions`: the extension handshake (BEP 10) of `peer` reaches `node`.
enum Event {
    Deliver { from: usize, to: usize, msg: Message },
    SendDone { node: usize },
    Tick { node: usize },
    Extensions { node: usize, peer: usize },
    Play,
}

/// An event due at `at` nanoseconds after the start; `seq` keeps ties in insertion order.
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The event queue, earliest first.
struct Queue {
    start: Instant,
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, at: Instant, event: Event) {
        let at = at.duration_since(self.start).as_nanos() as u64;
        self.seq += 1;
        self.heap.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    fn pop(&mut self) -> Option<(Instant, Event)> {
        let Reverse(s) = self.heap.pop()?;
        Some((self.start + Duration::from_nanos(s.at), s.event))
    }
}

/// Runs a simulated swarm to completion (or the time limit) and reports the timings.
pub fn run(cfg: &SimConfig) -> SimReport {
    let layout = Layout::new(cfg.file_size, cfg.piece_length).expect("simulation layout is valid");
    let content: Bytes = (0..cfg.file_size).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    let garbage = Bytes::from(vec![0xEE; shoal_proto::BLOCK_SIZE as usize]);
    let start = Instant::now();
    let n = cfg.leechers + 1;
    let mut rng = crate::rng::Rng::new(cfg.swarm.seed ^ 0xabcdef);
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let pieces = layout.piece_count();
            let have = if i == 0 { Bitfield::full(pieces) } else { Bitfield::new(pieces) };
            let config = Config { seed: cfg.swarm.seed.wrapping_add(i as u64 * 7919), ..cfg.swarm.clone() };
            let upload = if i == 0 { cfg.seed_upload } else { cfg.leecher_upload };
            Node {
                swarm: Swarm::new(layout, have, config, start),
                byte_time: 1.0 / upload,
                links: Vec::new(),
                link_of: HashMap::new(),
                turns: VecDeque::new(),
                sending: false,
                corrupt: vec![false; pieces as usize],
                done: (i == 0).then_some(Duration::ZERO),
                liar: cfg.liars.contains(&i),
                sent: 0.0,
                sent_at_tick: 0.0,
                sent_per_second: Vec::new(),
            }
        })
        .collect();

    connect(&mut nodes, cfg.max_connections, &mut rng);
    let mut queue = Queue { start, heap: BinaryHeap::new(), seq: 0 };
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers: Vec<usize> = node.links.iter().map(|l| l.to).collect();
        for j in peers {
            node.swarm.add_peer(start, PeerKey(j as u64), true);
            // Sent right after the handshake: it arrives one link latency later.
            queue.push(start + cfg.latency, Event::Extensions { node: i, peer: j });
        }
        // Stagger the ticks so the nodes do not all rechoke at the same instant.
        queue.push(start + Duration::from_micros(i as u64 * 997 % 1_000_000), Event::Tick { node: i });
    }
    let first_block: Vec<usize> = layout
        .pieces()
        .scan(0, |next, p| {
            let first = *next;
            *next += layout.block_count(p) as usize;
            Some(first)
        })
        .collect();
    let blocks = layout.pieces().map(|p| layout.block_count(p) as usize).sum();
    let mut sim = Sim {
        cfg,
        layout,
        content,
        garbage,
        queue,
        hash_failures: 0,
        bans: 0,
        events: 0,
        first_block,
        seed_sent: vec![false; blocks],
        seed_unsent: blocks,
        seed_first_copy: None,
    };
    let mut player = cfg.stream.as_ref().filter(|_| n > 1).map(|c| {
        sim.queue.push(start, Event::Play);
        Player {
            bitrate: c.bitrate,
            startup_bytes: (c.bitrate * c.startup.as_secs_f64()) as u64,
            position: None,
            last: start,
            stalled_since: None,
            told_piece: None,
            report: StreamReport::default(),
        }
    });
    for i in 0..n {
        sim.act(&mut nodes, i, start);
    }
    let deadline = start + cfg.time_limit;
    let mut pending = nodes.iter().filter(|n| n.done.is_none() && !n.liar).count();
    let mut now = start;
    while pending > 0 {
        let Some((at, event)) = sim.queue.pop() else { break };
        if at > deadline {
            break;
        }
        now = at;
        sim.events += 1;
        let touched = match event {
            Event::Deliver { from, to, msg: Message::Extended { id: SIM_WANTS, payload } } => {
                let open = nodes[to].link_of.get(&from).is_some_and(|&l| nodes[to].links[l].open);
                if open && let Ok(pieces) = shoal_proto::extension::decode_wants(&payload) {
                    nodes[to].swarm.handle_wants(PeerKey(from as u64), &pieces);
                }
                to
            }
            Event::Deliver { from, to, msg } => {
                let open = nodes[to].link_of.get(&from).is_some_and(|&l| nodes[to].links[l].open);
                if open && nodes[to].swarm.handle_message(now, PeerKey(from as u64), msg).is_err() {
                    close(&mut nodes, to, from);
                    sim.act(&mut nodes, from, now);
                }
                to
            }
            Event::Extensions { node, peer } => {
                let open = nodes[node].link_of.get(&peer).is_some_and(|&l| nodes[node].links[l].open);
                if open {
                    nodes[node].swarm.peer_extensions(PeerKey(peer as u64), cfg.wants);
                }
                node
            }
            Event::SendDone { node } => {
                nodes[node].sending = false;
                sim.transmit(&mut nodes, node, now);
                node
            }
            Event::Tick { node } => {
                let n = &mut nodes[node];
                if cfg.capped {
                    // One second since the last tick, at `1 / byte_time` bytes per second.
                    n.swarm.set_upload_use(Some((n.sent - n.sent_at_tick) * n.byte_time));
                }
                n.sent_at_tick = n.sent;
                nodes[node].swarm.tick(now);
                sim.queue.push(now + Duration::from_secs(1), Event::Tick { node });
                node
            }
            Event::Play => {
                if let Some(p) = player.as_mut()
                    && p.step(&mut nodes[1].swarm, &layout, cfg.file_size, start, now)
                {
                    sim.queue.push(now + PLAY_STEP, Event::Play);
                }
                1
            }
        };
        sim.act(&mut nodes, touched, now);
        let node = &mut nodes[touched];
        if node.done.is_none() && !node.liar && node.swarm.is_complete() {
            node.done = Some(now.duration_since(start));
            pending -= 1;
        }
    }

    let f = cfg.file_size as f64;
    let honest = (1..n).filter(|i| !cfg.liars.contains(i)).count() as f64;
    let sum_u = cfg.seed_upload + honest * cfg.leecher_upload;
    let t_min = (f / cfg.seed_upload).max(honest * f / sum_u);
    let honest_nodes: Vec<&Node> = nodes[1..].iter().filter(|n| !n.liar).collect();
    let completion: Vec<Option<Duration>> = honest_nodes.iter().map(|n| n.done).collect();
    let all_done = completion.iter().copied().collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max());
    let elapsed = now.duration_since(start).as_secs_f64().max(1e-9);
    let leecher_utilization =
        honest_nodes.iter().map(|n| n.sent * n.byte_time / elapsed).sum::<f64>() / honest_nodes.len().max(1) as f64;
    let seconds = elapsed.ceil() as usize;
    let used = |n: &Node, s: usize| n.sent_per_second.get(s).copied().unwrap_or(0.0) * n.byte_time;
    let timeline = (0..seconds)
        .map(|s| {
            let leechers = honest_nodes.iter().map(|n| used(n, s)).sum::<f64>() / honest_nodes.len().max(1) as f64;
            (used(&nodes[0], s), leechers)
        })
        .collect();
    SimReport {
        completion,
        all_done,
        t_min: Duration::from_secs_f64(t_min),
        hash_failures: sim.hash_failures,
        bans: sim.bans,
        leecher_utilization,
        seed_copies: nodes[0].sent / f,
        seed_first_copy: sim.seed_first_copy,
        timeline,
        events: sim.events,
        uploaded: honest_nodes.iter().map(|n| n.sent).collect(),
        stream: player.map(|mut p| {
            // Data that was missing at the end never came: the stall lasts to the end.
            if let Some(since) = p.stalled_since {
                p.report.stalls += 1;
                p.report.stalled += now.duration_since(since);
            }
            p.report
        }),
    }
}

impl Player {
    /// Advances playback to `now`; false once the player is done (the whole file played, or
    /// every byte is there so nothing can stall any more).
    fn step(&mut self, swarm: &mut Swarm, layout: &Layout, size: u64, start: Instant, now: Instant) -> bool {
        let have = |at: u64| {
            let piece = (at / u64::from(layout.piece_length())) as u32;
            layout.piece(piece).is_some_and(|p| swarm.have().get(p))
        };
        let Some(position) = self.position else {
            // Before the first frame: everything up to the startup buffer must be there.
            let buffered = (0..self.startup_bytes.min(size)).step_by(layout.piece_length() as usize).all(have);
            if buffered && have(self.startup_bytes.min(size).saturating_sub(1)) {
                self.position = Some(0.0);
                self.last = now;
                self.report.first_frame = Some(now.duration_since(start));
            } else {
                self.tell(swarm, layout, size, 0, now);
            }
            return true;
        };
        let mut position = position;
        let at = position as u64;
        if at >= size || swarm.is_complete() {
            if let Some(since) = self.stalled_since.take() {
                self.report.stalls += 1;
                self.report.stalled += now.duration_since(since);
            }
            return false;
        }
        if have(at) {
            if let Some(since) = self.stalled_since.take() {
                self.report.stalls += 1;
                self.report.stalled += now.duration_since(since);
            }
            position += now.duration_since(self.last).as_secs_f64() * self.bitrate;
        } else if self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
        self.last = now;
        self.position = Some(position);
        self.tell(swarm, layout, size, (position as u64).min(size - 1), now);
        true
    }

    /// Gives the swarm the player's deadlines when it moved to another piece.
    fn tell(&mut self, swarm: &mut Swarm, layout: &Layout, size: u64, at: u64, now: Instant) {
        let piece = (at / u64::from(layout.piece_length())) as u32;
        if self.told_piece == Some(piece) {
            return;
        }
        self.told_piece = Some(piece);
        let reader =
            crate::stream::Reader { file: 0..size, position: at, rate: Some(self.bitrate), since: now, index: None };
        let urgent = crate::stream::deadlines(&[reader], layout, |p| swarm.have().get(p));
        swarm.set_deadlines(now, urgent);
    }
}

/// Each node dials random others until it has `max` links; nodes accept up to 1.5 × `max`.
fn connect(nodes: &mut [Node], max: usize, rng: &mut crate::rng::Rng) {
    let n = nodes.len();
    let want = max.min(n - 1);
    for i in 0..n {
        let mut tries = 0;
        while nodes[i].links.len() < want && tries < 20 * n {
            tries += 1;
            let j = rng.below(n as u64) as usize;
            if j == i || nodes[i].link_of.contains_key(&j) || nodes[j].links.len() >= max + max / 2 {
                continue;
            }
            for (a, b) in [(i, j), (j, i)] {
                let index = nodes[a].links.len();
                nodes[a].links.push(Link { to: b, queue: VecDeque::new(), open: true });
                nodes[a].link_of.insert(b, index);
            }
        }
    }
}

/// Closes the connection between two nodes on both sides.
fn close(nodes: &mut [Node], a: usize, b: usize) {
    for (x, y) in [(a, b), (b, a)] {
        let Some(&l) = nodes[x].link_of.get(&y) else { continue };
        let link = &mut nodes[x].links[l];
        if link.open {
            link.open = false;
            link.queue.clear();
            nodes[x].swarm.remove_peer(PeerKey(y as u64));
        }
    }
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    layout: Layout,
    content: Bytes,
    garbage: Bytes,
    queue: Queue,
    hash_failures: u32,
    bans: usize,
    events: u64,
    /// Index in `seed_sent` of each piece's first block.
    first_block: Vec<usize>,
    /// Per block, pieces in order: the seed sent it at least once.
    seed_sent: Vec<bool>,
    /// Blocks the seed has not sent yet.
    seed_unsent: usize,
    seed_first_copy: Option<Duration>,
}

impl Sim<'_> {
    /// Carries out a node's pending actions.
    fn act(&mut self, nodes: &mut [Node], i: usize, now: Instant) {
        while let Some(action) = nodes[i].swarm.poll_action() {
            match action {
                Action::Send { peer, msg } => {
                    self.queue.push(now + self.cfg.latency, Event::Deliver { from: i, to: peer.0 as usize, msg });
                }
                Action::Serve { peer, block } => {
                    let data = if nodes[i].liar {
                        self.garbage.slice(..block.length as usize)
                    } else {
                        let off = self.layout.piece_offset(block.piece) as usize + block.begin as usize;
                        self.content.slice(off..off + block.length as usize)
                    };
                    let msg = Message::Piece { index: block.piece.get(), begin: block.begin, data };
                    let node = &mut nodes[i];
                    let Some(&l) = node.link_of.get(&(peer.0 as usize)) else { continue };
                    if !node.links[l].open {
                        continue;
                    }
                    if node.links[l].queue.is_empty() {
                        node.turns.push_back(l);
                    }
                    node.links[l].queue.push_back(msg);
                    if !node.sending {
                        self.transmit(nodes, i, now);
                    }
                }
                Action::Write { block, data } => {
                    // Honest data is a slice of the true content at the same offset.
                    let off = self.layout.piece_offset(block.piece) as usize + block.begin as usize;
                    if data.as_ptr() != self.content[off..].as_ptr() {
                        nodes[i].corrupt[block.piece.idx()] = true;
                    }
                }
                Action::Verify { piece } => {
                    let ok = !std::mem::replace(&mut nodes[i].corrupt[piece.idx()], false);
                    self.hash_failures += u32::from(!ok);
                    nodes[i].swarm.handle_verified(now, piece, ok);
                }
                Action::Want { peer, pieces } => {
                    let ids: Vec<u32> = pieces.iter().map(|p| p.get()).collect();
                    let payload = shoal_proto::extension::encode_wants(&ids).into();
                    let msg = Message::Extended { id: SIM_WANTS, payload };
                    self.queue.push(now + self.cfg.latency, Event::Deliver { from: i, to: peer.0 as usize, msg });
                }
                Action::Withdraw { peer, block } => {
                    let node = &mut nodes[i];
                    if let Some(&l) = node.link_of.get(&(peer.0 as usize)) {
                        node.links[l].queue.retain(|m| {
                            !matches!(m, Message::Piece { index, begin, .. }
                                if *index == block.piece.get() && *begin == block.begin)
                        });
                    }
                }
                Action::Disconnect { peer, ban, .. } => {
                    self.bans += usize::from(ban);
                    close(nodes, i, peer.0 as usize);
                    self.act(nodes, peer.0 as usize, now);
                }
            }
        }
    }

    /// Starts sending a node's next queued block, taking its links in turn.
    fn transmit(&mut self, nodes: &mut [Node], i: usize, now: Instant) {
        let node = &mut nodes[i];
        while let Some(l) = node.turns.pop_front() {
            let link = &mut node.links[l];
            let Some(msg) = link.queue.pop_front() else { continue };
            if !link.queue.is_empty() {
                node.turns.push_back(l);
            }
            let bytes = msg.encoded_len() as f64;
            let done = now + Duration::from_secs_f64(bytes * node.byte_time);
            node.sending = true;
            node.sent += bytes;
            let second = now.duration_since(self.queue.start).as_secs() as usize;
            if node.sent_per_second.len() <= second {
                node.sent_per_second.resize(second + 1, 0.0);
            }
            node.sent_per_second[second] += bytes;
            if i == 0
                && let Message::Piece { index, begin, .. } = &msg
            {
                let n = self.first_block[*index as usize] + (begin / BLOCK_SIZE) as usize;
                if !std::mem::replace(&mut self.seed_sent[n], true) {
                    self.seed_unsent -= 1;
                    if self.seed_unsent == 0 {
                        self.seed_first_copy = Some(now.duration_since(self.queue.start));
                    }
                }
            }
            self.queue.push(done, Event::SendDone { node: i });
            self.queue.push(done + self.cfg.latency, Event::Deliver { from: i, to: link.to, msg });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_and_twenty_peers_all_complete() {
        let report = run(&SimConfig::default());
        assert!(report.all_done.is_some(), "every peer completes: {:?}", report.completion);
        assert_eq!(report.completion.len(), 20);
        assert_eq!(report.hash_failures, 0);
        let eta = report.eta().expect("done");
        println!("20 peers: T = {:?}, T_min = {:?}, eta = {eta:.3}", report.all_done, report.t_min);
        assert!(eta > 0.4, "distribution is reasonably efficient: eta = {eta:.3}");
    }

    #[test]
    fn liar_is_banned_and_honest_peers_complete() {
        let cfg = SimConfig { leechers: 6, file_size: 4 * 1024 * 1024, liars: vec![3], ..Default::default() };
        let report = run(&cfg);
        assert!(report.all_done.is_some(), "honest peers complete: {:?}", report.completion);
        assert!(report.hash_failures > 0);
        assert!(report.bans > 0, "the lying peer is banned");
    }
}
