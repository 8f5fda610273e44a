//! A live channel simulated in virtual time: one broadcaster and many viewers, each running
//! the real [`Mesh`] policy, on links whose upload is capped per node.
//!
//! Model: the broadcaster cuts a chunk every [`Config::chunk_ms`] of the stream's bitrate;
//! control messages arrive one link latency after they are sent (each pair of nodes has its own
//! latency, drawn once); a chunk waits for its sender's uplink (one chunk at a time at the
//! node's capped rate, in the order the policy handed them over) and arrives one latency after
//! its last byte left; downloads are not capped. Viewers join over [`SimConfig::join_over_ms`],
//! dial [`SimConfig::degree`] random others (and the broadcaster while it has room), dial more
//! when they drop below half that (what the trackers, the DHT and PEX give a real node), and,
//! with churn, leave at random and are replaced by new viewers joining at the live edge.
//!
//! Every run is exact and repeatable from its seed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use shoal_proto::rng::Rng;

use crate::mesh::{Action, Config, Mesh, Msg, Seq};

/// Parameters of a simulated channel.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Viewers at any time.
    pub viewers: usize,
    /// The stream's rate, bytes per second.
    pub bitrate: f64,
    /// The broadcaster's upload, in multiples of the bitrate.
    pub source_upload: f64,
    /// Each viewer's upload, in multiples of the bitrate.
    pub viewer_upload: f64,
    /// One-way latencies are drawn from this range (ms).
    pub latency_ms: (u64, u64),
    /// Neighbours a viewer dials.
    pub degree: usize,
    /// Neighbours a viewer accepts at most.
    pub max_degree: usize,
    /// Neighbours the broadcaster accepts at most.
    pub source_degree: usize,
    /// Length of the broadcast (ms).
    pub duration_ms: u64,
    /// Viewers join evenly over this time (ms) from the start.
    pub join_over_ms: u64,
    /// Fraction of the viewers leaving (and replaced) per minute, after everyone joined.
    pub churn_per_min: f64,
    /// The policy's settings (each node's seed varies).
    pub mesh: Config,
    /// Seed of the run.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            viewers: 100,
            bitrate: 125_000.0,
            source_upload: 2.0,
            viewer_upload: 1.5,
            latency_ms: (5, 50),
            degree: 8,
            max_degree: 16,
            source_degree: 8,
            duration_ms: 30_000,
            join_over_ms: 5_000,
            churn_per_min: 0.0,
            mesh: Config::default(),
            seed: 7,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Viewers that played at least one chunk.
    pub viewers: usize,
    /// Chunks cut.
    pub chunks: u64,
    /// Chunks played on time over chunks due (from each viewer's start), all viewers.
    pub continuity: f64,
    /// The worst viewer's continuity (among those that stayed at least 10 s).
    pub worst_continuity: f64,
    /// Join to first chunk played, median and max (ms).
    pub startup_ms: (u64, u64),
    /// Chunk cut to played, median and max (ms).
    pub lag_ms: (u64, u64),
    /// Copies of each chunk the broadcaster sent, on average.
    pub source_copies: f64,
    /// Chunks received twice or too late, per chunk played.
    pub waste: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Cut(Seq),
    Msg { to: usize, from: usize, msg: Msg },
    Chunk { to: usize, from: usize, seq: Seq },
    LinkDone(usize),
    Tick(usize),
    Join(usize),
    Leave,
}

struct Node {
    mesh: Mesh<usize>,
    alive: bool,
    neighbours: BTreeSet<usize>,
    /// Upload rate, bytes per ms.
    rate: f64,
    queue: VecDeque<(usize, Seq)>,
    busy: bool,
    joined: u64,
    first_play: Option<u64>,
    played: u64,
    skipped: u64,
}

struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    events: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    serial: u64,
    nodes: Vec<Node>,
    chunk_bytes: f64,
    lags: Vec<u64>,
    chunks: u64,
}

const TICK_MS: u64 = 50;

impl Sim {
    fn at(&mut self, time: u64, ev: Ev) {
        self.serial += 1;
        self.events.push(Reverse((time, self.serial, ev)));
    }

    fn latency(&self, a: usize, b: usize) -> u64 {
        let (lo, hi) = self.cfg.latency_ms;
        let (x, y) = (a.min(b) as u64, a.max(b) as u64);
        let h = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ y.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ self.cfg.seed)
            .wrapping_mul(0x2545_f491_4f6c_dd1d);
        lo + (h >> 33) % (hi - lo + 1)
    }

    fn add_node(&mut self, upload: f64, source: bool) -> usize {
        let id = self.nodes.len();
        let cfg = Config { seed: self.cfg.seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9), ..self.cfg.mesh.clone() };
        let mesh = if source { Mesh::source(cfg) } else { Mesh::viewer(cfg) };
        self.nodes.push(Node {
            mesh,
            alive: true,
            neighbours: BTreeSet::new(),
            rate: upload * self.cfg.bitrate / 1000.0,
            queue: VecDeque::new(),
            busy: false,
            joined: self.now,
            first_play: None,
            played: 0,
            skipped: 0,
        });
        id
    }

    fn room(&self, n: usize) -> bool {
        let max = if n == 0 { self.cfg.source_degree } else { self.cfg.max_degree };
        self.nodes[n].alive && self.nodes[n].neighbours.len() < max
    }

    fn connect(&mut self, a: usize, b: usize) {
        if a == b || self.nodes[a].neighbours.contains(&b) || !self.room(a) || !self.room(b) {
            return;
        }
        self.nodes[a].neighbours.insert(b);
        self.nodes[b].neighbours.insert(a);
        self.nodes[a].mesh.connected(b, b == 0);
        self.nodes[b].mesh.connected(a, a == 0);
        self.drain(a);
        self.drain(b);
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        if self.nodes[a].neighbours.remove(&b) {
            self.nodes[a].mesh.disconnected(b);
        }
        if self.nodes[b].neighbours.remove(&a) {
            self.nodes[b].mesh.disconnected(a);
        }
    }

    /// Dials random live viewers (and the broadcaster, if it has room) until `n` has `want`.
    fn dial(&mut self, n: usize, want: usize) {
        if self.room(0) {
            self.connect(n, 0);
        }
        let live: Vec<usize> = (1..self.nodes.len()).filter(|&i| i != n && self.nodes[i].alive).collect();
        let mut tries = 0;
        while self.nodes[n].neighbours.len() < want && tries < 4 * want && !live.is_empty() {
            tries += 1;
            let other = live[self.rng.below(live.len() as u64) as usize];
            self.connect(n, other);
        }
    }

    fn drain(&mut self, n: usize) {
        let now = self.now;
        for action in self.nodes[n].mesh.take_actions() {
            match action {
                Action::Send(to, Msg::Chunk(seq)) => {
                    self.nodes[n].queue.push_back((to, seq));
                    self.start_link(n);
                }
                Action::Send(to, msg) => {
                    let at = now + self.latency(n, to);
                    self.at(at, Ev::Msg { to, from: n, msg });
                }
                Action::Play(seq) => {
                    let node = &mut self.nodes[n];
                    node.played += 1;
                    node.first_play.get_or_insert(now);
                    self.lags.push(now.saturating_sub(seq * self.cfg.mesh.chunk_ms));
                }
                Action::Skip(_) => self.nodes[n].skipped += 1,
                Action::Drop(p, _) => self.disconnect(n, p),
                Action::Forget(_) | Action::Ended => {}
            }
        }
    }

    fn start_link(&mut self, n: usize) {
        if self.nodes[n].busy || self.nodes[n].queue.is_empty() {
            return;
        }
        self.nodes[n].busy = true;
        let ms = (self.chunk_bytes / self.nodes[n].rate).ceil() as u64;
        let at = self.now + ms.max(1);
        self.at(at, Ev::LinkDone(n));
    }

    fn run(mut self) -> Report {
        let source = self.add_node(self.cfg.source_upload, true);
        self.at(0, Ev::Cut(0));
        self.at(0, Ev::Tick(source));
        for i in 0..self.cfg.viewers {
            let t = self.cfg.join_over_ms * i as u64 / self.cfg.viewers.max(1) as u64;
            self.at(t, Ev::Join(0));
        }
        if self.cfg.churn_per_min > 0.0 {
            let every = 60_000.0 / (self.cfg.churn_per_min * self.cfg.viewers as f64);
            let mut t = self.cfg.join_over_ms as f64 + every;
            while (t as u64) < self.cfg.duration_ms {
                self.at(t as u64, Ev::Leave);
                t += every;
            }
        }
        let end = self.cfg.duration_ms + self.cfg.mesh.lag_ms + 2_000;
        while let Some(Reverse((time, _, ev))) = self.events.pop() {
            if time > end {
                break;
            }
            self.now = time;
            match ev {
                Ev::Cut(seq) => {
                    self.chunks += 1;
                    self.nodes[0].mesh.cut(seq, time, false);
                    self.drain(0);
                    if time + self.cfg.mesh.chunk_ms < self.cfg.duration_ms {
                        self.at(time + self.cfg.mesh.chunk_ms, Ev::Cut(seq + 1));
                    }
                }
                Ev::Join(_) => {
                    let n = self.add_node(self.cfg.viewer_upload, false);
                    let degree = self.cfg.degree;
                    self.dial(n, degree);
                    let first = time + self.rng.below(TICK_MS);
                    self.at(first, Ev::Tick(n));
                }
                Ev::Leave => {
                    let live: Vec<usize> = (1..self.nodes.len()).filter(|&i| self.nodes[i].alive).collect();
                    if !live.is_empty() {
                        let gone = live[self.rng.below(live.len() as u64) as usize];
                        for other in self.nodes[gone].neighbours.clone() {
                            self.disconnect(gone, other);
                        }
                        self.nodes[gone].alive = false;
                        self.nodes[gone].queue.clear();
                        self.at(time, Ev::Join(0));
                    }
                }
                Ev::Tick(n) => {
                    if !self.nodes[n].alive {
                        continue;
                    }
                    if n != 0 && self.nodes[n].neighbours.len() < self.cfg.degree / 2 {
                        let degree = self.cfg.degree;
                        self.dial(n, degree);
                    }
                    self.nodes[n].mesh.tick(time);
                    self.drain(n);
                    self.at(time + TICK_MS, Ev::Tick(n));
                }
                Ev::Msg { to, from, msg } => {
                    if !self.nodes[to].alive || !self.nodes[to].neighbours.contains(&from) {
                        continue;
                    }
                    self.nodes[to].mesh.received(from, msg, time);
                    if matches!(msg, Msg::Lack(_) | Msg::Busy(_) | Msg::Want(_)) {
                        self.nodes[to].mesh.tick(time);
                    }
                    self.drain(to);
                }
                Ev::Chunk { to, from, seq } => {
                    if !self.nodes[to].alive || !self.nodes[to].neighbours.contains(&from) {
                        continue;
                    }
                    let cut = seq * self.cfg.mesh.chunk_ms;
                    self.nodes[to].mesh.chunk(from, seq, cut, false, time);
                    self.nodes[to].mesh.tick(time);
                    self.drain(to);
                }
                Ev::LinkDone(n) => {
                    self.nodes[n].busy = false;
                    let Some((to, seq)) = self.nodes[n].queue.pop_front() else { continue };
                    if !self.nodes[n].alive {
                        continue;
                    }
                    if self.nodes[to].alive && self.nodes[n].neighbours.contains(&to) {
                        let at = time + self.latency(n, to);
                        self.at(at, Ev::Chunk { to, from: n, seq });
                    }
                    self.nodes[n].mesh.sent(to, seq, time);
                    self.drain(n);
                    self.start_link(n);
                }
            }
        }
        self.report()
    }

    fn report(mut self) -> Report {
        let viewers: Vec<&Node> = self.nodes[1..].iter().filter(|n| n.first_play.is_some()).collect();
        let (played, skipped) = viewers.iter().fold((0, 0), |(p, s), n| (p + n.played, s + n.skipped));
        let worst = viewers
            .iter()
            .filter(|n| n.played + n.skipped >= 10_000 / self.cfg.mesh.chunk_ms)
            .map(|n| n.played as f64 / (n.played + n.skipped) as f64)
            .fold(1.0, f64::min);
        let mut startups: Vec<u64> = viewers.iter().filter_map(|n| n.first_play.map(|f| f - n.joined)).collect();
        startups.sort_unstable();
        self.lags.sort_unstable();
        let median = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
        let wasted: u64 = self.nodes[1..].iter().map(|n| n.mesh.stats().wasted).sum();
        Report {
            viewers: viewers.len(),
            chunks: self.chunks,
            continuity: if played + skipped == 0 { 0.0 } else { played as f64 / (played + skipped) as f64 },
            worst_continuity: worst,
            startup_ms: (median(&startups), startups.last().copied().unwrap_or(0)),
            lag_ms: (median(&self.lags), self.lags.last().copied().unwrap_or(0)),
            source_copies: self.nodes[0].mesh.stats().uploaded as f64 / self.chunks.max(1) as f64,
            waste: wasted as f64 / played.max(1) as f64,
        }
    }
}

/// Runs a simulated channel.
pub fn run(cfg: SimConfig) -> Report {
    let chunk_bytes = cfg.bitrate * cfg.mesh.chunk_ms as f64 / 1000.0;
    let sim = Sim {
        rng: Rng::new(cfg.seed),
        cfg,
        now: 0,
        events: BinaryHeap::new(),
        serial: 0,
        nodes: Vec::new(),
        chunk_bytes,
        lags: Vec::new(),
        chunks: 0,
    };
    sim.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_viewers_play_continuously_and_the_broadcaster_sends_each_chunk_about_once() {
        let report =
            run(SimConfig { viewers: 1000, duration_ms: 30_000, join_over_ms: 10_000, ..SimConfig::default() });
        eprintln!("{report:?}");
        assert!(report.viewers >= 990, "{report:?}");
        assert!(report.continuity >= 0.98, "{report:?}");
        assert!(report.source_copies <= 2.2, "{report:?}");
        // The lag is the playout delay plus how late each viewer's first chunk came.
        assert!(report.lag_ms.0 <= 8_000, "{report:?}");
        assert!(report.startup_ms.0 <= 3_000, "{report:?}");
    }

    #[test]
    fn thirty_two_viewers_with_a_fifth_replaced_every_minute() {
        let report = run(SimConfig { viewers: 32, duration_ms: 90_000, churn_per_min: 0.2, ..SimConfig::default() });
        eprintln!("{report:?}");
        assert!(report.viewers > 32, "some viewers were replaced: {report:?}");
        assert!(report.continuity >= 0.99, "{report:?}");
        assert!(report.source_copies <= 2.2, "{report:?}");
        assert!(report.lag_ms.0 <= 5_000, "{report:?}");
    }

    #[test]
    fn a_starved_channel_shows_it() {
        // Viewers that can upload less than the stream: no policy can carry it.
        let report = run(SimConfig { viewers: 64, viewer_upload: 0.5, ..SimConfig::default() });
        assert!(report.continuity < 0.9, "{report:?}");
    }
}
