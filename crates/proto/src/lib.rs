//! Pure BitTorrent protocol types and codecs: identifiers, piece geometry, metainfo (.torrent)
//! files, magnet links, the peer wire protocol, extension messages (metadata exchange, peer
//! exchange), HTTP and UDP tracker messages and local service discovery announces. No sockets,
//! no clocks, no async: everything here turns bytes into validated values and back, so it can
//! be unit-tested, property-tested and fuzzed in isolation.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod extension;
pub mod layout;
pub mod lsd;
pub mod magnet;
pub mod merkle;
pub mod metadata;
pub mod metainfo;
pub mod pex;
pub mod rng;
pub mod tracker;
pub mod types;
pub mod udp_tracker;
pub mod wire;

pub use extension::{ExtHandshake, ExtensionError, MetadataMessage};
pub use layout::Layout;
pub use lsd::{LsdAnnounce, LsdError, LsdGroup};
pub use magnet::{Magnet, MagnetError};
pub use metadata::{MAX_METADATA_SIZE, MetadataAssembler, MetadataError, metadata_pieces, serve_metadata_piece};
pub use metainfo::{
    CreateContent, CreateFile, CreateSpec, FileEntry, Info, Metainfo, MetainfoError, build_torrent,
    default_piece_length,
};
pub use pex::{PexError, PexMessage, PexState};
pub use tracker::{AnnounceRequest, AnnounceResponse, Event, TrackerError, encode_failure};
pub use types::{BLOCK_SIZE, BlockRange, InfoHash, PeerId, PieceIndex};
pub use udp_tracker::{UdpAnnounceRequest, UdpAnnounceResponse, UdpRequest, UdpResponse, UdpTrackerError};
pub use wire::{Handshake, MAX_MESSAGE_LEN, Message, WireError, decode_message, max_message_len};
