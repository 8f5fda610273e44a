//! One torrent as the daemon knows it ([`Entry`]): what is stored about it, its engine handle
//! once started, and how it is shown over RPC ([`Entry::info`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use std::time::{Instant, SystemTime};

use shoal_engine::{Torrent, TorrentState as EngineState};
use shoal_proto::Metainfo;
use shoal_rpc::api::{FileInfo, Goal, Priority, TorrentId, TorrentInfo, TorrentState, TrackerInfo};
use shoal_state::{FilePriority, Limits, Unlimited};

/// The daemon's torrents by id, with an index by info-hash so that a lookup by hash (an add's
/// duplicate check, an RPC naming a torrent by hash) costs O(1), not a scan of thousands.
/// Reads and in-place changes go through `Deref` to the map; adding and removing go through
/// [`Table::insert`] and [`Table::remove`], which keep the index.
#[derive(Default)]
pub(crate) struct Table {
    by_id: BTreeMap<u64, Entry>,
    by_hash: HashMap<String, u64>,
}

impl Table {
    pub(crate) fn insert(&mut self, id: u64, entry: Entry) {
        self.by_hash.insert(entry.info_hash.to_ascii_lowercase(), id);
        self.by_id.insert(id, entry);
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<Entry> {
        let entry = self.by_id.remove(id)?;
        self.by_hash.remove(&entry.info_hash.to_ascii_lowercase());
        Some(entry)
    }

    /// The id of the torrent with this info-hash (hex, any case).
    pub(crate) fn id_of(&self, info_hash: &str) -> Option<u64> {
        self.by_hash.get(&info_hash.to_ascii_lowercase()).copied()
    }
}

impl std::ops::Deref for Table {
    type Target = BTreeMap<u64, Entry>;
    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl std::ops::DerefMut for Table {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.by_id
    }
}

/// One torrent the daemon knows.
pub(crate) struct Entry {
    pub(crate) id: TorrentId,
    pub(crate) info_hash: String,
    pub(crate) name: String,
    /// The torrent, once known (a magnet link's arrives from peers).
    pub(crate) meta: Option<Metainfo>,
    /// The engine's handle while the torrent runs in the session.
    pub(crate) torrent: Option<Torrent>,
    /// Being added to the session (its data checked) by a task of its own.
    pub(crate) starting: bool,
    pub(crate) download_dir: PathBuf,
    /// The magnet link it was added with, if any: its metadata is fetched again after an
    /// error when resumed, and the peers it names (`x.pe`) are dialled at every start.
    pub(crate) magnet: Option<shoal_proto::magnet::Magnet>,
    pub(crate) paused: bool,
    pub(crate) added_at: SystemTime,
    pub(crate) upload_limit: Option<u64>,
    pub(crate) download_limit: Option<u64>,
    /// Most connections for this torrent (`None`: the session's per-torrent default).
    pub(crate) max_connections: Option<u32>,
    /// The torrent's seeding goals: ratio, seconds seeding, seconds idle.
    pub(crate) goals: Goals,
    pub(crate) priorities: Vec<Priority>,
    pub(crate) labels: Vec<String>,
    /// Pieces are fetched in order.
    pub(crate) sequential: bool,
    /// Peers given when the torrent was added, dialled at every start.
    pub(crate) peers: Vec<SocketAddr>,
    /// Its files are being moved to another folder (the torrent is out of the session).
    pub(crate) moving: bool,
    /// Payload bytes moved (up and down) at the last policy tick, and when that count last
    /// changed: the torrent's last activity, for the idle seeding goal.
    pub(crate) activity: (u64, Option<Instant>),
    /// Why the torrent could not start or its metadata could not be fetched.
    pub(crate) error: Option<String>,
    /// When it started seeding in this run (for the seeding time goal).
    pub(crate) seeding_since: Option<Instant>,
    /// Bytes uploaded and downloaded in earlier runs, and this run's counts already recorded.
    pub(crate) lifetime: (u64, u64),
    pub(crate) recorded: (u64, u64),
    /// Paused by the download or seed queue (not by the user); resumed when a slot frees.
    pub(crate) queued: bool,
    /// Stopped after reaching the seeding goal.
    pub(crate) finished: bool,
    /// The group whose members alone may join (a group share), once started.
    pub(crate) group: Option<String>,
    /// On a server peer: the identities (IDs as shown) that pushed it.
    pub(crate) pushed_by: Vec<String>,
}

/// A torrent's seeding goals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Goals {
    pub(crate) ratio: Goal<f64>,
    pub(crate) time: Goal<u64>,
    pub(crate) idle: Goal<u64>,
}

fn goal<T>(value: Option<T>, unlimited: bool) -> Goal<T> {
    match (unlimited, value) {
        (true, _) => Goal::Unlimited,
        (false, Some(v)) => Goal::Limit(v),
        (false, None) => Goal::Session,
    }
}

impl Goals {
    /// The goals kept in `limits`.
    pub(crate) fn stored(limits: &Limits) -> Goals {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        Goals {
            ratio: goal(limits.seed_ratio, limits.unlimited.ratio),
            time: goal(secs(limits.seed_time), limits.unlimited.time),
            idle: goal(secs(limits.seed_idle), limits.unlimited.idle),
        }
    }

    /// Writes the goals into `limits` as the store keeps them.
    pub(crate) fn store_in(&self, limits: &mut Limits) {
        limits.seed_ratio = self.ratio.limit();
        limits.seed_time = self.time.limit().map(Duration::from_secs);
        limits.seed_idle = self.idle.limit().map(Duration::from_secs);
        limits.unlimited = Unlimited {
            ratio: self.ratio == Goal::Unlimited,
            time: self.time == Goal::Unlimited,
            idle: self.idle == Goal::Unlimited,
        };
    }
}

pub(crate) fn stored_priority(p: Priority) -> FilePriority {
    match p {
        Priority::Skip => FilePriority::Skip,
        Priority::Normal => FilePriority::Normal,
        Priority::High => FilePriority::High,
    }
}

pub(crate) fn api_priority(p: FilePriority) -> Priority {
    match p {
        FilePriority::Skip => Priority::Skip,
        FilePriority::High => Priority::High,
        _ => Priority::Normal,
    }
}

pub(crate) fn engine_priorities(priorities: &[Priority]) -> Vec<shoal_engine::FilePriority> {
    priorities
        .iter()
        .map(|p| match p {
            Priority::Skip => shoal_engine::FilePriority::Skip,
            Priority::Normal => shoal_engine::FilePriority::Normal,
            Priority::High => shoal_engine::FilePriority::High,
        })
        .collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Entry {
    /// A torrent not started yet, with every setting at its default: the session's goals
    /// and limits, every file normal, running (not paused).
    pub(crate) fn new(id: TorrentId, info_hash: String, name: String, meta: Option<Metainfo>) -> Entry {
        Entry {
            id,
            info_hash,
            name,
            starting: meta.is_some(),
            meta,
            torrent: None,
            download_dir: PathBuf::new(),
            magnet: None,
            paused: false,
            added_at: SystemTime::now(),
            upload_limit: None,
            download_limit: None,
            max_connections: None,
            goals: Goals::default(),
            priorities: Vec::new(),
            labels: Vec::new(),
            group: None,
            pushed_by: Vec::new(),
            sequential: false,
            peers: Vec::new(),
            moving: false,
            activity: (0, None),
            error: None,
            seeding_since: None,
            lifetime: (0, 0),
            recorded: (0, 0),
            queued: false,
            finished: false,
        }
    }

    /// The daemon's error, or the engine's (in its `state`).
    fn error_text(&self, engine: Option<&EngineState>) -> Option<String> {
        self.error.clone().or_else(|| match engine {
            Some(EngineState::Error(e)) => Some(e.clone()),
            _ => None,
        })
    }

    /// What the torrent is doing, as the RPC says it, given the engine's state.
    fn state_with(&self, engine: Option<&EngineState>) -> TorrentState {
        match engine {
            _ if self.moving => TorrentState::Moving,
            _ if self.error_text(engine).is_some() => TorrentState::Error,
            _ if self.paused || self.finished => TorrentState::Paused,
            _ if self.queued => TorrentState::Queued,
            None if self.meta.is_none() => TorrentState::Metadata,
            None | Some(EngineState::Checking { .. }) => TorrentState::Checking,
            Some(EngineState::Seeding) => TorrentState::Seeding,
            Some(EngineState::Paused | EngineState::Stopped) => TorrentState::Paused,
            Some(EngineState::Downloading | EngineState::Error(_)) => TorrentState::Downloading,
        }
    }

    /// A snapshot for the RPC. `file_have` is the bytes verified per file (in the torrent's
    /// file order), when known.
    pub(crate) fn info(&self, file_have: Option<&[u64]>) -> TorrentInfo {
        match &self.torrent {
            // Read in place: no copy of the status (name, trackers) for each of thousands.
            Some(t) => t.peek(|s| self.info_with(Some(s), file_have)),
            None => self.info_with(None, file_have),
        }
    }

    fn info_with(&self, status: Option<&shoal_engine::TorrentStatus>, file_have: Option<&[u64]>) -> TorrentInfo {
        let engine = status.map(|s| &s.state);
        let meta = self.meta.as_ref();
        let total = meta.map(|m| m.info.total_length()).unwrap_or(0);
        let state = self.state_with(engine);
        let stats = status.as_ref().map(|s| s.stats.clone()).unwrap_or_default();
        // Rates are of this moment: nothing moves while paused, queued or stopped.
        let moving = matches!(state, TorrentState::Downloading | TorrentState::Seeding);
        let (down_rate, up_rate) = if moving { (stats.down_rate as u64, stats.up_rate as u64) } else { (0, 0) };
        let files: Vec<FileInfo> = meta
            .map(|m| {
                m.info
                    .files
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !f.padding)
                    .map(|(i, f)| FileInfo {
                        path: m.info.file_components(f).join("/"),
                        length: f.length,
                        have: file_have.and_then(|h| h.get(i).copied()).unwrap_or(0).min(f.length),
                        priority: self.priorities.get(i).copied().unwrap_or(Priority::Normal),
                        stream: crate::stream::stream_path(self.id.0, i),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reported = status.as_ref().map(|s| s.trackers.as_slice()).unwrap_or_default();
        let trackers: Vec<TrackerInfo> = meta
            .map(|m| {
                m.announce_list
                    .iter()
                    .enumerate()
                    .flat_map(|(tier, urls)| {
                        urls.iter().map(move |u| {
                            let seen = reported.iter().find(|t| &t.url == u);
                            TrackerInfo {
                                url: u.clone(),
                                tier: tier as u32,
                                last_error: seen.and_then(|t| t.last_result.clone()?.err()),
                                last_announce: seen.and_then(|t| t.last_announce).map(unix),
                                next_announce: seen.and_then(|t| t.next_announce).map(unix),
                                last_peers: seen.and_then(|t| t.last_result.clone()?.ok()).map(|n| n as u32),
                            }
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let wanted_files = files.iter().filter(|f| f.priority != Priority::Skip);
        let (wanted, have) = match file_have {
            Some(_) => wanted_files.fold((0, 0), |(w, h), f| (w + f.length, h + f.have)),
            None => (if files.is_empty() { total } else { wanted_files.map(|f| f.length).sum() }, stats.bytes_have),
        };
        let have = have.min(wanted);
        let left = wanted - have;
        TorrentInfo {
            id: self.id,
            info_hash: self.info_hash.clone(),
            name: meta.map(|m| m.info.name.clone()).unwrap_or_else(|| self.name.clone()),
            state,
            progress: if wanted == 0 { if meta.is_some() { 1.0 } else { 0.0 } } else { have as f64 / wanted as f64 },
            total_bytes: total,
            wanted_bytes: wanted,
            have_bytes: have,
            left_bytes: left,
            download_rate: down_rate,
            upload_rate: up_rate,
            downloaded: stats.downloaded,
            uploaded: stats.uploaded,
            peers: stats.peers as u32,
            peers_sending: if moving { stats.sending as u32 } else { 0 },
            peers_receiving: if moving { stats.receiving as u32 } else { 0 },
            eta: (down_rate > 0 && left > 0).then(|| left / down_rate),
            download_dir: self.download_dir.display().to_string(),
            error: self.error_text(engine),
            upload_limit: self.upload_limit,
            download_limit: self.download_limit,
            max_connections: self.max_connections,
            seed_ratio_limit: self.goals.ratio,
            seed_time_limit: self.goals.time,
            seed_idle_limit: self.goals.idle,
            idle_seconds: self.activity.1.map(|at| at.elapsed().as_secs()),
            labels: self.labels.clone(),
            group: self.group.clone(),
            pushed_by: self.pushed_by.clone(),
            sequential: self.sequential,
            piece_count: meta.map(|m| m.info.layout.piece_count()).unwrap_or(0),
            piece_length: meta.map(|m| m.info.piece_length).unwrap_or(0),
            files,
            trackers,
            added_at: unix(self.added_at),
        }
    }
}
