//! Fuzzes the HTTP tracker formats: announce replies (client side) and announce queries
//! (Shoal's built-in tracker). Accepted values must survive an encode/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::{AnnounceRequest, AnnounceResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = AnnounceResponse::parse(data) {
        let again = AnnounceResponse::parse(&reply.encode_compact()).expect("encoded reply parses");
        assert_eq!(again.interval, reply.interval);
        assert_eq!(again.min_interval, reply.min_interval);
        assert_eq!(
            (again.complete, again.incomplete),
            (reply.complete, reply.incomplete)
        );
        assert_eq!(again.peers.len(), reply.peers.len());
        assert_eq!(again.warning, reply.warning);
    }
    if let Ok(query) = std::str::from_utf8(data) {
        if let Ok(req) = AnnounceRequest::from_query(query) {
            assert_eq!(AnnounceRequest::from_query(&req.to_query()), Ok(req));
        }
    }
});
