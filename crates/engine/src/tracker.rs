//! Trackers: the client side that announces each torrent to its HTTP trackers (BEP 3, compact
//! peer lists from BEP 23) and UDP trackers (BEP 15), in tiers (BEP 12), and the built-in
//! tracker server behind `shoal tracker`, which answers both protocols.
//!
//! Announce policy: `started` first, then every interval the tracker asks for (never more often
//! than its `min interval`, unless the user asks for a reannounce), `completed` as soon as the
//! download finishes, and `stopped` when the torrent stops. Within a tier the trackers are tried in order, whatever their protocol, and the
//! one that answered moves to the front; later tiers are only tried when every tracker of the
//! earlier ones failed.

mod client;
mod server;
mod udp;

pub(crate) use client::{Announcer, announce_loop, find_peers};
pub use server::{SwarmCounts, TrackerBindError, TrackerConfig, TrackerServer, routes};
