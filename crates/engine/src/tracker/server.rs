//! The built-in tracker (`shoal tracker`): answers BEP 3 announces over HTTP with compact peer
//! lists (BEP 23; IPv6 peers in `peers6`) and, when given a UDP socket, BEP 15 announces and
//! scrapes over UDP (see the `udp` submodule), for any info-hash. Both protocols share one set
//! of swarms, so an HTTP client and a UDP client of the same torrent see each other.
//!
//! Peers are kept in memory and forgotten when they send `stopped` or stay silent for two
//! intervals. Each reply lists up to `numwant` (default 50, at most 200) other peers of the same
//! torrent, chosen at random (over UDP, only peers of the requester's address family).

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
use shoal_proto::udp_tracker::{AddressFamily, ScrapeStats};
use shoal_proto::{InfoHash, PeerId};
use tokio::net::{TcpListener, UdpSocket};

mod udp;

/// Tries at binding a TCP and a UDP socket on one free port, when port 0 was asked for and the
/// port the TCP listener got is taken for UDP.
const BIND_ATTEMPTS: usize = 16;

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

/// One torrent's peers.
#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<PeerId, Entry>,
    /// `completed` events received (the scrape's "downloaded" count).
    completed: u32,
}

#[derive(Debug, Default)]
struct Swarms {
    torrents: HashMap<InfoHash, Swarm>,
}

#[derive(Debug)]
struct Shared {
    config: TrackerConfig,
    swarms: Mutex<Swarms>,
}

/// Why [`TrackerServer::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackerBindError {
    /// The TCP listener for HTTP could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The UDP socket could not be bound on the HTTP listener's port (or, for port 0, no free
    /// port was found for both in 16 tries).
    #[error("cannot listen for UDP on {addr}: {source}")]
    Udp {
        /// The address tried last.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The tracker's HTTP routes (`GET /announce`) for another server to serve beside its own
/// (the index server does), and a handle on their swarms. Serve them with connect info
/// (`into_make_service_with_connect_info::<SocketAddr>`): a peer is listed at its source address.
pub fn routes(config: TrackerConfig) -> (Router, SwarmCounts) {
    let shared = Arc::new(Shared { config, swarms: Mutex::new(Swarms::default()) });
    (Router::new().route("/announce", get(announce)).with_state(shared.clone()), SwarmCounts(shared))
}

/// How many peers each torrent of a tracker has now.
#[derive(Clone, Debug)]
pub struct SwarmCounts(Arc<Shared>);

impl SwarmCounts {
    /// Seeders of `info_hash` (peers that announced with nothing left) heard from within two
    /// intervals.
    pub fn seeders(&self, info_hash: &InfoHash) -> u32 {
        self.0.scrape(std::slice::from_ref(info_hash)).first().map_or(0, |s| s.seeders)
    }
}

/// A running tracker. Dropping it stops it.
#[derive(Debug)]
pub struct TrackerServer {
    addr: SocketAddr,
    udp_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    udp_task: Option<tokio::task::JoinHandle<()>>,
}

impl TrackerServer {
    /// Starts serving HTTP only, on an already bound listener.
    pub fn start(listener: TcpListener, config: TrackerConfig) -> std::io::Result<Self> {
        Self::start_inner(listener, None, config)
    }

    /// Starts serving HTTP on an already bound listener and UDP on an already bound socket
    /// (normally on the same port number), with shared swarms.
    pub fn start_with_udp(listener: TcpListener, udp: UdpSocket, config: TrackerConfig) -> std::io::Result<Self> {
        Self::start_inner(listener, Some(udp), config)
    }

    /// Binds HTTP (TCP) on `addr` and UDP on the same address and port, and starts serving
    /// both. With port 0, a port free for both is looked for.
    pub async fn bind(addr: SocketAddr, config: TrackerConfig) -> Result<Self, TrackerBindError> {
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS {
            let listener = TcpListener::bind(addr).await.map_err(|source| TrackerBindError::Http { addr, source })?;
            let local = listener.local_addr().map_err(|source| TrackerBindError::Http { addr, source })?;
            match UdpSocket::bind(local).await {
                Ok(udp) => {
                    return Self::start_with_udp(listener, udp, config)
                        .map_err(|source| TrackerBindError::Udp { addr: local, source });
                }
                Err(source) if addr.port() == 0 && source.kind() == std::io::ErrorKind::AddrInUse => {
                    last = Some((local, source));
                }
                Err(source) => return Err(TrackerBindError::Udp { addr: local, source }),
            }
        }
        let (addr, source) = last.unwrap_or_else(|| (addr, std::io::ErrorKind::AddrInUse.into()));
        Err(TrackerBindError::Udp { addr, source })
    }

    fn start_inner(listener: TcpListener, udp: Option<UdpSocket>, config: TrackerConfig) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let udp_addr = udp.as_ref().map(UdpSocket::local_addr).transpose()?;
        let shared = Arc::new(Shared { config, swarms: Mutex::new(Swarms::default()) });
        let udp_task = udp.map(|socket| tokio::spawn(udp::serve(socket, shared.clone())));
        let app = Router::new().route("/announce", get(announce)).with_state(shared);
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!("tracker stopped: {e}");
            }
        });
        Ok(Self { addr, udp_addr, task, udp_task })
    }

    /// The address the tracker listens on for HTTP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP announce URL clients should use.
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// The address the tracker answers UDP on, if it was started with UDP.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The UDP announce URL, `udp://ADDR/announce`, if the tracker was started with UDP.
    pub fn udp_announce_url(&self) -> Option<String> {
        self.udp_addr.map(|addr| format!("udp://{addr}/announce"))
    }
}

impl Drop for TrackerServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(task) = &self.udp_task {
            task.abort();
        }
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
    match shared.record(&request, peer_addr(remote, &request), None) {
        Ok(reply) => (StatusCode::OK, reply.encode_compact()),
        Err(reason) => (StatusCode::OK, encode_failure(reason)),
    }
}

/// The address to list a peer under: that of the request's source with the announced port. A
/// client on the same machine may name another of its own addresses with `ip`, nobody else may.
fn peer_addr(remote: SocketAddr, request: &AnnounceRequest) -> SocketAddr {
    let remote = remote.ip().to_canonical();
    let ip: IpAddr = match request.ip.as_deref().and_then(|s| s.parse().ok()) {
        Some(ip) if remote.is_loopback() => ip,
        _ => remote,
    };
    SocketAddr::new(ip, request.port)
}

impl Shared {
    /// Records an announce from `addr` and returns the reply: other peers of the torrent, only
    /// of `family` when given.
    fn record(
        &self,
        request: &AnnounceRequest,
        addr: SocketAddr,
        family: Option<AddressFamily>,
    ) -> Result<AnnounceResponse, &'static str> {
        let now = Instant::now();
        let ttl = self.ttl();
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        let full = swarms.torrents.len() >= self.config.max_torrents;
        if full && !swarms.torrents.contains_key(&request.info_hash) {
            return Err("the tracker is full");
        }
        let swarm = swarms.torrents.entry(request.info_hash).or_default();
        if request.event == Some(Event::Completed) {
            swarm.completed = swarm.completed.saturating_add(1);
        }
        let peers = &mut swarm.peers;
        peers.retain(|_, e| now.duration_since(e.seen) < ttl);
        if request.event == Some(Event::Stopped) {
            peers.remove(&request.peer_id);
        } else if peers.len() < self.config.max_peers || peers.contains_key(&request.peer_id) {
            peers.insert(request.peer_id, Entry { addr, seed: request.left == 0, seen: now });
        }
        let complete = peers.values().filter(|e| e.seed).count() as u32;
        let incomplete = peers.len() as u32 - complete;
        let want = request.numwant.unwrap_or(50).min(200) as usize;
        let mut others: Vec<SocketAddr> = peers
            .iter()
            .filter(|(id, e)| **id != request.peer_id && family.is_none_or(|f| AddressFamily::of(&e.addr) == f))
            .map(|(_, e)| e.addr)
            .collect();
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

    /// Counts of each torrent for a scrape, in order; zeros for unknown torrents.
    fn scrape(&self, info_hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        let ttl = self.ttl();
        let now = Instant::now();
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        info_hashes
            .iter()
            .map(|hash| match swarms.torrents.get(hash) {
                Some(swarm) => {
                    let live = || swarm.peers.values().filter(|e| now.duration_since(e.seen) < ttl);
                    let seeders = live().filter(|e| e.seed).count();
                    ScrapeStats {
                        seeders: count(seeders),
                        completed: swarm.completed,
                        leechers: count(live().count() - seeders),
                    }
                }
                None => ScrapeStats::default(),
            })
            .collect()
    }

    /// How long a silent peer stays listed: two intervals and some slack.
    fn ttl(&self) -> Duration {
        self.config.interval * 2 + Duration::from_secs(30)
    }
}
