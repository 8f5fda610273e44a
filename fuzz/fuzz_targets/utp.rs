//! Fuzzes uTP with what a hostile peer sends: the bytes as one packet for the decoder, then as
//! a run of packets (cut at each 0xff byte) fed to an accepted connection, which must never
//! panic, never hold more than its receive window, and always answer with packets that decode.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shoal_utp::conn::{Conn, RECV_WINDOW};
use shoal_utp::packet::{Header, Packet, Type, encode};

fuzz_target!(|data: &[u8]| {
    let _ = Packet::decode(data);
    let start = Instant::now();
    let syn = Header { ty: Type::Syn, conn_id: 100, timestamp: 1, timestamp_diff: 0, wnd_size: 1 << 20, seq_nr: 1, ack_nr: 0 };
    let mut buf = Vec::new();
    encode(&mut buf, &syn, None, Some(64_000), &[]);
    let mut conn = Conn::accept(start, &Packet::decode(&buf).expect("a SYN decodes"), 500, true);
    conn.write(&[7u8; 100_000]);
    let mut now = start;
    let mut out = Vec::new();
    let mut sink = vec![0u8; 4096];
    for (i, piece) in data.split(|&b| b == 0xff).enumerate() {
        if let Ok(p) = Packet::decode(piece) {
            conn.handle(now, &p);
        }
        while conn.poll_transmit(now, &mut out) {
            assert!(Packet::decode(&out).is_ok(), "we send only packets that decode");
        }
        assert!(conn.readable() <= RECV_WINDOW + 64_000);
        if i % 3 == 0 {
            let _ = conn.read(&mut sink);
        }
        now += Duration::from_millis(u64::from(piece.first().copied().unwrap_or(0)) * 10);
        conn.on_timer(now);
    }
});
