//! The built-in HTTP tracker (`shoal tracker`): answers BEP 3 announces with compact peer lists
//! (BEP 23; IPv6 peers in `peers6`), for any info-hash. Peers are kept in memory and forgotten
//! when they send `stopped` or stay silent for two intervals. Each reply lists up to `numwant`
//! (default 50, at most 200) other peers of the same torrent, chosen at random.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rand::seq::SliceRandom;
use shoal_proto::tracker::{AnnounceRequest, AnnounceResponse, Event, encode_failure};
use shoal_proto::{InfoHash, PeerId};
use tokio::net::TcpListener;

/// Settings of the tracker server.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Announce interval told to clients.
    pub interval: Duration,
    /// Most torrents tracked at once (a bound on memory).
    pub max_torrents: usize,
    /// Most peers kept per torrent.
    pub max_peers: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(60), max_torrents: 100_000, max_peers: 10_000 }
    }
}

#[derive(Debug)]
struct Entry {
    addr: SocketAddr,
    seed: bool,
    seen: Instant,
}

#[derive(Debug, Default)]
struct Swarms {
    torrents: HashMap<InfoHash, HashMap<PeerId, Entry>>,
}

#[derive(Debug)]
struct Shared {
    config: TrackerConfig,
    swarms: Mutex<Swarms>,
}

/// A running tracker.
#[derive(Debug)]
pub struct TrackerServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TrackerServer {
    /// Starts serving on an already bound listener.
    pub fn start(listener: TcpListener, config: TrackerConfig) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { config, swarms: Mutex::new(Swarms::default()) });
        let app = Router::new().route("/announce", get(announce)).with_state(shared);
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!("tracker stopped: {e}");
            }
        });
        Ok(Self { addr, task })
    }

    /// The address the tracker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The announce URL clients should use.
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }
}

impl Drop for TrackerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn announce(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let request = match AnnounceRequest::from_query(query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return (StatusCode::OK, encode_failure(&e.to_string())),
    };
    // The address the request came from; a client on the same machine may name another of
    // its own addresses with `ip`, nobody else may.
    let ip: IpAddr = match request.ip.as_deref().and_then(|s| s.parse().ok()) {
        Some(ip) if remote.ip().is_loopback() => ip,
        _ => remote.ip(),
    };
    let addr = SocketAddr::new(ip, request.port);
    match shared.record(&request, addr) {
        Ok(reply) => (StatusCode::OK, reply.encode_compact()),
        Err(reason) => (StatusCode::OK, encode_failure(reason)),
    }
}

impl Shared {
    fn record(&self, request: &AnnounceRequest, addr: SocketAddr) -> Result<AnnounceResponse, &'static str> {
        let now = Instant::now();
        let ttl = self.config.interval * 2 + Duration::from_secs(30);
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        let full = swarms.torrents.len() >= self.config.max_torrents;
        if full && !swarms.torrents.contains_key(&request.info_hash) {
            return Err("the tracker is full");
        }
        let peers = swarms.torrents.entry(request.info_hash).or_default();
        peers.retain(|_, e| now.duration_since(e.seen) < ttl);
        if request.event == Some(Event::Stopped) {
            peers.remove(&request.peer_id);
        } else if peers.len() < self.config.max_peers || peers.contains_key(&request.peer_id) {
            peers.insert(request.peer_id, Entry { addr, seed: request.left == 0, seen: now });
        }
        let complete = peers.values().filter(|e| e.seed).count() as u32;
        let incomplete = peers.len() as u32 - complete;
        let want = request.numwant.unwrap_or(50).min(200) as usize;
        let mut others: Vec<SocketAddr> =
            peers.iter().filter(|(id, _)| **id != request.peer_id).map(|(_, e)| e.addr).collect();
        others.shuffle(&mut rand::rng());
        others.truncate(want);
        Ok(AnnounceResponse {
            interval: self.config.interval.as_secs() as u32,
            min_interval: None,
            complete: Some(complete),
            incomplete: Some(incomplete),
            peers: others,
            warning: None,
        })
    }
}
