//! Two uTP connections over simulated links in virtual time: a bottleneck of fixed rate with
//! a tail-drop queue, a propagation delay, random loss and reordering.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shoal_utp::conn::{Conn, RECV_WINDOW, State};
use shoal_utp::packet::{Packet, Type};

/// A one-way link.
struct Link {
    rate: f64,
    delay: Duration,
    buffer: usize,
    loss: f64,
    jitter: Duration,
    free_at: Instant,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    rng: u64,
    /// Queueing delay each packet met (for the LEDBAT test).
    queueing: Vec<Duration>,
    dropped: u64,
    /// Packets sent so far, and a range of them dropped (a burst loss).
    sent: u64,
    burst: std::ops::Range<u64>,
}

impl Link {
    fn new(start: Instant, rate: f64, delay_ms: u64) -> Link {
        Link {
            rate,
            delay: Duration::from_millis(delay_ms),
            buffer: usize::MAX,
            loss: 0.0,
            jitter: Duration::ZERO,
            free_at: start,
            in_flight: VecDeque::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            queueing: Vec::new(),
            dropped: 0,
            sent: 0,
            burst: 0..0,
        }
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn send(&mut self, now: Instant, packet: Vec<u8>) {
        let start = self.free_at.max(now);
        let queued = start - now;
        self.sent += 1;
        if (queued.as_secs_f64() * self.rate) as usize > self.buffer
            || self.random() < self.loss
            || self.burst.contains(&self.sent)
        {
            self.dropped += 1;
            return;
        }
        self.queueing.push(queued);
        self.free_at = start + Duration::from_secs_f64(packet.len() as f64 / self.rate);
        let jitter = self.jitter.mul_f64(self.random());
        let at = self.free_at + self.delay + jitter;
        let pos = self.in_flight.iter().position(|(t, _)| *t > at).unwrap_or(self.in_flight.len());
        self.in_flight.insert(pos, (at, packet));
    }

    fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|(t, _)| *t <= now) {
            out.push(self.in_flight.pop_front().expect("a due packet").1);
        }
        out
    }
}

struct Run {
    received: Vec<u8>,
    elapsed: Duration,
    a: Conn,
    b: Option<Conn>,
}

/// Sends `data` from a dialler to an acceptor; `read_after`: the acceptor reads nothing before
/// this much virtual time; stops at `limit`.
fn transfer(
    data: &[u8],
    mut ab: Link,
    mut ba: Link,
    start: Instant,
    read_after: Duration,
    limit: Duration,
) -> (Run, Link) {
    let mut now = start;
    let mut a = Conn::connect(now, 7, false);
    let mut b: Option<Conn> = None;
    let mut written = 0;
    let mut received = Vec::new();
    let mut buf = Vec::new();
    let mut read_buf = vec![0u8; 64 * 1024];
    let step = Duration::from_micros(500);
    while now - start < limit {
        if written < data.len() {
            written += a.write(&data[written..]);
            if written == data.len() {
                a.close();
            }
        }
        a.on_timer(now);
        while a.poll_transmit(now, &mut buf) {
            ab.send(now, buf.clone());
        }
        for d in ab.due(now) {
            let p = Packet::decode(&d).expect("we send packets that decode");
            match &mut b {
                None if p.header.ty == Type::Syn => b = Some(Conn::accept(now, &p, 40_000, false)),
                None => {}
                Some(b) => b.handle(now, &p),
            }
        }
        if let Some(b) = &mut b {
            if now - start >= read_after {
                loop {
                    let n = b.read(&mut read_buf);
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&read_buf[..n]);
                }
            }
            if b.is_eof() {
                b.close();
            }
            b.on_timer(now);
            while b.poll_transmit(now, &mut buf) {
                ba.send(now, buf.clone());
            }
        }
        for d in ba.due(now) {
            a.handle(now, &Packet::decode(&d).expect("we send packets that decode"));
        }
        if received.len() == data.len() && b.as_ref().is_some_and(|b| b.is_eof()) && a.all_acked() {
            break;
        }
        if matches!(a.state(), State::TimedOut | State::Reset) {
            break;
        }
        now += step;
    }
    (Run { received, elapsed: now - start, a, b }, ab)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_clean_path_carries_the_bytes_at_its_rate() {
    let start = Instant::now();
    let d = data(4 << 20);
    let (run, _) = transfer(
        &d,
        Link::new(start, 10e6, 10),
        Link::new(start, 10e6, 10),
        start,
        Duration::ZERO,
        Duration::from_secs(30),
    );
    assert_eq!(run.received.len(), d.len());
    assert!(run.received == d, "bytes out equal bytes in");
    assert!(run.b.expect("the acceptor").is_eof(), "the FIN arrived");
    let secs = run.elapsed.as_secs_f64();
    assert!(secs < 1.0, "4 MiB at 10 MB/s took {secs:.2} s of virtual time");
    assert_eq!(run.a.resent(), 0);
}

#[test]
fn loss_and_reordering_are_repaired() {
    let start = Instant::now();
    let d = data(2 << 20);
    let mut ab = Link::new(start, 5e6, 20);
    ab.loss = 0.03;
    ab.jitter = Duration::from_millis(15);
    let mut ba = Link::new(start, 5e6, 20);
    ba.loss = 0.03;
    ba.rng = 12_345;
    let (run, ab) = transfer(&d, ab, ba, start, Duration::ZERO, Duration::from_secs(120));
    assert!(ab.dropped > 10, "the link dropped {} packets", ab.dropped);
    assert_eq!(run.received.len(), d.len(), "after {:?}", run.elapsed);
    assert!(run.received == d);
    assert!(run.a.resent() >= ab.dropped, "{} resent for {} dropped", run.a.resent(), ab.dropped);
}

#[test]
fn a_burst_of_lost_packets_is_sent_again_within_a_few_round_trips() {
    // 150 packets in a row lost (a receiver's socket buffer overflowing): after the timeout all
    // of them go again as the window grows back, not one per (doubling) timeout.
    let start = Instant::now();
    let d = data(4 << 20);
    let mut ab = Link::new(start, 20e6, 2);
    ab.burst = 400..550;
    let (run, ab) = transfer(&d, ab, Link::new(start, 20e6, 2), start, Duration::ZERO, Duration::from_secs(60));
    assert_eq!(ab.dropped, 150);
    assert!(run.received == d, "after {:?}", run.elapsed);
    assert!(run.elapsed < Duration::from_secs(2), "took {:?}", run.elapsed);
}

#[test]
fn ledbat_keeps_the_queue_near_its_target_and_the_link_busy() {
    // A 1 MB/s bottleneck with 2 s of buffer: a loss-driven sender would fill it.
    let start = Instant::now();
    let d = data(12 << 20);
    let mut ab = Link::new(start, 1e6, 10);
    ab.buffer = 2_000_000;
    let ba = Link::new(start, 1e6, 10);
    let (run, ab) = transfer(&d, ab, ba, start, Duration::ZERO, Duration::from_secs(60));
    assert_eq!(run.received.len(), d.len());
    let secs = run.elapsed.as_secs_f64();
    let rate = d.len() as f64 / secs;
    assert!(rate > 0.85e6, "{rate:.0} B/s over a 1 MB/s link");
    // After slow start (the first 2 s), queueing stays around the 100 ms target.
    let tail = &ab.queueing[ab.queueing.len() / 4..];
    let mut sorted: Vec<_> = tail.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let p95 = sorted[sorted.len() * 95 / 100];
    assert!(median <= Duration::from_millis(130), "median queueing {median:?}");
    assert!(p95 <= Duration::from_millis(200), "95th percentile queueing {p95:?}");
    assert_eq!(ab.dropped, 0, "the queue never overflowed");
}

#[test]
fn a_reader_that_stops_stops_the_sender() {
    let start = Instant::now();
    let d = data(8 << 20);
    let (run, _) = transfer(
        &d,
        Link::new(start, 50e6, 5),
        Link::new(start, 50e6, 5),
        start,
        Duration::from_secs(5),
        Duration::from_secs(6),
    );
    // Nothing read in the first 5 s: what the acceptor holds is bounded by its window.
    let b = run.b.expect("the acceptor");
    assert!(run.received.len() <= RECV_WINDOW + 64 * 1024, "{} bytes buffered", run.received.len());
    assert!(run.received.len() >= RECV_WINDOW / 2, "the window was used: {}", run.received.len());
    assert_eq!(b.state(), State::Connected);
    // And it goes on once the reader reads.
    let (run, _) = transfer(
        &d,
        Link::new(start, 50e6, 5),
        Link::new(start, 50e6, 5),
        start,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert!(run.received == d);
}

#[test]
fn a_silent_peer_times_out() {
    let start = Instant::now();
    let d = data(1 << 20);
    let mut ab = Link::new(start, 10e6, 10);
    ab.loss = 1.0;
    let (run, _) = transfer(&d, ab, Link::new(start, 10e6, 10), start, Duration::ZERO, Duration::from_secs(60));
    assert_eq!(run.a.state(), State::TimedOut, "no answer to SYN");
    assert!(run.elapsed <= Duration::from_secs(8), "gave up after {:?}", run.elapsed);

    // Connected, then the path dies: given up after the retransmission timeouts.
    let mut now = start;
    let mut a = Conn::connect(now, 1, false);
    let mut buf = Vec::new();
    assert!(a.poll_transmit(now, &mut buf));
    let syn = buf.clone();
    let mut b = Conn::accept(now, &Packet::decode(&syn).expect("a SYN"), 9, false);
    assert!(b.poll_transmit(now, &mut buf));
    a.handle(now, &Packet::decode(&buf).expect("a STATE"));
    assert_eq!(a.state(), State::Connected);
    a.write(&d);
    while now - start < Duration::from_secs(600) && a.state() == State::Connected {
        a.on_timer(now);
        while a.poll_transmit(now, &mut buf) {}
        now += Duration::from_millis(50);
    }
    assert_eq!(a.state(), State::TimedOut);
    assert!(now - start < Duration::from_secs(240), "{:?}", now - start);
}
