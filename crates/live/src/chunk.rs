//! Signed chunks and the window a viewer keeps.
//!
//! A chunk is a piece of the stream with its sequence number and the broadcaster's clock (ms
//! since the Unix epoch) when it was cut, signed with the channel's key over
//! `shoal-live-chunk-v1\n` | key | seq | time | length | payload, so a relay can neither alter,
//! renumber nor move a chunk to another channel. Wire form: seq (8 bytes, big-endian) | time (8)
//! | payload length (4) | payload (at most [`MAX_PAYLOAD`]) | Ed25519 signature (64); anything
//! else is refused with the reason, before any signature is checked.
//!
//! [`Window`]: what a viewer accepts — chunks within `behind` of the newest it has (older ones
//! are replays or hopelessly late: PPSPP's live discard window) and at most `ahead` past it,
//! each once. It remembers at most `behind + ahead` sequence numbers.

use std::collections::BTreeSet;

use shoal_identity::{Identity, IdentityId};

/// Largest payload of one chunk.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Bytes before the payload.
pub const HEADER: usize = 8 + 8 + 4;
/// Bytes of the signature.
pub const SIGNATURE: usize = 64;
const CONTEXT: &[u8] = b"shoal-live-chunk-v1\n";

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Too short, too long, or its length field does not match.
    #[error("a malformed chunk: {0}")]
    Malformed(String),
    /// Its payload is over [`MAX_PAYLOAD`].
    #[error("a chunk payload of {0} bytes (at most {MAX_PAYLOAD})")]
    TooLarge(usize),
    /// Signing failed.
    #[error("cannot sign a chunk: {0}")]
    Sign(String),
}

/// One chunk of a live stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Its place in the stream, from 0.
    pub seq: u64,
    /// The broadcaster's clock when it was cut, ms since the Unix epoch.
    pub at_ms: u64,
    /// The stream's bytes.
    pub payload: Vec<u8>,
    /// The broadcaster's signature.
    pub signature: [u8; SIGNATURE],
}

fn signed_bytes(key: &IdentityId, seq: u64, at_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT.len() + 32 + HEADER + payload.len());
    out.extend(CONTEXT);
    out.extend(key.0);
    out.extend(seq.to_be_bytes());
    out.extend(at_ms.to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out
}

impl Chunk {
    /// Chunk `seq` of `identity`'s channel, cut at `at_ms`.
    pub fn sign(identity: &Identity, seq: u64, at_ms: u64, payload: Vec<u8>) -> Result<Chunk, ChunkError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(ChunkError::TooLarge(payload.len()));
        }
        let signature = identity
            .sign(&signed_bytes(&identity.id(), seq, at_ms, &payload))
            .map_err(|e| ChunkError::Sign(e.to_string()))?;
        let signature = signature.try_into().map_err(|_| ChunkError::Sign("not a 64-byte signature".into()))?;
        Ok(Chunk { seq, at_ms, payload, signature })
    }

    /// Whether `key` signed this chunk as it is.
    pub fn verify(&self, key: &IdentityId) -> bool {
        key.verify(&signed_bytes(key, self.seq, self.at_ms, &self.payload), &self.signature)
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len() + SIGNATURE);
        out.extend(self.seq.to_be_bytes());
        out.extend(self.at_ms.to_be_bytes());
        out.extend((self.payload.len() as u32).to_be_bytes());
        out.extend(&self.payload);
        out.extend(self.signature);
        out
    }

    /// Reads the wire form (the signature is not checked here: see [`Chunk::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER + SIGNATURE {
            return Err(ChunkError::Malformed(format!("{} bytes (at least {})", bytes.len(), HEADER + SIGNATURE)));
        }
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let len = u32::from_be_bytes(bytes[16..20].try_into().unwrap_or([0; 4])) as usize;
        if len > MAX_PAYLOAD {
            return Err(ChunkError::TooLarge(len));
        }
        if bytes.len() != HEADER + len + SIGNATURE {
            return Err(ChunkError::Malformed(format!(
                "{} bytes for a payload of {len} (expected {})",
                bytes.len(),
                HEADER + len + SIGNATURE
            )));
        }
        let mut signature = [0u8; SIGNATURE];
        signature.copy_from_slice(&bytes[HEADER + len..]);
        Ok(Chunk { seq: word(0), at_ms: word(8), payload: bytes[HEADER..HEADER + len].to_vec(), signature })
    }
}

/// What [`Window::offer`] made of a chunk's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// New: keep it.
    New,
    /// Had already.
    Duplicate,
    /// Older than the window: a replay, or too late to play.
    TooOld,
    /// Further past the newest than the window reaches.
    TooFarAhead,
}

/// The chunks a viewer accepts (see the module documentation).
#[derive(Clone, Debug)]
pub struct Window {
    behind: u64,
    ahead: u64,
    newest: Option<u64>,
    have: BTreeSet<u64>,
}

impl Window {
    /// A window keeping `behind` chunks before the newest and accepting `ahead` past it.
    pub fn new(behind: u64, ahead: u64) -> Window {
        Window { behind: behind.max(1), ahead: ahead.max(1), newest: None, have: BTreeSet::new() }
    }

    /// The newest chunk accepted.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Whether chunk `seq` is held.
    pub fn has(&self, seq: u64) -> bool {
        self.have.contains(&seq)
    }

    /// Offers chunk `seq`; a new one is recorded and may move the window on.
    pub fn offer(&mut self, seq: u64) -> Offered {
        if let Some(newest) = self.newest {
            if seq.saturating_add(self.behind) <= newest {
                return Offered::TooOld;
            }
            if seq > newest.saturating_add(self.ahead) {
                return Offered::TooFarAhead;
            }
        }
        if !self.have.insert(seq) {
            return Offered::Duplicate;
        }
        let newest = self.newest.map_or(seq, |n| n.max(seq));
        self.newest = Some(newest);
        // Forget what fell out of the window.
        let floor = newest.saturating_sub(self.behind - 1);
        while self.have.first().is_some_and(|&s| s < floor) {
            self.have.pop_first();
        }
        Offered::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_chunk_checks_and_an_altered_or_foreign_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(&dir.path().join("me"), None).expect("identity");
        let (other, _) = Identity::load_or_create(&dir.path().join("other"), None).expect("identity");
        let chunk = Chunk::sign(&me, 7, 1_700_000_000_000, b"mpeg-ts bytes".to_vec()).expect("sign");
        let back = Chunk::decode(&chunk.encode()).expect("decode");
        assert_eq!(back, chunk);
        assert!(back.verify(&me.id()));
        assert!(!back.verify(&other.id()), "another channel's key");
        for alter in [
            |c: &mut Chunk| c.seq += 1,
            |c: &mut Chunk| c.at_ms += 1,
            |c: &mut Chunk| c.payload[0] ^= 1,
            |c: &mut Chunk| c.payload.push(0),
        ] {
            let mut forged = chunk.clone();
            alter(&mut forged);
            assert!(!forged.verify(&me.id()), "{forged:?}");
        }
        assert!(matches!(Chunk::sign(&me, 0, 0, vec![0; MAX_PAYLOAD + 1]), Err(ChunkError::TooLarge(_))));
    }

    #[test]
    fn malformed_wire_forms_are_refused_before_any_signature_work() {
        let mut ok = vec![0u8; HEADER + 3 + SIGNATURE];
        ok[19] = 3;
        assert!(Chunk::decode(&ok).is_ok());
        assert!(matches!(Chunk::decode(&ok[..10]), Err(ChunkError::Malformed(_))));
        let mut longer = ok.clone();
        longer.push(0);
        assert!(matches!(Chunk::decode(&longer), Err(ChunkError::Malformed(_))));
        let mut huge = ok;
        huge[16..20].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        assert_eq!(Chunk::decode(&huge), Err(ChunkError::TooLarge(MAX_PAYLOAD + 1)));
    }

    #[test]
    fn the_window_takes_each_chunk_once_and_refuses_replays_and_wild_jumps() {
        let mut w = Window::new(10, 5);
        assert_eq!(w.offer(100), Offered::New);
        assert_eq!(w.offer(100), Offered::Duplicate);
        assert_eq!(w.offer(95), Offered::New, "a late one within the window");
        assert_eq!(w.offer(90), Offered::TooOld, "10 behind the newest is out");
        assert_eq!(w.offer(106), Offered::TooFarAhead);
        assert_eq!(w.offer(105), Offered::New);
        assert_eq!(w.newest(), Some(105));
        assert_eq!(w.offer(95), Offered::TooOld, "the window moved on: a replay of 95 is refused");
        assert!(!w.has(95) && w.has(100));
        for seq in 106..10_000 {
            w.offer(seq);
        }
        assert!(w.have.len() <= 15, "{} remembered", w.have.len());
    }
}
