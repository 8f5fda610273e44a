//! One uTP connection as a sans-IO state machine (BEP 29): packets in through
//! [`Conn::handle`], datagrams out through [`Conn::poll_transmit`], the clock passed in, so
//! loss, reordering and long delays are tested in virtual time.
//!
//! - Opening: the dialling side picks a random receive id `r`, sends SYN with connection id `r`
//!   and sends everything after with `r + 1`; the answering side receives on `r + 1` and sends
//!   on `r`, answers with a STATE whose `seq_nr` is its first data sequence number (so the
//!   dialler's `ack_nr` starts one below it). SYN is sent again after 1 s and 2 s, then the
//!   dial fails.
//! - Sending: bytes written are cut into packets of the connection's payload size, sent while
//!   the bytes in flight fit the smaller of LEDBAT's window ([`crate::ledbat`]) and the peer's
//!   advertised receive window. Every packet carries our cumulative `ack_nr` and, when packets
//!   arrived out of order, a selective ack of up to [`MAX_SACK_BYTES`] bytes.
//! - Loss: a packet is sent again when three later packets are selectively acked, or after
//!   three duplicate acks, and the window halves (once per window); when the retransmission
//!   timer (RFC 6298: `srtt + 4·rttvar`, at least [`MIN_RTO`], doubling on each expiry) fires,
//!   the oldest packet goes again and the window drops to one packet; after [`MAX_TIMEOUTS`]
//!   expiries in a row the connection is dead.
//! - Receiving: in-order payload goes to the read buffer; packets ahead of a gap wait in a
//!   bounded reorder buffer ([`MAX_REORDER`] packets); the advertised window is what
//!   [`RECV_WINDOW`] has left, so a reader that stops reading stops the sender.
//! - Closing: FIN takes the last sequence number; the connection is done once our FIN is acked
//!   and the peer's FIN has arrived (or we dropped the stream); RESET ends it at once.
//! - Packet size: [`BASE_PAYLOAD`] bytes, unless the peer is on loopback and said (Shoal's
//!   [`EXT_MAX_DATAGRAM`](crate::packet::EXT_MAX_DATAGRAM) extension on its SYN or on the
//!   answer to ours) that it takes larger datagrams: then up to [`LOOPBACK_DATAGRAM`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::ledbat::Ledbat;
use crate::packet::{BASE_PAYLOAD, HEADER_LEN, Header, MAX_SACK_BYTES, Packet, Type, encode, seq_after};

/// Bytes of payload we buffer for the reader (in order and out of order together); the window
/// we advertise is what is left of it.
pub const RECV_WINDOW: usize = 2 << 20;
/// Bytes written but not yet cut into packets.
pub const SEND_BUFFER: usize = 1 << 20;
/// Packets ahead of a gap kept for reordering.
pub const MAX_REORDER: usize = 4_096;
/// Largest datagram we read (and announce to Shoal peers on loopback).
pub const LOOPBACK_DATAGRAM: usize = 64_000;
/// Least retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(200);
/// Retransmission timeout before the first round-trip sample.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Timer expiries in a row after which the connection is given up.
pub const MAX_TIMEOUTS: u32 = 7;
/// SYNs sent before a dial fails (1 s, then 2 s apart).
pub const SYN_TRIES: u32 = 3;
/// An idle connection sends an ack this often (keeps NAT mappings and tells the peer we live).
pub const KEEPALIVE: Duration = Duration::from_secs(30);
/// A connection that hears nothing for this long is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// SYN sent, no answer yet.
    SynSent,
    /// Data flows.
    Connected,
    /// Both FINs done (or ours acked after the stream was dropped).
    Closed,
    /// The peer reset the connection.
    Reset,
    /// The peer stopped answering (SYN, retransmissions or silence).
    TimedOut,
}

#[derive(Debug)]
struct Sent {
    seq: u16,
    ty: Type,
    payload: Bytes,
    sent_at: Instant,
    sends: u32,
    sacked: bool,
    /// Queued for a resend (not queued twice).
    resend: bool,
}

#[derive(Debug)]
enum Slot {
    Data(Bytes),
    Fin,
}

/// One connection's state.
#[derive(Debug)]
pub struct Conn {
    state: State,
    epoch: Instant,
    recv_id: u16,
    send_id: u16,
    seq_nr: u16,
    ack_nr: u16,
    loopback: bool,
    payload: usize,
    /// Whether our next packet carries our datagram size (SYN, and the answer to one).
    announce_datagram: bool,
    // Sending.
    unsent: BytesMut,
    flight: VecDeque<Sent>,
    in_flight: usize,
    resends: VecDeque<u16>,
    cc: Ledbat,
    remote_wnd: usize,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_deadline: Option<Instant>,
    timeouts: u32,
    dup_acks: u32,
    /// No second halving until acks pass this sequence number.
    recovery: Option<u16>,
    syn_due: bool,
    syn_tries: u32,
    syn_deadline: Option<Instant>,
    closing: bool,
    fin_sent: bool,
    fin_acked: bool,
    dropped: bool,
    // Receiving.
    reorder: VecDeque<Option<Slot>>,
    reorder_bytes: usize,
    readable: VecDeque<Bytes>,
    readable_len: usize,
    eof: bool,
    need_ack: bool,
    /// The window we last advertised was too small for a packet.
    window_was_shut: bool,
    their_delay: u32,
    last_recv: Instant,
    last_send: Instant,
    /// Counters.
    resent: u64,
}

fn micros(epoch: Instant, now: Instant) -> u32 {
    now.saturating_duration_since(epoch).as_micros() as u32
}

impl Conn {
    fn new(now: Instant, recv_id: u16, send_id: u16, seq_nr: u16, loopback: bool) -> Conn {
        Conn {
            state: State::SynSent,
            epoch: now,
            recv_id,
            send_id,
            seq_nr,
            ack_nr: 0,
            loopback,
            payload: BASE_PAYLOAD,
            announce_datagram: true,
            unsent: BytesMut::new(),
            flight: VecDeque::new(),
            in_flight: 0,
            resends: VecDeque::new(),
            cc: Ledbat::new(BASE_PAYLOAD),
            remote_wnd: RECV_WINDOW,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            rto_deadline: None,
            timeouts: 0,
            dup_acks: 0,
            recovery: None,
            syn_due: false,
            syn_tries: 0,
            syn_deadline: None,
            closing: false,
            fin_sent: false,
            fin_acked: false,
            dropped: false,
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            readable: VecDeque::new(),
            readable_len: 0,
            eof: false,
            need_ack: false,
            window_was_shut: false,
            their_delay: 0,
            last_recv: now,
            last_send: now,
            resent: 0,
        }
    }

    /// A connection we dial: `recv_id` is ours (random); the SYN goes out with the next
    /// [`Conn::poll_transmit`]. `loopback`: the peer is on this machine.
    pub fn connect(now: Instant, recv_id: u16, loopback: bool) -> Conn {
        let mut c = Conn::new(now, recv_id, recv_id.wrapping_add(1), 1, loopback);
        c.syn_due = true;
        c
    }

    /// A connection a SYN opened (`seq_nr`: our first sequence number, random).
    pub fn accept(now: Instant, syn: &Packet<'_>, seq_nr: u16, loopback: bool) -> Conn {
        let id = syn.header.conn_id;
        let mut c = Conn::new(now, id.wrapping_add(1), id, seq_nr, loopback);
        c.state = State::Connected;
        c.ack_nr = syn.header.seq_nr;
        c.need_ack = true;
        c.remote_wnd = syn.header.wnd_size as usize;
        c.peer_datagram(syn.max_datagram);
        c.their_delay = micros(c.epoch, now).wrapping_sub(syn.header.timestamp);
        c
    }

    /// The id packets to us carry (what the socket routes on).
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// The payload size of a data packet.
    pub fn payload_size(&self) -> usize {
        self.payload
    }

    /// The congestion window (bytes).
    pub fn window(&self) -> usize {
        self.cc.window()
    }

    /// A one-line account of the sending side, for logs.
    pub fn describe(&self) -> String {
        format!(
            "seq {} ack {} in flight {} packets / {} B, unsent {} B, window {} B (queueing {:?}{}), peer window {} B, \
             rto {:?}, resent {}, reorder {} / {} B, readable {} B",
            self.seq_nr,
            self.ack_nr,
            self.flight.len(),
            self.in_flight,
            self.unsent.len(),
            self.cc.window(),
            self.cc.queueing_delay(),
            if self.cc.in_slow_start() { ", slow start" } else { "" },
            self.remote_wnd,
            self.rto,
            self.resent,
            self.reorder.len(),
            self.reorder_bytes,
            self.readable_len
        )
    }

    /// Packets sent again so far.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    fn peer_datagram(&mut self, max: Option<u32>) {
        if let (true, Some(max)) = (self.loopback, max) {
            let datagram = (max as usize).min(LOOPBACK_DATAGRAM);
            let payload = datagram.saturating_sub(HEADER_LEN + 2 + MAX_SACK_BYTES + 6);
            if payload > self.payload {
                self.payload = payload;
                self.cc.set_mss(payload);
            }
        }
    }

    /// Bytes in the read buffer.
    pub fn readable(&self) -> usize {
        self.readable_len
    }

    /// The peer's FIN has been read up to: no more bytes will come.
    pub fn is_eof(&self) -> bool {
        self.eof && self.readable_len == 0
    }

    /// Room for more bytes to write.
    pub fn writable(&self) -> usize {
        if self.closing || !matches!(self.state, State::Connected | State::SynSent) {
            return 0;
        }
        SEND_BUFFER - self.unsent.len()
    }

    /// Everything written has been acked.
    pub fn all_acked(&self) -> bool {
        self.unsent.is_empty() && self.flight.is_empty()
    }

    /// Whether the socket can forget the connection.
    pub fn is_done(&self) -> bool {
        match self.state {
            State::Reset | State::TimedOut | State::Closed => true,
            _ => self.dropped && self.fin_acked,
        }
    }

    /// Takes bytes to send; returns how many (0 when the buffer is full or the connection is
    /// not open for writing).
    pub fn write(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.writable());
        self.unsent.extend_from_slice(&buf[..n]);
        n
    }

    /// Moves read bytes into `buf`; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(front) = self.readable.front_mut() else { break };
            let take = front.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&front[..take]);
            n += take;
            if take == front.len() {
                self.readable.pop_front();
            } else {
                let _ = front.split_to(take);
            }
        }
        self.readable_len -= n;
        if self.window_was_shut && self.recv_window() >= RECV_WINDOW / 2 {
            // Tell a sender that stopped on our full window that it may go on.
            self.need_ack = true;
        }
        n
    }

    /// No more writes: a FIN follows the data.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// The stream is gone: close, and let the socket forget us once the FIN is acked.
    pub fn drop_stream(&mut self) {
        self.closing = true;
        self.dropped = true;
        if self.state == State::SynSent {
            self.state = State::Closed;
        }
    }

    fn recv_window(&self) -> usize {
        RECV_WINDOW.saturating_sub(self.readable_len + self.reorder_bytes)
    }

    /// A packet for this connection.
    pub fn handle(&mut self, now: Instant, p: &Packet<'_>) {
        let h = &p.header;
        self.last_recv = now;
        if h.ty == Type::Reset {
            self.state = State::Reset;
            return;
        }
        if h.timestamp != 0 {
            self.their_delay = micros(self.epoch, now).wrapping_sub(h.timestamp);
        }
        self.cc.on_delay_sample(now, h.timestamp_diff);
        self.remote_wnd = h.wnd_size as usize;
        match (self.state, h.ty) {
            (_, Type::Syn) => {
                // Our answer was lost: answer again.
                self.need_ack = true;
                self.announce_datagram = true;
                return;
            }
            (State::SynSent, Type::State) => {
                self.state = State::Connected;
                self.ack_nr = h.seq_nr.wrapping_sub(1);
                // Our first data packet follows the SYN's number.
                self.seq_nr = self.seq_nr.wrapping_add(1);
                self.syn_deadline = None;
                self.timeouts = 0;
                self.peer_datagram(p.max_datagram);
            }
            (State::SynSent, _) => return,
            _ => {}
        }
        self.on_ack(now, h, p.sack, p.payload.is_empty());
        match h.ty {
            Type::Data if !p.payload.is_empty() => {
                self.receive(h.seq_nr, Slot::Data(Bytes::copy_from_slice(p.payload)))
            }
            Type::Fin => self.receive(h.seq_nr, Slot::Fin),
            _ => {}
        }
        if self.fin_acked && self.eof && self.readable_len == 0 {
            self.state = State::Closed;
        }
    }

    fn on_ack(&mut self, now: Instant, h: &Header, sack: Option<&[u8]>, bare: bool) {
        let Some(front) = self.flight.front().map(|s| s.seq) else { return };
        let mut acked = 0usize;
        let ack = h.ack_nr;
        if !seq_after(front, ack) {
            // Cumulative: everything up to `ack`.
            while let Some(s) = self.flight.front() {
                if seq_after(s.seq, ack) {
                    break;
                }
                let s = self.flight.pop_front().expect("front exists");
                if !s.sacked {
                    acked += s.payload.len();
                    if !s.resend {
                        self.in_flight -= s.payload.len();
                    }
                }
                if s.sends == 1 {
                    self.rtt_sample(now.saturating_duration_since(s.sent_at));
                }
                if s.ty == Type::Fin {
                    self.fin_acked = true;
                }
            }
            self.dup_acks = 0;
            if self.timeouts > 0 {
                // Progress: the timer's backoff ends.
                self.timeouts = 0;
                if let Some(srtt) = self.srtt {
                    self.rto = (srtt + self.rttvar * 4).max(MIN_RTO);
                }
            }
        } else if ack == front.wrapping_sub(1) && bare && h.ty == Type::State {
            self.dup_acks += 1;
            if self.dup_acks == 3 {
                self.lost(0);
            }
        }
        if let Some(mask) = sack {
            let mut later_sacked = 0;
            let bits = mask.len().min(MAX_SACK_BYTES) * 8;
            // Walk from the highest bit down so "three later packets" counts as it goes.
            for i in (0..bits).rev() {
                let seq = ack.wrapping_add(2 + i as u16);
                let Some(front) = self.flight.front().map(|s| s.seq) else { break };
                let idx = seq.wrapping_sub(front) as usize;
                if idx >= self.flight.len() {
                    continue;
                }
                if mask[i / 8] & (1 << (i % 8)) != 0 {
                    later_sacked += 1;
                    let s = &mut self.flight[idx];
                    if !s.sacked {
                        s.sacked = true;
                        acked += s.payload.len();
                        if !s.resend {
                            self.in_flight -= s.payload.len();
                        }
                    }
                } else if later_sacked >= 3 {
                    self.lost(idx);
                }
            }
            // ack_nr + 1 is missing whenever a selective ack is sent.
            if later_sacked >= 3 {
                let idx = ack.wrapping_add(1).wrapping_sub(self.flight.front().map_or(0, |s| s.seq)) as usize;
                if idx < self.flight.len() {
                    self.lost(idx);
                }
            }
        }
        if acked > 0 {
            self.cc.on_ack(acked);
        }
        if self.flight.is_empty() {
            self.rto_deadline = None;
        } else if acked > 0 {
            self.rto_deadline = Some(now + self.rto);
        }
    }

    /// The packet at `idx` in flight is lost (acks say so): queue it once, halve once per
    /// window. A packet already sent again is not taken as lost again from acks — its new copy
    /// may still be on the way behind a queue, and each ack until it lands would send another
    /// (a flood that keeps the queue full); only the retransmission timer sends it a third time.
    fn lost(&mut self, idx: usize) {
        let Some(s) = self.flight.get_mut(idx) else { return };
        if s.sacked || s.resend || s.sends > 1 {
            return;
        }
        s.resend = true;
        let seq = s.seq;
        self.in_flight -= s.payload.len();
        self.resends.push_back(seq);
        if self.recovery.is_none_or(|r| seq_after(seq, r)) {
            self.cc.on_loss();
            self.recovery = Some(self.seq_nr.wrapping_sub(1));
        }
    }

    fn rtt_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        self.rto = (self.srtt.unwrap_or_default() + self.rttvar * 4).max(MIN_RTO);
    }

    fn receive(&mut self, seq: u16, slot: Slot) {
        self.need_ack = true;
        if !seq_after(seq, self.ack_nr) {
            return; // a duplicate: the ack above tells the peer again
        }
        let off = seq.wrapping_sub(self.ack_nr).wrapping_sub(1) as usize;
        let len = match &slot {
            Slot::Data(b) => b.len(),
            Slot::Fin => 0,
        };
        if off >= MAX_REORDER || self.readable_len + self.reorder_bytes + len > RECV_WINDOW + LOOPBACK_DATAGRAM {
            return; // past what we said we take
        }
        if self.reorder.len() <= off {
            self.reorder.resize_with(off + 1, || None);
        }
        if self.reorder[off].is_none() {
            self.reorder[off] = Some(slot);
            self.reorder_bytes += len;
        }
        while let Some(Some(_)) = self.reorder.front() {
            let Some(Some(slot)) = self.reorder.pop_front() else { unreachable!() };
            self.ack_nr = self.ack_nr.wrapping_add(1);
            match slot {
                Slot::Data(b) => {
                    self.reorder_bytes -= b.len();
                    self.readable_len += b.len();
                    self.readable.push_back(b);
                }
                Slot::Fin => {
                    self.eof = true;
                    self.reorder.clear();
                    self.reorder_bytes = 0;
                }
            }
        }
    }

    fn sack(&self) -> Option<Vec<u8>> {
        if self.reorder.len() < 2 {
            return None;
        }
        let bits = (self.reorder.len() - 1).min(MAX_SACK_BYTES * 8);
        let mut mask = vec![0u8; bits.div_ceil(32) * 4];
        for i in 0..bits {
            if self.reorder[i + 1].is_some() {
                mask[i / 8] |= 1 << (i % 8);
            }
        }
        Some(mask)
    }

    fn header(&self, now: Instant, ty: Type, seq_nr: u16) -> Header {
        let wnd = self.recv_window();
        Header {
            ty,
            conn_id: if ty == Type::Syn { self.recv_id } else { self.send_id },
            timestamp: micros(self.epoch, now),
            timestamp_diff: self.their_delay,
            wnd_size: wnd as u32,
            seq_nr,
            ack_nr: self.ack_nr,
        }
    }

    fn emit(&mut self, now: Instant, out: &mut Vec<u8>, ty: Type, seq_nr: u16, payload: &[u8]) {
        let header = self.header(now, ty, seq_nr);
        self.window_was_shut = (header.wnd_size as usize) < self.payload;
        let sack = self.sack();
        let datagram = self.announce_datagram.then_some(LOOPBACK_DATAGRAM as u32);
        self.announce_datagram = false;
        encode(out, &header, sack.as_deref(), datagram, payload);
        self.need_ack = false;
        self.last_send = now;
    }

    /// The next datagram to send, written into `out`; false when there is none now.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::SynSent => {
                if !self.syn_due {
                    return false;
                }
                self.syn_due = false;
                self.syn_tries += 1;
                self.syn_deadline = Some(now + Duration::from_secs(1 << (self.syn_tries - 1)));
                self.emit(now, out, Type::Syn, self.seq_nr, &[]);
                return true;
            }
            State::Connected => {}
            _ => return false,
        }
        // Lost packets go again first, within the window like new ones (after a timeout the
        // window is one packet and grows back as their acks come).
        let window = self.cc.window().min(self.remote_wnd);
        let in_flight = self.in_flight;
        let fits = |len: usize| in_flight == 0 || in_flight + len <= window;
        while let Some(&seq) = self.resends.front() {
            let Some(front) = self.flight.front().map(|s| s.seq) else {
                self.resends.clear();
                break;
            };
            let idx = seq.wrapping_sub(front) as usize;
            let Some(s) = self.flight.get_mut(idx).filter(|s| s.seq == seq && s.resend && !s.sacked) else {
                self.resends.pop_front();
                continue;
            };
            if !fits(s.payload.len()) {
                return self.ack_only(now, out);
            }
            self.resends.pop_front();
            s.resend = false;
            s.sends += 1;
            s.sent_at = now;
            let (ty, payload) = (s.ty, s.payload.clone());
            self.in_flight += payload.len();
            self.resent += 1;
            self.emit(now, out, ty, seq, &payload);
            self.rto_deadline.get_or_insert(now + self.rto);
            return true;
        }
        if !self.unsent.is_empty() && fits(self.payload.min(self.unsent.len())) {
            let len = self.payload.min(self.unsent.len());
            let payload = self.unsent.split_to(len).freeze();
            let seq = self.seq_nr;
            self.seq_nr = seq.wrapping_add(1);
            self.in_flight += len;
            self.emit(now, out, Type::Data, seq, &payload);
            self.flight.push_back(Sent {
                seq,
                ty: Type::Data,
                payload,
                sent_at: now,
                sends: 1,
                sacked: false,
                resend: false,
            });
            self.rto_deadline.get_or_insert(now + self.rto);
            return true;
        }
        if self.closing && !self.fin_sent && self.unsent.is_empty() {
            self.fin_sent = true;
            let seq = self.seq_nr;
            self.seq_nr = seq.wrapping_add(1);
            self.emit(now, out, Type::Fin, seq, &[]);
            self.flight.push_back(Sent {
                seq,
                ty: Type::Fin,
                payload: Bytes::new(),
                sent_at: now,
                sends: 1,
                sacked: false,
                resend: false,
            });
            self.rto_deadline.get_or_insert(now + self.rto);
            return true;
        }
        self.ack_only(now, out)
    }

    /// A bare ack when one is owed.
    fn ack_only(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.need_ack {
            self.emit(now, out, Type::State, self.seq_nr, &[]);
            return true;
        }
        false
    }

    /// Writes a RESET for this connection (when the socket gives it up).
    pub fn reset_packet(&self, now: Instant, out: &mut Vec<u8>) {
        let header = self.header(now, Type::Reset, self.seq_nr);
        encode(out, &header, None, None, &[]);
    }

    /// When [`Conn::on_timer`] wants to run next.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self.state {
            State::SynSent => self.syn_deadline,
            State::Connected => {
                let idle = (self.last_recv + IDLE_TIMEOUT).min(self.last_send + KEEPALIVE);
                Some(self.rto_deadline.map_or(idle, |rto| rto.min(idle)))
            }
            _ => None,
        }
    }

    /// Timers: SYN resends, retransmission, keep-alive, silence.
    pub fn on_timer(&mut self, now: Instant) {
        match self.state {
            State::SynSent if self.syn_deadline.is_some_and(|d| now >= d) => {
                if self.syn_tries >= SYN_TRIES {
                    self.state = State::TimedOut;
                } else {
                    self.syn_due = true;
                }
            }
            State::Connected => {
                if now >= self.last_recv + IDLE_TIMEOUT {
                    self.state = State::TimedOut;
                    return;
                }
                if self.rto_deadline.is_some_and(|d| now >= d) {
                    self.timeouts += 1;
                    if self.timeouts >= MAX_TIMEOUTS {
                        self.state = State::TimedOut;
                        return;
                    }
                    self.cc.on_timeout();
                    self.rto = (self.rto * 2).min(Duration::from_secs(60));
                    self.rto_deadline = Some(now + self.rto);
                    // Everything not acked is taken as lost and goes again, oldest first, as
                    // the window (one packet now) allows.
                    for s in self.flight.iter_mut().filter(|s| !s.sacked && !s.resend) {
                        s.resend = true;
                        self.in_flight -= s.payload.len();
                        self.resends.push_back(s.seq);
                    }
                    self.recovery = Some(self.seq_nr.wrapping_sub(1));
                }
                if now >= self.last_send + KEEPALIVE {
                    self.need_ack = true;
                }
            }
            _ => {}
        }
    }
}
