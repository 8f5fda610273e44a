//! `shoal daemon`: reads the flags and the config file, takes the data folder's lock, opens
//! the state database and the engine session, and serves a [`shoal_daemon::Daemon`] over
//! JSON-RPC, XML-RPC and Transmission RPC. The stored torrents are listed before the RPC
//! answers its first request, and their data checks run in the background, so it answers from
//! the first moment and knows every torrent.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use shoal_engine::Session;
use shoal_rpc::api::SessionSettings;
use shoal_state::Store;

use crate::Failure;
use crate::args::DaemonArgs;

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
    if node.ssl_listen.is_none() {
        node.ssl_listen = config.ssl_listen;
    }
    if node.encryption.is_none()
        && let Some(e) = &config.encryption
    {
        node.encryption = Some(e.parse().map_err(|e| Failure::Input(anyhow!("the config file's encryption: {e}")))?);
    }
    if node.utp.is_none()
        && let Some(u) = &config.utp
    {
        node.utp = Some(u.parse().map_err(|e| Failure::Input(anyhow!("the config file's utp: {e}")))?);
    }
    node.no_dht |= !config.dht.enabled;
    node.no_lsd |= !config.lsd.enabled;
    if !config.dht.bootstrap.is_empty() && node.dht_bootstrap.is_empty() {
        node.dht_bootstrap = config.dht.bootstrap.clone();
    }
    // Precedence, lowest first: built-in defaults, the config file, settings changed over RPC
    // (kept in the database), command-line flags.
    // The daemon may be given a group share at any time: it listens for TLS peers from the start.
    let mut session_config = node.session_config_for(true, Some(&data_dir));
    let stored: Option<SessionSettings> = store.get_setting("session").ok().flatten();
    let download_dir = a
        .download_dir
        .clone()
        .or_else(|| stored.as_ref().map(|s| PathBuf::from(&s.download_dir)))
        .or_else(|| config.download_dir.clone())
        .unwrap_or_else(|| data_dir.join("downloads"));
    session_config.upload_limit = match (node.upload_limit, &stored) {
        (Some(flag), _) => Some(flag),
        (None, Some(s)) => s.upload_limit,
        (None, None) => config.limits.upload,
    };
    session_config.download_limit = match (node.download_limit, &stored) {
        (Some(flag), _) => Some(flag),
        (None, Some(s)) => s.download_limit,
        (None, None) => config.limits.download,
    };
    let from_config = |c: Option<u32>, default: u32| c.unwrap_or(default);
    session_config.max_connections =
        stored.as_ref().map_or(from_config(config.limits.max_connections, 500), |s| s.max_connections) as usize;
    session_config.max_peers = stored
        .as_ref()
        .map_or(from_config(config.limits.max_connections_per_torrent, 80), |s| s.max_connections_per_torrent)
        as usize;
    if let Some(n) = node.max_connections {
        session_config.max_connections = n;
    }
    if let Some(n) = node.max_peers {
        session_config.max_peers = n;
    }
    let session = Session::start(session_config.clone()).await.map_err(anyhow::Error::from)?;
    // What is running, whatever was stored: the real port, DHT and LSD as started.
    let settings = SessionSettings {
        listen_port: session.listen_addr().port(),
        download_dir: download_dir.display().to_string(),
        upload_limit: session_config.upload_limit,
        download_limit: session_config.download_limit,
        dht: session_config.dht.is_some(),
        lsd: session_config.lsd,
        pex: true,
        max_connections: session_config.max_connections as u32,
        max_connections_per_torrent: session_config.max_peers as u32,
        download_queue_size: stored.as_ref().map_or(config.limits.max_active_downloads, |s| s.download_queue_size),
        seed_queue_size: stored.as_ref().map_or(config.limits.max_active_seeds, |s| s.seed_queue_size),
        seed_ratio_limit: stored.as_ref().map_or(config.limits.seed_ratio, |s| s.seed_ratio_limit),
        seed_time_limit: stored.as_ref().map_or(config.limits.seed_time, |s| s.seed_time_limit),
        seed_idle_limit: stored.as_ref().map_or(config.limits.seed_idle, |s| s.seed_idle_limit),
        encryption: session_config.encryption.to_string(),
        utp: session_config.utp.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(rpc_listen)
        .await
        .with_context(|| format!("cannot listen for RPC on {rpc_listen}"))?;
    let rpc_addr = listener.local_addr().context("RPC address")?;
    let daemon = shoal_daemon::Daemon::new(session.clone(), store, settings, data_dir.clone());
    daemon.set_rpc_authenticated(access.token.is_some() || access.user_password.is_some());
    // Reading the stored rows is quick; their data checks run in the background.
    daemon.restore().await.map_err(|e| anyhow!("cannot restore the stored torrents: {e}"))?;
    tokio::spawn(daemon.clone().run_policy());
    let indexes: Vec<String> = config.search.index.iter().chain(&a.search_index).cloned().collect();
    if let Some(bad) = indexes.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        return Err(Failure::Input(anyhow!("--search-index {bad:?} is not an http:// or https:// URL")));
    }
    let search_peers: Vec<SocketAddr> = config.search.peers.iter().chain(&a.search_peer).copied().collect();
    let search_peer_count = search_peers.len();
    let setup = shoal_daemon::search::SearchSetup {
        indexes,
        peers: search_peers,
        overlay: !a.no_search_overlay && config.search.overlay.unwrap_or(true),
        dht_crawl: a.dht_crawl || config.search.dht_crawl,
        trusted: config
            .search
            .trust
            .iter()
            .chain(&a.trust)
            .map(|id| {
                id.parse::<shoal_identity::IdentityId>()
                    .map(|id| id.compact())
                    .map_err(|e| Failure::Input(anyhow!("--trust / [search] trust {id:?}: {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    if setup.dht_crawl && session.dht().is_none() {
        return Err(Failure::Input(anyhow!(
            "the DHT crawler (--dht-crawl, [search] dht_crawl) needs the DHT, which is off"
        )));
    }
    daemon.start_search(setup).await.map_err(|e| anyhow!("search cannot start: {e}"))?;
    if let Some((role, listen)) = server_role(&a, &config, &data_dir)? {
        let push_listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for pushes on {listen}"))?;
        let endpoint = push_listener.local_addr().context("push endpoint address")?;
        if role.allow.is_empty() {
            eprintln!("shoal: warning: the server role is on but nobody may push yet ([server] allow or --allow)");
        }
        let id =
            daemon.serve_pushes(role, push_listener).await.map_err(|e| anyhow!("the server role cannot start: {e}"))?;
        println!("server: pushes on {endpoint}; push with: shoal push PATH --to {}@{endpoint}", id.compact());
    }
    let app = shoal_rpc::http::router_with_streams(
        std::sync::Arc::new(daemon.clone()),
        shoal_rpc::http::Config { access, ..Default::default() },
        shoal_daemon::stream::routes(daemon.clone()),
    );
    if !quiet {
        println!("data: {}", data_dir.display());
        if let Some(addr) = session.ssl_listen_addr() {
            println!("group shares: TLS peers on {addr}");
        }
        if let Some(dht) = session.dht() {
            println!("dht: node on {}", dht.local_addr());
        }
        match daemon.search_neighbours() {
            Some(_) => println!(
                "search: index in {}; search neighbours on the peer port ({} named)",
                data_dir.join("search.sqlite3").display(),
                search_peer_count
            ),
            None => println!("search: index in {}; no search neighbours", data_dir.join("search.sqlite3").display()),
        }
    }
    println!(
        "rpc: listening on http://{rpc_addr}/jsonrpc, /xmlrpc and /transmission/rpc; files stream from /stream/ID/FILE"
    );
    println!("ready: peers on {}; press Ctrl-C to stop", session.listen_addr());
    let server = axum::serve(listener, app).with_graceful_shutdown(crate::interrupted());
    server.await.context("the RPC server failed")?;
    daemon.shutdown().await;
    Ok(())
}

/// The server peer role from `[server]` and the flags, with its push endpoint; `None` when no
/// endpoint is set. Server settings without an endpoint are refused (they would do nothing).
fn server_role(
    a: &DaemonArgs,
    config: &shoal_state::DaemonConfig,
    data_dir: &std::path::Path,
) -> Result<Option<(shoal_daemon::server::Role, SocketAddr)>, Failure> {
    let server = &config.server;
    let allow_text: Vec<&String> = server.allow.iter().chain(&a.allow).collect();
    let Some(listen) = a.server_listen.or(server.listen) else {
        let set = !allow_text.is_empty()
            || a.quota.or(server.quota).is_some()
            || a.server_dir.as_ref().or(server.dir.as_ref()).is_some();
        if set {
            return Err(Failure::Input(anyhow!(
                "server settings are given but no push endpoint: set [server] listen or --server-listen, or leave the \
                 server settings out"
            )));
        }
        return Ok(None);
    };
    let allow = allow_text
        .iter()
        .map(|t| t.parse::<shoal_daemon::server::Allow>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Input(anyhow!("server allow list: {e}")))?;
    let role = shoal_daemon::server::Role {
        allow,
        quota: a.quota.or(server.quota),
        dir: a.server_dir.clone().or_else(|| server.dir.clone()).unwrap_or_else(|| data_dir.join("pushed")),
    };
    // Absolute, so that the torrents stored with their folders do not depend on where the
    // daemon was started.
    std::fs::create_dir_all(&role.dir).with_context(|| format!("cannot create {}", role.dir.display()))?;
    let role = shoal_daemon::server::Role {
        dir: std::fs::canonicalize(&role.dir).with_context(|| format!("cannot use {}", role.dir.display()))?,
        ..role
    };
    Ok(Some((role, listen)))
}
