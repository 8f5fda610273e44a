//! Peer exchange (BEP 11, `ut_pex`) timing and admission for one connection: when we send the
//! peer a message, and whether we read the one it sent. Sans-IO: every call takes the current
//! time, nothing here reads a clock.
//!
//! Policy, as a contract:
//! - a private torrent (BEP 27) takes no part in peer exchange: nothing is sent, nothing is
//!   read, whatever the peer announces;
//! - neither is anything sent to, or read from, a peer whose extension handshake (BEP 10) did
//!   not name `ut_pex`;
//! - sending: the first message is due [`FIRST_SEND_AFTER`] after the connection opened, so
//!   it lists the connections made meanwhile (a peer that negotiates later is due at once);
//!   after each, the next is due [`SEND_EVERY`] later (BEP 11: at most one message a minute).
//!   A due turn counts even when there turns out to be nothing to say;
//! - reading: a peer's message is read at most once per [`ACCEPT_EVERY`]; the ones in between
//!   are ignored. BEP 11 asks senders for a minute between messages, so this only drops a
//!   peer that floods. The wait starts when a message is read, even one that then fails to
//!   decode. Of a message read, at most [`MAX_ADDED`] addresses are taken (BEP 11: at most 50
//!   added contacts per message).
//!
//! Call protocol for the driver (the engine's torrent actor):
//! - [`PexSchedule::new`] when the connection opens, after the handshakes;
//! - [`PexSchedule::handle_handshake`] with the peer's `ut_pex` id from each extension
//!   handshake it sends;
//! - [`PexSchedule::accept`] for each `ut_pex` message the peer sends: `None` means ignore it,
//!   `Some(n)` means decode it and take at most `n` of its addresses;
//! - [`PexSchedule::poll_send`] about once a second: `Some(id)` means a message is due now;
//!   send it with extended message id `id` if there is anything to say.
//!   [`PexSchedule::send_due`] asks the same without taking the turn, and
//!   [`PexSchedule::next_send`] says when the next turn comes.
//!
//! What a message says is not decided here: [`shoal_proto::PexState`] computes the added and
//! dropped peers, and the driver filters the addresses it reads (loopback addresses only from
//! a peer on loopback).

use std::time::{Duration, Instant};

/// Time between two messages to one peer (BEP 11 asks for at least a minute).
pub const SEND_EVERY: Duration = Duration::from_secs(60);
/// The first message to a peer waits this long after the connection opened, so it lists the
/// connections made meanwhile.
pub const FIRST_SEND_AFTER: Duration = Duration::from_secs(5);
/// A peer's messages are read at most this often; the ones in between are ignored.
pub const ACCEPT_EVERY: Duration = Duration::from_secs(45);
/// Addresses taken from one message read (BEP 11: at most 50 added contacts per message).
pub const MAX_ADDED: usize = 50;

/// Peer exchange timing and admission for one connection. See the module doc for the policy
/// and the call protocol.
#[derive(Clone, Debug)]
pub struct PexSchedule {
    /// The torrent is private (BEP 27): `their_id` stays `None`.
    private: bool,
    /// The peer's extended message id for `ut_pex`; `None` until its extension handshake
    /// names it, and always for a private torrent. Nothing is sent or read while `None`.
    their_id: Option<u8>,
    /// Our next message to the peer is due from this time on.
    next_send: Instant,
    /// The peer's next message is read from this time on.
    next_accept: Instant,
}

impl PexSchedule {
    /// The schedule of a connection that opened at `now`, for a private torrent or not.
    pub fn new(now: Instant, private: bool) -> Self {
        Self { private, their_id: None, next_send: now + FIRST_SEND_AFTER, next_accept: now }
    }

    /// The peer's extension handshake named `their_id` for `ut_pex` (`None`: it did not, or
    /// disabled it). A later handshake replaces what an earlier one said; the timers go on.
    pub fn handle_handshake(&mut self, their_id: Option<u8>) {
        self.their_id = their_id.filter(|_| !self.private);
    }

    /// Both sides take part in peer exchange: the torrent is public and the peer negotiated
    /// `ut_pex`.
    pub fn is_active(&self) -> bool {
        self.their_id.is_some()
    }

    /// The peer sent a `ut_pex` message at `now`. `Some(n)`: read it, taking at most `n`
    /// addresses, and ignore the peer's messages for the next [`ACCEPT_EVERY`]. `None`:
    /// ignore it (private torrent, `ut_pex` not negotiated, or too soon after the last one).
    pub fn accept(&mut self, now: Instant) -> Option<usize> {
        if !self.is_active() || now < self.next_accept {
            return None;
        }
        self.next_accept = now + ACCEPT_EVERY;
        Some(MAX_ADDED)
    }

    /// A message to the peer is due at `now`.
    pub fn send_due(&self, now: Instant) -> bool {
        self.is_active() && now >= self.next_send
    }

    /// Takes the turn to send when one is due at `now`: returns the peer's `ut_pex` id to send
    /// the message with, and the next turn comes [`SEND_EVERY`] later. `None` when no message
    /// is due.
    pub fn poll_send(&mut self, now: Instant) -> Option<u8> {
        if !self.send_due(now) {
            return None;
        }
        self.next_send = now + SEND_EVERY;
        self.their_id
    }

    /// When the next message to the peer is due (it may be in the past: due now). `None`
    /// while nothing is ever sent to this peer.
    pub fn next_send(&self) -> Option<Instant> {
        self.is_active().then_some(self.next_send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u8 = 7;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn active(t0: Instant) -> PexSchedule {
        let mut s = PexSchedule::new(t0, false);
        s.handle_handshake(Some(ID));
        s
    }

    #[test]
    fn first_send_after_five_seconds_not_before() {
        let t0 = Instant::now();
        let mut s = active(t0);
        assert_eq!(s.next_send(), Some(t0 + secs(5)));
        assert!(!s.send_due(t0));
        assert_eq!(s.poll_send(t0 + secs(5) - Duration::from_millis(1)), None);
        assert!(s.send_due(t0 + secs(5)));
        assert_eq!(s.poll_send(t0 + secs(5)), Some(ID));
    }

    #[test]
    fn then_every_sixty_seconds() {
        let t0 = Instant::now();
        let mut s = active(t0);
        assert_eq!(s.poll_send(t0 + secs(5)), Some(ID));
        // The turn is taken: not due again at once.
        assert_eq!(s.poll_send(t0 + secs(5)), None);
        assert_eq!(s.next_send(), Some(t0 + secs(65)));
        assert_eq!(s.poll_send(t0 + secs(64)), None);
        assert_eq!(s.poll_send(t0 + secs(65)), Some(ID));
        assert_eq!(s.next_send(), Some(t0 + secs(125)));
        // A late tick counts from when the turn was taken.
        assert_eq!(s.poll_send(t0 + secs(130)), Some(ID));
        assert_eq!(s.next_send(), Some(t0 + secs(190)));
    }

    #[test]
    fn late_negotiation_is_due_at_once() {
        let t0 = Instant::now();
        let mut s = PexSchedule::new(t0, false);
        assert_eq!(s.poll_send(t0 + secs(10)), None);
        s.handle_handshake(Some(ID));
        assert_eq!(s.poll_send(t0 + secs(10)), Some(ID));
    }

    #[test]
    fn accept_refused_before_45_seconds() {
        let t0 = Instant::now();
        let mut s = active(t0);
        assert_eq!(s.accept(t0), Some(MAX_ADDED));
        assert_eq!(s.accept(t0 + secs(1)), None);
        assert_eq!(s.accept(t0 + secs(45) - Duration::from_millis(1)), None);
        assert_eq!(s.accept(t0 + secs(45)), Some(MAX_ADDED));
        // A refused message does not move the wait.
        assert_eq!(s.accept(t0 + secs(89)), None);
        assert_eq!(s.accept(t0 + secs(90)), Some(MAX_ADDED));
    }

    #[test]
    fn refused_when_not_negotiated() {
        let t0 = Instant::now();
        let mut s = PexSchedule::new(t0, false);
        assert!(!s.is_active());
        assert_eq!(s.accept(t0 + secs(100)), None);
        assert!(!s.send_due(t0 + secs(100)));
        assert_eq!(s.poll_send(t0 + secs(100)), None);
        assert_eq!(s.next_send(), None);
        // A handshake that withdraws `ut_pex` ends the exchange.
        s.handle_handshake(Some(ID));
        assert!(s.is_active());
        s.handle_handshake(None);
        assert_eq!(s.accept(t0 + secs(200)), None);
        assert_eq!(s.poll_send(t0 + secs(200)), None);
    }

    #[test]
    fn private_torrents_never() {
        let t0 = Instant::now();
        let mut s = PexSchedule::new(t0, true);
        s.handle_handshake(Some(ID));
        assert!(!s.is_active());
        for t in [0, 5, 45, 65, 1000] {
            assert_eq!(s.accept(t0 + secs(t)), None);
            assert!(!s.send_due(t0 + secs(t)));
            assert_eq!(s.poll_send(t0 + secs(t)), None);
        }
        assert_eq!(s.next_send(), None);
    }

    #[test]
    fn cap_of_fifty_addresses() {
        let t0 = Instant::now();
        let mut s = active(t0);
        // Every message read yields at most 50 addresses, the first one included.
        assert_eq!(s.accept(t0), Some(50));
        assert_eq!(s.accept(t0 + secs(45)), Some(50));
    }
}
