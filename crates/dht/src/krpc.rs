//! The KRPC message codec of BEP 5 ("KRPC Protocol", "DHT Queries"), with the BEP 32 `nodes6`
//! and `want` fields, the BEP 42 top-level `ip` field, the BEP 43 `ro` flag and BEP 51's
//! `sample_infohashes` (its reply's `samples`, `num` and `interval`).
//!
//! A KRPC message is one bencoded dictionary: `t` (transaction id), `y` (`q`, `r` or `e`), and
//! then `q` + `a` for a query, `r` for a response or `e` for an error. [`decode`] is strict and
//! total: every packet either becomes a [`Message`] or a [`KrpcError`] that names what is wrong.
//! What it accepts, on purpose:
//! * a transaction id of any length from 0 to [`MAX_TID_LEN`] bytes (libtorrent uses 2, the
//!   `mainline` crate 4, others 1); it is kept verbatim so a reply can echo it;
//! * an unknown query method, as [`Query::Unknown`], without looking at its arguments, so the
//!   node can answer it with error 204;
//! * packets up to [`MAX_PACKET_LEN`]; at most [`MAX_NODES`] entries of `nodes`/`nodes6` and
//!   [`MAX_VALUES`] peers are kept (the rest are ignored, not an error);
//! * unknown keys anywhere are ignored.
//!
//! [`Message::encode`] writes canonical bencode (sorted keys), which both this decoder and
//! libtorrent accept.

use std::net::SocketAddr;

use shoal_bencode::{Dict, Value};
use shoal_proto::InfoHash;

use crate::id::{
    COMPACT_NODE_V4, COMPACT_NODE_V6, NodeId, NodeInfo, read_compact_addr, read_compact_node, write_compact_addr,
    write_compact_node,
};

/// Largest packet [`decode`] looks at (the largest UDP payload).
pub const MAX_PACKET_LEN: usize = 64 * 1024;
/// Longest transaction id accepted.
pub const MAX_TID_LEN: usize = 16;
/// Longest announce token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most entries kept from one `nodes` or `nodes6` field.
pub const MAX_NODES: usize = 64;
/// Most peers kept from one `values` list.
pub const MAX_VALUES: usize = 256;

/// KRPC error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Transaction id, 0 to [`MAX_TID_LEN`] bytes, echoed verbatim in the reply.
    pub tid: Vec<u8>,
    /// Query, response or error.
    pub kind: Kind,
    /// The `v` client version (BEP 20 two-letter code and two version bytes), if sent.
    pub version: Option<Vec<u8>>,
    /// BEP 42 `ip`: in a reply, the address the replying node saw the query come from.
    pub ip: Option<SocketAddr>,
    /// BEP 43 `ro`: the sender is read-only and must not be put in routing tables.
    pub read_only: bool,
}

/// What a message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`.
    Error {
        /// Error code (201 to 204 in BEP 5).
        code: i64,
        /// Human-readable message (decoded lossily as UTF-8).
        message: String,
    },
}

/// A query and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping {
        /// Querying node's id.
        id: NodeId,
    },
    /// `find_node`.
    FindNode {
        /// Querying node's id.
        id: NodeId,
        /// The id sought.
        target: NodeId,
        /// BEP 32 `want`, if sent.
        want: Option<Want>,
    },
    /// `get_peers`.
    GetPeers {
        /// Querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// BEP 32 `want`, if sent.
        want: Option<Want>,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// Querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's TCP port (0 if absent, which is allowed only with `implied_port`).
        port: u16,
        /// Use the packet's source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` reply.
        token: Vec<u8>,
    },
    /// `sample_infohashes` (BEP 51).
    SampleInfohashes {
        /// Querying node's id.
        id: NodeId,
        /// The id whose closest nodes the reply lists (it does not change the sample).
        target: NodeId,
        /// BEP 32 `want`, if sent.
        want: Option<Want>,
    },
    /// Any other method; its arguments are not examined.
    Unknown {
        /// The method name (lossy UTF-8).
        method: String,
    },
}

impl Query {
    /// The querying node's id (`None` for unknown methods).
    pub fn sender_id(&self) -> Option<NodeId> {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::SampleInfohashes { id, .. } => Some(*id),
            Query::Unknown { .. } => None,
        }
    }

    /// The method name as sent in `q`.
    pub fn method(&self) -> &str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
            Query::SampleInfohashes { .. } => "sample_infohashes",
            Query::Unknown { method } => method,
        }
    }
}

/// BEP 32 `want`: which node families the querier wants in the reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `n4`: IPv4 nodes in `nodes`.
    pub n4: bool,
    /// `n6`: IPv6 nodes in `nodes6`.
    pub n6: bool,
}

/// The return values of a response. Which ones are present depends on the query answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Responding node's id.
    pub id: NodeId,
    /// `nodes`: IPv4 contacts. When encoding, IPv6 entries here are skipped.
    pub nodes: Vec<NodeInfo>,
    /// `nodes6` (BEP 32): IPv6 contacts. When encoding, IPv4 entries here are skipped.
    pub nodes6: Vec<NodeInfo>,
    /// `values`: peers for the info-hash (6-byte IPv4 or 18-byte IPv6 each).
    pub values: Vec<SocketAddr>,
    /// `token` for a later `announce_peer`.
    pub token: Option<Vec<u8>>,
    /// BEP 51: info-hashes the responder stores peers for (a sample of them).
    pub samples: Option<Vec<InfoHash>>,
    /// BEP 51: how many info-hashes the responder stores.
    pub num: Option<u64>,
    /// BEP 51: seconds before the sample changes (0 to [`MAX_SAMPLE_INTERVAL`]).
    pub interval: Option<u32>,
}

/// Longest `interval` BEP 51 allows (6 hours); a longer one is read as this.
pub const MAX_SAMPLE_INTERVAL: u32 = 21_600;

impl Response {
    /// A response carrying only the responder's id (the reply to `ping` and `announce_peer`).
    pub fn id_only(id: NodeId) -> Self {
        Response {
            id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
            samples: None,
            num: None,
            interval: None,
        }
    }
}

/// Why a packet is not a valid KRPC message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// The packet is longer than [`MAX_PACKET_LEN`].
    #[error("packet of {len} bytes is longer than {MAX_PACKET_LEN}")]
    TooLarge {
        /// Packet length.
        len: usize,
    },
    /// The packet is not valid bencode.
    #[error("not bencode: {0}")]
    Bencode(#[from] shoal_bencode::DecodeError),
    /// The packet is bencode but not a dictionary.
    #[error("message is {}, not a dictionary", Value::kind_with_article(found))]
    NotADict {
        /// What it is instead.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("missing \"{0}\"")]
    Missing(&'static str),
    /// A key holds a value of the wrong type.
    #[error("\"{key}\" is {}, expected {expected}", Value::kind_with_article(found))]
    WrongType {
        /// The key.
        key: &'static str,
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// `y` is not `q`, `r` or `e`.
    #[error("\"y\" is \"{0}\", expected \"q\", \"r\" or \"e\"")]
    BadMessageType(String),
    /// The transaction id is longer than [`MAX_TID_LEN`].
    #[error("transaction id of {len} bytes is longer than {MAX_TID_LEN}")]
    TidTooLong {
        /// Its length.
        len: usize,
    },
    /// A node id or info-hash that is not 20 bytes.
    #[error("\"{key}\" is {len} bytes, expected 20")]
    BadId {
        /// The key (`id`, `target` or `info_hash`).
        key: &'static str,
        /// Its length.
        len: usize,
    },
    /// A `nodes` or `nodes6` string whose length is not a multiple of the entry size.
    #[error("\"{key}\" is {len} bytes, not a multiple of {entry}")]
    BadNodes {
        /// `nodes` or `nodes6`.
        key: &'static str,
        /// Its length.
        len: usize,
        /// 26 or 38.
        entry: usize,
    },
    /// An entry of `values` that is not a 6- or 18-byte string.
    #[error("peer in \"values\" is {len} bytes, expected 6 or 18")]
    BadPeer {
        /// Its length.
        len: usize,
    },
    /// A top-level `ip` that is not 6 or 18 bytes.
    #[error("\"ip\" is {len} bytes, expected 6 or 18")]
    BadIp {
        /// Its length.
        len: usize,
    },
    /// An announce port outside 0..=65535.
    #[error("port {0} out of range")]
    BadPort(i64),
    /// A token longer than [`MAX_TOKEN_LEN`].
    #[error("token of {len} bytes is longer than {MAX_TOKEN_LEN}")]
    TokenTooLong {
        /// Its length.
        len: usize,
    },
    /// A `samples` string whose length is not a multiple of 20.
    #[error("\"samples\" is {0} bytes, not a multiple of 20")]
    BadSamples(usize),
    /// `e` is not a list of an integer code and a string.
    #[error("\"e\" is not [code, message]")]
    BadError,
}

/// Decodes one KRPC packet.
pub fn decode(bytes: &[u8]) -> Result<Message, KrpcError> {
    if bytes.len() > MAX_PACKET_LEN {
        return Err(KrpcError::TooLarge { len: bytes.len() });
    }
    let value = shoal_bencode::decode(bytes)?;
    let d = value.as_dict().ok_or(KrpcError::NotADict { found: value.kind() })?;
    let tid = req_bytes(d, "t")?;
    if tid.len() > MAX_TID_LEN {
        return Err(KrpcError::TidTooLong { len: tid.len() });
    }
    let kind = match req_bytes(d, "y")? {
        b"q" => Kind::Query(decode_query(d)?),
        b"r" => Kind::Response(decode_response(req_dict(d, "r")?)?),
        b"e" => decode_error(d)?,
        other => return Err(KrpcError::BadMessageType(String::from_utf8_lossy(other).into_owned())),
    };
    let ip = match opt_bytes(d, "ip")? {
        Some(b) => Some(read_compact_addr(b).ok_or(KrpcError::BadIp { len: b.len() })?),
        None => None,
    };
    Ok(Message {
        tid: tid.to_vec(),
        kind,
        version: opt_bytes(d, "v")?.map(<[u8]>::to_vec),
        ip,
        read_only: opt_int(d, "ro")? == Some(1),
    })
}

/// The transaction id of a packet that claims to be a query (`y = q`, usable `t`), even when
/// the rest of it is malformed: the node answers such packets with error 203. `None` for
/// anything else, which the node drops silently.
pub fn query_tid(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() > MAX_PACKET_LEN {
        return None;
    }
    let value = shoal_bencode::decode(bytes).ok()?;
    let tid = value.get(b"t")?.as_bytes()?;
    (value.get(b"y")?.as_bytes()? == b"q" && tid.len() <= MAX_TID_LEN).then(|| tid.to_vec())
}

fn decode_query(d: &Dict<'_>) -> Result<Query, KrpcError> {
    let method = req_bytes(d, "q")?;
    if !matches!(method, b"ping" | b"find_node" | b"get_peers" | b"announce_peer" | b"sample_infohashes") {
        return Ok(Query::Unknown { method: String::from_utf8_lossy(method).into_owned() });
    }
    let a = req_dict(d, "a")?;
    let id = req_id(a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode { id, target: req_id(a, "target")?, want: want(a)? },
        b"get_peers" => Query::GetPeers { id, info_hash: InfoHash(req_id(a, "info_hash")?.0), want: want(a)? },
        b"sample_infohashes" => Query::SampleInfohashes { id, target: req_id(a, "target")?, want: want(a)? },
        _ => {
            let implied_port = opt_int(a, "implied_port")?.is_some_and(|v| v != 0);
            let port = match opt_int(a, "port")? {
                Some(p) => u16::try_from(p).map_err(|_| KrpcError::BadPort(p))?,
                None if implied_port => 0,
                None => return Err(KrpcError::Missing("port")),
            };
            let token = req_bytes(a, "token")?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(KrpcError::TokenTooLong { len: token.len() });
            }
            let info_hash = InfoHash(req_id(a, "info_hash")?.0);
            Query::AnnouncePeer { id, info_hash, port, implied_port, token: token.to_vec() }
        }
    })
}

fn want(a: &Dict<'_>) -> Result<Option<Want>, KrpcError> {
    let Some(v) = a.get(b"want".as_slice()) else { return Ok(None) };
    let items = v.as_list().ok_or_else(|| wrong("want", "a list", v))?;
    let mut want = Want::default();
    // BEP 32: unknown strings (and, leniently, non-strings) are ignored.
    for item in items {
        match item.as_bytes() {
            Some(b"n4") => want.n4 = true,
            Some(b"n6") => want.n6 = true,
            _ => {}
        }
    }
    Ok(Some(want))
}

fn decode_response(r: &Dict<'_>) -> Result<Response, KrpcError> {
    let id = req_id(r, "id")?;
    let nodes = compact_nodes(r, "nodes", COMPACT_NODE_V4)?;
    let nodes6 = compact_nodes(r, "nodes6", COMPACT_NODE_V6)?;
    let mut values = Vec::new();
    if let Some(v) = r.get(b"values".as_slice()) {
        let items = v.as_list().ok_or_else(|| wrong("values", "a list", v))?;
        for item in items.iter().take(MAX_VALUES) {
            let b = item.as_bytes().ok_or_else(|| wrong("values", "a list of byte strings", item))?;
            values.push(read_compact_addr(b).ok_or(KrpcError::BadPeer { len: b.len() })?);
        }
    }
    let token = opt_bytes(r, "token")?;
    if let Some(t) = token.filter(|t| t.len() > MAX_TOKEN_LEN) {
        return Err(KrpcError::TokenTooLong { len: t.len() });
    }
    let samples = match opt_bytes(r, "samples")? {
        Some(b) if b.len() % 20 != 0 => return Err(KrpcError::BadSamples(b.len())),
        Some(b) => {
            Some(b.chunks_exact(20).map(|c| InfoHash(c.try_into().expect("chunks of 20"))).collect::<Vec<InfoHash>>())
        }
        None => None,
    };
    // Out-of-range counts are read leniently: a negative one as absent, a long interval as 6 h.
    let num = opt_int(r, "num")?.and_then(|n| u64::try_from(n).ok());
    let interval = opt_int(r, "interval")?
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| n.min(u64::from(MAX_SAMPLE_INTERVAL)) as u32);
    Ok(Response { id, nodes, nodes6, values, token: token.map(<[u8]>::to_vec), samples, num, interval })
}

fn compact_nodes(r: &Dict<'_>, key: &'static str, entry: usize) -> Result<Vec<NodeInfo>, KrpcError> {
    let Some(b) = opt_bytes(r, key)? else { return Ok(Vec::new()) };
    if b.len() % entry != 0 {
        return Err(KrpcError::BadNodes { key, len: b.len(), entry });
    }
    // Every chunk has exactly the length of a compact node, so reading cannot fail.
    Ok(b.chunks_exact(entry).take(MAX_NODES).filter_map(read_compact_node).collect())
}

fn decode_error(d: &Dict<'_>) -> Result<Kind, KrpcError> {
    let e = d.get(b"e".as_slice()).ok_or(KrpcError::Missing("e"))?;
    match e.as_list() {
        Some([Value::Int(code), Value::Bytes(msg), ..]) => {
            Ok(Kind::Error { code: *code, message: String::from_utf8_lossy(msg).into_owned() })
        }
        _ => Err(KrpcError::BadError),
    }
}

fn wrong(key: &'static str, expected: &'static str, found: &Value<'_>) -> KrpcError {
    KrpcError::WrongType { key, expected, found: found.kind() }
}

fn opt_bytes<'a>(d: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>, KrpcError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(v) => Err(wrong(key, "a byte string", v)),
    }
}

fn req_bytes<'a>(d: &Dict<'a>, key: &'static str) -> Result<&'a [u8], KrpcError> {
    opt_bytes(d, key)?.ok_or(KrpcError::Missing(key))
}

fn opt_int(d: &Dict<'_>, key: &'static str) -> Result<Option<i64>, KrpcError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Int(n)) => Ok(Some(*n)),
        Some(v) => Err(wrong(key, "an integer", v)),
    }
}

fn req_dict<'v, 'a>(d: &'v Dict<'a>, key: &'static str) -> Result<&'v Dict<'a>, KrpcError> {
    match d.get(key.as_bytes()) {
        None => Err(KrpcError::Missing(key)),
        Some(Value::Dict(inner)) => Ok(inner),
        Some(v) => Err(wrong(key, "a dictionary", v)),
    }
}

fn req_id(d: &Dict<'_>, key: &'static str) -> Result<NodeId, KrpcError> {
    let b = req_bytes(d, key)?;
    Ok(NodeId(b.try_into().map_err(|_| KrpcError::BadId { key, len: b.len() })?))
}

impl Message {
    /// A query with no version, `ip` or `ro`.
    pub fn query(tid: Vec<u8>, query: Query) -> Self {
        Message { tid, kind: Kind::Query(query), version: None, ip: None, read_only: false }
    }

    /// A response with no version, `ip` or `ro`.
    pub fn response(tid: Vec<u8>, response: Response) -> Self {
        Message { tid, kind: Kind::Response(response), version: None, ip: None, read_only: false }
    }

    /// An error reply with no version, `ip` or `ro`.
    pub fn error(tid: Vec<u8>, code: i64, message: impl Into<String>) -> Self {
        Message { tid, kind: Kind::Error { code, message: message.into() }, version: None, ip: None, read_only: false }
    }

    /// The canonical bencoding of this message (keys sorted; empty `nodes`, `nodes6` and
    /// `values` are left out).
    pub fn encode(&self) -> Vec<u8> {
        // Byte strings that do not exist in `self` as such are built first, then borrowed.
        let mut compact = Compact::default();
        if let Some(ip) = &self.ip {
            write_compact_addr(&mut compact.ip, ip);
        }
        if let Kind::Response(r) = &self.kind {
            r.nodes.iter().filter(|n| n.addr.is_ipv4()).for_each(|n| write_compact_node(&mut compact.nodes, n));
            r.nodes6.iter().filter(|n| n.addr.is_ipv6()).for_each(|n| write_compact_node(&mut compact.nodes6, n));
            compact.values = r.values.iter().map(compact_addr).collect();
            compact.samples = r.samples.iter().flatten().flat_map(|h| h.0).collect();
        }

        let mut top = Dict::new();
        top.insert(b"t", Value::Bytes(&self.tid));
        if let Some(v) = &self.version {
            top.insert(b"v", Value::Bytes(v));
        }
        if self.ip.is_some() {
            top.insert(b"ip", Value::Bytes(&compact.ip));
        }
        if self.read_only {
            top.insert(b"ro", Value::Int(1));
        }
        match &self.kind {
            Kind::Query(q) => {
                top.insert(b"y", Value::from("q"));
                top.insert(b"q", Value::from(q.method()));
                top.insert(b"a", Value::Dict(query_args(q)));
            }
            Kind::Response(r) => {
                let mut body = Dict::new();
                body.insert(b"id", Value::from(&r.id.0));
                if !compact.nodes.is_empty() {
                    body.insert(b"nodes", Value::Bytes(&compact.nodes));
                }
                if !compact.nodes6.is_empty() {
                    body.insert(b"nodes6", Value::Bytes(&compact.nodes6));
                }
                if !compact.values.is_empty() {
                    body.insert(b"values", Value::List(compact.values.iter().map(|v| Value::Bytes(v)).collect()));
                }
                if let Some(t) = &r.token {
                    body.insert(b"token", Value::Bytes(t));
                }
                if r.samples.is_some() {
                    body.insert(b"samples", Value::Bytes(&compact.samples));
                }
                if let Some(n) = r.num {
                    body.insert(b"num", Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
                }
                if let Some(i) = r.interval {
                    body.insert(b"interval", Value::Int(i64::from(i)));
                }
                top.insert(b"y", Value::from("r"));
                top.insert(b"r", Value::Dict(body));
            }
            Kind::Error { code, message } => {
                top.insert(b"y", Value::from("e"));
                top.insert(b"e", Value::List(vec![Value::Int(*code), Value::from(message.as_str())]));
            }
        }
        shoal_bencode::encode(&Value::Dict(top))
    }
}

#[derive(Default)]
struct Compact {
    ip: Vec<u8>,
    nodes: Vec<u8>,
    nodes6: Vec<u8>,
    values: Vec<Vec<u8>>,
    samples: Vec<u8>,
}

fn compact_addr(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    write_compact_addr(&mut out, addr);
    out
}

fn query_args(q: &Query) -> Dict<'_> {
    let mut a = Dict::new();
    let want_list = |w: &Option<Want>| {
        w.map(|w| {
            let mut l = Vec::new();
            if w.n4 {
                l.push(Value::from("n4"));
            }
            if w.n6 {
                l.push(Value::from("n6"));
            }
            Value::List(l)
        })
    };
    match q {
        Query::Ping { id } => {
            a.insert(b"id".as_slice(), Value::from(&id.0));
        }
        Query::FindNode { id, target, want } => {
            a.insert(b"id", Value::from(&id.0));
            a.insert(b"target", Value::from(&target.0));
            if let Some(w) = want_list(want) {
                a.insert(b"want", w);
            }
        }
        Query::GetPeers { id, info_hash, want } => {
            a.insert(b"id", Value::from(&id.0));
            a.insert(b"info_hash", Value::from(&info_hash.0));
            if let Some(w) = want_list(want) {
                a.insert(b"want", w);
            }
        }
        Query::AnnouncePeer { id, info_hash, port, implied_port, token } => {
            a.insert(b"id", Value::from(&id.0));
            a.insert(b"info_hash", Value::from(&info_hash.0));
            a.insert(b"port", Value::Int(i64::from(*port)));
            a.insert(b"token", Value::Bytes(token));
            if *implied_port {
                a.insert(b"implied_port", Value::Int(1));
            }
        }
        Query::SampleInfohashes { id, target, want } => {
            a.insert(b"id", Value::from(&id.0));
            a.insert(b"target", Value::from(&target.0));
            if let Some(w) = want_list(want) {
                a.insert(b"want", w);
            }
        }
        Query::Unknown { .. } => {}
    }
    a
}

#[cfg(test)]
mod tests;
