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
    /// Bytes taken while a rate was set, less refunds: how much of the cap was used.
    taken: AtomicU64,
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
            taken: AtomicU64::new(0),
            // Full, as after an idle period: the first transfer need not wait for a refill.
            bucket: Mutex::new(Bucket { tokens: Self::burst(rate.unwrap_or(0) as f64), last: Instant::now() }),
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
        let _ = self.taken.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_sub(bytes)));
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.tokens = (b.tokens + bytes as f64).min(Self::burst(rate));
    }

    /// Bytes taken so far under a rate (less refunds); compare two readings with
    /// [`RateLimiter::rate`] to see how much of the cap was used in between.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Takes `bytes` at time `now`; returns how long the caller must wait, if at all.
    fn take(&self, bytes: u64, now: Instant) -> Option<Duration> {
        let rate = self.rate.load(Ordering::Relaxed) as f64;
        if rate == 0.0 {
            return None;
        }
        self.taken.fetch_add(bytes, Ordering::Relaxed);
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

    /// How much of the caps the flow used since `last` (the readings of a previous call,
    /// updated here) over `elapsed`: bytes taken as a fraction of what the most used cap allows
    /// (1.0: the flow is held at a cap). `None` when no cap is set.
    pub(crate) fn usage(&self, last: &mut Vec<u64>, elapsed: Duration) -> Option<f64> {
        last.resize(self.0.len(), 0);
        let secs = elapsed.as_secs_f64();
        let mut most: Option<f64> = None;
        for (limiter, last) in self.0.iter().zip(last.iter_mut()) {
            let taken = limiter.taken();
            let delta = taken.saturating_sub(*last);
            *last = taken;
            if let Some(rate) = limiter.rate()
                && secs > 0.0
            {
                let used = delta as f64 / (rate as f64 * secs);
                most = Some(most.map_or(used, |m: f64| m.max(used)));
            }
        }
        most
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
    fn usage_is_the_share_of_the_most_used_cap() {
        let session = std::sync::Arc::new(RateLimiter::new(Some(1_000_000)));
        let torrent = std::sync::Arc::new(RateLimiter::new(None));
        let caps = Caps(vec![torrent.clone(), session.clone()]);
        let mut last = Vec::new();
        assert_eq!(caps.usage(&mut last, Duration::from_secs(1)), Some(0.0));
        let now = Instant::now();
        let _ = session.take(500_000, now);
        let _ = torrent.take(500_000, now);
        let used = caps.usage(&mut last, Duration::from_secs(1)).expect("a cap is set");
        assert!((used - 0.5).abs() < 1e-9, "{used}");
        session.refund(250_000);
        assert_eq!(caps.usage(&mut last, Duration::from_secs(1)), Some(0.0), "a refund is not use");
        torrent.set_rate(Some(100_000));
        let _ = torrent.take(100_000, now);
        let _ = session.take(100_000, now);
        let used = caps.usage(&mut last, Duration::from_secs(1)).expect("caps are set");
        assert!((used - 1.0).abs() < 1e-9, "the torrent's own cap binds: {used}");
        session.set_rate(None);
        torrent.set_rate(None);
        assert_eq!(caps.usage(&mut last, Duration::from_secs(1)), None);
    }

    #[test]
    fn a_new_limiter_lets_its_first_burst_through() {
        let limiter = RateLimiter::new(Some(200_000));
        let now = Instant::now();
        assert_eq!(limiter.take(16_384, now), None, "the first block of a fresh cap goes out at once");
        assert!(limiter.take(16_384, now).is_some(), "then the rate holds");
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
