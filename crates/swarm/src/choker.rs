//! Choking (BEP 3 "choking and optimistic unchoking"): who we upload to.
//!
//! Every rechoke interval the peers interested in us are ranked, and the best
//! `slots - 1` are unchoked: while downloading, the peers that give us data fastest (tit for
//! tat); while seeding, the peers we have uploaded least to (round robin, so that hundreds of
//! peers are each served in turn; the swarm passes minus the bytes uploaded as the rank). One
//! more slot is an *optimistic unchoke*, rotated at random every optimistic interval, so new
//! peers get a chance to prove themselves. Snubbed peers (no data for a long time despite
//! requests) are left out of the ranked slots while downloading.

use crate::PeerKey;
use crate::rng::Rng;

/// One peer as the choker sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// The peer.
    pub peer: PeerKey,
    /// Rank, highest first: bytes per second, or while seeding minus the bytes uploaded.
    pub rate: f64,
    /// The peer is interested in our data.
    pub interested: bool,
    /// The peer has been snubbing us.
    pub snubbed: bool,
}

/// Chooses the peers to unchoke. `optimistic` is the current optimistic peer (kept if still
/// eligible and `rotate` is false). Returns the unchoked set and the optimistic peer chosen.
pub fn choose(
    candidates: &[Candidate],
    slots: usize,
    optimistic: Option<PeerKey>,
    rotate: bool,
    seeding: bool,
    rng: &mut Rng,
) -> (Vec<PeerKey>, Option<PeerKey>) {
    let mut ranked: Vec<&Candidate> = candidates.iter().filter(|c| c.interested && (seeding || !c.snubbed)).collect();
    // Highest rate first; equal rates keep a stable order by key so results repeat.
    ranked.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.peer.cmp(&b.peer)));
    let regular = slots.saturating_sub(1).max(1).min(ranked.len());
    let mut unchoked: Vec<PeerKey> = ranked[..regular].iter().map(|c| c.peer).collect();

    let eligible: Vec<PeerKey> =
        candidates.iter().filter(|c| c.interested && !unchoked.contains(&c.peer)).map(|c| c.peer).collect();
    let keep = optimistic.filter(|p| !rotate && eligible.contains(p));
    let chosen = keep.or_else(|| (!eligible.is_empty()).then(|| eligible[rng.below(eligible.len() as u64) as usize]));
    if let Some(p) = chosen {
        unchoked.push(p);
    }
    // Free slots (few interested peers) go to the remaining interested peers.
    for c in ranked.iter().skip(regular) {
        if unchoked.len() >= slots {
            break;
        }
        if !unchoked.contains(&c.peer) {
            unchoked.push(c.peer);
        }
    }
    (unchoked, chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(peer: u64, rate: f64) -> Candidate {
        Candidate { peer: PeerKey(peer), rate, interested: true, snubbed: false }
    }

    #[test]
    fn fastest_peers_get_regular_slots_plus_one_optimistic() {
        let cs: Vec<_> = (0..10).map(|i| cand(i, i as f64 * 100.0)).collect();
        let mut rng = Rng::new(3);
        let (set, opt) = choose(&cs, 4, None, true, false, &mut rng);
        assert_eq!(set.len(), 4);
        assert_eq!(&set[..3], &[PeerKey(9), PeerKey(8), PeerKey(7)]);
        let opt = opt.expect("an optimistic peer");
        assert!(opt.0 < 7);
        let (set2, opt2) = choose(&cs, 4, Some(opt), false, false, &mut rng);
        assert_eq!(opt2, Some(opt), "the optimistic peer stays until rotation");
        assert!(set2.contains(&opt));
    }

    #[test]
    fn uninterested_and_snubbed_peers_are_not_ranked() {
        let mut cs = vec![cand(1, 1000.0), cand(2, 10.0), cand(3, 5.0)];
        cs[0].snubbed = true;
        cs[2].interested = false;
        let mut rng = Rng::new(1);
        let (set, _) = choose(&cs, 4, None, true, false, &mut rng);
        assert!(set.contains(&PeerKey(2)));
        assert!(!set.contains(&PeerKey(3)));
        // The snubbed peer can still be the optimistic unchoke.
        assert!(set.len() <= 2);
    }

    #[test]
    fn few_interested_peers_are_all_unchoked() {
        let cs = vec![cand(1, 0.0), cand(2, 0.0)];
        let mut rng = Rng::new(1);
        let (set, _) = choose(&cs, 4, None, true, true, &mut rng);
        assert_eq!(set.len(), 2);
    }
}
