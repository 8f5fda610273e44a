//! Pure BitTorrent protocol types and codecs: identifiers, piece geometry, metainfo (.torrent)
//! files, magnet links, the peer wire protocol and tracker messages. No sockets, no clocks, no
//! async: everything here turns bytes into validated values and back, so it can be unit-tested,
//! property-tested and fuzzed in isolation.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod layout;
pub mod types;
pub mod wire;

pub use layout::Layout;
pub use types::{BLOCK_SIZE, BlockRange, InfoHash, PeerId, PieceIndex};
pub use wire::{Handshake, Message};
