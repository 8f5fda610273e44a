//! Announce tokens (BEP 5 "get_peers" / "announce_peer"): a `get_peers` reply carries a token
//! bound to the querier's IP address, and an `announce_peer` is accepted only with a token we
//! gave to that same IP recently. This stops a node from signing up other hosts as peers.
//!
//! As BEP 5 suggests, a token is a SHA-1 over a secret and the IP address. The secret changes
//! every [`ROTATE_EVERY`] (it is derived from a fixed key and the number of the current period,
//! so rotating needs no state), and tokens from the current and the previous period are
//! accepted: a token stays valid for five to ten minutes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// How often the token secret changes.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Length of the tokens we hand out.
pub const TOKEN_LEN: usize = 8;

/// Issues and checks announce tokens.
#[derive(Clone)]
pub struct Tokens {
    /// Secret key; tokens can be forged by anyone who knows it.
    key: [u8; 20],
    start: Instant,
}

impl Tokens {
    /// Tokens keyed by `key`, with periods counted from `now`.
    pub fn new(key: [u8; 20], now: Instant) -> Self {
        Tokens { key, start: now }
    }

    fn period(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / ROTATE_EVERY.as_secs()
    }

    fn make(&self, period: u64, ip: IpAddr) -> [u8; TOKEN_LEN] {
        let mut h = Sha1::new();
        h.update(self.key);
        h.update(period.to_be_bytes());
        match ip {
            IpAddr::V4(ip) => h.update(ip.octets()),
            IpAddr::V6(ip) => h.update(ip.octets()),
        }
        let digest = h.finalize();
        let mut token = [0u8; TOKEN_LEN];
        token.copy_from_slice(&digest[..TOKEN_LEN]);
        token
    }

    /// The token for `ip` at `now`.
    pub fn token(&self, ip: IpAddr, now: Instant) -> [u8; TOKEN_LEN] {
        self.make(self.period(now), ip)
    }

    /// Whether `token` was issued to `ip` in the current or the previous period.
    pub fn check(&self, ip: IpAddr, token: &[u8], now: Instant) -> bool {
        let p = self.period(now);
        token == self.make(p, ip) || (p > 0 && token == self.make(p - 1, ip))
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_rotate_and_bind_to_ip() {
        let t0 = Instant::now();
        let tokens = Tokens::new([5; 20], t0);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let tok = tokens.token(a, t0);
        assert!(tokens.check(a, &tok, t0));
        assert!(!tokens.check(b, &tok, t0), "bound to the IP");
        assert!(tokens.check(a, &tok, t0 + Duration::from_secs(9 * 60)), "previous period accepted");
        assert!(!tokens.check(a, &tok, t0 + Duration::from_secs(10 * 60)), "two periods old is rejected");
        assert!(!tokens.check(a, b"short", t0));
        assert_ne!(Tokens::new([6; 20], t0).token(a, t0), tok, "depends on the key");
    }
}
