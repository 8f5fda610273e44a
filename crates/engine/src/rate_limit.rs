//! A token-bucket rate limiter shared by many tasks (the session's global upload or download
//! cap, or one torrent's own; a connection is held to both through `Caps`). Callers take the
//! bytes they are about to move; when the bucket runs into debt they sleep until the debt is
//! repaid at the configured rate, so the long-run rate never exceeds the cap and a burst after
//! an idle period is at most a tenth of a second's worth, or 16 KiB if that is more.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Limits a byte flow to a rate; a rate of 0 means unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may be moved right now; negative while in debt.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter at `rate` bytes per second (`None` or 0: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate: AtomicU64::new(rate.unwrap_or(0)),
            bucket: Mutex::new(Bucket { tokens: 0.0, last: Instant::now() }),
        }
    }

    /// Changes the rate (0: unlimited).
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// The current rate, if limited.
    pub fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    /// Most bytes that can pass at once after an idle period: a tenth of a second's worth.
    fn burst(rate: f64) -> f64 {
        (rate / 10.0).max(16.0 * 1024.0)
    }

    /// Takes `bytes` from the bucket and waits as long as that puts the bucket in debt.
    pub async fn acquire(&self, bytes: u64) {
        let Some(wait) = self.take(bytes, Instant::now()) else { return };
        tokio::time::sleep(wait).await;
    }

    /// Gives back `bytes` taken by [`RateLimiter::acquire`] that were not moved after all.
    pub fn refund(&self, bytes: u64) {
        let rate = self.rate.load(Ordering::Relaxed) as f64;
        if rate == 0.0 {
            return;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.tokens = (b.tokens + bytes as f64).min(Self::burst(rate));
    }

    /// Takes `bytes` at time `now`; returns how long the caller must wait, if at all.
    fn take(&self, bytes: u64, now: Instant) -> Option<Duration> {
        let rate = self.rate.load(Ordering::Relaxed) as f64;
        if rate == 0.0 {
            return None;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * rate).min(Self::burst(rate));
        b.tokens -= bytes as f64;
        (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / rate))
    }
}

/// A flow under several caps at once (a torrent's own and the session's): bytes are taken
/// from each in turn.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caps(pub(crate) Vec<std::sync::Arc<RateLimiter>>);

impl Caps {
    /// Waits until every cap allows `bytes`.
    pub(crate) async fn acquire(&self, bytes: u64) {
        for limiter in &self.0 {
            limiter.acquire(bytes).await;
        }
    }

    /// Gives `bytes` back to every cap.
    pub(crate) fn refund(&self, bytes: u64) {
        for limiter in &self.0 {
            limiter.refund(bytes);
        }
    }

    /// The tightest rate, if any cap is set.
    pub(crate) fn rate(&self) -> Option<u64> {
        self.0.iter().filter_map(|l| l.rate()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_run_rate_is_held() {
        let limiter = RateLimiter::new(Some(1_000_000));
        let start = Instant::now();
        let mut now = start;
        // Move 10 MB in 16 KiB blocks, advancing virtual time by each wait.
        let mut moved = 0u64;
        while moved < 10_000_000 {
            if let Some(wait) = limiter.take(16_384, now) {
                now += wait;
            }
            moved += 16_384;
        }
        let secs = now.duration_since(start).as_secs_f64();
        let rate = moved as f64 / secs;
        assert!((rate - 1_000_000.0).abs() / 1_000_000.0 < 0.02, "rate {rate}");
    }

    #[test]
    fn unlimited_never_waits() {
        let limiter = RateLimiter::new(None);
        assert_eq!(limiter.take(u64::MAX / 2, Instant::now()), None);
    }

    #[test]
    fn refunded_bytes_shorten_the_next_wait() {
        let limiter = RateLimiter::new(Some(100_000));
        let now = Instant::now();
        let without = limiter.take(50_000, now).expect("debt");
        limiter.refund(50_000);
        let with = limiter.take(50_000, now).expect("debt");
        assert!(with <= without, "refund repaid the debt: {with:?} vs {without:?}");
        limiter.refund(10_000_000);
        assert!(limiter.take(10_000, now).is_none(), "the bucket holds at most a burst, which covers this");
    }
}
