//! The typed API every front end uses: request and response types and the [`Api`] trait the
//! daemon implements.
//!
//! The three RPC dialects ([`crate::jsonrpc`], [`crate::xmlrpc`], [`crate::transmission`]) parse
//! their wire format into these types, call one [`Api`] method, and encode the answer. The JSON
//! shapes of the types (serde, snake_case field names) are the JSON-RPC and XML-RPC wire shapes.
//!
//! Contract for implementers: a call that names an unknown torrent fails with
//! [`ApiError::NotFound`] and changes nothing, even when other ids in the same call are known.
//! Every id is checked before anything is changed.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::groups::{
    GroupInfo, GroupMember, GroupRequest, IdentityInfo, InvitationInfo, PushCall, QuotaUse, ServerPush, ServerPushes,
};
pub use crate::hits::{CrawlStatus, SearchHit, SearchRequest, SearchStatus};
pub use crate::ids::{Ids, TorrentId, TorrentRef};

/// Where the torrent to add comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// The bytes of a .torrent file.
    TorrentFile(Vec<u8>),
    /// A magnet link (`magnet:?xt=urn:bt...`).
    Magnet(String),
    /// An http(s) URL of a .torrent file, fetched by the daemon.
    Url(String),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::TorrentFile(bytes) => write!(f, "TorrentFile({} bytes)", bytes.len()),
            Source::Magnet(link) => f.debug_tuple("Magnet").field(link).finish(),
            Source::Url(url) => f.debug_tuple("Url").field(url).finish(),
        }
    }
}

/// `torrent.add`: add a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddRequest {
    /// What to add.
    pub source: Source,
    /// Where to put the data; `None` uses the session's download folder.
    pub download_dir: Option<String>,
    /// Add the torrent stopped.
    pub paused: bool,
    /// Peers to dial besides those the torrent's trackers, the DHT and its magnet link name;
    /// kept with the torrent and dialled again at every start.
    pub peers: Vec<SocketAddr>,
    /// Labels (see [`SetRequest::labels`]).
    pub labels: Vec<String>,
    /// Download the pieces in order.
    pub sequential: bool,
}

impl AddRequest {
    /// A request to add `source` with every option at its default.
    pub fn new(source: Source) -> AddRequest {
        AddRequest {
            source,
            download_dir: None,
            paused: false,
            peers: Vec::new(),
            labels: Vec::new(),
            sequential: false,
        }
    }
}

/// The answer to `torrent.add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    /// The torrent's id (the existing one when `duplicate`).
    pub id: TorrentId,
    /// Info-hash, lowercase hex.
    pub info_hash: String,
    /// Torrent name (the info-hash until a magnet link's metadata is known).
    pub name: String,
    /// The torrent was already in the daemon; nothing was added.
    pub duplicate: bool,
}

/// `torrent.remove`: remove torrents, optionally with their data.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// The torrents to remove.
    pub ids: Ids,
    /// Also delete the downloaded files.
    #[serde(default)]
    pub delete_data: bool,
}

/// How much a file is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Do not download this file.
    Skip,
    /// Download normally.
    Normal,
    /// Download before the normal files.
    High,
}

/// A torrent's seeding goal in one measure (ratio, seconds of seeding, seconds idle): the
/// session's, none at all (seed until stopped), or its own.
///
/// JSON: `null` for the session's, `"unlimited"`, or the number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Goal<T> {
    /// The session's goal applies.
    #[default]
    Session,
    /// No goal: the torrent seeds until it is stopped, whatever the session's goal.
    Unlimited,
    /// The torrent's own goal.
    Limit(T),
}

impl<T: Copy> Goal<T> {
    /// The goal in force, given the session's.
    pub fn or_session(self, session: Option<T>) -> Option<T> {
        match self {
            Goal::Session => session,
            Goal::Unlimited => None,
            Goal::Limit(v) => Some(v),
        }
    }

    /// The torrent's own limit, if it has one.
    pub fn limit(self) -> Option<T> {
        match self {
            Goal::Limit(v) => Some(v),
            _ => None,
        }
    }
}

const UNLIMITED: &str = "unlimited";

impl<T: Serialize> Serialize for Goal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Goal::Session => s.serialize_none(),
            Goal::Unlimited => s.serialize_str(UNLIMITED),
            Goal::Limit(v) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Goal<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<T> {
            Limit(T),
            Word(String),
        }
        match Option::<Repr<T>>::deserialize(d)? {
            None => Ok(Goal::Session),
            Some(Repr::Limit(v)) => Ok(Goal::Limit(v)),
            Some(Repr::Word(w)) if w == UNLIMITED => Ok(Goal::Unlimited),
            Some(Repr::Word(w)) => {
                Err(de::Error::custom(format!("expected a number, null or \"{UNLIMITED}\", got \"{w}\"")))
            }
        }
    }
}

/// A present field becomes `Some(..)` (with `#[serde(default)]` a missing one stays `None`),
/// even `null`, which a [`Goal`] reads as [`Goal::Session`].
fn present<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(d).map(Some)
}

/// The most peers `torrent.add` takes for one torrent (they are stored and dialled at every
/// start, so a client cannot make the daemon keep or dial an unbounded list).
pub const MAX_ADD_PEERS: usize = 200;

/// The longest label, in characters, and the most labels on one torrent.
pub const MAX_LABEL_CHARS: usize = 64;
/// See [`MAX_LABEL_CHARS`].
pub const MAX_LABELS: usize = 32;

/// `labels` as they will be kept: each trimmed, duplicates dropped (first one kept), order
/// kept. An empty label, one with a comma or a control character, one longer than
/// [`MAX_LABEL_CHARS`], or more than [`MAX_LABELS`] of them is refused, naming it.
pub fn normalize_labels(labels: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let label = label.trim();
        let bad = |why: &str| Err(ApiError::InvalidParams(format!("label {label:?} {why}")));
        if label.is_empty() {
            return Err(ApiError::InvalidParams("a label cannot be empty".into()));
        }
        if label.contains(',') {
            return bad("has a comma (commas separate labels)");
        }
        if label.chars().any(char::is_control) {
            return bad("has a control character");
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return bad(&format!("is longer than {MAX_LABEL_CHARS} characters"));
        }
        if !out.iter().any(|l| l == label) {
            out.push(label.to_owned());
        }
    }
    if out.len() > MAX_LABELS {
        return Err(ApiError::InvalidParams(format!("{} labels; a torrent has at most {MAX_LABELS}", out.len())));
    }
    Ok(out)
}

/// `torrent.set`: change per-torrent settings. Fields left `None` (or empty) are unchanged.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRequest {
    /// The torrents to change.
    pub ids: Ids,
    /// Upload rate limit in bytes per second: `Some(None)` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub upload_limit: Option<Option<u64>>,
    /// Download rate limit in bytes per second: `Some(None)` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub download_limit: Option<Option<u64>>,
    /// Most peer connections for this torrent: `Some(None)` returns to the session default.
    #[serde(default, deserialize_with = "double_option")]
    pub max_connections: Option<Option<u32>>,
    /// New priorities by file index (`[[0, "skip"], [3, "high"]]` in JSON).
    #[serde(default)]
    pub file_priorities: Vec<(usize, Priority)>,
    /// The torrent's seeding goal as an upload/download ratio.
    #[serde(default, deserialize_with = "present")]
    pub seed_ratio_limit: Option<Goal<f64>>,
    /// The torrent's seeding goal in seconds of seeding.
    #[serde(default, deserialize_with = "present")]
    pub seed_time_limit: Option<Goal<u64>>,
    /// The torrent's seeding goal in seconds without uploading to anyone.
    #[serde(default, deserialize_with = "present")]
    pub seed_idle_limit: Option<Goal<u64>>,
    /// The torrent's labels, replacing the ones it had (`[]` removes them all); free text, for
    /// the user and their tools to sort torrents by (see [`normalize_labels`]).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Download the pieces in order, first to last (for files read while they arrive), instead
    /// of rarest first.
    #[serde(default)]
    pub sequential: Option<bool>,
}

impl SetRequest {
    /// A request for `ids` that changes nothing yet.
    pub fn new(ids: Ids) -> SetRequest {
        SetRequest {
            ids,
            upload_limit: None,
            download_limit: None,
            max_connections: None,
            file_priorities: Vec::new(),
            seed_ratio_limit: None,
            seed_time_limit: None,
            seed_idle_limit: None,
            labels: None,
            sequential: None,
        }
    }

    /// True when the request would change nothing.
    pub fn is_empty(&self) -> bool {
        self.upload_limit.is_none()
            && self.download_limit.is_none()
            && self.max_connections.is_none()
            && self.file_priorities.is_empty()
            && self.seed_ratio_limit.is_none()
            && self.seed_time_limit.is_none()
            && self.seed_idle_limit.is_none()
            && self.labels.is_none()
            && self.sequential.is_none()
    }
}

/// A present field, even `null`, becomes `Some(..)`; with `#[serde(default)]` a missing one
/// stays `None`.
fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What a torrent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TorrentState {
    /// Fetching metadata or pieces.
    Downloading,
    /// Every wanted piece is verified; serving others.
    Seeding,
    /// Stopped by the user.
    Paused,
    /// Verifying data already on disk.
    Checking,
    /// Stopped by an error (see [`TorrentInfo::error`]).
    Error,
    /// Waiting for a download or seed slot.
    Queued,
    /// A magnet link whose metadata is being fetched from peers.
    Metadata,
    /// Its files are being moved to a new folder.
    Moving,
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the torrent's download folder, `/`-separated; for multi-file torrents it
    /// starts with the torrent's folder name.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// Verified bytes of this file.
    pub have: u64,
    /// Download priority.
    pub priority: Priority,
    /// Where it can be played while it downloads: a path on the RPC listener (HTTP `GET`
    /// with byte ranges; the RPC's credentials, or `?token=` for players).
    pub stream: String,
}

/// One tracker of a torrent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerInfo {
    /// Announce URL.
    pub url: String,
    /// Tier (BEP 12), 0 first.
    pub tier: u32,
    /// Why the last announce failed; `None` after a success or before the first announce.
    pub last_error: Option<String>,
    /// When the last announce finished (Unix seconds), if there was one.
    #[serde(default)]
    pub last_announce: Option<u64>,
    /// When the next announce is due (Unix seconds), if one is scheduled.
    #[serde(default)]
    pub next_announce: Option<u64>,
    /// Peers the last successful announce returned.
    #[serde(default)]
    pub last_peers: Option<u32>,
}

/// A snapshot of one torrent.
///
/// Byte counts: `have_bytes <= total_bytes`, `left_bytes <= wanted_bytes <= total_bytes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TorrentInfo {
    /// The daemon's id.
    pub id: TorrentId,
    /// Info-hash, lowercase hex.
    pub info_hash: String,
    /// Torrent name.
    pub name: String,
    /// What it is doing.
    pub state: TorrentState,
    /// Fraction of the wanted bytes verified, 0.0 to 1.0.
    pub progress: f64,
    /// Size of all files.
    pub total_bytes: u64,
    /// Size of the files not skipped.
    pub wanted_bytes: u64,
    /// Verified bytes (all files).
    pub have_bytes: u64,
    /// Wanted bytes not yet verified.
    pub left_bytes: u64,
    /// Download rate, bytes per second.
    pub download_rate: u64,
    /// Upload rate, bytes per second.
    pub upload_rate: u64,
    /// Payload bytes downloaded since the torrent was added.
    pub downloaded: u64,
    /// Payload bytes uploaded since the torrent was added.
    pub uploaded: u64,
    /// Connected peers.
    pub peers: u32,
    /// Connected peers sending to us.
    pub peers_sending: u32,
    /// Connected peers we send to.
    pub peers_receiving: u32,
    /// Seconds to completion at the current rate; `None` when done or unknown.
    pub eta: Option<u64>,
    /// Folder holding the torrent's files.
    pub download_dir: String,
    /// Why the torrent stopped, in [`TorrentState::Error`].
    pub error: Option<String>,
    /// Per-torrent upload limit, bytes per second.
    pub upload_limit: Option<u64>,
    /// Per-torrent download limit, bytes per second.
    pub download_limit: Option<u64>,
    /// Per-torrent connection limit (`None`: the session's per-torrent default).
    pub max_connections: Option<u32>,
    /// The torrent's seeding goal as an upload/download ratio.
    #[serde(default)]
    pub seed_ratio_limit: Goal<f64>,
    /// The torrent's seeding goal in seconds of seeding.
    #[serde(default)]
    pub seed_time_limit: Goal<u64>,
    /// The torrent's seeding goal in seconds without uploading.
    #[serde(default)]
    pub seed_idle_limit: Goal<u64>,
    /// Seconds since the torrent last sent or received payload (`None`: not since it started).
    #[serde(default)]
    pub idle_seconds: Option<u64>,
    /// The torrent's labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// A group share (SSL torrent): the group whose members alone may join, by its name on
    /// this node (known once the torrent has started).
    #[serde(default)]
    pub group: Option<String>,
    /// On a server peer: the identities that pushed it here, which it keeps for them.
    #[serde(default)]
    pub pushed_by: Vec<String>,
    /// Pieces are downloaded in order.
    #[serde(default)]
    pub sequential: bool,
    /// Number of pieces (0 until a magnet link's metadata is known).
    pub piece_count: u32,
    /// Piece length in bytes (0 until known).
    pub piece_length: u32,
    /// The files, in torrent order (empty until a magnet link's metadata is known).
    pub files: Vec<FileInfo>,
    /// The trackers, tier by tier.
    pub trackers: Vec<TrackerInfo>,
    /// When the torrent was added, Unix seconds.
    pub added_at: u64,
}

impl TorrentInfo {
    /// The JSON value of one field (named as in [`TORRENT_FIELDS`]) without encoding the
    /// others: a list of thousands of torrents asking for a few fields stays cheap.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        struct One<'a>(&'a TorrentInfo, &'a str);
        impl Serialize for One<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(1))?;
                self.0.serialize_field(self.1, &mut map)?;
                map.end()
            }
        }
        match serde_json::to_value(One(self, name)).ok()? {
            serde_json::Value::Object(mut one) => one.remove(name),
            _ => None,
        }
    }

    /// Writes field `name` (as in [`TORRENT_FIELDS`]) into `map`; an unknown name writes
    /// nothing. One list of fields for every encoding of a torrent.
    pub fn serialize_field<M: serde::ser::SerializeMap>(&self, name: &str, map: &mut M) -> Result<(), M::Error> {
        macro_rules! fields {
            ($($field:ident),* $(,)?) => {
                match name {
                    $(stringify!($field) => map.serialize_entry(name, &self.$field),)*
                    _ => Ok(()),
                }
            };
        }
        fields!(
            id,
            info_hash,
            name,
            state,
            progress,
            total_bytes,
            wanted_bytes,
            have_bytes,
            left_bytes,
            download_rate,
            upload_rate,
            downloaded,
            uploaded,
            peers,
            peers_sending,
            peers_receiving,
            eta,
            download_dir,
            error,
            upload_limit,
            download_limit,
            max_connections,
            seed_ratio_limit,
            seed_time_limit,
            seed_idle_limit,
            idle_seconds,
            labels,
            group,
            pushed_by,
            sequential,
            piece_count,
            piece_length,
            files,
            trackers,
            added_at,
        )
    }
}

/// Field names of [`TorrentInfo`] in its JSON shape, in declaration order.
pub const TORRENT_FIELDS: &[&str] = &[
    "id",
    "info_hash",
    "name",
    "state",
    "progress",
    "total_bytes",
    "wanted_bytes",
    "have_bytes",
    "left_bytes",
    "download_rate",
    "upload_rate",
    "downloaded",
    "uploaded",
    "peers",
    "peers_sending",
    "peers_receiving",
    "eta",
    "download_dir",
    "error",
    "upload_limit",
    "download_limit",
    "max_connections",
    "seed_ratio_limit",
    "seed_time_limit",
    "seed_idle_limit",
    "idle_seconds",
    "labels",
    "group",
    "pushed_by",
    "sequential",
    "piece_count",
    "piece_length",
    "files",
    "trackers",
    "added_at",
];

/// One connected peer of a torrent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's address.
    pub address: SocketAddr,
    /// Client name from its peer id or extension handshake (empty when unknown).
    pub client: String,
    /// Fraction of the torrent the peer has, 0.0 to 1.0.
    pub progress: f64,
    /// Bytes per second we receive from it.
    pub download_rate: u64,
    /// Bytes per second we send to it.
    pub upload_rate: u64,
    /// It connected to us.
    pub incoming: bool,
    /// The connection is encrypted.
    pub encrypted: bool,
    /// We choke it.
    pub am_choking: bool,
    /// We want pieces it has.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It wants pieces we have.
    pub peer_interested: bool,
}

/// The session's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// Port peers connect to.
    pub listen_port: u16,
    /// Default folder for new torrents.
    pub download_dir: String,
    /// Global upload limit, bytes per second.
    pub upload_limit: Option<u64>,
    /// Global download limit, bytes per second.
    pub download_limit: Option<u64>,
    /// Mainline DHT (BEP 5) enabled.
    pub dht: bool,
    /// Local service discovery (BEP 14) enabled.
    pub lsd: bool,
    /// Peer exchange (BEP 11) enabled.
    pub pex: bool,
    /// Most peer connections in total.
    pub max_connections: u32,
    /// Most peer connections per torrent (default for torrents without their own limit).
    pub max_connections_per_torrent: u32,
    /// Most torrents downloading at once (`None`: no queue).
    pub download_queue_size: Option<u32>,
    /// Most torrents seeding at once (`None`: no queue).
    pub seed_queue_size: Option<u32>,
    /// Stop seeding at this upload/download ratio.
    pub seed_ratio_limit: Option<f64>,
    /// Stop seeding after this many seconds of seeding.
    pub seed_time_limit: Option<u64>,
    /// Stop seeding after this many seconds without uploading to anyone.
    #[serde(default)]
    pub seed_idle_limit: Option<u64>,
    /// Protocol encryption (MSE/PE) policy for plain peer connections: `prefer`, `require` or
    /// `off` (set at start: `--encryption`, or `encryption` in the config file).
    #[serde(default = "default_encryption")]
    pub encryption: String,
    /// uTP (BEP 29): `on`, `prefer` or `off` (set at start: `--utp`, or `utp` in the config
    /// file).
    #[serde(default = "default_utp")]
    pub utp: String,
}

fn default_encryption() -> String {
    "prefer".to_owned()
}

fn default_utp() -> String {
    "on".to_owned()
}

/// `session.set`: change session settings. Fields left `None` are unchanged; for the nullable
/// settings `Some(None)` removes the limit.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionUpdate {
    /// See [`SessionSettings::listen_port`].
    pub listen_port: Option<u16>,
    /// See [`SessionSettings::download_dir`].
    pub download_dir: Option<String>,
    /// See [`SessionSettings::upload_limit`].
    #[serde(deserialize_with = "double_option")]
    pub upload_limit: Option<Option<u64>>,
    /// See [`SessionSettings::download_limit`].
    #[serde(deserialize_with = "double_option")]
    pub download_limit: Option<Option<u64>>,
    /// See [`SessionSettings::dht`].
    pub dht: Option<bool>,
    /// See [`SessionSettings::lsd`].
    pub lsd: Option<bool>,
    /// See [`SessionSettings::pex`].
    pub pex: Option<bool>,
    /// See [`SessionSettings::max_connections`].
    pub max_connections: Option<u32>,
    /// See [`SessionSettings::max_connections_per_torrent`].
    pub max_connections_per_torrent: Option<u32>,
    /// See [`SessionSettings::download_queue_size`].
    #[serde(deserialize_with = "double_option")]
    pub download_queue_size: Option<Option<u32>>,
    /// See [`SessionSettings::seed_queue_size`].
    #[serde(deserialize_with = "double_option")]
    pub seed_queue_size: Option<Option<u32>>,
    /// See [`SessionSettings::seed_ratio_limit`].
    #[serde(deserialize_with = "double_option")]
    pub seed_ratio_limit: Option<Option<f64>>,
    /// See [`SessionSettings::seed_time_limit`].
    #[serde(deserialize_with = "double_option")]
    pub seed_time_limit: Option<Option<u64>>,
    /// See [`SessionSettings::seed_idle_limit`].
    #[serde(deserialize_with = "double_option")]
    pub seed_idle_limit: Option<Option<u64>>,
}

impl SessionUpdate {
    /// `settings` with this update applied (what the daemon should end up with).
    pub fn apply(&self, settings: &SessionSettings) -> SessionSettings {
        let mut s = settings.clone();
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        set(&mut s.listen_port, &self.listen_port);
        set(&mut s.download_dir, &self.download_dir);
        set(&mut s.upload_limit, &self.upload_limit);
        set(&mut s.download_limit, &self.download_limit);
        set(&mut s.dht, &self.dht);
        set(&mut s.lsd, &self.lsd);
        set(&mut s.pex, &self.pex);
        set(&mut s.max_connections, &self.max_connections);
        set(&mut s.max_connections_per_torrent, &self.max_connections_per_torrent);
        set(&mut s.download_queue_size, &self.download_queue_size);
        set(&mut s.seed_queue_size, &self.seed_queue_size);
        set(&mut s.seed_ratio_limit, &self.seed_ratio_limit);
        set(&mut s.seed_time_limit, &self.seed_time_limit);
        set(&mut s.seed_idle_limit, &self.seed_idle_limit);
        s
    }
}

/// Transfer totals over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferTotals {
    /// Payload bytes uploaded.
    pub uploaded: u64,
    /// Payload bytes downloaded.
    pub downloaded: u64,
    /// Seconds the daemon ran.
    pub seconds_active: u64,
    /// Torrents added.
    pub torrents_added: u64,
    /// Daemon starts (1 for the current session).
    pub session_count: u64,
}

/// `session.stats`: what the session is doing and has done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Download rate over all torrents, bytes per second.
    pub download_rate: u64,
    /// Upload rate over all torrents, bytes per second.
    pub upload_rate: u64,
    /// Torrents in the session.
    pub torrent_count: u32,
    /// Torrents not paused.
    pub active_torrent_count: u32,
    /// Paused torrents.
    pub paused_torrent_count: u32,
    /// Since the daemon started.
    pub current: TransferTotals,
    /// Over the daemon's whole history.
    pub cumulative: TransferTotals,
}

/// `torrent.set_location`: give torrents a new data folder.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRequest {
    /// The torrents.
    pub ids: Ids,
    /// The new folder (absolute, on the daemon's machine; created if missing).
    pub location: String,
    /// Move the data there from the old folder (`true`), or only look for it there (`false`,
    /// as Transmission's default: the data is checked in its new place).
    #[serde(default, rename = "move")]
    pub move_data: bool,
}

/// `session.free_space`: space left in a folder of the daemon's machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeSpace {
    /// The folder asked about.
    pub path: String,
    /// Bytes an unprivileged user can still write there.
    pub free_bytes: u64,
    /// Size of the file system holding it.
    pub total_bytes: u64,
}

/// Why an API call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// No torrent has this id or info-hash; nothing was changed.
    #[error("no torrent {0}")]
    NotFound(TorrentRef),
    /// The request is well-formed but a value is unacceptable (a file index past the last file,
    /// a folder that cannot be used); nothing was changed.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The torrent to add cannot be used: a malformed .torrent or magnet link, or a URL that
    /// could not be fetched.
    #[error("cannot add the torrent: {0}")]
    BadTorrent(String),
    /// The daemon is shutting down and takes no more calls.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The operation failed in the engine (a disk error, for example).
    #[error("{0}")]
    Failed(String),
}

/// The API every front end uses. The daemon implements it over its engine; the RPC servers call
/// it. Implementations are shared between connections (`Send + Sync`), and each call's future
/// is `Send` so servers can run it on any thread.
///
/// Implement the methods with `async fn`; a call that names an unknown torrent returns
/// [`ApiError::NotFound`] and changes nothing (see the module documentation).
pub trait Api: Send + Sync {
    /// Adds a torrent. A torrent already present is not added again: the answer names it with
    /// `duplicate: true`.
    fn add(&self, request: AddRequest) -> impl Future<Output = Result<AddResult, ApiError>> + Send;

    /// Snapshots of the torrents in `ids`, in id order, each once.
    fn get(&self, ids: Ids) -> impl Future<Output = Result<Vec<TorrentInfo>, ApiError>> + Send;

    /// Snapshots of every torrent, in id order.
    fn list(&self) -> impl Future<Output = Result<Vec<TorrentInfo>, ApiError>> + Send {
        self.get(Ids::All)
    }

    /// Stops the torrents in `ids`, keeping their data; returns the ids stopped.
    fn pause(&self, ids: Ids) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Starts the torrents in `ids` again; returns the ids started.
    fn resume(&self, ids: Ids) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Checks the torrents' data on disk again, forgetting what was recorded as verified
    /// (Transmission's "verify", qBittorrent's "recheck"); returns the ids being checked.
    fn verify(&self, ids: Ids) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Announces the torrents to their trackers now, without waiting for the interval;
    /// returns the ids announced (torrents without a tracker are left out).
    fn reannounce(&self, ids: Ids) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Removes torrents (and, when asked, their data); returns the ids removed.
    fn remove(&self, request: RemoveRequest) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Changes per-torrent settings; returns the ids changed. A file index past a torrent's last
    /// file is [`ApiError::InvalidParams`] and changes nothing.
    fn set(&self, request: SetRequest) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Gives torrents a new data folder, moving their files there or looking for them there
    /// (see [`LocationRequest`]); returns when the files are in place, with the ids changed.
    /// A torrent whose files could not be moved keeps its old folder and files.
    fn set_location(&self, request: LocationRequest) -> impl Future<Output = Result<Vec<TorrentId>, ApiError>> + Send;

    /// Space left in `path`, a folder on the daemon's machine (`None`: the download folder).
    fn free_space(&self, path: Option<String>) -> impl Future<Output = Result<FreeSpace, ApiError>> + Send;

    /// The connected peers of one torrent.
    fn peers(&self, id: TorrentRef) -> impl Future<Output = Result<Vec<PeerInfo>, ApiError>> + Send;

    /// The session's settings.
    fn session_get(&self) -> impl Future<Output = Result<SessionSettings, ApiError>> + Send;

    /// Changes session settings; returns the settings now in force.
    fn session_set(&self, update: SessionUpdate) -> impl Future<Output = Result<SessionSettings, ApiError>> + Send;

    /// Session statistics.
    fn session_stats(&self) -> impl Future<Output = Result<SessionStats, ApiError>> + Send;

    /// This node's identity (made on first use).
    fn identity_get(&self) -> impl Future<Output = Result<IdentityInfo, ApiError>> + Send {
        async { Err(ApiError::Failed("this server keeps no identity".into())) }
    }

    /// This node's groups.
    fn group_list(&self) -> impl Future<Output = Result<Vec<GroupInfo>, ApiError>> + Send {
        async { Err(ApiError::Failed("this server keeps no groups".into())) }
    }

    /// Changes a group; answers `group.create` and `group.join` with a [`GroupInfo`],
    /// `group.invite` with an [`InvitationInfo`], `group.issue` with `{group, certificate}`
    /// (PEM) and `group.revoke` with `{group, member, revocation_list, revoked}`.
    fn group_change(&self, request: GroupRequest) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send {
        let _ = request;
        async { Err(ApiError::Failed("this server keeps no groups".into())) }
    }

    /// Torrents matching the words: this node's index (its own torrents and what it learned),
    /// then what its index servers and (with `peers`) its search neighbours answer; at most
    /// `limit`.
    fn search_query(&self, request: SearchRequest) -> impl Future<Output = Result<Vec<SearchHit>, ApiError>> + Send {
        let _ = request;
        async { Err(ApiError::Failed("this server cannot search".into())) }
    }

    /// `search.status`: the local index, the search neighbours and the DHT crawler.
    fn search_status(&self) -> impl Future<Output = Result<SearchStatus, ApiError>> + Send {
        async { Err(ApiError::Failed("this server cannot search".into())) }
    }

    /// The server peer role: every push it keeps and each pusher's quota use.
    fn server_pushes(&self) -> impl Future<Output = Result<ServerPushes, ApiError>> + Send {
        async { Err(ApiError::Failed("this daemon is not a server peer".into())) }
    }

    /// Talks to a server peer as this node: answers with the server's reply (see
    /// [`PushCall`]).
    fn push_call(&self, call: PushCall) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send {
        let _ = call;
        async { Err(ApiError::Failed("this daemon cannot push".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_accept_numbers_hashes_lists_and_all() {
        let hash = "AB".repeat(20);
        let ids: Ids = serde_json::from_value(json!([1, hash])).expect("works");
        assert_eq!(ids, Ids::List(vec![TorrentRef::Id(TorrentId(1)), TorrentRef::InfoHash("ab".repeat(20))]));
        assert_eq!(serde_json::from_value::<Ids>(json!("all")).expect("works"), Ids::All);
        assert_eq!(serde_json::from_value::<Ids>(json!(7)).expect("works"), Ids::one(TorrentId(7)));
        for bad in [json!(-1), json!("xyz"), json!(1.5), json!({"a": 1}), json!([true]), json!("ab".repeat(21))] {
            assert!(serde_json::from_value::<Ids>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_request_tells_null_from_missing() {
        let r: SetRequest =
            serde_json::from_value(json!({"ids": [1], "upload_limit": null, "download_limit": 5})).expect("works");
        assert_eq!(r.upload_limit, Some(None));
        assert_eq!(r.download_limit, Some(Some(5)));
        assert_eq!(r.max_connections, None);
        let r: SetRequest =
            serde_json::from_value(json!({"ids": "all", "file_priorities": [[0, "skip"], [2, "high"]]}))
                .expect("works");
        assert_eq!(r.file_priorities, vec![(0, Priority::Skip), (2, Priority::High)]);
        assert!(serde_json::from_value::<SetRequest>(json!({"ids": [1], "uplod_limit": 1})).is_err());
    }

    #[test]
    fn goals_read_null_unlimited_or_a_number_and_missing_changes_nothing() {
        let r: SetRequest = serde_json::from_value(json!({
            "ids": [1], "seed_ratio_limit": null, "seed_time_limit": "unlimited", "seed_idle_limit": 600
        }))
        .expect("works");
        assert_eq!(r.seed_ratio_limit, Some(Goal::Session));
        assert_eq!(r.seed_time_limit, Some(Goal::Unlimited));
        assert_eq!(r.seed_idle_limit, Some(Goal::Limit(600)));
        let r: SetRequest = serde_json::from_value(json!({"ids": [1], "seed_ratio_limit": 2})).expect("works");
        assert_eq!(r.seed_ratio_limit, Some(Goal::Limit(2.0)));
        assert_eq!(r.seed_time_limit, None);
        let err = serde_json::from_value::<SetRequest>(json!({"ids": [1], "seed_ratio_limit": "forever"}));
        assert!(err.expect_err("refused").to_string().contains("\"forever\""));
        for goal in [Goal::Session, Goal::Unlimited, Goal::Limit(1.5)] {
            let v = serde_json::to_value(goal).expect("works");
            assert_eq!(serde_json::from_value::<Goal<f64>>(v).expect("works"), goal);
        }
        assert_eq!(Goal::Limit(3).or_session(Some(5)), Some(3));
        assert_eq!(Goal::Session.or_session(Some(5)), Some(5));
        assert_eq!(Goal::<u64>::Unlimited.or_session(Some(5)), None);
    }

    #[test]
    fn labels_are_trimmed_deduplicated_and_checked() {
        let labels = |l: &[&str]| normalize_labels(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(labels(&[" tv ", "hd", "tv"]).expect("works"), vec!["tv".to_owned(), "hd".to_owned()]);
        assert_eq!(labels(&[]).expect("works"), Vec::<String>::new());
        for bad in [&["a,b"][..], &[""], &["  "], &["a\x1bb"], &[&"x".repeat(65)]] {
            assert!(matches!(labels(bad), Err(ApiError::InvalidParams(_))), "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        assert!(normalize_labels(&many).is_err());
    }

    #[test]
    fn session_update_applies_only_present_fields() {
        let settings = SessionSettings {
            listen_port: 6881,
            download_dir: "/d".into(),
            upload_limit: Some(10),
            download_limit: None,
            dht: true,
            lsd: true,
            pex: true,
            max_connections: 200,
            max_connections_per_torrent: 50,
            download_queue_size: None,
            seed_queue_size: None,
            seed_ratio_limit: None,
            seed_time_limit: None,
            seed_idle_limit: None,
            encryption: "prefer".into(),
            utp: "on".into(),
        };
        let update: SessionUpdate =
            serde_json::from_value(json!({"upload_limit": null, "dht": false, "seed_ratio_limit": 2.0}))
                .expect("works");
        let after = update.apply(&settings);
        assert_eq!(after.upload_limit, None);
        assert!(!after.dht);
        assert_eq!(after.seed_ratio_limit, Some(2.0));
        assert_eq!(after.listen_port, 6881);
    }

    #[test]
    fn each_field_is_encoded_as_in_the_whole() {
        let mut info = crate::fake::torrent(TorrentId(3), "x");
        info.labels = vec!["a".into()];
        info.seed_ratio_limit = Goal::Unlimited;
        info.seed_idle_limit = Goal::Limit(60);
        let whole = serde_json::to_value(&info).expect("works");
        for name in TORRENT_FIELDS {
            assert_eq!(info.field(name).as_ref(), whole.get(name), "{name}");
        }
        assert_eq!(info.field("bogus"), None);
    }

    #[test]
    fn torrent_fields_match_the_json_shape() {
        let info = crate::fake::torrent(TorrentId(3), "x");
        let value = serde_json::to_value(info).expect("works");
        let keys: Vec<&str> = value.as_object().expect("works").keys().map(String::as_str).collect();
        let mut expected = TORRENT_FIELDS.to_vec();
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
    }
}
