//! The RPC's view of search (`search.query`): what one result says. Re-exported from
//! [`crate::api`].

use serde::{Deserialize, Serialize};

/// What `search.query` asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    /// The words (each the start of a word of a name, file or tag; all required).
    pub q: String,
    /// Most results.
    pub limit: usize,
    /// Ask the search neighbours too.
    pub peers: bool,
}

/// One result of `search.query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The torrent's name.
    pub name: String,
    /// Total bytes.
    pub size: u64,
    /// Info-hash, lower-case hex.
    pub info_hash: String,
    /// A magnet link to it (with the addresses of `peers` as `x.pe`).
    pub magnet: String,
    /// Nodes that said, answering the search, that they hold its data (`IP:PORT`).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Seeders: what an index server's tracker counts now, else how many nodes said they hold
    /// it (`None`: nobody counted).
    #[serde(default)]
    pub seeders: Option<u32>,
    /// Its publisher is one the user trusts (`--trust`, `[search] trust`): such results come
    /// right after this node's own.
    #[serde(default)]
    pub trusted: bool,
    /// The identity that signed the record (`None` for a torrent of this node's that it holds
    /// no record of, such as a magnet link still without metadata).
    pub publisher: Option<String>,
    /// Where it came from: `local` (this daemon's torrents), `index` (an index server),
    /// `peers` (search neighbours) or `dht`.
    pub source: String,
    /// Its metadata was fetched and its info-hash checked (this node holds the torrent's info
    /// dictionary); a result from elsewhere is `false` until then.
    #[serde(default)]
    pub verified: bool,
    /// The torrent's id here, for a local result.
    pub id: Option<u64>,
    /// A group share: only its members can fetch it (with its .torrent).
    pub group_only: bool,
}

/// `search.status`: the local index, the search neighbours and the DHT crawler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchStatus {
    /// Records in the local index.
    pub records: u64,
    /// Index servers asked.
    pub indexes: Vec<String>,
    /// Whether this node takes part in search without a server.
    pub overlay: bool,
    /// Connected search neighbours: each one's peer address (`IP:PORT`).
    pub neighbours: Vec<String>,
    /// Queries from neighbours answered (first copies).
    pub queries_answered: u64,
    /// Second copies of queries dropped.
    pub duplicates: u64,
    /// Queries dropped because a neighbour was over its rate.
    pub rate_limited: u64,
    /// Records from neighbours that did not check (dropped).
    pub bad_records: u64,
    /// What the DHT crawler did (`None`: it is off).
    pub crawl: Option<CrawlStatus>,
}

/// What the DHT crawler did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlStatus {
    /// Nodes that answered `sample_infohashes`.
    pub sampled_nodes: u64,
    /// New info-hashes sampled.
    pub new_hashes: u64,
    /// Torrents recorded in the index (metadata fetched and checked).
    pub recorded: u64,
    /// Metadata fetches that failed or timed out.
    pub failed: u64,
}
