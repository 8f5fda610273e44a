//! Channel links: `magnet:?xs=urn:btpk:<64 hex digits>&dn=<name>[&tr=<tracker>...][&x.group=<64 hex digits>]`.
//!
//! `xs=urn:btpk:` carries the broadcaster's 32-byte Ed25519 public key in hex, as BEP 46 links
//! to a mutable torrent's publisher; every chunk of the channel must be signed by that key. `dn`
//! is the channel's name for people (percent-encoded, at most [`MAX_NAME_CHARS`] characters).
//! `tr` names trackers where the channel's nodes meet (as in magnet links; at most
//! [`MAX_TRACKERS`], http, https or udp). `x.group` marks a group channel: the SHA-256 of its group authority's key, as `shoal group
//! list` shows it; only that group's members can connect (TLS with member certificates).
//! Anything else is refused with the reason: a link names exactly one key.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use shoal_identity::IdentityId;

/// Longest channel name.
pub const MAX_NAME_CHARS: usize = 128;
/// Trackers in a link at most.
pub const MAX_TRACKERS: usize = 8;
/// Longest link read.
pub const MAX_LINK_BYTES: usize = 1024;

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a channel link at all.
    #[error("not a channel link (magnet:?xs=urn:btpk:KEY&dn=NAME): {0}")]
    NotALink(String),
    /// The key is not 64 hex digits.
    #[error("the channel key {0:?} is not 64 hex digits")]
    BadKey(String),
    /// The name is not valid.
    #[error("the channel name is not valid: {0}")]
    BadName(String),
}

/// A live channel: whose it is and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelLink {
    /// The broadcaster's public key.
    pub key: IdentityId,
    /// The channel's name.
    pub name: Option<String>,
    /// Trackers where the channel's nodes meet.
    pub trackers: Vec<String>,
    /// For a group channel: SHA-256 of the group authority's key (hex, lower case).
    pub group: Option<String>,
}

impl ChannelLink {
    /// Reads a link.
    pub fn parse(text: &str) -> Result<ChannelLink, LinkError> {
        let text = text.trim();
        if text.len() > MAX_LINK_BYTES {
            return Err(LinkError::NotALink(format!("{} bytes (at most {MAX_LINK_BYTES})", text.len())));
        }
        let query = text
            .strip_prefix("magnet:?")
            .ok_or_else(|| LinkError::NotALink("it does not start with magnet:?".into()))?;
        let (mut key, mut name, mut group, mut trackers) = (None, None, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| LinkError::NotALink(format!("{pair:?} has no =")))?;
            match k {
                "xs" => {
                    let hex = v
                        .strip_prefix("urn:btpk:")
                        .ok_or_else(|| LinkError::NotALink(format!("xs={v:?} is not urn:btpk:KEY")))?;
                    if key.is_some() {
                        return Err(LinkError::NotALink("more than one xs".into()));
                    }
                    key = Some(parse_key(hex)?);
                }
                "dn" => {
                    let decoded = percent_decode_str(v)
                        .decode_utf8()
                        .map_err(|_| LinkError::BadName("not UTF-8".into()))?
                        .replace('+', " ");
                    check_name(&decoded)?;
                    name = Some(decoded);
                }
                "tr" => {
                    let url = percent_decode_str(v)
                        .decode_utf8()
                        .map_err(|_| LinkError::NotALink("a tracker that is not UTF-8".into()))?
                        .into_owned();
                    check_tracker(&url)?;
                    if trackers.len() >= MAX_TRACKERS {
                        return Err(LinkError::NotALink(format!("more than {MAX_TRACKERS} trackers")));
                    }
                    trackers.push(url);
                }
                "x.group" => {
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(LinkError::NotALink(format!("x.group={v:?} is not 64 hex digits")));
                    }
                    group = Some(v.to_ascii_lowercase());
                }
                // Other parameters (trackers, peers) are for later versions; they do not change
                // which channel this is.
                _ => {}
            }
        }
        let key = key.ok_or_else(|| LinkError::NotALink("no xs=urn:btpk:KEY".into()))?;
        Ok(ChannelLink { key, name, trackers, group })
    }
}

fn parse_key(hex: &str) -> Result<IdentityId, LinkError> {
    let bad = || LinkError::BadKey(hex.chars().take(80).collect());
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(IdentityId(key))
}

/// Whether `url` can be a channel's tracker.
pub fn check_tracker(url: &str) -> Result<(), LinkError> {
    let scheme_ok = ["http://", "https://", "udp://"].iter().any(|s| url.starts_with(s));
    if !scheme_ok || url.len() > 512 || url.chars().any(char::is_control) {
        return Err(LinkError::NotALink(format!(
            "tracker {:?} is not an http, https or udp URL",
            url.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), LinkError> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(LinkError::BadName(format!("1 to {MAX_NAME_CHARS} printable characters")));
    }
    Ok(())
}

impl std::fmt::Display for ChannelLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "magnet:?xs=urn:btpk:")?;
        for b in self.key.0 {
            write!(f, "{b:02x}")?;
        }
        if let Some(name) = &self.name {
            write!(f, "&dn={}", utf8_percent_encode(name, NON_ALPHANUMERIC))?;
        }
        for tracker in &self.trackers {
            write!(f, "&tr={}", utf8_percent_encode(tracker, NON_ALPHANUMERIC))?;
        }
        if let Some(group) = &self.group {
            write!(f, "&x.group={group}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_round_trips_and_bad_ones_say_what_is_wrong() {
        let link = ChannelLink {
            key: IdentityId([0xab; 32]),
            name: Some("Lab lecture: día 1".into()),
            trackers: vec!["http://127.0.0.1:6969/announce".into(), "udp://t.example:80".into()],
            group: None,
        };
        let text = link.to_string();
        assert!(text.starts_with("magnet:?xs=urn:btpk:abab"), "{text}");
        assert_eq!(ChannelLink::parse(&text), Ok(link.clone()));
        let group = ChannelLink { group: Some("cd".repeat(32)), ..link };
        assert_eq!(ChannelLink::parse(&group.to_string()), Ok(group));
        let key = "ab".repeat(32);
        assert_eq!(ChannelLink::parse(&format!("magnet:?xs=urn:btpk:{key}")).map(|l| l.name), Ok(None));
        let cases: [(String, &str); 9] = [
            (format!("magnet:?xs=urn:btpk:{key}&tr=file%3A%2F%2Fx"), "not an http"),
            (format!("magnet:?xs=urn:btpk:{key}&x.group=12"), "x.group"),
            ("http://example/".into(), "magnet:?"),
            ("magnet:?dn=x".into(), "no xs"),
            ("magnet:?xs=urn:btih:abc".into(), "urn:btpk"),
            ("magnet:?xs=urn:btpk:abcd".into(), "64 hex"),
            (format!("magnet:?xs=urn:btpk:{}", "zz".repeat(32)), "64 hex"),
            (format!("magnet:?xs=urn:btpk:{key}&xs=urn:btpk:{key}"), "more than one"),
            (format!("magnet:?xs=urn:btpk:{key}&dn=%0a"), "printable"),
        ];
        for (text, says) in cases {
            let e = ChannelLink::parse(&text).expect_err(&text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(ChannelLink::parse(&"x".repeat(MAX_LINK_BYTES + 1)).is_err());
    }
}
