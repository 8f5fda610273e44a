//! Probes of a TLS peer for the SSL torrent tests: dial with a chosen TLS client and SNI, send
//! a BitTorrent handshake, count the handshake bytes that come back (0: refused).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn bt_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(info_hash);
    hs.extend_from_slice(b"-XX0000-probeprobepr");
    hs
}

/// Bytes of the BitTorrent handshake a peer sends back on `stream` after ours (0 when it
/// refuses: closes, errors or stays silent for 5 s).
pub(crate) fn handshake_bytes_back(stream: &mut impl Read) -> usize {
    let mut buf = [0u8; 68];
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

pub(crate) fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

/// Dials `addr` over TLS with `config` and SNI `sni`, sends a BitTorrent handshake for
/// `info_hash`, and returns how many handshake bytes came back.
pub(crate) fn tls_probe(addr: SocketAddr, config: Arc<rustls::ClientConfig>, sni: &str, info_hash: &[u8; 20]) -> usize {
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("sni");
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp(addr));
    if tls.write_all(&bt_handshake(info_hash)).and_then(|()| tls.flush()).is_err() {
        return 0;
    }
    handshake_bytes_back(&mut tls)
}

/// The TLS client configuration a Shoal node in `dir` uses for `group`'s torrents.
pub(crate) fn member_client(dir: &Path, group: &str, torrent_name: &str) -> Arc<rustls::ClientConfig> {
    let (me, _) = shoal_identity::Identity::load_or_create(dir, None).expect("identity");
    let membership = shoal_identity::Groups::new(dir).membership(&me, group).expect("membership");
    shoal_identity::peer_tls(&membership, torrent_name, Arc::default()).expect("tls").client
}

pub(crate) fn info_hash_bytes(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}
