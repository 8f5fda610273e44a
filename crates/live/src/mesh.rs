//! The live mesh's policy, sans-IO: what a broadcaster or a viewer sends to its neighbours,
//! what it asks for and from whom, and when it plays or gives up on a chunk.
//!
//! Design (a pull mesh with a pushing source; what it takes from each):
//! - **Availability**: a node tells every neighbour `Have(seq)` for each chunk it gets (and, on
//!   connecting, for every chunk it holds): CoolStreaming's buffer maps, sent as increments.
//!   What a neighbour announced is kept per neighbour within the window only.
//! - **Pull by deadline** (CoolStreaming, and PPSPP's live mode, RFC 7574 §12): a viewer
//!   plays chunk `s` at `deadline(s) = time(s) + offset + lag`, where `time(s)` is the
//!   broadcaster's clock in the signed chunk, `offset` the first chunk's `arrival - time` (the
//!   path's delay plus any clock skew, so clocks need not agree) and `lag` the playout delay.
//!   It asks neighbours for missing chunks between its play point and the newest chunk anyone
//!   announced: chunks due within [`Config::urgent_ms`] first, earliest first, then the rest
//!   rarest first (fewest holders among its neighbours) so new chunks spread (BitTorrent's
//!   rarest first; Zhang et al.'s "CoolStreaming" and Magharei & Rejaie's PRIME show pure
//!   earliest-first starves the diffusion of fresh chunks). Each request goes to the holder
//!   with the fewest requests outstanding (at most [`Config::max_asked`] per neighbour); one
//!   unanswered for [`Config::request_timeout_ms`] is dropped, and a chunk still missing close
//!   to its deadline is asked of a second holder (libtorrent's `set_piece_deadline` does the
//!   same for late pieces).
//! - **Upload**: requests wait in a queue (at most [`Config::max_wants`] per neighbour and
//!   [`Config::max_queued`] in all; more get `Busy`, so the asker turns to another holder at
//!   once instead of waiting behind a long queue), and at most [`Config::max_uploads`] chunks
//!   are handed to the transport at once, the lowest sequence number first, so a slow uplink
//!   serves the most urgent chunk. A neighbour that said `Busy` or let a request time out is
//!   not asked again for [`Config::pause_ms`].
//! - **The broadcaster** spends its upload so that each chunk leaves it about once (PPLive's
//!   lesson: the audience carries the channel): it pushes each new chunk to one neighbour, in
//!   turn, the least loaded first, and announces it to the others; viewers ask the broadcaster
//!   only for a chunk that is due soon and that no other neighbour has, and it serves each chunk
//!   at most [`Config::source_copies`] times in all (push included), answering `Lack` beyond.
//! - **Joining at the edge**: a new viewer asks for the newest chunk its neighbours agree on
//!   (the second newest of their newest, so one neighbour cannot send it into the future), learns
//!   the clock from it, and starts playing at the oldest chunk it can still fetch before its
//!   deadline ([`Config::join_margin_ms`]). It never plays older chunks: deadlines follow the
//!   broadcaster's clock, so a viewer whose chunks come late skips them and stays `lag` behind
//!   the source rather than drifting further. Chunks due before the first one could be played
//!   move the start on; they are not counted as left out (playback had not begun).
//! - **Bounds**: announcements outside the window are ignored, each neighbour's announced set is
//!   at most the window, requests and queued wants are capped per neighbour, a neighbour that
//!   fails to deliver what it announced [`MAX_STRIKES`] times is dropped, chunks older than
//!   [`Config::keep`] behind the newest are forgotten (and replays of them refused).
//!
//! The transport checks each chunk's signature before [`Mesh::chunk`] sees it (a forged chunk
//! gets its sender banned there); the policy deals only in sequence numbers and times.

use std::collections::{BTreeMap, BTreeSet};

use shoal_proto::rng::Rng;

/// A chunk's place in the stream.
pub type Seq = u64;

/// Failures to deliver an announced chunk after which a neighbour is dropped.
pub const MAX_STRIKES: u32 = 16;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct Config {
    /// The broadcaster cuts a chunk about this often (used to estimate the time of a chunk not
    /// seen yet).
    pub chunk_ms: u64,
    /// Playout delay: a chunk is due this long after it was cut (plus the path's delay).
    pub lag_ms: u64,
    /// A joining viewer starts at the oldest chunk due at least this far in the future.
    pub join_margin_ms: u64,
    /// A held chunk is played this long before it is due.
    pub play_lead_ms: u64,
    /// Chunks kept behind the newest, for neighbours that are behind.
    pub keep: u64,
    /// Announcements this far past the newest chunk held are believed.
    pub ahead: u64,
    /// Requests outstanding to one neighbour.
    pub max_asked: usize,
    /// A neighbour's requests queued here.
    pub max_wants: usize,
    /// Requests queued here in all.
    pub max_queued: usize,
    /// A neighbour that answered `Busy` (or not at all) is left alone this long.
    pub pause_ms: u64,
    /// Chunks handed to the transport and not yet sent.
    pub max_uploads: usize,
    /// A request unanswered this long is given up (and a queued one dropped).
    pub request_timeout_ms: u64,
    /// A chunk due within this is urgent: asked first, of a second holder when late, of the
    /// broadcaster if nobody else has it.
    pub urgent_ms: u64,
    /// A second request for an urgent chunk goes out after the first waited this long.
    pub second_ask_ms: u64,
    /// Copies of each chunk the broadcaster sends at most.
    pub source_copies: u32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chunk_ms: 125,
            lag_ms: 3000,
            join_margin_ms: 1000,
            play_lead_ms: 250,
            keep: 64,
            ahead: 64,
            max_asked: 4,
            max_wants: 2,
            max_queued: 2,
            pause_ms: 250,
            max_uploads: 2,
            request_timeout_ms: 1500,
            urgent_ms: 700,
            second_ask_ms: 500,
            source_copies: 2,
            seed: 1,
        }
    }
}

/// A message between neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Msg {
    /// I hold chunk `seq`.
    Have(Seq),
    /// Send me chunk `seq`.
    Want(Seq),
    /// I do not hold chunk `seq` (or will not send it to anyone again).
    Lack(Seq),
    /// I hold chunk `seq` but cannot send it soon: ask someone else.
    Busy(Seq),
    /// The chunk itself (the transport sends the stored bytes).
    Chunk(Seq),
}

/// What the transport must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send a message; for [`Msg::Chunk`] call [`Mesh::sent`] once its bytes left.
    Send(P, Msg),
    /// Chunk `seq` is due: write it out.
    Play(Seq),
    /// Chunk `seq` did not come in time: it is left out.
    Skip(Seq),
    /// Chunk `seq` is no longer needed: drop its bytes.
    Forget(Seq),
    /// Close the connection to this neighbour (why).
    Drop(P, &'static str),
    /// The last chunk of the broadcast was played (or skipped).
    Ended,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Chunks played (the end marker not counted).
    pub played: u64,
    /// Chunks skipped (missing when due).
    pub skipped: u64,
    /// Chunks received that were new.
    pub received: u64,
    /// Chunks received twice or too late.
    pub wasted: u64,
    /// Chunks handed to the transport.
    pub uploaded: u64,
    /// Requests answered `Lack` or `Busy`.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Peer {
    source: bool,
    /// Chunks it announced (within the window).
    avail: BTreeSet<Seq>,
    /// Our requests to it: seq → when.
    asked: BTreeMap<Seq, u64>,
    /// Its requests to us, queued: seq → when.
    wants: BTreeMap<Seq, u64>,
    /// Chunks handed to the transport for it, not sent yet.
    in_flight: usize,
    strikes: u32,
    /// Not asked before this time.
    pause_until: u64,
}

/// A node of a live channel (see the module documentation). `P` names a neighbour.
#[derive(Debug)]
pub struct Mesh<P: Copy + Ord> {
    cfg: Config,
    source: bool,
    rng: Rng,
    peers: BTreeMap<P, Peer>,
    /// Chunks held: seq → the broadcaster's time.
    held: BTreeMap<Seq, u64>,
    /// The smallest `arrival - time` seen.
    offset: Option<i64>,
    /// Requests out: seq → the neighbours asked.
    asked: BTreeMap<Seq, Vec<(P, u64)>>,
    play_next: Option<Seq>,
    end: Option<Seq>,
    ended: bool,
    uploads: usize,
    /// Copies sent of each chunk (broadcaster).
    copies: BTreeMap<Seq, u32>,
    push_turn: u64,
    actions: Vec<Action<P>>,
    stats: Stats,
}

impl<P: Copy + Ord> Mesh<P> {
    /// A broadcaster.
    pub fn source(cfg: Config) -> Self {
        Self::new(cfg, true)
    }

    /// A viewer.
    pub fn viewer(cfg: Config) -> Self {
        Self::new(cfg, false)
    }

    fn new(cfg: Config, source: bool) -> Self {
        Mesh {
            rng: Rng::new(cfg.seed),
            cfg,
            source,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            offset: None,
            asked: BTreeMap::new(),
            play_next: None,
            end: None,
            ended: false,
            uploads: 0,
            copies: BTreeMap::new(),
            push_turn: 0,
            actions: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Whether this node is the broadcaster.
    pub fn is_source(&self) -> bool {
        self.source
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next chunk to play (none before the first chunk came).
    pub fn play_next(&self) -> Option<Seq> {
        self.play_next
    }

    /// The newest chunk held.
    pub fn newest(&self) -> Option<Seq> {
        self.held.last_key_value().map(|(s, _)| *s)
    }

    /// Whether chunk `seq` is held.
    pub fn holds(&self, seq: Seq) -> bool {
        self.held.contains_key(&seq)
    }

    /// The last chunk of the broadcast, once known.
    pub fn end(&self) -> Option<Seq> {
        self.end
    }

    /// Whether every neighbour announced the last chunk (a broadcaster may stop then).
    pub fn all_have_end(&self) -> bool {
        self.end.is_some_and(|e| self.peers.values().all(|p| p.avail.contains(&e)))
    }

    /// Neighbours now.
    pub fn neighbours(&self) -> usize {
        self.peers.len()
    }

    /// Takes the actions decided so far.
    pub fn take_actions(&mut self) -> Vec<Action<P>> {
        std::mem::take(&mut self.actions)
    }

    /// A neighbour connected; `source` if it says it is the broadcaster.
    pub fn connected(&mut self, peer: P, source: bool) {
        self.peers.insert(peer, Peer { source, ..Peer::default() });
        for &seq in self.held.keys() {
            self.actions.push(Action::Send(peer, Msg::Have(seq)));
        }
    }

    /// A neighbour went away.
    pub fn disconnected(&mut self, peer: P) {
        let Some(p) = self.peers.remove(&peer) else { return };
        self.uploads = self.uploads.saturating_sub(p.in_flight);
        for seq in p.asked.keys() {
            if let Some(list) = self.asked.get_mut(seq) {
                list.retain(|(q, _)| *q != peer);
                if list.is_empty() {
                    self.asked.remove(seq);
                }
            }
        }
    }

    /// A message from a neighbour (chunks come through [`Mesh::chunk`]).
    pub fn received(&mut self, peer: P, msg: Msg, now: u64) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        match msg {
            Msg::Have(seq) => {
                let floor = self.floor();
                let ceiling = self.newest().map(|n| n.saturating_add(self.cfg.ahead));
                if seq < floor || ceiling.is_some_and(|c| seq > c) {
                    return;
                }
                let limit = (self.cfg.keep + self.cfg.ahead) as usize;
                let Some(p) = self.peers.get_mut(&peer) else { return };
                p.avail.insert(seq);
                while p.avail.len() > limit {
                    p.avail.pop_first();
                }
            }
            Msg::Want(seq) => self.want(peer, seq, now),
            Msg::Lack(seq) => {
                self.unask(peer, seq);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.avail.remove(&seq);
                }
            }
            Msg::Busy(seq) => {
                self.unask(peer, seq);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.pause_until = now + self.cfg.pause_ms;
                }
            }
            Msg::Chunk(_) => {}
        }
    }

    /// Chunk `seq` (cut at `time` by the broadcaster; `end` if it closes the broadcast) came
    /// from `peer` and its signature checked.
    pub fn chunk(&mut self, peer: P, seq: Seq, time: u64, end: bool, now: u64) {
        self.unask_all(seq);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.avail.insert(seq);
            p.strikes = 0;
        }
        let reach = self.cfg.keep + self.cfg.ahead;
        if self.held.contains_key(&seq)
            || seq < self.floor()
            || self.play_next.is_some_and(|p| seq < p || seq > p.saturating_add(reach))
        {
            self.stats.wasted += 1;
            return;
        }
        self.stats.received += 1;
        // The clock is set once, by the first chunk: moving deadlines earlier later on would
        // skip chunks the player does not need yet (its own clock started with the first).
        self.offset.get_or_insert(now as i64 - time as i64);
        self.store(seq, time, end, Some(peer));
        if self.play_next.is_none() {
            // Joining: start at the oldest chunk still due far enough ahead.
            let back = self.cfg.lag_ms.saturating_sub(self.cfg.join_margin_ms) / self.cfg.chunk_ms.max(1);
            let start = seq.saturating_sub(back).max(self.floor());
            self.play_next = Some(start);
        }
    }

    /// The broadcaster cut chunk `seq` at `time` (`end`: the last one).
    pub fn cut(&mut self, seq: Seq, time: u64, end: bool) {
        // Push it to one neighbour, the least loaded, taking turns among equals.
        let n = self.peers.len() as u64;
        if n == 0 {
            self.store(seq, time, end, None);
            return;
        }
        self.push_turn = self.push_turn.wrapping_add(1);
        let turn = self.push_turn;
        let target = self
            .peers
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, p))| (p.in_flight + p.wants.len(), (*i as u64 + n - turn % n) % n))
            .map(|(_, (k, _))| *k);
        if let Some(p) = target.and_then(|to| self.peers.get_mut(&to)) {
            p.avail.insert(seq);
        }
        self.store(seq, time, end, None);
        if let Some(to) = target {
            self.send_chunk(to, seq);
        }
    }

    /// The bytes of chunk `seq` for `peer` left (or were given up).
    pub fn sent(&mut self, peer: P, seq: Seq, now: u64) {
        let _ = seq;
        if let Some(p) = self.peers.get_mut(&peer)
            && p.in_flight > 0
        {
            p.in_flight -= 1;
            self.uploads = self.uploads.saturating_sub(1);
        }
        self.pump(now);
    }

    /// Time passes: requests time out, new ones go out, due chunks are played or skipped.
    pub fn tick(&mut self, now: u64) {
        self.expire(now);
        self.pump(now);
        self.schedule(now);
        self.advance(now);
    }

    /// The deadline of chunk `seq` (none before the clock is known).
    pub fn deadline(&self, seq: Seq) -> Option<u64> {
        let offset = self.offset?;
        let time = match self.held.get(&seq) {
            Some(&t) => t,
            None => {
                let below = self.held.range(..seq).next_back().map(|(s, t)| t + (seq - s) * self.cfg.chunk_ms);
                let above = self.held.range(seq..).next().map(|(s, t)| t.saturating_sub((s - seq) * self.cfg.chunk_ms));
                match (below, above) {
                    (Some(b), Some(a)) => b.min(a.max(b.saturating_sub(self.cfg.chunk_ms))),
                    (Some(b), None) => b,
                    (None, Some(a)) => a,
                    (None, None) => return None,
                }
            }
        };
        Some((time as i64 + offset + self.cfg.lag_ms as i64).max(0) as u64)
    }

    fn floor(&self) -> Seq {
        self.newest().map_or(0, |n| n.saturating_sub(self.cfg.keep))
    }

    fn store(&mut self, seq: Seq, time: u64, end: bool, from: Option<P>) {
        self.held.insert(seq, time);
        if end {
            self.end = Some(seq);
        }
        for (&k, p) in &mut self.peers {
            if Some(k) != from && !p.avail.contains(&seq) {
                self.actions.push(Action::Send(k, Msg::Have(seq)));
            }
        }
        // Forget what fell out of the window (and was played already).
        let floor = self.floor();
        while let Some((&old, _)) = self.held.first_key_value() {
            if old >= floor || self.play_next.is_some_and(|p| old >= p) && !self.source {
                break;
            }
            self.held.remove(&old);
            self.copies.remove(&old);
            self.actions.push(Action::Forget(old));
        }
        for p in self.peers.values_mut() {
            while p.avail.first().is_some_and(|&s| s < floor) {
                p.avail.pop_first();
            }
        }
    }

    fn unask(&mut self, peer: P, seq: Seq) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asked.remove(&seq);
        }
        if let Some(list) = self.asked.get_mut(&seq) {
            list.retain(|(q, _)| *q != peer);
            if list.is_empty() {
                self.asked.remove(&seq);
            }
        }
    }

    fn unask_all(&mut self, seq: Seq) {
        for (q, _) in self.asked.remove(&seq).unwrap_or_default() {
            if let Some(p) = self.peers.get_mut(&q) {
                p.asked.remove(&seq);
            }
        }
    }

    fn want(&mut self, peer: P, seq: Seq, now: u64) {
        let lack = !self.held.contains_key(&seq)
            || self.source && self.copies.get(&seq).copied().unwrap_or(0) >= self.cfg.source_copies;
        let queued: usize = self.peers.values().map(|p| p.wants.len()).sum();
        let busy =
            queued >= self.cfg.max_queued || self.peers.get(&peer).is_none_or(|p| p.wants.len() >= self.cfg.max_wants);
        if lack || busy {
            self.stats.refused += 1;
            self.actions.push(Action::Send(peer, if lack { Msg::Lack(seq) } else { Msg::Busy(seq) }));
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.wants.insert(seq, now);
        }
        self.pump(now);
    }

    fn send_chunk(&mut self, to: P, seq: Seq) {
        let Some(p) = self.peers.get_mut(&to) else { return };
        p.in_flight += 1;
        p.avail.insert(seq);
        self.uploads += 1;
        self.stats.uploaded += 1;
        *self.copies.entry(seq).or_insert(0) += 1;
        self.actions.push(Action::Send(to, Msg::Chunk(seq)));
    }

    /// Hands queued requests to the transport, lowest sequence number first.
    fn pump(&mut self, now: u64) {
        while self.uploads < self.cfg.max_uploads {
            let mut best: Option<(Seq, P)> = None;
            let timeout = self.cfg.request_timeout_ms;
            let mut stale = Vec::new();
            for (&k, p) in &mut self.peers {
                while let Some((&seq, &at)) = p.wants.first_key_value() {
                    if now.saturating_sub(at) > timeout || !self.held.contains_key(&seq) {
                        p.wants.pop_first();
                        stale.push((k, seq));
                        continue;
                    }
                    if best.is_none_or(|(s, _)| seq < s) {
                        best = Some((seq, k));
                    }
                    break;
                }
            }
            for (k, seq) in stale {
                if !self.held.contains_key(&seq) {
                    self.actions.push(Action::Send(k, Msg::Lack(seq)));
                }
            }
            let Some((seq, to)) = best else { break };
            if let Some(p) = self.peers.get_mut(&to) {
                p.wants.remove(&seq);
            }
            self.send_chunk(to, seq);
        }
    }

    fn expire(&mut self, now: u64) {
        let timeout = self.cfg.request_timeout_ms;
        let mut late = Vec::new();
        for (&seq, list) in &self.asked {
            for &(q, at) in list {
                if now.saturating_sub(at) > timeout {
                    late.push((q, seq));
                }
            }
        }
        for (q, seq) in late {
            self.unask(q, seq);
            if let Some(p) = self.peers.get_mut(&q) {
                p.pause_until = now + self.cfg.pause_ms;
                p.strikes += 1;
                if p.strikes >= MAX_STRIKES {
                    self.actions.push(Action::Drop(q, "announced chunks it did not send"));
                }
            }
        }
    }

    /// The newest chunk announced, believed within the window.
    fn newest_known(&self) -> Option<Seq> {
        let announced = self.peers.values().filter_map(|p| p.avail.last().copied()).max();
        match (self.newest(), announced) {
            (Some(n), Some(a)) => Some(n.max(a.min(n + self.cfg.ahead))),
            (n, a) => n.or(a),
        }
    }

    fn ask(&mut self, peer: P, seq: Seq, now: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asked.insert(seq, now);
        }
        self.asked.entry(seq).or_default().push((peer, now));
        self.actions.push(Action::Send(peer, Msg::Want(seq)));
    }

    /// Picks the holder of `seq` to ask: not asked for it yet, with room, not the broadcaster
    /// unless `last_resort`; fewest requests outstanding, ties at random.
    fn holder(&mut self, seq: Seq, last_resort: bool, now: u64) -> Option<P> {
        let asked = self.asked.get(&seq);
        let mut best: Option<(usize, u64, P)> = None;
        let mut source = None;
        for (&k, p) in &self.peers {
            if !p.avail.contains(&seq)
                || p.asked.len() >= self.cfg.max_asked
                || p.pause_until > now
                || asked.is_some_and(|l| l.iter().any(|(q, _)| *q == k))
            {
                continue;
            }
            if p.source {
                source = Some(k);
                continue;
            }
            let draw = self.rng.next_u64();
            if best.is_none_or(|(n, d, _)| (p.asked.len(), draw) < (n, d)) {
                best = Some((p.asked.len(), draw, k));
            }
        }
        best.map(|(_, _, k)| k).or(if last_resort { source } else { None })
    }

    fn schedule(&mut self, now: u64) {
        if self.source {
            return;
        }
        let Some(newest) = self.newest_known() else { return };
        let Some(next) = self.play_next else {
            // Joining: fetch one recent chunk to learn the clock.
            if !self.asked.is_empty() {
                return;
            }
            let mut tops: Vec<Seq> = self.peers.values().filter_map(|p| p.avail.last().copied()).collect();
            tops.sort_unstable();
            let target = if tops.len() >= 2 { tops[tops.len() - 2] } else { newest };
            if let Some(peer) = self.holder(target, true, now) {
                self.ask(peer, target, now);
            }
            return;
        };
        let last = newest.min(next.saturating_add(self.cfg.keep + self.cfg.ahead));
        let mut wanted: Vec<(u64, u64, Seq)> = Vec::new();
        for seq in next..=last {
            if self.held.contains_key(&seq) {
                continue;
            }
            let Some(due) = self.deadline(seq) else { continue };
            if due <= now {
                continue;
            }
            let holders = self.peers.values().filter(|p| p.avail.contains(&seq)).count() as u64;
            if holders == 0 {
                continue;
            }
            let urgent = due - now < self.cfg.urgent_ms;
            match self.asked.get(&seq) {
                None => {}
                Some(list) if urgent && list.len() == 1 && now.saturating_sub(list[0].1) >= self.cfg.second_ask_ms => {}
                Some(_) => continue,
            }
            wanted.push(if urgent { (0, seq, seq) } else { (1, holders, seq) });
        }
        wanted.sort_unstable();
        for (class, _, seq) in wanted {
            let urgent = class == 0;
            if let Some(peer) = self.holder(seq, urgent, now) {
                self.ask(peer, seq, now);
            }
        }
    }

    fn advance(&mut self, now: u64) {
        while let Some(next) = self.play_next {
            if self.ended || self.end.is_some_and(|e| next > e) {
                break;
            }
            let Some(due) = self.deadline(next) else { break };
            if self.held.contains_key(&next) {
                if now + self.cfg.play_lead_ms < due {
                    break;
                }
                // The end marker closes the broadcast; it is not one of its chunks of data.
                if self.end != Some(next) {
                    self.stats.played += 1;
                }
                self.actions.push(Action::Play(next));
            } else if now >= due && self.newest().is_some_and(|n| n > next) {
                // Left out only once a later chunk proves it existed; before the first chunk
                // played the start just moves on (playback has not begun: nothing stalls).
                if self.stats.played > 0 {
                    self.stats.skipped += 1;
                    self.actions.push(Action::Skip(next));
                }
            } else {
                break;
            }
            self.play_next = Some(next + 1);
            if self.end == Some(next) {
                self.ended = true;
                self.actions.push(Action::Ended);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            chunk_ms: 250,
            lag_ms: 2000,
            join_margin_ms: 1000,
            urgent_ms: 1000,
            second_ask_ms: 400,
            ..Config::default()
        }
    }

    fn sends(actions: &[Action<u32>]) -> Vec<(u32, Msg)> {
        actions.iter().filter_map(|a| if let Action::Send(p, m) = a { Some((*p, *m)) } else { None }).collect()
    }

    #[test]
    fn the_broadcaster_pushes_each_chunk_once_and_serves_at_most_its_copies() {
        let mut src = Mesh::<u32>::source(cfg());
        for p in 1..=4 {
            src.connected(p, false);
        }
        let mut pushed = Vec::new();
        for seq in 0..8 {
            src.cut(seq, 1000 + seq * 250, false);
            let out = sends(&src.take_actions());
            let chunks: Vec<_> = out.iter().filter(|(_, m)| matches!(m, Msg::Chunk(_))).collect();
            assert_eq!(chunks.len(), 1, "one push per chunk: {out:?}");
            pushed.push(chunks[0].0);
            assert_eq!(out.iter().filter(|(_, m)| *m == Msg::Have(seq)).count(), 3, "announced to the others");
            src.sent(chunks[0].0, seq, 0);
        }
        pushed.sort_unstable();
        assert_eq!(pushed, vec![1, 1, 2, 2, 3, 3, 4, 4], "pushes take turns");
        // One more copy of chunk 5 on request, then Lack.
        src.received(1, Msg::Want(5), 10);
        src.received(2, Msg::Want(5), 10);
        let out = sends(&src.take_actions());
        assert!(out.contains(&(2, Msg::Lack(5))) || out.contains(&(1, Msg::Lack(5))), "{out:?}");
        assert_eq!(out.iter().filter(|(_, m)| *m == Msg::Chunk(5)).count(), 1, "{out:?}");
    }

    #[test]
    fn a_viewer_joins_at_the_edge_plays_in_order_and_skips_what_is_late() {
        let mut v = Mesh::<u32>::viewer(cfg());
        v.connected(1, false);
        v.connected(2, false);
        for seq in 0..=40 {
            v.received(1, Msg::Have(seq), 0);
        }
        for seq in 0..=39 {
            v.received(2, Msg::Have(seq), 0);
        }
        let t0 = 10_000 + 40 * 250; // the broadcaster's clock for chunk 40
        v.tick(t0 + 50);
        let wants = sends(&v.take_actions());
        assert_eq!(
            wants.iter().filter(|(_, m)| matches!(m, Msg::Want(_))).count(),
            1,
            "one chunk to learn the clock: {wants:?}"
        );
        assert!(wants.iter().any(|(_, m)| *m == Msg::Want(39)), "the second newest: {wants:?}");
        v.chunk(1, 39, 10_000 + 39 * 250, false, t0 + 100);
        // lag 2 s, margin 1 s: starts 4 chunks back.
        assert_eq!(v.play_next(), Some(35));
        v.tick(t0 + 110);
        let wants: Vec<_> = sends(&v.take_actions())
            .into_iter()
            .filter_map(|(_, m)| if let Msg::Want(s) = m { Some(s) } else { None })
            .collect();
        for s in [35, 36, 37, 38, 40] {
            assert!(wants.contains(&s), "{s} asked: {wants:?}");
        }
        assert!(!wants.iter().any(|&s| s < 35), "nothing before the start: {wants:?}");
        let clock = |s: u64| 10_000 + s * 250;
        for s in [35, 37, 38] {
            v.chunk(2, s, clock(s), false, t0 + 200);
        }
        // 35 due at its time + offset (350) + 2 s.
        v.tick(clock(35) + 350 + 2000 - 250);
        assert_eq!(v.take_actions().iter().filter(|a| matches!(a, Action::Play(_))).count(), 1);
        // 36 never came: skipped when due; 37 and 38 play after it.
        v.tick(clock(38) + 350 + 2000);
        let acts = v.take_actions();
        let played: Vec<_> = acts.iter().filter(|a| matches!(a, Action::Play(_) | Action::Skip(_))).cloned().collect();
        assert_eq!(played, vec![Action::Skip(36), Action::Play(37), Action::Play(38), Action::Play(39)], "{acts:?}");
        assert_eq!(v.stats().skipped, 1);
        assert_eq!(v.stats().played, 4);
        // Chunk 40 closes the broadcast: played and ended, but not counted as a chunk of data.
        v.chunk(1, 40, clock(40), true, t0 + 300);
        v.tick(clock(40) + 350 + 2000);
        let acts = v.take_actions();
        assert!(acts.contains(&Action::Play(40)) && acts.contains(&Action::Ended), "{acts:?}");
        assert_eq!(v.stats().played, 4, "the end marker is not a chunk played");
    }

    #[test]
    fn replays_duplicates_and_far_announcements_cost_nothing() {
        let mut v = Mesh::<u32>::viewer(cfg());
        v.connected(1, false);
        v.chunk(1, 1000, 5000, false, 5100);
        v.chunk(1, 1000, 5000, false, 5200);
        v.chunk(1, 1000 - cfg().keep - 1, 100, false, 5200);
        assert_eq!(v.stats().received, 1);
        assert_eq!(v.stats().wasted, 2, "a duplicate and a replay from before the window");
        for seq in 0..100_000 {
            v.received(1, Msg::Have(seq), 5300);
        }
        let p = &v.peers[&1];
        assert!(p.avail.len() <= (cfg().keep + cfg().ahead) as usize, "{}", p.avail.len());
        assert!(p.avail.last().is_some_and(|&s| s <= 1000 + cfg().ahead));
        // The clock offset is the smallest delay seen; replays did not move it.
        assert_eq!(v.deadline(1000), Some(5000 + 100 + 2000));
    }

    #[test]
    fn requests_time_out_and_a_late_chunk_is_asked_of_a_second_holder() {
        let mut v = Mesh::<u32>::viewer(cfg());
        v.connected(1, false);
        v.connected(2, false);
        v.chunk(1, 10, 10_000, false, 10_000);
        v.received(1, Msg::Have(12), 10_000);
        v.received(2, Msg::Have(12), 10_000);
        v.take_actions();
        // 12 due at 10_000 + 500 + 2000: not urgent at 10_100.
        v.tick(10_100);
        let first: Vec<_> = sends(&v.take_actions()).into_iter().filter(|(_, m)| *m == Msg::Want(12)).collect();
        assert_eq!(first.len(), 1);
        // Urgent (within 1 s of due) and waited 400 ms: the other holder is asked too.
        v.tick(11_600);
        let second: Vec<_> = sends(&v.take_actions()).into_iter().filter(|(_, m)| *m == Msg::Want(12)).collect();
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].0, first[0].0);
        v.chunk(second[0].0, 12, 10_500, false, 11_700);
        assert!(v.holds(12));
    }

    #[test]
    fn the_broadcaster_is_asked_only_as_a_last_resort() {
        let mut v = Mesh::<u32>::viewer(cfg());
        v.connected(1, true); // the broadcaster
        v.connected(2, false);
        v.chunk(2, 10, 10_000, false, 10_000);
        for seq in 11..=14 {
            v.received(1, Msg::Have(seq), 10_000);
        }
        v.received(2, Msg::Have(11), 10_000);
        v.take_actions();
        v.tick(10_050);
        let wants = sends(&v.take_actions());
        assert!(wants.contains(&(2, Msg::Want(11))), "{wants:?}");
        assert!(!wants.iter().any(|(p, _)| *p == 1), "not the broadcaster while nothing is urgent: {wants:?}");
        // Chunk 12 becomes urgent: only the broadcaster has it.
        v.tick(10_000 + 500 + 2000 - 900);
        let wants = sends(&v.take_actions());
        assert!(wants.contains(&(1, Msg::Want(12))), "{wants:?}");
    }
}
