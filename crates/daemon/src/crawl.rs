//! The DHT crawler: the local index learns of torrents the DHT knows, as DHT search engines do
//! (`--dht-crawl`, `[search] dht_crawl`; off by default, and only with the DHT on).
//!
//! Each round ([`EVERY`]; [`RETRY`] while the routing table is empty) asks DHT nodes for a sample of the info-hashes they store (BEP 51
//! `sample_infohashes`), starting from the routing table and walking on to the nodes they
//! name, at most [`NODES_PER_ROUND`] nodes, each asked again only after the `interval` it
//! gave. Info-hashes not seen before (a bounded memory of [`MAX_SEEN`]) wait in a queue of at
//! most [`MAX_PENDING`] and have their metadata fetched from their peers (BEP 9, peers found
//! through the DHT), oldest first, [`CONCURRENT`] at a time, at most [`METADATA_PER_ROUND`] per
//! round, each for at most [`METADATA_TIMEOUT`]. A torrent whose
//! info dictionary arrived (and so matches its info-hash) is recorded in the index, signed by
//! this node (it vouches that the name goes with the info-hash), as source `dht`, verified.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_proto::InfoHash;
use shoal_proto::magnet::Magnet;
use shoal_search::Record;

use crate::Daemon;

/// Time between two rounds.
pub const EVERY: Duration = Duration::from_secs(60);
/// Time before another round while the routing table is empty.
pub const RETRY: Duration = Duration::from_secs(5);
/// Nodes asked per round.
pub const NODES_PER_ROUND: usize = 32;
/// Metadata fetches per round.
pub const METADATA_PER_ROUND: usize = 16;
/// Metadata fetches at once.
pub const CONCURRENT: usize = 2;
/// Longest wait for one torrent's metadata.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Info-hashes waiting for their metadata to be fetched (more are dropped until there is room).
pub const MAX_PENDING: usize = 1024;
/// Info-hashes remembered as seen (the oldest forgotten first).
pub const MAX_SEEN: usize = 20_000;
/// Nodes whose `interval` is remembered.
const MAX_WAITING_NODES: usize = 4096;

/// What the crawler did, for the log and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrawlStats {
    /// `sample_infohashes` answers.
    pub sampled_nodes: u64,
    /// Info-hashes sampled, new ones.
    pub new_hashes: u64,
    /// Torrents recorded in the index.
    pub recorded: u64,
    /// Metadata fetches that failed or timed out.
    pub failed: u64,
}

/// The crawler's memory between rounds.
#[derive(Default)]
pub(crate) struct Crawler {
    seen: HashSet<InfoHash>,
    seen_order: VecDeque<InfoHash>,
    /// When each node may be asked again.
    next_ask: HashMap<SocketAddr, Instant>,
    /// Info-hashes sampled whose metadata is still to be fetched, oldest first.
    pending: VecDeque<InfoHash>,
    pub(crate) stats: CrawlStats,
}

impl Crawler {
    fn remember(&mut self, hash: InfoHash) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        self.seen_order.push_back(hash);
        while self.seen_order.len() > MAX_SEEN {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

impl Daemon {
    /// Runs the crawler for ever (while the DHT runs).
    pub async fn crawl_dht(self) {
        let mut crawler = Crawler::default();
        loop {
            if self.inner.session.dht().is_none() {
                return;
            }
            let table_empty = !self.crawl_round(&mut crawler).await;
            tracing::info!(stats = ?crawler.stats, waiting = crawler.pending.len(), "DHT crawl round done");
            // With the routing table still empty, another round soon.
            tokio::time::sleep(if table_empty { RETRY } else { EVERY }).await;
        }
    }

    /// One round: sample nodes, then fetch the metadata of what is new (the oldest waiting
    /// first). Whether the routing table had nodes to start from.
    pub(crate) async fn crawl_round(&self, crawler: &mut Crawler) -> bool {
        let Some(dht) = self.inner.session.dht().cloned() else { return false };
        let mut queue: VecDeque<SocketAddr> = dht.nodes(NODES_PER_ROUND).await.unwrap_or_default().into();
        let had_nodes = !queue.is_empty();
        let mut asked = HashSet::new();
        let mut fresh = Vec::new();
        let now = Instant::now();
        crawler.next_ask.retain(|_, at| *at > now);
        while let Some(addr) = queue.pop_front() {
            if asked.len() >= NODES_PER_ROUND {
                break;
            }
            if !asked.insert(addr) || crawler.next_ask.get(&addr).is_some_and(|at| *at > now) {
                continue;
            }
            let target: [u8; 20] = rand::random();
            let Ok(Some(reply)) = dht.sample_infohashes(addr, target).await else { continue };
            crawler.stats.sampled_nodes += 1;
            if crawler.next_ask.len() < MAX_WAITING_NODES {
                crawler.next_ask.insert(addr, now + Duration::from_secs(u64::from(reply.interval.max(60))));
            }
            for node in reply.nodes {
                if !asked.contains(&node.addr) && queue.len() < 4 * NODES_PER_ROUND {
                    queue.push_back(node.addr);
                }
            }
            for hash in reply.samples {
                if crawler.remember(hash) {
                    crawler.stats.new_hashes += 1;
                    fresh.push(hash);
                }
            }
            self.publish_crawl(crawler);
        }
        let known: HashSet<String> = crate::lock(&self.inner.entries).values().map(|e| e.info_hash.clone()).collect();
        for hash in fresh.into_iter().filter(|h| !known.contains(&h.to_hex())) {
            if crawler.pending.len() < MAX_PENDING {
                crawler.pending.push_back(hash);
            }
        }
        let take = crawler.pending.len().min(METADATA_PER_ROUND);
        let fresh: Vec<InfoHash> = crawler.pending.drain(..take).collect();
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
        let mut fetches = tokio::task::JoinSet::new();
        for hash in fresh {
            let (daemon, slots) = (self.clone(), slots.clone());
            fetches.spawn(async move {
                let _slot = slots.acquire_owned().await;
                daemon.record_from_dht(hash).await
            });
        }
        while let Some(done) = fetches.join_next().await {
            match done {
                Ok(true) => crawler.stats.recorded += 1,
                _ => crawler.stats.failed += 1,
            }
            self.publish_crawl(crawler);
        }
        had_nodes
    }

    /// Makes the crawler's counters what `search.status` shows.
    fn publish_crawl(&self, crawler: &Crawler) {
        *crate::lock(&self.inner.crawl_stats) = crawler.stats;
    }

    /// Fetches one torrent's metadata and records it in the index; whether it did.
    async fn record_from_dht(&self, hash: InfoHash) -> bool {
        let Some(s) = self.inner.search.get() else { return false };
        let (tx, _rx) = tokio::sync::watch::channel(Default::default());
        let magnet = Magnet::new(hash);
        let fetch = self.inner.session.fetch_metadata(&magnet, Vec::new(), false, tx);
        let meta = match tokio::time::timeout(METADATA_TIMEOUT, fetch).await {
            Ok(Ok((meta, _))) => meta,
            Ok(Err(e)) => {
                tracing::debug!(info_hash = %hash.to_hex(), "DHT crawl: {e}");
                return false;
            }
            Err(_) => return false,
        };
        let (index, identity, neighbours) = (s.index.clone(), s.identity.clone(), s.neighbours.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let record = Record::publish(&meta, &[], &identity, crate::search::now()).ok()?;
            index.insert(&record, "dht", true, crate::search::now(), None).ok()
        })
        .await
        .ok()
        .flatten()
        .is_some();
        if stored && let Some(n) = neighbours {
            n.own_changed();
        }
        stored
    }

    /// What the DHT crawler did so far.
    pub fn crawl_stats(&self) -> CrawlStats {
        *crate::lock(&self.inner.crawl_stats)
    }
}
