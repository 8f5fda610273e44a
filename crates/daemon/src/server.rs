//! The server peer role: keeping shares that others push ([`crate::push`]) while their
//! owners are offline.
//!
//! The push endpoint accepts TLS between identities only; the caller's identity comes from its
//! certificate. A push is taken when the caller is allowed ([`Allow`]: its identity ID, or a
//! member certificate of a group this node belongs to, checked against this node's copy of the
//! group's authority and revocation list) and fits its quota; everything is checked before
//! anything is stored. A taken push is an ordinary torrent of the daemon (label `pushed`, data
//! in `DIR/INFO_HASH/`, no seeding goal), stored with the push in one transaction, that dials
//! the pusher's port at the address it connected from; it resumes after a restart like any
//! torrent. Pushes are taken one at a time, so two pushes cannot both fit the same quota room.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] push connections at once and [`MAX_PER_IP`] from one
//! address (more are closed at once), a handshake within [`crate::push::CONNECT_TIMEOUT`],
//! frames of at most [`crate::push::MAX_FRAME`] bytes arriving at 1 MiB/s or better and
//! [`FRAME_BUDGET_MIB`] MiB of requests in memory over all connections until they are
//! answered, [`crate::push::IDLE`] of silence. Anyone can complete the handshake with an
//! identity of their own: a caller the allow list does not name is refused before its torrent
//! is even decoded, can only list or withdraw its own pushes (none), may stay silent for
//! [`STRANGER_IDLE`] only and loses the connection at its first refused push.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use shoal_identity::{Groups, Identity, IdentityId};
use shoal_proto::Metainfo;
use shoal_rpc::api::{AddRequest, Api, Ids, RemoveRequest, Source, TorrentInfo, TorrentRef, TorrentState};
use shoal_state::PushRow;
use tokio::net::{TcpListener, TcpStream};

use crate::Daemon;
use crate::push::{CONNECT_TIMEOUT, IDLE, PushInfo, Reply, Request, write_frame};

/// Most push connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Most push connections from one IP address at once.
pub const MAX_PER_IP: usize = 8;
/// Most bytes of requests held in memory at once, all connections together (MiB): a frame
/// waits for room before it is read, and holds it until it is answered.
pub const FRAME_BUDGET_MIB: u32 = 64;
/// How long a stranger's connection (not named by the allow list, no push here) may stay
/// silent.
pub const STRANGER_IDLE: std::time::Duration = std::time::Duration::from_secs(10);
/// Most member certificates a push may carry.
pub const MAX_MEMBER_CERTS: usize = 64;

/// Who may push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    /// One identity.
    Id(IdentityId),
    /// The members of this node's group of that name.
    Group(String),
}

impl std::str::FromStr for Allow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("group:") {
            Some(name) => {
                shoal_identity::check_group_name(name).map_err(|e| format!("{s:?}: {e}"))?;
                Ok(Allow::Group(name.to_string()))
            }
            None => s
                .parse::<IdentityId>()
                .map(Allow::Id)
                .map_err(|e| format!("{s:?} is neither an identity ID ({e}) nor group:NAME")),
        }
    }
}

impl std::fmt::Display for Allow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allow::Id(id) => write!(f, "{id}"),
            Allow::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// The server role's settings (`[server]` and its flags).
#[derive(Clone, Debug)]
pub struct Role {
    /// Who may push.
    pub allow: Vec<Allow>,
    /// Bytes each identity may keep here (`None`: no limit).
    pub quota: Option<u64>,
    /// Where pushed data lives (one folder per torrent).
    pub dir: PathBuf,
}

/// The role as the RPC reports it.
pub(crate) struct Serving {
    pub(crate) role: Role,
    pub(crate) endpoint: SocketAddr,
    pub(crate) identity: IdentityId,
}

struct Server {
    daemon: Daemon,
    role: Role,
    tls: Arc<rustls::ServerConfig>,
    /// Pushes are decided one at a time (quota room, duplicates).
    deciding: tokio::sync::Mutex<()>,
    /// Open connections by IP address.
    per_ip: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// Room for request frames in memory, in MiB.
    frames: tokio::sync::Semaphore,
}

impl Daemon {
    /// Serves the push endpoint on `listener` (in a task of its own, for ever) as this node's
    /// identity, made on first use; returns that identity. Fails when the identity cannot be
    /// read or the push folder made.
    pub async fn serve_pushes(&self, role: Role, listener: TcpListener) -> Result<IdentityId, String> {
        let dir = self.inner.data_dir.clone();
        let identity = tokio::task::spawn_blocking(move || Identity::load_or_create(&dir, None))
            .await
            .map_err(|_| "the identity could not be read".to_string())?
            .map_err(|e| e.to_string())?
            .0;
        let tls = shoal_identity::direct_server(&identity).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&role.dir).map_err(|e| format!("cannot create {}: {e}", role.dir.display()))?;
        let endpoint = listener.local_addr().map_err(|e| e.to_string())?;
        let _ = self.inner.server.set(Serving { role: role.clone(), endpoint, identity: identity.id() });
        let server = Arc::new(Server {
            daemon: self.clone(),
            role,
            tls,
            deciding: Default::default(),
            per_ip: Default::default(),
            frames: tokio::sync::Semaphore::new(FRAME_BUDGET_MIB as usize),
        });
        tokio::spawn(server.accept(listener));
        Ok(identity.id())
    }
}

impl Server {
    async fn accept(self: Arc<Self>, listener: TcpListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("push endpoint: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::info!(%remote, "push endpoint: {MAX_CONNECTIONS} connections already; closing one more");
                continue;
            };
            {
                let mut per_ip = crate::lock(&self.per_ip);
                let n = per_ip.entry(remote.ip()).or_default();
                if *n >= MAX_PER_IP {
                    tracing::info!(%remote, "push endpoint: {MAX_PER_IP} connections from this address already");
                    continue;
                }
                *n += 1;
            }
            let server = self.clone();
            tokio::spawn(async move {
                server.connection(tcp, remote).await;
                let mut per_ip = crate::lock(&server.per_ip);
                if let Some(n) = per_ip.get_mut(&remote.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        per_ip.remove(&remote.ip());
                    }
                }
                drop(slot);
            });
        }
    }

    async fn connection(&self, tcp: TcpStream, remote: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let accept = tokio_rustls::TlsAcceptor::from(self.tls.clone()).accept(tcp);
        let mut tls = match tokio::time::timeout(CONNECT_TIMEOUT, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(%remote, "push endpoint: handshake refused: {e}");
                return;
            }
            Err(_) => return,
        };
        let Some(pusher) = shoal_identity::peer_identity(tls.get_ref().1.peer_certificates()) else { return };
        // Someone the allow list does not name and who has pushed nothing here: a stranger,
        // who gets a short idle time and loses the connection at its first refusal.
        let stranger = !self.role.allow.contains(&Allow::Id(pusher))
            && self.pushes_of(pusher).await.map(|p| p.is_empty()).unwrap_or(true);
        let idle = if stranger { STRANGER_IDLE } else { IDLE };
        loop {
            let (request, room) = match tokio::time::timeout(idle, self.read_request(&mut tls)).await {
                Ok(Ok(Some(read))) => read,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    let _ = write_frame(&mut tls, &Reply::Error { message: format!("bad request: {e}") }).await;
                    return;
                }
            };
            let was_push = matches!(request, Request::Push { .. });
            // Runs to its end even when the caller goes away meanwhile; the request's memory
            // stays counted until then.
            let reply =
                self.handle(pusher, remote.ip(), request).await.unwrap_or_else(|message| Reply::Error { message });
            drop(room);
            let refused = matches!(reply, Reply::Error { .. });
            if write_frame(&mut tls, &reply).await.is_err() || (stranger && was_push && refused) {
                return;
            }
        }
    }

    /// Reads one request once the frame budget has room for it; returns it with that room,
    /// which the caller holds while it handles the request. The body must arrive at 1 MiB/s
    /// or better.
    async fn read_request(
        &self,
        io: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> std::io::Result<Option<(Request, tokio::sync::SemaphorePermit<'_>)>> {
        let Some(len) = crate::push::read_header(io).await? else { return Ok(None) };
        let mib = u32::try_from(len.div_ceil(1 << 20).max(1)).unwrap_or(FRAME_BUDGET_MIB).min(FRAME_BUDGET_MIB);
        let room = self.frames.acquire_many(mib).await.map_err(|_| std::io::Error::other("closing"))?;
        let deadline = std::time::Duration::from_secs(10 + u64::from(mib));
        let request = tokio::time::timeout(deadline, crate::push::read_body(io, len))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the request came too slowly"))??;
        Ok(Some((request, room)))
    }

    async fn handle(&self, pusher: IdentityId, ip: IpAddr, request: Request) -> Result<Reply, String> {
        match request {
            Request::Push { torrent, port, members } => {
                self.push(pusher, SocketAddr::new(ip, port), &torrent, members).await
            }
            Request::Status { torrent } => {
                let (row, _) = self.find(pusher, &torrent).await?;
                Ok(Reply::Status { push: self.info_of(&row).await? })
            }
            Request::List => {
                let mut pushes = Vec::new();
                for row in self.pushes_of(pusher).await? {
                    pushes.extend(self.info_of(&row).await);
                }
                Ok(Reply::List { pushes, quota: self.role.quota })
            }
            Request::Withdraw { torrent } => self.withdraw(pusher, &torrent).await,
        }
    }

    async fn all_pushes(&self) -> Result<Vec<PushRow>, String> {
        self.daemon.inner.db.call(|s| s.pushes()).await.map_err(|e| format!("cannot read the pushes: {e}"))
    }

    async fn pushes_of(&self, pusher: IdentityId) -> Result<Vec<PushRow>, String> {
        let who = pusher.compact();
        Ok(self.all_pushes().await?.into_iter().filter(|p| p.pusher == who).collect())
    }

    /// The caller's push named by `torrent` (an info-hash or a unique prefix of 8+ digits),
    /// with every push of that torrent (the caller's among them).
    async fn find(&self, pusher: IdentityId, torrent: &str) -> Result<(PushRow, usize), String> {
        let wanted = torrent.trim().to_ascii_lowercase();
        if wanted.len() < 8 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{torrent:?} is not an info-hash (or its first 8 or more hex digits)"));
        }
        let all = self.all_pushes().await?;
        let hashes = self.hashes(&all);
        let who = pusher.compact();
        let mine: Vec<&PushRow> = all
            .iter()
            .filter(|p| p.pusher == who && hashes.get(&p.torrent).is_some_and(|h| h.starts_with(&wanted)))
            .collect();
        match mine.as_slice() {
            [one] => Ok(((*one).clone(), all.iter().filter(|p| p.torrent == one.torrent).count())),
            [] => Err(format!("you have pushed nothing matching {torrent} to this server")),
            _ => Err(format!("{torrent} matches {} of your pushes; give more of the info-hash", mine.len())),
        }
    }

    /// The info-hash of each pushed torrent the daemon knows.
    fn hashes(&self, rows: &[PushRow]) -> std::collections::HashMap<shoal_state::TorrentId, String> {
        let entries = crate::lock(&self.daemon.inner.entries);
        rows.iter()
            .filter_map(|r| entries.get(&(r.torrent.get() as u64)).map(|e| (r.torrent, e.info_hash.clone())))
            .collect()
    }

    async fn info_of(&self, row: &PushRow) -> Result<PushInfo, String> {
        let id = shoal_rpc::api::TorrentId(row.torrent.get() as u64);
        let info = self.daemon.get(Ids::List(vec![TorrentRef::Id(id)])).await.map_err(|e| e.to_string())?;
        let info = info.into_iter().next().ok_or("the torrent is no longer on this server")?;
        Ok(push_info(&info, row))
    }

    async fn push(
        &self,
        pusher: IdentityId,
        peer: SocketAddr,
        torrent: &str,
        members: Vec<String>,
    ) -> Result<Reply, String> {
        if members.len() > MAX_MEMBER_CERTS {
            return Err(format!("{} member certificates sent; at most {MAX_MEMBER_CERTS} are read", members.len()));
        }
        self.check_allowed(pusher, members).await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(torrent.as_bytes())
            .map_err(|e| format!("the torrent is not base64: {e}"))?;
        let meta = Metainfo::from_bytes(&bytes).map_err(|e| format!("not a valid torrent: {e}"))?;
        if peer.port() == 0 {
            return Err("the push names no port to fetch the data from".into());
        }
        let size = meta.info.total_length();
        let hex = meta.info_hash.to_hex();
        // A group share this server is not a member of: said plainly, without the server's
        // paths, with what the group's authority runs.
        if meta.info.ssl_cert.is_some() {
            let (dir, m) = (self.daemon.inner.data_dir.clone(), meta.clone());
            let checked = tokio::task::spawn_blocking(move || crate::groups::share_for(&dir, &m)).await;
            if let Ok(Err(crate::groups::ShareError::NotMember { group, id, .. })) = checked {
                return Err(format!(
                    "this server ({id}) is not a member of {group}, whose members alone may hold {}: the group's \
                     authority can invite it with `shoal group invite GROUP {id} --seed-only`, and the server's \
                     operator then joins",
                    meta.info.name
                ));
            }
        }
        let _deciding = self.deciding.lock().await;
        let all = self.all_pushes().await?;
        let hashes = self.hashes(&all);
        let who = pusher.compact();
        let existing = crate::lock(&self.daemon.inner.entries).id_of(&hex);
        let mine = |p: &&PushRow| p.pusher == who;
        if let Some(id) = existing {
            let tid = shoal_state::TorrentId::new(id as i64);
            if let Some(row) = all.iter().filter(mine).find(|p| p.torrent == tid) {
                self.dial(id, peer);
                return Ok(Reply::Pushed { push: self.info_of(row).await?, again: true });
            }
        }
        let used: u64 = all.iter().filter(mine).filter(|p| hashes.contains_key(&p.torrent)).map(|p| p.size).sum();
        if let Some(quota) = self.role.quota.filter(|q| size > *q) {
            return Err(format!(
                "over quota: {} needs {}, more than {}'s whole quota here ({})",
                meta.info.name,
                size_text(size),
                pusher,
                size_text(quota)
            ));
        }
        if let Some(quota) = self.role.quota.filter(|q| used.saturating_add(size) > *q) {
            return Err(format!(
                "over quota: {} needs {}, and {} keeps {} of its {} quota here ({} free); withdraw a push \
                 (shoal push --withdraw) or ask the server's operator for more",
                meta.info.name,
                size_text(size),
                pusher,
                size_text(used),
                size_text(quota),
                size_text(quota.saturating_sub(used))
            ));
        }
        let row = PushRow {
            torrent: shoal_state::TorrentId::new(0),
            pusher: who,
            size,
            pushed_at: std::time::SystemTime::now(),
        };
        let id = match existing {
            Some(id) => {
                let row = PushRow { torrent: shoal_state::TorrentId::new(id as i64), ..row.clone() };
                self.daemon.inner.db.call(move |s| s.add_push(&row)).await.map_err(|e| e.to_string())?;
                self.dial(id, peer);
                id
            }
            None => {
                let request = AddRequest {
                    download_dir: Some(self.role.dir.join(&hex).display().to_string()),
                    peers: vec![peer],
                    labels: vec!["pushed".into()],
                    ..AddRequest::new(Source::TorrentFile(bytes))
                };
                let added = self.daemon.add_with(request, Some(row.clone())).await.map_err(|e| match e {
                    shoal_rpc::api::ApiError::BadTorrent(m) if meta.info.ssl_cert.is_some() => {
                        format!("this server cannot keep the group share {}: {m}", meta.info.name)
                    }
                    e => e.to_string(),
                })?;
                if added.duplicate {
                    // Added by someone else since the look above: this push joins it.
                    let row = PushRow { torrent: shoal_state::TorrentId::new(added.id.0 as i64), ..row.clone() };
                    self.daemon.inner.db.call(move |s| s.add_push(&row)).await.map_err(|e| e.to_string())?;
                    self.dial(added.id.0, peer);
                }
                added.id.0
            }
        };
        let row = PushRow { torrent: shoal_state::TorrentId::new(id as i64), ..row };
        if let Some(entry) = crate::lock(&self.daemon.inner.entries).get_mut(&id) {
            entry.pushed_by.push(pusher.to_string());
        }
        tracing::info!(pusher = %pusher, torrent = %hex, "push taken: {}", meta.info.name);
        Ok(Reply::Pushed { push: self.info_of(&row).await?, again: false })
    }

    /// Refuses a caller the allow list does not name.
    async fn check_allowed(&self, pusher: IdentityId, members: Vec<String>) -> Result<(), String> {
        if self.role.allow.contains(&Allow::Id(pusher)) {
            return Ok(());
        }
        let groups: Vec<String> = self
            .role
            .allow
            .iter()
            .filter_map(|a| match a {
                Allow::Group(name) => Some(name.clone()),
                Allow::Id(_) => None,
            })
            .collect();
        let dir = self.daemon.inner.data_dir.clone();
        let vouched = tokio::task::spawn_blocking(move || {
            let store = Groups::new(&dir);
            let certs: Vec<_> = members
                .iter()
                .filter_map(|pem| shoal_identity::cert_from_pem(pem.as_bytes(), "a member certificate").ok())
                .collect();
            groups.iter().any(|name| certs.iter().any(|c| store.vouches_for(name, c, pusher).unwrap_or(false)))
        })
        .await
        .unwrap_or(false);
        if vouched {
            Ok(())
        } else {
            Err(format!(
                "{pusher} may not push to this server: its operator has not allowed this identity or a group it is a \
                 member of ([server] allow)"
            ))
        }
    }

    fn dial(&self, id: u64, peer: SocketAddr) {
        if let Some(t) = crate::lock(&self.daemon.inner.entries).get(&id).and_then(|e| e.torrent.as_ref()) {
            t.add_peers(vec![peer]);
        }
    }

    async fn withdraw(&self, pusher: IdentityId, torrent: &str) -> Result<Reply, String> {
        let _deciding = self.deciding.lock().await;
        let (row, pushes) = self.find(pusher, torrent).await?;
        let push = self.info_of(&row).await?;
        let id = shoal_rpc::api::TorrentId(row.torrent.get() as u64);
        let folder = self.role.dir.join(&push.info_hash);
        let inside = {
            let entries = crate::lock(&self.daemon.inner.entries);
            entries.get(&id.0).is_some_and(|e| e.download_dir == folder)
        };
        // The data stays for the others who pushed it, and when it is not in the folder a push
        // made for it (a torrent the operator added, which someone then pushed).
        if pushes > 1 || !inside {
            let (tid, who) = (row.torrent, row.pusher.clone());
            self.daemon.inner.db.call(move |s| s.remove_push(tid, &who)).await.map_err(|e| e.to_string())?;
            if let Some(entry) = crate::lock(&self.daemon.inner.entries).get_mut(&id.0) {
                let shown = pusher.to_string();
                entry.pushed_by.retain(|p| *p != shown);
            }
            return Ok(Reply::Withdrawn { push, deleted: false });
        }
        self.daemon
            .remove(RemoveRequest { ids: Ids::List(vec![TorrentRef::Id(id)]), delete_data: true })
            .await
            .map_err(|e| e.to_string())?;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(folder)).await;
        tracing::info!(pusher = %pusher, torrent = %push.info_hash, "push withdrawn, data deleted");
        Ok(Reply::Withdrawn { push, deleted: true })
    }
}

impl Daemon {
    /// `server.pushes`: every push kept here and each pusher's quota use.
    pub(crate) async fn server_view(&self) -> Result<shoal_rpc::api::ServerPushes, shoal_rpc::api::ApiError> {
        let Some(serving) = self.inner.server.get() else {
            return Err(shoal_rpc::api::ApiError::Failed(
                "this daemon is not a server peer: start it with --server-listen ADDR or [server] listen".into(),
            ));
        };
        let rows = self.inner.db.call(|s| s.pushes()).await?;
        let ids = rows.iter().map(|r| TorrentRef::Id(shoal_rpc::api::TorrentId(r.torrent.get() as u64))).collect();
        let infos: std::collections::HashMap<u64, TorrentInfo> =
            self.get(Ids::List(ids)).await.unwrap_or_default().into_iter().map(|i| (i.id.0, i)).collect();
        let mut pushes = Vec::new();
        let mut usage: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for row in &rows {
            let Some(info) = infos.get(&(row.torrent.get() as u64)) else { continue };
            let p = push_info(info, row);
            let u = usage.entry(row.pusher.clone()).or_default();
            u.0 += row.size;
            u.1 += 1;
            pushes.push(shoal_rpc::api::ServerPush {
                pusher: shown_id(&row.pusher),
                id: info.id.0,
                info_hash: p.info_hash,
                name: p.name,
                size: row.size,
                have: p.have,
                held: p.held,
                pushed_at: p.pushed_at,
            });
        }
        Ok(shoal_rpc::api::ServerPushes {
            endpoint: format!("{}@{}", serving.identity.compact(), serving.endpoint),
            allow: serving.role.allow.iter().map(ToString::to_string).collect(),
            quota: serving.role.quota,
            dir: serving.role.dir.display().to_string(),
            pushes,
            usage: usage
                .into_iter()
                .map(|(pusher, (used, n))| shoal_rpc::api::QuotaUse { pusher: shown_id(&pusher), used, pushes: n })
                .collect(),
        })
    }
}

/// A push as reported: held once every byte is verified and the torrent runs.
pub(crate) fn push_info(info: &TorrentInfo, row: &PushRow) -> PushInfo {
    let running = !matches!(info.state, TorrentState::Checking | TorrentState::Error | TorrentState::Metadata);
    PushInfo {
        info_hash: info.info_hash.clone(),
        name: info.name.clone(),
        size: info.total_bytes,
        have: info.have_bytes,
        state: format!("{:?}", info.state).to_lowercase(),
        held: running && info.have_bytes == info.total_bytes && info.error.is_none(),
        error: info.error.clone(),
        pushed_at: row.pushed_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        group: info.group.clone(),
    }
}

/// A pusher's identity as shown (groups of 7), from its stored compact form.
pub(crate) fn shown_id(stored: &str) -> String {
    stored.parse::<IdentityId>().map(|id| id.to_string()).unwrap_or_else(|_| stored.to_string())
}

/// Bytes in binary units, for messages.
pub(crate) fn size_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_are_identities_or_groups() {
        let id = IdentityId([9; 32]);
        assert_eq!(id.to_string().parse::<Allow>(), Ok(Allow::Id(id)));
        assert_eq!("group:friends".parse::<Allow>(), Ok(Allow::Group("friends".into())));
        assert!("group:".parse::<Allow>().is_err());
        let err = "bob".parse::<Allow>().expect_err("not an id");
        assert!(err.contains("group:NAME"), "{err}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size_text(512), "512 B");
        assert_eq!(size_text(64 << 20), "64.0 MiB");
        assert_eq!(size_text(3 << 29), "1.5 GiB");
    }
}
