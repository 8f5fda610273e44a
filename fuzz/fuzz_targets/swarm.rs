//! Drives the sans-IO swarm state machine and the candidate-peer set with arbitrary event
//! sequences, as a hostile set of peers could: connections opening and closing, any decodable
//! peer message, verification results, ticks, and floods of candidate addresses with dial
//! outcomes. No sequence may panic; the candidate set stays within its bound and never hands
//! out an address twice; the swarm never claims more pieces than the torrent has.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal_proto::{Layout, decode_message};
use shoal_swarm::{Bitfield, CandidateConfig, CandidateSource, Candidates, Config, PeerKey, Swarm};

fuzz_target!(|data: &[u8]| {
    let Some(layout) = Layout::new(5 * 16384 + 100, 32768) else { return };
    let start = Instant::now();
    let mut now = start;
    let seeding = data.first().is_some_and(|b| b & 1 == 1);
    let have = if seeding { Bitfield::full(layout.piece_count()) } else { Bitfield::new(layout.piece_count()) };
    let mut swarm = Swarm::new(layout, have, Config::default(), now);
    let mut peers: HashSet<u64> = HashSet::new();
    let mut candidates = Candidates::new(CandidateConfig { max_candidates: 32, max_failures: 4 });
    let mut out: HashSet<SocketAddr> = HashSet::new();
    let mut bytes = data.get(1..).unwrap_or_default();
    while let Some((&op, rest)) = bytes.split_first() {
        bytes = rest;
        let arg = bytes.first().copied().unwrap_or(0);
        let key = u64::from(arg % 4);
        match op % 10 {
            0 => {
                if peers.insert(key) {
                    swarm.add_peer(now, PeerKey(key), arg & 0x80 != 0);
                }
            }
            1 => {
                if peers.remove(&key) {
                    swarm.remove_peer(PeerKey(key));
                }
            }
            2 => {
                // A length-prefixed frame from peer `key`.
                let len = usize::from(bytes.get(1).copied().unwrap_or(0));
                let frame = bytes.get(2..2 + len).unwrap_or_default();
                let mut buf = BytesMut::from(frame);
                bytes = bytes.get(2 + len..).unwrap_or_default();
                if let (true, Ok(Some(msg))) = (peers.contains(&key), decode_message(&mut buf, 1 << 20)) {
                    if swarm.handle_message(now, PeerKey(key), msg).is_err() {
                        peers.remove(&key);
                        swarm.remove_peer(PeerKey(key));
                    }
                }
                continue;
            }
            3 => now += Duration::from_millis(u64::from(arg) * 50),
            4 => swarm.tick(now),
            5 => {
                if let Some(piece) = layout.piece(u32::from(arg % 8)) {
                    swarm.handle_verified(now, piece, arg & 0x80 != 0);
                }
            }
            6 => {
                let addr = SocketAddr::from(([10, 0, arg >> 4, arg], u16::from(arg) * 7));
                let source =
                    [CandidateSource::Pex, CandidateSource::Discovery, CandidateSource::Manual][usize::from(arg % 3)];
                candidates.insert(now, addr, source);
            }
            7 => {
                if let Some(a) = candidates.next(now, |a| a.port() % 5 == u16::from(arg % 5)) {
                    assert!(out.insert(a), "{a} handed out twice");
                }
            }
            8 => {
                let a = out.iter().nth(usize::from(arg) % out.len().max(1)).copied();
                if let Some(a) = a {
                    out.remove(&a);
                    if arg & 1 == 0 {
                        candidates.failed(now, a);
                    } else {
                        candidates.closed(now, a, Duration::from_secs(5));
                    }
                }
            }
            _ => {
                let a = out.iter().next().copied();
                if let Some(a) = a {
                    candidates.connected(a);
                }
            }
        }
        bytes = bytes.get(1..).unwrap_or_default();
        while swarm.poll_action().is_some() {}
        let stats = swarm.stats();
        assert!(stats.pieces_have <= layout.piece_count());
        assert!(candidates.len() <= 32 + 256, "the user's addresses aside, the set stays bounded");
    }
});
