//! Node ids, the XOR distance between them, and the compact contact encodings of BEP 5
//! ("Contact Encoding"): 6-byte IPv4 peers, 26-byte IPv4 nodes, and their BEP 32 IPv6 forms
//! (18-byte peers, 38-byte nodes).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use shoal_proto::InfoHash;

/// A 160-bit DHT node id, from the same space as info-hashes (BEP 5 "Overview").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The XOR distance to `other`; smaller is closer.
    pub fn distance(&self, other: &NodeId) -> Distance {
        Distance(std::array::from_fn(|i| self.0[i] ^ other.0[i]))
    }

    /// Lower-case hex form for logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl From<InfoHash> for NodeId {
    fn from(ih: InfoHash) -> Self {
        NodeId(ih.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.to_hex())
    }
}

/// XOR distance between two ids, ordered as a 160-bit big-endian unsigned integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    /// The largest distance; used to sort contacts whose id is not known yet last.
    pub const MAX: Distance = Distance([0xff; 20]);

    /// Number of leading zero bits (160 for distance zero): the length of the common prefix.
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b != 0 {
                return n + b.leading_zeros();
            }
            n += 8;
        }
        n
    }
}

/// A DHT node's contact: its id and UDP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's id as it claims it.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

/// Length of a compact IPv4 peer (address and port).
pub const COMPACT_PEER_V4: usize = 6;
/// Length of a compact IPv6 peer (BEP 32).
pub const COMPACT_PEER_V6: usize = 18;
/// Length of a compact IPv4 node (id, address and port).
pub const COMPACT_NODE_V4: usize = 26;
/// Length of a compact IPv6 node (BEP 32).
pub const COMPACT_NODE_V6: usize = 38;

/// Appends the compact form of `addr`: 6 bytes for IPv4, 18 for IPv6, port big-endian.
pub fn write_compact_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads a compact address of 6 (IPv4) or 18 (IPv6) bytes; any other length is `None`.
pub fn read_compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        COMPACT_PEER_V4 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([b[4], b[5]]))))
        }
        COMPACT_PEER_V6 => {
            let octets: [u8; 16] = b[..16].try_into().ok()?;
            let port = u16::from_be_bytes([b[16], b[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0)))
        }
        _ => None,
    }
}

/// Appends a compact node: the 20-byte id, then the compact address.
pub fn write_compact_node(out: &mut Vec<u8>, node: &NodeInfo) {
    out.extend_from_slice(&node.id.0);
    write_compact_addr(out, &node.addr);
}

/// Reads one compact node of 26 (IPv4) or 38 (IPv6) bytes.
pub fn read_compact_node(b: &[u8]) -> Option<NodeInfo> {
    if b.len() < 20 {
        return None;
    }
    let id = NodeId(b[..20].try_into().ok()?);
    Some(NodeInfo { id, addr: read_compact_addr(&b[20..])? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_orders_numerically() {
        let a = NodeId([0; 20]);
        let mut b = [0; 20];
        b[19] = 1;
        let mut c = [0; 20];
        c[0] = 0x10;
        assert!(a.distance(&NodeId(b)) < a.distance(&NodeId(c)));
        assert_eq!(a.distance(&NodeId(c)).leading_zeros(), 3);
        assert_eq!(a.distance(&a).leading_zeros(), 160);
    }

    #[test]
    fn compact_roundtrip() {
        let v4 = NodeInfo { id: NodeId([7; 20]), addr: "1.2.3.4:6881".parse().expect("addr") };
        let v6 = NodeInfo { id: NodeId([9; 20]), addr: "[2001:db8::1]:51413".parse().expect("addr") };
        for (node, len) in [(v4, COMPACT_NODE_V4), (v6, COMPACT_NODE_V6)] {
            let mut out = Vec::new();
            write_compact_node(&mut out, &node);
            assert_eq!(out.len(), len);
            assert_eq!(read_compact_node(&out), Some(node));
        }
        assert_eq!(read_compact_addr(&[1, 2, 3]), None);
    }
}
