//! The uTP packet (BEP 29): a 20-byte header, a chain of extensions and the payload.
//!
//! ```text
//! type|ver  extension  connection_id
//! timestamp_microseconds
//! timestamp_difference_microseconds
//! wnd_size
//! seq_nr  ack_nr
//! ```
//!
//! Extensions are linked like TCP options: the header names the first one's type, and each
//! extension starts with the next one's type and its own length. Type 1 is the selective ack (a
//! bitmask of at least 32 bits, in multiples of 32, its first bit standing for `ack_nr + 2`; we
//! send it so, and read any non-empty length, since libtorrent sends whole bytes only).
//! Unknown extensions are skipped by their length, as the BEP says. Shoal adds one:
//! [`EXT_MAX_DATAGRAM`], the largest datagram its sender takes in (a `u32`), sent on the SYN and
//! on the answer to it, so two Shoal peers on one machine can use datagrams far larger than an
//! Ethernet frame while every other peer gets [`BASE_PAYLOAD`]-sized ones.
//!
//! [`Packet::decode`] takes untrusted bytes: every length is checked against what is left, the
//! extension chain cannot loop (each step consumes at least its two header bytes), and the
//! result borrows the datagram (no allocation).

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Extension type of the selective ack.
pub const EXT_SACK: u8 = 1;
/// Extension type (Shoal's) naming the largest datagram the sender accepts, a big-endian u32.
pub const EXT_MAX_DATAGRAM: u8 = 0x53;
/// Payload of a data packet to a peer that said nothing about its datagram size, or on a path
/// other than loopback: a 1,500-byte Ethernet frame less the IPv6 and UDP headers, the uTP
/// header and a selective ack.
pub const BASE_PAYLOAD: usize = 1_400;
/// Most bits of a selective ack we send (and read): 8 words.
pub const MAX_SACK_BYTES: usize = 32;

/// What a packet is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// Carries payload; takes a sequence number.
    Data = 0,
    /// The sender has no more to send; takes a sequence number (the last one).
    Fin = 1,
    /// An ack, nothing else; takes no sequence number.
    State = 2,
    /// Ends the connection at once.
    Reset = 3,
    /// Opens a connection; takes a sequence number.
    Syn = 4,
}

impl Type {
    fn from_nibble(n: u8) -> Option<Type> {
        Some(match n {
            0 => Type::Data,
            1 => Type::Fin,
            2 => Type::State,
            3 => Type::Reset,
            4 => Type::Syn,
            _ => return None,
        })
    }
}

/// Why bytes are not a uTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than a header.
    #[error("{0} bytes are shorter than the 20-byte uTP header")]
    Short(usize),
    /// Another version.
    #[error("uTP version {0} (only 1 exists)")]
    Version(u8),
    /// Another type.
    #[error("unknown uTP packet type {0}")]
    Type(u8),
    /// An extension longer than the packet.
    #[error("an extension runs past the end of the packet")]
    Extension,
    /// A selective ack of a wrong length.
    #[error("an empty selective ack")]
    Sack(usize),
}

/// The fixed header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the packet is for.
    pub ty: Type,
    /// The receiver's id of the connection (the sender's on a SYN).
    pub conn_id: u16,
    /// The sender's clock (µs) when it sent the packet.
    pub timestamp: u32,
    /// The sender's clock minus the timestamp of the last packet it received (µs): the one-way
    /// delay of our packets, plus the clocks' offset.
    pub timestamp_diff: u32,
    /// Bytes the sender can still take in.
    pub wnd_size: u32,
    /// This packet's sequence number.
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
}

/// A decoded packet, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// The selective ack's bitmask (bit 0 of byte 0 is `ack_nr + 2`), when present.
    pub sack: Option<&'a [u8]>,
    /// Shoal's extension: the largest datagram the sender takes in.
    pub max_datagram: Option<u32>,
    /// What follows the extensions.
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Reads a datagram.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError::Short(buf.len()));
        }
        let version = buf[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let ty = Type::from_nibble(buf[0] >> 4).ok_or(PacketError::Type(buf[0] >> 4))?;
        let u16_at = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let header = Header {
            ty,
            conn_id: u16_at(2),
            timestamp: u32_at(4),
            timestamp_diff: u32_at(8),
            wnd_size: u32_at(12),
            seq_nr: u16_at(16),
            ack_nr: u16_at(18),
        };
        let mut next = buf[1];
        let mut at = HEADER_LEN;
        let (mut sack, mut max_datagram) = (None, None);
        while next != 0 {
            if buf.len() < at + 2 {
                return Err(PacketError::Extension);
            }
            let (kind, len) = (next, buf[at + 1] as usize);
            next = buf[at];
            let body = buf.get(at + 2..at + 2 + len).ok_or(PacketError::Extension)?;
            match kind {
                EXT_SACK => {
                    // BEP 29 asks for whole 32-bit words, but libtorrent sends as many bytes as
                    // its bitmask needs: any non-empty mask is read.
                    if len == 0 {
                        return Err(PacketError::Sack(len));
                    }
                    sack = Some(body);
                }
                EXT_MAX_DATAGRAM if len == 4 => {
                    max_datagram = Some(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
                }
                _ => {}
            }
            at += 2 + len;
        }
        Ok(Packet { header, sack, max_datagram, payload: &buf[at..] })
    }
}

/// Writes a packet into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, header: &Header, sack: Option<&[u8]>, max_datagram: Option<u32>, payload: &[u8]) {
    out.clear();
    let first_ext = match (sack, max_datagram) {
        (Some(_), _) => EXT_SACK,
        (None, Some(_)) => EXT_MAX_DATAGRAM,
        (None, None) => 0,
    };
    out.push(((header.ty as u8) << 4) | VERSION);
    out.push(first_ext);
    out.extend_from_slice(&header.conn_id.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.timestamp_diff.to_be_bytes());
    out.extend_from_slice(&header.wnd_size.to_be_bytes());
    out.extend_from_slice(&header.seq_nr.to_be_bytes());
    out.extend_from_slice(&header.ack_nr.to_be_bytes());
    if let Some(mask) = sack {
        debug_assert!(mask.len() >= 4 && mask.len() % 4 == 0 && mask.len() <= 252);
        out.push(if max_datagram.is_some() { EXT_MAX_DATAGRAM } else { 0 });
        out.push(mask.len() as u8);
        out.extend_from_slice(mask);
    }
    if let Some(max) = max_datagram {
        out.push(0);
        out.push(4);
        out.extend_from_slice(&max.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Whether a datagram looks like uTP (so a socket shared with the DHT can tell them apart: DHT
/// messages are bencoded dictionaries and start with `d`).
pub fn is_utp(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && buf[0] & 0x0f == VERSION && buf[0] >> 4 <= 4
}

/// `a` comes after `b` in 16-bit sequence space.
pub fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(ty: Type) -> Header {
        Header {
            ty,
            conn_id: 0x1234,
            timestamp: 0xdead_beef,
            timestamp_diff: 7,
            wnd_size: 1 << 20,
            seq_nr: 65_535,
            ack_nr: 3,
        }
    }

    #[test]
    fn round_trip_with_both_extensions() {
        let mut out = Vec::new();
        encode(&mut out, &header(Type::Data), Some(&[1, 0, 0, 0x80]), Some(65_000), b"hello");
        assert_eq!(out.len(), HEADER_LEN + 2 + 4 + 2 + 4 + 5);
        let p = Packet::decode(&out).expect("decodes");
        assert_eq!(p.header, header(Type::Data));
        assert_eq!(p.sack, Some(&[1u8, 0, 0, 0x80][..]));
        assert_eq!(p.max_datagram, Some(65_000));
        assert_eq!(p.payload, b"hello");
        assert!(is_utp(&out));
        assert!(!is_utp(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"));
    }

    #[test]
    fn the_header_is_laid_out_as_bep_29_says() {
        let mut out = Vec::new();
        encode(&mut out, &header(Type::Syn), None, None, &[]);
        assert_eq!(out[0], 0x41, "type 4 in the high nibble, version 1 in the low one");
        assert_eq!(&out[2..4], &[0x12, 0x34]);
        assert_eq!(&out[16..20], &[0xff, 0xff, 0, 3]);
    }

    #[test]
    fn unknown_extensions_are_skipped_and_bad_ones_refused() {
        let mut out = Vec::new();
        encode(&mut out, &header(Type::State), None, None, &[]);
        out[1] = 9; // an unknown extension of 3 bytes, then payload
        out.extend_from_slice(&[0, 3, 1, 2, 3, b'x']);
        let p = Packet::decode(&out).expect("decodes");
        assert_eq!(p.payload, b"x");
        assert_eq!(p.sack, None);
        out.truncate(HEADER_LEN + 3);
        assert_eq!(Packet::decode(&out), Err(PacketError::Extension));
        let mut bad_sack = Vec::new();
        encode(&mut bad_sack, &header(Type::State), None, None, &[]);
        bad_sack[1] = EXT_SACK;
        bad_sack.extend_from_slice(&[0, 0]);
        assert_eq!(Packet::decode(&bad_sack), Err(PacketError::Sack(0)));
        // libtorrent's masks are whole bytes, not words.
        let mut byte_sack = Vec::new();
        encode(&mut byte_sack, &header(Type::State), None, None, &[]);
        byte_sack[1] = EXT_SACK;
        byte_sack.extend_from_slice(&[0, 1, 0x05]);
        assert_eq!(Packet::decode(&byte_sack).expect("decodes").sack, Some(&[0x05u8][..]));
        assert_eq!(Packet::decode(&[0x41; 19]), Err(PacketError::Short(19)));
        assert_eq!(Packet::decode(&[0x42; 20]), Err(PacketError::Version(2)));
        assert_eq!(Packet::decode(&[0x51; 20]), Err(PacketError::Type(5)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        assert!(seq_after(1, 65_535));
        assert!(seq_after(5, 4));
        assert!(!seq_after(4, 5));
        assert!(!seq_after(4, 4));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn encode_then_decode(seq in any::<u16>(), ack in any::<u16>(), wnd in any::<u32>(),
                              words in 0usize..8, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut h = header(Type::Data);
            h.seq_nr = seq;
            h.ack_nr = ack;
            h.wnd_size = wnd;
            let mask = vec![0xa5u8; words * 4];
            let mut out = Vec::new();
            encode(&mut out, &h, (words > 0).then_some(&mask[..]), None, &payload);
            let p = Packet::decode(&out).expect("decodes");
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.sack.map(<[u8]>::to_vec), (words > 0).then(|| mask.clone()));
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
