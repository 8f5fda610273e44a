//! Per-source-IP rate limiting of incoming packets, so a flood from one host (or many) costs a
//! bounded amount of decoding, hashing and replying. Each IP gets a token bucket refilled in
//! the caller's (possibly virtual) time. At most [`RateLimit::max_sources`] IPs get their own
//! bucket; packets from any further IP share one overflow bucket, so memory stays bounded and
//! a flood from many addresses cannot starve the hosts already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Parameters of the per-IP packet rate limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained packets per second accepted from one IP.
    pub per_second: f64,
    /// Packets one IP may send in a burst.
    pub burst: f64,
    /// Most IPs tracked separately.
    pub max_sources: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { per_second: 20.0, burst: 50.0, max_sources: 4096 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refilled(&self, limit: &RateLimit, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * limit.per_second).min(limit.burst)
    }

    fn take(&mut self, limit: &RateLimit, now: Instant) -> bool {
        self.tokens = self.refilled(limit, now);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Token buckets by source IP.
#[derive(Clone, Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    /// At most `limit.max_sources` entries.
    sources: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        RateLimiter { limit, sources: HashMap::new(), overflow: Bucket { tokens: limit.burst, last: now } }
    }

    /// Whether a packet from `ip` may be processed now.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let limit = self.limit;
        if let Some(b) = self.sources.get_mut(&ip) {
            return b.take(&limit, now);
        }
        if self.sources.len() < limit.max_sources {
            let mut b = Bucket { tokens: limit.burst, last: now };
            let ok = b.take(&limit, now);
            self.sources.insert(ip, b);
            return ok;
        }
        self.overflow.take(&limit, now)
    }

    /// Forgets IPs whose bucket has refilled completely: they are back to a fresh start anyway.
    pub(crate) fn purge(&mut self, now: Instant) {
        let limit = self.limit;
        self.sources.retain(|_, b| b.refilled(&limit, now) < limit.burst);
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn limits_each_ip_and_bounds_memory() {
        let t0 = Instant::now();
        let limit = RateLimit { per_second: 10.0, burst: 5.0, max_sources: 3 };
        let mut l = RateLimiter::new(limit, t0);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert_eq!((0..10).filter(|_| l.allow(ip(1), t0)).count(), 5, "burst");
        assert!(l.allow(ip(1), t0 + Duration::from_millis(100)), "refilled one token");
        // Many new IPs: only max_sources are tracked, the rest share the overflow bucket.
        let passed = (0..100).filter(|n| l.allow(ip(10 + n), t0)).count();
        assert_eq!(l.tracked(), 3);
        assert_eq!(passed, 2 + 5);
        l.purge(t0 + Duration::from_secs(10));
        assert_eq!(l.tracked(), 0);
    }
}
