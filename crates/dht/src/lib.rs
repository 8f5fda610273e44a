//! A sans-IO Mainline DHT node (BEP 5) for Shoal: the KRPC codec, the k-bucket routing table,
//! announce tokens and the peer store, iterative lookups, and [`Node`], which ties them into one
//! state machine fed with received datagrams and the current time and drained for datagrams to
//! send and events (see [`node`] for the call protocol). IPv4 only for now; the types (contact
//! encodings, `nodes6`, `want`, one routing table per family) leave room for BEP 32.
//!
//! Why hand-written rather than the `mainline` crate the engine used: `mainline` drops every
//! KRPC message whose transaction id is not exactly 4 bytes, and libtorrent uses 2-byte ids, so
//! a Shoal node built on it would never answer libtorrent. This codec accepts any id of 0 to 16
//! bytes and echoes it verbatim. And a sans-IO node runs in virtual time, so whole networks of
//! nodes are simulated in tests (`tests/virtual_net.rs`) with exact, repeatable results.
//!
//! ```
//! use std::time::Instant;
//! use shoal_dht::{Config, Node, Output};
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config { bootstrap: vec!["10.0.0.1:6881".parse()?], ..Config::default() }, now, 42);
//! node.tick(now); // starts bootstrapping
//! let Some(Output::Send { to, bytes }) = node.poll_output() else { panic!("expected a query") };
//! assert_eq!(to.to_string(), "10.0.0.1:6881");
//! assert!(shoal_dht::krpc::decode(&bytes).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod id;
pub mod krpc;
mod limit;
pub mod lookup;
pub mod node;
pub mod rng;
pub mod routing;
pub mod store;
pub mod tokens;

pub use id::{Distance, NodeId, NodeInfo};
pub use krpc::{KrpcError, Message};
pub use limit::RateLimit;
pub use lookup::LookupStats;
pub use node::{Announce, Config, Counters, Event, LookupId, Node, Output, SampleReply};
pub use routing::{RoutingError, RoutingTable};
pub use store::{PeerStore, StoreLimits};
