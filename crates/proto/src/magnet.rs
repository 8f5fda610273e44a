//! Magnet links for v1 torrents (BEP 9 "magnet URI format"), with peer addresses (`x.pe`) and
//! file selection (`so`, BEP 53).
//!
//! Parsing accepts what is found in the wild: 40-digit hex or 32-character base32
//! info-hashes in either case, `+` for spaces, numbered keys (`tr.1`, `xt.2`), and unknown
//! parameters (ignored). Printing ([`Magnet`]'s `Display`) percent-encodes every value, so
//! printing and parsing round-trip.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::types::InfoHash;

/// Why a string is not a usable magnet link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The string does not start with `magnet:`.
    #[error("not a magnet link (it should start with \"magnet:?\")")]
    NotMagnet,
    /// No `xt=urn:btih:` parameter.
    #[error("missing xt=urn:btih: parameter (the torrent's info-hash)")]
    MissingXt,
    /// A `urn:btih:` value that is neither 40 hex nor 32 base32 characters.
    #[error("malformed info-hash \"{0}\": expected 40 hex or 32 base32 characters")]
    BadInfoHash(String),
    /// Two `urn:btih:` parameters with different hashes.
    #[error("the magnet link names two different info-hashes")]
    ConflictingInfoHashes,
    /// Only a `urn:btmh:` (BitTorrent v2) hash that is not a SHA-256 multihash (`1220` and 64
    /// hex digits).
    #[error("the magnet link's only info-hash is a urn:btmh: that is not a SHA-256 multihash (1220 and 64 hex digits)")]
    V2Only,
    /// A malformed `so` (select-only) list.
    #[error("malformed so= file selection \"{0}\": expected indices and ranges like 0,2,4-6")]
    BadSelectOnly(String),
}

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The torrent's info-hash (`xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// A v2-only torrent's SHA-256 info-hash (BEP 52): the link then names it as
    /// `xt=urn:btmh:1220…` instead, and `info_hash` is its first 20 bytes (the swarm's name on
    /// the wire). A link naming a v1 hash too (a hybrid) is read as its v1 torrent, the v2 hash
    /// kept in `hybrid_v2`.
    pub v2_hash: Option<[u8; 32]>,
    /// A hybrid torrent's v2 info-hash, printed as a second `xt=urn:btmh:` after the v1 one, so
    /// clients that join the v2 swarm find it too.
    pub hybrid_v2: Option<[u8; 32]>,
    /// Name to show until the metadata arrives (`dn`).
    pub display_name: Option<String>,
    /// Tracker URLs (`tr`), without duplicates, in link order.
    pub trackers: Vec<String>,
    /// Peer addresses (`x.pe`): `host:port`, `ipv4:port` or `[ipv6]:port`, as given. See
    /// [`Magnet::peer_addrs`] for the ones that are literal socket addresses.
    pub peers: Vec<String>,
    /// BEP 53 file selection (`so`): inclusive ranges of file indices to download.
    pub select_only: Option<Vec<RangeInclusive<u32>>>,
}

/// Characters left as they are in printed values: RFC 3986 "unreserved".
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl Magnet {
    /// A magnet link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Self {
            info_hash,
            v2_hash: None,
            hybrid_v2: None,
            display_name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            select_only: None,
        }
    }

    /// Parses a magnet link.
    pub fn parse(link: &str) -> Result<Self, MagnetError> {
        let link = link.trim();
        let scheme = link.get(..7).filter(|s| s.eq_ignore_ascii_case("magnet:"));
        let query = match scheme {
            Some(_) => &link[7..],
            None => return Err(MagnetError::NotMagnet),
        };
        let query = query.strip_prefix('?').unwrap_or(query);

        let mut info_hash = None;
        let mut saw_v2 = false;
        let mut magnet = Magnet::new(InfoHash([0; 20]));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode_value(raw);
            match base_key(key).as_str() {
                "xt" => {
                    let lower = value.to_ascii_lowercase();
                    if let Some(hash) = lower.strip_prefix("urn:btih:") {
                        let hash = &value[value.len() - hash.len()..];
                        let parsed = parse_hash(hash)?;
                        if info_hash.is_some_and(|h| h != parsed) {
                            return Err(MagnetError::ConflictingInfoHashes);
                        }
                        info_hash = Some(parsed);
                    } else if let Some(multihash) = lower.strip_prefix("urn:btmh:") {
                        saw_v2 = true;
                        // 0x12 0x20: a SHA-256 multihash of 32 bytes (BEP 52).
                        if let Some(hex) = multihash.strip_prefix("1220").filter(|h| h.len() == 64) {
                            let bytes: Option<Vec<u8>> =
                                (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
                            if let Some(bytes) = bytes {
                                magnet.v2_hash = Some(bytes.try_into().expect("32 bytes"));
                            }
                        }
                    }
                }
                "dn" => {
                    magnet.display_name.get_or_insert(value);
                }
                "tr" => push_new(&mut magnet.trackers, value),
                "x.pe" => push_new(&mut magnet.peers, value),
                "so" => magnet.select_only = Some(parse_select_only(&value)?),
                _ => {}
            }
        }
        magnet.info_hash = match (info_hash, magnet.v2_hash) {
            // A hybrid's link names both: it is read as its v1 torrent.
            (Some(h), _) => {
                magnet.hybrid_v2 = magnet.v2_hash.take();
                h
            }
            (None, Some(v2)) => InfoHash(v2[..20].try_into().expect("20 bytes")),
            (None, None) if saw_v2 => return Err(MagnetError::V2Only),
            (None, None) => return Err(MagnetError::MissingXt),
        };
        Ok(magnet)
    }

    /// The `x.pe` peers that are literal `ip:port` / `[ipv6]:port` addresses (host names
    /// need a resolver and are left to the caller).
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// Whether file `index` is selected: always when there is no `so` parameter.
    pub fn is_selected(&self, index: u32) -> bool {
        self.select_only.as_ref().is_none_or(|ranges| ranges.iter().any(|r| r.contains(&index)))
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

/// `magnet:?xt=urn:btih:<hex>&dn=..&tr=..&x.pe=..&so=..`, values percent-encoded.
impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.v2_hash {
            Some(h) => {
                write!(f, "magnet:?xt=urn:btmh:1220{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>())?
            }
            None => write!(f, "magnet:?xt=urn:btih:{}", self.info_hash.to_hex())?,
        }
        if let (None, Some(h)) = (&self.v2_hash, &self.hybrid_v2) {
            write!(f, "&xt=urn:btmh:1220{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>())?;
        }
        if let Some(name) = &self.display_name {
            write!(f, "&dn={}", utf8_percent_encode(name, VALUE))?;
        }
        for tracker in &self.trackers {
            write!(f, "&tr={}", utf8_percent_encode(tracker, VALUE))?;
        }
        for peer in &self.peers {
            write!(f, "&x.pe={}", utf8_percent_encode(peer, VALUE))?;
        }
        if let Some(ranges) = &self.select_only {
            f.write_str("&so=")?;
            for (i, r) in ranges.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                if r.start() == r.end() {
                    write!(f, "{sep}{}", r.start())?;
                } else {
                    write!(f, "{sep}{}-{}", r.start(), r.end())?;
                }
            }
        }
        Ok(())
    }
}

/// Appends a non-empty value not already in the list.
fn push_new(list: &mut Vec<String>, value: String) {
    if !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

/// Lower-cases a key and drops a numeric suffix: `tr.1` → `tr`, `XT.2` → `xt`.
fn base_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    match key.split_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base.to_owned(),
        _ => key,
    }
}

/// Form-style decoding: `+` is a space, `%XX` a byte; invalid UTF-8 becomes U+FFFD.
fn decode_value(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn parse_hash(s: &str) -> Result<InfoHash, MagnetError> {
    let parsed = match s.len() {
        40 => InfoHash::from_hex(s),
        32 => InfoHash::from_base32(s),
        _ => None,
    };
    parsed.ok_or_else(|| MagnetError::BadInfoHash(s.chars().take(80).collect()))
}

fn parse_select_only(s: &str) -> Result<Vec<RangeInclusive<u32>>, MagnetError> {
    let bad = || MagnetError::BadSelectOnly(s.chars().take(80).collect());
    let number = |n: &str| n.trim().parse::<u32>().map_err(|_| bad());
    s.split(',')
        .map(|item| match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a <= b { Ok(a..=b) } else { Err(bad()) }
            }
            None => number(item).map(|n| n..=n),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn parses_a_typical_link() {
        let link = format!(
            "magnet:?xt=urn:btih:{}&dn=Some+Name%20%C3%A9&tr=udp%3A%2F%2Ftracker.example%3A6969\
             &tr=http://t.example/announce&x.pe=10.0.0.1:6881&x.pe=[::1]:51413&x.pe=host.example:1\
             &so=0,2,4-6&foo=bar",
            HEX.to_uppercase()
        );
        let m = Magnet::parse(&link).expect("valid");
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("Some Name é"));
        assert_eq!(m.trackers, ["udp://tracker.example:6969", "http://t.example/announce"]);
        assert_eq!(m.peers.len(), 3);
        let addrs = m.peer_addrs();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1], "[::1]:51413".parse().expect("addr"));
        assert_eq!(m.select_only, Some(vec![0..=0, 2..=2, 4..=6]));
        assert!(m.is_selected(5) && !m.is_selected(3));
    }

    #[test]
    fn base32_and_numbered_keys() {
        let b32 = data_encoding::BASE32_NOPAD.encode(&InfoHash::from_hex(HEX).expect("hex").0);
        let m = Magnet::parse(&format!("MAGNET:?xt.1=urn:btih:{}&tr.1=a&tr.2=b&tr.3=a", b32.to_lowercase()))
            .expect("valid");
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.trackers, ["a", "b"]);
        assert!(m.is_selected(1000));
    }

    #[test]
    fn clear_errors() {
        let err = |s: &str| Magnet::parse(s).expect_err("invalid").to_string();
        assert_eq!(err("http://example.com"), "not a magnet link (it should start with \"magnet:?\")");
        assert_eq!(err("magnet:?dn=x"), "missing xt=urn:btih: parameter (the torrent's info-hash)");
        assert_eq!(
            err("magnet:?xt=urn:btih:abc"),
            "malformed info-hash \"abc\": expected 40 hex or 32 base32 characters"
        );
        assert!(err(&format!("magnet:?xt=urn:btih:{}", "g".repeat(40))).starts_with("malformed info-hash"));
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40))),
            Err(MagnetError::ConflictingInfoHashes)
        );
        assert_eq!(Magnet::parse("magnet:?xt=urn:btmh:1220abcd"), Err(MagnetError::V2Only));
        let v2 = "magnet:?xt=urn:btmh:12205133d3082d7ad9f2ef7972ceed281009a963a4158a8405b5398f5698c338ee9b&dn=set";
        let m = Magnet::parse(v2).expect("a v2 link");
        assert_eq!(m.info_hash.to_hex(), "5133d3082d7ad9f2ef7972ceed281009a963a415");
        assert_eq!(m.to_string(), v2, "printed back as it was");
        // A hybrid's link names both hashes: read as its v1 torrent, printed back with both.
        let hybrid = format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{}&dn=set", "ab".repeat(32));
        let m = Magnet::parse(&hybrid).expect("a hybrid link");
        assert_eq!((m.info_hash.to_hex(), m.v2_hash, m.hybrid_v2), (HEX.to_lowercase(), None, Some([0xab; 32])));
        assert_eq!(m.to_string(), hybrid);
        for so in ["", "1,", "a", "5-2", "1-2-3", "-1"] {
            assert!(
                matches!(
                    Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&so={so}")),
                    Err(MagnetError::BadSelectOnly(_))
                ),
                "{so:?}"
            );
        }
        assert_eq!(Magnet::parse("magn"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnét:?xt"), Err(MagnetError::NotMagnet));
    }

    #[test]
    fn display_encodes_values() {
        let mut m = Magnet::new(InfoHash::from_hex(HEX).expect("hex"));
        m.display_name = Some("a b&c=d".into());
        m.trackers = vec!["udp://t:1/announce?x=1&y=2".into()];
        m.peers = vec!["[::1]:5".into()];
        m.select_only = Some(vec![1..=1, 3..=9]);
        let s = m.to_string();
        assert_eq!(
            s,
            format!(
                "magnet:?xt=urn:btih:{HEX}&dn=a%20b%26c%3Dd&tr=udp%3A%2F%2Ft%3A1%2Fannounce%3Fx%3D1%26y%3D2\
                 &x.pe=%5B%3A%3A1%5D%3A5&so=1,3-9"
            )
        );
        assert_eq!(s.parse::<Magnet>(), Ok(m));
    }

    proptest! {
        #[test]
        fn roundtrip(
            hash in any::<[u8; 20]>(),
            name in proptest::option::of(".*"),
            trackers in proptest::collection::btree_set(".+", 0..4),
            peers in proptest::collection::btree_set(".+", 0..3),
            so in proptest::option::of(proptest::collection::vec((0u32..100, 0u32..5), 1..4)),
        ) {
            let m = Magnet {
                info_hash: InfoHash(hash),
                v2_hash: None,
                hybrid_v2: None,
                display_name: name,
                trackers: trackers.into_iter().collect(),
                peers: peers.into_iter().collect(),
                select_only: so.map(|v| v.into_iter().map(|(a, n)| a..=a + n).collect()),
            };
            prop_assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn parse_never_panics(s in "(magnet:\\?)?[a-z.=&%:0-9A-F+é-]{0,80}") {
            let _ = Magnet::parse(&s);
        }
    }
}
