//! Choking: which peers we upload to (BEP 3's choking algorithm, Shoal's variant).
//!
//! Every rechoke interval the unchoked set is chosen again ([`crate::choker`]): while leeching
//! by the rate peers send us data, while seeding by the least we uploaded to each (round robin),
//! while seeding initially by the fewest pieces. Between rechokes a peer that no longer wants our
//! data is choked and its slot goes to a waiting peer at once; a peer that takes nothing while
//! unchoked gives its slot up; and a seed under its upload cap opens more slots.

use shoal_proto::Message;

use super::{Action, Settle, Swarm, wants_us};
use crate::PeerKey;
use crate::choker::{self, Candidate};

/// Most unchoke slots open at once while an upload cap is not reached (see `Swarm::adapt_slots`).
const MAX_SLOTS: usize = 64;
/// Below this share of the upload cap, with every slot busy and peers waiting, a slot opens.
const GROW_BELOW: f64 = 0.9;
/// At or above this share of the upload cap for [`SHRINK_AFTER`] ticks in a row, a slot
/// opened beyond the configured ones closes.
const SATURATED: f64 = 0.97;
const SHRINK_AFTER: u32 = 10;
/// An unchoked, interested peer that took nothing for this many ticks loses its slot to a
/// waiting peer (see `Swarm::choke_unserved`).
const UNSERVED_TICKS: u32 = 2;

impl Swarm {
    /// Tells how much of the upload cap was used since the last tick (bytes sent as a share of
    /// what the cap allows; `None`: no cap), before calling [`Swarm::tick`]. While we seed, a
    /// cap is set and not reached, every unchoke slot is busy and other peers wait, the swarm
    /// opens more slots: peers that ask slowly (a client whose own upload cap also holds back its
    /// requests) then no longer keep the upload under the cap. Once at the cap for a while, the
    /// extra slots close one by one.
    pub fn set_upload_use(&mut self, used: Option<f64>) {
        self.upload_use = used;
    }

    /// Peers unchoked at once now: the configured slots (a seed's or a downloader's) and any
    /// opened by [`Swarm::set_upload_use`].
    pub fn unchoke_slots(&self) -> usize {
        self.configured_slots() + self.extra_slots
    }

    fn configured_slots(&self) -> usize {
        if self.is_complete() { self.config.seed_unchoke_slots } else { self.config.unchoke_slots }
    }

    /// Unchoked, interested and taking nothing for [`UNSERVED_TICKS`] ticks (it has all we
    /// have that it wants, or asks others for it): the slot goes to a peer that waits, and
    /// this one comes after the waiting peers until it asks for a block. A slot held by a peer
    /// that takes nothing is upload thrown away.
    pub(super) fn choke_unserved(&mut self) {
        let mut unserved = Vec::new();
        for (&key, p) in self.peers.iter_mut() {
            let sent = p.up.total();
            let idle = !p.am_choking && p.peer_interested && sent == p.up_at_tick;
            p.unserved_ticks = if idle { p.unserved_ticks + 1 } else { 0 };
            p.up_at_tick = sent;
            if p.unserved_ticks >= UNSERVED_TICKS {
                unserved.push(key);
            }
        }
        if unserved.is_empty() {
            return;
        }
        let waiting = self.peers.values().filter(|p| p.am_choking && p.peer_interested && !p.unserved).count();
        if waiting == 0 {
            return;
        }
        for key in unserved.into_iter().take(waiting) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.am_choking = true;
                p.unserved = true;
                p.unserved_ticks = 0;
                self.actions.push_back(Action::Send { peer: key, msg: Message::Choke });
            }
        }
        self.fill_unchoke_slots();
    }

    pub(super) fn adapt_slots(&mut self) {
        // Only a seed: a leecher's upload buys it data in return, and spread over more peers
        // its pieces travel slower (32 real peers capped at 512 KiB/s: eta 0.94 without, 0.75
        // with extra slots at the leechers, the seed then sending 1.32 copies instead of 1.04).
        let used = self.upload_use.filter(|_| self.is_complete());
        let Some(used) = used else {
            self.extra_slots = 0;
            self.saturated_ticks = 0;
            return;
        };
        if used >= SATURATED {
            self.saturated_ticks += 1;
            if self.saturated_ticks >= SHRINK_AFTER {
                self.saturated_ticks = 0;
                self.extra_slots = self.extra_slots.saturating_sub(1);
            }
            return;
        }
        self.saturated_ticks = 0;
        let slots = self.unchoke_slots();
        if used >= GROW_BELOW || slots >= MAX_SLOTS.max(self.configured_slots()) {
            return;
        }
        let superseed = self.superseed.is_some();
        let busy = self.peers.values().filter(|p| !p.am_choking && wants_us(p, superseed)).count();
        let waiting = self.peers.values().any(|p| p.am_choking && wants_us(p, superseed));
        if waiting && busy >= slots {
            let more = (slots / 4).max(1).min(MAX_SLOTS - slots);
            self.extra_slots += more;
            self.fill_unchoke_slots();
        }
    }

    pub(super) fn rechoke(&mut self, rotate: bool) {
        let seeding = self.is_complete();
        let candidates: Vec<Candidate> = self
            .peers
            .iter()
            .map(|(&peer, p)| Candidate {
                peer,
                // While seeding initially, the peers that have least go first: the pieces
                // revealed to them are new to the swarm, which makes them worth trading with;
                // a peer that stalled (silent while unchoked) goes last.
                rate: if self.superseed.is_some() {
                    // A player waiting for pieces it asked for comes first of all.
                    let streamer = if super::wanting::is_streamer(p, self.ticks) { 1e12 } else { 0.0 };
                    streamer - f64::from(p.has.count()) - if p.stalled { 1e12 } else { 0.0 }
                } else if seeding {
                    // Round robin: the peers we uploaded least to go first, so with hundreds
                    // of peers each is served in turn (ranking by rate kept serving the same
                    // few, and the rest waited for the optimistic slot).
                    -(p.up.total() as f64)
                } else {
                    p.down.bytes_per_sec()
                },
                interested: wants_us(p, self.superseed.is_some()),
                snubbed: p.snubbed,
            })
            .collect();
        let mut newly_choked = Vec::new();
        let (unchoked, optimistic) =
            choker::choose(&candidates, self.unchoke_slots(), self.optimistic, rotate, seeding, &mut self.rng);
        self.optimistic = optimistic;
        let mut newly_unchoked = Vec::new();
        for (&peer, p) in self.peers.iter_mut() {
            let choke = !unchoked.contains(&peer);
            if choke != p.am_choking {
                p.am_choking = choke;
                if choke {
                    self.actions.push_back(Action::Send { peer, msg: Message::Choke });
                    newly_choked.push(peer);
                } else {
                    newly_unchoked.push(peer);
                }
            }
        }
        // An unchoked peer always has something to ask for: while seeding initially its
        // pieces are shown before the unchoke.
        for peer in newly_unchoked {
            self.reveal(peer);
            self.actions.push_back(Action::Send { peer, msg: Message::Unchoke });
        }
        // Pieces a choked peer had not asked for yet go to other peers.
        for peer in newly_choked {
            self.settle_reveals(peer, Settle::Choked);
        }
    }

    /// The peer no longer wants our data: it is choked and its slot goes to a waiting peer.
    /// Left unchoked, it would be served again the moment we get a piece it lacks, alongside
    /// whoever took its slot: every new piece then makes most of our neighbours want it at
    /// once, the unchoked set grows to all of them, and each piece we offer reaches each of
    /// them slowly, so none can pass it on soon. (In the simulator with 200 peers that upload
    /// as fast as the seed, a leecher 1.5 s in had 19 peers unchoked for 4 slots; choking at
    /// once took the swarm's efficiency from 0.883 to 0.896, mean of four runs.) While seeding
    /// initially, interest follows what is shown, and `tick` gives up on peers that want none
    /// of it.
    pub(super) fn on_not_interested(&mut self, peer: PeerKey) {
        let superseed = self.superseed.is_some();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.peer_interested = false;
        if p.am_choking {
            return;
        }
        if !superseed {
            p.am_choking = true;
            self.actions.push_back(Action::Send { peer, msg: Message::Choke });
        }
        self.fill_unchoke_slots();
    }

    /// Unchokes interested peers right away while slots are free, instead of waiting for the
    /// next rechoke.
    pub(super) fn fill_unchoke_slots(&mut self) {
        let superseed = self.superseed.is_some();
        let busy = self.peers.values().filter(|p| !p.am_choking && wants_us(p, superseed)).count();
        let mut free = self.unchoke_slots().saturating_sub(busy);
        let mut newly_unchoked = Vec::new();
        if !superseed && free > 0 {
            // Seeding: the waiting peers we uploaded least to first (round robin, as `rechoke`).
            // Leeching: those that send us most first (they have what we lack, so we likely
            // have what they lack: trading pairs form, as at a rechoke), then at random; key
            // order would send every node's spare slots to the few peers that connected first.
            // Peers choked for taking nothing come last either way. Only the first `free` are
            // needed, so they are selected, not sorted: O(peers) per call.
            let seeding = self.is_complete();
            let rng = &mut self.rng;
            let mut waiting: Vec<(bool, f64, u64, PeerKey)> = self
                .peers
                .iter()
                .filter(|(_, p)| p.am_choking && p.peer_interested)
                .map(|(&peer, p)| {
                    if seeding {
                        (p.unserved, p.up.total() as f64, peer.0, peer)
                    } else {
                        (p.unserved, -p.down.bytes_per_sec(), rng.next_u64(), peer)
                    }
                })
                .collect();
            if waiting.len() > free {
                waiting
                    .select_nth_unstable_by(free, |a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
                waiting.truncate(free);
            }
            for (_, _, _, peer) in waiting {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.am_choking = false;
                    newly_unchoked.push(peer);
                }
            }
            free = 0;
        }
        // Peers that stalled while seeding initially come after the others.
        for pass in [false, true] {
            for (&peer, p) in self.peers.iter_mut() {
                if free == 0 {
                    break;
                }
                if p.am_choking && (p.stalled || p.unserved) == pass && wants_us(p, superseed) {
                    p.am_choking = false;
                    free -= 1;
                    newly_unchoked.push(peer);
                }
            }
        }
        // Shown pieces first, then the unchoke (see `rechoke`).
        for peer in newly_unchoked {
            self.reveal(peer);
            self.actions.push_back(Action::Send { peer, msg: Message::Unchoke });
        }
        self.reveal_all();
    }
}
