//! Initial seeding (BEP 16, "super-seeding"): a node that starts out as the only seed hides what
//! it has and reveals pieces to each peer a few at a time, always the pieces with the fewest
//! copies in the swarm, counting pieces already revealed to peers that have not announced them
//! yet. Each piece then leaves the seed once before any leaves it twice, and the peers spread
//! it among themselves: the seed's upload, the scarcest resource in a new swarm, is not spent
//! on duplicates. Once every piece has a copy at a peer or on its way to one, a peer that still
//! has shown pieces to fetch is shown no more (it would take a second copy from the seed while
//! pieces the seed never sent wait behind it); one with none left is shown one, so it never
//! runs dry, once no peer is fetching a first copy (a second copy would share the seed's
//! upload with it).
//!
//! How many pieces a peer sees at once follows how fast we upload to it, so a lone fast peer
//! is never starved: [`reveal_target`]. A choked peer is shown nothing; the choker counts
//! every peer that lacks pieces as interested, so it is unchoked in its turn. A peer choked
//! after it began to fetch a shown piece may finish that piece while choked (BEP 6 `allowed
//! fast`): nobody else has it or is shown it, so otherwise it would wait for the peer's next
//! turn.

use shoal_proto::PieceIndex;

use crate::Bitfield;
use crate::rng::Rng;

/// Outstanding reveals of an unchoked peer cover at least this many bytes of pieces.
const MIN_REVEALED_BYTES: f64 = 256.0 * 1024.0;
/// ...and at least this long of uploading to it at its current rate.
const REVEALED_SECONDS: f64 = 1.0;
/// Fewest outstanding reveals of an unchoked peer.
const MIN_REVEALED_PIECES: usize = 2;

/// How many rare revealed pieces an unchoked peer should have outstanding (revealed, not yet
/// announced): a second at the rate we upload to it, at least [`MIN_REVEALED_BYTES`], and,
/// before the rate is measured, twice what it announced over the last two ticks: a slow start
/// that doubles the window each round trip, so a lone fast peer is not held back.
pub(crate) fn reveal_target(up_rate: f64, piece_length: u32, recently_announced: u32) -> usize {
    let bytes = (up_rate * REVEALED_SECONDS).max(MIN_REVEALED_BYTES);
    let by_rate = ((bytes / piece_length as f64).ceil() as usize).max(MIN_REVEALED_PIECES);
    if up_rate > 0.0 { by_rate } else { by_rate.max(2 * recently_announced as usize) }
}

/// Swarm-wide state of initial seeding.
#[derive(Debug)]
pub(crate) struct SuperSeed {
    /// Per piece: peers it was revealed to that have not announced it yet.
    in_flight: Vec<u32>,
    rng: Rng,
}

impl SuperSeed {
    pub(crate) fn new(pieces: u32, seed: u64) -> Self {
        Self { in_flight: vec![0; pieces as usize], rng: Rng::new(seed) }
    }

    /// The piece to reveal next to a peer that has `has` and was shown `revealed`: the one with
    /// the fewest copies (`availability` among peers plus reveals in flight), ties at random,
    /// with that number of copies. The piece is counted as in flight. `in_order` breaks ties
    /// by the lowest index instead: for a peer alone with the seed, to which every piece is
    /// as rare as any other, so a player among them is shown the head of its file first.
    pub(crate) fn choose(
        &mut self,
        availability: &[u32],
        has: &Bitfield,
        revealed: &Bitfield,
        in_order: bool,
    ) -> Option<(PieceIndex, u32)> {
        let n = self.in_flight.len() as u32;
        let offset = if in_order { 0 } else { self.rng.below(n as u64) as u32 };
        let mut best: Option<(u32, PieceIndex)> = None;
        for i in 0..n {
            let piece = PieceIndex::new_unchecked((i + offset) % n);
            if has.get(piece) || revealed.get(piece) {
                continue;
            }
            let copies = availability[piece.idx()] + self.in_flight[piece.idx()];
            if best.is_none_or(|(c, _)| copies < c) {
                best = Some((copies, piece));
                if copies == 0 {
                    break;
                }
            }
        }
        let (copies, piece) = best?;
        self.in_flight[piece.idx()] += 1;
        Some((piece, copies))
    }

    /// A piece was revealed on a peer's request: one more copy on its way.
    pub(crate) fn count(&mut self, piece: PieceIndex) {
        self.in_flight[piece.idx()] += 1;
    }

    /// A revealed piece was announced by its peer, or the peer left.
    pub(crate) fn settle(&mut self, piece: PieceIndex) {
        let f = &mut self.in_flight[piece.idx()];
        *f = f.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarest_unrevealed_piece_is_chosen_and_counted() {
        let mut s = SuperSeed::new(4, 1);
        let avail = [2, 0, 1, 0];
        let none = Bitfield::new(4);
        let (a, _) = s.choose(&avail, &none, &none, false).expect("a piece");
        let (b, _) = s.choose(&avail, &none, &none, false).expect("a piece");
        let mut zero = vec![a.get(), b.get()];
        zero.sort();
        assert_eq!(zero, vec![1, 3], "both pieces nobody has go out before any other");
        let (c, copies) = s.choose(&avail, &none, &none, false).expect("a piece");
        assert!(copies >= 1);
        assert!(c.get() == 2 || c.get() == 1 || c.get() == 3);
        s.settle(a);
        s.settle(b);
    }

    #[test]
    fn pieces_the_peer_has_or_saw_are_skipped() {
        let mut s = SuperSeed::new(3, 1);
        let has = Bitfield::from_bools(&[true, false, false]);
        let revealed = Bitfield::from_bools(&[false, true, false]);
        assert_eq!(s.choose(&[0, 0, 5], &has, &revealed, false).map(|(p, c)| (p.get(), c)), Some((2, 5)));
        let all = Bitfield::full(3);
        assert_eq!(s.choose(&[0, 0, 0], &all, &revealed, false), None);
    }

    #[test]
    fn in_order_breaks_ties_by_the_lowest_index_and_still_prefers_the_rarest() {
        let mut s = SuperSeed::new(6, 7);
        let none = Bitfield::new(6);
        let avail = [1, 0, 0, 1, 0, 0];
        let order: Vec<u32> =
            (0..6).filter_map(|_| s.choose(&avail, &none, &none, true)).map(|(p, _)| p.get()).collect();
        // 1 and 2 (no copy), then 4 and 5 tie with 1 and 2 (one copy in flight each) and 0 and 3
        // (one held copy): lowest index first among the rarest each time.
        assert_eq!(&order[..2], &[1, 2]);
        assert_eq!(order.len(), 6);
        let mut s = SuperSeed::new(6, 7);
        let first: Vec<u32> =
            (0..3).filter_map(|_| s.choose(&[0; 6], &none, &none, true)).map(|(p, _)| p.get()).collect();
        assert_eq!(first, vec![0, 1, 2], "all equally rare: in order");
    }

    #[test]
    fn target_follows_rate() {
        assert_eq!(reveal_target(0.0, 16384, 0), 16, "a quarter megabyte of small pieces");
        assert_eq!(reveal_target(0.0, 4 << 20, 0), 2);
        assert_eq!(reveal_target(100.0 * 1048576.0, 1 << 20, 0), 100, "a second at the current rate");
        assert_eq!(reveal_target(0.0, 1 << 20, 40), 80, "slow start: twice what was announced lately");
    }
}
