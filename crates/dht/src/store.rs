//! The peer store behind `announce_peer` (BEP 5): which peers announced which info-hash, so
//! `get_peers` can return them as `values`.
//!
//! Memory is bounded whatever others send: at most [`StoreLimits::max_torrents`] info-hashes
//! with at most [`StoreLimits::max_peers`] peers each, one entry per IP address per info-hash
//! (a host announcing again just refreshes its entry and port). Entries expire after
//! [`StoreLimits::ttl`]. When an info-hash is full, a new peer replaces the one announced
//! longest ago; when the store is full, announces for new info-hashes are dropped until
//! [`PeerStore::purge`] frees room (evicting a live torrent instead would let a flood of
//! junk info-hashes push out real ones).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_proto::InfoHash;

use crate::rng::Rng;

/// Bounds of a [`PeerStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most info-hashes stored.
    pub max_torrents: usize,
    /// Most peers stored per info-hash.
    pub max_peers: usize,
    /// How long an announce is kept.
    pub ttl: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits { max_torrents: 2000, max_peers: 100, ttl: Duration::from_secs(30 * 60) }
    }
}

/// Keeps a uniform random choice of `max` of `items` (all of them when there are no more).
fn choose<T>(items: &mut Vec<T>, max: usize, rng: &mut Rng) {
    if items.len() > max {
        // Partial Fisher-Yates: the first `max` become a uniform sample.
        for i in 0..max {
            let j = i + rng.below((items.len() - i) as u64) as usize;
            items.swap(i, j);
        }
        items.truncate(max);
    }
}

/// Announced peers by info-hash, within [`StoreLimits`].
#[derive(Clone, Debug)]
pub struct PeerStore {
    limits: StoreLimits,
    /// Each list holds at most `limits.max_peers` entries with distinct IPs; never empty.
    torrents: HashMap<InfoHash, Vec<(SocketAddr, Instant)>>,
}

impl PeerStore {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        PeerStore { limits, torrents: HashMap::new() }
    }

    /// Stores (or refreshes) `peer` for `info_hash`. Returns false if it was dropped because
    /// the store is full.
    pub fn announce(&mut self, info_hash: InfoHash, peer: SocketAddr, now: Instant) -> bool {
        if self.limits.max_peers == 0 {
            return false;
        }
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= self.limits.max_torrents {
            return false;
        }
        let peers = self.torrents.entry(info_hash).or_default();
        if let Some(p) = peers.iter_mut().find(|(a, _)| a.ip() == peer.ip()) {
            *p = (peer, now);
        } else if peers.len() < self.limits.max_peers {
            peers.push((peer, now));
        } else if let Some(oldest) = peers.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (peer, now);
        }
        true
    }

    /// Up to `max` live peers for `info_hash`, a random choice if there are more.
    pub fn peers(&self, info_hash: &InfoHash, now: Instant, max: usize, rng: &mut Rng) -> Vec<SocketAddr> {
        let Some(list) = self.torrents.get(info_hash) else { return Vec::new() };
        let mut live: Vec<SocketAddr> =
            list.iter().filter(|(_, t)| now.saturating_duration_since(*t) < self.limits.ttl).map(|(a, _)| *a).collect();
        choose(&mut live, max, rng);
        live
    }

    /// Up to `max` of the info-hashes stored, a random choice if there are more (BEP 51).
    pub fn sample(&self, max: usize, rng: &mut Rng) -> Vec<InfoHash> {
        let mut all: Vec<InfoHash> = self.torrents.keys().copied().collect();
        choose(&mut all, max, rng);
        all
    }

    /// Drops expired entries and info-hashes left without peers.
    pub fn purge(&mut self, now: Instant) {
        let ttl = self.limits.ttl;
        self.torrents.retain(|_, peers| {
            peers.retain(|(_, t)| now.saturating_duration_since(*t) < ttl);
            !peers.is_empty()
        });
    }

    /// Number of info-hashes stored.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Number of peer entries stored, over all info-hashes.
    pub fn peer_count(&self) -> usize {
        self.torrents.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn peer(n: u64) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(n as u32), (n % 60000) as u16 + 1))
    }

    #[test]
    fn flood_of_announces_stays_within_bounds() {
        let limits = StoreLimits::default();
        let mut store = PeerStore::new(limits);
        let mut rng = Rng::new(1);
        let t0 = Instant::now();
        for i in 0..100_000u64 {
            let mut ih = [0u8; 20];
            ih[..8].copy_from_slice(&rng.below(5000).to_be_bytes());
            store.announce(InfoHash(ih), peer(rng.next_u64()), t0 + Duration::from_millis(i));
        }
        assert_eq!(store.torrent_count(), limits.max_torrents);
        assert!(store.peer_count() <= limits.max_torrents * limits.max_peers);
        assert!(store.torrents.values().all(|p| p.len() <= limits.max_peers));
        store.purge(t0 + Duration::from_secs(100 + 30 * 60));
        assert_eq!(store.torrent_count(), 0);
        assert_eq!(store.peer_count(), 0);
    }

    #[test]
    fn one_entry_per_ip_and_sampling() {
        let mut store = PeerStore::new(StoreLimits { max_torrents: 1, max_peers: 3, ..StoreLimits::default() });
        let ih = InfoHash([1; 20]);
        let t0 = Instant::now();
        let a: SocketAddr = "10.0.0.1:1000".parse().expect("addr");
        let a2: SocketAddr = "10.0.0.1:2000".parse().expect("addr");
        store.announce(ih, a, t0);
        store.announce(ih, a2, t0);
        let mut rng = Rng::new(1);
        assert_eq!(store.peers(&ih, t0, 10, &mut rng), vec![a2], "same IP refreshes its entry");
        for n in 2..6 {
            store.announce(ih, peer(n), t0 + Duration::from_secs(n));
        }
        assert_eq!(store.peer_count(), 3);
        assert!(!store.peers(&ih, t0, 10, &mut rng).contains(&a2), "oldest replaced");
        assert_eq!(store.peers(&ih, t0, 2, &mut rng).len(), 2);
        assert!(!store.announce(InfoHash([2; 20]), a, t0), "store full");
    }
}
