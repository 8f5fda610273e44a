//! Test double for the [`Api`]: torrents held in memory behind a mutex, with the contract the
//! daemon must keep (unknown ids fail and change nothing). Only the RPC layer's tests use it;
//! the daemon's tests run the real engine.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::api::*;

/// A magnet link the fake accepts.
pub(crate) const MAGNET: &str = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=magnet";

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct State {
    pub(crate) torrents: BTreeMap<u64, TorrentInfo>,
    pub(crate) next_id: u64,
    pub(crate) settings: SessionSettings,
    pub(crate) added: u64,
}

pub(crate) struct Fake {
    state: Mutex<State>,
    /// How long `add` takes (as a hash check of existing data would).
    add_delay: std::time::Duration,
}

/// A downloading torrent with two files, half done.
pub(crate) fn torrent(id: TorrentId, name: &str) -> TorrentInfo {
    TorrentInfo {
        id,
        info_hash: format!("{:040x}", id.0 * 0x1111),
        name: name.to_owned(),
        state: TorrentState::Downloading,
        progress: 0.5,
        total_bytes: 3_000_000,
        wanted_bytes: 3_000_000,
        have_bytes: 1_500_000,
        left_bytes: 1_500_000,
        download_rate: 250_000,
        upload_rate: 50_000,
        downloaded: 1_600_000,
        uploaded: 400_000,
        peers: 3,
        peers_sending: 2,
        peers_receiving: 1,
        eta: Some(6),
        download_dir: "/downloads".to_owned(),
        error: None,
        upload_limit: None,
        download_limit: None,
        max_connections: None,
        seed_ratio_limit: Goal::Session,
        seed_time_limit: Goal::Session,
        seed_idle_limit: Goal::Session,
        idle_seconds: Some(0),
        labels: Vec::new(),
        group: None,
        pushed_by: Vec::new(),
        sequential: false,
        piece_count: 12,
        piece_length: 262_144,
        files: vec![
            FileInfo {
                path: format!("{name}/a.bin"),
                length: 1_000_000,
                have: 1_000_000,
                priority: Priority::Normal,
                stream: format!("/stream/{}/0", id.0),
            },
            FileInfo {
                path: format!("{name}/b.bin"),
                length: 2_000_000,
                have: 500_000,
                priority: Priority::Normal,
                stream: format!("/stream/{}/1", id.0),
            },
        ],
        trackers: vec![TrackerInfo {
            url: "http://tracker.example:6969/announce".to_owned(),
            tier: 0,
            last_error: None,
            last_announce: Some(1_700_000_000),
            next_announce: Some(1_700_001_800),
            last_peers: Some(12),
        }],
        added_at: 1_700_000_000,
    }
}

fn settings() -> SessionSettings {
    SessionSettings {
        listen_port: 6881,
        download_dir: "/downloads".to_owned(),
        upload_limit: None,
        download_limit: Some(1_000_000),
        dht: true,
        lsd: true,
        pex: true,
        max_connections: 200,
        max_connections_per_torrent: 50,
        download_queue_size: Some(5),
        seed_queue_size: None,
        seed_ratio_limit: Some(2.0),
        seed_time_limit: None,
        seed_idle_limit: None,
        encryption: "prefer".to_owned(),
        utp: "on".to_owned(),
    }
}

impl State {
    /// The ids of `refs`, or the first unknown one.
    fn resolve(&self, ids: &Ids) -> Result<Vec<u64>, ApiError> {
        match ids {
            Ids::All => Ok(self.torrents.keys().copied().collect()),
            Ids::List(list) => {
                let mut out = Vec::new();
                for r in list {
                    let found = match r {
                        TorrentRef::Id(id) => self.torrents.contains_key(&id.0).then_some(id.0),
                        TorrentRef::InfoHash(h) => self.torrents.values().find(|t| &t.info_hash == h).map(|t| t.id.0),
                    };
                    let id = found.ok_or_else(|| ApiError::NotFound(r.clone()))?;
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                out.sort_unstable();
                Ok(out)
            }
        }
    }

    fn set_state(&mut self, ids: &Ids, state: TorrentState) -> Result<Vec<TorrentId>, ApiError> {
        let ids = self.resolve(ids)?;
        for id in &ids {
            if let Some(t) = self.torrents.get_mut(id) {
                t.state = state;
            }
        }
        Ok(ids.into_iter().map(TorrentId).collect())
    }
}

impl Fake {
    /// A fake whose `add` takes `delay`.
    pub(crate) fn with_add_delay(mut self, delay: std::time::Duration) -> Fake {
        self.add_delay = delay;
        self
    }

    pub(crate) fn with_torrents(n: u64) -> Fake {
        let torrents = (1..=n).map(|i| (i, torrent(TorrentId(i), &format!("torrent-{i}")))).collect();
        Fake {
            state: Mutex::new(State { torrents, next_id: n + 1, settings: settings(), added: n }),
            add_delay: std::time::Duration::ZERO,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn snapshot(&self) -> State {
        self.lock().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().torrents.len()
    }

    pub(crate) fn torrent(&self, id: u64) -> TorrentInfo {
        self.lock().torrents.get(&id).cloned().expect("torrent exists")
    }

    pub(crate) fn state_of(&self, id: u64) -> TorrentState {
        self.torrent(id).state
    }

    fn add_sync(&self, request: AddRequest) -> Result<AddResult, ApiError> {
        let (info_hash, name) = match &request.source {
            Source::TorrentFile(bytes) => {
                if !bytes.starts_with(b"d") || !bytes.windows(6).any(|w| w == b"4:info") {
                    return Err(ApiError::BadTorrent("not a bencoded .torrent with an info dictionary".into()));
                }
                let sum = bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                (format!("{sum:040x}"), format!("file-{}", bytes.len()))
            }
            Source::Magnet(link) => {
                let hash = link
                    .split(['?', '&'])
                    .find_map(|p| p.strip_prefix("xt=urn:btih:"))
                    .and_then(TorrentRef::info_hash)
                    .ok_or_else(|| ApiError::BadTorrent(format!("not a magnet link: {link}")))?;
                (hash.to_string(), "magnet".to_owned())
            }
            Source::Url(url) => {
                return Err(ApiError::BadTorrent(format!("cannot fetch {url}: the fake has no network")));
            }
        };
        let mut state = self.lock();
        if let Some(t) = state.torrents.values().find(|t| t.info_hash == info_hash) {
            return Ok(AddResult { id: t.id, info_hash, name: t.name.clone(), duplicate: true });
        }
        let id = TorrentId(state.next_id);
        state.next_id += 1;
        state.added += 1;
        let mut t = torrent(id, &name);
        t.info_hash = info_hash.clone();
        t.state = if request.paused { TorrentState::Paused } else { TorrentState::Downloading };
        t.download_dir = request.download_dir.unwrap_or_else(|| state.settings.download_dir.clone());
        t.labels = normalize_labels(&request.labels)?;
        t.sequential = request.sequential;
        state.torrents.insert(id.0, t);
        Ok(AddResult { id, info_hash, name, duplicate: false })
    }

    fn set_sync(&self, request: SetRequest) -> Result<Vec<TorrentId>, ApiError> {
        let mut state = self.lock();
        let ids = state.resolve(&request.ids)?;
        for id in &ids {
            let files = state.torrents[id].files.len();
            if let Some((index, _)) = request.file_priorities.iter().find(|(i, _)| *i >= files) {
                return Err(ApiError::InvalidParams(format!(
                    "file_priorities: torrent {id} has {files} files, there is no file {index}"
                )));
            }
        }
        let labels = request.labels.as_deref().map(normalize_labels).transpose()?;
        for id in &ids {
            let Some(t) = state.torrents.get_mut(id) else { continue };
            if let Some(goal) = request.seed_idle_limit {
                t.seed_idle_limit = goal;
            }
            if let Some(labels) = &labels {
                t.labels = labels.clone();
            }
            if let Some(sequential) = request.sequential {
                t.sequential = sequential;
            }
            if let Some(limit) = request.upload_limit {
                t.upload_limit = limit;
            }
            if let Some(limit) = request.download_limit {
                t.download_limit = limit;
            }
            if let Some(goal) = request.seed_ratio_limit {
                t.seed_ratio_limit = goal;
            }
            if let Some(goal) = request.seed_time_limit {
                t.seed_time_limit = goal;
            }
            if let Some(limit) = request.max_connections {
                t.max_connections = limit;
            }
            for &(index, priority) in &request.file_priorities {
                t.files[index].priority = priority;
            }
            t.wanted_bytes = t.files.iter().filter(|f| f.priority != Priority::Skip).map(|f| f.length).sum();
            t.left_bytes = t.files.iter().filter(|f| f.priority != Priority::Skip).map(|f| f.length - f.have).sum();
        }
        Ok(ids.into_iter().map(TorrentId).collect())
    }
}

impl Api for Fake {
    async fn add(&self, request: AddRequest) -> Result<AddResult, ApiError> {
        if !self.add_delay.is_zero() {
            tokio::time::sleep(self.add_delay).await;
        }
        self.add_sync(request)
    }

    async fn get(&self, ids: Ids) -> Result<Vec<TorrentInfo>, ApiError> {
        let state = self.lock();
        let ids = state.resolve(&ids)?;
        Ok(ids.iter().map(|id| state.torrents[id].clone()).collect())
    }

    async fn pause(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.lock().set_state(&ids, TorrentState::Paused)
    }

    async fn resume(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.lock().set_state(&ids, TorrentState::Downloading)
    }

    async fn verify(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.lock().set_state(&ids, TorrentState::Checking)
    }

    async fn reannounce(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        let state = self.lock();
        Ok(state.resolve(&ids)?.into_iter().map(TorrentId).collect())
    }

    async fn remove(&self, request: RemoveRequest) -> Result<Vec<TorrentId>, ApiError> {
        let mut state = self.lock();
        let ids = state.resolve(&request.ids)?;
        for id in &ids {
            state.torrents.remove(id);
        }
        Ok(ids.into_iter().map(TorrentId).collect())
    }

    async fn set(&self, request: SetRequest) -> Result<Vec<TorrentId>, ApiError> {
        self.set_sync(request)
    }

    async fn set_location(&self, request: LocationRequest) -> Result<Vec<TorrentId>, ApiError> {
        if !request.location.starts_with('/') {
            return Err(ApiError::InvalidParams(format!("location {:?} is not an absolute path", request.location)));
        }
        let mut state = self.lock();
        let ids = state.resolve(&request.ids)?;
        for id in &ids {
            if let Some(t) = state.torrents.get_mut(id) {
                t.download_dir = request.location.clone();
            }
        }
        Ok(ids.into_iter().map(TorrentId).collect())
    }

    async fn free_space(&self, path: Option<String>) -> Result<FreeSpace, ApiError> {
        let path = path.unwrap_or_else(|| self.lock().settings.download_dir.clone());
        Ok(FreeSpace { path, free_bytes: 123_456_789, total_bytes: 1_000_000_000 })
    }

    async fn peers(&self, id: TorrentRef) -> Result<Vec<PeerInfo>, ApiError> {
        self.lock().resolve(&Ids::List(vec![id]))?;
        Ok(vec![PeerInfo {
            address: "192.0.2.1:6881".parse().expect("address"),
            client: "Transmission 3.00".to_owned(),
            progress: 1.0,
            download_rate: 250_000,
            upload_rate: 0,
            incoming: false,
            encrypted: false,
            am_choking: true,
            am_interested: true,
            peer_choking: false,
            peer_interested: false,
        }])
    }

    async fn session_get(&self) -> Result<SessionSettings, ApiError> {
        Ok(self.lock().settings.clone())
    }

    async fn session_set(&self, update: SessionUpdate) -> Result<SessionSettings, ApiError> {
        let mut state = self.lock();
        state.settings = update.apply(&state.settings);
        Ok(state.settings.clone())
    }

    async fn session_stats(&self) -> Result<SessionStats, ApiError> {
        let state = self.lock();
        let paused = state.torrents.values().filter(|t| t.state == TorrentState::Paused).count() as u32;
        let count = state.torrents.len() as u32;
        Ok(SessionStats {
            download_rate: state.torrents.values().map(|t| t.download_rate).sum(),
            upload_rate: state.torrents.values().map(|t| t.upload_rate).sum(),
            torrent_count: count,
            active_torrent_count: count - paused,
            paused_torrent_count: paused,
            current: TransferTotals {
                uploaded: 5_000_000,
                downloaded: 20_000_000,
                seconds_active: 3_700,
                torrents_added: state.added,
                session_count: 1,
            },
            cumulative: TransferTotals {
                uploaded: 7_000_000_000,
                downloaded: 9_000_000_000,
                seconds_active: 90_000,
                torrents_added: 40,
                session_count: 12,
            },
        })
    }
}
