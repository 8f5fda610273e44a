//! The `torrents` table: what the daemon was told to download or seed, and how.
//!
//! A torrent row outlives restarts: its [`TorrentState`] says whether the daemon starts it
//! (`Active`: downloading, or seeding when complete) or leaves it stopped (`Paused`). Ids are
//! never reused, so an RPC client's id stays valid until the torrent is removed. Queue
//! positions are kept dense (0..n-1) by [`Store::add_torrent`],
//! [`Store::set_queue_position`] and [`Store::remove_torrent`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::store::{Store, from_unix, to_i64, to_u64, to_unix};

/// A torrent's id in the store and over RPC. Positive, never reused after removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TorrentId(i64);

impl TorrentId {
    /// The id from its integer form (an RPC argument). Whether it exists is checked by the
    /// method it is given to.
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    /// The integer form.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TorrentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether the daemon runs a torrent when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    /// Started: downloading until complete, then seeding (within the seed limits).
    Active,
    /// Stopped by the user; stays stopped across restarts.
    Paused,
}

impl TorrentState {
    /// The stored form: `"active"` or `"paused"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    fn parse(s: &str) -> Result<Self, StateError> {
        match s {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            other => Err(StateError::Corrupt(format!("unknown torrent state {other:?}"))),
        }
    }
}

/// How much a file of a torrent is wanted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilePriority {
    /// Not downloaded.
    Skip,
    /// Downloaded after normal and high files.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Downloaded first.
    High,
}

/// Per-torrent limits; `None` means the daemon's global setting applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Upload rate, bytes per second.
    pub upload: Option<u64>,
    /// Download rate, bytes per second.
    pub download: Option<u64>,
    /// Connected peers.
    pub max_peers: Option<u32>,
    /// Stop seeding at this upload/download ratio (finite, not negative).
    pub seed_ratio: Option<f64>,
    /// Stop seeding after this long seeding (whole seconds are kept).
    pub seed_time: Option<Duration>,
    /// Stop seeding after this long without uploading (whole seconds are kept).
    pub seed_idle: Option<Duration>,
    /// Seeding goals this torrent ignores, its own and the global ones.
    pub unlimited: Unlimited,
}

/// Seeding goals a torrent ignores (see [`Limits::unlimited`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unlimited {
    /// No ratio goal.
    pub ratio: bool,
    /// No seeding time goal.
    pub time: bool,
    /// No idle goal.
    pub idle: bool,
}

impl Unlimited {
    fn bits(self) -> i64 {
        i64::from(self.ratio) | i64::from(self.time) << 1 | i64::from(self.idle) << 2
    }

    fn from_bits(bits: i64) -> Self {
        Unlimited { ratio: bits & 1 != 0, time: bits & 2 != 0, idle: bits & 4 != 0 }
    }
}

/// A torrent to add with [`Store::add_torrent`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewTorrent {
    /// The info-hash as 40 (v1, hybrid) or 64 (v2) hex digits, any case (stored lower-case).
    pub info_hash: String,
    /// Display name (the info dictionary's `name`, or the magnet's `dn`, or the hash).
    pub name: String,
    /// The complete bencoded .torrent, or `None` while a magnet's metadata is being fetched.
    /// For a torrent added by magnet, [`Store::set_metainfo`] stores a .torrent built from
    /// the fetched info dictionary and the magnet's trackers once it arrives.
    pub metainfo: Option<Vec<u8>>,
    /// The magnet link the torrent was added from, if any.
    pub magnet: Option<String>,
    /// Where the data goes (must be UTF-8).
    pub download_dir: PathBuf,
    /// Started or not.
    pub state: TorrentState,
    /// When it was added.
    pub added_at: SystemTime,
    /// Per-torrent limits.
    pub limits: Limits,
    /// One entry per file in metainfo order; `None` means all normal.
    pub file_priorities: Option<Vec<FilePriority>>,
    /// Labels.
    pub labels: Vec<String>,
    /// Download pieces in order.
    pub sequential: bool,
    /// Peers to dial at every start, besides those found.
    pub peers: Vec<SocketAddr>,
}

/// A stored torrent.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentRow {
    /// Its id.
    pub id: TorrentId,
    /// Lower-case hex info-hash.
    pub info_hash: String,
    /// Display name.
    pub name: String,
    /// The bencoded .torrent; `None` while the magnet's metadata is missing.
    pub metainfo: Option<Vec<u8>>,
    /// The magnet link it was added from, if any.
    pub magnet: Option<String>,
    /// Where the data goes.
    pub download_dir: PathBuf,
    /// Started or not.
    pub state: TorrentState,
    /// When it was added (whole seconds).
    pub added_at: SystemTime,
    /// When it was first complete (whole seconds), if it was.
    pub completed_at: Option<SystemTime>,
    /// Per-torrent limits.
    pub limits: Limits,
    /// Per-file priorities; `None` means all normal.
    pub file_priorities: Option<Vec<FilePriority>>,
    /// Place in the download queue, 0 first; positions are 0..n-1.
    pub queue_position: u32,
    /// Bytes uploaded over the torrent's lifetime.
    pub uploaded_total: u64,
    /// Bytes downloaded over the torrent's lifetime.
    pub downloaded_total: u64,
    /// Labels.
    pub labels: Vec<String>,
    /// Download pieces in order.
    pub sequential: bool,
    /// Peers given when it was added.
    pub peers: Vec<SocketAddr>,
}

const COLUMNS: &str = "id, info_hash, name, metainfo, magnet, download_dir, state, added_at, completed_at, \
     upload_limit, download_limit, max_peers, seed_ratio, seed_time, file_priorities, queue_position, \
     uploaded_total, downloaded_total, seed_idle, seed_unlimited, labels, sequential, peers";

/// A row as SQLite hands it back, before checks.
struct RawRow {
    id: i64,
    info_hash: String,
    name: String,
    metainfo: Option<Vec<u8>>,
    magnet: Option<String>,
    download_dir: String,
    state: String,
    added_at: i64,
    completed_at: Option<i64>,
    upload_limit: Option<i64>,
    download_limit: Option<i64>,
    max_peers: Option<i64>,
    seed_ratio: Option<f64>,
    seed_time: Option<i64>,
    file_priorities: Option<String>,
    queue_position: i64,
    uploaded_total: i64,
    downloaded_total: i64,
    seed_idle: Option<i64>,
    seed_unlimited: i64,
    labels: String,
    sequential: bool,
    peers: String,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            info_hash: row.get(1)?,
            name: row.get(2)?,
            metainfo: row.get(3)?,
            magnet: row.get(4)?,
            download_dir: row.get(5)?,
            state: row.get(6)?,
            added_at: row.get(7)?,
            completed_at: row.get(8)?,
            upload_limit: row.get(9)?,
            download_limit: row.get(10)?,
            max_peers: row.get(11)?,
            seed_ratio: row.get(12)?,
            seed_time: row.get(13)?,
            file_priorities: row.get(14)?,
            queue_position: row.get(15)?,
            uploaded_total: row.get(16)?,
            downloaded_total: row.get(17)?,
            seed_idle: row.get(18)?,
            seed_unlimited: row.get(19)?,
            labels: row.get(20)?,
            sequential: row.get(21)?,
            peers: row.get(22)?,
        })
    }

    fn check(self) -> Result<TorrentRow, StateError> {
        let opt_u64 = |field, v: Option<i64>| v.map(|v| to_u64(field, v)).transpose();
        let max_peers = opt_u64("max_peers", self.max_peers)?
            .map(|v| u32::try_from(v).map_err(|_| StateError::Corrupt(format!("max_peers {v} is too large"))))
            .transpose()?;
        let file_priorities = self
            .file_priorities
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StateError::Corrupt(format!("file priorities of torrent {}: {e}", self.id)))
            })
            .transpose()?;
        let labels = serde_json::from_str(&self.labels)
            .map_err(|e| StateError::Corrupt(format!("labels of torrent {}: {e}", self.id)))?;
        let peers = serde_json::from_str(&self.peers)
            .map_err(|e| StateError::Corrupt(format!("peers of torrent {}: {e}", self.id)))?;
        Ok(TorrentRow {
            id: TorrentId(self.id),
            info_hash: self.info_hash,
            name: self.name,
            metainfo: self.metainfo,
            magnet: self.magnet,
            download_dir: PathBuf::from(self.download_dir),
            state: TorrentState::parse(&self.state)?,
            added_at: from_unix(self.added_at),
            completed_at: self.completed_at.map(from_unix),
            limits: Limits {
                upload: opt_u64("upload_limit", self.upload_limit)?,
                download: opt_u64("download_limit", self.download_limit)?,
                max_peers,
                seed_ratio: self.seed_ratio,
                seed_time: opt_u64("seed_time", self.seed_time)?.map(Duration::from_secs),
                seed_idle: opt_u64("seed_idle", self.seed_idle)?.map(Duration::from_secs),
                unlimited: Unlimited::from_bits(self.seed_unlimited),
            },
            file_priorities,
            queue_position: u32::try_from(self.queue_position)
                .map_err(|_| StateError::Corrupt(format!("queue position {}", self.queue_position)))?,
            uploaded_total: to_u64("uploaded_total", self.uploaded_total)?,
            downloaded_total: to_u64("downloaded_total", self.downloaded_total)?,
            labels,
            sequential: self.sequential,
            peers,
        })
    }
}

/// The SQL values of [`Limits`], checked.
struct LimitValues {
    upload: Option<i64>,
    download: Option<i64>,
    max_peers: Option<i64>,
    seed_ratio: Option<f64>,
    seed_time: Option<i64>,
    seed_idle: Option<i64>,
    unlimited: i64,
}

impl LimitValues {
    fn new(limits: &Limits) -> Result<Self, StateError> {
        if let Some(ratio) = limits.seed_ratio.filter(|r| !r.is_finite() || *r < 0.0) {
            return Err(StateError::invalid("seed ratio", format!("{ratio} is not a finite, non-negative number")));
        }
        Ok(Self {
            upload: limits.upload.map(|v| to_i64("upload limit", v)).transpose()?,
            download: limits.download.map(|v| to_i64("download limit", v)).transpose()?,
            max_peers: limits.max_peers.map(i64::from),
            seed_ratio: limits.seed_ratio,
            seed_time: limits.seed_time.map(|d| to_i64("seed time", d.as_secs())).transpose()?,
            seed_idle: limits.seed_idle.map(|d| to_i64("seed idle time", d.as_secs())).transpose()?,
            unlimited: limits.unlimited.bits(),
        })
    }
}

/// Lower-cases and checks an info-hash.
pub(crate) fn normalize_info_hash(hex: &str) -> Result<String, StateError> {
    if !(hex.len() == 40 || hex.len() == 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StateError::invalid("info-hash", format!("{hex:?} is not 40 or 64 hex digits")));
    }
    Ok(hex.to_ascii_lowercase())
}

fn dir_text(dir: &Path) -> Result<&str, StateError> {
    dir.to_str().ok_or_else(|| StateError::invalid("download folder", format!("{} is not UTF-8", dir.display())))
}

fn priorities_json(priorities: Option<&[FilePriority]>) -> Result<Option<String>, StateError> {
    priorities
        .map(|p| serde_json::to_string(p).map_err(|e| StateError::invalid("file priorities", e.to_string())))
        .transpose()
}

fn json_text<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| StateError::invalid(what, e.to_string()))
}

/// `Ok(())` when the statement changed a row, else `NoSuchTorrent`.
fn one_row(id: TorrentId, changed: usize) -> Result<(), StateError> {
    if changed == 0 { Err(StateError::NoSuchTorrent(id)) } else { Ok(()) }
}

pub(crate) fn exists(tx: &Transaction<'_>, id: TorrentId) -> Result<(), StateError> {
    let found = tx.query_row("SELECT EXISTS (SELECT 1 FROM torrents WHERE id = ?1)", [id.0], |row| row.get(0))?;
    if found { Ok(()) } else { Err(StateError::NoSuchTorrent(id)) }
}

impl Store {
    /// Stores a new torrent at the end of the queue and returns its id. Fails with
    /// `DuplicateTorrent` when its info-hash is already stored, and with `InvalidValue` when
    /// it has neither metainfo nor magnet link.
    pub fn add_torrent(&self, new: &NewTorrent) -> Result<TorrentId, StateError> {
        self.add_torrent_with(new, |_, _| Ok(()))
    }

    /// [`Store::add_torrent`], running `then` with the new id in the same transaction (a
    /// failure of `then` stores nothing).
    pub(crate) fn add_torrent_with(
        &self,
        new: &NewTorrent,
        then: impl FnOnce(&Transaction<'_>, TorrentId) -> Result<(), StateError>,
    ) -> Result<TorrentId, StateError> {
        let info_hash = normalize_info_hash(&new.info_hash)?;
        if new.metainfo.is_none() && new.magnet.is_none() {
            return Err(StateError::invalid("torrent", "neither metainfo nor magnet link given"));
        }
        let limits = LimitValues::new(&new.limits)?;
        let dir = dir_text(&new.download_dir)?;
        let priorities = priorities_json(new.file_priorities.as_deref())?;
        let added_at = to_unix("added time", new.added_at)?;
        let labels = json_text("labels", &new.labels)?;
        let peers = json_text("peers", &new.peers)?;
        self.write(|tx| {
            let existing: Option<i64> = tx
                .query_row("SELECT id FROM torrents WHERE info_hash = ?1", [&info_hash], |row| row.get(0))
                .optional()?;
            if let Some(existing) = existing {
                return Err(StateError::DuplicateTorrent {
                    info_hash: info_hash.clone(),
                    existing: TorrentId(existing),
                });
            }
            tx.execute(
                "INSERT INTO torrents (info_hash, name, metainfo, magnet, download_dir, state, added_at, \
                 upload_limit, download_limit, max_peers, seed_ratio, seed_time, file_priorities, seed_idle, \
                 seed_unlimited, labels, sequential, peers, queue_position) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
                 (SELECT COALESCE(MAX(queue_position) + 1, 0) FROM torrents))",
                params![
                    info_hash,
                    new.name,
                    new.metainfo,
                    new.magnet,
                    dir,
                    new.state.as_str(),
                    added_at,
                    limits.upload,
                    limits.download,
                    limits.max_peers,
                    limits.seed_ratio,
                    limits.seed_time,
                    priorities,
                    limits.seed_idle,
                    limits.unlimited,
                    labels,
                    new.sequential,
                    peers,
                ],
            )?;
            let id = TorrentId(tx.last_insert_rowid());
            then(tx, id)?;
            Ok(id)
        })
    }

    /// Every stored torrent, by id.
    pub fn torrents(&self) -> Result<Vec<TorrentRow>, StateError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM torrents ORDER BY id"))?;
            let raw = stmt.query_map([], RawRow::read)?.collect::<Result<Vec<_>, _>>()?;
            raw.into_iter().map(RawRow::check).collect()
        })
    }

    /// The torrent with this id, if stored.
    pub fn torrent(&self, id: TorrentId) -> Result<Option<TorrentRow>, StateError> {
        self.read(|conn| {
            let sql = format!("SELECT {COLUMNS} FROM torrents WHERE id = ?1");
            conn.query_row(&sql, [id.0], RawRow::read).optional()?.map(RawRow::check).transpose()
        })
    }

    /// The torrent with this info-hash (hex, any case), if stored.
    pub fn by_info_hash(&self, info_hash: &str) -> Result<Option<TorrentRow>, StateError> {
        let info_hash = normalize_info_hash(info_hash)?;
        self.read(|conn| {
            let sql = format!("SELECT {COLUMNS} FROM torrents WHERE info_hash = ?1");
            conn.query_row(&sql, [info_hash], RawRow::read).optional()?.map(RawRow::check).transpose()
        })
    }

    /// Starts or pauses a torrent (as the next start of the daemon will see it).
    pub fn set_state(&self, id: TorrentId, state: TorrentState) -> Result<(), StateError> {
        self.write(|tx| {
            one_row(id, tx.execute("UPDATE torrents SET state = ?2 WHERE id = ?1", params![id.0, state.as_str()])?)
        })
    }

    /// Replaces all per-torrent limits.
    pub fn set_limits(&self, id: TorrentId, limits: &Limits) -> Result<(), StateError> {
        let v = LimitValues::new(limits)?;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE torrents SET upload_limit = ?2, download_limit = ?3, max_peers = ?4, seed_ratio = ?5, \
                 seed_time = ?6, seed_idle = ?7, seed_unlimited = ?8 WHERE id = ?1",
                params![id.0, v.upload, v.download, v.max_peers, v.seed_ratio, v.seed_time, v.seed_idle, v.unlimited],
            )?;
            one_row(id, changed)
        })
    }

    /// Replaces the labels.
    pub fn set_labels(&self, id: TorrentId, labels: &[String]) -> Result<(), StateError> {
        let json = json_text("labels", labels)?;
        self.write(|tx| one_row(id, tx.execute("UPDATE torrents SET labels = ?2 WHERE id = ?1", params![id.0, json])?))
    }

    /// Downloads pieces in order (`true`) or rarest first.
    pub fn set_sequential(&self, id: TorrentId, sequential: bool) -> Result<(), StateError> {
        self.write(|tx| {
            one_row(id, tx.execute("UPDATE torrents SET sequential = ?2 WHERE id = ?1", params![id.0, sequential])?)
        })
    }

    /// Replaces the per-file priorities (`None`: all normal).
    pub fn set_file_priorities(&self, id: TorrentId, priorities: Option<&[FilePriority]>) -> Result<(), StateError> {
        let json = priorities_json(priorities)?;
        self.write(|tx| {
            one_row(id, tx.execute("UPDATE torrents SET file_priorities = ?2 WHERE id = ?1", params![id.0, json])?)
        })
    }

    /// Stores the metainfo once a magnet's metadata has arrived (a complete bencoded
    /// .torrent; see [`NewTorrent::metainfo`]), and the name from its info dictionary. The
    /// magnet link is kept.
    pub fn set_metainfo(&self, id: TorrentId, metainfo: &[u8], name: &str) -> Result<(), StateError> {
        self.write(|tx| {
            let changed = tx
                .execute("UPDATE torrents SET metainfo = ?2, name = ?3 WHERE id = ?1", params![id.0, metainfo, name])?;
            one_row(id, changed)
        })
    }

    /// Moves where the data is (after the caller moved the files).
    pub fn set_download_dir(&self, id: TorrentId, dir: &Path) -> Result<(), StateError> {
        let dir = dir_text(dir)?;
        self.write(|tx| {
            one_row(id, tx.execute("UPDATE torrents SET download_dir = ?2 WHERE id = ?1", params![id.0, dir])?)
        })
    }

    /// Records when the torrent was first complete (`None` clears it, e.g. after files were
    /// un-skipped).
    pub fn set_completed_at(&self, id: TorrentId, at: Option<SystemTime>) -> Result<(), StateError> {
        let at = at.map(|t| to_unix("completion time", t)).transpose()?;
        self.write(|tx| {
            one_row(id, tx.execute("UPDATE torrents SET completed_at = ?2 WHERE id = ?1", params![id.0, at])?)
        })
    }

    /// Adds bytes transferred since the last call to the lifetime counters.
    pub fn add_counters(&self, id: TorrentId, uploaded: u64, downloaded: u64) -> Result<(), StateError> {
        let (up, down) = (to_i64("uploaded bytes", uploaded)?, to_i64("downloaded bytes", downloaded)?);
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE torrents SET uploaded_total = uploaded_total + ?2, downloaded_total = downloaded_total + ?3 \
                 WHERE id = ?1",
                params![id.0, up, down],
            )?;
            one_row(id, changed)
        })
    }

    /// Sets the lifetime counters to these totals.
    pub fn set_counters(&self, id: TorrentId, uploaded_total: u64, downloaded_total: u64) -> Result<(), StateError> {
        let (up, down) = (to_i64("uploaded bytes", uploaded_total)?, to_i64("downloaded bytes", downloaded_total)?);
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE torrents SET uploaded_total = ?2, downloaded_total = ?3 WHERE id = ?1",
                params![id.0, up, down],
            )?;
            one_row(id, changed)
        })
    }

    /// Moves a torrent to `position` in the queue (past the end: last), shifting the others.
    pub fn set_queue_position(&self, id: TorrentId, position: u32) -> Result<(), StateError> {
        self.write(|tx| {
            exists(tx, id)?;
            let mut order: Vec<i64> = {
                let mut stmt = tx.prepare("SELECT id FROM torrents WHERE id != ?1 ORDER BY queue_position, id")?;
                stmt.query_map([id.0], |row| row.get(0))?.collect::<Result<_, _>>()?
            };
            let at = (position as usize).min(order.len());
            order.insert(at, id.0);
            let mut update =
                tx.prepare("UPDATE torrents SET queue_position = ?2 WHERE id = ?1 AND queue_position != ?2")?;
            for (pos, torrent) in order.iter().enumerate() {
                update.execute(params![torrent, pos as i64])?;
            }
            Ok(())
        })
    }

    /// Forgets a torrent, its resume data (by cascade) and its queue place (later torrents
    /// move up). The data on disk is the caller's business.
    pub fn remove_torrent(&self, id: TorrentId) -> Result<(), StateError> {
        self.write(|tx| {
            let position: Option<i64> = tx
                .query_row("SELECT queue_position FROM torrents WHERE id = ?1", [id.0], |row| row.get(0))
                .optional()?;
            let position = position.ok_or(StateError::NoSuchTorrent(id))?;
            tx.execute("DELETE FROM torrents WHERE id = ?1", [id.0])?;
            tx.execute(
                "UPDATE torrents SET queue_position = queue_position - 1 WHERE queue_position > ?1",
                [position],
            )?;
            Ok(())
        })
    }
}
