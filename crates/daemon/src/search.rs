//! Search in the daemon: its local index, its index servers and its search neighbours.
//!
//! The local index (`DATA/search.sqlite3`, at most [`MAX_ITEMS`] records, the least recently
//! stored going first) holds a record of each of the daemon's torrents, signed by the node's
//! identity (added when the torrent's metadata is known, removed with the torrent), and the
//! records it learned from index servers, neighbours and the DHT, with the seeders last seen. The search neighbours (the
//! `shoal_search` overlay, [`shoal_search::neighbours`]) share the peer port: the engine hands
//! over connections for the search swarm; `--search-peer` / `[search] peers` name neighbours to
//! keep, and with the DHT on the node announces itself in the search swarm there and dials a few
//! of the others it finds (looking again after [`LOOK_WHEN_FEW`] while it has fewer than
//! [`neighbours::WANTED`] neighbours, the wait doubling each time up to [`LOOK_EVERY`], the
//! period once it has enough); local discovery (BEP 14)
//! announces the search swarm too and offers the nodes it hears; and a torrent's peer that says
//! `shoal_search` in its extension handshake is offered as well. Neighbours are answered from the records of public torrents only (a group share's
//! record is never sent to a neighbour).
//!
//! `search.query` looks in the local index (this node's groups' records included), then asks its
//! index servers (each [`INDEX_TIMEOUT`], at most [`shoal_search::client::MAX_ANSWER`] bytes;
//! one that fails is left out, logged) and its neighbours ([`PEERS_WAIT`], hop limit
//! [`HOP_LIMIT`]) at once. Every record from elsewhere is checked (bounds and signature) before
//! it is shown or kept; one that does not check is dropped and counted against the neighbour
//! it came through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_identity::{Groups, Identity};
use shoal_proto::Metainfo;
use shoal_rpc::api::{ApiError, SearchHit, SearchRequest};
use shoal_search::neighbours::{self, Neighbours};
use shoal_search::{Index, Record};

use crate::{Daemon, lock};

/// How long an index server may take to answer.
pub(crate) const INDEX_TIMEOUT: Duration = Duration::from_secs(5);
/// How long neighbours have to answer.
pub const PEERS_WAIT: Duration = Duration::from_secs(2);
/// How far a query travels among neighbours.
pub const HOP_LIMIT: u8 = 4;
/// Holders kept per result.
pub const MAX_HOLDERS: usize = 8;
/// Records the local index keeps.
pub const MAX_ITEMS: usize = 100_000;

/// How the daemon searches.
#[derive(Clone, Debug, Default)]
pub struct SearchSetup {
    /// Index servers `search.query` asks.
    pub indexes: Vec<String>,
    /// Search neighbours to keep.
    pub peers: Vec<SocketAddr>,
    /// Take part in the search overlay (answer and accept neighbours).
    pub overlay: bool,
    /// Crawl the DHT for torrents (BEP 51), when the DHT runs.
    pub dht_crawl: bool,
    /// Publishers (identity IDs, compact) whose results rank first.
    pub trusted: Vec<String>,
}

pub(crate) struct Searching {
    pub(crate) index: Arc<Index>,
    pub(crate) identity: Arc<Identity>,
    indexes: Vec<String>,
    trusted: Vec<String>,
    pub(crate) neighbours: Option<Neighbours>,
    crawling: bool,
    /// Records from neighbours that did not check.
    bad_records: std::sync::atomic::AtomicU64,
    /// Results being checked against their metadata.
    pub(crate) checking: Arc<tokio::sync::Semaphore>,
    /// Strikes against publishers and neighbours.
    pub(crate) reputation: crate::verify::Reputation,
    /// Keeps this node announced in the DHT as a member of the search swarm.
    _announced: Option<AbortOnDrop>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first wait before a node short of neighbours looks for search nodes in the DHT again
/// (it doubles each time, up to [`LOOK_EVERY`]).
pub const LOOK_WHEN_FEW: Duration = Duration::from_secs(10);
/// How often a node with enough neighbours announces itself again.
pub const LOOK_EVERY: Duration = Duration::from_secs(15 * 60);

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Daemon {
    /// Opens the local index, records the daemon's torrents in it and, with `setup.overlay`,
    /// joins the search overlay on the peer port.
    pub async fn start_search(&self, setup: SearchSetup) -> Result<(), String> {
        let dir = self.inner.data_dir.clone();
        let (index, identity) = tokio::task::spawn_blocking(move || {
            let index = Index::open(&dir.join("search.sqlite3"), MAX_ITEMS).map_err(|e| e.to_string())?;
            let (identity, _) = Identity::load_or_create(&dir, None).map_err(|e| e.to_string())?;
            Ok::<_, String>((Arc::new(index), Arc::new(identity)))
        })
        .await
        .map_err(|_| "the search index did not open".to_string())??;
        let neighbours = setup.overlay.then(|| {
            let session = &self.inner.session;
            let config = neighbours::Config {
                peer_id: session.peer_id(),
                port: session.listen_addr().port(),
                policy: Default::default(),
            };
            let node = Neighbours::start(config, index.clone());
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            session.serve(neighbours::swarm(), tx);
            let weak = node.clone();
            tokio::spawn(async move {
                while let Some(c) = rx.recv().await {
                    weak.accept(c.stream, c.addr, c.handshake.peer_id);
                }
            });
            for peer in &setup.peers {
                node.add(*peer);
            }
            node
        });
        // Other search nodes are found through the DHT: each announces itself in the search
        // swarm and offers the others it hears of to its neighbours.
        let announced = match (&neighbours, self.inner.session.dht()) {
            (Some(node), Some(dht)) => {
                let (node, dht) = (node.clone(), dht.clone());
                let port = self.inner.session.listen_addr().port();
                Some(AbortOnDrop(tokio::spawn(async move {
                    let mut wait = LOOK_WHEN_FEW;
                    loop {
                        // A lookup that announces this node and offers the ones it finds.
                        if let Ok(mut found) = dht.get_peers(neighbours::swarm(), Some(port)).await {
                            while let Some(batch) = found.recv().await {
                                node.offer(batch);
                            }
                        }
                        // Short of neighbours, the next look comes soon, then less and less often
                        // (a node with no other Shoal node around does not keep asking).
                        let few = node.status().neighbours.len() < neighbours::WANTED;
                        let pause = if few { wait } else { LOOK_EVERY };
                        wait = if few { (wait * 2).min(LOOK_EVERY) } else { LOOK_WHEN_FEW };
                        tokio::time::sleep(pause).await;
                    }
                })))
            }
            _ => None,
        };
        // And among the peers of any torrent: those that say they are in the overlay too.
        if let Some(node) = &neighbours {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            self.inner.session.on_search_peers(tx);
            let node = node.clone();
            tokio::spawn(async move {
                while let Some(addr) = rx.recv().await {
                    node.offer(vec![addr]);
                }
            });
        }
        // And on the local network (BEP 14), when local discovery is on.
        if let Some(node) = &neighbours
            && let Some(mut nearby) = self.inner.session.lsd_watch(neighbours::swarm())
        {
            let node = node.clone();
            tokio::spawn(async move {
                while let Some(addr) = nearby.recv().await {
                    node.offer(vec![addr]);
                }
            });
        }
        let searching = Searching {
            _announced: announced,
            index,
            identity,
            indexes: setup.indexes,
            trusted: setup.trusted,
            neighbours,
            crawling: setup.dht_crawl,
            bad_records: Default::default(),
            checking: Arc::new(tokio::sync::Semaphore::new(crate::verify::AT_ONCE)),
            reputation: Default::default(),
        };
        if self.inner.search.set(searching).is_err() {
            return Err("search is already running".into());
        }
        let metas: Vec<Metainfo> = lock(&self.inner.entries).values().filter_map(|e| e.meta.clone()).collect();
        self.index_torrents(metas);
        if setup.dht_crawl {
            if self.inner.session.dht().is_none() {
                return Err("the DHT crawler needs the DHT (it is off)".into());
            }
            tokio::spawn(self.clone().crawl_dht());
        }
        Ok(())
    }

    /// Records these torrents of the daemon's in the local index (in the background).
    pub(crate) fn index_torrents(&self, metas: Vec<Metainfo>) {
        let Some(s) = self.inner.search.get() else { return };
        if metas.is_empty() {
            return;
        }
        let (index, identity, neighbours) = (s.index.clone(), s.identity.clone(), s.neighbours.clone());
        tokio::task::spawn_blocking(move || {
            let me = identity.id().compact();
            for meta in metas {
                let hex = meta.info_hash.to_hex();
                if index.has(&hex, &me).unwrap_or(false) {
                    continue;
                }
                match Record::publish(&meta, &[], &identity, now()) {
                    Ok(record) => {
                        if let Err(e) = index.insert(&record, "local", true, now(), None) {
                            tracing::warn!("search index: {e}");
                        }
                    }
                    Err(e) => tracing::debug!("search index: {hex} not recorded: {e}"),
                }
            }
            if let Some(n) = neighbours {
                n.own_changed();
            }
        });
    }

    /// Takes a removed torrent's record out of the local index.
    pub(crate) fn unindex_torrent(&self, info_hash: String) {
        let Some(s) = self.inner.search.get() else { return };
        let (index, me, neighbours) = (s.index.clone(), s.identity.id().compact(), s.neighbours.clone());
        tokio::task::spawn_blocking(move || {
            if index.remove(&info_hash, &me).unwrap_or(false)
                && let Some(n) = neighbours
            {
                n.own_changed();
            }
        });
    }

    /// `search.status`.
    pub(crate) async fn search_view(&self) -> Result<shoal_rpc::api::SearchStatus, ApiError> {
        let Some(s) = self.inner.search.get() else {
            return Err(ApiError::Failed("search has not started yet".into()));
        };
        let index = s.index.clone();
        let records = tokio::task::spawn_blocking(move || index.len())
            .await
            .map_err(|_| ApiError::Failed("the index count did not finish".into()))?
            .map_err(|e| ApiError::Failed(e.to_string()))?;
        let n = s.neighbours.as_ref().map(Neighbours::status).unwrap_or_default();
        let c = self.crawl_stats();
        Ok(shoal_rpc::api::SearchStatus {
            records: records as u64,
            indexes: s.indexes.clone(),
            overlay: s.neighbours.is_some(),
            neighbours: n.neighbours.iter().map(ToString::to_string).collect(),
            queries_answered: n.stats.queries,
            duplicates: n.stats.duplicates,
            rate_limited: n.stats.rate_limited,
            bad_records: s.bad_records.load(std::sync::atomic::Ordering::Relaxed),
            crawl: s.crawling.then_some(shoal_rpc::api::CrawlStatus {
                sampled_nodes: c.sampled_nodes,
                new_hashes: c.new_hashes,
                recorded: c.recorded,
                failed: c.failed,
            }),
        })
    }

    /// The search neighbours' state (`None`: the overlay is off).
    pub fn search_neighbours(&self) -> Option<neighbours::Status> {
        self.inner.search.get()?.neighbours.as_ref().map(Neighbours::status)
    }

    pub(crate) async fn search(&self, request: SearchRequest) -> Result<Vec<SearchHit>, ApiError> {
        let SearchRequest { q: words, limit, peers } = request;
        if shoal_search::index::fts_query(&words).is_none() {
            return Err(ApiError::InvalidParams("q: no word to look for".into()));
        }
        let Some(s) = self.inner.search.get() else {
            return Err(ApiError::Failed("search has not started yet".into()));
        };
        // The local index first: this node's torrents and what it learned.
        let (index, dir, me) = (s.index.clone(), self.inner.data_dir.clone(), s.identity.id().compact());
        let q = words.clone();
        let trusted: Vec<String> = std::iter::once(me).chain(s.trusted.iter().cloned()).collect();
        let local = tokio::task::spawn_blocking(move || {
            let groups: Vec<String> =
                Groups::new(&dir).list().unwrap_or_default().into_iter().map(|g| g.authority.to_lowercase()).collect();
            index.search(&q, &groups, &trusted, limit)
        })
        .await
        .map_err(|_| ApiError::Failed("the index search did not finish".into()))?
        .map_err(|e| ApiError::Failed(e.to_string()))?;
        let mut hits: Vec<SearchHit> = Vec::new();
        {
            let entries = lock(&self.inner.entries);
            // Torrents still without metadata (magnet links) are known by name only.
            let query: Vec<String> = shoal_search::overlay::table::tokens(&words).collect();
            for e in entries.values().filter(|e| e.meta.is_none()) {
                let have: Vec<String> = shoal_search::overlay::table::tokens(&e.name).collect();
                if hits.len() < limit && query.iter().all(|w| have.iter().any(|t| t.starts_with(w.as_str()))) {
                    hits.push(SearchHit {
                        name: e.name.clone(),
                        size: 0,
                        info_hash: e.info_hash.clone(),
                        magnet: e.magnet.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                        publisher: None,
                        source: "local".into(),
                        id: Some(e.id.0),
                        group_only: false,
                        verified: false,
                        peers: Vec::new(),
                        seeders: None,
                        trusted: false,
                    });
                }
            }
            for hit in local {
                if hits.len() >= limit
                    || hits.iter().any(|h| h.info_hash == hit.record.body.info_hash)
                    || s.reputation.publisher_muted(&hit.record.body.publisher)
                {
                    continue;
                }
                let id = entries.id_of(&hit.record.body.info_hash);
                let source = if id.is_some() { "local".to_string() } else { hit.source };
                let verified = hit.verified || id.is_some_and(|id| entries.get(&id).is_some_and(|e| e.meta.is_some()));
                let mut shown = to_hit(hit.record, source, id, verified, &[]);
                // The seeders last seen, until a fresh count comes below.
                shown.seeders = hit.seeders.map(|(n, _)| n);
                hits.push(shown);
            }
        }
        if hits.len() >= limit {
            return Ok(hits);
        }
        let asking_peers = peers.then_some(s.neighbours.clone()).flatten();
        let want = limit.min(usize::from(shoal_search::overlay::wire::MAX_WANT)) as u16;
        let from_peers = async {
            match &asking_peers {
                Some(n) => n.search(&words, want, HOP_LIMIT, PEERS_WAIT).await,
                None => Vec::new(),
            }
        };
        let (from_indexes, from_peers) = tokio::join!(self.ask_indexes(&s.indexes, &words, limit), from_peers);
        let mut learned: Vec<(Record, &'static str)> = Vec::new();
        // Seeders an index's tracker counts, by info-hash (the first index that counts them).
        let mut seeders: std::collections::HashMap<String, u32> = Default::default();
        for a in from_indexes.into_iter().filter(|a| !s.reputation.publisher_muted(&a.record.body.publisher)) {
            if let Some(n) = a.seeders {
                seeders.entry(a.record.body.info_hash.clone()).or_insert(n);
            }
            learned.push((a.record, "index"));
        }
        let mut bad = 0;
        let mut holders: std::collections::HashMap<String, Vec<SocketAddr>> = Default::default();
        for found in from_peers.into_iter().filter(|f| !s.reputation.neighbour_muted(&f.via)) {
            match Record::from_json(&found.record) {
                Ok((record, _)) if s.reputation.publisher_muted(&record.body.publisher) => {}
                Ok((record, _)) => {
                    if let Some(h) = found.holder {
                        let known = holders.entry(record.body.info_hash.clone()).or_default();
                        if known.len() < MAX_HOLDERS && !known.contains(&h) {
                            known.push(h);
                        }
                    }
                    learned.push((record, "peers"))
                }
                Err(e) => {
                    bad += 1;
                    let muted = s.reputation.strike_neighbour(found.via);
                    tracing::info!(
                        via = %found.via,
                        "search: a neighbour passed on a record that does not check: {e}{}",
                        if muted { "; it is muted" } else { "" }
                    );
                }
            }
        }
        if bad > 0 {
            s.bad_records.fetch_add(bad, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("search: {bad} record(s) from neighbours dropped");
        }
        // What was learned is kept (bounded by the index), then shown.
        let keep: Vec<(Record, &'static str)> = learned.clone();
        let mut counted: Vec<(String, u32)> = seeders.iter().map(|(h, n)| (h.clone(), *n)).collect();
        for (hash, held) in &holders {
            if !seeders.contains_key(hash) {
                counted.push((hash.clone(), held.len() as u32));
            }
        }
        let index = s.index.clone();
        tokio::task::spawn_blocking(move || {
            for (record, source) in keep {
                let _ = index.insert(&record, source, false, now(), None);
            }
            for (hash, n) in counted {
                let _ = index.note_seeders(&hash, n, now());
            }
        });
        let mut to_check = Vec::new();
        // Holders found now go with a result the index already gave.
        for hit in &mut hits {
            if let (false, Some(held)) = (hit.verified, holders.get(&hit.info_hash))
                && let Some((record, _)) = learned.iter().find(|(r, _)| r.body.info_hash == hit.info_hash)
            {
                to_check.push((record.clone(), held.clone()));
            }
            for h in holders.get(&hit.info_hash).into_iter().flatten() {
                if hit.peers.len() < MAX_HOLDERS && !hit.peers.contains(&h.to_string()) {
                    hit.peers.push(h.to_string());
                    hit.magnet.push_str(&format!("&x.pe={h}"));
                }
            }
            hit.seeders = seeders_of(&seeders, &hit.info_hash, &hit.peers).or(hit.seeders);
        }
        for (record, source) in learned {
            if hits.len() >= limit {
                break;
            }
            if hits.iter().any(|h| h.info_hash == record.body.info_hash) {
                continue;
            }
            let id = lock(&self.inner.entries).id_of(&record.body.info_hash);
            let (source, verified) = if id.is_some() { ("local", true) } else { (source, false) };
            let held = holders.get(&record.body.info_hash).map(Vec::as_slice).unwrap_or_default();
            if !verified && !held.is_empty() {
                to_check.push((record.clone(), held.to_vec()));
            }
            let mut hit = to_hit(record, source.to_string(), id, verified, held);
            hit.seeders = seeders_of(&seeders, &hit.info_hash, &hit.peers);
            hits.push(hit);
        }
        self.verify_later(to_check);
        // This node's own first, then those of publishers the user trusts, each in its order.
        for hit in &mut hits {
            hit.trusted = hit.publisher.as_ref().is_some_and(|p| s.trusted.contains(p));
        }
        hits.sort_by_key(|h| (h.source != "local", !h.trusted));
        Ok(hits)
    }

    /// Every index server's records, in the order the servers are listed.
    async fn ask_indexes(&self, indexes: &[String], words: &str, limit: usize) -> Vec<shoal_search::client::Answered> {
        if indexes.is_empty() {
            return Vec::new();
        }
        let client = match shoal_search::client::http_client(INDEX_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("search: {e}");
                return Vec::new();
            }
        };
        let mut asks = tokio::task::JoinSet::new();
        for (i, base) in indexes.iter().enumerate() {
            let (client, base, words) = (client.clone(), base.clone(), words.to_string());
            asks.spawn(async move {
                let answer = shoal_search::client::search(&client, &base, &words, limit, &[]).await;
                (i, base, answer)
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = asks.join_next().await {
            if let Ok(answer) = done {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(i, _, _)| *i);
        let mut records = Vec::new();
        for (_, base, answer) in answers {
            match answer {
                Ok((found, bad)) => {
                    if bad > 0 {
                        tracing::info!("search: index {base} answered {bad} record(s) that do not check");
                    }
                    records.extend(found);
                }
                Err(e) => tracing::info!("search: index {base}: {e}"),
            }
        }
        records
    }
}

/// What is known of a result's seeders: an index's tracker's count, else how many nodes said
/// they hold it.
fn seeders_of(counted: &std::collections::HashMap<String, u32>, info_hash: &str, holders: &[String]) -> Option<u32> {
    counted.get(info_hash).copied().or((!holders.is_empty()).then_some(holders.len() as u32))
}

fn to_hit(record: Record, source: String, id: Option<u64>, verified: bool, holders: &[SocketAddr]) -> SearchHit {
    let mut magnet = record.magnet();
    for h in holders {
        magnet.push_str(&format!("&x.pe={h}"));
    }
    SearchHit {
        magnet,
        peers: holders.iter().map(ToString::to_string).collect(),
        group_only: record.body.group.is_some(),
        name: record.body.name,
        size: record.body.size,
        info_hash: record.body.info_hash,
        publisher: Some(record.body.publisher),
        source,
        id,
        verified,
        seeders: None,
        trusted: false,
    }
}
