//! Fuzzes the DHT's KRPC decoder (BEP 5) and a whole DHT node: no input may panic, every
//! accepted message must re-encode to bytes that decode to the same message, and a node fed
//! arbitrary datagrams from many sources keeps its output queue and peer store bounded.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shoal_dht::krpc;
use shoal_dht::node::{Config, Node};

static NODE: Mutex<Option<(Node, Instant, u64)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = krpc::decode(data) {
        let again = krpc::decode(&msg.encode()).expect("an encoded message decodes");
        assert_eq!(again, msg);
    }
    let mut guard = NODE.lock().unwrap_or_else(|e| e.into_inner());
    let (node, start, n) = guard.get_or_insert_with(|| {
        let now = Instant::now();
        (Node::new(Config::default(), now, 7), now, 0)
    });
    *n += 1;
    // Virtual time moves a millisecond per input; sources vary so per-IP limits are exercised.
    let now = *start + Duration::from_millis(*n);
    let from = SocketAddr::from((Ipv4Addr::new(10, (*n >> 16) as u8, (*n >> 8) as u8, *n as u8), 6881));
    node.handle_packet(from, data, now);
    node.tick(now);
    let mut out = 0;
    while node.poll_output().is_some() {
        out += 1;
    }
    assert!(out <= 4096, "one datagram produced {out} outputs");
});
