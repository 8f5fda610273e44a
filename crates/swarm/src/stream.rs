//! Streaming: which pieces a file being played needs next, and by when.
//!
//! A reader (a player reading a file of the torrent over HTTP while it downloads) is at a byte
//! position and consumes the file at some rate. The pieces from its position onwards get
//! deadlines: the time the reader will reach each of them at that rate. The window covers
//! [`READ_AHEAD`] of playback (at least [`MIN_WINDOW`] bytes), so it grows and shrinks with the
//! measured rate. The first and last pieces of the file come early too: players read a file's
//! head first and many then look at its end (an MP4 whose index, the `moov` box, was written
//! last), so the tail is asked for right after the head: [`HEAD`] and [`TAIL`]. A reader of such
//! an index gets the media's first window right after it, since the player goes back there
//! next (often on a new request, having closed the first one).
//!
//! The picker ([`crate::picker`]) takes the pieces in deadline order before anything else,
//! from the peers able to deliver them soonest, and asks a second peer for the blocks of a
//! piece that has taken clearly longer than pieces usually take ([`PieceTimes`]); outside the
//! windows the normal rarest-first choice goes on, so
//! a streaming peer still holds pieces others want. This follows the time-critical piece
//! logic libtorrent documents for streaming (`../shared/specs/libtorrent-streaming.rst`): a
//! list of pieces sorted by deadline, the most urgent requested first and re-requested when
//! they time out.

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
/// The most bytes fetched early for an index found after an MP4's media data.
pub const MAX_INDEX: u64 = 4 << 20;
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
    /// Where the file's index is, once its first bytes told ([`mp4_index`]; same offsets as
    /// `file`): fetched right after the first piece, instead of the [`TAIL`] guessed before.
    /// An empty range: the index is in the head, so no tail is fetched early.
    pub index: Option<Range<u64>>,
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
        // A player reading an index that follows the media data goes back to the media next
        // (and may close the request it read the head with): the media's start comes right
        // after the index.
        if let Some(index) = reader.index.as_ref().filter(|i| i.contains(&reader.position)) {
            let media = Reader { position: reader.file.start, ..reader.clone() }.window();
            let lead = index.end.saturating_sub(reader.position) as f64 / rate;
            add(media.clone(), &|offset: u64| {
                reader.since + Duration::from_secs_f64(lead + offset.saturating_sub(media.start) as f64 / rate)
            });
        }
        // The head's first byte as urgent as the window's, the rest as read at the reader's
        // rate. An index known to follow the media data right after the first piece (a
        // player reads the head's first boxes, then the index, then the media); otherwise
        // the guessed tail once the head would have been read.
        let head = reader.file.start..reader.file.start.saturating_add(HEAD).min(reader.file.end);
        let from_head =
            |offset: u64| reader.since + Duration::from_secs_f64(offset.saturating_sub(head.start) as f64 / rate);
        add(head.clone(), &from_head);
        match &reader.index {
            Some(index) => add(index.clone(), &|_| reader.since),
            None => {
                let tail = reader.file.end.saturating_sub(TAIL).max(reader.file.start)..reader.file.end;
                let after_head = reader.since + Duration::from_secs_f64(HEAD.max(plen) as f64 / rate);
                add(tail, &|_| after_head);
            }
        }
    }
    // Earliest deadline per piece, then in deadline order (ties in piece order).
    out.sort_by_key(|u| (u.piece, u.deadline));
    out.dedup_by_key(|u| u.piece);
    out.sort_by_key(|u| (u.deadline, u.piece));
    out.truncate(MAX_URGENT);
    out
}

/// Where an MP4 (or QuickTime) file keeps its index, from the file's first bytes `head` (a
/// piece or so) and its length: `None` when the bytes are not an MP4 or do not tell;
/// `Some(0..0)` when the index (`moov`) comes before the media data; otherwise the bytes after
/// the media data (`mdat`), at most [`MAX_INDEX`], where the index of a file written without
/// `faststart` is. Top-level boxes are a 32-bit big-endian size and a 4-byte type (size 1: a
/// 64-bit size follows; 0: the box runs to the end of the file), ISO/IEC 14496-12 §4.2.
pub fn mp4_index(head: &[u8], file_len: u64) -> Option<Range<u64>> {
    let mut at = 0u64;
    let mut first = true;
    loop {
        let start = usize::try_from(at).ok()?;
        let header = head.get(start..start.checked_add(16)?.min(head.len()))?;
        if header.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(header[0..4].try_into().ok()?);
        let kind = &header[4..8];
        if first && kind != b"ftyp" {
            return None;
        }
        first = false;
        let size = match size32 {
            0 => return None,
            1 => u64::from_be_bytes(header.get(8..16)?.try_into().ok()?),
            n => u64::from(n),
        };
        if size < 8 {
            return None;
        }
        match kind {
            b"moov" => return Some(0..0),
            b"mdat" => {
                let after = at.checked_add(size)?;
                return (after < file_len).then(|| after..file_len.min(after.saturating_add(MAX_INDEX)));
            }
            _ => at = at.checked_add(size)?,
        }
        if at >= file_len {
            return None;
        }
    }
}

/// How long pieces with deadlines take to arrive, so that one taking clearly longer can be asked
/// of a second peer (libtorrent's streaming notes, "timeouts"). A piece is timed from its first
/// request (or, when it was asked for before it had a deadline, from when it got one) to its
/// last block, and timed afresh once its requests were all cancelled; the times are folded into
/// a moving mean and mean deviation (as
/// TCP does for round trips), and a piece is overdue once it has taken longer than the mean
/// plus [`OVERDUE_DEVIATIONS`] deviations.
///
/// Lateness against the deadline would not do: a player reads ahead as fast as data comes, so
/// it is always waiting at the edge of what has arrived and every piece there looks late;
/// asking a second peer for each then spends a third of the download on copies (measured: four
/// seeds at half the bitrate each, 37 % of the blocks received twice and a stall). A copy pays
/// only for a piece held up at one peer.
#[derive(Debug, Default)]
pub struct PieceTimes {
    /// Pieces with deadlines being fetched, and when their first block was asked for.
    started: std::collections::HashMap<PieceIndex, Instant>,
    /// Mean seconds from first request to last block, once one piece was timed.
    mean: Option<f64>,
    /// Mean absolute deviation from it, seconds.
    deviation: f64,
}

/// Weight of a new sample in the mean.
const MEAN_WEIGHT: f64 = 1.0 / 8.0;
/// Weight of a new sample in the deviation.
const DEVIATION_WEIGHT: f64 = 1.0 / 4.0;
/// A piece is overdue past the mean time plus this many deviations.
pub const OVERDUE_DEVIATIONS: f64 = 2.0;

impl PieceTimes {
    /// The piece's first block was just asked for (later calls keep the first time).
    pub fn started(&mut self, piece: PieceIndex, now: Instant) {
        self.started.entry(piece).or_insert(now);
    }

    /// The piece's last block arrived: its time counts towards the mean.
    pub fn finished(&mut self, piece: PieceIndex, now: Instant) {
        let Some(start) = self.started.remove(&piece) else { return };
        let took = now.saturating_duration_since(start).as_secs_f64();
        match self.mean {
            None => {
                self.mean = Some(took);
                self.deviation = took / 2.0;
            }
            Some(mean) => {
                self.deviation += DEVIATION_WEIGHT * ((took - mean).abs() - self.deviation);
                self.mean = Some(mean + MEAN_WEIGHT * (took - mean));
            }
        }
    }

    /// The piece is no longer being fetched (its requests were cancelled); timing starts again
    /// with its next request.
    pub fn forget(&mut self, piece: PieceIndex) {
        self.started.remove(&piece);
    }

    /// Keeps only the pieces `keep` selects (the started map stays as small as the deadlines).
    pub fn retain(&mut self, keep: impl Fn(PieceIndex) -> bool) {
        self.started.retain(|&piece, _| keep(piece));
    }

    /// How long a piece may take before it is overdue; `None` until one piece was timed.
    pub fn limit(&self) -> Option<Duration> {
        self.mean.map(|mean| Duration::from_secs_f64(mean + OVERDUE_DEVIATIONS * self.deviation))
    }

    /// The piece has taken longer than pieces usually take ([`PieceTimes::limit`]).
    pub fn overdue(&self, piece: PieceIndex, now: Instant) -> bool {
        match (self.started.get(&piece), self.limit()) {
            (Some(&start), Some(limit)) => now.saturating_duration_since(start) > limit,
            _ => false,
        }
    }
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
    fn a_piece_is_overdue_only_once_it_took_clearly_longer_than_pieces_usually_take() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let piece = |i| PieceIndex::new_unchecked(i);
        let mut times = PieceTimes::default();
        times.started(piece(1), t0);
        // Nothing timed yet: nothing is overdue, however long it takes.
        assert!(!times.overdue(piece(1), at(60_000)));
        times.finished(piece(1), at(400));
        assert_eq!(times.limit(), Some(Duration::from_millis(800)));
        // Steady 400 ms pieces: the deviation shrinks, so the limit closes in on 400 ms.
        for i in 2..40u32 {
            let i64 = u64::from(i);
            times.started(piece(i), at(i64 * 1000));
            times.started(piece(i), at(i64 * 1000 + 300)); // a second request keeps the first time
            times.finished(piece(i), at(i64 * 1000 + 400));
        }
        let limit = times.limit().expect("timed");
        assert!(limit > Duration::from_millis(400) && limit < Duration::from_millis(420), "{limit:?}");
        times.started(piece(50), at(100_000));
        assert!(!times.overdue(piece(50), at(100_400)));
        assert!(times.overdue(piece(50), at(100_500)));
        // A cancelled piece starts again with its next request.
        times.forget(piece(50));
        assert!(!times.overdue(piece(50), at(200_000)));
        times.started(piece(50), at(200_000));
        assert!(!times.overdue(piece(50), at(200_100)));
        // A slow piece raises the limit.
        times.finished(piece(50), at(202_000));
        assert!(times.limit().expect("timed") > Duration::from_millis(1000));
        times.started(piece(51), t0);
        times.started(piece(52), t0);
        times.retain(|p| p == piece(52));
        assert!(!times.overdue(piece(51), at(300_000)));
        assert!(times.overdue(piece(52), at(300_000)));
    }

    #[test]
    fn the_window_follows_the_rate_within_bounds() {
        let now = Instant::now();
        let r = |rate| Reader { file: 0..1 << 40, position: 1000, rate, since: now, index: None };
        assert_eq!(r(None).window(), 1000..1000 + 20 * (1 << 20));
        assert_eq!(r(Some(10.0)).window(), 1000..1000 + MIN_WINDOW);
        assert_eq!(r(Some(1e12)).window(), 1000..1000 + MAX_WINDOW);
        assert_eq!(r(Some(500_000.0)).window(), 1000..1000 + 10_000_000);
        // Never past the file.
        let short = Reader { file: 0..5000, position: 1000, rate: None, since: now, index: None };
        assert_eq!(short.window(), 1000..5000);
    }

    #[test]
    fn pieces_under_the_reader_come_first_then_head_and_tail_then_the_rest_in_order() {
        let now = Instant::now();
        let layout = layout(400);
        let plen = u64::from(PIECE);
        // A file spanning pieces 10..=309, read at piece 100 at 256 KiB/s (20 s: 20 pieces).
        let reader = Reader {
            file: 10 * plen..310 * plen,
            position: 100 * plen,
            rate: Some(plen as f64),
            since: now,
            index: None,
        };
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
        let a = Reader { file: 0..100 * plen, position: 0, rate: Some(plen as f64), since: now, index: None };
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
        let reader = Reader { file: 0..1 << 36, position: 0, rate: Some(1e12), since: now, index: None };
        assert_eq!(deadlines(&[reader], &layout, |_| false).len(), MAX_URGENT);
    }

    /// The top-level boxes of an MP4: (type, size) in order.
    fn mp4(boxes: &[(&[u8; 4], u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, size) in boxes {
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&kind[..]);
            // Only the first bytes of a box matter here; the test keeps the head short.
            out.extend(std::iter::repeat_n(0u8, (*size as usize).saturating_sub(8).min(24)));
        }
        out
    }

    #[test]
    fn mp4_index_is_found_from_the_first_boxes() {
        // Index after the media data (ffmpeg's default): the bytes after `mdat`.
        let end = mp4(&[(b"ftyp", 32), (b"free", 8), (b"mdat", 8_019_259)]);
        let len = 8_070_513;
        assert_eq!(mp4_index(&end, len), Some(8_019_299..len));
        // `faststart`: the index comes first.
        let fast = mp4(&[(b"ftyp", 32), (b"moov", 51_214)]);
        assert_eq!(mp4_index(&fast, len), Some(0..0));
        // A large file: at most MAX_INDEX bytes after the media data.
        let big = mp4(&[(b"ftyp", 24), (b"mdat", 1 << 31)]);
        assert_eq!(mp4_index(&big, 1 << 40), Some(24 + (1 << 31)..24 + (1 << 31) + MAX_INDEX));
        // A 64-bit box size.
        let mut wide = mp4(&[(b"ftyp", 24)]);
        wide.extend_from_slice(&1u32.to_be_bytes());
        wide.extend_from_slice(b"mdat");
        wide.extend_from_slice(&(5u64 << 32).to_be_bytes());
        assert_eq!(mp4_index(&wide, 6 << 32), Some(24 + (5 << 32)..24 + (5 << 32) + MAX_INDEX));
        // Not an MP4, a truncated head, nothing after the media, broken sizes: no answer.
        assert_eq!(mp4_index(b"\x1aE\xdf\xa3 matroska", len), None);
        assert_eq!(mp4_index(&end[..36], len), None);
        assert_eq!(mp4_index(&mp4(&[(b"ftyp", 32), (b"mdat", 100)]), 132), None);
        assert_eq!(mp4_index(&mp4(&[(b"ftyp", 4)]), len), None);
        let mut zero = mp4(&[(b"ftyp", 32)]);
        zero.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't']);
        assert_eq!(mp4_index(&zero, len), None);
    }

    #[test]
    fn a_known_index_comes_right_after_the_first_piece_and_no_tail_is_guessed() {
        let now = Instant::now();
        let layout = layout(100);
        let plen = u64::from(PIECE);
        let file = 0..100 * plen;
        let at_start =
            Reader { file: file.clone(), position: 0, rate: Some(plen as f64 / 4.0), since: now, index: None };
        // Unknown: the tail (piece 99) comes once the head would have been read.
        let order = idx(&deadlines(std::slice::from_ref(&at_start), &layout, |_| false));
        assert_eq!(order[0], 0);
        assert!(order.iter().position(|&p| p == 99).is_some_and(|i| i > 1), "{order:?}");
        // Known to follow the media data (pieces 97-99): right after piece 0.
        let end = Reader { index: Some(97 * plen..100 * plen), ..at_start.clone() };
        let order = idx(&deadlines(&[end], &layout, |_| false));
        assert_eq!(order[..4], [0, 97, 98, 99], "{order:?}");
        // A reader of that index gets the media's start right after it: the player goes there
        // next, perhaps on another request once this one is closed.
        let reading_index = Reader { position: 97 * plen + 10, index: Some(97 * plen..100 * plen), ..at_start.clone() };
        let order = idx(&deadlines(&[reading_index], &layout, |_| false));
        assert_eq!(order, [0, 97, 98, 99].into_iter().chain(1..16).collect::<Vec<_>>());
        // In the head: no tail at all.
        let fast = Reader { index: Some(0..0), ..at_start };
        let order = idx(&deadlines(&[fast], &layout, |_| false));
        assert!(!order.contains(&99), "{order:?}");
    }
}
