//! Peer exchange, BEP 11 (`ut_pex`): the payload of the extended message that tells a peer
//! which peers we connected to and disconnected from since our last message, and
//! [`PexState`], which computes those deltas for one connection.
//!
//! Flow: both sides announce `ut_pex` in the extension handshake ([`crate::extension::UT_PEX`]).
//! Then, at most once a minute, each side sends a [`PexMessage`] to each such peer. The engine
//! keeps one [`PexState`] per connection and calls [`PexState::diff`] with the addresses it is
//! connected to right now (minus the receiving peer itself); the state remembers what that
//! peer has been told, so every peer that was `added` is later `dropped`, as BEP 11 requires.
//!
//! Wire format: a bencoded dictionary whose `added` / `dropped` keys hold compact IPv4
//! contacts (4 address bytes + 2 port bytes), `added6` / `dropped6` compact IPv6 contacts
//! (16 + 2 bytes), and `added.f` / `added6.f` one flag byte per added contact.
//!
//! Decoding is strict about what would make the contact lists ambiguous and tolerant about
//! the advisory flags:
//! * a contact list whose length is not a multiple of 6 (IPv4) or 18 (IPv6), or that is not a
//!   byte string, is an error;
//! * a list of more than [`MAX_PEX_PEERS`] contacts is an error (BEP 11 asks for at most 50
//!   per message; a larger first message is allowed, so the limit leaves slack);
//! * missing flags are zero, extra flag bytes are ignored, and flags that are not a byte
//!   string are treated as absent;
//! * contacts with port 0 are skipped (nobody can connect to them), with their flags.
//!
//! Duplicates and contacts both added and dropped are not rejected: PEX data is untrusted
//! anyway (BEP 11, "Security Considerations"), and the engine filters candidates itself.
//! IPv4-mapped IPv6 addresses are kept as they are, so decoding and encoding round-trip.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use shoal_bencode::{DecodeError, Dict, Value, decode_prefix, encode};

/// Flag bit: the peer prefers encrypted connections (`e` in its extension handshake).
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// Flag bit: the peer is a seed or upload-only.
pub const FLAG_SEED: u8 = 0x02;
/// Flag bit: the peer supports uTP.
pub const FLAG_UTP: u8 = 0x04;
/// Flag bit: the peer announced `ut_holepunch` in its extension handshake.
pub const FLAG_HOLEPUNCH: u8 = 0x08;
/// Flag bit: we connected to the peer (outgoing connection), so it is reachable.
pub const FLAG_REACHABLE: u8 = 0x10;

/// Most contacts [`PexMessage::decode`] accepts in one list (`added`, `added6`, `dropped` or
/// `dropped6`). BEP 11 asks senders for at most 50 added and 50 dropped per message except
/// the first one; 200 leaves room for a generous first message while bounding the work a
/// peer can cause.
pub const MAX_PEX_PEERS: usize = 200;

/// Most added (and, separately, most dropped) contacts [`PexState::diff`] puts in one
/// message, as BEP 11 asks.
pub const PEX_BATCH: usize = 50;

/// Why a `ut_pex` payload cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    /// The payload does not start with valid bencode.
    #[error("ut_pex message is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The payload is bencode but not a dictionary.
    #[error("ut_pex message is {}, not a dictionary", shoal_bencode::Value::kind_with_article(.0))]
    NotADict(&'static str),
    /// A contact list that is not a byte string.
    #[error("ut_pex `{key}` is {}, expected a byte string", shoal_bencode::Value::kind_with_article(.found))]
    NotAString {
        /// The key (`added`, `added6`, `dropped` or `dropped6`).
        key: &'static str,
        /// The bencode type found instead.
        found: &'static str,
    },
    /// A compact contact list whose length is not a whole number of entries.
    #[error("ut_pex `{key}` is {len} bytes long, not a multiple of {entry}")]
    BadLength {
        /// The key.
        key: &'static str,
        /// The list's length in bytes.
        len: usize,
        /// The size of one entry: 6 for IPv4, 18 for IPv6.
        entry: usize,
    },
    /// A contact list longer than [`MAX_PEX_PEERS`].
    #[error("ut_pex `{key}` lists {count} peers, more than the limit of {MAX_PEX_PEERS}")]
    TooManyPeers {
        /// The key.
        key: &'static str,
        /// How many contacts it holds.
        count: usize,
    },
}

/// One `ut_pex` message (BEP 11).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender connected to: the contacts of `added` (IPv4) followed by those of
    /// `added6` (IPv6).
    pub added: Vec<SocketAddr>,
    /// One flag byte (`FLAG_*` bits) per entry of `added`, in the same order. Decoding always
    /// makes it as long as `added`; encoding pads missing flags with 0 and ignores extra ones.
    pub added_flags: Vec<u8>,
    /// Peers the sender disconnected from: `dropped` (IPv4) followed by `dropped6` (IPv6).
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Parses a `ut_pex` payload (the bytes after the extended id). Bytes after the
    /// dictionary are ignored; see the module documentation for what is rejected.
    pub fn decode(payload: &[u8]) -> Result<Self, PexError> {
        let (value, _) = decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(PexError::NotADict(value.kind()))?;
        let mut msg = PexMessage::default();
        for (key, flags_key, family) in [("added", "added.f", Family::V4), ("added6", "added6.f", Family::V6)] {
            let contacts = contacts(dict, key, family)?;
            let flags = dict.get(flags_key.as_bytes()).and_then(Value::as_bytes).unwrap_or_default();
            for (i, addr) in contacts.into_iter().enumerate() {
                if let Some(addr) = addr {
                    msg.added.push(addr);
                    msg.added_flags.push(flags.get(i).copied().unwrap_or(0));
                }
            }
        }
        for (key, family) in [("dropped", Family::V4), ("dropped6", Family::V6)] {
            msg.dropped.extend(contacts(dict, key, family)?.into_iter().flatten());
        }
        Ok(msg)
    }

    /// Encodes the payload. `added`, `added.f` and `dropped` are always present (so the
    /// message has at least one of the lists BEP 11 requires); the IPv6 keys only when they
    /// have entries. Lists are not truncated to [`MAX_PEX_PEERS`]: keeping messages small is
    /// the sender's job ([`PexState`] does it).
    pub fn encode(&self) -> Vec<u8> {
        let mut added = (Vec::new(), Vec::new());
        let mut added6 = (Vec::new(), Vec::new());
        for (i, addr) in self.added.iter().enumerate() {
            let flag = self.added_flags.get(i).copied().unwrap_or(0);
            let (list, flags) = if addr.is_ipv4() { &mut added } else { &mut added6 };
            push_compact(list, addr);
            flags.push(flag);
        }
        let (mut dropped, mut dropped6) = (Vec::new(), Vec::new());
        for addr in &self.dropped {
            push_compact(if addr.is_ipv4() { &mut dropped } else { &mut dropped6 }, addr);
        }
        let mut dict = Dict::new();
        dict.insert(&b"added"[..], Value::Bytes(&added.0));
        dict.insert(&b"added.f"[..], Value::Bytes(&added.1));
        dict.insert(&b"dropped"[..], Value::Bytes(&dropped));
        if !added6.0.is_empty() {
            dict.insert(&b"added6"[..], Value::Bytes(&added6.0));
            dict.insert(&b"added6.f"[..], Value::Bytes(&added6.1));
        }
        if !dropped6.is_empty() {
            dict.insert(&b"dropped6"[..], Value::Bytes(&dropped6));
        }
        encode(&Value::Dict(dict))
    }
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn entry_len(self) -> usize {
        match self {
            Family::V4 => 6,
            Family::V6 => 18,
        }
    }
}

/// The contacts of one list, `None` for entries with port 0 (kept so flags stay aligned).
fn contacts(dict: &Dict<'_>, key: &'static str, family: Family) -> Result<Vec<Option<SocketAddr>>, PexError> {
    let Some(value) = dict.get(key.as_bytes()) else {
        return Ok(Vec::new());
    };
    let bytes = value.as_bytes().ok_or(PexError::NotAString { key, found: value.kind() })?;
    let entry = family.entry_len();
    if bytes.len() % entry != 0 {
        return Err(PexError::BadLength { key, len: bytes.len(), entry });
    }
    let count = bytes.len() / entry;
    if count > MAX_PEX_PEERS {
        return Err(PexError::TooManyPeers { key, count });
    }
    Ok(bytes.chunks_exact(entry).map(|c| parse_compact(c).filter(|a| a.port() != 0)).collect())
}

/// A 6-byte (IPv4) or 18-byte (IPv6) compact contact.
fn parse_compact(c: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = c.split_last_chunk::<2>()?;
    let port = u16::from_be_bytes(*port);
    match ip.len() {
        4 => Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?), port))),
        16 => Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?), port, 0, 0))),
        _ => None,
    }
}

fn push_compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// What one peer has been told over PEX, to compute the next message for it.
///
/// Call protocol: keep one `PexState` per connection that negotiated `ut_pex`; at most once a
/// minute (BEP 11), call [`PexState::diff`] with the set of peers we are connected to now,
/// excluding the receiving peer, and send the message it returns, if any. Only include
/// peers whose connection is established (BEP 11's liveness rule).
#[derive(Clone, Debug, Default)]
pub struct PexState {
    /// Peers the receiver was told were `added` and not yet told were `dropped`. Every
    /// message keeps it equal to what the receiver believes we are connected to.
    announced: BTreeSet<SocketAddr>,
}

impl PexState {
    /// A state for a connection that has not been sent any PEX message yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next message: peers in `current` not yet announced as added, and announced peers
    /// no longer in `current`, at most [`PEX_BATCH`] of each (the rest follow in later
    /// messages). `None` when there is nothing to say. All flags are 0; see
    /// [`PexState::diff_with_flags`].
    pub fn diff(&mut self, current: &BTreeSet<SocketAddr>) -> Option<PexMessage> {
        let flags: BTreeMap<SocketAddr, u8> = current.iter().map(|&a| (a, 0)).collect();
        self.diff_with_flags(&flags)
    }

    /// Like [`PexState::diff`], with the `FLAG_*` bits of each connected peer.
    pub fn diff_with_flags(&mut self, current: &BTreeMap<SocketAddr, u8>) -> Option<PexMessage> {
        let mut msg = PexMessage::default();
        for (&addr, &flag) in current.iter().filter(|(a, _)| !self.announced.contains(a)).take(PEX_BATCH) {
            msg.added.push(addr);
            msg.added_flags.push(flag);
        }
        msg.dropped = self.announced.iter().filter(|a| !current.contains_key(a)).take(PEX_BATCH).copied().collect();
        if msg.added.is_empty() && msg.dropped.is_empty() {
            return None;
        }
        self.announced.extend(msg.added.iter().copied());
        for addr in &msg.dropped {
            self.announced.remove(addr);
        }
        Some(msg)
    }

    /// The peers the receiver currently believes we are connected to.
    pub fn announced(&self) -> &BTreeSet<SocketAddr> {
        &self.announced
    }
}

#[cfg(test)]
mod tests;
