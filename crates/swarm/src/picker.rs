//! Piece and block selection: which blocks to request from which peer.
//!
//! Policy, in order of precedence for each request slot a peer has free:
//! 1. blocks of pieces already in progress (so partial pieces finish and can be verified and
//!    shared quickly);
//! 2. a new piece the peer has: high-priority pieces (from file priorities) before the others,
//!    and among equals the rarest one among peers we know, ties broken at random; while we hold
//!    fewer than [`RANDOM_FIRST`] pieces, a random one instead (high priority still first), so
//!    a new peer quickly has something to trade;
//! 3. blocks already requested from other peers. In endgame (once no piece is left unstarted)
//!    any of them, each block from at most [`ENDGAME_DUPLICATES`] peers at once (the first copy
//!    to arrive wins and the others are cancelled), or [`ENDGAME_IDLE_DUPLICATES`] when the
//!    peer asking has nothing else outstanding: the last blocks are then never left waiting
//!    on two slow peers while a fast one idles. Before that, only when steps 1 and 2 gave
//!    the peer nothing: at most [`BUSY_PICKS`] blocks moved from peers the caller finds busier
//!    (it cancels them there), each piece's last blocks first: those were asked for last, so
//!    they wait longest there and are the least likely to be on their way already.
//!
//! In sequential mode (for files read while they download) step 2 takes the first missing
//! piece in index order instead, high-priority ones still first.
//!
//! Before all of that, [`Picker::pick_urgent`] serves the pieces with deadlines (streaming, see
//! [`crate::stream`]) in deadline order, to the peers the caller finds fast enough: their open
//! blocks, then, for a piece the caller says timed out (it has taken clearly longer than
//! pieces usually take), blocks already requested elsewhere (each from at most
//! [`ENDGAME_DUPLICATES`] peers, never twice from one).
//!
//! A piece that failed verification becomes *suspect*: the next attempt is fetched from one
//! peer only, so a second failure names the peer that sent bad data.

use std::collections::BTreeMap;

use shoal_proto::{BlockRange, Layout, PieceIndex};

use crate::PeerKey;
use crate::rng::Rng;

/// While we hold fewer verified pieces than this, new pieces are picked at random.
pub(crate) const RANDOM_FIRST: u32 = 4;
/// The most peers one block is requested from at once.
pub(crate) const ENDGAME_DUPLICATES: u8 = 2;
/// ...except that in endgame a peer with nothing else outstanding may ask for it too, up to
/// this many peers in all.
pub(crate) const ENDGAME_IDLE_DUPLICATES: u8 = 4;
/// Outside endgame, the most already-requested blocks handed at once to a peer that has
/// nothing new for us.
pub(crate) const BUSY_PICKS: usize = 4;

/// Where a piece stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceState {
    /// Nothing requested yet.
    Missing,
    /// Some blocks requested or received; details in [`Picker::partials`].
    Partial,
    /// Every block received and handed to storage; waiting for the hash check.
    Verifying,
    /// Verified.
    Have,
    /// Not wanted by the user (file skipped).
    Skipped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Open,
    /// Requested from `count` peers, most recently from `from` (outside endgame and the copies
    /// of an overdue piece with a deadline the count is one once a refill is over, so `from`
    /// is where the block is queued).
    Requested {
        count: u8,
        from: PeerKey,
    },
    /// Received from this peer.
    Received(PeerKey),
}

/// A piece in progress. Invariant: `open` counts `Slot::Open` entries and `received` counts
/// `Slot::Received` entries of `blocks`.
#[derive(Debug)]
pub(crate) struct Partial {
    blocks: Vec<Slot>,
    open: u32,
    received: u32,
    /// Peers that sent at least one accepted block of this piece.
    pub(crate) contributors: Vec<PeerKey>,
    /// For a suspect piece, the one peer allowed to fetch it.
    exclusive: Option<PeerKey>,
}

/// Outcome of accepting a block.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// We already had this block (an endgame duplicate); drop the data.
    Duplicate,
    /// New block; `complete` when it was the piece's last one, `shared` when it was asked of
    /// more than one peer (the other requests are now wasted).
    New { complete: bool, shared: bool },
}

/// What the picker needs to know about the peer it picks for.
pub(crate) struct Source<H, P, M> {
    /// Which pieces the peer has (and, if it chokes us, allows us to fetch).
    pub(crate) has: H,
    /// Which blocks are already requested from this peer.
    pub(crate) pending: P,
    /// Whether a block queued at the given other peer may be taken from it (outside endgame).
    pub(crate) movable: M,
    /// The peer has no requests outstanding (and is not snubbed).
    pub(crate) idle: bool,
}

/// Per-torrent piece selection state.
#[derive(Debug)]
pub(crate) struct Picker {
    layout: Layout,
    /// Number of connected peers (seeds included) having each piece.
    availability: Vec<u32>,
    /// Pieces whose availability is 0.
    unheld: usize,
    state: Vec<PieceState>,
    /// Pieces that failed verification at least once.
    suspect: Vec<bool>,
    partials: BTreeMap<PieceIndex, Partial>,
    /// Number of pieces in `PieceState::Missing`.
    missing: u32,
    /// High-priority pieces (fetched before the others).
    high: Vec<bool>,
    /// New pieces are chosen in index order instead of rarest first.
    sequential: bool,
    /// Pieces with deadlines, most urgent first.
    urgent: Vec<PieceIndex>,
    /// Breaks ties between equally rare pieces.
    rng: Rng,
}

impl Picker {
    pub(crate) fn new(layout: Layout, have: &crate::Bitfield, seed: u64) -> Self {
        let n = layout.piece_count() as usize;
        let state: Vec<PieceState> =
            layout.pieces().map(|p| if have.get(p) { PieceState::Have } else { PieceState::Missing }).collect();
        let missing = state.iter().filter(|s| **s == PieceState::Missing).count() as u32;
        Self {
            layout,
            availability: vec![0; n],
            unheld: n,
            state,
            suspect: vec![false; n],
            partials: BTreeMap::new(),
            missing,
            high: vec![false; n],
            sequential: false,
            urgent: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Marks a piece high priority (from file priorities): new pieces are chosen among the
    /// high-priority ones first.
    pub(crate) fn set_high(&mut self, piece: PieceIndex, high: bool) {
        self.high[piece.idx()] = high;
    }

    /// Chooses new pieces in index order (`true`) instead of rarest first.
    pub(crate) fn set_sequential(&mut self, sequential: bool) {
        self.sequential = sequential;
    }

    /// Sets the pieces with deadlines, most urgent first.
    pub(crate) fn set_urgent(&mut self, urgent: Vec<PieceIndex>) {
        self.urgent = urgent;
    }

    /// Whether any piece has a deadline.
    pub(crate) fn has_urgent(&self) -> bool {
        self.urgent.iter().any(|&piece| matches!(self.state(piece), PieceState::Missing | PieceState::Partial))
    }

    /// Chooses up to `want` blocks of pieces with deadlines for `peer`, most urgent first (see
    /// the module doc). `has` and `pending` are as in [`Source`]; a piece for which
    /// `timed_out` is true may have its blocks asked of a second peer.
    pub(crate) fn pick_urgent(
        &mut self,
        peer: PeerKey,
        want: usize,
        has: impl Fn(PieceIndex) -> bool,
        pending: impl Fn(&BlockRange) -> bool,
        timed_out: impl Fn(PieceIndex) -> bool,
        out: &mut Vec<BlockRange>,
    ) {
        let start = out.len();
        for i in 0..self.urgent.len() {
            let piece = self.urgent[i];
            let left = want - (out.len() - start);
            if left == 0 {
                return;
            }
            if !has(piece) {
                continue;
            }
            match self.state[piece.idx()] {
                PieceState::Missing => self.start(piece, peer, left, out),
                PieceState::Partial => {
                    let Some(partial) = self.partials.get_mut(&piece) else { continue };
                    if partial.exclusive.is_some_and(|p| p != peer) {
                        continue;
                    }
                    if partial.open > 0 {
                        take_open(&self.layout, peer, piece, partial, left, out);
                    } else if partial.exclusive.is_none() && timed_out(piece) {
                        // Every block asked for and overdue: ask this peer too.
                        for (n, slot) in partial.blocks.iter_mut().enumerate() {
                            if out.len() - start == want {
                                return;
                            }
                            let Slot::Requested { count, from } = *slot else { continue };
                            if count >= ENDGAME_DUPLICATES || from == peer {
                                continue;
                            }
                            let Some(block) = self.layout.block(piece, n as u32) else { continue };
                            if pending(&block) {
                                continue;
                            }
                            *slot = Slot::Requested { count: count + 1, from: peer };
                            out.push(block);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// No block of the piece is asked for or here (it may have been started and released).
    pub(crate) fn untouched(&self, piece: PieceIndex) -> bool {
        match self.state[piece.idx()] {
            PieceState::Missing => true,
            PieceState::Partial => self.partials.get(&piece).is_some_and(|p| p.open as usize == p.blocks.len()),
            _ => false,
        }
    }

    /// The piece failed verification before (its blocks come from one peer only).
    pub(crate) fn is_suspect(&self, piece: PieceIndex) -> bool {
        self.suspect[piece.idx()]
    }

    pub(crate) fn state(&self, piece: PieceIndex) -> PieceState {
        self.state[piece.idx()]
    }

    /// Connected peers having each piece.
    pub(crate) fn availability(&self) -> &[u32] {
        &self.availability
    }

    pub(crate) fn peer_has(&mut self, piece: PieceIndex) {
        let a = &mut self.availability[piece.idx()];
        if *a == 0 {
            self.unheld -= 1;
        }
        *a += 1;
    }

    pub(crate) fn peer_lost(&mut self, piece: PieceIndex) {
        let a = &mut self.availability[piece.idx()];
        if *a == 1 {
            self.unheld += 1;
        }
        *a = a.saturating_sub(1);
    }

    /// Pieces no connected peer has.
    pub(crate) fn unheld(&self) -> usize {
        self.unheld
    }

    /// Marks a piece wanted or not (file priorities). Only pieces not yet started change.
    pub(crate) fn set_wanted(&mut self, piece: PieceIndex, wanted: bool) {
        let s = &mut self.state[piece.idx()];
        match (*s, wanted) {
            (PieceState::Missing, false) => {
                *s = PieceState::Skipped;
                self.missing -= 1;
            }
            (PieceState::Skipped, true) => {
                *s = PieceState::Missing;
                self.missing += 1;
            }
            _ => {}
        }
    }

    /// True when no piece remains unstarted, so duplicate requests are worth sending.
    pub(crate) fn in_endgame(&self) -> bool {
        self.missing == 0
    }

    /// Chooses up to `want` blocks for `peer` (see [`Source`]). Picked blocks are marked
    /// requested.
    pub(crate) fn pick<H, P, M>(
        &mut self,
        peer: PeerKey,
        want: usize,
        have_count: u32,
        source: Source<H, P, M>,
        out: &mut Vec<BlockRange>,
    ) where
        H: Fn(PieceIndex) -> bool,
        P: Fn(&BlockRange) -> bool,
        M: Fn(PeerKey) -> bool,
    {
        let Source { has, pending, movable, idle } = source;
        let start = out.len();
        let done = |out: &Vec<BlockRange>| out.len() - start >= want;
        // 1. Pieces in progress.
        for (&piece, partial) in self.partials.iter_mut() {
            if done(out) {
                return;
            }
            if partial.open == 0 || partial.exclusive.is_some_and(|p| p != peer) || !has(piece) {
                continue;
            }
            take_open(&self.layout, peer, piece, partial, want - (out.len() - start), out);
        }
        // 2. New pieces.
        while !done(out) && self.missing > 0 {
            let Some(piece) = self.choose_new(have_count, &has) else {
                break;
            };
            self.start(piece, peer, want - (out.len() - start), out);
        }
        // 3. Blocks already requested from others: freely in endgame (duplicates, the first
        // copy wins); otherwise a few, and only when this peer has nothing new for us — the
        // caller then moves them here by cancelling them where they were queued.
        let endgame = self.in_endgame();
        let limit = if endgame {
            want
        } else if out.len() == start {
            want.min(BUSY_PICKS)
        } else {
            return;
        };
        // An idle peer in endgame may also ask for blocks already asked of
        // `ENDGAME_DUPLICATES` others (they may be slow peers that take many seconds).
        let passes: &[u8] =
            if endgame && idle { &[ENDGAME_DUPLICATES, ENDGAME_IDLE_DUPLICATES] } else { &[ENDGAME_DUPLICATES] };
        for &most in passes {
            if out.len() - start >= limit {
                return;
            }
            for (&piece, partial) in self.partials.iter_mut() {
                if partial.exclusive.is_some() || !has(piece) {
                    continue;
                }
                for (n, slot) in partial.blocks.iter_mut().enumerate().rev() {
                    if out.len() - start >= limit {
                        return;
                    }
                    let Slot::Requested { count, from } = *slot else {
                        continue;
                    };
                    if count >= most || (!endgame && !movable(from)) {
                        continue;
                    }
                    let Some(block) = self.layout.block(piece, n as u32) else {
                        continue;
                    };
                    if pending(&block) || out[start..].contains(&block) {
                        continue;
                    }
                    *slot = Slot::Requested { count: count + 1, from: peer };
                    out.push(block);
                }
            }
        }
    }

    /// Starts fetching a missing piece: up to `want` of its blocks for `peer`.
    fn start(&mut self, piece: PieceIndex, peer: PeerKey, want: usize, out: &mut Vec<BlockRange>) {
        let blocks = self.layout.block_count(piece) as usize;
        let mut partial = Partial {
            blocks: vec![Slot::Open; blocks],
            open: blocks as u32,
            received: 0,
            contributors: Vec::new(),
            exclusive: self.suspect[piece.idx()].then_some(peer),
        };
        take_open(&self.layout, peer, piece, &mut partial, want, out);
        self.state[piece.idx()] = PieceState::Partial;
        self.missing -= 1;
        self.partials.insert(piece, partial);
    }

    /// Rarest (or, early on, random; or in sequential mode, the first) unstarted piece the
    /// peer has, high-priority pieces first.
    fn choose_new(&mut self, have_count: u32, has: &impl Fn(PieceIndex) -> bool) -> Option<PieceIndex> {
        if self.sequential {
            let mut first_normal = None;
            for piece in self.layout.pieces() {
                if self.state[piece.idx()] != PieceState::Missing || !has(piece) {
                    continue;
                }
                if self.high[piece.idx()] {
                    return Some(piece);
                }
                first_normal = first_normal.or(Some(piece));
            }
            return first_normal;
        }
        let random_first = have_count < RANDOM_FIRST;
        let n = self.layout.piece_count();
        let offset = self.rng.below(n as u64) as u32;
        let mut best: Option<PieceIndex> = None;
        // Ranked by (not high priority, availability): high-priority pieces come first.
        let mut best_avail = (true, u32::MAX);
        let mut ties = 0u64;
        for i in 0..n {
            let piece = PieceIndex::new_unchecked((i + offset) % n);
            if self.state[piece.idx()] != PieceState::Missing || !has(piece) {
                continue;
            }
            let avail = (!self.high[piece.idx()], if random_first { 0 } else { self.availability[piece.idx()] });
            if avail < best_avail {
                best_avail = avail;
                best = Some(piece);
                ties = 1;
            } else if avail == best_avail {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = Some(piece);
                }
            }
        }
        best
    }

    /// A requested block will not come from one of the peers it was asked of (rejected,
    /// cancelled, timed out or the peer left).
    pub(crate) fn release(&mut self, block: &BlockRange) {
        let Some(partial) = self.partials.get_mut(&block.piece) else {
            return;
        };
        let Some(slot) = partial.blocks.get_mut((block.begin / shoal_proto::BLOCK_SIZE) as usize) else {
            return;
        };
        if let Slot::Requested { count, from } = *slot {
            if count <= 1 {
                *slot = Slot::Open;
                partial.open += 1;
            } else {
                *slot = Slot::Requested { count: count - 1, from };
            }
        }
    }

    /// The peer that had exclusive rights on suspect pieces is gone or choked us.
    pub(crate) fn drop_exclusive(&mut self, peer: PeerKey) {
        for partial in self.partials.values_mut() {
            if partial.exclusive == Some(peer) {
                partial.exclusive = None;
            }
        }
    }

    /// Records a received block from `peer`.
    pub(crate) fn accept(&mut self, peer: PeerKey, block: &BlockRange) -> Accepted {
        let Some(partial) = self.partials.get_mut(&block.piece) else {
            return Accepted::Duplicate;
        };
        let Some(slot) = partial.blocks.get_mut((block.begin / shoal_proto::BLOCK_SIZE) as usize) else {
            return Accepted::Duplicate;
        };
        let shared = match *slot {
            Slot::Received(_) => return Accepted::Duplicate,
            Slot::Open => {
                partial.open -= 1;
                false
            }
            Slot::Requested { count, .. } => count > 1,
        };
        *slot = Slot::Received(peer);
        partial.received += 1;
        if !partial.contributors.contains(&peer) {
            partial.contributors.push(peer);
        }
        let complete = partial.received as usize == partial.blocks.len();
        if complete {
            self.state[block.piece.idx()] = PieceState::Verifying;
        }
        Accepted::New { complete, shared }
    }

    /// A piece that failed its hash check is held while the blame is worked out block by
    /// block (BitTorrent v2): it stays out of picking, and the peer each block came from is
    /// returned in block order. `None` when the piece is not complete and waiting for its
    /// check.
    pub(crate) fn hold(&self, piece: PieceIndex) -> Option<Vec<PeerKey>> {
        if self.state[piece.idx()] != PieceState::Verifying {
            return None;
        }
        let partial = self.partials.get(&piece)?;
        partial.blocks.iter().map(|s| if let Slot::Received(from) = s { Some(*from) } else { None }).collect()
    }

    /// A held piece's `bad` blocks (their indices in the piece) are fetched again; the others
    /// are kept. Nothing happens unless the piece is held and every index is in it.
    pub(crate) fn reopen(&mut self, piece: PieceIndex, bad: &[u32]) -> bool {
        if self.state[piece.idx()] != PieceState::Verifying || bad.is_empty() {
            return false;
        }
        let Some(partial) = self.partials.get_mut(&piece) else { return false };
        if bad.iter().any(|&b| b as usize >= partial.blocks.len()) {
            return false;
        }
        for &b in bad {
            if let slot @ Slot::Received(_) = &mut partial.blocks[b as usize] {
                *slot = Slot::Open;
                partial.open += 1;
                partial.received -= 1;
            }
        }
        self.state[piece.idx()] = PieceState::Partial;
        true
    }

    /// The hash check of a piece ended. Returns the peers that contributed to it.
    pub(crate) fn verified(&mut self, piece: PieceIndex, ok: bool) -> Vec<PeerKey> {
        let contributors = self.partials.remove(&piece).map(|p| p.contributors).unwrap_or_default();
        let state = &mut self.state[piece.idx()];
        if ok {
            *state = PieceState::Have;
        } else if *state != PieceState::Have {
            *state = PieceState::Missing;
            self.missing += 1;
            self.suspect[piece.idx()] = true;
        }
        contributors
    }
}

/// Marks up to `want` open blocks of `partial` requested and appends them to `out`.
fn take_open(
    layout: &Layout,
    peer: PeerKey,
    piece: PieceIndex,
    partial: &mut Partial,
    want: usize,
    out: &mut Vec<BlockRange>,
) {
    let mut taken = 0;
    for (n, slot) in partial.blocks.iter_mut().enumerate() {
        if taken == want || partial.open == 0 {
            break;
        }
        if *slot != Slot::Open {
            continue;
        }
        let Some(block) = layout.block(piece, n as u32) else {
            continue;
        };
        *slot = Slot::Requested { count: 1, from: peer };
        partial.open -= 1;
        taken += 1;
        out.push(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bitfield;

    /// A peer that has everything and nothing pending; blocks may move from anywhere.
    fn any() -> Source<impl Fn(PieceIndex) -> bool, impl Fn(&BlockRange) -> bool, impl Fn(PeerKey) -> bool> {
        Source { has: |_| true, pending: |_: &BlockRange| false, movable: |_| true, idle: false }
    }

    fn picker(pieces: u32, piece_len: u32) -> Picker {
        let layout = Layout::new(pieces as u64 * piece_len as u64, piece_len).expect("layout");
        Picker::new(layout, &Bitfield::new(pieces), 7)
    }

    #[test]
    fn rarest_piece_is_picked_first() {
        let mut p = picker(8, 16384);
        for i in 0..8 {
            let piece = PieceIndex::new_unchecked(i);
            for _ in 0..(if i == 5 { 1 } else { 3 }) {
                p.peer_has(piece);
            }
        }
        let mut out = Vec::new();
        p.pick(PeerKey(1), 1, RANDOM_FIRST, any(), &mut out);
        assert_eq!(out[0].piece.get(), 5);
    }

    #[test]
    fn partial_pieces_are_finished_before_new_ones() {
        let mut p = picker(4, 4 * 16384);
        let mut out = Vec::new();
        p.pick(PeerKey(1), 2, 10, any(), &mut out);
        let first = out[0].piece;
        assert_eq!(out[1].piece, first);
        let mut out2 = Vec::new();
        p.pick(PeerKey(2), 2, 10, any(), &mut out2);
        assert!(out2.iter().all(|b| b.piece == first), "second peer continues the partial piece");
    }

    #[test]
    fn urgent_pieces_go_first_in_deadline_order_and_overdue_ones_to_a_second_peer() {
        let mut p = picker(10, 2 * 16384);
        let piece = |i| PieceIndex::new_unchecked(i);
        p.set_urgent(vec![piece(7), piece(3)]);
        assert!(p.has_urgent());
        let overdue = |i: PieceIndex| i.get() == 7;
        let mut a = Vec::new();
        p.pick_urgent(PeerKey(1), 3, |_| true, |_| false, overdue, &mut a);
        assert_eq!(a.iter().map(|b| (b.piece.get(), b.begin)).collect::<Vec<_>>(), [(7, 0), (7, 16384), (3, 0)]);
        // Piece 7 is overdue and fully asked for: a second peer gets its blocks too; piece 3
        // is not, so only its open block.
        let mut b = Vec::new();
        p.pick_urgent(PeerKey(2), 10, |_| true, |_| false, overdue, &mut b);
        assert_eq!(b.iter().map(|b| (b.piece.get(), b.begin)).collect::<Vec<_>>(), [(7, 0), (7, 16384), (3, 16384)]);
        // Never a third copy, and never twice from one peer.
        let mut c = Vec::new();
        p.pick_urgent(PeerKey(3), 10, |_| true, |_| false, |_| true, &mut c);
        assert_eq!(c.iter().map(|b| (b.piece.get(), b.begin)).collect::<Vec<_>>(), [(3, 0), (3, 16384)]);
        let mut again = Vec::new();
        p.pick_urgent(PeerKey(1), 10, |_| true, |_| false, |_| true, &mut again);
        assert!(again.is_empty(), "{again:?}");
        // The first copy of a block asked of two peers is new and says so; the second is not.
        assert_eq!(p.accept(PeerKey(2), &b[0]), Accepted::New { complete: false, shared: true });
        assert_eq!(p.accept(PeerKey(1), &a[0]), Accepted::Duplicate);
        // A peer without the piece gets nothing of it; the normal picker still runs after.
        p.set_urgent(vec![piece(5)]);
        let mut d = Vec::new();
        p.pick_urgent(PeerKey(4), 10, |i| i.get() != 5, |_| false, |_| true, &mut d);
        assert!(d.is_empty());
        p.pick(PeerKey(4), 1, 10, any(), &mut d);
        assert_eq!(d.len(), 1);
        assert_ne!(d[0].piece.get(), 5);
    }

    #[test]
    fn a_block_moves_from_a_busy_peer_from_the_end_of_its_piece() {
        // Two pieces of four blocks: peer 1 was asked for all of piece A; piece B stays
        // unstarted, so this is no endgame.
        let mut p = picker(2, 4 * 16384);
        let only = |piece: u32| Source {
            has: move |i: PieceIndex| i.get() == piece,
            pending: |_: &BlockRange| false,
            movable: |_| true,
            idle: false,
        };
        let mut a = Vec::new();
        p.pick(PeerKey(1), 4, 10, any(), &mut a);
        let piece = a[0].piece.get();
        assert!(a.iter().all(|b| b.piece.get() == piece) && !p.in_endgame());
        // Peer 2 has only that piece: it takes over blocks queued at peer 1, last first (the
        // first ones are likely on their way already; the last ones wait longest there).
        let mut b = Vec::new();
        p.pick(PeerKey(2), 2, 10, only(piece), &mut b);
        assert_eq!(b.iter().map(|b| b.begin).collect::<Vec<_>>(), [3 * 16384, 2 * 16384]);
    }

    #[test]
    fn endgame_duplicates_requests_up_to_limit() {
        let mut p = picker(1, 2 * 16384);
        let mut a = Vec::new();
        p.pick(PeerKey(1), 10, 10, any(), &mut a);
        assert_eq!(a.len(), 2);
        assert!(p.in_endgame());
        let mut b = Vec::new();
        p.pick(PeerKey(2), 10, 10, any(), &mut b);
        b.sort_by_key(|block| block.begin);
        assert_eq!(b, a, "endgame hands the same blocks to a second peer");
        let mut c = Vec::new();
        p.pick(PeerKey(3), 10, 10, any(), &mut c);
        assert!(c.is_empty(), "no block is requested from more than {ENDGAME_DUPLICATES} peers");
        // A peer with nothing outstanding asks too (the first two may be slow), up to a bound.
        let idle = || Source { idle: true, ..any() };
        for key in [3, 4] {
            let mut d = Vec::new();
            p.pick(PeerKey(key), 10, 10, idle(), &mut d);
            assert_eq!(d.len(), 2, "idle peer {key}");
        }
        let mut e = Vec::new();
        p.pick(PeerKey(5), 10, 10, idle(), &mut e);
        assert!(e.is_empty(), "no block is requested from more than {ENDGAME_IDLE_DUPLICATES} peers");
        assert_eq!(p.accept(PeerKey(1), &a[0]), Accepted::New { complete: false, shared: true });
        assert_eq!(p.accept(PeerKey(2), &b[0]), Accepted::Duplicate);
        assert_eq!(p.accept(PeerKey(2), &b[1]), Accepted::New { complete: true, shared: true });
        assert_eq!(p.state(a[0].piece), PieceState::Verifying);
    }

    #[test]
    fn failed_piece_is_refetched_from_one_peer() {
        let mut p = picker(1, 2 * 16384);
        let mut a = Vec::new();
        p.pick(PeerKey(1), 1, 10, any(), &mut a);
        let mut b = Vec::new();
        p.pick(PeerKey(2), 1, 10, any(), &mut b);
        p.accept(PeerKey(1), &a[0]);
        p.accept(PeerKey(2), &b[0]);
        let piece = a[0].piece;
        let mut contributors = p.verified(piece, false);
        contributors.sort();
        assert_eq!(contributors, vec![PeerKey(1), PeerKey(2)]);
        assert_eq!(p.state(piece), PieceState::Missing);
        let mut c = Vec::new();
        p.pick(PeerKey(3), 1, 10, any(), &mut c);
        let mut d = Vec::new();
        p.pick(PeerKey(4), 5, 10, any(), &mut d);
        assert!(d.is_empty(), "a suspect piece belongs to the one peer fetching it");
    }

    #[test]
    fn released_blocks_are_requested_again() {
        let mut p = picker(1, 16384);
        let mut a = Vec::new();
        p.pick(PeerKey(1), 1, 10, any(), &mut a);
        p.release(&a[0]);
        let mut b = Vec::new();
        p.pick(PeerKey(2), 1, 10, any(), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn high_priority_pieces_are_picked_first() {
        let mut p = picker(8, 16384);
        for i in 0..8 {
            // Piece 6 is the most common, yet high priority.
            for _ in 0..(if i == 6 { 5 } else { 1 }) {
                p.peer_has(PieceIndex::new_unchecked(i));
            }
        }
        p.set_high(PieceIndex::new_unchecked(6), true);
        let mut out = Vec::new();
        p.pick(PeerKey(1), 1, RANDOM_FIRST, any(), &mut out);
        assert_eq!(out[0].piece.get(), 6);
    }

    #[test]
    fn sequential_picks_pieces_in_order_high_priority_first() {
        let mut p = picker(8, 16384);
        for i in 0..8 {
            // The last pieces are the rarest: rarest first would start there.
            for _ in 0..(8 - i) {
                p.peer_has(PieceIndex::new_unchecked(i));
            }
        }
        p.set_sequential(true);
        let mut order = Vec::new();
        for _ in 0..3 {
            let mut out = Vec::new();
            p.pick(PeerKey(1), 1, RANDOM_FIRST, any(), &mut out);
            order.push(out[0].piece.get());
        }
        assert_eq!(order, [0, 1, 2]);
        p.set_high(PieceIndex::new_unchecked(5), true);
        let mut out = Vec::new();
        p.pick(PeerKey(1), 1, RANDOM_FIRST, any(), &mut out);
        assert_eq!(out[0].piece.get(), 5, "a high-priority piece comes before the next one in order");
        p.set_sequential(false);
        let mut out = Vec::new();
        p.pick(PeerKey(1), 1, RANDOM_FIRST, any(), &mut out);
        assert_eq!(out[0].piece.get(), 7, "rarest first again");
    }
}
