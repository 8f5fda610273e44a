//! Initial seeding's side of the swarm (BEP 16): which pieces an unchoked peer is shown, and
//! when a shown piece stops counting as a copy on its way. The choice of piece is
//! [`crate::superseed`]'s; this is the bookkeeping per peer.

use std::time::Duration;

use shoal_proto::Message;

use super::{Action, MIN_UNREQUESTED_REVEALS, Settle, Swarm};
use crate::PeerKey;
use crate::peer::OpenReveal;
use crate::superseed;

/// Ticks after it was shown that a first copy being fetched still holds back second copies
/// (see `Swarm::first_copies_out`).
const FIRST_COPY_PATIENCE: u64 = 10;
/// How long the answer of `Swarm::first_copies_out` is reused.
const FIRST_COPIES_RECHECK: Duration = Duration::from_millis(100);

impl Swarm {
    /// While seeding initially, shows an unchoked peer the rarest pieces, up to its target,
    /// and beyond it while fewer than [`MIN_UNREQUESTED_REVEALS`] of its shown pieces are not
    /// yet requested (up to twice the target plus that many): a peer that has asked for
    /// everything it was shown must never run dry, because some clients (rTorrent) then stop
    /// asking for about 30 s even after new `have`s arrive. Choked peers are shown nothing
    /// (rare pieces are not tied up with a peer that cannot fetch them); the choker considers
    /// them interested all the same.
    pub(super) fn reveal(&mut self, peer: PeerKey) {
        // Whether a second copy may be shown takes a look at every peer
        // (`first_copies_out`), so it is asked only when this peer would be shown one.
        if self.reveal_knowing(peer, None) {
            let out = self.first_copies_out();
            self.reveal_knowing(peer, Some(out));
        }
    }

    /// [`Swarm::reveal`], given whether first copies are out if known. Returns true when it
    /// stopped at a second copy without knowing.
    fn reveal_knowing(&mut self, peer: PeerKey, first_copies_out: Option<bool>) -> bool {
        // A peer alone with us is shown the lowest-numbered of the rarest pieces first: all
        // are equally rare then, and a player asks for the head of its file first (shown
        // pieces at random, it asked for those at its unchoke, and a seed sends requests in
        // order: a piece's time at the seed's pace before the head it names came).
        let in_order = self.peers.len() == 1;
        let (Some(ss), Some(p)) = (self.superseed.as_mut(), self.peers.get_mut(&peer)) else {
            return false;
        };
        let streamer = super::wanting::is_streamer(p, self.ticks);
        let Some(revealed) = p.revealed.as_mut() else {
            return false;
        };
        if p.am_choking {
            return false;
        }
        let availability = self.picker.availability();
        let recent = p.reveals_announced[0] + p.reveals_announced[1];
        let mut target = superseed::reveal_target(p.up.bytes_per_sec(), self.layout.piece_length(), recent);
        let mut cap = 2 * target + MIN_UNREQUESTED_REVEALS;
        if self.streamers > 0 && !streamer {
            target = 1;
            cap = 1;
        }
        loop {
            let open = p.reveals_open.len();
            let unrequested = p.reveals_open.iter().filter(|o| !o.requested).count();
            if open >= cap || (open >= target && unrequested >= MIN_UNREQUESTED_REVEALS) {
                break;
            }
            let Some((piece, copies)) = ss.choose(availability, &p.has, revealed, in_order) else {
                break;
            };
            // While some piece is still on its way to its first holder, a peer with shown
            // pieces left to fetch is shown no second copy. Once every piece is held, second
            // copies are what the seed sends, and a peer is shown more while it fetches: held
            // back until it had fetched all it was shown, each peer waited a round trip per
            // few pieces (100 leechers of 8 KiB/s upload drew 13 % of a 32 MiB/s seed, 157 s
            // instead of 27 s).
            let first_copies_on_their_way = self.picker.unheld() > 0;
            if copies > 0 && open == 0 && first_copies_out.is_none() {
                ss.settle(piece);
                return true;
            }
            if copies > 0 && ((open > 0 && first_copies_on_their_way) || first_copies_out == Some(false)) {
                // Every piece left has a copy at a peer or on its way to one: showing it here
                // would make the seed send it again while pieces it never sent wait behind it.
                // The peer has reveals to work on, or soon hears of the others from its peers.
                ss.settle(piece);
                break;
            }
            revealed.set(piece);
            p.reveals_open.push(OpenReveal { piece, requested: false, at: self.ticks, wanted: false });
            self.actions.push_back(Action::Send { peer, msg: Message::Have(piece.get()) });
        }
        false
    }

    /// While seeding initially: whether no peer is fetching the first copy of a piece, so a
    /// second copy costs no piece its first. A peer with nothing left to fetch of what it was
    /// shown is shown a second copy only then: at the end of initial seeding, second copies
    /// shown at once took up to a second of the seed's upload while the last first copies
    /// waited (simulator, 200 peers with twice the seed's upload: the last first copy left
    /// 0.6 s after F/u_s; held back, at it). Only first copies asked for within
    /// [`FIRST_COPY_PATIENCE`] ticks hold them back, so a peer that never finishes one does
    /// not hold the others up for good. It looks at every peer's open reveals, so the answer is
    /// kept for [`FIRST_COPIES_RECHECK`]: at most ten such looks a second.
    fn first_copies_out(&mut self) -> bool {
        if let Some((at, out)) = self.first_copies_checked
            && self.now.saturating_duration_since(at) < FIRST_COPIES_RECHECK
        {
            return out;
        }
        let availability = self.picker.availability();
        let recent = self.ticks.saturating_sub(FIRST_COPY_PATIENCE);
        let fetching = self
            .peers
            .values()
            .any(|p| p.reveals_open.iter().any(|o| o.requested && o.at >= recent && availability[o.piece.idx()] == 0));
        self.first_copies_checked = Some((self.now, !fetching));
        !fetching
    }

    /// While seeding initially with a single peer connected and unchoked (checked at each
    /// tick), shows it every piece: there is nobody to pass pieces on to, so hiding them gains
    /// nothing, and the peer then picks its own order (a player reading the file as it arrives
    /// needs that). Peers that come later are shown pieces a few at a time as usual. A peer
    /// that comes alone and cannot name the pieces it needs is shown everything before its
    /// unchoke ([`Swarm::peer_extensions`]):
    /// shown a few rare pieces first, a streaming client (rqbit 9.1) queued requests for them
    /// ahead of the head of the file it plays and asked for nothing more for 5 s.
    pub(super) fn reveal_to_lone_peer(&mut self) {
        if let Some((&peer, p)) = self.peers.iter().next()
            && !p.am_choking
        {
            self.show_everything(peer);
        }
    }

    /// Shows the peer every piece it was not shown yet, in order; it is no longer shown
    /// pieces a few at a time.
    pub(super) fn show_everything(&mut self, peer: PeerKey) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Some(revealed) = p.revealed.take() else { return };
        for piece in self.layout.pieces().filter(|&piece| !revealed.get(piece) && !p.has.get(piece)) {
            self.actions.push_back(Action::Send { peer, msg: Message::Have(piece.get()) });
        }
    }

    pub(super) fn reveal_all(&mut self) {
        if self.superseed.is_none() {
            return;
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.reveal(key);
        }
    }

    /// Reveals to the peer no longer count as copies on their way: it announced the piece,
    /// left, or was choked before asking for it. Returns how many were settled.
    pub(super) fn settle_reveals(&mut self, peer: PeerKey, which: Settle) -> usize {
        let (Some(ss), Some(p)) = (self.superseed.as_mut(), self.peers.get_mut(&peer)) else {
            return 0;
        };
        let before = p.reveals_open.len();
        let fast = p.fast;
        if let Settle::Announced(piece) = which
            && p.reveals_open.iter().any(|open| open.piece == piece)
        {
            p.reveals_announced[0] += 1;
            p.allowed_out.retain(|&allowed| allowed != piece);
        }
        if matches!(which, Settle::Choked) && fast {
            // A piece it began to ask for stays its own: it may finish it while choked.
            // Without that, the rest of the piece waited for the peer's next unchoke, and the
            // seed's last first copies went out up to 0.7 s late while it sent second copies.
            for open in p.reveals_open.iter().filter(|open| open.requested) {
                if !p.allowed_out.contains(&open.piece) {
                    p.allowed_out.push(open.piece);
                    self.actions.push_back(Action::Send { peer, msg: Message::AllowedFast(open.piece.get()) });
                }
            }
        }
        p.reveals_open.retain(|open| {
            let settled = match which {
                Settle::Announced(piece) => piece == open.piece,
                Settle::Left => true,
                // A peer without the fast extension cannot finish what it began while choked:
                // its pieces go to others, even if that sends part of one twice.
                Settle::Choked => !open.requested || !fast,
                Settle::Unwanted(before) => !open.requested && open.at <= before,
            };
            if settled {
                ss.settle(open.piece);
            }
            !settled
        });
        before - p.reveals_open.len()
    }

    /// An unchoked peer left the pieces we showed it alone and is not interested: it wants
    /// only some of the torrent, so it relays little; it is shown every piece.
    pub(super) fn reveal_everything(&mut self, peer: PeerKey) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.am_choking || p.peer_interested {
            return;
        }
        let Some(revealed) = p.revealed.take() else {
            return;
        };
        for piece in self.layout.pieces().filter(|&piece| !revealed.get(piece) && !p.has.get(piece)) {
            self.actions.push_back(Action::Send { peer, msg: Message::Have(piece.get()) });
        }
    }
}
