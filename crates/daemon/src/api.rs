//! The RPC methods ([`Api`]) over the daemon. Each follows the rule of the crate's module doc:
//! short critical sections on the torrent table, slow work (database writes, hash checks,
//! stopping torrents, deleting data) between them.

use std::path::PathBuf;
use std::time::SystemTime;

use shoal_engine::TorrentState as EngineState;
use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;
use shoal_rpc::api::{
    AddRequest, AddResult, Api, ApiError, FreeSpace, Goal, Ids, LocationRequest, MAX_ADD_PEERS, PeerInfo, Priority,
    RemoveRequest, SessionSettings, SessionStats, SessionUpdate, SetRequest, Source, TorrentId, TorrentInfo,
    TorrentRef, TorrentState, TransferTotals, normalize_labels,
};
use shoal_state::{FilePriority, NewTorrent, TorrentState as StoredState};

use crate::entry::{Entry, Table, engine_priorities, stored_priority};
use crate::{Daemon, files, lock};

fn resolve(entries: &Table, ids: &Ids) -> Result<Vec<u64>, ApiError> {
    match ids {
        Ids::All => Ok(entries.keys().copied().collect()),
        Ids::List(list) => list
            .iter()
            .map(|r| match r {
                TorrentRef::Id(id) if entries.contains_key(&id.0) => Ok(id.0),
                TorrentRef::InfoHash(h) => entries.id_of(h).ok_or_else(|| ApiError::NotFound(r.clone())),
                _ => Err(ApiError::NotFound(r.clone())),
            })
            .collect(),
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
            let bytes = shoal_engine::fetch_torrent(&url).await.map_err(|e| ApiError::BadTorrent(e.to_string()))?;
            Metainfo::from_bytes(&bytes)
                .map(|m| (Some((m, bytes)), None))
                .map_err(|e| ApiError::BadTorrent(format!("{url} is not a valid torrent: {e}")))
        }
    }
}

impl Daemon {
    async fn set_paused(&self, ids: Ids, paused: bool) -> Result<Vec<TorrentId>, ApiError> {
        let keys = resolve(&lock(&self.inner.entries), &ids)?;
        let state = if paused { StoredState::Paused } else { StoredState::Active };
        let sids: Vec<_> = keys.iter().map(|k| shoal_state::TorrentId::new(*k as i64)).collect();
        self.inner.db.call(move |s| sids.iter().try_for_each(|id| s.set_state(*id, state))).await?;
        let mut restart = Vec::new();
        let mut refetch = Vec::new();
        {
            let mut entries = lock(&self.inner.entries);
            for key in &keys {
                let Some(entry) = entries.get_mut(key) else { continue };
                entry.paused = paused;
                if paused {
                    if let Some(t) = &entry.torrent {
                        t.pause();
                    }
                    continue;
                }
                // Resumed by the user: the seeding goal counts again from now.
                entry.finished = false;
                entry.seeding_since = None;
                let failed = matches!(entry.torrent.as_ref().map(|t| t.status().state), Some(EngineState::Error(_)));
                if entry.error.is_some() || failed {
                    // Resuming retries: the disk may have room now, the peers may be back.
                    entry.error = None;
                    entry.recorded = (0, 0);
                    match (&entry.meta, entry.torrent.take()) {
                        (Some(_), old) => {
                            entry.starting = true;
                            restart.push((*key, old));
                        }
                        (None, _) => refetch.extend(entry.magnet.clone().map(|m| (*key, m))),
                    }
                } else if let Some(t) = &entry.torrent
                    && !entry.queued
                {
                    t.resume();
                }
            }
        }
        for (key, old) in restart {
            if let Some(old) = old {
                old.stop().await;
            }
            self.spawn_start(key, Vec::new());
        }
        for (key, magnet) in refetch {
            let _ = self.inner.magnets.send((key, magnet));
        }
        Ok(keys.into_iter().map(TorrentId).collect())
    }
}

impl Api for Daemon {
    async fn identity_get(&self) -> Result<shoal_rpc::api::IdentityInfo, ApiError> {
        crate::groups::identity_get(&self.inner.data_dir).await
    }

    async fn group_list(&self) -> Result<Vec<shoal_rpc::api::GroupInfo>, ApiError> {
        crate::groups::group_list(&self.inner.data_dir).await
    }

    async fn group_change(&self, request: shoal_rpc::api::GroupRequest) -> Result<serde_json::Value, ApiError> {
        if !self.inner.rpc_authenticated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ApiError::InvalidParams(format!(
                "changing groups over RPC needs the daemon's RPC credentials ([rpc] token, or user and password, in \
                 its config), since any local user can reach an RPC without them; or run shoal group ... \
                 --data-dir {} on the daemon's machine",
                self.inner.data_dir.display()
            )));
        }
        let revoke = matches!(request, shoal_rpc::api::GroupRequest::Revoke { .. });
        let answer = crate::groups::group_change(&self.inner.data_dir, request).await?;
        // The group's shares running here refuse the revoked member from now on: new
        // handshakes at once, open connections as soon as their torrents see the change.
        if revoke {
            let dir = self.inner.data_dir.clone();
            let _ = tokio::task::spawn_blocking(move || crate::groups::refresh_revocations(&dir)).await;
        }
        Ok(answer)
    }

    async fn add(&self, request: AddRequest) -> Result<AddResult, ApiError> {
        self.add_with(request, None).await
    }

    async fn search_query(
        &self,
        request: shoal_rpc::api::SearchRequest,
    ) -> Result<Vec<shoal_rpc::api::SearchHit>, ApiError> {
        self.search(request).await
    }

    async fn search_status(&self) -> Result<shoal_rpc::api::SearchStatus, ApiError> {
        self.search_view().await
    }

    async fn server_pushes(&self) -> Result<shoal_rpc::api::ServerPushes, ApiError> {
        self.server_view().await
    }

    async fn push_call(&self, call: shoal_rpc::api::PushCall) -> Result<serde_json::Value, ApiError> {
        let changes =
            matches!(call, shoal_rpc::api::PushCall::Start { .. } | shoal_rpc::api::PushCall::Withdraw { .. });
        if changes && !self.inner.rpc_authenticated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ApiError::InvalidParams(
                "pushing over RPC needs the daemon's RPC credentials ([rpc] token, or user and password, in its \
                 config): it acts as the daemon's identity"
                    .into(),
            ));
        }
        self.push_as_node(call).await
    }

    async fn get(&self, ids: Ids) -> Result<Vec<TorrentInfo>, ApiError> {
        // Per-file progress: most torrents answer from their last answer (nothing verified
        // since); the others are asked, without the lock held.
        let (mut known, pending) = {
            let entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &ids)?;
            let mut known = std::collections::HashMap::with_capacity(keys.len());
            let mut pending = Vec::new();
            for e in keys.iter().filter_map(|k| entries.get(k)) {
                let Some(t) = &e.torrent else { continue };
                match t.file_progress_now() {
                    Some(have) => {
                        known.insert(e.id.0, have);
                    }
                    None => pending.push((e.id.0, t.file_progress())),
                }
            }
            (known, pending)
        };
        for (key, query) in pending {
            known.insert(key, query.await);
        }
        let entries = lock(&self.inner.entries);
        let keys = resolve(&entries, &ids).unwrap_or_default();
        Ok(keys.iter().filter_map(|k| entries.get(k)).map(|e| e.info(known.get(&e.id.0).map(Vec::as_slice))).collect())
    }

    async fn pause(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.set_paused(ids, true).await
    }

    async fn resume(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        self.set_paused(ids, false).await
    }

    async fn verify(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        // Taken out of the session under the lock; stopped, forgotten and restarted without it.
        let (keys, running) = {
            let mut entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &ids)?;
            let mut running = Vec::new();
            for key in &keys {
                let Some(entry) = entries.get_mut(key) else { continue };
                if entry.meta.is_none() || entry.starting || entry.moving {
                    continue;
                }
                entry.starting = true;
                entry.error = None;
                entry.recorded = (0, 0);
                running.push((*key, entry.torrent.take()));
            }
            (keys, running)
        };
        for (key, torrent) in running {
            if let Some(t) = torrent {
                t.stop().await;
            }
            // No record: the next start checks every piece on disk.
            let sid = shoal_state::TorrentId::new(key as i64);
            self.inner.db.call(move |s| s.clear_resume(sid)).await?;
            self.spawn_start(key, Vec::new());
        }
        Ok(keys.into_iter().map(TorrentId).collect())
    }

    async fn reannounce(&self, ids: Ids) -> Result<Vec<TorrentId>, ApiError> {
        let entries = lock(&self.inner.entries);
        let keys = resolve(&entries, &ids)?;
        // Only the torrents that have a tracker to announce to.
        Ok(keys
            .into_iter()
            .filter(|key| entries.get(key).and_then(|e| e.torrent.as_ref()).is_some_and(|t| t.reannounce()))
            .map(TorrentId)
            .collect())
    }

    async fn remove(&self, request: RemoveRequest) -> Result<Vec<TorrentId>, ApiError> {
        let keys = {
            let entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &request.ids)?;
            if let Some(e) = keys.iter().filter_map(|k| entries.get(k)).find(|e| e.moving) {
                return Err(ApiError::InvalidParams(format!(
                    "torrent {} is moving its files; remove it once the move is done",
                    e.id
                )));
            }
            keys
        };
        // Gone from the database first: after a crash from here on they do not come back.
        let sids: Vec<_> = keys.iter().map(|k| shoal_state::TorrentId::new(*k as i64)).collect();
        self.inner.db.call(move |s| sids.iter().try_for_each(|id| s.remove_torrent(*id))).await?;
        let removed: Vec<Entry> = {
            let mut entries = lock(&self.inner.entries);
            keys.iter().filter_map(|k| entries.remove(k)).collect()
        };
        for entry in &removed {
            self.unindex_torrent(entry.info_hash.clone());
        }
        // Stopped together: each may wait seconds for its trackers' `stopped` answers.
        let mut stops = tokio::task::JoinSet::new();
        let mut done = Vec::new();
        for mut entry in removed {
            done.push(entry.id);
            let torrent = entry.torrent.take();
            let delete = request.delete_data.then(|| entry.meta.take().map(|m| (entry.download_dir.clone(), m)));
            stops.spawn(async move {
                if let Some(t) = torrent {
                    t.stop().await;
                }
                if let Some((dir, meta)) = delete.flatten() {
                    let _ = tokio::task::spawn_blocking(move || files::delete_data(&dir, &meta)).await;
                }
            });
        }
        while stops.join_next().await.is_some() {}
        Ok(done)
    }

    async fn set(&self, request: SetRequest) -> Result<Vec<TorrentId>, ApiError> {
        let default_peers = lock(&self.inner.settings).max_connections_per_torrent;
        // Checked and computed under the lock; stored without it; applied under it again.
        let plans = {
            let entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &request.ids)?;
            let mut plans = Vec::new();
            for key in &keys {
                let Some(entry) = entries.get(key) else { continue };
                let files = entry.meta.as_ref().map(|m| m.info.files.len()).unwrap_or(0);
                if let Some((index, _)) = request.file_priorities.iter().find(|(i, _)| *i >= files) {
                    return Err(ApiError::InvalidParams(format!(
                        "file_priorities: torrent {} has {files} files, no file {index}",
                        entry.id
                    )));
                }
                let goals = crate::entry::Goals {
                    ratio: request.seed_ratio_limit.unwrap_or(entry.goals.ratio),
                    time: request.seed_time_limit.unwrap_or(entry.goals.time),
                    idle: request.seed_idle_limit.unwrap_or(entry.goals.idle),
                };
                let mut limits = shoal_state::Limits {
                    upload: request.upload_limit.unwrap_or(entry.upload_limit),
                    download: request.download_limit.unwrap_or(entry.download_limit),
                    max_peers: request.max_connections.unwrap_or(entry.max_connections),
                    ..Default::default()
                };
                goals.store_in(&mut limits);
                let priorities = (!request.file_priorities.is_empty()).then(|| {
                    let mut p = entry.priorities.clone();
                    p.resize(files, Priority::Normal);
                    for (i, to) in &request.file_priorities {
                        p[*i] = *to;
                    }
                    p
                });
                plans.push((*key, (limits, goals), priorities));
            }
            plans
        };
        if let Some(Goal::Limit(r)) = request.seed_ratio_limit
            && !(r.is_finite() && r >= 0.0)
        {
            return Err(ApiError::InvalidParams(format!("seed_ratio_limit: {r} is not a finite, non-negative ratio")));
        }
        let labels = request.labels.as_deref().map(normalize_labels).transpose()?;
        let sequential = request.sequential;
        let limits_changed = request.upload_limit.is_some()
            || request.download_limit.is_some()
            || request.max_connections.is_some()
            || request.seed_ratio_limit.is_some()
            || request.seed_time_limit.is_some()
            || request.seed_idle_limit.is_some();
        let stored = plans.clone();
        let stored_labels = labels.clone();
        self.inner
            .db
            .call(move |s| {
                for (key, (limits, _), priorities) in &stored {
                    let sid = shoal_state::TorrentId::new(*key as i64);
                    if limits_changed {
                        s.set_limits(sid, limits)?;
                    }
                    if let Some(labels) = &stored_labels {
                        s.set_labels(sid, labels)?;
                    }
                    if let Some(sequential) = sequential {
                        s.set_sequential(sid, sequential)?;
                    }
                    if let Some(p) = priorities {
                        let p: Vec<FilePriority> = p.iter().copied().map(stored_priority).collect();
                        s.set_file_priorities(sid, Some(&p))?;
                    }
                }
                Ok(())
            })
            .await?;
        let mut entries = lock(&self.inner.entries);
        let mut done = Vec::new();
        for (key, (limits, goals), priorities) in plans {
            let Some(entry) = entries.get_mut(&key) else { continue };
            if let Some(labels) = &labels {
                entry.labels = labels.clone();
            }
            if let Some(sequential) = sequential {
                entry.sequential = sequential;
                if let Some(t) = &entry.torrent {
                    t.set_sequential(sequential);
                }
            }
            if limits_changed {
                entry.upload_limit = limits.upload;
                entry.download_limit = limits.download;
                entry.max_connections = limits.max_peers;
                if goals != entry.goals && entry.finished && !entry.paused {
                    // A torrent stopped at its old goal seeds again; the policy stops it once
                    // the new goal is reached.
                    entry.finished = false;
                    entry.seeding_since = None;
                    if let Some(t) = &entry.torrent {
                        t.resume();
                    }
                }
                entry.goals = goals;
                if let Some(t) = &entry.torrent {
                    t.set_limits(entry.upload_limit, entry.download_limit);
                    t.set_max_peers(entry.max_connections.unwrap_or(default_peers) as usize);
                }
            }
            if let Some(p) = priorities {
                entry.priorities = p;
                if let Some(t) = &entry.torrent {
                    t.set_file_priorities(&engine_priorities(&entry.priorities));
                }
            }
            done.push(TorrentId(key));
        }
        Ok(done)
    }

    async fn set_location(&self, request: LocationRequest) -> Result<Vec<TorrentId>, ApiError> {
        let location = PathBuf::from(&request.location);
        if !location.is_absolute() {
            return Err(ApiError::InvalidParams(format!("location {:?} is not an absolute path", request.location)));
        }
        // Checked and marked under the lock: a torrent being checked or moved is refused.
        let plans: Vec<Relocation> = {
            let mut entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &request.ids)?;
            if let Some(e) = keys.iter().filter_map(|k| entries.get(k)).find(|e| e.moving || e.starting) {
                let doing = if e.moving { "moving its files" } else { "checking its data" };
                return Err(ApiError::InvalidParams(format!("torrent {} is {doing}; try again when it is done", e.id)));
            }
            keys.iter()
                .filter_map(|k| {
                    let e = entries.get_mut(k)?;
                    e.moving = true;
                    Some(Relocation {
                        key: *k,
                        torrent: e.torrent.take(),
                        from: e.download_dir.clone(),
                        meta: e.meta.clone(),
                    })
                })
                .collect()
        };
        let dir = location.clone();
        let created = tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir)).await;
        let created = match created {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot create {}: {e}", location.display())),
            Err(_) => Err("the folder check did not finish".to_owned()),
        };
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for plan in plans {
            let key = plan.key;
            let result = match &created {
                Ok(()) => self.relocate(plan, &location, request.move_data).await,
                Err(e) => {
                    self.relocated(plan, None).await;
                    Err(e.clone())
                }
            };
            match result {
                Ok(()) => done.push(TorrentId(key)),
                Err(e) => failed.push(format!("torrent {key}: {e}")),
            }
        }
        if failed.is_empty() {
            return Ok(done);
        }
        let moved = if done.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = done.iter().map(ToString::to_string).collect();
            format!(" (torrents {} did move)", ids.join(", "))
        };
        Err(ApiError::Failed(format!("{}{moved}", failed.join("; "))))
    }

    async fn free_space(&self, path: Option<String>) -> Result<FreeSpace, ApiError> {
        // The download folder may not exist yet: its space is that of the nearest folder
        // above it that does, where it will be created. A folder named by the client must exist.
        let (path, asked) = match path {
            Some(path) => (path.clone(), PathBuf::from(path)),
            None => {
                let dir = self.download_dir();
                let existing = dir.ancestors().find(|d| d.is_dir()).map(PathBuf::from).unwrap_or_else(|| dir.clone());
                (dir.display().to_string(), existing)
            }
        };
        if !asked.is_absolute() {
            return Err(ApiError::InvalidParams(format!("path {path:?} is not an absolute path")));
        }
        let stat = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&asked))
            .await
            .map_err(|_| ApiError::Failed("the free space query did not finish".into()))?
            .map_err(|e| ApiError::InvalidParams(format!("cannot read the free space of {path}: {e}")))?;
        Ok(FreeSpace {
            path,
            free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
            total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        })
    }

    async fn peers(&self, id: TorrentRef) -> Result<Vec<PeerInfo>, ApiError> {
        let (query, pieces) = {
            let entries = lock(&self.inner.entries);
            let keys = resolve(&entries, &Ids::List(vec![id]))?;
            let Some(entry) = keys.first().and_then(|k| entries.get(k)) else { return Ok(vec![]) };
            let Some(t) = &entry.torrent else { return Ok(vec![]) };
            (t.peers(), entry.meta.as_ref().map(|m| m.info.layout.piece_count()).unwrap_or(1).max(1))
        };
        Ok(query
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
        Ok(lock(&self.inner.settings).clone())
    }

    async fn session_set(&self, update: SessionUpdate) -> Result<SessionSettings, ApiError> {
        let settings = lock(&self.inner.settings).clone();
        let next = update.apply(&settings);
        if next.listen_port != settings.listen_port {
            return Err(ApiError::InvalidParams(
                "listen_port: the port is chosen at start (--listen or `listen` in the config file)".into(),
            ));
        }
        // Only what is applied now is accepted: a setting shown must be a setting used.
        for (key, now, asked) in [("dht", settings.dht, next.dht), ("lsd", settings.lsd, next.lsd)] {
            if now != asked {
                return Err(ApiError::InvalidParams(format!(
                    "{key}: turning it {} takes a restart (--no-{key}, or [{key}] enabled in the config file)",
                    if asked { "on" } else { "off" }
                )));
            }
        }
        if next.pex != settings.pex {
            return Err(ApiError::InvalidParams(
                "pex: peer exchange is always on for public torrents (private ones never use it)".into(),
            ));
        }
        let stored = next.clone();
        self.inner.db.call(move |s| s.set_setting("session", &stored)).await?;
        self.inner.session.set_limits(next.upload_limit, next.download_limit);
        self.inner.session.set_max_connections(next.max_connections as usize);
        *lock(&self.inner.settings) = next.clone();
        if next.max_connections_per_torrent != settings.max_connections_per_torrent {
            let entries = lock(&self.inner.entries);
            for entry in entries.values().filter(|e| e.max_connections.is_none()) {
                if let Some(t) = &entry.torrent {
                    t.set_max_peers(next.max_connections_per_torrent as usize);
                }
            }
        }
        Ok(next)
    }

    async fn session_stats(&self) -> Result<SessionStats, ApiError> {
        let entries = lock(&self.inner.entries);
        let infos: Vec<TorrentInfo> = entries.values().map(|e| e.info(None)).collect();
        let earlier = entries.values().fold((0, 0), |acc, e| {
            (
                acc.0 + e.lifetime.0 - e.recorded.0.min(e.lifetime.0),
                acc.1 + e.lifetime.1 - e.recorded.1.min(e.lifetime.1),
            )
        });
        let current = TransferTotals {
            uploaded: infos.iter().map(|i| i.uploaded).sum(),
            downloaded: infos.iter().map(|i| i.downloaded).sum(),
            seconds_active: self.inner.started.elapsed().as_secs(),
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

/// A torrent taken out of the session to get a new folder.
struct Relocation {
    key: u64,
    torrent: Option<shoal_engine::Torrent>,
    from: PathBuf,
    meta: Option<Metainfo>,
}

impl Daemon {
    /// Stops the torrent (its resume record is saved), moves its files when asked, records the
    /// new folder, and starts it again: from the new folder, or from the old one if anything
    /// failed (its files are then all still there).
    async fn relocate(&self, mut plan: Relocation, to: &std::path::Path, move_data: bool) -> Result<(), String> {
        if let Some(t) = plan.torrent.take() {
            t.stop().await;
        }
        let sid = shoal_state::TorrentId::new(plan.key as i64);
        let (from, dest) = (plan.from.clone(), to.to_path_buf());
        if move_data
            && from != dest
            && let Some(meta) = plan.meta.clone()
        {
            let moved = tokio::task::spawn_blocking(move || crate::files::move_data(&from, &dest, &meta))
                .await
                .map_err(|_| "the move did not finish".to_owned())
                .and_then(|r| r);
            if let Err(e) = moved {
                self.relocated(plan, None).await;
                return Err(e);
            }
        }
        let dest = to.to_path_buf();
        // Data looked for in a new place is checked there; moved data keeps its record.
        let recheck = !move_data;
        let stored = self
            .inner
            .db
            .call(move |s| {
                s.set_download_dir(sid, &dest)?;
                if recheck { s.clear_resume(sid) } else { Ok(()) }
            })
            .await;
        if let Err(e) = stored {
            if move_data
                && plan.from != to
                && let Some(meta) = plan.meta.clone()
            {
                // The database still names the old folder: the files go back there.
                let (back, from) = (to.to_path_buf(), plan.from.clone());
                let _ = tokio::task::spawn_blocking(move || crate::files::move_data(&back, &from, &meta)).await;
            }
            self.relocated(plan, None).await;
            return Err(e.to_string());
        }
        self.relocated(plan, Some(to.to_path_buf())).await;
        Ok(())
    }

    /// Ends a relocation: the entry gets its new folder (`None`: keeps the old one) and starts
    /// again if it has its metadata.
    async fn relocated(&self, mut plan: Relocation, to: Option<PathBuf>) {
        // Set aside by a caller that failed before stopping it.
        if let Some(t) = plan.torrent.take() {
            t.stop().await;
        }
        let start = {
            let mut entries = lock(&self.inner.entries);
            let Some(entry) = entries.get_mut(&plan.key) else { return };
            entry.moving = false;
            if let Some(to) = to {
                entry.download_dir = to;
            }
            entry.meta.is_some()
        };
        if start {
            self.spawn_start(plan.key, Vec::new());
        }
    }
}

/// A torrent being added: its info-hash (hex) and name, and the torrent (with its file's
/// bytes) or the magnet link.
struct Added {
    hex: String,
    name: String,
    meta: Option<Metainfo>,
    bytes: Option<Vec<u8>>,
    magnet: Option<Magnet>,
}

/// What `torrent.add` sets besides the folder and the paused state.
struct Options {
    labels: Vec<String>,
    sequential: bool,
    peers: Vec<std::net::SocketAddr>,
    /// A server peer keeps the torrent for this push.
    push: Option<shoal_state::PushRow>,
}

impl Daemon {
    /// Stores a new torrent and lists it; its data is checked and it starts in the background.
    async fn add_new(
        &self,
        added: Added,
        download_dir: Option<String>,
        paused: bool,
        options: Options,
    ) -> Result<AddResult, ApiError> {
        let Added { hex, name, meta, bytes, magnet } = added;
        let download_dir = download_dir.map(PathBuf::from).unwrap_or_else(|| self.download_dir());
        let dir = download_dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(|_| ApiError::Failed("the folder check did not finish".into()))?
            .map_err(|e| ApiError::InvalidParams(format!("cannot create {}: {e}", download_dir.display())))?;
        let new = NewTorrent {
            info_hash: hex.clone(),
            name: name.clone(),
            metainfo: bytes,
            magnet: magnet.as_ref().map(|m| m.to_string()),
            download_dir: download_dir.clone(),
            state: if paused { StoredState::Paused } else { StoredState::Active },
            added_at: SystemTime::now(),
            limits: Default::default(),
            file_priorities: None,
            labels: options.labels.clone(),
            sequential: options.sequential,
            peers: options.peers.clone(),
        };
        let added_at = new.added_at;
        let mut new = new;
        if options.push.is_some() {
            new.limits.unlimited = shoal_state::Unlimited { ratio: true, time: true, idle: true };
        }
        let goals = crate::entry::Goals::stored(&new.limits);
        let push = options.push.clone();
        let id = self
            .inner
            .db
            .call(move |s| match &push {
                Some(push) => s.add_pushed_torrent(&new, push),
                None => s.add_torrent(&new),
            })
            .await?;
        let id = TorrentId(id.get() as u64);
        let has_meta = meta.is_some();
        let mut entry = Entry::new(id, hex.clone(), name.clone(), meta);
        entry.download_dir = download_dir;
        entry.magnet = magnet.clone();
        entry.paused = paused;
        entry.added_at = added_at;
        entry.labels = options.labels;
        entry.sequential = options.sequential;
        entry.peers = options.peers;
        entry.goals = goals;
        let indexed = entry.meta.clone();
        lock(&self.inner.entries).insert(id.0, entry);
        self.index_torrents(indexed.into_iter().collect());
        match magnet {
            _ if has_meta => self.spawn_start(id.0, Vec::new()),
            Some(magnet) => {
                let _ = self.inner.magnets.send((id.0, magnet));
            }
            None => {}
        }
        Ok(AddResult { id, info_hash: hex, name, duplicate: false })
    }
}

impl Daemon {
    /// `torrent.add`, and a server peer's push: with `push`, the torrent is stored with that
    /// push in one transaction and seeds with no goal (it is kept until withdrawn).
    pub(crate) async fn add_with(
        &self,
        request: AddRequest,
        push: Option<shoal_state::PushRow>,
    ) -> Result<AddResult, ApiError> {
        let labels = normalize_labels(&request.labels)?;
        if request.peers.len() > MAX_ADD_PEERS {
            return Err(ApiError::InvalidParams(format!(
                "peers: {} given; a torrent takes at most {MAX_ADD_PEERS}",
                request.peers.len()
            )));
        }
        let options = Options { labels, sequential: request.sequential, peers: request.peers, push };
        let (loaded, magnet) = load_source(request.source).await?;
        let (meta, bytes) = match loaded {
            Some((meta, bytes)) => (Some(meta), Some(bytes)),
            None => (None, None),
        };
        let Some(info_hash) = meta.as_ref().map(|m| m.info_hash).or(magnet.as_ref().map(|m| m.info_hash)) else {
            return Err(ApiError::BadTorrent("nothing to add".into()));
        };
        let hex = info_hash.to_hex();
        let name = meta
            .as_ref()
            .map(|m| m.info.name.clone())
            .or_else(|| magnet.as_ref().and_then(|m| m.display_name.clone()))
            .unwrap_or_else(|| hex.clone());
        {
            let entries = lock(&self.inner.entries);
            if let Some(e) = entries.id_of(&hex).and_then(|id| entries.get(&id)) {
                return Ok(AddResult { id: e.id, info_hash: hex, name: e.name.clone(), duplicate: true });
            }
            if !lock(&self.inner.adding).insert(hex.clone()) {
                return Err(ApiError::InvalidParams(format!("torrent {hex} is being added by another request")));
            }
        }
        // A group share this node cannot open is refused before anything is stored.
        if let Some(meta) = meta.as_ref().filter(|m| m.info.ssl_cert.is_some()) {
            let (dir, meta) = (self.inner.data_dir.clone(), meta.clone());
            let checked = tokio::task::spawn_blocking(move || {
                crate::groups::share_for(&dir, &meta).map_err(|e| e.for_daemon(&dir))
            })
            .await;
            match checked {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    lock(&self.inner.adding).remove(&hex);
                    return Err(ApiError::BadTorrent(e));
                }
                Err(_) => {
                    lock(&self.inner.adding).remove(&hex);
                    return Err(ApiError::Failed("the group check did not finish".into()));
                }
            }
        }
        let source = Added { hex: hex.clone(), name, meta, bytes, magnet };
        let result = self.add_new(source, request.download_dir, request.paused, options).await;
        lock(&self.inner.adding).remove(&hex);
        result
    }
}
