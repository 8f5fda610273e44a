//! The Shoal daemon's durable state, independent of the engine: torrents, resume data and
//! settings in one SQLite database, and the daemon's TOML config file.
//!
//! - [`store`]: opening the database ([`Store::open`]): WAL mode, `synchronous = FULL`,
//!   schema upgrades; durability and threading rules.
//! - [`torrents`]: what to download or seed and how ([`NewTorrent`], [`TorrentRow`]):
//!   paused stays paused, active resumes, ids are stable for RPC.
//! - [`pushes`]: what a server peer keeps for the identities that pushed it ([`PushRow`]).
//! - [`resume`]: which pieces are verified on disk ([`ResumeData`]) and the caller's
//!   `fsync`-before-record contract.
//! - [`settings`]: run-time settings as JSON values.
//! - [`size`]: byte counts with suffixes (`64k`, `1M`) for flags and the config file.
//! - [`config`]: the config file ([`DaemonConfig`]) and [`default_data_dir`].
//! - `schema`: the tables and their forward migrations (`PRAGMA user_version`).
//!
//! Everything here is synchronous; async callers use `spawn_blocking` (see [`store`]).
//! There is one lock, the [`Store`]'s connection mutex, held for one transaction at a time,
//! so there is no lock ordering to follow.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod config;
mod error;
pub mod pushes;
pub mod resume;
mod schema;
pub mod settings;
pub mod size;
pub mod store;
pub mod torrents;

pub use config::{
    ConfigError, ConfigOverrides, DaemonConfig, DhtConfig, LimitsConfig, LsdConfig, RpcConfig, SearchConfig,
    ServerConfig, default_data_dir,
};
pub use error::StateError;
pub use pushes::PushRow;
pub use resume::{FileStamp, ResumeData};
pub use store::{BUSY_TIMEOUT, DB_FILE_NAME, Store};
pub use torrents::{FilePriority, Limits, NewTorrent, TorrentId, TorrentRow, TorrentState, Unlimited};
