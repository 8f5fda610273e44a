//! The Shoal daemon as a library: the RPC [`Api`](shoal_rpc::api::Api) over an engine
//! [`Session`] and the SQLite [`Store`], with the download and seed queues, seeding goals,
//! transfer counters and the restore after a restart. `shoal daemon` parses flags, opens the
//! store and the session, and serves a [`Daemon`] over RPC; tests drive one in-process.
//!
//! - [`Daemon::restore`] lists every stored torrent at once (each shown as checking), then
//!   starts them one by one in the background, so the RPC knows every torrent from its first
//!   request and answers while data is checked;
//! - `api`: the RPC methods;
//! - `policy`: queues, seeding goals, lifetime counters (run every second by [`Daemon::run_policy`]);
//! - `entry`: one torrent and how it is shown;
//! - `db`: store calls on blocking threads, and resume records in the database;
//! - `files`: the `.torrent` kept for a magnet link, deleting a removed torrent's data;
//! - [`search`]: the local search index, index servers and search neighbours; [`crawl`]: the
//!   DHT crawler (BEP 51) that fills the index;
//! - [`server`]: the server peer role, keeping shares others push ([`push`]: the protocol and
//!   the pusher's side).
//!
//! # Locks
//! The torrent table (`entries`) and the settings are `std` mutexes, held only for
//! in-memory work: never across an `.await`, so never across a hash check, a tracker's
//! `stopped` announce, or a database write (the compiler enforces the first: their guards are
//! not `Send`). Slow work runs between two short critical sections: read what is needed,
//! release, do the work, lock again and apply, checking that the torrent is still there. When
//! both are needed, `settings` is taken and released before `entries`.
//!
//! Every RPC request runs on a task of its own (see `shoal_rpc::http`), so an operation is
//! finished even if its client disconnects: a torrent added is stored and started, a removed
//! one is gone from the database before its data is deleted.

mod api;
pub mod crawl;
mod db;
mod entry;
mod files;
pub mod groups;
mod policy;
pub mod push;
pub mod search;
pub mod server;
pub mod stream;
pub mod verify;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_engine::{AddTorrent, Session};
use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;
use shoal_rpc::api::{Priority, SessionSettings, TorrentId};
use shoal_state::{Store, TorrentState as StoredState};

use crate::db::{Db, DbResume};
use crate::entry::{Entry, Goals, Table, api_priority, engine_priorities};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The stored torrents could not be read.
    #[error("cannot read the torrents from the database: {0}")]
    Store(#[from] shoal_state::StateError),
    /// The database read did not finish (the runtime is shutting down).
    #[error("the runtime stopped while the torrents were being read")]
    Stopped,
}

/// The daemon's state behind the RPC. Cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    db: Db,
    entries: Mutex<Table>,
    /// Info-hashes being added right now (stored, not yet in `entries`).
    adding: Mutex<HashSet<String>>,
    settings: Mutex<SessionSettings>,
    started: std::time::Instant,
    /// Magnet links whose metadata is to be fetched, with their torrent's id.
    magnets: tokio::sync::mpsc::UnboundedSender<(u64, Magnet)>,
    /// Folder of the node's identity and groups (group shares, `identity.*`, `group.*`).
    data_dir: PathBuf,
    /// The RPC requires credentials: only then may it change groups (issue certificates,
    /// revoke, join), since any local user can reach an RPC without them.
    rpc_authenticated: std::sync::atomic::AtomicBool,
    /// The server peer role, once its endpoint listens.
    server: std::sync::OnceLock<server::Serving>,
    /// The local search index, index servers and search neighbours, once started.
    search: std::sync::OnceLock<search::Searching>,
    /// What the DHT crawler did.
    crawl_stats: Mutex<crawl::CrawlStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Daemon {
    /// A daemon over `session` and `store` with `settings` (what the session runs with), and
    /// no torrents yet; call [`Daemon::restore`] to bring back the stored ones. Starts the task
    /// that fetches magnet links' metadata.
    pub fn new(session: Session, store: Store, settings: SessionSettings, data_dir: PathBuf) -> Daemon {
        let (magnets, rx) = tokio::sync::mpsc::unbounded_channel();
        let daemon = Daemon {
            inner: Arc::new(Inner {
                session,
                db: Db(Arc::new(store)),
                entries: Mutex::new(Table::default()),
                adding: Mutex::new(HashSet::new()),
                settings: Mutex::new(settings),
                started: std::time::Instant::now(),
                magnets,
                data_dir,
                rpc_authenticated: std::sync::atomic::AtomicBool::new(false),
                server: std::sync::OnceLock::new(),
                search: std::sync::OnceLock::new(),
                crawl_stats: Mutex::new(Default::default()),
            }),
        };
        tokio::spawn(daemon.clone().fetch_magnets(rx));
        daemon
    }

    /// Lists every stored torrent (paused ones stay paused; the others show as checking) and
    /// returns, so that the RPC can answer for every one of them from its first request; a
    /// background task then starts them one at a time, in id order.
    pub async fn restore(&self) -> Result<(), DaemonError> {
        let store = self.inner.db.0.clone();
        let (rows, pushes) =
            tokio::task::spawn_blocking(move || Ok::<_, shoal_state::StateError>((store.torrents()?, store.pushes()?)))
                .await
                .map_err(|_| DaemonError::Stopped)??;
        let mut pushed_by: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
        for push in pushes {
            pushed_by.entry(push.torrent.get()).or_default().push(server::shown_id(&push.pusher));
        }
        let mut to_start = Vec::new();
        {
            let mut entries = lock(&self.inner.entries);
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
                let magnet = row.magnet.as_deref().map(Magnet::parse).and_then(Result::ok);
                let priorities: Vec<Priority> =
                    row.file_priorities.clone().unwrap_or_default().into_iter().map(api_priority).collect();
                let mut entry = Entry::new(id, row.info_hash.clone(), row.name.clone(), meta.clone());
                entry.download_dir = row.download_dir.clone();
                entry.magnet = magnet.clone();
                entry.paused = row.state == StoredState::Paused;
                entry.added_at = row.added_at;
                entry.upload_limit = row.limits.upload;
                entry.download_limit = row.limits.download;
                entry.max_connections = row.limits.max_peers;
                entry.goals = Goals::stored(&row.limits);
                entry.priorities = priorities;
                entry.labels = row.labels.clone();
                entry.sequential = row.sequential;
                entry.peers = row.peers.clone();
                entry.lifetime = (row.uploaded_total, row.downloaded_total);
                entry.pushed_by = pushed_by.remove(&row.id.get()).unwrap_or_default();
                match (&meta, magnet) {
                    (Some(_), _) => to_start.push(id.0),
                    (None, Some(magnet)) => {
                        let _ = self.inner.magnets.send((id.0, magnet));
                    }
                    (None, None) => {
                        entry.error = Some("neither a torrent nor a magnet link is stored for this torrent".into())
                    }
                }
                entries.insert(id.0, entry);
            }
        }
        let daemon = self.clone();
        tokio::spawn(async move {
            for id in to_start {
                daemon.start_entry(id, Vec::new()).await;
            }
        });
        Ok(())
    }

    /// Tells the daemon whether its RPC requires credentials (a token or a user and
    /// password): without them, `group.create`, `invite`, `join`, `issue` and `revoke` are
    /// refused over RPC.
    pub fn set_rpc_authenticated(&self, yes: bool) {
        self.inner.rpc_authenticated.store(yes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds entry `id`'s torrent to the session (checking its data, which may take long,
    /// with no lock held) and applies its settings as they are when the check ends. `extra`
    /// peers are dialled besides the entry's own.
    async fn start_entry(&self, id: u64, extra: Vec<SocketAddr>) {
        let default_peers = lock(&self.inner.settings).max_connections_per_torrent;
        let (add, priorities, sequential) = {
            let mut entries = lock(&self.inner.entries);
            let Some(entry) = entries.get_mut(&id) else { return };
            let Some(meta) = entry.meta.clone() else { return };
            entry.starting = true;
            entry.error = None;
            let mut peers = entry.magnet.as_ref().map(Magnet::peer_addrs).unwrap_or_default();
            peers.extend(entry.peers.iter().copied());
            peers.extend(extra);
            let add = AddTorrent {
                ssl: None,
                meta,
                download_dir: entry.download_dir.clone(),
                peers,
                use_trackers: true,
                file_priorities: Some(engine_priorities(&entry.priorities)),
                sequential: entry.sequential,
                resume: Some(Arc::new(DbResume {
                    store: self.inner.db.0.clone(),
                    id: shoal_state::TorrentId::new(id as i64),
                })),
            };
            (add, entry.priorities.clone(), entry.sequential)
        };
        let mut add = add;
        // A group share: its TLS from this node's membership (a few small files, read on a
        // blocking thread, no lock held).
        if add.meta.info.ssl_cert.is_some() {
            let (dir, meta) = (self.inner.data_dir.clone(), add.meta.clone());
            let share =
                tokio::task::spawn_blocking(move || groups::share_for(&dir, &meta).map_err(|e| e.for_daemon(&dir)))
                    .await
                    .unwrap_or_else(|_| Ok(None));
            let mut entries = lock(&self.inner.entries);
            let Some(entry) = entries.get_mut(&id) else { return };
            match share {
                Ok(share) => {
                    entry.group = share.as_ref().map(|s| s.group.clone());
                    add.ssl = share.map(|s| s.ssl);
                }
                Err(e) => {
                    entry.starting = false;
                    entry.error = Some(e);
                    return;
                }
            }
        }
        let added = self.inner.session.add(add).await;
        let orphan = {
            let mut entries = lock(&self.inner.entries);
            match (entries.get_mut(&id), added) {
                (Some(entry), Ok(t)) => {
                    if entry.paused || entry.queued || entry.finished {
                        t.pause();
                    }
                    t.set_limits(entry.upload_limit, entry.download_limit);
                    t.set_max_peers(entry.max_connections.unwrap_or(default_peers) as usize);
                    // Changed while the data was checked.
                    if entry.priorities != priorities {
                        t.set_file_priorities(&engine_priorities(&entry.priorities));
                    }
                    if entry.sequential != sequential {
                        t.set_sequential(entry.sequential);
                    }
                    entry.torrent = Some(t);
                    entry.starting = false;
                    None
                }
                (Some(entry), Err(e)) => {
                    entry.starting = false;
                    entry.error = Some(e.to_string());
                    None
                }
                // Removed while its data was being checked.
                (None, Ok(t)) => Some(t),
                (None, Err(_)) => None,
            }
        };
        if let Some(t) = orphan {
            t.stop().await;
        }
    }

    /// Starts entry `id` in the background (its data check may take long).
    fn spawn_start(&self, id: u64, extra: Vec<SocketAddr>) {
        let daemon = self.clone();
        tokio::spawn(async move { daemon.start_entry(id, extra).await });
    }

    /// Fetches the metadata of magnet links as they are added, one task per link. A fetch
    /// goes on until the metadata arrives or the torrent is removed.
    async fn fetch_magnets(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Magnet)>) {
        while let Some((id, magnet)) = rx.recv().await {
            let daemon = self.clone();
            tokio::spawn(async move {
                let (tx, _rx) = tokio::sync::watch::channel(Default::default());
                let peers = lock(&daemon.inner.entries).get(&id).map(|e| e.peers.clone()).unwrap_or_default();
                let fetch = daemon.inner.session.fetch_metadata(&magnet, peers, true, tx);
                tokio::pin!(fetch);
                // Checked every few seconds: a removed torrent's fetch ends.
                let mut check = tokio::time::interval(std::time::Duration::from_secs(5));
                let result = loop {
                    tokio::select! {
                        r = &mut fetch => break Some(r),
                        _ = check.tick() => {
                            if !lock(&daemon.inner.entries).contains_key(&id) {
                                break None;
                            }
                        }
                    }
                };
                match result {
                    Some(Ok((meta, peers))) => daemon.metadata_arrived(id, meta, peers).await,
                    Some(Err(e)) => {
                        if let Some(entry) = lock(&daemon.inner.entries).get_mut(&id) {
                            entry.error = Some(e.to_string());
                        }
                    }
                    None => {}
                }
            });
        }
    }

    async fn metadata_arrived(&self, id: u64, meta: Metainfo, peers: Vec<SocketAddr>) {
        let trackers: Vec<String> = meta.trackers().iter().map(|t| t.to_string()).collect();
        let bytes = files::torrent_file(&meta.info_bytes, &trackers);
        let name = meta.info.name.clone();
        let sid = shoal_state::TorrentId::new(id as i64);
        if let Err(e) = self.inner.db.call(move |s| s.set_metainfo(sid, &bytes, &name)).await {
            if let Some(entry) = lock(&self.inner.entries).get_mut(&id) {
                entry.error = Some(format!("cannot store the metadata: {e}"));
            }
            return;
        }
        {
            let mut entries = lock(&self.inner.entries);
            let Some(entry) = entries.get_mut(&id) else { return };
            entry.name = meta.info.name.clone();
            entry.meta = Some(meta.clone());
            entry.starting = true;
        }
        self.index_torrents(vec![meta]);
        self.start_entry(id, peers).await;
    }

    /// Runs the queues, seeding goals and counters every second, for ever.
    pub async fn run_policy(self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        for n in 0u64.. {
            tick.tick().await;
            self.enforce();
            if n % 30 == 29 {
                self.record_counters().await;
            }
        }
    }

    /// Stops every torrent (resume data is saved), then the session.
    pub async fn shutdown(&self) {
        self.record_counters().await;
        let torrents: Vec<_> = lock(&self.inner.entries).values_mut().filter_map(|e| e.torrent.take()).collect();
        let mut stops = tokio::task::JoinSet::new();
        for t in torrents {
            stops.spawn(t.stop());
        }
        while stops.join_next().await.is_some() {}
        self.inner.session.shutdown().await;
    }

    /// Where new torrents go unless the request names a folder.
    fn download_dir(&self) -> PathBuf {
        PathBuf::from(lock(&self.inner.settings).download_dir.clone())
    }
}
