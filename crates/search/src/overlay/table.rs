//! Query routing tables: Bloom filters of the words a node can answer for, in levels by
//! distance (attenuated Bloom filters).
//!
//! A node's own filter holds, for every token of the names, file paths and tags in its index,
//! its prefixes of 2, 4 and 6 characters (a one-letter token whole); a query word is looked up by
//! its longest such prefix, so it matches the filter whenever the full-text index could match
//! it as a prefix (the filter may say yes wrongly, never no wrongly). Three keys per token
//! rather than six keep the filters of a whole network's level sparse enough to route by. The table a node sends a neighbour has [`LEVELS`] filters: level 0 is the node's
//! own, level `i` the union of level `i - 1` of the tables its other neighbours sent it, that is
//! the words of the nodes `i` hops further on. A query is sent only where some level within its
//! remaining hops matches all of its words.
//!
//! The idea is Gnutella's query routing protocol (each ultrapeer keeps its leaves' keyword
//! tables and sends a query on its last hop only where it can match) taken to every hop with a
//! level per distance (attenuated Bloom filters, Rhea and Kubiatowicz 2002).

/// Bits in one filter.
pub const BLOOM_BITS: usize = 1 << 17;
/// Bit positions set per key.
pub const HASHES: usize = 4;
/// Levels of a table: level `i` covers nodes `i + 1` hops from the receiver.
pub const LEVELS: usize = 4;
/// Longest prefix of a token stored; a longer query word is matched by its first characters.
pub const PREFIX_CHARS: usize = 6;

/// The prefix lengths stored for a token of `len` characters.
fn stored_lengths(len: usize) -> impl Iterator<Item = usize> {
    let one = (len == 1).then_some(1);
    one.into_iter().chain((2..=PREFIX_CHARS.min(len)).step_by(2))
}

const WORDS: usize = BLOOM_BITS / 64;

/// One Bloom filter of [`BLOOM_BITS`] bits.
#[derive(Clone, PartialEq, Eq)]
pub struct Bloom(Box<[u64]>);

impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bloom({} bits set)", self.count())
    }
}

impl Default for Bloom {
    fn default() -> Self {
        Bloom(vec![0u64; WORDS].into_boxed_slice())
    }
}

/// FNV-1a, 64 bits: the same on every node and every build (a filter crosses the network).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn positions(key: &str) -> impl Iterator<Item = usize> {
    let h = fnv1a(key.as_bytes());
    let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..HASHES as u64).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % BLOOM_BITS as u64) as usize)
}

/// The lower-case alphanumeric runs of `text`, as the full-text index splits it.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase)
}

/// The keys a query needs: one per token of its words, its longest stored prefix.
pub fn query_keys(words: &str) -> Vec<String> {
    let mut keys: Vec<String> = tokens(words)
        .map(|t| {
            let len = t.chars().count();
            let cut = stored_lengths(len).last().unwrap_or(1);
            t.chars().take(cut).collect()
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl Bloom {
    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn get(&self, bit: usize) -> bool {
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Adds one key.
    pub fn insert_key(&mut self, key: &str) {
        for bit in positions(key) {
            self.set(bit);
        }
    }

    /// Adds the stored prefixes of every token of `text`.
    pub fn insert_text(&mut self, text: &str) {
        for token in tokens(text) {
            let chars: Vec<char> = token.chars().take(PREFIX_CHARS).collect();
            for len in stored_lengths(token.chars().count()) {
                self.insert_key(&chars[..len].iter().collect::<String>());
            }
        }
    }

    /// Whether every key may be in the filter (no key: no).
    pub fn matches(&self, keys: &[String]) -> bool {
        !keys.is_empty() && keys.iter().all(|k| positions(k).all(|bit| self.get(bit)))
    }

    /// Adds `other`'s keys.
    pub fn union(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// Bits set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The set bits, ascending.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| (0..64u32).filter(move |b| w & (1 << b) != 0).map(move |b| i as u32 * 64 + b))
    }

    /// A filter with these bits set; `None` when one is out of range.
    pub fn from_ones(ones: impl IntoIterator<Item = u32>) -> Option<Bloom> {
        let mut bloom = Bloom::default();
        for bit in ones {
            if bit as usize >= BLOOM_BITS {
                return None;
            }
            bloom.set(bit as usize);
        }
        Some(bloom)
    }

    /// The raw bits, little-endian words (`BLOOM_BITS / 8` bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A filter from [`Bloom::to_bytes`]; `None` unless exactly `BLOOM_BITS / 8` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Bloom> {
        if bytes.len() != BLOOM_BITS / 8 {
            return None;
        }
        let words = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        Some(Bloom(words))
    }
}

/// A routing table: [`LEVELS`] filters by distance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Level `i`: the words of nodes `i + 1` hops from the receiver.
    pub levels: Vec<Bloom>,
}

impl Table {
    /// The nearest level (0 = the neighbour itself) within `within` levels that matches every
    /// key.
    pub fn nearest(&self, keys: &[String], within: usize) -> Option<usize> {
        self.levels.iter().take(within).position(|level| level.matches(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_word_matches_every_token_it_starts_and_nothing_else() {
        let mut b = Bloom::default();
        b.insert_text("Ubuntu-24.04 desktop amd64.iso");
        assert!(b.matches(&query_keys("ubu 24.04")));
        assert!(!b.matches(&query_keys("UBUNTU here")), "every word must match");
        assert!(b.matches(&query_keys("desktopx")), "a word past six characters matches by its first six");
        assert!(!b.matches(&query_keys("debian")));
        assert!(!b.matches(&query_keys("")), "no word matches nothing");
        assert!(!b.matches(&query_keys("i")), "one letter matches a one-letter token only");
        b.insert_text("part i");
        assert!(b.matches(&query_keys("i")));
        let again = Bloom::from_bytes(&b.to_bytes()).expect("bytes");
        assert_eq!(again, b);
        assert_eq!(Bloom::from_ones(b.ones()).expect("ones"), b);
        assert!(Bloom::from_ones([BLOOM_BITS as u32]).is_none());
        assert!(Bloom::from_bytes(&[0; 3]).is_none());
    }

    #[test]
    fn false_positives_stay_rare_at_the_size_of_a_network_level() {
        // 2,000 names of three 8-letter words: about what a whole 50-node network holds.
        let mut b = Bloom::default();
        let word = |i: u64| format!("{:x}", fnv1a(&i.to_le_bytes()) & 0xffff_ffff);
        for i in 0..2000u64 {
            b.insert_text(&format!("{} {} {}", word(3 * i), word(3 * i + 1), word(3 * i + 2)));
        }
        let wrong =
            (10_000..11_000u64).filter(|&i| b.matches(&query_keys(&format!("{} {}", word(i), word(i + 7))))).count();
        assert!(wrong < 20, "{wrong} of 1,000 two-word queries matched words never added");
    }
}
