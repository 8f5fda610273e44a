//! Live broadcasts for Shoal (issue: live broadcasts relayed by the audience), the pure parts:
//!
//! - [`link`]: the channel link viewers join with, `magnet:?xs=urn:btpk:KEY&dn=NAME`: the
//!   broadcaster's Ed25519 public key as in BEP 46 (mutable torrents name their publisher's key
//!   the same way), and a display name;
//! - [`chunk`]: the stream cut into chunks, each signed by the broadcaster's identity, their
//!   bounded wire form, and the window a viewer keeps near the live edge (old and repeated
//!   chunks refused, as PPSPP's live discard window does, RFC 7574 §6.5 / §12);
//! - [`mesh`]: the mesh's policy, sans-IO: availability, requests by deadline, how the
//!   broadcaster spends its upload, joining at the live edge;
//! - [`sim`]: a channel of any size simulated in virtual time with that policy;
//! - [`wire`]: the messages between neighbours, bounded.

pub mod chunk;
pub mod link;
pub mod mesh;
pub mod sim;
pub mod wire;

pub use chunk::{Chunk, ChunkError, Window};
pub use link::{ChannelLink, LinkError};
