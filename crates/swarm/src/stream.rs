//! Streaming: which pieces a file being played needs next, and by when.
//!
//! A reader (a player reading a file of the torrent over HTTP while it downloads) is at a byte
//! position and consumes the file at some rate. The pieces from its position onwards get
//! deadlines: the time the reader will reach each of them at that rate. The window covers
//! [`READ_AHEAD`] of playback (at least [`MIN_WINDOW`] bytes), so it grows and shrinks with the
//! measured rate. The first and last pieces of the file come early too: players read a file's
//! head first and many then look at its end (an MP4 whose index, the `moov` box, was written
//! last), so the tail is asked for right after the head: [`HEAD`] and [`TAIL`].
//!
//! The picker ([`crate::picker`]) takes the pieces in deadline order before anything else,
//! from the peers able to deliver them soonest, and asks a second peer for the blocks of a
//! piece whose deadline passed; outside the windows the normal rarest-first choice goes on, so
//! a streaming peer still holds pieces others want. This follows the time-critical piece
//! logic libtorrent documents for streaming (`../shared/specs/libtorrent-streaming.rst`): a
//! list of pieces sorted by deadline, the most urgent requested first and re-requested when
//! late.

use std::ops::Range;
use std::time::{Duration, Instant};

use shoal_proto::{Layout, PieceIndex};

/// Playback time the window covers ahead of the reader.
pub const READ_AHEAD: Duration = Duration::from_secs(20);
/// The smallest window, in bytes (the rate of a reader that just started is not known yet).
pub const MIN_WINDOW: u64 = 4 << 20;
/// The largest window, in bytes, whatever the rate.
pub const MAX_WINDOW: u64 = 128 << 20;
/// Rate assumed for a reader until one is measured (about an 8 Mbit/s video).
pub const DEFAULT_RATE: f64 = 1024.0 * 1024.0;
/// Bytes at the start of a file fetched first (at least one piece).
pub const HEAD: u64 = 256 << 10;
/// Bytes at the end of a file fetched right after the head (at least one piece): enough for
/// the index of most files, and little enough not to hold up the head of a file whose index
/// is at the start (at 200 kB/s a 256 KiB tail cost over a second before the first frame).
pub const TAIL: u64 = 64 << 10;
/// The most pieces with deadlines at once, over all readers.
pub const MAX_URGENT: usize = 1024;

/// One reader of one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Reader {
    /// The file's bytes within the torrent (offsets from the start of the torrent's data).
    pub file: Range<u64>,
    /// The next byte it will read, in the same offsets.
    pub position: u64,
    /// Bytes per second it consumes, once measured.
    pub rate: Option<f64>,
    /// When `position` was last set (deadlines count from there).
    pub since: Instant,
}

impl Reader {
    fn rate(&self) -> f64 {
        self.rate.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(DEFAULT_RATE).max(1.0)
    }

    /// The bytes the window covers: from the position, [`READ_AHEAD`] of playback.
    pub fn window(&self) -> Range<u64> {
        let start = self.position.clamp(self.file.start, self.file.end);
        let len = ((self.rate() * READ_AHEAD.as_secs_f64()) as u64).clamp(MIN_WINDOW, MAX_WINDOW);
        start..start.saturating_add(len).min(self.file.end)
    }
}

/// A piece with a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Urgent {
    /// The piece.
    pub piece: PieceIndex,
    /// When a reader will need it.
    pub deadline: Instant,
}

/// The pieces the readers need and by when, earliest deadline first, without the pieces
/// `have` says are done, at most [`MAX_URGENT`].
pub fn deadlines(readers: &[Reader], layout: &Layout, have: impl Fn(PieceIndex) -> bool) -> Vec<Urgent> {
    let mut out: Vec<Urgent> = Vec::new();
    let total = layout.total_length();
    let plen = u64::from(layout.piece_length());
    let mut add = |range: Range<u64>, deadline: &dyn Fn(u64) -> Instant| {
        let range = range.start.min(total)..range.end.min(total);
        if range.is_empty() {
            return;
        }
        for index in (range.start / plen)..range.end.div_ceil(plen) {
            let Some(piece) = layout.piece(index as u32) else { break };
            if have(piece) {
                continue;
            }
            let start = layout.piece_offset(piece).max(range.start);
            out.push(Urgent { piece, deadline: deadline(start) });
        }
    };
    for reader in readers {
        let rate = reader.rate();
        let window = reader.window();
        let at =
            |offset: u64| reader.since + Duration::from_secs_f64(offset.saturating_sub(window.start) as f64 / rate);
        add(window.clone(), &at);
        // The head as urgent as the first bytes of the window, the tail once the head would
        // have been read at the reader's rate.
        let head = reader.file.start..reader.file.start.saturating_add(HEAD).min(reader.file.end);
        add(head, &|_| reader.since);
        let tail = reader.file.end.saturating_sub(TAIL).max(reader.file.start)..reader.file.end;
        let after_head = reader.since + Duration::from_secs_f64(HEAD.max(plen) as f64 / rate);
        add(tail, &|_| after_head);
    }
    // Earliest deadline per piece, then in deadline order (ties in piece order).
    out.sort_by_key(|u| (u.piece, u.deadline));
    out.dedup_by_key(|u| u.piece);
    out.sort_by_key(|u| (u.deadline, u.piece));
    out.truncate(MAX_URGENT);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: u32 = 256 * 1024;

    fn layout(pieces: u64) -> Layout {
        Layout::new(pieces * u64::from(PIECE), PIECE).expect("layout")
    }

    fn idx(urgent: &[Urgent]) -> Vec<u32> {
        urgent.iter().map(|u| u.piece.get()).collect()
    }

    #[test]
    fn the_window_follows_the_rate_within_bounds() {
        let now = Instant::now();
        let r = |rate| Reader { file: 0..1 << 40, position: 1000, rate, since: now };
        assert_eq!(r(None).window(), 1000..1000 + 20 * (1 << 20));
        assert_eq!(r(Some(10.0)).window(), 1000..1000 + MIN_WINDOW);
        assert_eq!(r(Some(1e12)).window(), 1000..1000 + MAX_WINDOW);
        assert_eq!(r(Some(500_000.0)).window(), 1000..1000 + 10_000_000);
        // Never past the file.
        let short = Reader { file: 0..5000, position: 1000, rate: None, since: now };
        assert_eq!(short.window(), 1000..5000);
    }

    #[test]
    fn pieces_under_the_reader_come_first_then_head_and_tail_then_the_rest_in_order() {
        let now = Instant::now();
        let layout = layout(400);
        let plen = u64::from(PIECE);
        // A file spanning pieces 10..=309, read at piece 100 at 256 KiB/s (20 s: 20 pieces).
        let reader = Reader { file: 10 * plen..310 * plen, position: 100 * plen, rate: Some(plen as f64), since: now };
        let urgent = deadlines(&[reader], &layout, |_| false);
        let order = idx(&urgent);
        // Same deadline (now): the head (10) and the window's first piece (100), in piece
        // order; then the tail with the window's second piece; then the window.
        assert_eq!(order[..2], [10, 100]);
        assert_eq!(order[2..4], [101, 309]);
        assert_eq!(order[4..], (102..120).collect::<Vec<_>>()[..]);
        // Deadlines grow one second per piece at this rate.
        let at = |p: u32| urgent.iter().find(|u| u.piece.get() == p).expect("piece").deadline;
        assert_eq!(at(105) - at(100), Duration::from_secs(5));
        assert!(urgent.windows(2).all(|w| w[0].deadline <= w[1].deadline));
    }

    #[test]
    fn pieces_already_had_are_left_out_and_readers_merge() {
        let now = Instant::now();
        let layout = layout(100);
        let plen = u64::from(PIECE);
        let a = Reader { file: 0..100 * plen, position: 0, rate: Some(plen as f64), since: now };
        let b = Reader { position: 50 * plen, ..a.clone() };
        let urgent = deadlines(&[a, b], &layout, |p| p.get() % 2 == 0);
        let order = idx(&urgent);
        assert!(order.iter().all(|p| p % 2 == 1), "{order:?}");
        // Each piece once, the earliest deadline kept: 51 is b's first odd piece.
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), order.len());
        assert_eq!(order[..3], [1, 51, 99]);
    }

    #[test]
    fn at_most_max_urgent_pieces() {
        let now = Instant::now();
        let layout = Layout::new(1 << 36, 16 * 1024).expect("layout");
        let reader = Reader { file: 0..1 << 36, position: 0, rate: Some(1e12), since: now };
        assert_eq!(deadlines(&[reader], &layout, |_| false).len(), MAX_URGENT);
    }
}
