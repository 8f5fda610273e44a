//! A small deterministic random generator (xorshift64*), seeded by the caller, so the random
//! choices of the swarm logic (piece ties, optimistic unchokes) and the DHT node (transaction
//! ids, refresh targets, peer sampling) repeat exactly in simulations and virtual-time tests.
//! Nothing secret may come from it.

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
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}
