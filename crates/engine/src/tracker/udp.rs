//! The UDP tracker client (BEP 15). One [`UdpTrackers`] belongs to one torrent's announce loop
//! and announces to its `udp://host:port[/path]` trackers, one at a time; the packets come from
//! the pure codec in [`shoal_proto::udp_tracker`].
//!
//! Flow of one announce:
//! 1. resolve the host with `lookup_host` and take its first address;
//! 2. use the loop's socket of that address family (bound once to the unspecified address and
//!    kept, so the tracker keeps seeing the source address its connection id was made for);
//! 3. connect, unless a connection id received less than [`CONNECTION_ID_LIFETIME`] ago is
//!    cached for that tracker address;
//! 4. announce with the connection id.
//!
//! Each request is sent again when no reply came within 15 * 2^n seconds (n = 0, 1, 2: see
//! [`Schedule::BEP15`]), with the same transaction id so a late reply to an earlier copy still
//! counts. BEP 15 goes on up to n = 8, more than an hour per tracker; a tier is walked one
//! tracker at a time, so that would let one dead tracker stall the whole tier. Here the whole
//! announce to one tracker, connect included, also ends at a deadline of 15 + 30 + 60 = 105 s.
//!
//! A reply is a datagram from the tracker's address that carries the request's transaction id;
//! anything else is a stray and ignored (at most [`MAX_STRAYS`] per request). A reply that does
//! not decode ends the announce with an error, and an error reply (action 3) ends it with the
//! tracker's message. When a request sent with a *cached* connection id gets no reply to its
//! first copy, or an error reply, the id is dropped and the announce starts over once with a
//! fresh connect: the tracker may have restarted and forgotten the secret behind its ids.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use shoal_proto::UdpTrackerError;
use shoal_proto::tracker::{AnnounceRequest, AnnounceResponse};
use shoal_proto::udp_tracker::{AddressFamily, ConnectRequest, ConnectionId, TransactionId, UdpAnnounceRequest};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How long a connection id may be used after it was received (BEP 15: one minute).
const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// Most datagrams ignored while waiting for one reply; a flood ends the announce early.
const MAX_STRAYS: usize = 64;
/// Receive buffer. An announce reply holds 20 bytes and 6 (IPv4) or 18 (IPv6) per peer, so
/// this fits 450 IPv6 peers; Shoal asks for 80. Longer datagrams are cut, and the codec drops
/// a cut entry at the end.
const RECV_BUF: usize = 8192;

/// When to send a request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Wait for a reply to the first copy of a request; each further copy waits twice as long.
    pub(crate) first_timeout: Duration,
    /// Copies of one request: the last one is sent after `first_timeout * (2^(sends-1) - 1)`.
    pub(crate) sends: u32,
}

impl Schedule {
    /// 15, 30 and 60 seconds: BEP 15's timeouts for n = 0, 1, 2.
    pub(crate) const BEP15: Schedule = Schedule { first_timeout: Duration::from_secs(15), sends: 3 };

    /// The wait after copy `n` (from 0).
    fn timeout(&self, n: u32) -> Duration {
        self.first_timeout.saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
    }

    /// Time for all copies of one request: the longest one announce to one tracker may take.
    pub(crate) fn total(&self) -> Duration {
        (0..self.sends).map(|n| self.timeout(n)).fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// Why an announce to a UDP tracker failed. Shown after `tracker udp://...: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UdpAnnounceError {
    /// The URL is not `udp://host:port[/path]` with a port from 1 to 65535.
    #[error("not a udp://HOST:PORT URL")]
    BadUrl,
    /// The host name could not be resolved (or took longer than the deadline).
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host of the URL.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0} has no address")]
    NoAddress(String),
    /// The socket could not be bound, or sending or receiving failed.
    #[error("UDP socket: {0}")]
    Io(#[from] io::Error),
    /// No reply came within the schedule.
    #[error("no reply to {sends} requests in {secs:.1} s")]
    Timeout {
        /// Datagrams sent (connects and announces).
        sends: u32,
        /// Seconds spent.
        secs: f64,
    },
    /// The tracker answered with an error (action 3); its message.
    #[error("{0}")]
    Failure(String),
    /// A reply with the request's transaction id that does not decode.
    #[error("bad reply: {0}")]
    BadReply(UdpTrackerError),
    /// More than [`MAX_STRAYS`] datagrams that were not the reply came in while waiting.
    #[error("{MAX_STRAYS} stray datagrams while waiting for a reply")]
    Flooded,
}

/// The UDP tracker state of one torrent's announce loop.
#[derive(Debug)]
pub(crate) struct UdpTrackers {
    /// Retransmission schedule; [`Schedule::BEP15`] outside tests.
    schedule: Schedule,
    /// Socket for IPv4 trackers, bound on first use to `0.0.0.0:0`.
    v4: Option<UdpSocket>,
    /// Socket for IPv6 trackers, bound on first use to `[::]:0`.
    v6: Option<UdpSocket>,
    /// Connection ids by tracker address, with when they were received. Entries older than
    /// [`CONNECTION_ID_LIFETIME`] are never used and are dropped at the next announce.
    connections: HashMap<SocketAddr, (ConnectionId, Instant)>,
    /// Receive buffer, [`RECV_BUF`] bytes.
    buf: Vec<u8>,
}

/// The outcome of one request/reply exchange that did not produce a reply.
enum Unanswered {
    /// Every copy timed out.
    Timeout,
    /// Something else went wrong; ends the announce.
    Fatal(UdpAnnounceError),
}

impl From<UdpAnnounceError> for Unanswered {
    fn from(e: UdpAnnounceError) -> Self {
        Unanswered::Fatal(e)
    }
}

impl UdpTrackers {
    /// No sockets yet; they are bound by the first announce of their family.
    pub(crate) fn new(schedule: Schedule) -> Self {
        Self { schedule, v4: None, v6: None, connections: HashMap::new(), buf: vec![0; RECV_BUF] }
    }

    /// Announces `request` to the tracker at `url` (`udp://host:port[/path]`; the path and any
    /// query are ignored, as BEP 41 is not supported). Takes at most [`Schedule::total`], the
    /// name lookup included.
    pub(crate) async fn announce(
        &mut self,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, UdpAnnounceError> {
        let started = Instant::now();
        let deadline = started + self.schedule.total();
        let (host, port) = parse_url(url).ok_or(UdpAnnounceError::BadUrl)?;
        let tracker = resolve(host, port, deadline).await?;
        self.connections.retain(|_, (_, received)| received.elapsed() < CONNECTION_ID_LIFETIME);
        let family = AddressFamily::of(&tracker);
        let Self { schedule, v4, v6, connections, buf } = self;
        let slot = if tracker.is_ipv4() { v4 } else { v6 };
        let socket = match slot {
            Some(socket) => socket,
            None => {
                let any = if tracker.is_ipv4() {
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                };
                slot.insert(UdpSocket::bind(any).await?)
            }
        };
        // Late replies to earlier announces would only count as strays: drop them.
        for _ in 0..MAX_STRAYS {
            if socket.try_recv_from(buf).is_err() {
                break;
            }
        }
        let mut ex = Exchange { socket, buf, tracker, schedule: *schedule, deadline, sends: 0 };
        let timeout = |sends: u32| UdpAnnounceError::Timeout { sends, secs: started.elapsed().as_secs_f64() };

        // At most two rounds: the second only after a cached connection id went unanswered.
        let mut cached = connections.get(&tracker).map(|(id, _)| *id);
        for _round in 0..2 {
            let (connection_id, reused) = match cached.take() {
                Some(id) => (id, true),
                None => {
                    let connect = ConnectRequest { transaction_id: TransactionId(rand::random()) };
                    let reply = match ex.send(&connect.encode(), connect.transaction_id, u32::MAX).await {
                        Ok(reply) => connect.decode_response(reply).map_err(reply_error)?,
                        Err(Unanswered::Timeout) => return Err(timeout(ex.sends)),
                        Err(Unanswered::Fatal(e)) => return Err(e),
                    };
                    connections.insert(tracker, (reply.connection_id, Instant::now()));
                    (reply.connection_id, false)
                }
            };
            let announce = UdpAnnounceRequest::from_http(request, connection_id, TransactionId(rand::random()));
            // A cached id gets one copy: if the tracker forgot it, a fresh connect is better
            // than the rest of the schedule.
            let copies = if reused { 1 } else { u32::MAX };
            let result = match ex.send(&announce.encode(), announce.transaction_id, copies).await {
                Ok(reply) => announce.decode_response(reply, family).map_err(reply_error),
                Err(Unanswered::Timeout) => Err(timeout(ex.sends)),
                Err(Unanswered::Fatal(e)) => return Err(e),
            };
            match result {
                Ok(reply) => {
                    return Ok(AnnounceResponse {
                        interval: reply.interval,
                        min_interval: None,
                        complete: Some(reply.seeders),
                        incomplete: Some(reply.leechers),
                        peers: reply.peers,
                        warning: None,
                    });
                }
                Err(UdpAnnounceError::Timeout { .. } | UdpAnnounceError::Failure(_)) if reused => {
                    tracing::debug!(%tracker, "cached connection id unanswered; connecting again");
                    connections.remove(&tracker);
                }
                Err(e) => return Err(e),
            }
        }
        Err(timeout(ex.sends))
    }
}

/// The tracker's error message, or why its reply is unusable.
fn reply_error(e: UdpTrackerError) -> UdpAnnounceError {
    match e {
        UdpTrackerError::Failure(message) => UdpAnnounceError::Failure(message),
        other => UdpAnnounceError::BadReply(other),
    }
}

/// One announce's sending and receiving, under one deadline.
struct Exchange<'a> {
    socket: &'a UdpSocket,
    buf: &'a mut Vec<u8>,
    tracker: SocketAddr,
    schedule: Schedule,
    /// End of the whole announce to this tracker.
    deadline: Instant,
    /// Datagrams sent so far, for the error message.
    sends: u32,
}

impl Exchange<'_> {
    /// Sends `packet` up to `copies` times (and at most as often as the schedule says, and not
    /// after the deadline) until a reply from the tracker with `tid` comes; returns it.
    async fn send(&mut self, packet: &[u8], tid: TransactionId, copies: u32) -> Result<&[u8], Unanswered> {
        let mut strays = 0;
        for n in 0..self.schedule.sends.min(copies) {
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            self.socket.send_to(packet, self.tracker).await.map_err(UdpAnnounceError::Io)?;
            self.sends += 1;
            let wait_until = (now + self.schedule.timeout(n)).min(self.deadline);
            // Each pass either returns, ends the wait, or counts a stray: at most MAX_STRAYS + 1.
            loop {
                let (len, from) = match tokio::time::timeout_at(wait_until, self.socket.recv_from(self.buf)).await {
                    Err(_elapsed) => break,
                    Ok(received) => received.map_err(UdpAnnounceError::Io)?,
                };
                let reply = self.buf.get(..len).unwrap_or_default();
                if from == self.tracker && reply.get(4..8) == Some(&tid.0.to_be_bytes()[..]) {
                    return Ok(self.buf.get(..len).unwrap_or_default());
                }
                strays += 1;
                tracing::trace!(%from, len, "ignoring a stray datagram");
                if strays > MAX_STRAYS {
                    return Err(UdpAnnounceError::Flooded.into());
                }
            }
        }
        Err(Unanswered::Timeout)
    }
}

/// The host and port of `udp://host:port[/path][?query]`; an IPv6 host is in brackets.
fn parse_url(url: &str) -> Option<(&str, u16)> {
    let rest = url.strip_prefix("udp://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => authority.rsplit_once(':').filter(|(host, _)| !host.contains(':'))?,
    };
    let port = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty() && !host.contains('@')).then_some((host, port))
}

/// The first address of `host`, looked up before `deadline`.
async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<SocketAddr, UdpAnnounceError> {
    let resolve_error = |source| UdpAnnounceError::Resolve { host: host.to_owned(), source };
    let mut addrs = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| resolve_error(io::Error::new(io::ErrorKind::TimedOut, "the lookup timed out")))?
        .map_err(resolve_error)?;
    addrs.next().ok_or_else(|| UdpAnnounceError::NoAddress(host.to_owned()))
}

#[cfg(test)]
mod tests;
