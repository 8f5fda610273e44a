//! Shoal's disk layer: where a torrent's bytes live and how they get there and back.
//!
//! - [`layout`]: the files under a download folder, the piece-to-file mapping and path
//!   safety checks ([`StorageLayout`], [`FileSpec`]).
//! - [`storage`]: opening (creating, sparse preallocation), positioned block reads and
//!   writes from many threads, piece verification and re-checks ([`Storage`]).
//! - [`resume`]: durable, crash-safe records of verified pieces ([`ResumeStore`]).
//! - [`create`]: scanning and hashing content for `shoal create` ([`scan_path`],
//!   [`hash_pieces`]).
//!
//! Everything here is synchronous `std` code; the async engine calls it from blocking
//! threads. The crate takes its own plain description of files rather than a parsed
//! metainfo, so it depends only on the shared piece geometry types of `shoal-proto`.
//! Unix only: I/O uses positioned reads and writes (`pread`/`pwrite`).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod create;
pub mod error;
mod hash;
pub mod layout;
mod pool;
pub mod resume;
pub mod storage;

pub use create::{Scanned, hash_pieces, hash_v2_files, scan_path};
pub use error::{IoOp, StorageError};
pub use hash::{V2Hasher, hash_piece_data};
pub use layout::{FileSpec, Segment, Segments, StorageLayout};
pub use resume::{FileStamp, ResumeBackend, ResumeData, ResumeRecord, ResumeRejected, ResumeStore};
pub use storage::{DEFAULT_MAX_OPEN_FILES, OpenMode, Storage};
