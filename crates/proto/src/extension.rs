//! Payloads of `extended` messages (BEP 10): the extension handshake, and the `ut_metadata`
//! messages (BEP 9) that fetch a torrent's info dictionary from peers for magnet links.
//!
//! Flow: after the BitTorrent handshake, both sides that set the extension bit send an
//! `extended` message with id 0 carrying an [`ExtHandshake`]. Its `m` dictionary maps each
//! extension name to the id the *sender* wants to receive that extension on; later messages
//! to that peer use the peer's ids. For `ut_metadata` the handshake also carries
//! `metadata_size`, and [`MetadataMessage`]s then request, deliver or reject 16 KiB pieces of
//! the info dictionary.
//!
//! Decoding is tolerant: unknown keys are ignored and optional keys of the wrong type or out
//! of range are treated as absent, since every client adds its own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;
use shoal_bencode::{DecodeError, Value, decode_prefix, encode, encode_into};

/// Extension name of BEP 9 metadata exchange.
pub const UT_METADATA: &str = "ut_metadata";
/// Extension name of BEP 11 peer exchange.
pub const UT_PEX: &str = "ut_pex";
/// Size of every `ut_metadata` piece but the last (BEP 9).
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;
/// Shoal's extension asking a peer to show pieces it has not announced (an initial seed's
/// hidden pieces a player waits for): the payload is up to [`MAX_WANTS`] piece indexes, each
/// a 4-byte big-endian integer, most urgent first.
pub const SHOAL_WANTS: &str = "shoal_wants";
/// Most piece indexes in one `shoal_wants` message.
pub const MAX_WANTS: usize = 64;

/// Encodes a `shoal_wants` payload (indexes past [`MAX_WANTS`] are left out).
pub fn encode_wants(pieces: &[u32]) -> Vec<u8> {
    pieces.iter().take(MAX_WANTS).flat_map(|p| p.to_be_bytes()).collect()
}

/// Decodes a `shoal_wants` payload.
pub fn decode_wants(payload: &[u8]) -> Result<Vec<u32>, ExtensionError> {
    if payload.is_empty() || !payload.len().is_multiple_of(4) || payload.len() > 4 * MAX_WANTS {
        return Err(ExtensionError::BadWants(payload.len()));
    }
    Ok(payload.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Why an extension payload cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// The payload does not start with valid bencode.
    #[error("extension message is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The payload is bencode but not a dictionary.
    #[error("extension message is {}, not a dictionary", shoal_bencode::Value::kind_with_article(.0))]
    NotADict(&'static str),
    /// A `ut_metadata` message without a required integer key.
    #[error("ut_metadata message has no valid `{0}`")]
    MissingField(&'static str),
    /// A `shoal_wants` payload that is not 1 to 64 four-byte piece indexes.
    #[error("shoal_wants message of {0} bytes, expected 4 to 256 in steps of 4")]
    BadWants(usize),
}

/// The BEP 10 extension handshake (extended message id 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// Extension name → id the sender receives it on. An id of 0 means the sender disabled
    /// that extension (kept so a repeated handshake can turn one off); see
    /// [`ExtHandshake::id_of`].
    pub m: BTreeMap<String, u8>,
    /// Client name and version.
    pub v: Option<String>,
    /// The sender's TCP listen port.
    pub p: Option<u16>,
    /// How many outstanding requests the sender accepts.
    pub reqq: Option<u32>,
    /// Size in bytes of the info dictionary (BEP 9).
    pub metadata_size: Option<u32>,
    /// Our address as the sender sees it.
    pub yourip: Option<IpAddr>,
}

impl ExtHandshake {
    /// Parses a handshake payload. Fails only when the payload is not a bencoded dictionary;
    /// bytes after the dictionary are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let (value, _) = decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotADict(value.kind()))?;
        let int = |key: &[u8]| dict.get(key).and_then(Value::as_int);
        let mut m = BTreeMap::new();
        if let Some(entries) = dict.get(&b"m"[..]).and_then(Value::as_dict) {
            for (name, id) in entries {
                let id = id.as_int().and_then(|id| u8::try_from(id).ok());
                if let (Ok(name), Some(id)) = (std::str::from_utf8(name), id) {
                    m.insert(name.to_owned(), id);
                }
            }
        }
        Ok(Self {
            m,
            v: dict.get(&b"v"[..]).and_then(Value::as_bytes).map(|v| String::from_utf8_lossy(v).into_owned()),
            p: int(b"p").and_then(|p| u16::try_from(p).ok()).filter(|&p| p != 0),
            reqq: int(b"reqq").and_then(|n| u32::try_from(n).ok()),
            metadata_size: int(b"metadata_size").and_then(|n| u32::try_from(n).ok()),
            yourip: dict.get(&b"yourip"[..]).and_then(Value::as_bytes).and_then(compact_ip),
        })
    }

    /// Encodes the handshake payload (canonical bencode; absent fields are left out).
    pub fn encode(&self) -> Vec<u8> {
        let m = Value::Dict(self.m.iter().map(|(k, &id)| (k.as_bytes(), Value::from(u32::from(id)))).collect());
        let yourip = self.yourip.map(|ip| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        });
        let mut dict = shoal_bencode::Dict::new();
        dict.insert(&b"m"[..], m);
        if let Some(v) = &self.v {
            dict.insert(&b"v"[..], Value::from(v.as_str()));
        }
        if let Some(p) = self.p {
            dict.insert(&b"p"[..], Value::from(u32::from(p)));
        }
        if let Some(reqq) = self.reqq {
            dict.insert(&b"reqq"[..], Value::from(reqq));
        }
        if let Some(size) = self.metadata_size {
            dict.insert(&b"metadata_size"[..], Value::from(size));
        }
        if let Some(ip) = &yourip {
            dict.insert(&b"yourip"[..], Value::Bytes(ip));
        }
        encode(&Value::Dict(dict))
    }

    /// The id to use when sending extension `name` to the peer that sent this handshake;
    /// `None` when the peer does not support it or disabled it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }
}

/// A 4-byte or 16-byte compact address.
fn compact_ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A BEP 9 `ut_metadata` message (the payload of an `extended` message whose id is the
/// receiver's `ut_metadata` id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// msg_type 0: please send this metadata piece.
    Request {
        /// Metadata piece index (16 KiB units).
        piece: u32,
    },
    /// msg_type 1: a metadata piece; `data` follows the dictionary in the message.
    Data {
        /// Metadata piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u32,
        /// The piece's bytes: a slice of the received payload, not a copy. Its length is not
        /// checked here; the receiver compares it with the piece size it expects.
        data: Bytes,
    },
    /// msg_type 2: the sender will not send this piece.
    Reject {
        /// Metadata piece index.
        piece: u32,
    },
    /// Another msg_type, which BEP 9 says to ignore.
    Unknown {
        /// The unrecognised type.
        msg_type: i64,
    },
}

impl MetadataMessage {
    /// Parses a `ut_metadata` payload (the bytes after the extended id).
    pub fn decode(payload: &Bytes) -> Result<Self, ExtensionError> {
        let (value, used) = decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotADict(value.kind()))?;
        let int = |key: &'static str| {
            dict.get(key.as_bytes()).and_then(Value::as_int).ok_or(ExtensionError::MissingField(key))
        };
        let u32_field =
            |key: &'static str| int(key).and_then(|n| u32::try_from(n).map_err(|_| ExtensionError::MissingField(key)));
        let msg_type = int("msg_type")?;
        Ok(match msg_type {
            0 => MetadataMessage::Request { piece: u32_field("piece")? },
            1 => MetadataMessage::Data {
                piece: u32_field("piece")?,
                total_size: u32_field("total_size")?,
                data: payload.slice(used..),
            },
            2 => MetadataMessage::Reject { piece: u32_field("piece")? },
            other => MetadataMessage::Unknown { msg_type: other },
        })
    }

    /// Encodes the payload: the dictionary, followed by the data of a `Data` message.
    pub fn encode(&self) -> Vec<u8> {
        let (msg_type, piece, total_size, data) = match self {
            MetadataMessage::Request { piece } => (0, *piece, None, None),
            MetadataMessage::Data { piece, total_size, data } => (1, *piece, Some(*total_size), Some(data)),
            MetadataMessage::Reject { piece } => (2, *piece, None, None),
            MetadataMessage::Unknown { msg_type } => {
                return encode(&Value::dict([("msg_type", Value::Int(*msg_type))]));
            }
        };
        let mut dict = shoal_bencode::Dict::new();
        dict.insert(&b"msg_type"[..], Value::Int(msg_type));
        dict.insert(&b"piece"[..], Value::from(piece));
        if let Some(total) = total_size {
            dict.insert(&b"total_size"[..], Value::from(total));
        }
        let mut out = Vec::with_capacity(48 + data.map_or(0, Bytes::len));
        encode_into(&Value::Dict(dict), &mut out);
        if let Some(data) = data {
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn wants_round_trip_and_bad_lengths_are_refused() {
        let pieces = vec![0, 7, u32::MAX];
        assert_eq!(decode_wants(&encode_wants(&pieces)), Ok(pieces));
        assert_eq!(encode_wants(&(0..100).collect::<Vec<_>>()).len(), 4 * MAX_WANTS);
        for len in [0, 3, 5, 4 * MAX_WANTS + 4] {
            assert_eq!(decode_wants(&vec![0; len]), Err(ExtensionError::BadWants(len)));
        }
    }

    #[test]
    fn decodes_a_real_handshake() {
        let payload = b"d1:md11:ut_metadatai3e6:ut_pexi1e11:lt_donthavei0ee13:metadata_sizei31235e1:pi6881e4:reqqi250e1:v18:Transmission 4.0.66:yourip4:\x7f\x00\x00\x01e";
        let h = ExtHandshake::decode(payload).expect("valid");
        assert_eq!(h.id_of(UT_METADATA), Some(3));
        assert_eq!(h.id_of(UT_PEX), Some(1));
        assert_eq!(h.id_of("lt_donthave"), None, "id 0 means disabled");
        assert_eq!(h.m.get("lt_donthave"), Some(&0));
        assert_eq!(h.metadata_size, Some(31235));
        assert_eq!(h.p, Some(6881));
        assert_eq!(h.reqq, Some(250));
        assert_eq!(h.v.as_deref(), Some("Transmission 4.0.6"));
        assert_eq!(h.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn wrong_typed_optional_keys_are_ignored() {
        let payload = b"d1:md1:xi300e1:yi-1e1:z1:ae1:pi70000e4:reqq3:abc6:yourip3:abc1:vi5ee";
        let h = ExtHandshake::decode(payload).expect("tolerated");
        assert!(h.m.is_empty());
        assert_eq!(h, ExtHandshake::default());
        assert_eq!(ExtHandshake::decode(b"de"), Ok(ExtHandshake::default()));
        assert!(matches!(ExtHandshake::decode(b"li1ee"), Err(ExtensionError::NotADict("list"))));
        assert!(matches!(ExtHandshake::decode(b"d1:m"), Err(ExtensionError::Bencode(_))));
    }

    #[test]
    fn handshake_roundtrip() {
        let h = ExtHandshake {
            m: [(UT_METADATA.to_owned(), 2), (UT_PEX.to_owned(), 1)].into_iter().collect(),
            v: Some("Shoal 0.1.0".into()),
            p: Some(51413),
            reqq: Some(500),
            metadata_size: Some(12345),
            yourip: Some("2001:db8::1".parse().expect("ip")),
        };
        let bytes = h.encode();
        assert!(bytes.starts_with(b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_size"));
        assert_eq!(ExtHandshake::decode(&bytes), Ok(h));
    }

    #[test]
    fn metadata_messages() {
        let req = Bytes::from_static(b"d8:msg_typei0e5:piecei0ee");
        assert_eq!(MetadataMessage::decode(&req), Ok(MetadataMessage::Request { piece: 0 }));
        assert_eq!(MetadataMessage::Request { piece: 0 }.encode(), &req[..]);

        let data = Bytes::from_static(b"d8:msg_typei1e5:piecei1e10:total_sizei16390eeXXXXXX");
        let msg = MetadataMessage::decode(&data).expect("valid");
        let MetadataMessage::Data { piece: 1, total_size: 16390, data: ref raw } = msg else {
            panic!("unexpected {msg:?}");
        };
        assert_eq!(&raw[..], b"XXXXXX");
        assert_eq!(raw.as_ptr(), data[data.len() - 6..].as_ptr(), "no copy");
        assert_eq!(msg.encode(), &data[..]);

        let reject = Bytes::from_static(b"d8:msg_typei2e5:piecei4ee");
        assert_eq!(MetadataMessage::decode(&reject), Ok(MetadataMessage::Reject { piece: 4 }));
        let other = Bytes::from_static(b"d8:msg_typei7ee");
        assert_eq!(MetadataMessage::decode(&other), Ok(MetadataMessage::Unknown { msg_type: 7 }));
        let missing = Bytes::from_static(b"d8:msg_typei1e5:piecei0ee");
        assert_eq!(MetadataMessage::decode(&missing), Err(ExtensionError::MissingField("total_size")));
        let negative = Bytes::from_static(b"d8:msg_typei0e5:piecei-1ee");
        assert_eq!(MetadataMessage::decode(&negative), Err(ExtensionError::MissingField("piece")));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = ExtHandshake::decode(&bytes);
            let _ = MetadataMessage::decode(&Bytes::from(bytes));
        }
    }
}
