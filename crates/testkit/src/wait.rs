//! Bounded waiting on a condition: the replacement for fixed sleeps in tests.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every `poll_interval` until it returns true or `timeout` has passed.
///
/// The condition is checked at once, then at most `timeout / poll_interval + 1` more times, and
/// never after the deadline; the last check happens at the deadline, so a condition that becomes
/// true just in time is still seen. Returns an error saying how long it waited and how many
/// times it checked.
///
/// # Panics
/// When `poll_interval` is zero (the number of polls would be unbounded).
pub fn wait_until(timeout: Duration, poll_interval: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    assert!(!poll_interval.is_zero(), "wait_until needs a non-zero poll interval");
    let start = Instant::now();
    let deadline = start + timeout;
    let max_polls = timeout.as_nanos() / poll_interval.as_nanos() + 2;
    let mut polls = 0u128;
    while polls < max_polls {
        polls += 1;
        if cond() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep(poll_interval.min(deadline - now));
    }
    Err(format!(
        "condition still false after {:.1?} ({polls} checks, every {poll_interval:?}, timeout {timeout:?})",
        start.elapsed()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let start = Instant::now();
        wait_until(Duration::from_secs(10), Duration::from_millis(1), || {
            n += 1;
            n == 5
        })
        .expect("becomes true");
        assert_eq!(n, 5);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn times_out_within_bounds() {
        let mut n = 0u32;
        let start = Instant::now();
        let err = wait_until(Duration::from_millis(100), Duration::from_millis(10), || {
            n += 1;
            false
        })
        .expect_err("never true");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!((2..=12).contains(&n), "{n} checks");
        assert!(err.contains("still false"), "{err}");
    }

    #[test]
    fn zero_timeout_checks_once() {
        let mut n = 0;
        assert!(
            wait_until(Duration::ZERO, Duration::from_millis(5), || {
                n += 1;
                false
            })
            .is_err()
        );
        assert_eq!(n, 1);
    }
}
