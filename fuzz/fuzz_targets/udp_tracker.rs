//! Fuzzes the UDP tracker codecs on both sides: requests as a tracker decodes them, replies
//! as a client decodes them (raw, and matched against the request it sent). Every accepted
//! packet must re-encode to one that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::udp_tracker::{
    AddressFamily, ConnectRequest, ConnectionId, ScrapeRequest, TransactionId, UdpRequest, UdpResponse,
};
use shoal_proto::{Event, InfoHash, PeerId, UdpAnnounceRequest};

fuzz_target!(|data: &[u8]| {
    // Tracker side.
    if let Ok(req) = UdpRequest::decode(data) {
        assert_eq!(UdpRequest::decode(&req.encode()), Ok(req));
    }

    // Client side, raw.
    for family in [AddressFamily::V4, AddressFamily::V6] {
        if let Ok(reply) = UdpResponse::decode(data, family) {
            assert_eq!(UdpResponse::decode(&reply.encode(family), family), Ok(reply));
        }
    }

    // Client side, matched against requests whose transaction id is the reply's (so the
    // checks after the id are reached), or 0 for short inputs.
    let tid = TransactionId(data.get(4..8).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
    let v6 = data.last().is_some_and(|b| b & 1 == 1);
    let family = if v6 { AddressFamily::V6 } else { AddressFamily::V4 };
    let connect = ConnectRequest { transaction_id: tid };
    if let Ok(reply) = connect.decode_response(data) {
        assert_eq!(UdpResponse::decode(data, family), Ok(UdpResponse::Connect(reply)));
    }
    let announce = UdpAnnounceRequest {
        connection_id: ConnectionId(1),
        transaction_id: tid,
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
        downloaded: 0,
        left: 0,
        uploaded: 0,
        event: Some(Event::Started),
        ip: None,
        key: 3,
        num_want: None,
        port: 6881,
    };
    if let Ok(reply) = announce.decode_response(data, family) {
        assert_eq!(UdpResponse::decode(data, family), Ok(UdpResponse::Announce(reply)));
    }
    let wanted = usize::from(data.first().copied().unwrap_or(0) % 8) + 1;
    let scrape = ScrapeRequest {
        connection_id: ConnectionId(1),
        transaction_id: tid,
        info_hashes: vec![InfoHash([4; 20]); wanted],
    };
    if let Ok(reply) = scrape.decode_response(data) {
        assert_eq!(reply.stats.len(), wanted);
        let Ok(UdpResponse::Scrape(raw)) = UdpResponse::decode(data, family) else {
            panic!("an accepted scrape reply decodes raw");
        };
        assert_eq!(raw.stats[..wanted], reply.stats[..]);
    }
});
