//! Connections that reach the node: the accept loops (TCP, TLS, uTP), admission (room for one
//! more connection, checked before anything is read), and the handshakes that hand each
//! connection to its torrent or service; and the process's open-file limit, which bounds them.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_proto::InfoHash;
use tokio::net::{TcpListener, TcpStream};

use super::{Inner, ServiceConnection};
use crate::conn::{PeerStream, Wire};
use crate::peer;
use crate::torrent::Control;

/// Descriptors kept for everything besides peer connections: files of active torrents, the
/// listener, DHT and RPC sockets, the state database.
const OTHER_DESCRIPTORS: u64 = 512;

/// Raises this process's soft limit on open files to its hard limit (many systems start
/// programs at 1,024, too few for hundreds of peers), once, and warns when `max_connections`
/// still does not fit in it: connections beyond the limit then fail to open or are refused.
pub(super) fn check_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!("cannot raise the open-file limit: {e}");
            }
        }
    });
    if let Some(limit) = getrlimit(Resource::Nofile).current {
        let fits = limit.saturating_sub(OTHER_DESCRIPTORS);
        if max_connections as u64 > fits {
            tracing::warn!(
                "max-connections is {max_connections} but the open-file limit is {limit} (ulimit -n): \
                 about {fits} connections fit; raise the limit or lower max-connections"
            );
        }
    }
}

/// Incoming connections that may be in their handshake at once. A handshake takes one round
/// trip; many more than this at once is a flood, not a swarm.
pub(crate) const MAX_HANDSHAKING: usize = 64;

/// How often a refusal is logged at most (the count goes on in [`Session::refused_connections`]).
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether an incoming connection may be kept: room is checked before anything is read, so a
/// connection that cannot be kept costs a file descriptor (or a uTP slot) for no longer than
/// this, whatever the number of peers dialling. Counts and logs (at most every
/// [`REFUSAL_LOG_EVERY`]) a refusal.
fn admit(inner: &Inner, addr: SocketAddr, last_log: &mut Option<std::time::Instant>) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let (open, max) = (inner.connections.0.load(Relaxed), inner.connections.1.load(Relaxed));
    let handshaking = inner.handshaking.load(Relaxed);
    if open + handshaking >= max || handshaking >= MAX_HANDSHAKING {
        let refused = inner.refused.fetch_add(1, Relaxed) + 1;
        if last_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            *last_log = Some(std::time::Instant::now());
            tracing::warn!(
                %addr,
                "refusing incoming connections: {open} of {max} connections open (max-connections) and \
                 {handshaking} in their handshake (at most {MAX_HANDSHAKING}); {refused} refused so far"
            );
        }
        return false;
    }
    inner.handshaking.fetch_add(1, Relaxed);
    true
}

pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, tls: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (EMFILE) lands here: wait for some to close.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !admit(&inner, addr, &mut last_log) {
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let result = if tls {
                incoming_tls(stream, addr, &inner).await
            } else {
                incoming(Wire::Tcp(stream), addr, &inner).await
            };
            inner.handshaking.fetch_sub(1, Relaxed);
            if let Err(e) = result {
                tracing::debug!(%addr, "incoming connection dropped: {e}");
            }
        });
    }
}

/// Binds the uTP socket (BEP 29) to the listening address's UDP port, as libtorrent does, so
/// peers reach both transports at one address; when that UDP port is taken, any free one
/// (uTP then works outgoing only, and the log says so).
pub(super) async fn bind_utp(listen: SocketAddr) -> Option<shoal_utp::UtpSocket> {
    match shoal_utp::UtpSocket::bind(listen).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(
                "uTP: cannot listen on UDP port {} ({e}); dialling uTP from another port only",
                listen.port()
            );
            shoal_utp::UtpSocket::bind(SocketAddr::new(listen.ip(), 0))
                .await
                .map_err(|e| tracing::warn!("uTP is off: cannot open a UDP socket: {e}"))
                .ok()
        }
    }
}

/// Takes the uTP connections peers open, with the same admission rules as TCP's.
pub(super) async fn utp_accept_loop(socket: shoal_utp::UtpSocket, inner: std::sync::Weak<Inner>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut last_log: Option<std::time::Instant> = None;
    while let Ok((stream, addr)) = socket.accept().await {
        let Some(inner) = inner.upgrade() else { return };
        if !admit(&inner, addr, &mut last_log) {
            continue;
        }
        tokio::spawn(async move {
            let result = incoming(Wire::Utp(Box::new(stream)), addr, &inner).await;
            inner.handshaking.fetch_sub(1, Relaxed);
            if let Err(e) = result {
                tracing::debug!(%addr, "incoming uTP connection dropped: {e}");
            }
        });
    }
}

async fn incoming(mut stream: Wire, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use crate::mse::{self, Encryption};
    if let Wire::Tcp(tcp) = &stream {
        tcp.set_nodelay(true)?;
    }
    let policy = inner.config.encryption;
    let mut first = [0u8; 20];
    tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)??;
    if !mse::is_plain_handshake(&first) {
        if policy == Encryption::Off {
            inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(peer::HandshakeError::Refused("an encrypted handshake, and encryption is off"));
        }
        return incoming_mse(stream, &first, addr, inner).await;
    }
    // A plain handshake for a service (search, live channels) is always taken: those are
    // Shoal's own swarms, not torrents.
    let theirs = match peer::read_handshake_after(&mut stream, &first).await {
        Err(e @ peer::HandshakeError::Wire(_)) => {
            inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e);
        }
        other => other?,
    };
    let is_torrent = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&theirs.info_hash);
    if policy == Encryption::Require && is_torrent {
        tracing::warn!(%addr, "refused a plaintext connection: --encryption require takes encrypted (MSE/PE) peers only");
        return Err(peer::HandshakeError::Refused("a plaintext connection, and encryption is required"));
    }
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&theirs.info_hash).cloned();
    let Some(inbox) = inbox else {
        let service = inner.services.lock().unwrap_or_else(|e| e.into_inner()).get(&theirs.info_hash).cloned();
        let Some(service) = service else {
            return Err(peer::HandshakeError::WrongTorrent);
        };
        if theirs.peer_id == inner.peer_id {
            return Err(peer::HandshakeError::SelfConnection);
        }
        let Wire::Tcp(mut stream) = stream else {
            return Err(peer::HandshakeError::Refused("Shoal's services take TCP connections only"));
        };
        let permit = service.try_reserve().map_err(|_| peer::HandshakeError::Refused("the service is busy"))?;
        peer::write_handshake(&mut stream, theirs.info_hash, inner.peer_id, inner.dht.is_some()).await?;
        permit.send(ServiceConnection { stream, addr, handshake: theirs });
        return Ok(());
    };
    if inbox.ssl.is_some() {
        // Not a byte of an SSL torrent goes over a plain connection (libtorrent's rule too).
        return Err(peer::HandshakeError::Refused("a plain connection asked for an SSL torrent"));
    }
    if theirs.peer_id == inner.peer_id {
        return Err(peer::HandshakeError::SelfConnection);
    }
    peer::write_handshake(&mut stream, theirs.info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let stream = stream.into_peer_stream();
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// An incoming MSE handshake (`first`: its first bytes): the torrent is found by its `req2`
/// hash among the session's plain torrents; then the BitTorrent handshake inside.
async fn incoming_mse(stream: Wire, first: &[u8], addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use crate::mse::{self, Encryption};
    let accept = match inner.config.encryption {
        Encryption::Require => mse::RC4,
        _ => mse::PLAINTEXT | mse::RC4,
    };
    // The info-hashes are copied under the lock; their `req2` hashes are computed only for a
    // handshake that got as far as naming one, and outside the lock.
    let known: Vec<InfoHash> = inner
        .torrents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, inbox)| inbox.ssl.is_none())
        .map(|(ih, _)| *ih)
        .collect();
    let find = |req2: &[u8; 20]| known.iter().find(|ih| mse::req2(ih) == *req2).copied();
    let accepted = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, mse::respond(stream, first, find, accept))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)?
        .map_err(|e| {
            match e {
                mse::MseError::NoCommonMethod { .. } => tracing::warn!(%addr, "refused an encrypted connection: {e}"),
                mse::MseError::Bad(_) => {
                    inner.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {}
            }
            peer::HandshakeError::Encryption(e.to_string())
        })?;
    let info_hash = accepted.info_hash;
    let mut stream = PeerStream::Mse(Box::new(accepted.stream));
    let theirs = peer::read_handshake(&mut stream).await?;
    if theirs.info_hash != info_hash {
        return Err(peer::HandshakeError::WrongTorrent);
    }
    if theirs.peer_id == inner.peer_id {
        return Err(peer::HandshakeError::SelfConnection);
    }
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&info_hash).cloned();
    let Some(inbox) = inbox else { return Err(peer::HandshakeError::WrongTorrent) };
    peer::write_handshake(&mut stream, info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}

/// A connection on the SSL listener: the TLS ClientHello's SNI names the torrent (its hex
/// info-hash, of which the first 40 characters count, as libtorrent reads it); the TLS
/// handshake uses that torrent's configuration, which admits only certificates from its
/// authority; then the BitTorrent handshake runs inside TLS and must name the same torrent.
async fn incoming_tls(stream: TcpStream, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    // One deadline for the whole exchange, so a slow peer holds a handshake slot no longer
    // than a plain one would.
    tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, incoming_tls_steps(stream, addr, inner))
        .await
        .map_err(|_| peer::HandshakeError::Timeout)?
}

async fn incoming_tls_steps(stream: TcpStream, addr: SocketAddr, inner: &Inner) -> Result<(), peer::HandshakeError> {
    use peer::HandshakeError;
    stream.set_nodelay(true)?;
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, acceptor)
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Tls)?;
    let sni = start.client_hello().server_name().unwrap_or_default().to_string();
    let info_hash = sni
        .get(..40)
        .and_then(InfoHash::from_hex)
        .ok_or(HandshakeError::Refused("a TLS connection without a torrent's info-hash as SNI"))?;
    let inbox = inner.torrents.lock().unwrap_or_else(|e| e.into_inner()).get(&info_hash).cloned();
    let Some(inbox) = inbox else {
        return Err(HandshakeError::WrongTorrent);
    };
    let Some(ssl) = inbox.ssl.clone() else {
        return Err(HandshakeError::Refused("a TLS connection asked for a torrent that is not an SSL torrent"));
    };
    let tls = tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, start.into_stream(ssl.server))
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Tls)?;
    let mut stream = PeerStream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
    let theirs = peer::read_handshake(&mut stream).await?;
    if theirs.info_hash != info_hash {
        return Err(HandshakeError::WrongTorrent);
    }
    if theirs.peer_id == inner.peer_id {
        return Err(HandshakeError::SelfConnection);
    }
    peer::write_handshake(&mut stream, info_hash, inner.peer_id, inner.dht.is_some()).await?;
    let _ = inbox.control.send(Control::Connected { stream, addr, handshake: theirs, outgoing: false });
    Ok(())
}
