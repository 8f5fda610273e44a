//! Local Service Discovery (BEP 14): peers on the same network find each other for a torrent
//! with no tracker and no DHT, by announcing on the IPv4 multicast group 239.192.152.143:6771.
//!
//! One task per session owns the socket. It announces every public torrent when it is added
//! and then every [`ANNOUNCE_EVERY`], and hands the sender of every announce for one of our
//! torrents to that torrent as a peer (the address is the datagram's source, the port the
//! announced one). Our own announces come back through multicast loopback and are recognised
//! by a random cookie. Private torrents (BEP 27) are never announced.
//!
//! The socket is bound to 0.0.0.0:6771 with `SO_REUSEADDR`/`SO_REUSEPORT` (through `socket2`,
//! which tokio itself builds on), so several clients on one machine can all listen.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use shoal_proto::lsd::{LSD_GROUP_V4, LSD_PORT, MAX_RECEIVE_LEN};
use shoal_proto::{InfoHash, LsdAnnounce};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::torrent::Control;

/// Every torrent is announced again this often (BEP 14: at most once a minute).
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Most announces we act on per second, whatever their source (a flood costs little).
const RECEIVE_PER_SECOND: u32 = 50;

/// Where the peers found for one info-hash go.
pub(crate) enum Found {
    /// To a torrent.
    Torrent(mpsc::UnboundedSender<Control>),
    /// To a service of the listening port (see [`crate::Session::lsd_watch`]); at most
    /// [`SERVICE_QUEUE`] wait, the rest are dropped.
    Service(mpsc::Sender<SocketAddr>),
}

/// Peers found for a service that wait to be taken.
pub(crate) const SERVICE_QUEUE: usize = 64;

/// What the LSD task is told by the session.
enum Command {
    Add { info_hash: InfoHash, port: Option<u16>, found: Found },
    Remove(InfoHash),
}

/// Handle on the session's LSD task; the task ends when the handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Lsd {
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add { info_hash, .. } => write!(f, "Add({info_hash})"),
            Command::Remove(h) => write!(f, "Remove({h})"),
        }
    }
}

impl Lsd {
    /// Joins the LSD multicast group and starts announcing peers that accept connections on
    /// `listen_port`.
    pub(crate) fn start(listen_port: u16) -> std::io::Result<Self> {
        let socket = bind()?;
        let cookie = format!("shoal{:08x}", rand::random::<u32>());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, listen_port, cookie, rx));
        Ok(Self { tx })
    }

    /// Announces the torrent now and periodically; peers found go to `control`. `port`
    /// overrides the session's port for this torrent (an SSL torrent announces its SSL port,
    /// as libtorrent does).
    pub(crate) fn add(&self, info_hash: InfoHash, port: Option<u16>, found: Found) {
        let _ = self.tx.send(Command::Add { info_hash, port, found });
    }

    /// Stops announcing the torrent.
    pub(crate) fn remove(&self, info_hash: InfoHash) {
        let _ = self.tx.send(Command::Remove(info_hash));
    }
}

fn bind() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, LSD_PORT)).into())?;
    socket.join_multicast_v4(&LSD_GROUP_V4, &Ipv4Addr::UNSPECIFIED)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    UdpSocket::from_std(socket.into())
}

async fn run(socket: UdpSocket, port: u16, cookie: String, mut rx: mpsc::UnboundedReceiver<Command>) {
    let group = SocketAddr::V4(SocketAddrV4::new(LSD_GROUP_V4, LSD_PORT));
    // Where each info-hash's peers go, and the port it is announced with.
    let mut torrents: HashMap<InfoHash, (Found, u16)> = HashMap::new();
    let mut timer = tokio::time::interval(ANNOUNCE_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    let mut buf = vec![0u8; MAX_RECEIVE_LEN + 1];
    let mut window = tokio::time::Instant::now();
    let mut received = 0u32;
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Command::Add { info_hash, port: own, found }) => {
                    let own = own.unwrap_or(port);
                    torrents.insert(info_hash, (found, own));
                    announce(&socket, group, own, &cookie, &[info_hash]).await;
                }
                Some(Command::Remove(info_hash)) => {
                    torrents.remove(&info_hash);
                }
                None => return,
            },
            _ = timer.tick() => {
                let mut by_port: HashMap<u16, Vec<InfoHash>> = HashMap::new();
                for (hash, (_, p)) in &torrents {
                    by_port.entry(*p).or_default().push(*hash);
                }
                for (p, hashes) in by_port {
                    announce(&socket, group, p, &cookie, &hashes).await;
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = got else { continue };
                let now = tokio::time::Instant::now();
                if now.duration_since(window) >= Duration::from_secs(1) {
                    window = now;
                    received = 0;
                }
                received += 1;
                if received > RECEIVE_PER_SECOND {
                    continue;
                }
                let Ok(msg) = LsdAnnounce::parse(&buf[..len]) else {
                    tracing::debug!(%from, "ignoring a datagram that is not an LSD announce");
                    continue;
                };
                if msg.cookie.as_deref() == Some(cookie.as_str()) {
                    continue;
                }
                let peer = SocketAddr::new(from.ip(), msg.port);
                for hash in &msg.info_hashes {
                    match torrents.get(hash) {
                        Some((Found::Torrent(control), _)) => {
                            tracing::debug!(%peer, info_hash = %hash, "local peer discovered");
                            let _ = control.send(Control::Peers { addrs: vec![peer], manual: false });
                        }
                        Some((Found::Service(tx), _)) => {
                            let _ = tx.try_send(peer);
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

async fn announce(socket: &UdpSocket, group: SocketAddr, port: u16, cookie: &str, hashes: &[InfoHash]) {
    for packet in LsdAnnounce::batch(shoal_proto::LsdGroup::V4, port, Some(cookie), hashes) {
        match packet.encode() {
            Ok(bytes) => {
                if let Err(e) = socket.send_to(&bytes, group).await {
                    tracing::debug!("cannot send an LSD announce: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot encode an LSD announce: {e}"),
        }
    }
}
