//! Checking what others say: a search result from elsewhere is only its publisher's word until
//! its metadata has been fetched (BEP 9, which checks it against the info-hash) and compared
//! with the record.
//!
//! After a search, the first [`PER_SEARCH`] unverified results that came with holders'
//! addresses are checked in the background, [`AT_ONCE`] at a time, each for at most
//! [`FETCH_TIMEOUT`]: metadata fetched from the holders (and the DHT when it runs). A record
//! whose name or size differs from the metadata is a lie: it leaves the index, and its
//! publisher gets a strike; a publisher with [`STRIKES`] strikes is muted (its records are
//! dropped from every later answer and from the index). A record that checks is marked
//! verified in the index. A holder that does not answer proves nothing either way. Neighbours
//! that pass on records whose signatures do not check are muted the same way, by address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;
use shoal_search::Record;

use crate::{Daemon, lock};

/// Results checked after one search.
pub const PER_SEARCH: usize = 4;
/// Checks running at once.
pub const AT_ONCE: usize = 2;
/// Longest wait for one result's metadata.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Strikes that mute a publisher or a neighbour.
pub const STRIKES: u32 = 2;
/// Publishers and neighbours whose strikes are remembered.
const MAX_REMEMBERED: usize = 10_000;

/// What the metadata says about a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Name and size agree.
    Agrees,
    /// They do not: the record lies.
    Lies,
}

/// Compares a record with the torrent's metadata.
pub fn judge(record: &Record, meta: &Metainfo) -> Verdict {
    let same = meta.info_hash.to_hex() == record.body.info_hash
        && meta.info.name == record.body.name
        && meta.info.total_length() == record.body.size;
    if same { Verdict::Agrees } else { Verdict::Lies }
}

/// Strikes against publishers and neighbours.
#[derive(Default)]
pub struct Reputation {
    publishers: Mutex<HashMap<String, u32>>,
    neighbours: Mutex<HashMap<SocketAddr, u32>>,
}

fn strike<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, u32>>, key: K) -> bool {
    let mut map = lock(map);
    if map.len() >= MAX_REMEMBERED && !map.contains_key(&key) {
        // Full: the ones with a single strike are forgotten first.
        map.retain(|_, n| *n >= STRIKES);
    }
    if map.len() >= MAX_REMEMBERED && !map.contains_key(&key) {
        return false;
    }
    let n = map.entry(key).or_default();
    *n += 1;
    *n >= STRIKES
}

impl Reputation {
    /// A strike against `publisher`; whether it is muted now.
    pub fn strike_publisher(&self, publisher: &str) -> bool {
        strike(&self.publishers, publisher.to_string())
    }

    /// A strike against the neighbour at `addr`; whether it is muted now.
    pub fn strike_neighbour(&self, addr: SocketAddr) -> bool {
        strike(&self.neighbours, addr)
    }

    /// Whether `publisher` is muted.
    pub fn publisher_muted(&self, publisher: &str) -> bool {
        lock(&self.publishers).get(publisher).is_some_and(|n| *n >= STRIKES)
    }

    /// Whether the neighbour at `addr` is muted.
    pub fn neighbour_muted(&self, addr: &SocketAddr) -> bool {
        lock(&self.neighbours).get(addr).is_some_and(|n| *n >= STRIKES)
    }
}

impl Daemon {
    /// Checks `records` (each with the addresses that said they hold it) in the background.
    pub(crate) fn verify_later(&self, records: Vec<(Record, Vec<SocketAddr>)>) {
        let Some(s) = self.inner.search.get() else { return };
        for (record, holders) in records.into_iter().take(PER_SEARCH) {
            let Ok(permit) = s.checking.clone().try_acquire_owned() else { return };
            let daemon = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                daemon.verify(record, holders).await;
            });
        }
    }

    async fn verify(&self, record: Record, holders: Vec<SocketAddr>) {
        let Some(s) = self.inner.search.get() else { return };
        let Some(hash) = shoal_proto::InfoHash::from_hex(&record.body.info_hash) else { return };
        let (tx, _rx) = tokio::sync::watch::channel(Default::default());
        let magnet = Magnet::new(hash);
        let fetch = self.inner.session.fetch_metadata(&magnet, holders, false, tx);
        let Ok(Ok((meta, _))) = tokio::time::timeout(FETCH_TIMEOUT, fetch).await else {
            tracing::debug!(info_hash = %record.body.info_hash, "search: could not fetch the metadata to check a result");
            return;
        };
        let (index, publisher, hex) = (s.index.clone(), record.body.publisher.clone(), record.body.info_hash.clone());
        match judge(&record, &meta) {
            Verdict::Agrees => {
                let _ = tokio::task::spawn_blocking(move || index.mark_verified(&hex, &publisher)).await;
            }
            Verdict::Lies => {
                let muted = s.reputation.strike_publisher(&publisher);
                tracing::warn!(
                    %publisher,
                    info_hash = %hex,
                    "search: a record says {:?} ({} bytes) but the torrent is {:?} ({} bytes){}",
                    record.body.name,
                    record.body.size,
                    meta.info.name,
                    meta.info.total_length(),
                    if muted { "; its publisher is muted" } else { "" }
                );
                let _ = tokio::task::spawn_blocking(move || {
                    if muted {
                        index.remove_publisher(&publisher)
                    } else {
                        index.remove(&hex, &publisher).map(usize::from)
                    }
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_or_neighbour_is_muted_at_its_second_strike_and_others_are_not() {
        let r = Reputation::default();
        assert!(!r.strike_publisher("liar"));
        assert!(!r.publisher_muted("liar"));
        assert!(r.strike_publisher("liar"));
        assert!(r.publisher_muted("liar"));
        assert!(!r.publisher_muted("honest"));
        let addr: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        assert!(!r.strike_neighbour(addr));
        assert!(r.strike_neighbour(addr));
        assert!(r.neighbour_muted(&addr));
        assert!(!r.neighbour_muted(&"127.0.0.1:7001".parse().expect("addr")));
    }

    #[test]
    fn a_record_agrees_only_when_name_size_and_hash_match_the_metadata() {
        let info = b"d6:lengthi5e4:name9:notes.txt12:piece lengthi16384e6:pieces20:xxxxxxxxxxxxxxxxxxxxe";
        let meta = Metainfo::from_info_bytes(info).expect("info");
        let body = shoal_search::RecordBody {
            info_hash: meta.info_hash.to_hex(),
            name: "notes.txt".into(),
            size: 5,
            files: Vec::new(),
            file_count: 1,
            tags: Vec::new(),
            trackers: Vec::new(),
            group: None,
            publisher: String::new(),
            published_at: 0,
        };
        let record = Record { body, signature: String::new() };
        assert_eq!(judge(&record, &meta), Verdict::Agrees);
        let mut renamed = record.clone();
        renamed.body.name = "blockbuster-2026-1080p.mkv".into();
        assert_eq!(judge(&renamed, &meta), Verdict::Lies);
        let mut bigger = record.clone();
        bigger.body.size = 4_000_000_000;
        assert_eq!(judge(&bigger, &meta), Verdict::Lies);
        let mut other = record;
        other.body.info_hash = "ab".repeat(20);
        assert_eq!(judge(&other, &meta), Verdict::Lies);
    }

    #[test]
    fn the_memory_of_strikes_is_bounded() {
        let r = Reputation::default();
        for i in 0..MAX_REMEMBERED + 10 {
            r.strike_publisher(&i.to_string());
        }
        assert!(lock(&r.publishers).len() <= MAX_REMEMBERED);
        r.strike_publisher("a");
        r.strike_publisher("a");
        assert!(r.publisher_muted("a"), "a muted publisher is kept");
    }
}
