//! A swarm simulator in virtual time: one seed and any number of leechers, each running the
//! real [`Swarm`] logic, connected by links whose upload is capped per node. Control messages
//! take one latency to arrive; `piece` messages also wait for the sender's upload capacity,
//! shared between its connections. Nothing touches a socket, a disk or the wall clock, so runs
//! are exact and repeatable, and a 20-peer swarm finishes in well under a second.
//!
//! Written blocks are compared with the true content as they arrive, so a piece passes
//! verification only if every byte a peer sent was right; a node can be made to lie to test
//! banning.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::{Layout, Message};

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
    /// Each node connects to at most this many others (all of them when larger than the swarm).
    pub max_connections: usize,
    /// Length of one simulation step.
    pub step: Duration,
    /// Give up after this much virtual time.
    pub time_limit: Duration,
    /// Leechers (by number, 1-based) that send corrupted data.
    pub liars: Vec<usize>,
    /// Swarm logic settings for every node (its seed is varied per node).
    pub swarm: Config,
}

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
            step: Duration::from_millis(10),
            time_limit: Duration::from_secs(3600),
            liars: Vec::new(),
            swarm: Config::default(),
        }
    }
}

/// What a simulation run measured.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// Virtual time at which each leecher completed (`None`: it did not).
    pub completion: Vec<Option<Duration>>,
    /// Time until the last leecher completed, if all did.
    pub all_done: Option<Duration>,
    /// The theoretical minimum distribution time, max(F/u_s, N·F/(u_s + Σu_i)).
    pub t_min: Duration,
    /// Pieces that failed verification, summed over all nodes.
    pub hash_failures: u32,
    /// Peers banned, summed over all nodes.
    pub bans: usize,
    /// Mean fraction of its upload capacity each leecher used until the last one completed.
    pub leecher_utilization: f64,
    /// Bytes the seed uploaded, as a multiple of the file size (1.0: every byte sent once).
    pub seed_copies: f64,
}

impl SimReport {
    /// Efficiency: t_min / T (1.0 is the theoretical optimum).
    pub fn eta(&self) -> Option<f64> {
        self.all_done.map(|t| self.t_min.as_secs_f64() / t.as_secs_f64())
    }
}

struct Link {
    to: usize,
    /// Messages waiting for upload capacity, with bytes still to send of the head.
    queue: VecDeque<(Message, u64)>,
    open: bool,
}

struct Node {
    swarm: Swarm,
    upload: f64,
    credit: f64,
    links: Vec<Link>,
    rr: usize,
    /// Pieces with a corrupted block written.
    corrupt: Vec<bool>,
    done: Option<Duration>,
    liar: bool,
    /// Bytes uploaded.
    sent: f64,
}

struct InFlight {
    at: Instant,
    from: usize,
    to: usize,
    msg: Message,
}

/// Runs a simulated swarm to completion (or the time limit) and reports the timings.
pub fn run(cfg: &SimConfig) -> SimReport {
    let layout = Layout::new(cfg.file_size, cfg.piece_length).expect("simulation layout is valid");
    let content: Bytes = (0..cfg.file_size).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    let start = Instant::now();
    let n = cfg.leechers + 1;
    let mut rng = crate::rng::Rng::new(cfg.swarm.seed ^ 0xabcdef);
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let have = if i == 0 { Bitfield::full(layout.piece_count()) } else { Bitfield::new(layout.piece_count()) };
            let config = Config { seed: cfg.swarm.seed.wrapping_add(i as u64 * 7919), ..cfg.swarm.clone() };
            Node {
                swarm: Swarm::new(layout, have, config, start),
                upload: if i == 0 { cfg.seed_upload } else { cfg.leecher_upload },
                credit: 0.0,
                links: Vec::new(),
                rr: 0,
                corrupt: vec![false; layout.piece_count() as usize],
                done: (i == 0).then_some(Duration::ZERO),
                liar: cfg.liars.contains(&i),
                sent: 0.0,
            }
        })
        .collect();

    // Connect: each node dials random others until it has `max_connections` links.
    let mut linked = vec![vec![false; n]; n];
    for i in 0..n {
        let mut tries = 0;
        while nodes[i].links.len() < cfg.max_connections.min(n - 1) && tries < 20 * n {
            tries += 1;
            let j = rng.below(n as u64) as usize;
            if j == i || linked[i][j] || nodes[j].links.len() >= cfg.max_connections + cfg.max_connections / 2 {
                continue;
            }
            linked[i][j] = true;
            linked[j][i] = true;
            nodes[i].links.push(Link { to: j, queue: VecDeque::new(), open: true });
            nodes[j].links.push(Link { to: i, queue: VecDeque::new(), open: true });
        }
    }
    for node in nodes.iter_mut() {
        let peers: Vec<usize> = node.links.iter().map(|l| l.to).collect();
        for j in peers {
            node.swarm.add_peer(start, PeerKey(j as u64), true);
        }
    }

    let mut wire: VecDeque<InFlight> = VecDeque::new();
    let mut now = start;
    let mut next_tick = start;
    let mut hash_failures = 0;
    let mut bans = 0;
    while now.duration_since(start) < cfg.time_limit {
        // Deliver what has arrived, in order.
        while wire.front().is_some_and(|m| m.at <= now) {
            let Some(m) = wire.pop_front() else { break };
            let open = nodes[m.to].links.iter().any(|l| l.to == m.from && l.open);
            if open && nodes[m.to].swarm.handle_message(now, PeerKey(m.from as u64), m.msg).is_err() {
                close(&mut nodes, m.to, m.from);
            }
        }
        if now >= next_tick {
            for node in nodes.iter_mut() {
                node.swarm.tick(now);
            }
            next_tick = now + Duration::from_secs(1);
        }
        // Carry out every node's actions.
        for i in 0..n {
            while let Some(action) = nodes[i].swarm.poll_action() {
                match action {
                    Action::Send { peer, msg } => {
                        wire.push_back(InFlight { at: now + cfg.latency, from: i, to: peer.0 as usize, msg });
                    }
                    Action::Serve { peer, block } => {
                        let off = layout.piece_offset(block.piece) as usize + block.begin as usize;
                        let mut data = content.slice(off..off + block.length as usize);
                        if nodes[i].liar {
                            data = Bytes::from(vec![0xEE; block.length as usize]);
                        }
                        let msg = Message::Piece { index: block.piece.get(), begin: block.begin, data };
                        let bytes = block.length as u64 + 13;
                        if let Some(link) = nodes[i].links.iter_mut().find(|l| l.to == peer.0 as usize) {
                            link.queue.push_back((msg, bytes));
                        }
                    }
                    Action::Write { block, data } => {
                        let off = layout.piece_offset(block.piece) as usize + block.begin as usize;
                        if data != content.slice(off..off + block.length as usize) {
                            nodes[i].corrupt[block.piece.idx()] = true;
                        }
                    }
                    Action::Verify { piece } => {
                        let ok = !std::mem::replace(&mut nodes[i].corrupt[piece.idx()], false);
                        hash_failures += u32::from(!ok);
                        nodes[i].swarm.handle_verified(now, piece, ok);
                    }
                    Action::Disconnect { peer, ban, .. } => {
                        bans += usize::from(ban);
                        close(&mut nodes, i, peer.0 as usize);
                    }
                }
            }
            if nodes[i].done.is_none() && nodes[i].swarm.is_complete() {
                nodes[i].done = Some(now.duration_since(start));
            }
        }
        if nodes.iter().all(|n| n.done.is_some() || n.liar) {
            break;
        }
        // Spend each node's upload capacity on its queued blocks, round robin over links.
        let dt = cfg.step.as_secs_f64();
        let arrive = now + cfg.step + cfg.latency;
        for (i, node) in nodes.iter_mut().enumerate() {
            node.credit = (node.credit + node.upload * dt).min(node.upload * dt * 2.0);
            let links = node.links.len();
            let mut idle = 0;
            while node.credit >= 1.0 && links > 0 && idle < links {
                node.rr = (node.rr + 1) % links;
                let link = &mut node.links[node.rr];
                let Some((_, left)) = link.queue.front_mut() else {
                    idle += 1;
                    continue;
                };
                idle = 0;
                let sent = (*left as f64).min(node.credit.min(16_397.0));
                node.credit -= sent;
                node.sent += sent;
                *left -= sent as u64;
                if *left == 0
                    && let Some((msg, _)) = link.queue.pop_front()
                    && link.open
                {
                    wire.push_back(InFlight { at: arrive, from: i, to: link.to, msg });
                }
            }
            if node.links.iter().all(|l| l.queue.is_empty()) {
                node.credit = node.credit.min(node.upload * dt);
            }
        }
        now += cfg.step;
    }

    let f = cfg.file_size as f64;
    let honest = (1..n).filter(|i| !cfg.liars.contains(i)).count() as f64;
    let sum_u = cfg.seed_upload + honest * cfg.leecher_upload;
    let t_min = (f / cfg.seed_upload).max(honest * f / sum_u);
    let completion: Vec<Option<Duration>> = nodes[1..].iter().filter(|n| !n.liar).map(|n| n.done).collect();
    let all_done = completion.iter().copied().collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max());
    let elapsed = now.duration_since(start).as_secs_f64().max(1e-9);
    let honest_nodes: Vec<&Node> = nodes[1..].iter().filter(|n| !n.liar).collect();
    let leecher_utilization =
        honest_nodes.iter().map(|n| n.sent / (n.upload * elapsed)).sum::<f64>() / honest_nodes.len().max(1) as f64;
    SimReport {
        completion,
        all_done,
        t_min: Duration::from_secs_f64(t_min),
        hash_failures,
        bans,
        leecher_utilization,
        seed_copies: nodes[0].sent / cfg.file_size as f64,
    }
}

/// Closes the connection between two nodes on both sides.
fn close(nodes: &mut [Node], a: usize, b: usize) {
    for (x, y) in [(a, b), (b, a)] {
        if let Some(link) = nodes[x].links.iter_mut().find(|l| l.to == y && l.open) {
            link.open = false;
            link.queue.clear();
            nodes[x].swarm.remove_peer(PeerKey(y as u64));
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
        assert!(eta > 0.5, "distribution is reasonably efficient: eta = {eta:.3}");
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
