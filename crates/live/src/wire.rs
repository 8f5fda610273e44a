//! The live channel's messages between neighbours.
//!
//! A connection starts with a BitTorrent handshake (BEP 3) naming the channel's swarm,
//! [`swarm_of`] (the SHA-1 of `shoal-live-v1` and the channel key), so a node takes live
//! connections on its normal peer port and finds viewers through the DHT and local discovery
//! as it finds torrent peers. Then each side sends frames: a 4-byte big-endian length, a type
//! byte and the body (a length of 0 is a keep-alive). The first frame is [`Frame::Hello`].
//!
//! | type | body |
//! |---|---|
//! | 0 hello | role (1 = the broadcaster, 0 = a viewer), listen port (2) |
//! | 1 have, 2 want, 3 lack, 4 busy | sequence number (8) |
//! | 5 chunk | a signed chunk's wire form ([`crate::chunk`]) |
//! | 6 peers | up to [`MAX_PEERS`] addresses: family (4 or 6), address, port (2) |
//!
//! Everything is bounded and refused with the reason: frames over [`MAX_FRAME`] bytes, unknown
//! types, bodies of the wrong length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::chunk::{Chunk, ChunkError, HEADER, MAX_PAYLOAD, SIGNATURE};
use crate::mesh::{Msg, Seq};

/// Largest frame body (a chunk with the largest payload and its type byte).
pub const MAX_FRAME: usize = 1 + HEADER + MAX_PAYLOAD + SIGNATURE;
/// Addresses in one `peers` frame at most.
pub const MAX_PEERS: usize = 50;

/// The info-hash of channel `key`'s swarm.
pub fn swarm_of(key: &[u8; 32]) -> [u8; 20] {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(b"shoal-live-v1");
    h.update(key);
    h.finalize().into()
}

/// A message on a live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Who is speaking.
    Hello {
        /// The broadcaster (else a viewer).
        source: bool,
        /// Its listen port (0: none).
        port: u16,
    },
    /// A policy message (not [`Msg::Chunk`]).
    Mesh(Msg),
    /// A chunk.
    Chunk(Chunk),
    /// Other nodes of the channel.
    Peers(Vec<SocketAddr>),
    /// Nothing (keeps the connection open).
    KeepAlive,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length, type or body that is not right.
    #[error("a malformed message: {0}")]
    Malformed(String),
    /// A chunk that is not right.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

impl Frame {
    /// The frame with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Frame::KeepAlive => {}
            Frame::Hello { source, port } => {
                body.push(0);
                body.push(u8::from(*source));
                body.extend(port.to_be_bytes());
            }
            Frame::Mesh(msg) => {
                let (t, seq) = match *msg {
                    Msg::Have(s) => (1, s),
                    Msg::Want(s) => (2, s),
                    Msg::Lack(s) => (3, s),
                    Msg::Busy(s) => (4, s),
                    Msg::Chunk(s) => (1, s), // never sent as such: the transport sends the chunk
                };
                body.push(t);
                body.extend(seq.to_be_bytes());
            }
            Frame::Chunk(chunk) => {
                body.push(5);
                body.extend(chunk.encode());
            }
            Frame::Peers(addrs) => {
                body.push(6);
                for addr in addrs.iter().take(MAX_PEERS) {
                    match addr.ip() {
                        IpAddr::V4(ip) => {
                            body.push(4);
                            body.extend(ip.octets());
                        }
                        IpAddr::V6(ip) => {
                            body.push(6);
                            body.extend(ip.octets());
                        }
                    }
                    body.extend(addr.port().to_be_bytes());
                }
            }
        }
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    /// Whether a frame of `len` body bytes may be read at all.
    pub fn check_len(len: usize) -> Result<(), WireError> {
        if len > MAX_FRAME {
            return Err(WireError::Malformed(format!("a frame of {len} bytes (at most {MAX_FRAME})")));
        }
        Ok(())
    }

    /// Reads a frame's body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, WireError> {
        Frame::check_len(body.len())?;
        let Some((&t, rest)) = body.split_first() else { return Ok(Frame::KeepAlive) };
        let seq = |rest: &[u8]| -> Result<Seq, WireError> {
            let bytes: [u8; 8] = rest
                .try_into()
                .map_err(|_| WireError::Malformed(format!("{} bytes for a sequence number", rest.len())))?;
            Ok(u64::from_be_bytes(bytes))
        };
        Ok(match t {
            0 => {
                let [role, hi, lo] = rest else {
                    return Err(WireError::Malformed(format!("a hello of {} bytes (3)", rest.len())));
                };
                if *role > 1 {
                    return Err(WireError::Malformed(format!("role {role} in a hello")));
                }
                Frame::Hello { source: *role == 1, port: u16::from_be_bytes([*hi, *lo]) }
            }
            1 => Frame::Mesh(Msg::Have(seq(rest)?)),
            2 => Frame::Mesh(Msg::Want(seq(rest)?)),
            3 => Frame::Mesh(Msg::Lack(seq(rest)?)),
            4 => Frame::Mesh(Msg::Busy(seq(rest)?)),
            5 => Frame::Chunk(Chunk::decode(rest)?),
            6 => {
                let mut addrs = Vec::new();
                let mut at = rest;
                while let Some((&family, tail)) = at.split_first() {
                    let n = match family {
                        4 => 4,
                        6 => 16,
                        f => return Err(WireError::Malformed(format!("address family {f}"))),
                    };
                    if tail.len() < n + 2 {
                        return Err(WireError::Malformed("a cut address".into()));
                    }
                    let ip = if n == 4 {
                        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&tail[..4]).unwrap_or_default()))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&tail[..16]).unwrap_or_default()))
                    };
                    addrs.push(SocketAddr::new(ip, u16::from_be_bytes([tail[n], tail[n + 1]])));
                    if addrs.len() > MAX_PEERS {
                        return Err(WireError::Malformed(format!("more than {MAX_PEERS} addresses")));
                    }
                    at = &tail[n + 2..];
                }
                Frame::Peers(addrs)
            }
            t => return Err(WireError::Malformed(format!("message type {t}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_say_why() {
        let chunk = Chunk { seq: 9, at_ms: 1234, payload: vec![1, 2, 3], signature: [7; SIGNATURE] };
        for f in [
            Frame::Hello { source: true, port: 6881 },
            Frame::Mesh(Msg::Have(1)),
            Frame::Mesh(Msg::Want(u64::MAX)),
            Frame::Mesh(Msg::Lack(3)),
            Frame::Mesh(Msg::Busy(4)),
            Frame::Chunk(chunk),
            Frame::Peers(vec![SocketAddr::from(([127, 0, 0, 1], 5)), SocketAddr::from((Ipv6Addr::LOCALHOST, 6))]),
            Frame::KeepAlive,
        ] {
            let bytes = f.encode();
            assert_eq!(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize, bytes.len() - 4);
            assert_eq!(Frame::decode(&bytes[4..]), Ok(f));
        }
        let err = |b: &[u8]| Frame::decode(b).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&[9]).contains("message type 9"));
        assert!(err(&[1, 0, 0]).contains("sequence number"));
        assert!(err(&[0, 2, 0, 0]).contains("role 2"));
        assert!(err(&[6, 5]).contains("family 5"));
        assert!(err(&[6, 4, 1, 2]).contains("cut address"));
        let mut many = vec![6];
        for _ in 0..=MAX_PEERS {
            many.extend([4, 1, 2, 3, 4, 0, 1]);
        }
        assert!(err(&many).contains("more than"));
        assert!(Frame::check_len(MAX_FRAME + 1).is_err());
        assert_ne!(swarm_of(&[1; 32]), swarm_of(&[2; 32]));
    }
}
