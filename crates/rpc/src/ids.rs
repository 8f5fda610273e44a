//! How RPC calls name torrents: a daemon's [`TorrentId`], a [`TorrentRef`] (an id or an
//! info-hash) and [`Ids`] (some, or all). Re-exported from [`crate::api`].

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A torrent's number in the daemon: assigned when the torrent is added, never reused while the
/// daemon's state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TorrentId(pub u64);

impl fmt::Display for TorrentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One torrent named in a request: by its [`TorrentId`] or by its info-hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TorrentRef {
    /// The daemon's number for the torrent.
    Id(TorrentId),
    /// The info-hash in lowercase hex: 40 digits (v1 or hybrid) or 64 digits (v2).
    InfoHash(String),
}

impl TorrentRef {
    /// Parses an info-hash written as 40 or 64 hex digits (any case) into a `TorrentRef`.
    pub fn info_hash(text: &str) -> Option<TorrentRef> {
        let ok = (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| TorrentRef::InfoHash(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for TorrentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorrentRef::Id(id) => id.fmt(f),
            TorrentRef::InfoHash(hash) => f.write_str(hash),
        }
    }
}

impl From<TorrentId> for TorrentRef {
    fn from(id: TorrentId) -> Self {
        TorrentRef::Id(id)
    }
}

impl Serialize for TorrentRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TorrentRef::Id(id) => s.serialize_u64(id.0),
            TorrentRef::InfoHash(hash) => s.serialize_str(hash),
        }
    }
}

const TORRENT_REF_EXPECTED: &str = "a torrent id (a non-negative integer) or an info-hash (40 or 64 hex digits)";

struct TorrentRefVisitor;

impl Visitor<'_> for TorrentRefVisitor {
    type Value = TorrentRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TORRENT_REF_EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TorrentRef, E> {
        Ok(TorrentRef::Id(TorrentId(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TorrentRef, E> {
        u64::try_from(v)
            .map(|v| TorrentRef::Id(TorrentId(v)))
            .map_err(|_| E::custom(format!("{v} is not a torrent id")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TorrentRef, E> {
        TorrentRef::info_hash(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for TorrentRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TorrentRefVisitor)
    }
}

/// Which torrents a request applies to.
///
/// JSON shape: the string `"all"`, one id or info-hash, or an array of ids and info-hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ids {
    /// Every torrent in the daemon.
    All,
    /// These torrents (duplicates allowed; an empty list names none).
    List(Vec<TorrentRef>),
}

impl Ids {
    /// One torrent.
    pub fn one(id: impl Into<TorrentRef>) -> Ids {
        Ids::List(vec![id.into()])
    }
}

impl Serialize for Ids {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ids::All => s.serialize_str("all"),
            Ids::List(list) => list.serialize(s),
        }
    }
}

struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = Ids;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"all\", {TORRENT_REF_EXPECTED}, or an array of them")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ids, E> {
        TorrentRefVisitor.visit_u64(v).map(|r| Ids::List(vec![r]))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ids, E> {
        TorrentRefVisitor.visit_i64(v).map(|r| Ids::List(vec![r]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Ids, E> {
        if v == "all" {
            return Ok(Ids::All);
        }
        TorrentRef::info_hash(v)
            .map(|r| Ids::List(vec![r]))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ids, A::Error> {
        let mut list = Vec::new();
        while let Some(item) = seq.next_element::<TorrentRef>()? {
            list.push(item);
        }
        Ok(Ids::List(list))
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdsVisitor)
    }
}
