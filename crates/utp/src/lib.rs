//! uTP, the uTorrent transport protocol (BEP 29): BitTorrent over UDP with LEDBAT congestion
//! control, which fills an idle path but steps aside when other traffic builds a queue.
//!
//! - [`packet`]: the header and extensions (selective ack), decoded from untrusted bytes
//!   without allocating (fuzzed: `fuzz/fuzz_targets/utp.rs`).
//! - [`ledbat`]: the congestion window, pure.
//! - [`conn`]: one connection as a sans-IO state machine (handshake, reliability, flow
//!   control, close), tested in virtual time with loss, reordering and a bottleneck queue.
//! - [`socket`]: the tokio driver, one UDP socket for all connections, and [`UtpStream`].
//!
//! Written here rather than taken from a crate: `librqbit-utp` (the best-kept Rust uTP) runs
//! Cubic or Reno, not LEDBAT, and its congestion trait is never shown the one-way delay samples
//! LEDBAT steers by, so it cannot yield to TCP as BEP 29 intends; `async-utp`/`utp` call
//! themselves experimental and lack congestion control; `libutp-rs2` wraps the C library.

pub mod conn;
pub mod ledbat;
pub mod packet;
pub mod socket;

pub use conn::{Conn, State};
pub use packet::{Packet, PacketError};
pub use socket::{Counters, UtpRead, UtpSocket, UtpStream, UtpWrite};
