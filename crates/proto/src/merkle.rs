//! The BitTorrent v2 hash exchange (BEP 52): the `hash request` (id 21), `hashes` (id 22) and
//! `hash reject` (id 23) peer messages, building the answer to a request from a file's Merkle
//! tree ([`prove`]), and checking an answer against hashes already trusted ([`verify`]).
//!
//! A file's tree is numbered by layer: layer 0 holds the leaves (SHA-256 of each 16 KiB block,
//! zero past the file's end), layer `height` its root. A request names a file by its `pieces
//! root`, a `base` layer, `count` hashes of it starting at `index` (a power of two, at least 2,
//! `index` a multiple of it), and `proof_layers`: the answer carries the `count` hashes, then
//! one "uncle" per layer from the top of the requested span up to `base + proof_layers` — the
//! sibling of the span's ancestor there — so the receiver can climb to a node it already trusts
//! (a piece layer entry or the root). Layers inside the span are left out, as BEP 52 says: a
//! request of `count` hashes with `proof_layers` carries `max(0, proof_layers + 1 -
//! log2(count))` uncles (libtorrent 2.x counts them the same way).
//!
//! Payloads of all three messages start with the same 48 bytes: root (32), base, index, count,
//! proof layers (u32 each, big-endian); `hashes` follows them with 32-byte hashes.
//!
//! Written here rather than taken from a crate: no maintained Rust crate implements BEP 52's
//! proofs, and the rules are a few dozen lines over `sha2`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::metainfo::v2::{Hash, node, pad_hash};
use crate::wire::Message;

/// Message id of `hash request`.
pub const HASH_REQUEST: u8 = 21;
/// Message id of `hashes`.
pub const HASHES: u8 = 22;
/// Message id of `hash reject`.
pub const HASH_REJECT: u8 = 23;
/// The most hashes of a layer one request may ask for (BEP 52: "SHOULD NOT be greater than
/// 512"); larger requests are rejected.
pub const MAX_COUNT: u32 = 512;
/// Bytes before the hashes in each of the three messages.
pub const HEADER_LEN: usize = 48;

/// A `hash request`, and the header echoed by `hashes` and `hash reject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The file's `pieces root`.
    pub root: Hash,
    /// The layer the hashes start at (0: leaves).
    pub base: u32,
    /// Position of the first hash in that layer.
    pub index: u32,
    /// Number of hashes of the base layer.
    pub count: u32,
    /// Ancestor layers the proof climbs.
    pub proof_layers: u32,
}

/// One decoded BEP 52 hash message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashMessage {
    /// id 21: please send these hashes.
    Request(HashRequest),
    /// id 22: the hashes asked for, then the uncles of the proof.
    Hashes(HashRequest, Vec<Hash>),
    /// id 23: the sender will not answer this request.
    Reject(HashRequest),
}

/// Why a hash message or an answer to a request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not one of ids 21–23.
    #[error("message id {0} is not a BEP 52 hash message")]
    NotAHashMessage(u8),
    /// The payload's size does not fit the message.
    #[error("{message} payload of {len} bytes, expected {expected}")]
    BadLength {
        /// Which message.
        message: &'static str,
        /// Its payload's size.
        len: usize,
        /// What it should be.
        expected: &'static str,
    },
    /// The request's numbers do not describe a part of the file's tree.
    #[error("bad hash request: {0}")]
    BadRequest(&'static str),
    /// An answer with the wrong number of hashes for its request.
    #[error("{got} hashes for a request of {count} with {uncles} uncle hashes")]
    WrongCount {
        /// Hashes received.
        got: usize,
        /// Base-layer hashes asked for.
        count: u32,
        /// Uncles the request implies.
        uncles: u32,
    },
    /// The proof climbs to a node that disagrees with the one trusted.
    #[error("the hashes do not add up to the trusted hash at layer {layer}, index {index}")]
    Forged {
        /// Layer of the node reached.
        layer: u32,
        /// Its position in the layer.
        index: u64,
    },
    /// The proof stops at a node nothing trusted is known for.
    #[error("the proof stops at layer {layer}, index {index}, where no hash is known")]
    Unanchored {
        /// Layer of the node reached.
        layer: u32,
        /// Its position in the layer.
        index: u64,
    },
}

impl HashRequest {
    /// The request as the 48 bytes every hash message starts with.
    fn put(&self, out: &mut BytesMut) {
        out.put_slice(&self.root);
        out.put_u32(self.base);
        out.put_u32(self.index);
        out.put_u32(self.count);
        out.put_u32(self.proof_layers);
    }

    fn read(p: &[u8]) -> Self {
        let u = |at: usize| u32::from_be_bytes(p[at..at + 4].try_into().expect("4 bytes"));
        Self {
            root: p[..32].try_into().expect("32 bytes"),
            base: u(32),
            index: u(36),
            count: u(40),
            proof_layers: u(44),
        }
    }

    /// log2 of `count` (the span's height above the base layer).
    fn span_height(&self) -> u32 {
        self.count.max(1).trailing_zeros()
    }

    /// How many uncle hashes an answer carries after the `count` base-layer hashes.
    pub fn uncles(&self) -> u32 {
        (self.proof_layers + 1).saturating_sub(self.span_height())
    }

    /// Checks the request against a file whose tree has `leaves` leaves (a power of two):
    /// `count` a power of two from 2 to [`MAX_COUNT`], `index` a multiple of it, the span
    /// inside the base layer, and the proof below the root.
    pub fn check(&self, leaves: u64) -> Result<(), HashError> {
        let height = leaves.max(1).trailing_zeros();
        if self.count < 2 || !self.count.is_power_of_two() {
            return Err(HashError::BadRequest("the count is not a power of two of at least 2"));
        }
        if self.count > MAX_COUNT {
            return Err(HashError::BadRequest("more than 512 hashes asked for"));
        }
        if !self.index.is_multiple_of(self.count) {
            return Err(HashError::BadRequest("the index is not a multiple of the count"));
        }
        if self.base >= height {
            return Err(HashError::BadRequest("the base layer is at or above the file's root"));
        }
        let width = leaves >> self.base;
        if u64::from(self.index) + u64::from(self.count) > width {
            return Err(HashError::BadRequest("the hashes asked for lie past the file's tree"));
        }
        if self.proof_layers >= height - self.base {
            return Err(HashError::BadRequest("the proof climbs above the file's root"));
        }
        Ok(())
    }
}

impl HashMessage {
    /// Decodes the payload of a message with id 21, 22 or 23. Only sizes are checked here;
    /// [`HashRequest::check`] and [`verify`] judge the numbers against the torrent.
    pub fn decode(id: u8, payload: &[u8]) -> Result<Self, HashError> {
        let name = match id {
            HASH_REQUEST => "hash request",
            HASHES => "hashes",
            HASH_REJECT => "hash reject",
            other => return Err(HashError::NotAHashMessage(other)),
        };
        let fixed = id != HASHES;
        let ok = if fixed {
            payload.len() == HEADER_LEN
        } else {
            payload.len() > HEADER_LEN && (payload.len() - HEADER_LEN).is_multiple_of(32)
        };
        if !ok {
            let expected = if fixed { "48" } else { "48 plus a positive multiple of 32" };
            return Err(HashError::BadLength { message: name, len: payload.len(), expected });
        }
        let req = HashRequest::read(payload);
        Ok(match id {
            HASH_REQUEST => Self::Request(req),
            HASH_REJECT => Self::Reject(req),
            _ => Self::Hashes(req, payload[HEADER_LEN..].chunks_exact(32).map(|c| c.try_into().expect("32")).collect()),
        })
    }

    /// The message as a peer wire message (ids BEP 3's codec does not name travel as
    /// [`Message::Unknown`]).
    pub fn to_message(&self) -> Message {
        let (id, req, hashes) = match self {
            Self::Request(r) => (HASH_REQUEST, r, &[][..]),
            Self::Hashes(r, h) => (HASHES, r, &h[..]),
            Self::Reject(r) => (HASH_REJECT, r, &[][..]),
        };
        let mut out = BytesMut::with_capacity(HEADER_LEN + 32 * hashes.len());
        req.put(&mut out);
        for h in hashes {
            out.put_slice(h);
        }
        Message::Unknown { id, payload: Bytes::from(out) }
    }
}

/// Builds the answer to a checked request: the `count` hashes of the base layer, then the
/// uncles. `node(layer, index)` gives a node of the file's tree; `None` from it (a node the
/// caller does not have) makes the whole answer `None`, to be rejected.
pub fn prove(req: &HashRequest, mut node: impl FnMut(u32, u64) -> Option<Hash>) -> Option<Vec<Hash>> {
    let mut out = Vec::with_capacity((req.count + req.uncles()) as usize);
    for i in 0..u64::from(req.count) {
        out.push(node(req.base, u64::from(req.index) + i)?);
    }
    for layer in req.base + req.span_height()..=req.base + req.proof_layers {
        let ancestor = u64::from(req.index) >> (layer - req.base);
        out.push(node(layer, ancestor ^ 1)?);
    }
    Some(out)
}

/// Checks an answer to `req`: the base-layer hashes are folded into the span's root, the
/// uncles climb from there, and the node reached must equal `trusted(layer, index)`. Returns
/// the base-layer hashes. A mismatch is [`HashError::Forged`]: the sender lied (or sent
/// hashes of other data), which is reason enough to ban it.
pub fn verify(
    req: &HashRequest,
    hashes: &[Hash],
    trusted: impl Fn(u32, u64) -> Option<Hash>,
) -> Result<Vec<Hash>, HashError> {
    let uncles = req.uncles();
    if req.count < 2
        || !req.count.is_power_of_two()
        || !req.index.is_multiple_of(req.count)
        || hashes.len() != (req.count + uncles) as usize
    {
        return Err(HashError::WrongCount { got: hashes.len(), count: req.count, uncles });
    }
    let (base, rest) = hashes.split_at(req.count as usize);
    let mut level = base.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|p| node(&p[0], &p[1])).collect();
    }
    let mut hash = level[0];
    let mut layer = req.base + req.span_height();
    let mut index = u64::from(req.index) >> req.span_height();
    for uncle in rest {
        hash = if index.is_multiple_of(2) { node(&hash, uncle) } else { node(uncle, &hash) };
        layer += 1;
        index /= 2;
    }
    match trusted(layer, index) {
        Some(want) if want == hash => Ok(base.to_vec()),
        Some(_) => Err(HashError::Forged { layer, index }),
        None => Err(HashError::Unanchored { layer, index }),
    }
}

/// The layers of a Merkle tree from some layer up to the root, built once from that layer's
/// real nodes (those past them are all-zero subtrees).
#[derive(Clone, Debug)]
pub struct Levels {
    /// The layer `nodes[0]` sits at.
    bottom: u32,
    /// `nodes[k]`: the real nodes of layer `bottom + k`; the last holds the root alone.
    nodes: Vec<Vec<Hash>>,
}

impl Levels {
    /// The tree above `nodes`, which sit at `layer` of a tree whose layer has `width` nodes (a
    /// power of two, at least `nodes.len()`).
    pub fn build(nodes: Vec<Hash>, layer: u32, width: u64) -> Self {
        let mut levels = vec![nodes];
        let mut pad = pad_hash(layer);
        let mut width = width.max(1);
        while width > 1 {
            let below = levels.last().expect("one level at least");
            let next: Vec<Hash> = below.chunks(2).map(|p| node(&p[0], p.get(1).unwrap_or(&pad))).collect();
            levels.push(next);
            pad = node(&pad, &pad);
            width /= 2;
        }
        Self { bottom: layer, nodes: levels }
    }

    /// The layer the levels start at.
    pub fn bottom(&self) -> u32 {
        self.bottom
    }

    /// The root.
    pub fn root(&self) -> Hash {
        let top = self.nodes.last().expect("one level at least");
        top.first().copied().unwrap_or(pad_hash(self.bottom + self.nodes.len() as u32 - 1))
    }

    /// Node `index` of `layer`: a real node, the hash of an all-zero subtree past them, or
    /// `None` below the levels or past the layer's width.
    pub fn node(&self, layer: u32, index: u64) -> Option<Hash> {
        let level = self.nodes.get(layer.checked_sub(self.bottom)? as usize)?;
        let width = 1u64 << (self.nodes.len() as u32 - 1 - (layer - self.bottom));
        if index >= width {
            return None;
        }
        Some(level.get(index as usize).copied().unwrap_or(pad_hash(layer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::v2::{file_root, leaves};

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    #[test]
    fn messages_roundtrip_and_sizes_are_checked() {
        let req = HashRequest { root: [7; 32], base: 2, index: 8, count: 4, proof_layers: 5 };
        for msg in [
            HashMessage::Request(req),
            HashMessage::Reject(req),
            HashMessage::Hashes(req, vec![[1; 32], [2; 32], [3; 32]]),
        ] {
            let Message::Unknown { id, payload } = msg.to_message() else { panic!("an unknown-id message") };
            assert_eq!(HashMessage::decode(id, &payload), Ok(msg));
        }
        assert!(matches!(HashMessage::decode(21, &[0; 47]), Err(HashError::BadLength { .. })));
        assert!(matches!(HashMessage::decode(22, &[0; 48]), Err(HashError::BadLength { .. })));
        assert!(matches!(HashMessage::decode(22, &[0; 48 + 33]), Err(HashError::BadLength { .. })));
        assert_eq!(HashMessage::decode(7, &[0; 48]), Err(HashError::NotAHashMessage(7)));
    }

    #[test]
    fn requests_outside_the_tree_are_refused() {
        let ok = HashRequest { root: [0; 32], base: 0, index: 4, count: 4, proof_layers: 4 };
        assert_eq!(ok.check(32), Ok(()));
        assert_eq!(ok.uncles(), 3);
        for (bad, leaves) in [
            (HashRequest { count: 3, ..ok }, 32),
            (HashRequest { count: 1024, index: 0, ..ok }, 2048),
            (HashRequest { index: 2, ..ok }, 32),
            (HashRequest { base: 5, ..ok }, 32),
            (HashRequest { index: 32, ..ok }, 32),
            (HashRequest { proof_layers: 5, ..ok }, 32),
            (HashRequest { count: u32::MAX, ..ok }, u64::MAX),
        ] {
            assert!(bad.check(leaves).is_err(), "{bad:?} against {leaves} leaves");
        }
    }

    /// Every request over a file's tree is answered with hashes that verify against the root,
    /// and a changed hash anywhere in the answer is caught.
    #[test]
    fn proofs_verify_against_the_root_and_forgeries_do_not() {
        let file = data(13 * 16384 + 100); // 14 blocks: a tree of 16 leaves, 4 layers
        let levels = Levels::build(leaves(&file), 0, 16);
        assert_eq!(levels.root(), file_root(&file));
        let root = levels.root();
        let trusted = |layer: u32, index: u64| (layer == 4 && index == 0).then_some(root);
        let mut checked = 0;
        for base in 0..4u32 {
            for count in [2u32, 4, 8, 16] {
                for index in (0..16 >> base).step_by(count as usize) {
                    let req = HashRequest { root, base, index, count, proof_layers: 3 - base };
                    if req.check(16).is_err() {
                        continue;
                    }
                    let answer = prove(&req, |l, i| levels.node(l, i)).expect("every node is known");
                    assert_eq!(answer.len() as u32, count + req.uncles());
                    let got = verify(&req, &answer, trusted).expect("an honest proof");
                    assert_eq!(got.len(), count as usize);
                    for k in 0..answer.len() {
                        let mut forged = answer.clone();
                        forged[k][0] ^= 1;
                        assert!(matches!(verify(&req, &forged, trusted), Err(HashError::Forged { .. })));
                    }
                    let mut short = answer.clone();
                    short.pop();
                    assert!(matches!(verify(&req, &short, trusted), Err(HashError::WrongCount { .. })));
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "{checked} requests tried");
        // A proof that stops short of anything trusted is not taken on faith.
        let req = HashRequest { root, base: 0, index: 0, count: 2, proof_layers: 0 };
        let answer = prove(&req, |l, i| levels.node(l, i)).expect("known");
        assert!(matches!(verify(&req, &answer, trusted), Err(HashError::Unanchored { layer: 1, index: 0 })));
    }

    #[test]
    fn piece_layer_levels_pad_with_zero_subtrees() {
        // Pieces of 4 blocks; a file of 9 blocks has 3 pieces, the tree 16 leaves.
        let file = data(9 * 16384);
        let pieces: Vec<Hash> = file.chunks(4 * 16384).map(|p| crate::metainfo::v2::piece_root(p, 4 * 16384)).collect();
        let levels = Levels::build(pieces, 2, 4);
        assert_eq!(levels.root(), file_root(&file));
        assert_eq!(levels.node(2, 3), Some(pad_hash(2)));
        assert_eq!(levels.node(2, 4), None);
        assert_eq!(levels.node(1, 0), None);
        assert_eq!(levels.node(4, 0), Some(levels.root()));
    }
}
