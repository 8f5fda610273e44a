//! Transfer-rate estimation in caller-supplied time: bytes are added as they move and the rate
//! is folded into a moving average whenever [`Rate::update`] is called with the current time.

use std::time::{Duration, Instant};

/// An exponentially weighted bytes-per-second estimate.
#[derive(Clone, Debug)]
pub struct Rate {
    window_bytes: u64,
    window_start: Instant,
    rate: f64,
    total: u64,
}

impl Rate {
    /// Weight of the newest sample in the average.
    const ALPHA: f64 = 0.4;
    /// Shortest interval over which a sample is taken.
    const MIN_SAMPLE: Duration = Duration::from_millis(500);

    /// A zero rate starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self { window_bytes: 0, window_start: now, rate: 0.0, total: 0 }
    }

    /// Counts `bytes` moved.
    pub fn add(&mut self, bytes: u64) {
        self.window_bytes += bytes;
        self.total += bytes;
    }

    /// Folds the bytes counted since the last sample into the average, if enough time passed.
    pub fn update(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < Self::MIN_SAMPLE {
            return;
        }
        let sample = self.window_bytes as f64 / elapsed.as_secs_f64();
        self.rate = if self.rate == 0.0 { sample } else { Self::ALPHA * sample + (1.0 - Self::ALPHA) * self.rate };
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
