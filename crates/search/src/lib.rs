//! Search for Shoal: what publishers say about torrents and where a node keeps what it learned.
//!
//! - [`record`]: publication records — a torrent's name, files, size and tags, signed by the
//!   publisher's identity — and their checks (sizes, the signature, the info-hash's form).
//! - [`index`]: the local full-text index in SQLite FTS5 (BM25 ranking, prefix matching,
//!   records of group shares shown only to that group's members, bounded with eviction of the
//!   least recently seen).
//! - [`overlay`]: search with no server — the policy among search neighbours (hop limits,
//!   query ids, routing tables, dynamic querying, rate limits) and its wire messages.
//! - [`neighbours`]: the overlay's driver — connections to search neighbours over the
//!   BitTorrent wire (BEP 10 extension `shoal_search`), dialled and accepted.
//! - [`client`]: asking an index server (publish, search), answers bounded and re-checked.
//! - [`server`]: the index server's HTTP routes (`POST /publish`, `GET /search`).

pub mod client;
pub mod index;
pub mod neighbours;
pub mod overlay;
pub mod record;
pub mod server;

pub use index::{Hit, Index, IndexError};
pub use record::{FileItem, Record, RecordBody, RecordError};
