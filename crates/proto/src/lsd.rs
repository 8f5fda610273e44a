//! Local Service Discovery, BEP 14: the HTTP-over-UDP-multicast announce that tells peers on
//! the local network which torrents we take part in and which port we listen on.
//!
//! Flow: the engine joins the multicast groups ([`LSD_GROUP_V4`], [`LSD_GROUP_V6`], port
//! [`LSD_PORT`]), sends an [`LsdAnnounce`] for its torrents every 5 minutes (at most one per
//! minute), and parses every datagram it receives with [`LsdAnnounce::parse`]. A received
//! announce carries only a port: the peer's address is the datagram's source address. A
//! random [`LsdAnnounce::cookie`] lets the engine recognise its own announces coming back
//! through multicast loopback.
//!
//! Packet format (BEP 14), with one `Infohash` line per torrent and the cookie optional:
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: 5f3a9c\r\n
//! \r\n
//! \r\n
//! ```
//!
//! Parsing follows HTTP where BEP 14 relies on it and is strict about the rest:
//! * the request line must be `BT-SEARCH * HTTP/1.x`; anything else is not an LSD announce;
//! * header names are case-insensitive, unknown headers are ignored, lines may end in
//!   `\r\n` or `\n`, and the headers end at the first empty line (or the end of the packet);
//! * `Port` (1..=65535) and at least one `Infohash` (40 hex digits, either case) are
//!   required; every `Infohash` header counts, repeated hashes are kept once;
//! * packets above [`MAX_RECEIVE_LEN`] bytes or with more than [`MAX_INFO_HASHES`] hashes are
//!   refused, bounding the work one datagram can cause;
//! * `Host` only tells which group the announce was sent to (a value starting with `[` means
//!   IPv6); a missing or unusual `Host` is tolerated, since the source address is what
//!   matters. A cookie that is empty or holds control characters is treated as absent.
//!   For repeated `Port`, `Host` or `cookie` headers the first wins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::types::InfoHash;

/// UDP port of both LSD multicast groups.
pub const LSD_PORT: u16 = 6771;
/// The IPv4 (organisation-local) multicast group.
pub const LSD_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 (site-local) multicast group.
pub const LSD_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// `Host` header value of announces sent to the IPv4 group.
pub const LSD_HOST_V4: &str = "239.192.152.143:6771";
/// `Host` header value of announces sent to the IPv6 group (RFC 2732 brackets).
pub const LSD_HOST_V6: &str = "[ff15::efc0:988f]:6771";
/// Largest packet [`LsdAnnounce::batch`] builds: BEP 14 asks to stay below 1400 bytes to avoid
/// fragmentation.
pub const MAX_SEND_LEN: usize = 1400;
/// Largest datagram [`LsdAnnounce::parse`] accepts. Other clients should stay below
/// [`MAX_SEND_LEN`]; this leaves room for long extra headers.
pub const MAX_RECEIVE_LEN: usize = 4096;
/// Most `Infohash` headers one announce may carry, when parsing and when encoding.
pub const MAX_INFO_HASHES: usize = 64;

/// The request line every announce starts with.
const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";
/// Bytes of one `Infohash: <40 hex>\r\n` line.
const INFO_HASH_LINE_LEN: usize = "Infohash: ".len() + 40 + 2;

/// Why a datagram is not a usable LSD announce, or an announce cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    /// A datagram longer than [`MAX_RECEIVE_LEN`].
    #[error("LSD packet of {0} bytes exceeds the {MAX_RECEIVE_LEN}-byte limit")]
    TooLong(usize),
    /// The first line is not `BT-SEARCH * HTTP/1.x` (another SSDP message, or garbage).
    #[error("packet starts with \"{0}\", not \"BT-SEARCH * HTTP/1.1\"")]
    NotBtSearch(String),
    /// A header line without a `:`.
    #[error("LSD header line \"{0}\" has no colon")]
    MalformedHeader(String),
    /// No `Port` header.
    #[error("LSD announce has no `Port` header")]
    MissingPort,
    /// A `Port` that is not a number from 1 to 65535.
    #[error("LSD announce has port \"{0}\", expected 1 to 65535")]
    BadPort(String),
    /// No `Infohash` header (or, when encoding, an empty `info_hashes`).
    #[error("LSD announce has no `Infohash` header")]
    NoInfoHashes,
    /// An `Infohash` that is not 40 hex digits.
    #[error("LSD announce has infohash \"{0}\", expected 40 hex digits")]
    BadInfoHash(String),
    /// More than [`MAX_INFO_HASHES`] info-hashes.
    #[error("LSD announce has more than {MAX_INFO_HASHES} info-hashes")]
    TooManyInfoHashes,
    /// (Encoding) a cookie that cannot be a header value: empty, with surrounding spaces or
    /// with control characters such as line breaks.
    #[error("LSD cookie {0:?} is not a valid header value")]
    BadCookie(String),
}

/// Which multicast group an announce is for; it decides the `Host` header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LsdGroup {
    /// `239.192.152.143:6771`.
    #[default]
    V4,
    /// `[ff15::efc0:988f]:6771`.
    V6,
}

impl LsdGroup {
    /// The group's multicast address and port, where announces are sent.
    pub fn addr(self) -> SocketAddr {
        match self {
            LsdGroup::V4 => SocketAddr::new(IpAddr::V4(LSD_GROUP_V4), LSD_PORT),
            LsdGroup::V6 => SocketAddr::new(IpAddr::V6(LSD_GROUP_V6), LSD_PORT),
        }
    }

    /// The `Host` header value.
    pub fn host(self) -> &'static str {
        match self {
            LsdGroup::V4 => LSD_HOST_V4,
            LsdGroup::V6 => LSD_HOST_V6,
        }
    }
}

/// One BEP 14 announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsdAnnounce {
    /// The group it is sent to (from `Host` when parsed).
    pub group: LsdGroup,
    /// The sender's BitTorrent listen port.
    pub port: u16,
    /// The torrents announced, in header order. Parsing never returns duplicates.
    pub info_hashes: Vec<InfoHash>,
    /// Opaque value to recognise our own announces.
    pub cookie: Option<String>,
}

impl LsdAnnounce {
    /// An announce for the IPv4 group, without a cookie.
    pub fn new(port: u16, info_hashes: Vec<InfoHash>) -> Self {
        Self { group: LsdGroup::V4, port, info_hashes, cookie: None }
    }

    /// An announce for the IPv6 group, without a cookie.
    pub fn new_v6(port: u16, info_hashes: Vec<InfoHash>) -> Self {
        Self { group: LsdGroup::V6, ..Self::new(port, info_hashes) }
    }

    /// The same announce with `cookie` set.
    pub fn with_cookie(self, cookie: impl Into<String>) -> Self {
        Self { cookie: Some(cookie.into()), ..self }
    }

    /// Splits `info_hashes` into as few announces as possible, each encoding to at most
    /// [`MAX_SEND_LEN`] bytes (but always at least one hash per announce, even with a cookie
    /// long enough to break the limit).
    pub fn batch(group: LsdGroup, port: u16, cookie: Option<&str>, info_hashes: &[InfoHash]) -> Vec<LsdAnnounce> {
        let empty = LsdAnnounce { group, port, info_hashes: Vec::new(), cookie: cookie.map(str::to_owned) };
        let mut head = Vec::new();
        empty.write(&mut head);
        let per_packet = (MAX_SEND_LEN.saturating_sub(head.len()) / INFO_HASH_LINE_LEN).clamp(1, MAX_INFO_HASHES);
        info_hashes
            .chunks(per_packet)
            .map(|chunk| LsdAnnounce { info_hashes: chunk.to_vec(), ..empty.clone() })
            .collect()
    }

    /// The datagram, in exactly the BEP 14 layout (lower-case hex info-hashes). Refuses
    /// what [`LsdAnnounce::parse`] would refuse: port 0, no info-hash, more than
    /// [`MAX_INFO_HASHES`], or a cookie that is not a clean header value. The size is not
    /// limited here; [`LsdAnnounce::batch`] keeps packets below [`MAX_SEND_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, LsdError> {
        if self.port == 0 {
            return Err(LsdError::BadPort("0".into()));
        }
        if self.info_hashes.is_empty() {
            return Err(LsdError::NoInfoHashes);
        }
        if self.info_hashes.len() > MAX_INFO_HASHES {
            return Err(LsdError::TooManyInfoHashes);
        }
        if let Some(cookie) = &self.cookie
            && !valid_cookie(cookie)
        {
            return Err(LsdError::BadCookie(cookie.clone()));
        }
        let mut out = Vec::with_capacity(96 + self.info_hashes.len() * INFO_HASH_LINE_LEN);
        self.write(&mut out);
        Ok(out)
    }

    fn write(&self, out: &mut Vec<u8>) {
        let mut text = format!("{REQUEST_LINE}\r\nHost: {}\r\nPort: {}\r\n", self.group.host(), self.port);
        for hash in &self.info_hashes {
            text.push_str("Infohash: ");
            text.push_str(&hash.to_hex());
            text.push_str("\r\n");
        }
        if let Some(cookie) = &self.cookie {
            text.push_str("cookie: ");
            text.push_str(cookie);
            text.push_str("\r\n");
        }
        text.push_str("\r\n\r\n");
        out.extend_from_slice(text.as_bytes());
    }

    /// Parses a received datagram; see the module documentation for the rules.
    pub fn parse(packet: &[u8]) -> Result<Self, LsdError> {
        if packet.len() > MAX_RECEIVE_LEN {
            return Err(LsdError::TooLong(packet.len()));
        }
        let mut lines = packet.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let request = lines.next().unwrap_or_default();
        if !is_request_line(request) {
            return Err(LsdError::NotBtSearch(shorten(request)));
        }
        let mut group = None;
        let mut port = None;
        let mut cookie = None;
        let mut info_hashes: Vec<InfoHash> = Vec::new();
        let mut hash_headers = 0usize;
        for line in lines.take_while(|line| !line.is_empty()) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Err(LsdError::MalformedHeader(shorten(line)));
            };
            let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"infohash") {
                hash_headers += 1;
                if hash_headers > MAX_INFO_HASHES {
                    return Err(LsdError::TooManyInfoHashes);
                }
                let hash = parse_info_hash(value).ok_or_else(|| LsdError::BadInfoHash(shorten(value)))?;
                if !info_hashes.contains(&hash) {
                    info_hashes.push(hash);
                }
            } else if name.eq_ignore_ascii_case(b"port") {
                port.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"host") {
                group.get_or_insert(if value.starts_with(b"[") { LsdGroup::V6 } else { LsdGroup::V4 });
            } else if name.eq_ignore_ascii_case(b"cookie") {
                cookie.get_or_insert(value);
            }
        }
        let port = port.ok_or(LsdError::MissingPort)?;
        let port = std::str::from_utf8(port)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| LsdError::BadPort(shorten(port)))?;
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHashes);
        }
        let cookie = cookie.map(|c| String::from_utf8_lossy(c).into_owned()).filter(|c| valid_cookie(c));
        Ok(Self { group: group.unwrap_or_default(), port, info_hashes, cookie })
    }
}

/// `BT-SEARCH * HTTP/1.x`, with any amount of space between the parts.
fn is_request_line(line: &[u8]) -> bool {
    let mut parts = line.split(u8::is_ascii_whitespace).filter(|p| !p.is_empty());
    parts.next() == Some(b"BT-SEARCH")
        && parts.next() == Some(b"*")
        && parts.next().is_some_and(|v| v.starts_with(b"HTTP/1."))
        && parts.next().is_none()
}

fn parse_info_hash(value: &[u8]) -> Option<InfoHash> {
    if value.len() != 40 {
        return None;
    }
    InfoHash::from_hex(std::str::from_utf8(value).ok()?)
}

/// Non-empty, no surrounding ASCII spaces, no control characters (so no line breaks).
fn valid_cookie(cookie: &str) -> bool {
    !cookie.is_empty() && cookie.trim_ascii() == cookie && !cookie.chars().any(char::is_control)
}

/// A received value for an error message: lossy UTF-8, at most 64 characters.
fn shorten(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

#[cfg(test)]
mod tests;
