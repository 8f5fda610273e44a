//! The end of a piece's check: a verified piece is announced, a failed one fetched again (a
//! strike against a peer that sent all of it), or, for BitTorrent v2, held while the driver
//! learns from block hashes which blocks were bad.

use std::time::Instant;

use shoal_proto::{Message, PieceIndex};

use super::{Action, Swarm};
use crate::PeerKey;

impl Swarm {
    /// The driver finished checking a piece's hash.
    pub fn handle_verified(&mut self, now: Instant, piece: PieceIndex, ok: bool) {
        self.now = self.now.max(now);
        let contributors = self.picker.verified(piece, ok);
        if ok {
            if !self.have.set(piece) {
                return;
            }
            self.bytes_have += self.layout.piece_size(piece) as u64;
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in keys {
                let Some(p) = self.peers.get_mut(&key) else {
                    continue;
                };
                self.actions.push_back(Action::Send { peer: key, msg: Message::Have(piece.get()) });
                if p.has.get(piece) {
                    p.interesting = p.interesting.saturating_sub(1);
                    if p.interesting == 0 {
                        self.set_interest(key, false);
                    }
                }
                self.disconnect_if_both_seeds(key);
            }
            return;
        }
        self.hash_failures += 1;
        self.blame_contributors(&contributors);
        self.refill_all();
    }

    /// A v2 piece failed its check: it is held out of picking while the driver finds out,
    /// from the block hashes peers send (BEP 52), which blocks were bad. Returns the peer each
    /// block came from, in block order; `None` when the piece is not waiting for its check
    /// (the driver then reports the failure with [`Swarm::handle_verified`]).
    pub fn hold_failed(&mut self, piece: PieceIndex) -> Option<Vec<PeerKey>> {
        let senders = self.picker.hold(piece)?;
        self.hash_failures += 1;
        Some(senders)
    }

    /// The blame for a held piece is known: each of `liars` is banned, and the piece's `bad`
    /// blocks (indices in the piece) are fetched again while the others are kept. With no bad
    /// block named, the piece is handled as an ordinary failure.
    pub fn reopen_blocks(&mut self, piece: PieceIndex, bad: &[u32], liars: &[PeerKey]) {
        for &peer in liars {
            self.drop_peer(peer, true, "sent a block that does not match its BitTorrent v2 block hash");
        }
        if !self.picker.reopen(piece, bad) {
            let contributors = self.picker.verified(piece, false);
            self.blame_contributors(&contributors);
        }
        self.refill_all();
    }

    /// A held piece whose blocks could not be judged (no peer sent their hashes): it is
    /// fetched again as after any failed check.
    pub fn release_held(&mut self, piece: PieceIndex) {
        if self.picker.hold(piece).is_some() {
            let contributors = self.picker.verified(piece, false);
            self.blame_contributors(&contributors);
            self.refill_all();
        }
    }

    /// Bans a peer for what the driver found (a forged proof, say) and closes its connection.
    pub fn ban(&mut self, peer: PeerKey, reason: &'static str) {
        self.drop_peer(peer, true, reason);
    }

    /// A failed piece that came from one peer alone is a strike against it.
    pub(super) fn blame_contributors(&mut self, contributors: &[PeerKey]) {
        if let [only] = contributors[..] {
            let banned = self.peers.get_mut(&only).is_some_and(|p| {
                p.strikes += 1;
                p.strikes >= self.config.ban_strikes
            });
            if banned {
                self.drop_peer(only, true, "sent data that failed verification repeatedly");
            }
        }
    }
}
