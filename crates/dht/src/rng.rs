//! A small deterministic random generator (xorshift64*), the same as `shoal-swarm`'s, copied
//! rather than depended on so the DHT does not pull in the swarm logic. It drives choices that
//! only need to be unpredictable enough for load spreading (transaction id start, refresh
//! targets, peer sampling) and must repeat exactly in virtual-time tests. Nothing secret comes
//! from it: token secrets and the node id are derived from the seed with SHA-1 (see
//! [`crate::Node::new`]), so an observer who reconstructs this generator's state learns nothing
//! that lets them forge tokens.

use crate::id::NodeId;

/// Deterministic pseudo-random numbers. Not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (zero is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// A uniformly random node id.
    pub fn node_id(&mut self) -> NodeId {
        let mut id = [0u8; 20];
        for chunk in id.chunks_mut(8) {
            let r = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        NodeId(id)
    }
}
