//! The UDP side of the built-in tracker (BEP 15), over the same swarms as the HTTP side.
//!
//! One task reads datagrams and answers each at once; it keeps no per-client state. A
//! connection id is a keyed hash of a secret chosen at start, the client's address and port,
//! and the current [`EPOCH`]; an id is accepted during its epoch and the next
//! [`EPOCHS_VALID`] - 1, so for 2 to 2.5 minutes (BEP 15: "until two minutes after it has been
//! sent"), and it stops working when the client's address changes or the tracker restarts.
//!
//! Replies: a connect gets a connection id; an announce or scrape with a valid connection id
//! gets its reply, or an error reply (action 3) when it is malformed or the tracker is full.
//! Everything else is dropped without an answer: packets too short to hold a transaction id,
//! connects without the protocol id, and requests with an unknown or expired connection id (the
//! sender has not shown that it receives at its source address, so answering could reflect
//! traffic at a spoofed victim). No reply is longer than a connect request, except to a sender
//! that proved its address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use shoal_proto::tracker::AnnounceRequest;
use shoal_proto::udp_tracker::{
    AddressFamily, ConnectResponse, ConnectionId, ErrorResponse, ScrapeResponse, TransactionId, UdpAnnounceRequest,
    UdpAnnounceResponse, UdpRequest, UdpResponse,
};
use tokio::net::UdpSocket;

use super::{Shared, peer_addr};

/// Length of one connection id epoch.
const EPOCH: Duration = Duration::from_secs(30);
/// Epochs a connection id is accepted in: the one it was made in and the next ones.
const EPOCHS_VALID: u64 = 5;
/// Receive buffer: the largest valid request is a scrape of 74 info-hashes (1,496 bytes).
/// Longer datagrams are cut, and fail to decode or lose their BEP 41 options.
const RECV_BUF: usize = 2048;
/// Receive errors in a row after which the responder gives up (a closed socket).
const MAX_ERRORS: u32 = 100;

/// Makes and checks connection ids without remembering them.
#[derive(Debug)]
pub(super) struct ConnectionIds {
    /// Random, chosen at start; without it ids cannot be forged.
    secret: [u8; 32],
    /// Epoch 0 starts here.
    start: Instant,
}

impl ConnectionIds {
    /// A fresh random secret, epochs counted from `start`.
    pub(super) fn new(start: Instant) -> Self {
        Self { secret: rand::random(), start }
    }

    /// The id for a client at `addr` asking at `now`.
    pub(super) fn issue(&self, addr: SocketAddr, now: Instant) -> ConnectionId {
        self.id(addr, self.epoch(now))
    }

    /// Whether `id` was issued to `addr` recently enough to be used at `now`.
    pub(super) fn check(&self, id: ConnectionId, addr: SocketAddr, now: Instant) -> bool {
        let epoch = self.epoch(now);
        (0..EPOCHS_VALID).filter_map(|back| epoch.checked_sub(back)).any(|e| self.id(addr, e) == id)
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / EPOCH.as_secs()
    }

    fn id(&self, addr: SocketAddr, epoch: u64) -> ConnectionId {
        let mut hash = Sha1::new();
        hash.update(self.secret);
        hash.update(epoch.to_be_bytes());
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => hash.update(ip.octets()),
            IpAddr::V6(ip) => hash.update(ip.octets()),
        }
        hash.update(addr.port().to_be_bytes());
        let digest = hash.finalize();
        ConnectionId(digest.as_slice().first_chunk::<8>().map_or(0, |b| u64::from_be_bytes(*b)))
    }
}

/// Answers datagrams on `socket` until the task is aborted (or the socket keeps failing).
pub(super) async fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let ids = ConnectionIds::new(Instant::now());
    let mut buf = vec![0u8; RECV_BUF];
    let mut errors = 0;
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                errors += 1;
                if errors >= MAX_ERRORS {
                    tracing::error!("UDP tracker stopped: {e}");
                    return;
                }
                tracing::debug!("UDP tracker receive error: {e}");
                continue;
            }
        };
        errors = 0;
        let packet = buf.get(..len).unwrap_or_default();
        if let Some(reply) = handle(&shared, &ids, packet, from, Instant::now())
            && let Err(e) = socket.send_to(&reply, from).await
        {
            tracing::debug!(%from, "UDP tracker cannot reply: {e}");
        }
    }
}

/// The reply to `packet` from `from`, if it deserves one (see the module doc).
pub(super) fn handle(
    shared: &Shared,
    ids: &ConnectionIds,
    packet: &[u8],
    from: SocketAddr,
    now: Instant,
) -> Option<Vec<u8>> {
    let family = AddressFamily::of(&from);
    let request = match UdpRequest::decode(packet) {
        Ok(request) => request,
        Err(e) => {
            let id = ConnectionId(u64::from_be_bytes(*packet.first_chunk::<8>()?));
            let tid = TransactionId(u32::from_be_bytes(*packet.get(12..16)?.first_chunk::<4>()?));
            return ids.check(id, from, now).then(|| error(tid, &e.to_string()));
        }
    };
    let reply = match request {
        UdpRequest::Connect(c) => UdpResponse::Connect(ConnectResponse {
            transaction_id: c.transaction_id,
            connection_id: ids.issue(from, now),
        }),
        UdpRequest::Announce(a) if ids.check(a.connection_id, from, now) => {
            let request = to_http(&a);
            tracing::debug!(%from, info_hash = %a.info_hash, event = ?a.event, "UDP announce");
            match shared.record(&request, peer_addr(from, &request), Some(family)) {
                Ok(r) => UdpResponse::Announce(UdpAnnounceResponse {
                    transaction_id: a.transaction_id,
                    interval: r.interval,
                    leechers: r.incomplete.unwrap_or(0),
                    seeders: r.complete.unwrap_or(0),
                    peers: r.peers,
                }),
                Err(reason) => return Some(error(a.transaction_id, reason)),
            }
        }
        UdpRequest::Scrape(s) if ids.check(s.connection_id, from, now) => UdpResponse::Scrape(ScrapeResponse {
            transaction_id: s.transaction_id,
            stats: shared.scrape(&s.info_hashes),
        }),
        UdpRequest::Announce(_) | UdpRequest::Scrape(_) => return None,
    };
    Some(reply.encode(family))
}

/// An error reply.
fn error(transaction_id: TransactionId, message: &str) -> Vec<u8> {
    ErrorResponse { transaction_id, message: message.to_owned() }.encode()
}

/// The HTTP form of a UDP announce, which the shared swarms record.
fn to_http(a: &UdpAnnounceRequest) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: a.info_hash,
        peer_id: a.peer_id,
        port: a.port,
        uploaded: a.uploaded,
        downloaded: a.downloaded,
        left: a.left,
        event: a.event,
        compact: true,
        numwant: a.num_want,
        key: Some(a.key),
        ip: a.ip.map(|ip| ip.to_string()),
    }
}

#[cfg(test)]
mod tests;
