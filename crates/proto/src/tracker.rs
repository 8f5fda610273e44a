//! HTTP tracker messages (BEP 3) with compact peer lists (BEP 23, and the `peers6` form of
//! BEP 7): the announce request's query string and the bencoded response, both from the
//! client side (build a URL, parse the reply) and the server side (parse a query, encode a
//! reply) used by Shoal's built-in tracker.
//!
//! Query strings use form encoding: every byte other than RFC 3986 "unreserved" characters
//! is written as `%XX`, and when parsing `+` means a space. Binary fields (`info_hash`,
//! `peer_id`) are decoded to raw bytes, never through UTF-8.
//!
//! Response parsing is lenient where real trackers differ and the meaning is still clear: a
//! missing or negative `interval` means [`DEFAULT_INTERVAL`], malformed peer entries are
//! skipped, a trailing partial compact entry is ignored, and bytes after the dictionary are
//! ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use shoal_bencode::{DecodeError, Dict, Value, decode_prefix, encode};

use crate::types::{InfoHash, PeerId};

/// Re-announce interval assumed when a tracker does not send a usable one (30 minutes).
pub const DEFAULT_INTERVAL: u32 = 1800;

/// Bytes written as they are in query strings: RFC 3986 "unreserved".
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a tracker exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// The tracker answered with a `failure reason`.
    #[error("tracker failure: {0}")]
    Failure(String),
    /// The reply is not bencode.
    #[error("tracker reply is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The reply is bencode but not a dictionary.
    #[error("tracker reply is {}, not a dictionary", shoal_bencode::Value::kind_with_article(.0))]
    NotADict(&'static str),
    /// An announce query without a required parameter.
    #[error("announce request is missing `{0}`")]
    MissingParam(&'static str),
    /// An announce query parameter with a malformed value.
    #[error("announce request has a malformed `{name}`: {reason}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The `event` of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// First announce of a download.
    Started,
    /// The download just finished.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl Event {
    /// The query-string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }
}

/// An HTTP announce (the query string of the tracker's announce URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The announcing client.
    pub peer_id: PeerId,
    /// The client's listen port.
    pub port: u16,
    /// Bytes uploaded since the `started` announce.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` announce.
    pub downloaded: u64,
    /// Bytes still missing; 0 for a seed.
    pub left: u64,
    /// `None` for a regular re-announce.
    pub event: Option<Event>,
    /// Ask for the compact peer list (BEP 23). Shoal always sets it.
    pub compact: bool,
    /// How many peers the client wants.
    pub numwant: Option<u32>,
    /// Random value that lets the tracker recognise the client across IP changes; sent as
    /// 8 hex digits.
    pub key: Option<u32>,
    /// The client's address, when it wants to tell the tracker.
    pub ip: Option<String>,
}

impl AnnounceRequest {
    /// The query string, without a leading `?`.
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}",
            percent_encode(&self.info_hash.0, UNRESERVED),
            percent_encode(&self.peer_id.0, UNRESERVED),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
        );
        if self.compact {
            q.push_str("&compact=1");
        }
        if let Some(event) = self.event {
            q.push_str("&event=");
            q.push_str(event.as_str());
        }
        if let Some(n) = self.numwant {
            q.push_str(&format!("&numwant={n}"));
        }
        if let Some(key) = self.key {
            q.push_str(&format!("&key={key:08X}"));
        }
        if let Some(ip) = &self.ip {
            q.push_str("&ip=");
            q.extend(percent_encode(ip.as_bytes(), UNRESERVED));
        }
        q
    }

    /// The full announce URL: `base` with the query appended after `?`, or after `&` when
    /// `base` already has a query (private trackers put passkeys there).
    pub fn announce_url(&self, base: &str) -> String {
        let sep = match base.find('?') {
            None => "?",
            Some(_) if base.ends_with('?') || base.ends_with('&') => "",
            Some(_) => "&",
        };
        format!("{base}{sep}{}", self.to_query())
    }

    /// Parses an announce query (tracker side). `info_hash`, `peer_id` (20 raw bytes each)
    /// and `port` (1..=65535) are required; `uploaded`, `downloaded` and `left` default to 0
    /// but must be numbers when present. Optional hints (`numwant`, `key`, `event`) that
    /// cannot be understood are treated as absent. For repeated parameters the first wins.
    pub fn from_query(query: &str) -> Result<Self, TrackerError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((form_decode(k), form_decode(v)));
        }
        let get = |name: &str| params.iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.as_slice());
        let id20 = |name: &'static str| -> Result<[u8; 20], TrackerError> {
            let raw = get(name).ok_or(TrackerError::MissingParam(name))?;
            <[u8; 20]>::try_from(raw).map_err(|_| TrackerError::BadParam { name, reason: "expected 20 bytes" })
        };
        let number = |name: &'static str| -> Result<Option<u64>, TrackerError> {
            get(name)
                .map(|raw| {
                    std::str::from_utf8(raw)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or(TrackerError::BadParam { name, reason: "expected a non-negative integer" })
                })
                .transpose()
        };
        let text = |name: &str| get(name).map(|raw| String::from_utf8_lossy(raw).into_owned());

        let info_hash = InfoHash(id20("info_hash")?);
        let peer_id = PeerId(id20("peer_id")?);
        let port = number("port")?.ok_or(TrackerError::MissingParam("port"))?;
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or(TrackerError::BadParam { name: "port", reason: "expected 1 to 65535" })?;
        let event = match text("event").as_deref() {
            Some("started") => Some(Event::Started),
            Some("completed") => Some(Event::Completed),
            Some("stopped") => Some(Event::Stopped),
            _ => None,
        };
        Ok(Self {
            info_hash,
            peer_id,
            port,
            uploaded: number("uploaded")?.unwrap_or(0),
            downloaded: number("downloaded")?.unwrap_or(0),
            left: number("left")?.unwrap_or(0),
            event,
            compact: text("compact").as_deref() == Some("1"),
            numwant: text("numwant").and_then(|s| s.parse().ok()),
            key: text("key").and_then(|s| u32::from_str_radix(&s, 16).ok()),
            ip: text("ip").filter(|s| !s.is_empty()),
        })
    }
}

/// Form decoding of one query component: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Vec<u8> {
    let spaced = s.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

/// A successful announce reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds to wait before the next regular announce.
    pub interval: u32,
    /// Seconds the client must wait at least before announcing again.
    pub min_interval: Option<u32>,
    /// Number of seeds (`complete`), if the tracker says.
    pub complete: Option<u32>,
    /// Number of leechers (`incomplete`), if the tracker says.
    pub incomplete: Option<u32>,
    /// Peers from `peers` (compact 6-byte entries or a list of `ip`/`port` dictionaries) and
    /// `peers6` (compact 18-byte entries). Entries with port 0 are dropped.
    pub peers: Vec<SocketAddr>,
    /// `warning message`: the announce worked but something needs attention.
    pub warning: Option<String>,
}

impl AnnounceResponse {
    /// Parses a tracker reply; a `failure reason` becomes [`TrackerError::Failure`].
    pub fn parse(bytes: &[u8]) -> Result<Self, TrackerError> {
        let (value, _) = decode_prefix(bytes)?;
        let dict = value.as_dict().ok_or(TrackerError::NotADict(value.kind()))?;
        if let Some(reason) = text(dict, "failure reason") {
            return Err(TrackerError::Failure(reason));
        }
        let count = |key: &str| {
            let n = dict.get(key.as_bytes()).and_then(Value::as_int)?;
            (n >= 0).then(|| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let mut peers = Vec::new();
        match dict.get(&b"peers"[..]) {
            Some(Value::Bytes(compact)) => {
                peers.extend(compact.chunks_exact(6).map(compact_v4));
            }
            Some(Value::List(entries)) => peers.extend(entries.iter().filter_map(dict_peer)),
            _ => {}
        }
        if let Some(compact) = dict.get(&b"peers6"[..]).and_then(Value::as_bytes) {
            peers.extend(compact.chunks_exact(18).map(compact_v6));
        }
        peers.retain(|p| p.port() != 0);
        Ok(Self {
            interval: count("interval").unwrap_or(DEFAULT_INTERVAL),
            min_interval: count("min interval"),
            complete: count("complete"),
            incomplete: count("incomplete"),
            peers,
            warning: text(dict, "warning message"),
        })
    }

    /// Encodes the reply with compact peer lists: IPv4 peers (and IPv4-mapped IPv6) in
    /// `peers`, other IPv6 peers in `peers6`.
    pub fn encode_compact(&self) -> Vec<u8> {
        let mut v4 = Vec::with_capacity(self.peers.len() * 6);
        let mut v6 = Vec::new();
        for peer in &self.peers {
            let ip = match peer.ip() {
                IpAddr::V6(ip) => ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4),
                ip => ip,
            };
            let port = peer.port().to_be_bytes();
            match ip {
                IpAddr::V4(ip) => {
                    v4.extend_from_slice(&ip.octets());
                    v4.extend_from_slice(&port);
                }
                IpAddr::V6(ip) => {
                    v6.extend_from_slice(&ip.octets());
                    v6.extend_from_slice(&port);
                }
            }
        }
        let mut dict = Dict::new();
        dict.insert(&b"interval"[..], Value::from(self.interval));
        if let Some(n) = self.min_interval {
            dict.insert(&b"min interval"[..], Value::from(n));
        }
        if let Some(n) = self.complete {
            dict.insert(&b"complete"[..], Value::from(n));
        }
        if let Some(n) = self.incomplete {
            dict.insert(&b"incomplete"[..], Value::from(n));
        }
        dict.insert(&b"peers"[..], Value::Bytes(&v4));
        if !v6.is_empty() {
            dict.insert(&b"peers6"[..], Value::Bytes(&v6));
        }
        if let Some(w) = &self.warning {
            dict.insert(&b"warning message"[..], Value::from(w.as_str()));
        }
        encode(&Value::Dict(dict))
    }
}

/// A tracker error reply: `d14:failure reason<len>:<reason>e`.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    encode(&Value::dict([("failure reason", Value::from(reason))]))
}

fn text(dict: &Dict<'_>, key: &str) -> Option<String> {
    let raw = dict.get(key.as_bytes()).and_then(Value::as_bytes)?;
    Some(String::from_utf8_lossy(raw).into_owned())
}

fn compact_v4(c: &[u8]) -> SocketAddr {
    let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
    SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]])))
}

fn compact_v6(c: &[u8]) -> SocketAddr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&c[..16]);
    let port = u16::from_be_bytes([c[16], c[17]]);
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))
}

/// A `{ip, port}` peer from the original (non-compact) list form. Host names are skipped:
/// resolving them would need I/O, and trackers send literal addresses in practice.
fn dict_peer(entry: &Value<'_>) -> Option<SocketAddr> {
    let ip: IpAddr = entry.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(entry.get(b"port")?.as_int()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
