//! Readers' deadlines (streaming): the pieces they need and by when, a seek's cancels, and the
//! requests that give way to blocks needed sooner (see `Swarm::refill`).

use std::collections::HashSet;
use std::time::Instant;

use shoal_proto::{BlockRange, Message, PieceIndex};

use super::{Action, SEEK_KEEP, Swarm};

/// Rounds of one request per peer after a seek (see `Swarm::refill_striped`).
const STRIPE_ROUNDS: usize = 8;
use crate::PeerKey;

impl Swarm {
    /// Sets the pieces readers need and by when (see [`crate::stream::deadlines`]), replacing
    /// the previous ones: they are requested before any other, from the peers that deliver
    /// fastest, and one that takes clearly longer than pieces usually take from a second peer
    /// too ([`crate::stream::PieceTimes`]). Requests go out at once, so a seek
    /// takes effect without waiting for a tick.
    ///
    /// After a seek (a piece needed now that a connected peer has and no peer was asked for: a
    /// reader jumped, or a new one started), requests already queued at peers for pieces needed
    /// more than `SEEK_KEEP` from now or not at all are cancelled: a peer answers requests in
    /// order, so they would hold up the pieces needed now by as long as the queue lasts (about
    /// a second at the peer's rate). The pieces needed first are then spread over the peers.
    /// (Requests for pieces that lost their deadline otherwise give way one by one to pieces
    /// with one, see `Swarm::refill`.)
    pub fn set_deadlines(&mut self, now: Instant, deadlines: Vec<crate::stream::Urgent>) {
        self.now = self.now.max(now);
        self.deadlines = deadlines;
        self.update_urgent();
        let available = self.picker.availability();
        let seek = self
            .deadlines
            .iter()
            .find(|u| available[u.piece.idx()] > 0 && self.picker.untouched(u.piece))
            .is_some_and(|u| u.deadline <= now);
        if seek {
            let soon = now + SEEK_KEEP;
            let keep: HashSet<PieceIndex> =
                self.deadlines.iter().take_while(|u| u.deadline <= soon).map(|u| u.piece).collect();
            self.cancel_pending(|block| !keep.contains(&block.piece));
            self.refill_striped();
        } else {
            self.refill_all();
        }
        self.ask_for_hidden(Some(now));
    }

    /// Refills every peer one request per round, so that the most urgent pieces are spread
    /// over the peers instead of queued behind one another at the first peer (after a seek, the
    /// pieces a player needs first would otherwise all wait on one peer's pace).
    /// The first [`STRIPE_ROUNDS`] rounds only: beyond them the order matters little, and a
    /// fast peer's queue can hold hundreds of blocks.
    fn refill_striped(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        let sent = |s: &Self| s.actions.len();
        for _ in 0..STRIPE_ROUNDS {
            let before = sent(self);
            for &key in &keys {
                self.refill_to(key, 1);
            }
            if sent(self) == before {
                return;
            }
        }
        self.refill_all();
    }

    /// Cancels the requests outstanding at every peer for the blocks `which` selects; their
    /// blocks can be picked again at once.
    fn cancel_pending(&mut self, which: impl Fn(&BlockRange) -> bool) {
        let cancel: Vec<(PeerKey, Vec<BlockRange>)> = self
            .peers
            .iter()
            .map(|(&peer, p)| (peer, p.pending.iter().filter(|b| which(b)).copied().collect()))
            .collect();
        for (peer, blocks) in cancel {
            self.give_way(peer, &blocks);
        }
    }

    pub(super) fn update_urgent(&mut self) {
        self.deadlines.retain(|u| !self.have.get(u.piece));
        self.rank.clear();
        self.rank.extend(self.deadlines.iter().enumerate().map(|(i, u)| (u.piece, i as u32)));
        self.picker.set_urgent(self.deadlines.iter().map(|u| u.piece).collect());
        let rank = &self.rank;
        self.times.retain(|piece| rank.contains_key(&piece));
        // A piece asked for before it had a deadline is timed from when it got one.
        for u in &self.deadlines {
            if !self.picker.untouched(u.piece) {
                self.times.started(u.piece, self.now);
            }
        }
    }

    /// Cancels the requests for `blocks` outstanding at `peer`; they can be picked again at
    /// once.
    pub(super) fn give_way(&mut self, peer: PeerKey, blocks: &[BlockRange]) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        for &block in blocks {
            p.pending.remove(&block);
            p.remember_cancelled(block);
            self.picker.release(&block);
            if self.picker.untouched(block.piece) {
                self.times.forget(block.piece);
            }
            let msg = Message::Cancel { index: block.piece.get(), begin: block.begin, length: block.length };
            self.actions.push_back(Action::Send { peer, msg });
        }
    }
}
