//! `shoal daemon`: a long-running node driven over RPC, its torrents and settings kept in one
//! SQLite database (`shoal-state`) so that a restart, even after `kill -9`, brings every
//! torrent back as it was: paused ones stay paused, the rest go on; verified data is not
//! checked again (the engine's resume data records it).
//!
//! [`Daemon`] implements the RPC crate's [`Api`] over an engine [`Session`]; the RPC crate
//! serves it as JSON-RPC, XML-RPC and Transmission RPC on one port. Store calls are short
//! single-row transactions made from the async handlers directly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, anyhow};
use shoal_engine::{AddTorrent, Session, Torrent, TorrentState as EngineState};
use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;
use shoal_rpc::api::{
    AddRequest, AddResult, Api, ApiError, FileInfo, Ids, PeerInfo, Priority, RemoveRequest, SessionSettings,
    SessionStats, SessionUpdate, SetRequest, Source, TorrentId, TorrentInfo, TorrentRef, TorrentState, TrackerInfo,
    TransferTotals,
};
use shoal_state::{FilePriority, NewTorrent, Store, TorrentState as StoredState};

use crate::Failure;
use crate::args::DaemonArgs;

/// One torrent the daemon knows.
struct Entry {
    id: TorrentId,
    info_hash: String,
    name: String,
    meta: Option<Metainfo>,
    torrent: Option<Torrent>,
    download_dir: PathBuf,
    paused: bool,
    added_at: SystemTime,
    upload_limit: Option<u64>,
    download_limit: Option<u64>,
    /// Most connections for this torrent (`None`: the session's per-torrent default).
    max_connections: Option<u32>,
    priorities: Vec<Priority>,
    error: Option<String>,
    /// When it started seeding in this run (for the seeding time goal).
    seeding_since: Option<std::time::Instant>,
    /// Bytes uploaded and downloaded in earlier runs, and this run's counts already recorded.
    lifetime: (u64, u64),
    recorded: (u64, u64),
    /// Paused by the download or seed queue (not by the user); resumed when a slot frees.
    queued: bool,
    /// Stopped after reaching the seeding goal.
    finished: bool,
}

/// The daemon's state behind the RPC.
pub(crate) struct Daemon {
    session: Session,
    store: Arc<Store>,
    entries: tokio::sync::Mutex<BTreeMap<u64, Entry>>,
    settings: Mutex<SessionSettings>,
    started: std::time::Instant,
    /// Magnet links whose metadata is to be fetched, with their torrent's id.
    magnets: tokio::sync::mpsc::UnboundedSender<(u64, Magnet)>,
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Failed(e.to_string())
}

fn stored_priority(p: Priority) -> FilePriority {
    match p {
        Priority::Skip => FilePriority::Skip,
        Priority::Normal => FilePriority::Normal,
        Priority::High => FilePriority::High,
    }
}

fn api_priority(p: FilePriority) -> Priority {
    match p {
        FilePriority::Skip => Priority::Skip,
        FilePriority::High => Priority::High,
        _ => Priority::Normal,
    }
}

fn engine_priorities(priorities: &[Priority]) -> Vec<shoal_engine::FilePriority> {
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

impl Daemon {
    /// Opens the database and brings back every torrent it lists.
    pub(crate) async fn restore(
        session: Session,
        store: Store,
        settings: SessionSettings,
        magnets: tokio::sync::mpsc::UnboundedSender<(u64, Magnet)>,
    ) -> anyhow::Result<Daemon> {
        let daemon = Daemon {
            session,
            store: Arc::new(store),
            entries: tokio::sync::Mutex::new(BTreeMap::new()),
            settings: Mutex::new(settings),
            started: std::time::Instant::now(),
            magnets,
        };
        let rows = daemon.store.torrents().context("cannot read the torrents from the database")?;
        for row in rows {
            let id = TorrentId(row.id.get() as u64);
            let meta = match row.metainfo.as_deref().map(Metainfo::from_bytes) {
                Some(Ok(meta)) => Some(meta),
                Some(Err(e)) => {
                    tracing::warn!(id = id.0, "stored torrent does not parse: {e}");
                    None
                }
                None => None,
            };
            let paused = row.state == StoredState::Paused;
            let priorities: Vec<Priority> =
                row.file_priorities.clone().unwrap_or_default().into_iter().map(api_priority).collect();
            let mut entry = Entry {
                id,
                info_hash: row.info_hash.clone(),
                name: row.name.clone(),
                meta: meta.clone(),
                torrent: None,
                download_dir: row.download_dir.clone(),
                paused,
                added_at: row.added_at,
                upload_limit: row.limits.upload,
                download_limit: row.limits.download,
                max_connections: row.limits.max_peers,
                priorities,
                error: None,
                seeding_since: None,
                lifetime: (row.uploaded_total, row.downloaded_total),
                recorded: (0, 0),
                queued: false,
                finished: false,
            };
            match (meta, row.magnet.as_deref().map(Magnet::parse)) {
                (Some(meta), _) => daemon.start_entry(&mut entry, meta).await,
                (None, Some(Ok(magnet))) => {
                    let _ = daemon.magnets.send((id.0, magnet));
                }
                _ => entry.error = Some("neither a torrent nor a magnet link is stored for this torrent".into()),
            }
            daemon.entries.lock().await.insert(id.0, entry);
        }
        Ok(daemon)
    }

    /// Adds the entry's torrent to the session and applies its settings.
    async fn start_entry(&self, entry: &mut Entry, meta: Metainfo) {
        let add = AddTorrent {
            meta,
            download_dir: entry.download_dir.clone(),
            peers: vec![],
            use_trackers: true,
            only_files: None,
            resume: Some(Arc::new(DbResume {
                store: self.store.clone(),
                id: shoal_state::TorrentId::new(entry.id.0 as i64),
            })),
        };
        match self.session.add(add).await {
            Ok(t) => {
                if entry.paused {
                    t.pause();
                }
                t.set_limits(entry.upload_limit, entry.download_limit);
                if let Some(n) = entry.max_connections {
                    t.set_max_peers(n as usize);
                }
                if entry.priorities.iter().any(|p| *p != Priority::Normal) {
                    t.set_file_priorities(&engine_priorities(&entry.priorities));
                }
                entry.torrent = Some(t);
                entry.error = None;
            }
            Err(e) => entry.error = Some(e.to_string()),
        }
    }

    fn resolve(entries: &BTreeMap<u64, Entry>, ids: &Ids) -> Result<Vec<u64>, ApiError> {
        match ids {
            Ids::All => Ok(entries.keys().copied().collect()),
            Ids::List(list) => list
                .iter()
                .map(|r| match r {
                    TorrentRef::Id(id) if entries.contains_key(&id.0) => Ok(id.0),
                    TorrentRef::InfoHash(h) => entries
                        .values()
                        .find(|e| e.info_hash.eq_ignore_ascii_case(h))
                        .map(|e| e.id.0)
                        .ok_or_else(|| ApiError::NotFound(r.clone())),
                    _ => Err(ApiError::NotFound(r.clone())),
                })
                .collect(),
        }
    }

    fn info(entry: &Entry) -> TorrentInfo {
        let status = entry.torrent.as_ref().map(Torrent::status);
        let meta = entry.meta.as_ref();
        let total = meta.map(|m| m.info.total_length()).unwrap_or(0);
        let (have, down_rate, up_rate, downloaded, uploaded, peers, seeds) = status
            .as_ref()
            .map(|s| {
                (
                    s.stats.bytes_have,
                    s.stats.down_rate as u64,
                    s.stats.up_rate as u64,
                    s.stats.downloaded,
                    s.stats.uploaded,
                    s.stats.peers as u32,
                    s.stats.seeds as u32,
                )
            })
            .unwrap_or_default();
        let state = match (&entry.error, status.as_ref().map(|s| &s.state)) {
            (Some(_), _) | (_, Some(EngineState::Error(_))) => TorrentState::Error,
            _ if entry.paused || entry.finished => TorrentState::Paused,
            _ if entry.queued => TorrentState::Queued,
            (_, None) => TorrentState::Checking,
            (_, Some(EngineState::Checking { .. })) => TorrentState::Checking,
            (_, Some(EngineState::Seeding)) => TorrentState::Seeding,
            _ => TorrentState::Downloading,
        };
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
                        have: if state == TorrentState::Seeding { f.length } else { 0 },
                        priority: entry.priorities.get(i).copied().unwrap_or(Priority::Normal),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let trackers: Vec<TrackerInfo> = meta
            .map(|m| {
                m.announce_list
                    .iter()
                    .enumerate()
                    .flat_map(|(tier, urls)| {
                        urls.iter().map(move |u| TrackerInfo {
                            url: u.clone(),
                            tier: tier as u32,
                            last_error: None,
                            last_announce: None,
                            next_announce: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let wanted: u64 = files.iter().filter(|f| f.priority != Priority::Skip).map(|f| f.length).sum();
        let wanted = if files.is_empty() { total } else { wanted };
        let left = wanted.saturating_sub(have);
        TorrentInfo {
            id: entry.id,
            info_hash: entry.info_hash.clone(),
            name: meta.map(|m| m.info.name.clone()).unwrap_or_else(|| entry.name.clone()),
            state,
            progress: if wanted == 0 { 1.0 } else { (have as f64 / wanted as f64).min(1.0) },
            total_bytes: total,
            wanted_bytes: wanted,
            have_bytes: have,
            left_bytes: left,
            download_rate: down_rate,
            upload_rate: up_rate,
            downloaded,
            uploaded,
            peers,
            peers_sending: seeds,
            peers_receiving: 0,
            eta: (down_rate > 0 && left > 0).then(|| left / down_rate),
            download_dir: entry.download_dir.display().to_string(),
            error: entry.error.clone().or_else(|| match status.map(|s| s.state) {
                Some(EngineState::Error(e)) => Some(e),
                _ => None,
            }),
            upload_limit: entry.upload_limit,
            download_limit: entry.download_limit,
            max_connections: entry.max_connections,
            piece_count: meta.map(|m| m.info.layout.piece_count()).unwrap_or(0),
            piece_length: meta.map(|m| m.info.piece_length).unwrap_or(0),
            files,
            trackers,
            added_at: unix(entry.added_at),
        }
    }

    /// The torrent (with its file's bytes, kept in the database) or the magnet link.
    async fn load_source(source: Source) -> Result<(Option<(Metainfo, Vec<u8>)>, Option<Magnet>), ApiError> {
        match source {
            Source::TorrentFile(bytes) => Metainfo::from_bytes(&bytes)
                .map(|m| (Some((m, bytes)), None))
                .map_err(|e| ApiError::BadTorrent(format!("not a valid torrent: {e}"))),
            Source::Magnet(link) => {
                Magnet::parse(&link).map(|m| (None, Some(m))).map_err(|e| ApiError::BadTorrent(e.to_string()))
            }
            Source::Url(url) => {
                let bytes = crate::get::fetch_torrent(&url).await.map_err(|e| match e {
                    Failure::Input(e) | Failure::Runtime(e) | Failure::Interrupted(e) => {
                        ApiError::BadTorrent(format!("{e:#}"))
                    }
                })?;
                Metainfo::from_bytes(&bytes)
                    .map(|m| (Some((m, bytes)), None))
                    .map_err(|e| ApiError::BadTorrent(format!("{url} is not a valid torrent: {e}")))
            }
        }
    }
}

impl Api for Daemon {
    async fn add(&self, request: AddRequest) -> Result<AddResult, ApiError> {
        let (loaded, magnet) = Daemon::load_source(request.source).await?;
        let (meta, bytes) = match loaded {
            Some((meta, bytes)) => (Some(meta), Some(bytes)),
            None => (None, None),
        };
        let info_hash = meta.as_ref().map(|m| m.info_hash).or(magnet.as_ref().map(|m| m.info_hash));
        let Some(info_hash) = info_hash else {
            return Err(ApiError::BadTorrent("nothing to add".into()));
        };
        let hex = info_hash.to_hex();
        let mut entries = self.entries.lock().await;
        if let Some(e) = entries.values().find(|e| e.info_hash == hex) {
            return Ok(AddResult { id: e.id, info_hash: hex, name: e.name.clone(), duplicate: true });
        }
        let download_dir = match request.download_dir {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(self.settings.lock().map_err(failed)?.download_dir.clone()),
        };
        std::fs::create_dir_all(&download_dir)
            .map_err(|e| ApiError::InvalidParams(format!("cannot create {}: {e}", download_dir.display())))?;
        let name = meta
            .as_ref()
            .map(|m| m.info.name.clone())
            .or_else(|| magnet.as_ref().and_then(|m| m.display_name.clone()))
            .unwrap_or_else(|| hex.clone());
        let new = NewTorrent {
            info_hash: hex.clone(),
            name: name.clone(),
            metainfo: bytes,
            magnet: magnet.as_ref().map(|m| m.to_string()),
            download_dir: download_dir.clone(),
            state: if request.paused { StoredState::Paused } else { StoredState::Active },
            added_at: SystemTime::now(),
            limits: Default::default(),
            file_priorities: None,
        };
        let id = self.store.add_torrent(&new).map_err(failed)?;
        let id = TorrentId(id.get() as u64);
        let mut entry = Entry {
            id,
            info_hash: hex.clone(),
            name: name.clone(),
            meta: meta.clone(),
            torrent: None,
            download_dir,
            paused: request.paused,
            added_at: new.added_at,
            upload_limit: None,
            download_limit: None,
            max_connections: None,
            priorities: Vec::new(),
            error: None,
            seeding_since: None,
            lifetime: (0, 0),
            recorded: (0, 0),
            queued: false,
            finished: false,
        };
        match (meta, magnet) {
            (Some(meta), _) => self.start_entry(&mut entry, meta).await,
            (None, Some(magnet)) => {
                let _ = self.magnets.send((id.0, magnet));
            }
            (None, None) => {}
        }
        entries.insert(id.0, entry);
        Ok(AddResult { id, info_hash: hex, name, duplicate: false })
    }

    async fn get(&self, ids: Ids) -> Result<Vec<TorrentInfo>, ApiError> {
        let entries = self.entries.lock().await;
        let keys = Daemon::resolve(&entries, &ids)?;
        Ok(keys.iter().filter_map(|k| entries.get(k)).map(Daemon::info).collect())
    }

    async fn pause(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.set_paused(ids, true).await
    }

    async fn resume(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.set_paused(ids, false).await
    }

    async fn remove(&self, request: RemoveRequest) -> Result<Vec<TorrentId>, ApiError> {
        let mut entries = self.entries.lock().await;
        let keys = Daemon::resolve(&entries, &request.ids)?;
        let mut done = Vec::new();
        for key in keys {
            let Some(mut entry) = entries.remove(&key) else { continue };
            if let Some(t) = entry.torrent.take() {
                t.stop().await;
            }
            self.store.remove_torrent(shoal_state::TorrentId::new(key as i64)).map_err(failed)?;
            if request.delete_data
                && let Some(meta) = &entry.meta
            {
                delete_data(&entry.download_dir, meta);
            }
            done.push(entry.id);
        }
        Ok(done)
    }

    async fn set(&self, request: SetRequest) -> Result<Vec<TorrentId>, ApiError> {
        let mut entries = self.entries.lock().await;
        let keys = Daemon::resolve(&entries, &request.ids)?;
        for key in &keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            let files = entry.meta.as_ref().map(|m| m.info.files.len()).unwrap_or(0);
            if let Some((index, _)) = request.file_priorities.iter().find(|(i, _)| *i >= files) {
                return Err(ApiError::InvalidParams(format!(
                    "file_priorities: torrent {} has {files} files, no file {index}",
                    entry.id
                )));
            }
        }
        for key in &keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            let sid = shoal_state::TorrentId::new(*key as i64);
            if let Some(up) = request.upload_limit {
                entry.upload_limit = up;
            }
            if let Some(down) = request.download_limit {
                entry.download_limit = down;
            }
            if let Some(n) = request.max_connections {
                entry.max_connections = n;
            }
            if request.upload_limit.is_some() || request.download_limit.is_some() || request.max_connections.is_some() {
                let limits = shoal_state::Limits {
                    upload: entry.upload_limit,
                    download: entry.download_limit,
                    max_peers: entry.max_connections,
                    ..Default::default()
                };
                self.store.set_limits(sid, &limits).map_err(failed)?;
                if let Some(t) = &entry.torrent {
                    t.set_limits(entry.upload_limit, entry.download_limit);
                    let default = self.settings.lock().map(|s| s.max_connections_per_torrent).unwrap_or(80);
                    t.set_max_peers(entry.max_connections.unwrap_or(default) as usize);
                }
            }
            if !request.file_priorities.is_empty() {
                let files = entry.meta.as_ref().map(|m| m.info.files.len()).unwrap_or(0);
                entry.priorities.resize(files, Priority::Normal);
                for (i, p) in &request.file_priorities {
                    entry.priorities[*i] = *p;
                }
                let stored: Vec<FilePriority> = entry.priorities.iter().copied().map(stored_priority).collect();
                self.store.set_file_priorities(sid, Some(&stored)).map_err(failed)?;
                if let Some(t) = &entry.torrent {
                    t.set_file_priorities(&engine_priorities(&entry.priorities));
                }
            }
        }
        Ok(keys.into_iter().map(TorrentId).collect())
    }

    async fn peers(&self, id: TorrentRef) -> Result<Vec<PeerInfo>, ApiError> {
        let entries = self.entries.lock().await;
        let keys = Daemon::resolve(&entries, &Ids::List(vec![id]))?;
        let Some(entry) = keys.first().and_then(|k| entries.get(k)) else { return Ok(vec![]) };
        let Some(t) = &entry.torrent else { return Ok(vec![]) };
        let pieces = entry.meta.as_ref().map(|m| m.info.layout.piece_count()).unwrap_or(1).max(1);
        Ok(t.peers()
            .await
            .into_iter()
            .map(|p| PeerInfo {
                address: p.addr,
                client: p.client.unwrap_or_default(),
                progress: p.pieces as f64 / pieces as f64,
                download_rate: p.down_rate as u64,
                upload_rate: p.up_rate as u64,
                incoming: !p.outgoing,
                encrypted: false,
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
            })
            .collect())
    }

    async fn session_get(&self) -> Result<SessionSettings, ApiError> {
        self.settings.lock().map(|s| s.clone()).map_err(failed)
    }

    async fn session_set(&self, update: SessionUpdate) -> Result<SessionSettings, ApiError> {
        let mut settings = self.settings.lock().map_err(failed)?;
        let next = update.apply(&settings);
        if next.listen_port != settings.listen_port {
            return Err(ApiError::InvalidParams("listen_port: the listening port changes on restart only".into()));
        }
        self.session.set_limits(next.upload_limit, next.download_limit);
        self.session.set_max_connections(next.max_connections as usize);
        self.store.set_setting("session", &next).map_err(failed)?;
        *settings = next.clone();
        Ok(next)
    }

    async fn session_stats(&self) -> Result<SessionStats, ApiError> {
        let entries = self.entries.lock().await;
        let infos: Vec<TorrentInfo> = entries.values().map(Daemon::info).collect();
        let earlier = entries.values().fold((0, 0), |acc, e| {
            (
                acc.0 + e.lifetime.0 - e.recorded.0.min(e.lifetime.0),
                acc.1 + e.lifetime.1 - e.recorded.1.min(e.lifetime.1),
            )
        });
        let current = TransferTotals {
            uploaded: infos.iter().map(|i| i.uploaded).sum(),
            downloaded: infos.iter().map(|i| i.downloaded).sum(),
            seconds_active: self.started.elapsed().as_secs(),
            torrents_added: infos.len() as u64,
            session_count: 1,
        };
        Ok(SessionStats {
            download_rate: infos.iter().map(|i| i.download_rate).sum(),
            upload_rate: infos.iter().map(|i| i.upload_rate).sum(),
            torrent_count: infos.len() as u32,
            active_torrent_count: infos.iter().filter(|i| i.state != TorrentState::Paused).count() as u32,
            paused_torrent_count: infos.iter().filter(|i| i.state == TorrentState::Paused).count() as u32,
            cumulative: TransferTotals {
                uploaded: earlier.0 + current.uploaded,
                downloaded: earlier.1 + current.downloaded,
                ..current.clone()
            },
            current,
        })
    }
}

impl Daemon {
    async fn set_paused(&self, ids: Ids, paused: bool) -> Result<Vec<TorrentId>, ApiError> {
        let mut entries = self.entries.lock().await;
        let keys = Daemon::resolve(&entries, &ids)?;
        for key in &keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            let state = if paused { StoredState::Paused } else { StoredState::Active };
            self.store.set_state(shoal_state::TorrentId::new(*key as i64), state).map_err(failed)?;
            entry.paused = paused;
            if !paused {
                // Resumed by the user: the seeding goal counts again from now.
                entry.finished = false;
                entry.seeding_since = None;
            }
            if let Some(t) = &entry.torrent {
                if paused {
                    t.pause()
                } else if !entry.queued {
                    t.resume()
                }
            }
        }
        Ok(keys.into_iter().map(TorrentId).collect())
    }

    /// Fetches the metadata of magnet links as they are added, one task per link.
    pub(crate) async fn fetch_magnets(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Magnet)>) {
        while let Some((id, magnet)) = rx.recv().await {
            let daemon = self.clone();
            tokio::spawn(async move {
                let (tx, _rx) = tokio::sync::watch::channel(Default::default());
                match daemon.session.fetch_metadata(&magnet, vec![], true, tx).await {
                    Ok((meta, peers)) => daemon.metadata_arrived(id, meta, peers).await,
                    Err(e) => {
                        if let Some(entry) = daemon.entries.lock().await.get_mut(&id) {
                            entry.error = Some(e.to_string());
                        }
                    }
                }
            });
        }
    }

    async fn metadata_arrived(&self, id: u64, meta: Metainfo, peers: Vec<SocketAddr>) {
        let mut entries = self.entries.lock().await;
        let Some(entry) = entries.get_mut(&id) else { return };
        let bytes = torrent_file(&meta.info_bytes, &meta.trackers().iter().map(|t| t.to_string()).collect::<Vec<_>>());
        if let Err(e) = self.store.set_metainfo(shoal_state::TorrentId::new(id as i64), &bytes, &meta.info.name) {
            entry.error = Some(format!("cannot store the metadata: {e}"));
            return;
        }
        entry.name = meta.info.name.clone();
        entry.meta = Some(meta.clone());
        self.start_entry(entry, meta).await;
        if let Some(t) = &entry.torrent {
            t.add_peers(peers);
        }
    }

    /// Applies the queue (most active downloads and seeds) and the seeding goals (ratio,
    /// time): torrents beyond a queue's size wait in it, in the order they were added, and a
    /// seed that reached its goal stops.
    pub(crate) async fn enforce(&self) {
        let settings = match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(_) => return,
        };
        let mut entries = self.entries.lock().await;
        let mut downloads = 0u32;
        let mut seeds = 0u32;
        for entry in entries.values_mut() {
            let Some(t) = &entry.torrent else { continue };
            if entry.paused || entry.finished {
                continue;
            }
            let status = t.status();
            let seeding = status.state == EngineState::Seeding;
            if seeding {
                let ratio_done = settings.seed_ratio_limit.is_some_and(|r| {
                    status.total_length > 0 && status.stats.uploaded as f64 >= r * status.total_length as f64
                });
                let time_done = settings
                    .seed_time_limit
                    .is_some_and(|limit| entry.seeding_since.is_some_and(|since| since.elapsed().as_secs() >= limit));
                if entry.seeding_since.is_none() {
                    entry.seeding_since = Some(std::time::Instant::now());
                }
                if ratio_done || time_done {
                    entry.finished = true;
                    t.pause();
                    continue;
                }
            }
            let (count, limit) = if seeding {
                (&mut seeds, settings.seed_queue_size)
            } else {
                (&mut downloads, settings.download_queue_size)
            };
            let over = limit.is_some_and(|l| *count >= l);
            if over != entry.queued {
                entry.queued = over;
                if over { t.pause() } else { t.resume() }
            }
            if !over {
                *count += 1;
            }
        }
    }

    /// Adds what each torrent moved since the last call to its lifetime counters.
    pub(crate) async fn record_counters(&self) {
        let mut entries = self.entries.lock().await;
        for (key, entry) in entries.iter_mut() {
            let Some(t) = &entry.torrent else { continue };
            let stats = t.status().stats;
            let (up, down) = (stats.uploaded, stats.downloaded);
            let delta = (up.saturating_sub(entry.recorded.0), down.saturating_sub(entry.recorded.1));
            if delta == (0, 0) {
                continue;
            }
            match self.store.add_counters(shoal_state::TorrentId::new(*key as i64), delta.0, delta.1) {
                Ok(()) => {
                    entry.recorded = (up, down);
                    entry.lifetime = (entry.lifetime.0 + delta.0, entry.lifetime.1 + delta.1);
                }
                Err(e) => tracing::warn!("cannot record transfer counters: {e}"),
            }
        }
    }

    /// Stops every torrent (resume data is saved) and the session.
    async fn shutdown(&self) {
        self.record_counters().await;
        let mut entries = self.entries.lock().await;
        for entry in entries.values_mut() {
            if let Some(t) = entry.torrent.take() {
                t.stop().await;
            }
        }
        self.session.shutdown().await;
    }
}

/// A torrent's resume record in the daemon's database, next to the torrent itself.
#[derive(Debug)]
struct DbResume {
    store: Arc<Store>,
    id: shoal_state::TorrentId,
}

impl shoal_storage::ResumeBackend for DbResume {
    fn load(&self) -> std::io::Result<Option<shoal_storage::ResumeRecord>> {
        let data = self.store.load_resume(self.id).map_err(std::io::Error::other)?;
        Ok(data.map(|d| shoal_storage::ResumeRecord {
            fingerprint: d.fingerprint,
            verified: d.pieces,
            files: d
                .files
                .iter()
                .map(|f| shoal_storage::FileStamp {
                    length: f.length,
                    mtime_secs: f.mtime_secs,
                    mtime_nanos: f.mtime_nanos,
                })
                .collect(),
        }))
    }

    fn save(&self, record: &shoal_storage::ResumeRecord) -> std::io::Result<()> {
        let data = shoal_state::ResumeData {
            fingerprint: record.fingerprint,
            pieces: record.verified.clone(),
            files: record
                .files
                .iter()
                .map(|f| shoal_state::FileStamp {
                    length: f.length,
                    mtime_secs: f.mtime_secs,
                    mtime_nanos: f.mtime_nanos,
                })
                .collect(),
            saved_at: SystemTime::now(),
        };
        self.store.save_resume(self.id, &data).map_err(std::io::Error::other)
    }

    fn remove(&self) -> std::io::Result<()> {
        self.store.clear_resume(self.id).map_err(std::io::Error::other)
    }
}

/// A .torrent file made of an info dictionary (as received) and its trackers, one tier each.
fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
    }
    if trackers.len() > 1 {
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Deletes a torrent's files (and the folders it created, when empty), never anything outside
/// `dir`.
fn delete_data(dir: &Path, meta: &Metainfo) {
    for f in &meta.info.files {
        let path = dir.join(meta.info.file_path(f));
        if path.starts_with(dir) {
            let _ = std::fs::remove_file(&path);
        }
    }
    if meta.info.multi_file {
        let top = dir.join(&meta.info.name);
        // Remove the empty folders bottom-up.
        let mut dirs: Vec<PathBuf> = meta
            .info
            .files
            .iter()
            .filter_map(|f| dir.join(meta.info.file_path(f)).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs.iter().chain(std::iter::once(&top)) {
            if d.starts_with(&top) {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(".shoal").join(format!("{}.resume", meta.info_hash.to_hex())));
}

/// Runs `shoal daemon` until SIGINT/SIGTERM.
pub(crate) async fn run(a: DaemonArgs, quiet: bool) -> Result<(), Failure> {
    let mut config = match &a.config {
        Some(path) => shoal_state::DaemonConfig::load(path).map_err(|e| Failure::Input(anyhow!("{e}")))?,
        None => shoal_state::DaemonConfig::default(),
    };
    config.merge(shoal_state::ConfigOverrides {
        data_dir: a.data_dir.clone(),
        listen: None,
        rpc_listen: a.rpc_listen,
        download_dir: a.download_dir.clone(),
    });
    let data_dir = config.resolved_data_dir().ok_or_else(|| anyhow!("no data folder: set --data-dir or HOME"))?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // One daemon per data folder: the lock lasts as long as this process (the OS drops it
    // even after `kill -9`).
    let lock_path = data_dir.join("daemon.lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Failure::Runtime(anyhow!("another shoal daemon is using {}", data_dir.display())));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Failure::Runtime(anyhow!("cannot lock {}: {e}", lock_path.display())));
        }
    }
    let rpc_listen = config.rpc_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9091)));
    let access = shoal_rpc::http::Access {
        token: config.rpc.token.clone(),
        user_password: config.rpc.user.clone().zip(config.rpc.password.clone()),
    };
    shoal_rpc::http::check_bind(rpc_listen, &access).map_err(|e| Failure::Input(anyhow!("{e}")))?;
    let store = Store::open(Store::path_in(&data_dir)).map_err(|e| anyhow!("{e}"))?;

    let mut node = a.node.clone();
    // The config file's address applies unless --listen named another one.
    if let Some(listen) =
        config.listen.filter(|_| node.listen == crate::args::DEFAULT_LISTEN.parse().ok().unwrap_or(node.listen))
    {
        node.listen = listen;
    }
    node.no_dht |= !config.dht.enabled;
    node.no_lsd |= !config.lsd.enabled;
    if !config.dht.bootstrap.is_empty() && node.dht_bootstrap.is_empty() {
        node.dht_bootstrap = config.dht.bootstrap.clone();
    }
    let mut session_config = node.session_config();
    let download_dir = config.download_dir.clone().unwrap_or_else(|| data_dir.join("downloads"));
    let stored: Option<SessionSettings> = store.get_setting("session").ok().flatten();
    session_config.upload_limit =
        stored.as_ref().map_or(config.limits.upload.or(node.upload_limit), |s| s.upload_limit);
    session_config.download_limit =
        stored.as_ref().map_or(config.limits.download.or(node.download_limit), |s| s.download_limit);
    session_config.max_connections = config.limits.max_connections.unwrap_or(500) as usize;
    session_config.max_peers = config.limits.max_connections_per_torrent.unwrap_or(80) as usize;
    let session = Session::start(session_config.clone()).await.map_err(anyhow::Error::from)?;
    let settings = stored.unwrap_or(SessionSettings {
        listen_port: session.listen_addr().port(),
        download_dir: download_dir.display().to_string(),
        upload_limit: session_config.upload_limit,
        download_limit: session_config.download_limit,
        dht: session_config.dht.is_some(),
        lsd: session_config.lsd,
        pex: true,
        max_connections: session_config.max_connections as u32,
        max_connections_per_torrent: session_config.max_peers as u32,
        download_queue_size: config.limits.max_active_downloads,
        seed_queue_size: config.limits.max_active_seeds,
        seed_ratio_limit: config.limits.seed_ratio,
        seed_time_limit: config.limits.seed_time,
    });
    let (magnets_tx, magnets_rx) = tokio::sync::mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon::restore(session.clone(), store, settings, magnets_tx).await?);
    tokio::spawn(daemon.clone().fetch_magnets(magnets_rx));
    let policy = daemon.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        for n in 0u64.. {
            tick.tick().await;
            policy.enforce().await;
            if n % 30 == 29 {
                policy.record_counters().await;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(rpc_listen)
        .await
        .with_context(|| format!("cannot listen for RPC on {rpc_listen}"))?;
    let rpc_addr = listener.local_addr().context("RPC address")?;
    let app = shoal_rpc::http::router(daemon.clone(), access);
    if !quiet {
        println!("data: {}", data_dir.display());
    }
    println!("rpc: listening on http://{rpc_addr}/jsonrpc, /xmlrpc and /transmission/rpc");
    println!("ready: peers on {}; press Ctrl-C to stop", session.listen_addr());
    let server = axum::serve(listener, app).with_graceful_shutdown(crate::interrupted());
    server.await.context("the RPC server failed")?;
    daemon.shutdown().await;
    Ok(())
}
