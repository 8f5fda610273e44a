//! The `shoal_search` extension messages (BEP 10) that search neighbours exchange.
//!
//! Each payload is a bencoded dictionary whose `t` says what it is:
//! - `q`, a query: `id` (8 random bytes), `q` (the words, UTF-8, at most [`MAX_WORDS_BYTES`]),
//!   `ttl` (hops it may still travel, at most [`MAX_TTL`]), `n` (results wanted, at most
//!   [`MAX_WANT`]);
//! - `r`, results for query `id`: `r`, a list of at most [`MAX_RECORDS`] publication records
//!   (their JSON, checked by whoever shows them), and, when the answering node holds the
//!   torrents' data, where to fetch them: `p`, its peer port, as it sends them; `h`, its address
//!   (compact, 6 or 18 bytes: the address the first relay saw it connect from, with `p`), once
//!   relayed;
//! - `b`, the sender's routing table: `l`, a list of at most [`super::table::LEVELS`] filters,
//!   each either `{"b": raw bits}` or, when sparser, `{"p": set bit positions, 4 bytes each
//!   big-endian, ascending}`.
//!
//! A payload is at most [`MAX_MESSAGE`] bytes; anything else is refused with the reason.

use std::net::{IpAddr, SocketAddr};

use shoal_bencode::{Dict, Value, decode, encode};

use super::table::{BLOOM_BITS, Bloom, LEVELS, Table};

/// Name of the extension in the BEP 10 handshake.
pub const EXTENSION: &str = "shoal_search";
/// Longest payload, bytes.
pub const MAX_MESSAGE: usize = 160 * 1024;
/// Longest query text, bytes.
pub const MAX_WORDS_BYTES: usize = 256;
/// Most hops a query travels.
pub const MAX_TTL: u8 = 4;
/// Most results a query asks for.
pub const MAX_WANT: u16 = 100;
/// Most records in one results message.
pub const MAX_RECORDS: usize = 20;

/// A query's id.
pub type QueryId = [u8; 8];

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A query.
    Query {
        /// Its id, the same on every hop.
        id: QueryId,
        /// The words.
        words: String,
        /// Hops it may still travel from the receiver.
        ttl: u8,
        /// Results wanted.
        want: u16,
    },
    /// Results of a query, travelling back the way it came.
    Hits {
        /// The query's id.
        id: QueryId,
        /// Records (JSON).
        records: Vec<Vec<u8>>,
        /// A node that holds these torrents' data.
        holder: Option<Holder>,
    },
    /// The sender's routing table for the receiver.
    Table(Table),
}

/// Where the torrents of a results message can be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The answering node's peer port (its address is the connection's).
    Port(u16),
    /// The answering node's address, filled in by the first relay.
    Addr(SocketAddr),
}

fn compact(addr: &SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.extend(addr.port().to_be_bytes());
    out
}

fn from_compact(bytes: &[u8]) -> Option<SocketAddr> {
    let (ip, port): (IpAddr, &[u8]) = match bytes.len() {
        6 => (IpAddr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?), &bytes[4..]),
        18 => (IpAddr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?), &bytes[16..]),
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])))
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Over [`MAX_MESSAGE`].
    #[error("a search message of {0} bytes (at most {MAX_MESSAGE})")]
    TooLong(usize),
    /// Not bencode, or not a dictionary.
    #[error("a search message that is not a bencoded dictionary: {0}")]
    NotADict(String),
    /// A field is missing or wrong.
    #[error("a search message with a bad `{0}`: {1}")]
    Field(&'static str, String),
}

fn field(name: &'static str, why: impl Into<String>) -> WireError {
    WireError::Field(name, why.into())
}

impl Message {
    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::new();
        match self {
            Message::Query { id, words, ttl, want } => {
                d.insert(b"t", Value::from("q"));
                d.insert(b"id", Value::Bytes(id));
                d.insert(b"q", Value::from(words.as_str()));
                d.insert(b"ttl", Value::from(u32::from(*ttl)));
                d.insert(b"n", Value::from(u32::from(*want)));
                encode(&Value::Dict(d))
            }
            Message::Hits { id, records, holder } => {
                let addr = match holder {
                    Some(Holder::Addr(a)) => compact(a),
                    _ => Vec::new(),
                };
                d.insert(b"t", Value::from("r"));
                d.insert(b"id", Value::Bytes(id));
                d.insert(b"r", Value::List(records.iter().map(|r| Value::Bytes(r)).collect()));
                match holder {
                    Some(Holder::Port(p)) => {
                        d.insert(b"p", Value::from(u32::from(*p)));
                    }
                    Some(Holder::Addr(_)) => {
                        d.insert(b"h", Value::Bytes(&addr));
                    }
                    None => {}
                }
                encode(&Value::Dict(d))
            }
            Message::Table(table) => {
                let levels: Vec<(bool, Vec<u8>)> = table
                    .levels
                    .iter()
                    .map(|level| {
                        let ones: Vec<u8> = level.ones().flat_map(u32::to_be_bytes).collect();
                        if ones.len() < BLOOM_BITS / 8 { (true, ones) } else { (false, level.to_bytes()) }
                    })
                    .collect();
                let list = levels
                    .iter()
                    .map(|(sparse, bytes)| {
                        let key: &[u8] = if *sparse { b"p" } else { b"b" };
                        Value::dict([(key, Value::Bytes(bytes))])
                    })
                    .collect();
                d.insert(b"t", Value::from("b"));
                d.insert(b"l", Value::List(list));
                encode(&Value::Dict(d))
            }
        }
    }

    /// Reads a payload.
    pub fn decode(payload: &[u8]) -> Result<Message, WireError> {
        if payload.len() > MAX_MESSAGE {
            return Err(WireError::TooLong(payload.len()));
        }
        let value = decode(payload).map_err(|e| WireError::NotADict(e.to_string()))?;
        let dict = value.as_dict().ok_or_else(|| WireError::NotADict(format!("it is {}", value.kind())))?;
        let get = |k: &'static str| dict.get(k.as_bytes());
        let id = || -> Result<QueryId, WireError> {
            get("id")
                .and_then(Value::as_bytes)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| field("id", "not 8 bytes"))
        };
        match get("t").and_then(Value::as_bytes) {
            Some(b"q") => {
                let words = get("q").and_then(Value::as_str).ok_or_else(|| field("q", "missing or not UTF-8"))?;
                if words.len() > MAX_WORDS_BYTES || words.trim().is_empty() {
                    return Err(field("q", format!("{} bytes (1 to {MAX_WORDS_BYTES})", words.len())));
                }
                let ttl = get("ttl")
                    .and_then(Value::as_int)
                    .and_then(|n| u8::try_from(n).ok())
                    .filter(|&n| n <= MAX_TTL)
                    .ok_or_else(|| field("ttl", format!("missing or over {MAX_TTL}")))?;
                let want = get("n")
                    .and_then(Value::as_int)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| (1..=MAX_WANT).contains(&n))
                    .ok_or_else(|| field("n", format!("missing or not 1 to {MAX_WANT}")))?;
                Ok(Message::Query { id: id()?, words: words.to_string(), ttl, want })
            }
            Some(b"r") => {
                let list = get("r").and_then(Value::as_list).ok_or_else(|| field("r", "missing or not a list"))?;
                if list.len() > MAX_RECORDS {
                    return Err(field("r", format!("{} records (at most {MAX_RECORDS})", list.len())));
                }
                let records = list
                    .iter()
                    .map(|r| {
                        r.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| field("r", "a record that is not a string"))
                    })
                    .collect::<Result<_, _>>()?;
                let holder = match (get("h"), get("p")) {
                    (Some(h), _) => Some(Holder::Addr(
                        h.as_bytes().and_then(from_compact).ok_or_else(|| field("h", "not 6 or 18 bytes"))?,
                    )),
                    (None, Some(p)) => Some(Holder::Port(
                        p.as_int()
                            .and_then(|p| u16::try_from(p).ok())
                            .filter(|&p| p != 0)
                            .ok_or_else(|| field("p", "not a port"))?,
                    )),
                    (None, None) => None,
                };
                Ok(Message::Hits { id: id()?, records, holder })
            }
            Some(b"b") => {
                let list = get("l").and_then(Value::as_list).ok_or_else(|| field("l", "missing or not a list"))?;
                if list.len() > LEVELS {
                    return Err(field("l", format!("{} levels (at most {LEVELS})", list.len())));
                }
                let mut levels = Vec::with_capacity(list.len());
                for level in list {
                    let bloom = if let Some(raw) = level.get(b"b").and_then(Value::as_bytes) {
                        Bloom::from_bytes(raw)
                            .ok_or_else(|| field("l", format!("raw filter of {} bytes", raw.len())))?
                    } else if let Some(ones) = level.get(b"p").and_then(Value::as_bytes) {
                        if !ones.len().is_multiple_of(4) {
                            return Err(field("l", "bit positions not in 4-byte steps"));
                        }
                        let bits = ones.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                        Bloom::from_ones(bits).ok_or_else(|| field("l", "a bit position out of range"))?
                    } else {
                        return Err(field("l", "a level without `b` or `p`"));
                    };
                    levels.push(bloom);
                }
                Ok(Message::Table(Table { levels }))
            }
            _ => Err(field("t", "not q, r or b")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_name_what_is_wrong() {
        let mut own = Bloom::default();
        own.insert_text("debian netinst");
        let mut full = Bloom::default();
        for i in 0..30_000 {
            full.insert_key(&i.to_string());
        }
        let all = [
            Message::Query { id: *b"abcdefgh", words: "debian 13".into(), ttl: 3, want: 10 },
            Message::Hits { id: *b"abcdefgh", records: vec![b"{}".to_vec(), b"{\"a\":1}".to_vec()], holder: None },
            Message::Hits { id: *b"abcdefgh", records: vec![b"{}".to_vec()], holder: Some(Holder::Port(6881)) },
            Message::Hits {
                id: *b"abcdefgh",
                records: vec![b"{}".to_vec()],
                holder: Some(Holder::Addr("[::1]:7000".parse().expect("addr"))),
            },
            Message::Hits {
                id: *b"abcdefgh",
                records: vec![],
                holder: Some(Holder::Addr("127.0.0.1:7000".parse().expect("addr"))),
            },
            Message::Table(Table { levels: vec![own, full, Bloom::default()] }),
        ];
        for m in all {
            let bytes = m.encode();
            assert!(bytes.len() <= MAX_MESSAGE);
            assert_eq!(Message::decode(&bytes), Ok(m));
        }
        let bad: [(&[u8], &str); 9] = [
            (b"d1:t1:r2:id8:abcdefgh1:rle1:h3:abce", "`h`"),
            (b"d1:t1:r2:id8:abcdefgh1:rle1:pi0ee", "`p`"),
            (b"d1:t1:q2:id8:abcdefgh1:q0:3:ttli1e1:ni1ee", "`q`"),
            (b"d1:t1:q2:id8:abcdefgh1:q1:x3:ttli9e1:ni1ee", "`ttl`"),
            (b"d1:t1:q2:id3:abc1:q1:x3:ttli1e1:ni1ee", "`id`"),
            (b"d1:t1:q2:id8:abcdefgh1:q1:x3:ttli1e1:ni0ee", "`n`"),
            (b"d1:t1:b1:lld1:p3:abceee", "`l`"),
            (b"d1:t1:ze", "`t`"),
            (b"li1ee", "not a bencoded dictionary"),
        ];
        for (bytes, says) in bad {
            let e = Message::decode(bytes).expect_err("taken").to_string();
            assert!(e.contains(says), "{e}");
        }
        assert_eq!(Message::decode(&vec![b'x'; MAX_MESSAGE + 1]), Err(WireError::TooLong(MAX_MESSAGE + 1)));
    }
}
