//! Shoal's async engine (tokio): owns the sockets, the disk and the clocks, and drives the pure
//! [`shoal_swarm::Swarm`] logic of every torrent.
//!
//! Parts, each an actor or a task with one job:
//! - [`Session`]: the node. It listens for peers, routes each incoming handshake to its torrent,
//!   and adds and removes torrents. Front ends (CLI, RPC) drive torrents only through a
//!   `Session` and the [`Torrent`] handles it returns.
//! - `torrent`: one actor per torrent (swarm logic, peer connections, peer exchange, resume
//!   data).
//! - `peer`: one reader and one writer task per connection.
//! - `disk`: OS threads that write blocks and hash pieces.
//! - [`tracker`]: HTTP and UDP tracker announces (BEP 3, 23, 15, 12) and the built-in tracker
//!   server.
//! - [`Dht`]: the Mainline DHT node (BEP 5), a task driving the sans-IO [`shoal_dht::Node`].
//! - `lsd`: Local Service Discovery (BEP 14), one task per session.
//! - [`fetch_metadata`]: a magnet link's info dictionary from peers (BEP 9).
//! - [`rate_limit`]: the token buckets behind the session's and each torrent's rate caps.
//! - [`fetch_torrent`]: a `.torrent` file from an http(s) URL.

mod conn;
mod dht;
mod disk;
mod fetch;
mod lsd;
mod metadata;
mod peer;
pub use shoal_mse as mse;
pub mod rate_limit;
mod session;
pub mod stream;
mod torrent;
pub mod tracker;
mod webseed;

use std::time::Duration;

pub use conn::{Revocations, SslTorrent, UtpMode};
pub use dht::{ANNOUNCE_EVERY, AnnounceLoop, DEFAULT_BOOTSTRAP, Dht, DhtConfig, DhtError, DhtStats, SAVE_EVERY};
pub use fetch::{FetchError, MAX_TORRENT_FILE, fetch_torrent};
pub use metadata::MetadataProgress;
pub use session::{AddTorrent, FilePriority, PeerStatus, ServiceConnection, Session, SessionConfig, Torrent};
pub use shoal_dht::SampleReply;
pub use shoal_swarm::Stats;
pub use shoal_utp as utp;
pub use stream::{FileStream, StreamError};

/// Where a torrent stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TorrentState {
    /// Checking data already on disk: `done` of `total` pieces checked.
    Checking {
        /// Pieces checked so far.
        done: u32,
        /// Pieces to check.
        total: u32,
    },
    /// Fetching pieces.
    Downloading,
    /// Every wanted piece is verified; serving others.
    Seeding,
    /// Paused by the user: no connections until resumed.
    Paused,
    /// Stopped by the user or at shutdown.
    Stopped,
    /// A disk error stopped the torrent.
    Error(String),
}

/// A snapshot of one torrent, published about twice a second.
#[derive(Clone, Debug)]
pub struct TorrentStatus {
    /// Torrent name.
    pub name: String,
    /// Total content length.
    pub total_length: u64,
    /// Current state.
    pub state: TorrentState,
    /// Transfer totals and rates.
    pub stats: Stats,
    /// Last tracker error, if the last announce failed.
    pub tracker_error: Option<String>,
    /// Each tracker's last announce and the next one.
    pub trackers: Vec<TrackerStatus>,
    /// Peers the user named (`--peer`, a magnet's `x.pe`) whose last dial failed, and why.
    pub unreachable: Vec<(std::net::SocketAddr, String)>,
}

/// One tracker of a torrent, for front ends.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerStatus {
    /// Announce URL.
    pub url: String,
    /// Tier (BEP 12), 0 first.
    pub tier: usize,
    /// When the last announce to it finished.
    pub last_announce: Option<std::time::SystemTime>,
    /// What it answered then: the number of peers, or why it failed.
    pub last_result: Option<Result<usize, String>>,
    /// When the next announce is due.
    pub next_announce: Option<std::time::SystemTime>,
}

impl TorrentStatus {
    /// Fraction of the content verified, 0.0 to 1.0.
    pub fn progress(&self) -> f64 {
        if self.total_length == 0 { 1.0 } else { self.stats.bytes_have as f64 / self.total_length as f64 }
    }

    /// Estimated time to completion at the current download rate.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total_length.saturating_sub(self.stats.bytes_have);
        (self.stats.down_rate > 1.0).then(|| Duration::from_secs_f64(left as f64 / self.stats.down_rate))
    }
}

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The torrent's files could not be opened or checked.
    #[error(transparent)]
    Storage(#[from] shoal_storage::StorageError),
    /// The torrent is already in the session.
    #[error("torrent {0} is already added")]
    Duplicate(shoal_proto::InfoHash),
    /// The DHT node could not start.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// The metadata of a magnet link could not be fetched.
    #[error("cannot fetch the metadata of {info_hash}: {reason}")]
    Metadata {
        /// The torrent asked for.
        info_hash: shoal_proto::InfoHash,
        /// What went wrong.
        reason: String,
    },
    /// The session is shutting down.
    #[error("the session has stopped")]
    Stopped,
    /// An SSL torrent was added without the member certificate its peers require.
    #[error("torrent {0} is an SSL torrent: its peers only talk to holders of a certificate from its authority")]
    NeedsCertificate(shoal_proto::InfoHash),
}
