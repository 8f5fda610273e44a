//! The UDP tracker protocol, BEP 15: connect, announce, scrape and error packets, for both
//! sides. A client builds requests ([`ConnectRequest`], [`UdpAnnounceRequest`],
//! [`ScrapeRequest`]), encodes them, and hands each reply to the request's
//! `decode_response`, which checks the transaction id and the action before decoding. A
//! tracker decodes any request with [`UdpRequest::decode`] and encodes a [`UdpResponse`].
//!
//! Flow (the engine owns the socket, the timers and the retransmissions of 15 * 2^n s):
//! 1. connect: the client sends a random transaction id and the magic [`PROTOCOL_ID`]; the
//!    tracker replies with a [`ConnectionId`] the client may use for one minute.
//! 2. announce / scrape: sent with that connection id and a fresh transaction id.
//! 3. any request may instead get an error reply (action 3) with a text message, which the
//!    client side returns as [`UdpTrackerError::Failure`].
//!
//! All integers are big-endian. The address family of the UDP packet decides the width of
//! the peer entries in announce replies (6 bytes over IPv4, 18 over IPv6), so decoding and
//! encoding announce replies takes an [`AddressFamily`].
//!
//! Packets may grow in future extensions, so bytes after the fixed part are ignored: BEP 41
//! options after an announce request, and a trailing partial entry in a reply's peer or
//! scrape list. A scrape request, whose length is its only count, must hold a whole number
//! of info-hashes, between 1 and [`MAX_SCRAPE_HASHES`]. Announce peers with port 0 are
//! dropped, as for HTTP trackers. BEP 41 URL data is not supported.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::tracker::{AnnounceRequest, Event};
use crate::types::{InfoHash, PeerId};

/// The magic number that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;
/// Most info-hashes in one scrape request ("up to about 74" per BEP 15: what fits in a
/// 1500-byte packet).
pub const MAX_SCRAPE_HASHES: usize = 74;

/// Length of a connect request and of a connect reply.
const CONNECT_LEN: usize = 16;
/// Length of the fixed part of an announce request.
const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Length of an announce reply without peers.
const ANNOUNCE_RESPONSE_LEN: usize = 20;
/// Length of the action and transaction id that open every reply.
const REPLY_HEADER_LEN: usize = 8;

/// Why a UDP tracker packet cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UdpTrackerError {
    /// A packet shorter than the fixed part of its kind.
    #[error("{what} of {len} bytes is too short, expected at least {min}")]
    TooShort {
        /// The kind of packet.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length of its fixed part.
        min: usize,
    },
    /// A connect request without the magic [`PROTOCOL_ID`].
    #[error("connect request has protocol id {0:#x}, expected 0x41727101980")]
    BadProtocolId(u64),
    /// A request whose action is not connect, announce or scrape.
    #[error("request has action {0}, expected 0 (connect), 1 (announce) or 2 (scrape)")]
    BadRequestAction(u32),
    /// A reply whose action is not one of the four BEP 15 defines.
    #[error("reply has unknown action {0}")]
    UnknownAction(u32),
    /// A reply to another request (or a forged one).
    #[error("reply has transaction id {got:#010x}, expected {expected:#010x}")]
    TransactionMismatch {
        /// The id of the request we sent.
        expected: u32,
        /// The id in the reply.
        got: u32,
    },
    /// A reply of another kind than the request.
    #[error("expected {expected} reply, got {got} reply")]
    UnexpectedAction {
        /// The request's action.
        expected: Action,
        /// The reply's action.
        got: Action,
    },
    /// The tracker answered with an error packet (action 3).
    #[error("tracker error: {0}")]
    Failure(String),
    /// A scrape request without info-hashes.
    #[error("scrape request has no info-hash")]
    NoInfoHashes,
    /// A scrape request with more than [`MAX_SCRAPE_HASHES`] info-hashes.
    #[error("scrape request has {0} info-hashes, more than the limit of {MAX_SCRAPE_HASHES}")]
    TooManyInfoHashes(usize),
    /// A scrape request whose body is not a whole number of 20-byte info-hashes.
    #[error("scrape request has {0} bytes of info-hashes, not a multiple of 20")]
    PartialInfoHash(usize),
    /// A scrape reply with fewer entries than the request had info-hashes.
    #[error("scrape reply has {got} entries for {expected} info-hashes")]
    ShortScrape {
        /// Info-hashes in the request.
        expected: usize,
        /// Entries in the reply.
        got: usize,
    },
}

/// A connection id handed out by a tracker in a connect reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// A transaction id chosen by the client (randomly) to match replies with requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u32);

/// The `action` field of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// 0: obtain a connection id.
    Connect,
    /// 1: announce.
    Announce,
    /// 2: scrape.
    Scrape,
    /// 3: error reply.
    Error,
}

impl Action {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Action::Connect => 0,
            Action::Announce => 1,
            Action::Scrape => 2,
            Action::Error => 3,
        }
    }

    /// The action of a wire value, if BEP 15 defines it.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Action::Connect,
            1 => Action::Announce,
            2 => Action::Scrape,
            3 => Action::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Connect => "a connect",
            Action::Announce => "an announce",
            Action::Scrape => "a scrape",
            Action::Error => "an error",
        })
    }
}

/// The address family of the UDP exchange, which sets the format of announce reply peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 6-byte entries: IPv4 address and port.
    V4,
    /// 18-byte entries: IPv6 address and port.
    V6,
}

impl AddressFamily {
    /// The family of a tracker or client address; IPv4-mapped IPv6 addresses (a dual-stack
    /// socket's view of an IPv4 peer) count as IPv4.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr.ip() {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(ip) if ip.to_ipv4_mapped().is_some() => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }

    fn entry_len(self) -> usize {
        match self {
            AddressFamily::V4 => 6,
            AddressFamily::V6 => 18,
        }
    }
}

/// Connect request: `protocol_id`, action 0, transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Chosen by the client.
    pub transaction_id: TransactionId,
}

/// Connect reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    /// The request's transaction id.
    pub transaction_id: TransactionId,
    /// The id to put in announce and scrape requests for the next minute.
    pub connection_id: ConnectionId,
}

/// Announce request (action 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpAnnounceRequest {
    /// From the connect reply.
    pub connection_id: ConnectionId,
    /// Chosen by the client.
    pub transaction_id: TransactionId,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The announcing client.
    pub peer_id: PeerId,
    /// Bytes downloaded since the `started` announce.
    pub downloaded: u64,
    /// Bytes still missing; 0 for a seed.
    pub left: u64,
    /// Bytes uploaded since the `started` announce.
    pub uploaded: u64,
    /// `None` (wire 0) for a regular re-announce; 1 completed, 2 started, 3 stopped.
    /// Unknown values decode as `None`.
    pub event: Option<Event>,
    /// The client's IPv4 address, when it wants to tell (wire 0 means "use the source").
    pub ip: Option<Ipv4Addr>,
    /// Random value that lets the tracker recognise the client across IP changes.
    pub key: u32,
    /// How many peers the client wants; `None` is the default (wire -1). Values above
    /// `i32::MAX` are sent as `i32::MAX`.
    pub num_want: Option<u32>,
    /// The client's listen port.
    pub port: u16,
}

/// Announce reply (action 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpAnnounceResponse {
    /// The request's transaction id.
    pub transaction_id: TransactionId,
    /// Seconds to wait before the next regular announce.
    pub interval: u32,
    /// Peers still downloading.
    pub leechers: u32,
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// Peers of the exchange's [`AddressFamily`]. When encoding, peers of the other family
    /// are skipped (IPv4-mapped IPv6 addresses are sent as IPv4 in an IPv4 reply).
    pub peers: Vec<SocketAddr>,
}

/// Scrape request (action 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// From the connect reply.
    pub connection_id: ConnectionId,
    /// Chosen by the client.
    pub transaction_id: TransactionId,
    /// The torrents, 1 to [`MAX_SCRAPE_HASHES`] of them (the decoder refuses others; the
    /// encoder writes what it is given).
    pub info_hashes: Vec<InfoHash>,
}

/// Swarm counts of one torrent in a scrape reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// Downloads completed so far.
    pub completed: u32,
    /// Peers still downloading.
    pub leechers: u32,
}

/// Scrape reply (action 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// The request's transaction id.
    pub transaction_id: TransactionId,
    /// One entry per requested info-hash, in request order.
    pub stats: Vec<ScrapeStats>,
}

/// Error reply (action 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The failed request's transaction id.
    pub transaction_id: TransactionId,
    /// Human-readable reason (invalid UTF-8 is replaced with U+FFFD).
    pub message: String,
}

/// Any request, as the tracker side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpRequest {
    /// Action 0.
    Connect(ConnectRequest),
    /// Action 1.
    Announce(UdpAnnounceRequest),
    /// Action 2.
    Scrape(ScrapeRequest),
}

/// Any reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpResponse {
    /// Action 0.
    Connect(ConnectResponse),
    /// Action 1.
    Announce(UdpAnnounceResponse),
    /// Action 2.
    Scrape(ScrapeResponse),
    /// Action 3.
    Error(ErrorResponse),
}

impl ConnectRequest {
    /// The 16-byte packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CONNECT_LEN);
        out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
        out.extend_from_slice(&Action::Connect.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        out
    }

    /// Decodes the tracker's reply to this request (client side).
    pub fn decode_response(&self, packet: &[u8]) -> Result<ConnectResponse, UdpTrackerError> {
        match reply_to(packet, self.transaction_id, AddressFamily::V4)? {
            UdpResponse::Connect(r) => Ok(r),
            other => Err(unexpected(Action::Connect, &other)),
        }
    }
}

impl UdpAnnounceRequest {
    /// The UDP form of an HTTP announce: same counters, event, port, key (0 when absent) and
    /// numwant; `ip` only when it is an IPv4 literal, as BEP 15 has no room for anything else.
    pub fn from_http(req: &AnnounceRequest, connection_id: ConnectionId, transaction_id: TransactionId) -> Self {
        Self {
            connection_id,
            transaction_id,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: req.ip.as_deref().and_then(|ip| ip.parse().ok()),
            key: req.key.unwrap_or(0),
            num_want: req.numwant,
            port: req.port,
        }
    }

    /// The 98-byte packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_REQUEST_LEN);
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
        out.extend_from_slice(&Action::Announce.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&self.peer_id.0);
        out.extend_from_slice(&self.downloaded.to_be_bytes());
        out.extend_from_slice(&self.left.to_be_bytes());
        out.extend_from_slice(&self.uploaded.to_be_bytes());
        out.extend_from_slice(&event_code(self.event).to_be_bytes());
        out.extend_from_slice(&self.ip.map_or(0, u32::from).to_be_bytes());
        out.extend_from_slice(&self.key.to_be_bytes());
        let num_want = self.num_want.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
        out.extend_from_slice(&num_want.to_be_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        out
    }

    /// Decodes the tracker's reply to this request (client side); `family` is that of the
    /// socket the exchange uses.
    pub fn decode_response(
        &self,
        packet: &[u8],
        family: AddressFamily,
    ) -> Result<UdpAnnounceResponse, UdpTrackerError> {
        match reply_to(packet, self.transaction_id, family)? {
            UdpResponse::Announce(r) => Ok(r),
            other => Err(unexpected(Action::Announce, &other)),
        }
    }

    fn decode_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        packet: &[u8],
    ) -> Result<Self, UdpTrackerError> {
        let mut r = Reader::new(packet, "announce request", ANNOUNCE_REQUEST_LEN)?;
        r.skip(16)?;
        Ok(Self {
            connection_id,
            transaction_id,
            info_hash: InfoHash(r.array()?),
            peer_id: PeerId(r.array()?),
            downloaded: r.u64()?,
            left: r.u64()?,
            uploaded: r.u64()?,
            event: event_from_code(r.u32()?),
            ip: Some(Ipv4Addr::from(r.u32()?)).filter(|ip| !ip.is_unspecified()),
            key: r.u32()?,
            num_want: u32::try_from(i32::from_be_bytes(r.array()?)).ok(),
            port: u16::from_be_bytes(r.array()?),
        })
    }
}

impl UdpAnnounceResponse {
    /// The reply packet, with peer entries in `family`'s format.
    pub fn encode(&self, family: AddressFamily) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_RESPONSE_LEN + self.peers.len() * family.entry_len());
        out.extend_from_slice(&Action::Announce.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        out.extend_from_slice(&self.interval.to_be_bytes());
        out.extend_from_slice(&self.leechers.to_be_bytes());
        out.extend_from_slice(&self.seeders.to_be_bytes());
        for peer in &self.peers {
            match (family, peer.ip()) {
                (AddressFamily::V4, IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
                (AddressFamily::V4, IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                    Some(ip) => out.extend_from_slice(&ip.octets()),
                    None => continue,
                },
                (AddressFamily::V6, IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
                (AddressFamily::V6, IpAddr::V4(_)) => continue,
            }
            out.extend_from_slice(&peer.port().to_be_bytes());
        }
        out
    }

    fn decode_body(
        transaction_id: TransactionId,
        packet: &[u8],
        family: AddressFamily,
    ) -> Result<Self, UdpTrackerError> {
        let mut r = Reader::new(packet, "announce reply", ANNOUNCE_RESPONSE_LEN)?;
        r.skip(REPLY_HEADER_LEN)?;
        let (interval, leechers, seeders) = (r.u32()?, r.u32()?, r.u32()?);
        let peers = r
            .rest()
            .chunks_exact(family.entry_len())
            .filter_map(|entry| {
                let (ip, port) = entry.split_last_chunk::<2>()?;
                let port = u16::from_be_bytes(*port);
                let addr = match family {
                    AddressFamily::V4 => SocketAddr::V4(SocketAddrV4::new(<[u8; 4]>::try_from(ip).ok()?.into(), port)),
                    AddressFamily::V6 => {
                        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?);
                        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
                    }
                };
                Some(addr).filter(|a| a.port() != 0)
            })
            .collect();
        Ok(Self { transaction_id, interval, leechers, seeders, peers })
    }
}

impl ScrapeRequest {
    /// The packet: 16 bytes and 20 per info-hash.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 20 * self.info_hashes.len());
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
        out.extend_from_slice(&Action::Scrape.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        for hash in &self.info_hashes {
            out.extend_from_slice(&hash.0);
        }
        out
    }

    /// Decodes the tracker's reply to this request (client side). The reply must have an
    /// entry for every requested info-hash; extra entries are ignored.
    pub fn decode_response(&self, packet: &[u8]) -> Result<ScrapeResponse, UdpTrackerError> {
        let mut reply = match reply_to(packet, self.transaction_id, AddressFamily::V4)? {
            UdpResponse::Scrape(r) => r,
            other => return Err(unexpected(Action::Scrape, &other)),
        };
        let expected = self.info_hashes.len();
        if reply.stats.len() < expected {
            return Err(UdpTrackerError::ShortScrape { expected, got: reply.stats.len() });
        }
        reply.stats.truncate(expected);
        Ok(reply)
    }

    fn decode_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        packet: &[u8],
    ) -> Result<Self, UdpTrackerError> {
        let mut r = Reader::new(packet, "scrape request", CONNECT_LEN)?;
        r.skip(CONNECT_LEN)?;
        let body = r.rest();
        if body.is_empty() {
            return Err(UdpTrackerError::NoInfoHashes);
        }
        if body.len() % 20 != 0 {
            return Err(UdpTrackerError::PartialInfoHash(body.len()));
        }
        if body.len() / 20 > MAX_SCRAPE_HASHES {
            return Err(UdpTrackerError::TooManyInfoHashes(body.len() / 20));
        }
        let info_hashes = body.chunks_exact(20).filter_map(|h| <[u8; 20]>::try_from(h).ok()).map(InfoHash).collect();
        Ok(Self { connection_id, transaction_id, info_hashes })
    }
}

impl ScrapeResponse {
    /// The reply packet: 8 bytes and 12 per torrent.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPLY_HEADER_LEN + 12 * self.stats.len());
        out.extend_from_slice(&Action::Scrape.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        for s in &self.stats {
            out.extend_from_slice(&s.seeders.to_be_bytes());
            out.extend_from_slice(&s.completed.to_be_bytes());
            out.extend_from_slice(&s.leechers.to_be_bytes());
        }
        out
    }
}

impl ErrorResponse {
    /// The reply packet: 8 bytes and the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPLY_HEADER_LEN + self.message.len());
        out.extend_from_slice(&Action::Error.code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        out.extend_from_slice(self.message.as_bytes());
        out
    }
}

impl UdpRequest {
    /// Decodes a request (tracker side). A connect request must carry [`PROTOCOL_ID`];
    /// whether a connection id is valid is for the tracker to check.
    pub fn decode(packet: &[u8]) -> Result<Self, UdpTrackerError> {
        let mut r = Reader::new(packet, "request", CONNECT_LEN)?;
        let (first, action, transaction_id) = (r.u64()?, r.u32()?, TransactionId(r.u32()?));
        match Action::from_code(action) {
            Some(Action::Connect) if first == PROTOCOL_ID => Ok(UdpRequest::Connect(ConnectRequest { transaction_id })),
            Some(Action::Connect) => Err(UdpTrackerError::BadProtocolId(first)),
            Some(Action::Announce) => {
                UdpAnnounceRequest::decode_body(ConnectionId(first), transaction_id, packet).map(UdpRequest::Announce)
            }
            Some(Action::Scrape) => {
                ScrapeRequest::decode_body(ConnectionId(first), transaction_id, packet).map(UdpRequest::Scrape)
            }
            Some(Action::Error) | None => Err(UdpTrackerError::BadRequestAction(action)),
        }
    }

    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            UdpRequest::Connect(r) => r.encode(),
            UdpRequest::Announce(r) => r.encode(),
            UdpRequest::Scrape(r) => r.encode(),
        }
    }

    /// The request's transaction id, to put in the reply.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            UdpRequest::Connect(r) => r.transaction_id,
            UdpRequest::Announce(r) => r.transaction_id,
            UdpRequest::Scrape(r) => r.transaction_id,
        }
    }
}

impl UdpResponse {
    /// Decodes a reply of any kind without matching it to a request; `family` is that of
    /// the socket it arrived on. Clients use the requests' `decode_response` instead.
    pub fn decode(packet: &[u8], family: AddressFamily) -> Result<Self, UdpTrackerError> {
        let mut r = Reader::new(packet, "reply", REPLY_HEADER_LEN)?;
        let (action, transaction_id) = (r.u32()?, TransactionId(r.u32()?));
        Ok(match Action::from_code(action).ok_or(UdpTrackerError::UnknownAction(action))? {
            Action::Connect => {
                let mut r = Reader::new(packet, "connect reply", CONNECT_LEN)?;
                r.skip(REPLY_HEADER_LEN)?;
                UdpResponse::Connect(ConnectResponse { transaction_id, connection_id: ConnectionId(r.u64()?) })
            }
            Action::Announce => {
                UdpResponse::Announce(UdpAnnounceResponse::decode_body(transaction_id, packet, family)?)
            }
            Action::Scrape => {
                let stats = r
                    .rest()
                    .chunks_exact(12)
                    .map(|c| {
                        let mut r = Reader { buf: c, what: "scrape entry", len: c.len(), min: 12 };
                        Ok(ScrapeStats { seeders: r.u32()?, completed: r.u32()?, leechers: r.u32()? })
                    })
                    .collect::<Result<_, UdpTrackerError>>()?;
                UdpResponse::Scrape(ScrapeResponse { transaction_id, stats })
            }
            Action::Error => UdpResponse::Error(ErrorResponse {
                transaction_id,
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            }),
        })
    }

    /// Encodes the reply; `family` is that of the socket it is sent on.
    pub fn encode(&self, family: AddressFamily) -> Vec<u8> {
        match self {
            UdpResponse::Connect(r) => {
                let mut out = Vec::with_capacity(CONNECT_LEN);
                out.extend_from_slice(&Action::Connect.code().to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                out.extend_from_slice(&r.connection_id.0.to_be_bytes());
                out
            }
            UdpResponse::Announce(r) => r.encode(family),
            UdpResponse::Scrape(r) => r.encode(),
            UdpResponse::Error(r) => r.encode(),
        }
    }

    /// The reply's action.
    pub fn action(&self) -> Action {
        match self {
            UdpResponse::Connect(_) => Action::Connect,
            UdpResponse::Announce(_) => Action::Announce,
            UdpResponse::Scrape(_) => Action::Scrape,
            UdpResponse::Error(_) => Action::Error,
        }
    }

    /// The transaction id the reply answers.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            UdpResponse::Connect(r) => r.transaction_id,
            UdpResponse::Announce(r) => r.transaction_id,
            UdpResponse::Scrape(r) => r.transaction_id,
            UdpResponse::Error(r) => r.transaction_id,
        }
    }
}

/// The reply to the request with `transaction_id`: checks the id before anything else and
/// turns an error reply into [`UdpTrackerError::Failure`].
fn reply_to(
    packet: &[u8],
    transaction_id: TransactionId,
    family: AddressFamily,
) -> Result<UdpResponse, UdpTrackerError> {
    let mut r = Reader::new(packet, "reply", REPLY_HEADER_LEN)?;
    r.skip(4)?;
    let got = r.u32()?;
    if got != transaction_id.0 {
        return Err(UdpTrackerError::TransactionMismatch { expected: transaction_id.0, got });
    }
    match UdpResponse::decode(packet, family)? {
        UdpResponse::Error(e) => Err(UdpTrackerError::Failure(e.message)),
        reply => Ok(reply),
    }
}

fn unexpected(expected: Action, reply: &UdpResponse) -> UdpTrackerError {
    UdpTrackerError::UnexpectedAction { expected, got: reply.action() }
}

/// BEP 15 event numbers: 0 none, 1 completed, 2 started, 3 stopped.
fn event_code(event: Option<Event>) -> u32 {
    match event {
        None => 0,
        Some(Event::Completed) => 1,
        Some(Event::Started) => 2,
        Some(Event::Stopped) => 3,
    }
}

/// The inverse of [`event_code`]; unknown numbers (some clients send 4 for "paused") are
/// treated as a regular announce.
fn event_from_code(code: u32) -> Option<Event> {
    match code {
        1 => Some(Event::Completed),
        2 => Some(Event::Started),
        3 => Some(Event::Stopped),
        _ => None,
    }
}

/// Big-endian reads over a packet whose length was checked against its fixed part, so
/// reads within that part cannot fail; past it they report the packet as too short.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
    len: usize,
    min: usize,
}

impl<'a> Reader<'a> {
    fn new(packet: &'a [u8], what: &'static str, min: usize) -> Result<Self, UdpTrackerError> {
        let reader = Reader { buf: packet, what, len: packet.len(), min };
        if packet.len() < min { Err(reader.too_short()) } else { Ok(reader) }
    }

    fn too_short(&self) -> UdpTrackerError {
        UdpTrackerError::TooShort { what: self.what, len: self.len, min: self.min }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UdpTrackerError> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or_else(|| self.too_short())?;
        self.buf = rest;
        Ok(*head)
    }

    fn skip(&mut self, n: usize) -> Result<(), UdpTrackerError> {
        self.buf = self.buf.get(n..).ok_or_else(|| self.too_short())?;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, UdpTrackerError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, UdpTrackerError> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests;
