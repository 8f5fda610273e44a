//! Transfer-rate estimation in caller-supplied time: bytes are added as they move and the rate
//! is folded into a moving average whenever [`Rate::update`] is called with the current time.
//! When nothing has moved for [`Rate::IDLE`], the rate is 0 (an average would otherwise take
//! many seconds to decay, and a front end would show traffic that stopped long ago).

use std::time::{Duration, Instant};

/// An exponentially weighted bytes-per-second estimate.
#[derive(Clone, Debug)]
pub struct Rate {
    window_bytes: u64,
    window_start: Instant,
    rate: f64,
    total: u64,
    /// Start of the run of empty samples going on now (`None`: the last sample had bytes).
    idle_from: Option<Instant>,
}

impl Rate {
    /// Weight of the newest sample in the average.
    const ALPHA: f64 = 0.4;
    /// Shortest interval over which a sample is taken.
    const MIN_SAMPLE: Duration = Duration::from_millis(500);
    /// After this long without a byte the rate is 0.
    pub const IDLE: Duration = Duration::from_secs(2);

    /// A zero rate starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self { window_bytes: 0, window_start: now, rate: 0.0, total: 0, idle_from: None }
    }

    /// Counts `bytes` moved.
    pub fn add(&mut self, bytes: u64) {
        self.window_bytes += bytes;
        self.total += bytes;
    }

    /// Takes back `bytes` counted but not moved after all (a block queued to send and then
    /// cancelled, or left queued when its connection ended).
    pub fn take_back(&mut self, bytes: u64) {
        self.window_bytes = self.window_bytes.saturating_sub(bytes);
        self.total = self.total.saturating_sub(bytes);
    }

    /// Folds the bytes counted since the last sample into the average, if enough time passed.
    pub fn update(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < Self::MIN_SAMPLE {
            return;
        }
        let sample = self.window_bytes as f64 / elapsed.as_secs_f64();
        self.rate = if self.rate == 0.0 { sample } else { Self::ALPHA * sample + (1.0 - Self::ALPHA) * self.rate };
        if self.window_bytes > 0 {
            self.idle_from = None;
        } else {
            // Idle since the start of this empty window.
            let since = *self.idle_from.get_or_insert(self.window_start);
            if now.saturating_duration_since(since) >= Self::IDLE {
                self.rate = 0.0;
            }
        }
        self.window_bytes = 0;
        self.window_start = now;
    }

    /// Current estimate in bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.rate
    }

    /// Every byte ever counted.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_rate_falls_to_zero_soon_after_traffic_stops() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0);
        for i in 1..=10 {
            r.add(1_000_000);
            r.update(t0 + Duration::from_millis(500 * i));
        }
        assert!(r.bytes_per_sec() > 1_500_000.0, "{}", r.bytes_per_sec());
        let stop = t0 + Duration::from_millis(5000);
        r.update(stop + Duration::from_millis(500));
        assert!(r.bytes_per_sec() > 0.0, "one empty sample only lowers the average");
        for i in 2..=5 {
            r.update(stop + Duration::from_millis(500 * i));
        }
        assert_eq!(
            r.bytes_per_sec(),
            0.0,
            "zero within {:?} of the last byte",
            Rate::IDLE + Duration::from_millis(500)
        );
        assert_eq!(r.total(), 10_000_000);
    }
}
