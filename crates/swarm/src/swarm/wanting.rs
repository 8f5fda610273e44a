//! Asking an initial seed for the pieces a reader waits for (Shoal's `shoal_wants` extension).
//!
//! An initial seed (BEP 16) shows each peer a few rare pieces at a time, so a player among
//! other leechers may wait a long time for the head of the file: nobody has it yet, and the
//! seed does not show it to the player. No standard message asks a peer for a piece it has not
//! announced, so a streaming Shoal node names the pieces its readers need next to the peers
//! that take this extension; an initial seed shows it those it hid (a few at a time, counted
//! like its other reveals), unchokes it first while it keeps asking, and shows the others one
//! piece at a time meanwhile, so its upload goes where a player waits (the player passes the
//! pieces on like any others). A peer asking for everything only gets what a lone peer would;
//! the seed stays bounded by its own slots and upload.

use std::time::{Duration, Instant};

use shoal_proto::{Message, PieceIndex};

use super::{Action, Swarm};
use crate::PeerKey;
use crate::picker::PieceState;

/// Most pieces named in one request, and most shown at once to one peer on request.
pub const WANTS_AT_ONCE: usize = shoal_proto::extension::MAX_WANTS;
/// A request names pieces up to this many bytes (at least [`MIN_WANTS`] pieces, at most
/// [`WANTS_AT_ONCE`]): a few seconds of playback, whatever the piece size.
const WANT_BYTES: u64 = 2 << 20;
const MIN_WANTS: usize = 8;
/// Bytes of pieces shown on request and not yet announced by the peer, at most, per peer
/// (at least [`MIN_OPEN_WANTED`] pieces).
const MAX_OPEN_WANTED_BYTES: u64 = 4 << 20;
const MIN_OPEN_WANTED: usize = 16;
/// The same pieces are asked for again after this long.
const WANTS_REPEAT: Duration = Duration::from_secs(2);

impl Swarm {
    /// What the peer's extension handshake (BEP 10) said: whether it takes `shoal_wants`
    /// requests. Called once it came, or at once (`false`) for a peer that does not speak
    /// BEP 10. While seeding initially, a peer that came alone is unchoked only then; if it is
    /// still alone and cannot name the pieces it needs, it is first shown every piece (a lone
    /// peer has nobody to pass pieces on to, and a player then asks for the head of its file).
    /// A Shoal peer alone is shown a few pieces, names what it waits for, and is shown
    /// everything at the next tick if still alone: shown everything at its handshake, the
    /// first of `shoal demo`'s four peers (a few milliseconds ahead of the others) fetched
    /// freely, and the seed uploaded 1.4-1.5 copies instead of 1.0 (0.82-0.97 s instead of
    /// 0.61 s).
    pub fn peer_extensions(&mut self, peer: PeerKey, takes_wants: bool) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        p.takes_wants |= takes_wants;
        if std::mem::take(&mut p.awaiting_extensions) {
            if self.peers.len() == 1 && !takes_wants {
                self.show_everything(peer);
            }
            // Pieces shown first, then the unchoke: a client that looks for pieces to ask
            // for at the unchoke (rqbit 9.1) asked for the one shown by then and for nothing
            // more for 5 s.
            self.fill_unchoke_slots();
        }
        if takes_wants {
            self.ask_for_hidden(None);
        }
    }

    /// Names the next pieces readers wait for (not yet received) to the peers that take
    /// `shoal_wants`: at once when one of them is hidden (no connected peer has shown it) and
    /// was not named last time, else again every [`WANTS_REPEAT`] while readers wait, which
    /// keeps an initial seed counting this node as a player (`now: None` names them only to
    /// peers not asked yet).
    pub(super) fn ask_for_hidden(&mut self, now: Option<Instant>) {
        if self.deadlines.is_empty() || !self.peers.values().any(|p| p.takes_wants) {
            return;
        }
        let availability = self.picker.availability();
        let per_request =
            ((WANT_BYTES / u64::from(self.layout.piece_length()).max(1)) as usize).clamp(MIN_WANTS, WANTS_AT_ONCE);
        let wanted: Vec<PieceIndex> = self
            .deadlines
            .iter()
            .map(|u| u.piece)
            .filter(|&piece| matches!(self.picker.state(piece), PieceState::Missing | PieceState::Partial))
            .take(per_request)
            .collect();
        if wanted.is_empty() {
            return;
        }
        let newly_hidden =
            wanted.iter().any(|piece| availability[piece.idx()] == 0 && !self.last_wants.0.contains(piece));
        let repeat = match (now, self.last_wants.1) {
            (Some(now), Some(at)) => newly_hidden || now.saturating_duration_since(at) >= WANTS_REPEAT,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if let Some(now) = now.filter(|_| repeat) {
            self.last_wants = (wanted.clone(), Some(now));
        }
        for (&peer, p) in self.peers.iter_mut().filter(|(_, p)| p.takes_wants) {
            if repeat || !p.asked_wants {
                p.asked_wants = true;
                self.actions.push_back(Action::Want { peer, pieces: wanted.clone() });
            }
        }
    }

    /// A peer asks to be shown these pieces (`shoal_wants`). While seeding initially, an
    /// unchoked peer is shown those it lacks, at most [`WANTS_AT_ONCE`] per request and
    /// [`MAX_OPEN_WANTED_BYTES`] (at least [`MIN_OPEN_WANTED`] pieces) not yet announced;
    /// otherwise (we show everything, or are not a seed) it changes nothing. Indexes past the
    /// last piece are ignored. Costs O(pieces named + the peer's open reveals), both bounded.
    pub fn handle_wants(&mut self, peer: PeerKey, pieces: &[u32]) {
        let (Some(ss), Some(p)) = (self.superseed.as_mut(), self.peers.get_mut(&peer)) else {
            return;
        };
        // A player, even while choked: the choker ranks it first (see `is_streamer`), at the
        // next tick rather than the next rechoke when it just became one (a peer repeating
        // its request cannot make the seed rechoke every tick).
        let was_streamer = is_streamer(p, self.ticks);
        p.wants_tick = Some(self.ticks);
        // O(1) per request: the count is redone at each tick, where players expire.
        self.streamers += usize::from(!was_streamer);
        if p.am_choking {
            self.rechoke_soon |= !was_streamer;
            return;
        }
        let Some(revealed) = p.revealed.as_mut() else {
            return;
        };
        let max_open = ((MAX_OPEN_WANTED_BYTES / u64::from(self.layout.piece_length()).max(1)) as usize)
            .clamp(MIN_OPEN_WANTED, 4 * WANTS_AT_ONCE);
        let mut open = p.reveals_open.iter().filter(|o| o.wanted).count();
        for &index in pieces.iter().take(WANTS_AT_ONCE) {
            if open >= max_open {
                break;
            }
            let Some(piece) = self.layout.piece(index) else { continue };
            if revealed.get(piece) || p.has.get(piece) || !self.have.get(piece) {
                continue;
            }
            revealed.set(piece);
            ss.count(piece);
            p.reveals_open.push(crate::peer::OpenReveal { piece, requested: false, at: self.ticks, wanted: true });
            open += 1;
            self.actions.push_back(Action::Send { peer, msg: Message::Have(piece.get()) });
        }
    }

    /// Counts the peers that asked to be shown pieces lately (players).
    pub(super) fn count_streamers(&mut self) {
        if self.superseed.is_none() {
            self.streamers = 0;
            return;
        }
        let ticks = self.ticks;
        self.streamers = self.peers.values().filter(|p| is_streamer(p, ticks)).count();
    }
}

/// Ticks a peer counts as a player after its last `shoal_wants` request (it repeats them
/// every 2 s while it waits).
const STREAMER_TICKS: u64 = 5;

/// Whether the peer asked to be shown pieces within the last [`STREAMER_TICKS`]: while
/// seeding initially, such a peer is unchoked first and the others are shown one piece at a
/// time, so the seed's upload goes to what a player waits for (the player passes those
/// pieces on like any other).
pub(super) fn is_streamer(p: &crate::peer::Peer, ticks: u64) -> bool {
    p.wants_tick.is_some_and(|at| ticks.saturating_sub(at) <= STREAMER_TICKS)
}
