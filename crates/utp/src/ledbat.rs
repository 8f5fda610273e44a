//! LEDBAT congestion control (RFC 6817, as BEP 29 uses it): the window grows while the
//! queueing delay our packets meet stays under [`TARGET`] and shrinks in proportion as it goes
//! over, so a uTP transfer fills an idle path but steps aside for TCP, which fills queues.
//!
//! - The one-way delay of our packets is what the peer measures and sends back in each
//!   packet's `timestamp_difference` field (its clock minus ours: the clocks' offset is in it,
//!   and cancels out below).
//! - The base delay is the least such delay seen over the last [`BASE_HISTORY`] minutes (one
//!   minimum per minute, as RFC 6817 keeps), the queueing delay a sample's excess over it; a
//!   sample is the least of the last [`CURRENT_FILTER`] (RFC 6817's current delay filter).
//! - Under the target, for each ack: `cwnd += (TARGET − queueing) / TARGET · acked · MSS / cwnd`
//!   (RFC 6817, GAIN 1: at most one MSS per window, as TCP). Over it, the decrease is
//!   multiplicative, as LEDBAT++ (draft-irtf-iccrg-ledbat-plus-plus) has it:
//!   `cwnd += max(MSS − cwnd · (queueing / TARGET − 1), −cwnd / 2) · acked / cwnd`, so a window
//!   halves within a round trip when TCP has filled the queue far past the target, instead of
//!   losing one MSS per round trip while TCP waits behind it (measured: `bench/ledbat.py`).
//!   Never below one MSS.
//! - Slow start (libtorrent's uTP has one too; RFC 6817 allows it): the window doubles each
//!   round trip until the queueing delay reaches half the target or a packet is lost.
//! - A loss halves the window, at most once per window of data; a timeout drops it to one
//!   packet and slow-starts it back up to half what it was (TCP's `ssthresh`).
//!
//! Pure: the caller passes the clock in, so tests run in virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queueing delay LEDBAT aims at (BEP 29 and libtorrent use 100 ms).
pub const TARGET: Duration = Duration::from_millis(100);
/// Minutes of per-minute minima the base delay is taken over.
pub const BASE_HISTORY: usize = 3;
/// Samples the current delay is the least of.
pub const CURRENT_FILTER: usize = 3;
/// Most a window may grow to (a peer's receive window caps it further).
pub const MAX_CWND: usize = 16 << 20;

/// The congestion state of one connection.
#[derive(Debug, Clone)]
pub struct Ledbat {
    cwnd: usize,
    mss: usize,
    slow_start: bool,
    /// Where slow start ends.
    ssthresh: usize,
    /// Minimum delay of each of the last minutes, newest last, and when the newest began.
    base: VecDeque<u32>,
    base_started: Option<Instant>,
    /// The last few delay samples (µs).
    current: VecDeque<u32>,
    /// The last queueing delay computed (µs), for reporting.
    queueing: u32,
}

impl Ledbat {
    /// A window of two packets of `mss` bytes.
    pub fn new(mss: usize) -> Ledbat {
        Ledbat {
            cwnd: 2 * mss,
            mss,
            slow_start: true,
            ssthresh: MAX_CWND,
            base: VecDeque::new(),
            base_started: None,
            current: VecDeque::new(),
            queueing: 0,
        }
    }

    /// The congestion window in bytes.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// The last measured queueing delay.
    pub fn queueing_delay(&self) -> Duration {
        Duration::from_micros(self.queueing.into())
    }

    /// Whether the window is still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// The packet size changed (a larger datagram became possible).
    pub fn set_mss(&mut self, mss: usize) {
        self.cwnd = self.cwnd.max(2 * mss);
        self.mss = mss;
    }

    /// A delay sample: the `timestamp_difference` of a packet from the peer (0 means none).
    pub fn on_delay_sample(&mut self, now: Instant, delay_us: u32) {
        if delay_us == 0 {
            return;
        }
        let new_minute = self.base_started.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        if new_minute {
            self.base.push_back(delay_us);
            self.base_started = Some(now);
            while self.base.len() > BASE_HISTORY {
                self.base.pop_front();
            }
        } else if let Some(last) = self.base.back_mut() {
            // Offsets between clocks can make the difference wrap: compare as signed distances.
            if (delay_us.wrapping_sub(*last) as i32) < 0 {
                *last = delay_us;
            }
        }
        self.current.push_back(delay_us);
        while self.current.len() > CURRENT_FILTER {
            self.current.pop_front();
        }
    }

    /// Bytes were acked (newly): grows the window by the queueing delay's distance to target.
    pub fn on_ack(&mut self, acked: usize) {
        let base = self.base.iter().copied().min_by_key(|&d| d.wrapping_sub(self.base[0]) as i32);
        let current = self.current.iter().copied().min_by_key(|&d| d.wrapping_sub(self.current[0]) as i32);
        let queueing = match (base, current) {
            (Some(b), Some(c)) => (c.wrapping_sub(b) as i32).max(0) as u32,
            _ => 0,
        };
        self.queueing = queueing;
        let target = TARGET.as_micros() as f64;
        if self.slow_start {
            if f64::from(queueing) >= target / 2.0 {
                self.slow_start = false;
            } else {
                self.cwnd = (self.cwnd + acked).min(self.ssthresh);
                if self.cwnd >= self.ssthresh {
                    self.slow_start = false;
                }
                return;
            }
        }
        let (cwnd, mss, acked) = (self.cwnd as f64, self.mss as f64, acked as f64);
        let delay = f64::from(queueing);
        let change = if delay <= target {
            (target - delay) / target * acked * mss / cwnd
        } else {
            (mss - cwnd * (delay / target - 1.0)).max(-cwnd / 2.0) * acked / cwnd
        };
        let cwnd = cwnd + change;
        self.cwnd = (cwnd.max(self.mss as f64) as usize).min(MAX_CWND);
    }

    /// A packet was lost (three later packets acked, or a duplicate ack): halve, once per window.
    pub fn on_loss(&mut self) {
        self.slow_start = false;
        self.cwnd = (self.cwnd / 2).max(self.mss);
        self.ssthresh = self.cwnd;
    }

    /// The retransmission timer fired: back to one packet, slow start up to half the window.
    pub fn on_timeout(&mut self) {
        self.ssthresh = (self.cwnd / 2).max(2 * self.mss);
        self.slow_start = true;
        self.cwnd = self.mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1_400;

    /// Feeds `rounds` windows of acks with the given queueing delay over a base of 20 ms.
    fn run(l: &mut Ledbat, start: Instant, queueing_ms: u32, rounds: usize) {
        for i in 0..rounds {
            let now = start + Duration::from_millis(i as u64 * 50);
            l.on_delay_sample(now, 20_000);
            l.on_delay_sample(now, 20_000 + queueing_ms * 1000);
            // The filter keeps the least of the last three: push the queueing sample thrice.
            l.on_delay_sample(now, 20_000 + queueing_ms * 1000);
            l.on_delay_sample(now, 20_000 + queueing_ms * 1000);
            let window = l.window();
            l.on_ack(window);
        }
    }

    #[test]
    fn slow_start_doubles_until_the_delay_rises() {
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        run(&mut l, start, 0, 5);
        assert_eq!(l.window(), 2 * MSS * 32);
        assert!(l.in_slow_start());
        run(&mut l, start, 60, 1);
        assert!(!l.in_slow_start(), "60 ms of queueing is past half the target");
    }

    #[test]
    fn under_target_grows_over_target_shrinks() {
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        l.on_loss(); // out of slow start
        let before = l.window();
        run(&mut l, start, 10, 20);
        let grown = l.window();
        assert!(grown > before, "{grown} > {before}");
        assert!(grown <= before + 20 * MSS, "no faster than one packet per round trip");
        run(&mut l, start, 190, 20);
        assert!(l.window() < grown, "{} < {grown}: 90 ms over the target shrinks the window", l.window());
        run(&mut l, start, 1_000, 200);
        assert_eq!(l.window(), MSS, "never below one packet");
    }

    #[test]
    fn far_over_target_the_window_halves_within_a_round_trip() {
        // A queue TCP filled to 300 ms: LEDBAT++'s decrease, not one MSS per round trip.
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        run(&mut l, start, 0, 8);
        l.on_loss();
        let w = l.window();
        assert!(w > 100 * MSS, "{w}");
        run(&mut l, start, 300, 1);
        assert!(l.window() <= w / 2 + MSS, "{} after one round trip from {w}", l.window());
        run(&mut l, start, 300, 10);
        assert!(l.window() < w / 100, "{}", l.window());
    }

    #[test]
    fn at_target_the_window_holds() {
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        l.on_loss();
        run(&mut l, start, 30, 30);
        let w = l.window();
        run(&mut l, start, 100, 30);
        assert_eq!(l.window(), w);
    }

    #[test]
    fn losses_halve_and_timeouts_reset() {
        let mut l = Ledbat::new(MSS);
        run(&mut l, Instant::now(), 0, 4);
        let w = l.window();
        l.on_loss();
        assert_eq!(l.window(), w / 2);
        l.on_timeout();
        assert_eq!(l.window(), MSS);
        // Slow start again, up to half the window before the timeout.
        run(&mut l, Instant::now(), 0, 10);
        let after = l.window();
        assert!(after >= w / 4 && after <= w / 4 + 10 * MSS, "{after} from {}", w / 4);
        assert!(!l.in_slow_start());
    }

    #[test]
    fn the_base_delay_forgets_old_minutes() {
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        l.on_delay_sample(start, 5_000);
        for minute in 1..=BASE_HISTORY as u64 {
            l.on_delay_sample(start + Duration::from_secs(60 * minute), 50_000);
        }
        l.on_ack(MSS);
        assert_eq!(l.queueing_delay(), Duration::ZERO, "the 5 ms minute has aged out");
    }

    #[test]
    fn clock_offsets_that_wrap_are_compared_as_distances() {
        let start = Instant::now();
        let mut l = Ledbat::new(MSS);
        let base = u32::MAX - 1_000; // the peer's clock is behind ours
        l.on_delay_sample(start, base);
        l.on_delay_sample(start, base.wrapping_add(30_000));
        l.on_delay_sample(start, base.wrapping_add(30_000));
        l.on_delay_sample(start, base.wrapping_add(30_000));
        l.on_ack(MSS);
        assert_eq!(l.queueing_delay(), Duration::from_millis(30));
    }
}
