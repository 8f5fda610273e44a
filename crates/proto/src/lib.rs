//! Pure BitTorrent protocol types and codecs: identifiers, piece geometry, metainfo (.torrent)
//! files, magnet links, the peer wire protocol and tracker messages. No sockets, no clocks, no
//! async: everything here turns bytes into validated values and back, so it can be unit-tested,
//! property-tested and fuzzed in isolation.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod extension;
pub mod layout;
pub mod magnet;
pub mod metainfo;
pub mod tracker;
pub mod types;
pub mod wire;

pub use extension::{ExtHandshake, ExtensionError, MetadataMessage};
pub use layout::Layout;
pub use magnet::{Magnet, MagnetError};
pub use metainfo::{
    CreateContent, CreateFile, CreateSpec, FileEntry, Info, Metainfo, MetainfoError, build_torrent,
    default_piece_length,
};
pub use tracker::{AnnounceRequest, AnnounceResponse, Event, TrackerError, encode_failure};
pub use types::{BLOCK_SIZE, BlockRange, InfoHash, PeerId, PieceIndex};
pub use wire::{Handshake, MAX_MESSAGE_LEN, Message, WireError, decode_message, max_message_len};
