//! The RPC's view of search (`search.query`): what one result says. Re-exported from
//! [`crate::api`].

use serde::{Deserialize, Serialize};

/// One result of `search.query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The torrent's name.
    pub name: String,
    /// Total bytes.
    pub size: u64,
    /// Info-hash, lower-case hex.
    pub info_hash: String,
    /// A magnet link to it.
    pub magnet: String,
    /// The identity that signed the record (`None` for this node's own torrents).
    pub publisher: Option<String>,
    /// Where it came from: `local` (this daemon's torrents) or `index` (an index server).
    pub source: String,
    /// The torrent's id here, for a local result.
    pub id: Option<u64>,
    /// A group share: only its members can fetch it (with its .torrent).
    pub group_only: bool,
}
