//! The small amount of parallelism the storage layer uses: piece checks and content hashing
//! split their work over a few scoped threads (the caller's thread is one of them) that pull
//! work items from shared counters. Progress callbacks run only on the caller's thread, so
//! they need not be `Send`. The first error stops every thread at its next item.

use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Upper bound on threads used by one check or hash run.
const MAX_THREADS: usize = 4;

/// How many threads to use for `items` independent work items.
pub(crate) fn thread_count(items: usize) -> usize {
    thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS).min(items.max(1))
}

/// Runs `work` on `threads` threads, one of them the caller's. `work` gets a tick function
/// to call after each item; on the caller's thread it is `tick`, elsewhere a no-op. While
/// the other threads finish, `tick` is also called every 20 ms. Panics in helpers are
/// re-raised on the caller's thread.
pub(crate) fn run<W>(threads: usize, work: W, mut tick: impl FnMut())
where
    W: Fn(&mut dyn FnMut()) + Sync,
{
    thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.max(1)).map(|_| scope.spawn(|| work(&mut || {}))).collect();
        work(&mut tick);
        while !helpers.iter().all(|h| h.is_finished()) {
            tick();
            thread::sleep(Duration::from_millis(20));
        }
        for helper in helpers {
            if let Err(payload) = helper.join() {
                panic::resume_unwind(payload);
            }
        }
    });
}

/// Keeps the first error raised by any thread and tells the others to stop.
pub(crate) struct FirstError<E> {
    failed: AtomicBool,
    error: Mutex<Option<E>>,
}

impl<E> FirstError<E> {
    pub(crate) fn new() -> Self {
        Self { failed: AtomicBool::new(false), error: Mutex::new(None) }
    }

    /// `true` once any thread has failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Records `error` unless an earlier one is already kept.
    pub(crate) fn set(&self, error: E) {
        self.failed.store(true, Ordering::Relaxed);
        self.error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
    }

    /// The kept error, if any.
    pub(crate) fn into_result(self) -> Result<(), E> {
        match self.error.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
