//! What we ask a peer for: its queue of requests kept at a length that follows its rate,
//! filled with the pieces readers need first ([`crate::stream`]), then by the picker
//! ([`crate::picker`]).

use shoal_proto::{BLOCK_SIZE, BlockRange, Message, PieceIndex};

use super::{Action, STREAM_QUEUE_TIME, Swarm, TAKE_OVER_MARGIN};
use crate::PeerKey;
use crate::picker::Source;

impl Swarm {
    pub(super) fn refill_all(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.refill(key);
        }
    }

    /// Tops up the requests outstanding to a peer.
    pub(super) fn refill(&mut self, peer: PeerKey) {
        self.refill_to(peer, usize::MAX);
    }

    /// Tops up the requests outstanding to a peer with at most `most` new ones (see
    /// `Swarm::refill_striped`).
    pub(super) fn refill_to(&mut self, peer: PeerKey, most: usize) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        if !p.am_interested || p.backoff || (p.peer_choking && p.allowed_fast.is_empty()) {
            return;
        }
        let target = if p.snubbed {
            1
        } else {
            let rate = p.down.bytes_per_sec();
            // Until the first rate sample, the queue grows by one per block received (a slow
            // start), so a fast peer is not held to the minimum for a whole second.
            let by_rate = if rate > 0.0 {
                let queue_time = if self.deadlines.is_empty() {
                    self.config.queue_time
                } else {
                    self.config.queue_time.min(STREAM_QUEUE_TIME)
                };
                (rate * queue_time.as_secs_f64() / BLOCK_SIZE as f64) as usize
            } else {
                self.config.min_queue + (p.down.total() / BLOCK_SIZE as u64) as usize
            };
            let cap = p.reqq.unwrap_or(usize::MAX).min(self.config.max_queue);
            by_rate.clamp(self.config.min_queue.min(cap), cap)
        };
        // Pieces with deadlines first, from peers not far slower than the fastest (a new
        // peer, whose rate is not known yet, counts as fast).
        let fast = !p.snubbed && p.down.bytes_per_sec() * 4.0 >= self.fastest_down;
        let urgent_first = fast && !self.deadlines.is_empty() && self.picker.has_urgent();
        // Beyond the room in the queue, a block needed sooner takes the place of one queued
        // for a piece needed later or not at all: a peer answers in order, so those would hold
        // up what a reader waits for (an initial seed shows a player the pieces it asks for
        // only after the player's first requests went out).
        let rank = |piece: PieceIndex| self.rank.get(&piece).copied().unwrap_or(u32::MAX);
        // Only a block no other peer was asked for displaces one (a copy of an overdue block
        // displacing others would start a chain of cancels, and a seed that already read a
        // cancelled block sends it all the same).
        let room = target.saturating_sub(p.pending.len()).min(most);
        let displaceable = if urgent_first { p.pending.len().min(most - room) } else { 0 };
        if room + displaceable == 0 {
            return;
        }
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        if urgent_first {
            let has = |piece| p.serves(piece);
            let pending = |block: &BlockRange| p.pending.contains(block);
            // A copy of an overdue block only goes to a peer with at most one request queued;
            // behind more it would come no sooner than the first.
            let (times, now, short) = (&self.times, self.now, p.pending.len() <= 1);
            let overdue = |piece| short && times.overdue(piece, now);
            self.picker.pick_urgent(peer, room, has, pending, overdue, &mut picked);
            if picked.len() == room && displaceable > 0 {
                self.picker.pick_urgent(peer, displaceable, has, pending, |_| false, &mut picked);
            }
        }
        if picked.len() > room {
            // Picked most urgent first; the queued blocks needed last go first.
            let mut queued: Vec<(u32, BlockRange)> = p.pending.iter().map(|b| (rank(b.piece), *b)).collect();
            queued.sort_unstable_by_key(|&(rank, _)| std::cmp::Reverse(rank));
            let mut displaced = Vec::new();
            for (block, &(later, queued)) in picked[room..].iter().zip(&queued) {
                if rank(block.piece) >= later {
                    break;
                }
                displaced.push(queued);
            }
            for block in picked.drain(room + displaced.len()..) {
                self.picker.release(&block);
            }
            self.give_way(peer, &displaced);
        }
        let urgent = picked.len();
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        self.picker.pick(
            peer,
            room.saturating_sub(urgent),
            self.have.count(),
            Source {
                has: |piece| p.serves(piece),
                pending: |block: &BlockRange| p.pending.contains(block),
                // A block moves here only from a peer with a clearly longer queue, so blocks
                // do not bounce between peers that are both nearly idle.
                movable: |from| {
                    self.peers.get(&from).is_some_and(|q| q.pending.len() > p.pending.len() + TAKE_OVER_MARGIN)
                },
                idle: p.pending.is_empty() && !p.snubbed,
            },
            &mut picked,
        );
        if !self.picker.in_endgame() {
            for block in &picked[urgent..] {
                self.take_over(peer, block);
            }
        }
        for block in &picked[..urgent] {
            self.times.started(block.piece, self.now);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            for block in &picked {
                p.pending.insert(*block);
                let msg = Message::Request { index: block.piece.get(), begin: block.begin, length: block.length };
                self.actions.push_back(Action::Send { peer, msg });
            }
        }
        self.scratch = picked;
    }
}
