//! Search for Shoal: what publishers say about torrents and where a node keeps what it learned.
//!
//! - [`record`]: publication records — a torrent's name, files, size and tags, signed by the
//!   publisher's identity — and their checks (sizes, the signature, the info-hash's form).
//! - [`index`]: the local full-text index in SQLite FTS5 (BM25 ranking, prefix matching,
//!   records of group shares shown only to that group's members, bounded with eviction of the
//!   least recently seen).

pub mod index;
pub mod record;

pub use index::{Hit, Index, IndexError};
pub use record::{FileItem, Record, RecordBody, RecordError};
