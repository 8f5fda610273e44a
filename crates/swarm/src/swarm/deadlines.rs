//! Readers' deadlines (streaming): the pieces they need and by when, a seek's cancels, and the
//! requests that give way to blocks needed sooner (see `Swarm::refill`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use shoal_proto::{BLOCK_SIZE, BlockRange, Message, PieceIndex};

use super::{Action, SEEK_KEEP, Swarm};

/// Rounds of one request per peer after a seek (see `Swarm::refill_striped`).
const STRIPE_ROUNDS: usize = 8;
/// Deadlines whose first piece had this many missing pieces before it in the previous ones
/// count as a jump (see `Swarm::set_deadlines`): as pieces arrive out of order, or two readers'
/// pieces trade places, the first moves up a few places.
const JUMP: usize = 4;
/// A peer's first outstanding request counts as barely begun this soon after its last block
/// (see `Swarm::restripe_among`).
const JUST_BEGUN: Duration = Duration::from_millis(50);
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
    /// a second at the peer's rate). After a jump (the piece needed first now had at least
    /// `JUMP` missing pieces before it: a player that read an MP4's head and now reads the
    /// index at its end) every request but those for pieces needed now is cancelled, so the
    /// index is not queued behind the head (four seeds at 67 kB/s: the index came 0.7 s after
    /// it was needed instead of 0.25 s). After either, and for a reader's first deadlines
    /// (the peers' queues were filled by the picker), requests that another peer would
    /// deliver sooner move there ([`Swarm::restripe_among`]) and the pieces needed first are
    /// spread over the peers. (Requests for pieces that lost their deadline otherwise give way
    /// one by one to pieces with one, see `Swarm::refill`.)
    pub fn set_deadlines(&mut self, now: Instant, deadlines: Vec<crate::stream::Urgent>) {
        self.now = self.now.max(now);
        let first = self.deadlines.is_empty();
        // The piece needed first now was far down the list, behind pieces still missing (a
        // player that read an MP4's head asks for the index at its end): the requests queued
        // ahead of it give way.
        let jumped = !first && deadlines.first().is_some_and(|u| u.deadline <= now && self.behind(u.piece) >= JUMP);
        self.deadlines = deadlines;
        self.update_urgent();
        let available = self.picker.availability();
        let seek = self
            .deadlines
            .iter()
            .find(|u| available[u.piece.idx()] > 0 && self.picker.untouched(u.piece))
            .is_some_and(|u| u.deadline <= now);
        if seek || jumped {
            let soon = if seek { now + SEEK_KEEP } else { now };
            let keep: HashSet<PieceIndex> =
                self.deadlines.iter().take_while(|u| u.deadline <= soon).map(|u| u.piece).collect();
            self.cancel_pending(|block| !keep.contains(&block.piece));
        }
        // A reader's first deadlines find the peers' queues filled by the picker, with the
        // pieces it needs anywhere in them.
        if (seek || jumped || first) && !self.deadlines.is_empty() {
            self.restripe_among(None);
            self.refill_striped();
        } else {
            self.refill_all();
        }
        self.ask_for_hidden(Some(now));
    }

    /// How many pieces still missing came before `piece` in the deadlines (all of them if it
    /// had none). O(deadlines).
    fn behind(&self, piece: PieceIndex) -> usize {
        let at = self.deadlines.iter().position(|u| u.piece == piece);
        let before = &self.deadlines[..at.unwrap_or(self.deadlines.len())];
        let missing = before.iter().filter(|u| !self.have.get(u.piece)).count();
        if at.is_none() { missing.max(JUMP) } else { missing }
    }

    /// Refills the peers one request at a time, each to the peer where it comes soonest: the
    /// fewest bytes ahead of it ([`queue_ahead`] when the striping began, plus the requests it
    /// was given since; ties: the lowest key), so that the most urgent pieces are spread over
    /// the peers instead of queued behind one another at the first peer (after a seek, the
    /// pieces a player needs first would otherwise all wait on one peer's pace), and a peer
    /// with an empty queue is given one before any other is given a second. (Counting the
    /// queue as it grows would not do: a request that takes the place of one for a piece
    /// needed later leaves its length as it was, and after a seek one peer was given the
    /// first three pieces.) [`STRIPE_ROUNDS`] requests per peer at most: beyond them the order
    /// matters little, and a fast peer's queue can hold hundreds of blocks. O(peers²) per
    /// round.
    fn refill_striped(&mut self) {
        // (peer, bytes ahead of its next request, requests given)
        let mut open: Vec<(PeerKey, u64, usize)> =
            self.peers.iter().map(|(&key, p)| (key, queue_ahead(p), 0)).collect();
        while let Some(at) = (0..open.len()).min_by_key(|&i| open[i].1) {
            let before = self.actions.len();
            self.refill_to(open[at].0, 1);
            let given: u64 = self.actions.range(before..).filter_map(requested).sum();
            open[at].1 += given;
            open[at].2 += 1;
            if given == 0 || open[at].2 == STRIPE_ROUNDS {
                open.remove(at);
            }
        }
        self.refill_all();
    }

    /// A peer unchoked us or announced pieces (`piece`: the one it announced): its requests
    /// are topped up. While readers wait for pieces, a peer that has sent no block yet and can
    /// now serve one of them is instead topped up at the next `poll_action`, together with the
    /// others that came in the same batch of messages, and the requests for those pieces are
    /// spread again if that helps ([`Swarm::restripe`]). O(1) but for the top-up.
    pub(super) fn source_changed(&mut self, peer: PeerKey, piece: Option<PieceIndex>) {
        let urgent = !self.deadlines.is_empty() && piece.is_none_or(|piece| self.rank.contains_key(&piece));
        if let Some(p) = self.peers.get_mut(&peer)
            && urgent
            && !p.peer_choking
            && !p.snubbed
            && p.down.total() == 0
            && (p.restripe_due || p.restripes_left > 0)
        {
            p.restripe_due = true;
            self.restripe_due = true;
        } else {
            self.refill(peer);
        }
    }

    /// New peers (none has sent a block yet) became able to serve pieces readers wait for:
    /// requests for such pieces queued behind others at other peers are spread again
    /// ([`Swarm::restripe_among`]), else the new peers are topped up as usual. A peer
    /// triggers this at most `MAX_RESTRIPES` times.
    pub(super) fn restripe(&mut self) {
        let mut fresh: Vec<PeerKey> = Vec::new();
        for (&key, p) in self.peers.iter_mut().filter(|(_, p)| p.restripe_due) {
            p.restripe_due = false;
            p.restripes_left = p.restripes_left.saturating_sub(1);
            fresh.push(key);
        }
        if self.restripe_among(Some(&fresh)) {
            self.refill_striped();
        } else {
            for key in fresh {
                self.refill(key);
            }
        }
    }

    /// Spreads the requests for the pieces readers need first again when another peer (of
    /// `takers`, or any) would deliver one of them sooner than the peer it is queued at. A peer
    /// answers in order, so a block queued at a peer comes after the bytes of the blocks ahead
    /// of it (and a block more once the peer has sent us one, see [`queue_ahead`]), and a peer
    /// that unchoked us, has the piece and fewer bytes ahead would send it sooner (rates are
    /// taken as equal: this is for the start, where none is known yet, and for seeks). Then every such request is
    /// cancelled but each peer's first (the block it is sending; a peer that has sent us
    /// blocks is taken to have barely begun it within `JUST_BEGUN` of its last one, and it is
    /// cancelled too), and the caller spreads them again in order ([`Swarm::refill_striped`]):
    /// moving only the blocks that would come sooner elsewhere left the others queued behind
    /// later ones, and one start in two had a piece of the head one round late. At the start,
    /// the seeds unchoke us a moment apart and the first was asked for the first several
    /// pieces of the head, which then came one after another at its pace while the others
    /// sent later pieces (four seeds at 67 kB/s, 16 KiB pieces: the seventh piece a player
    /// needed came after 0.73 s instead of 0.25 s). Only the pieces a striping reaches count.
    /// Returns whether it cancelled any. Costs a pass over those requests times the peers.
    fn restripe_among(&mut self, takers: Option<&[PeerKey]>) -> bool {
        let reach = (STRIPE_ROUNDS * self.peers.len()) as u32;
        let serves = |p: &crate::peer::Peer, piece: PieceIndex| !p.snubbed && p.serves(piece);
        let aheads: HashMap<PeerKey, u64> = self.peers.iter().map(|(&k, q)| (k, queue_ahead(q))).collect();
        let mut movable: Vec<(PeerKey, Vec<BlockRange>)> = Vec::new();
        let mut helps = false;
        for (&key, p) in &self.peers {
            let mut urgent: Vec<(u32, BlockRange)> = p
                .pending
                .iter()
                .filter_map(|b| self.rank.get(&b.piece).filter(|&&r| r < reach).map(|&r| (r, *b)))
                .collect();
            urgent.sort_unstable_by_key(|&(r, b)| (r, b.begin));
            let sent = p.down.total() > 0;
            let stays = usize::from(!sent || self.now.saturating_duration_since(p.last_block) >= JUST_BEGUN);
            let sooner = |ahead: u64, piece: PieceIndex| {
                let other = |(&k, q): (&PeerKey, &crate::peer::Peer)| {
                    k != key && aheads.get(&k).is_some_and(|&a| a < ahead) && serves(q, piece)
                };
                match takers {
                    Some(takers) => takers.iter().any(|k| self.peers.get_key_value(k).is_some_and(other)),
                    None => self.peers.iter().any(other),
                }
            };
            // Bytes ahead of each block, in the order the peer sends them.
            let mut ahead = sending(p);
            for (_, b) in urgent.iter().take(stays) {
                ahead += u64::from(b.length);
            }
            let blocks: Vec<BlockRange> = urgent.iter().skip(stays).map(|&(_, b)| b).collect();
            for b in &blocks {
                helps = helps || sooner(ahead, b.piece);
                ahead += u64::from(b.length);
            }
            if !blocks.is_empty() {
                movable.push((key, blocks));
            }
        }
        if !helps {
            return false;
        }
        for (key, blocks) in movable {
            self.give_way(key, &blocks);
        }
        true
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

/// How many bytes a request sent to the peer now waits for (rates taken as equal): its
/// outstanding requests, plus a block once it has sent us one. A peer that has sent nothing
/// yet has its upload allowance unspent (a capped seed sends its first block at once, then one
/// per block's time at its cap), so a first request to it comes a block's time sooner than
/// one to a peer already sending (four capped seeds: the head's seventh piece came in the third
/// round instead of the second). Bytes, not requests: a peer sending a file's short last piece
/// sends its next one that much sooner (four capped seeds sending an MP4's index at its end,
/// the first piece of the head after it came 0.1 s sooner from the one sending the last
/// piece, and the player no longer ran dry right after its first frame). O(requests queued).
fn queue_ahead(p: &crate::peer::Peer) -> u64 {
    p.pending.iter().map(|b| u64::from(b.length)).sum::<u64>() + sending(p)
}

/// The block's time a peer that has sent us one spends before its next: its upload allowance
/// is spent (see [`queue_ahead`]).
fn sending(p: &crate::peer::Peer) -> u64 {
    if p.down.total() > 0 { BLOCK_SIZE as u64 } else { 0 }
}

/// The bytes a request asks for, if `action` sends one.
fn requested(action: &Action) -> Option<u64> {
    match action {
        Action::Send { msg: Message::Request { length, .. }, .. } => Some(u64::from(*length)),
        _ => None,
    }
}
