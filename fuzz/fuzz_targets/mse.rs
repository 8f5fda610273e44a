//! Fuzzes the protocol encryption handshake (MSE/PE) on both sides with what a hostile peer
//! sends: any bytes, as the initiator's steps 1 and 3 (to a responder) or as the responder's
//! steps 2 and 4 (to an initiator). No input may panic or read past the handshake's bounds
//! (pads of at most 512 bytes, an initial payload of at most 1 KiB); the stream ends where the
//! input does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_mse::{PLAINTEXT, RC4, initiate_on, respond_on};
use shoal_proto::InfoHash;

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    rt.block_on(async {
        let torrent = InfoHash([7; 20]);
        let mut stream = tokio::io::join(data, tokio::io::sink());
        let _ = respond_on(&mut stream, &[], |_| Some(torrent), PLAINTEXT | RC4).await;
        let mut stream = tokio::io::join(data, tokio::io::sink());
        let _ = initiate_on(&mut stream, torrent, PLAINTEXT | RC4, &[]).await;
    });
});
