//! Shoal's RPC: one typed [`Api`] served over HTTP in three dialects, so every front end (the
//! `shoal` CLI, the TUI, scripts in any language, Transmission remotes) drives the daemon the
//! same way.
//!
//! - [`api`]: the request and response types and the [`Api`] trait the daemon implements. This
//!   crate knows nothing of the engine; the daemon plugs its engine in through [`Api`].
//! - [`method`]: the method table JSON-RPC and XML-RPC share (`torrent.add`, `torrent.list`,
//!   `torrent.get`, `torrent.pause`, `torrent.resume`, `torrent.remove`, `torrent.set`,
//!   `torrent.peers`, `session.get`, `session.set`, `session.stats`, `system.listMethods`).
//! - [`jsonrpc`]: JSON-RPC 2.0, served at `/jsonrpc`.
//! - [`xmlrpc`]: XML-RPC with the same method names, served at `/xmlrpc`.
//! - [`transmission`]: the Transmission RPC (rpc-version 16), served at `/transmission/rpc`.
//! - [`push`]: the messages of the push protocol between `shoal push` and a server peer (a
//!   protocol of its own over TLS between identities, not an RPC dialect; here because it is
//!   pure and fuzzed like the rest).
//! - [`http`]: the axum [`Router`](axum::Router) for all three, with credentials, the body
//!   limit and the Transmission session-id handshake; [`check_bind`] refuses an open RPC
//!   beyond loopback.
//!
//! Request flow: bytes from HTTP are parsed by pure functions ([`jsonrpc::parse_request`],
//! [`xmlrpc::parse_call`], [`transmission::parse_request`]; fuzzed) into typed calls, which are
//! checked completely before the [`Api`] is called. A request that fails to parse, or that
//! fails the HTTP checks, never reaches the [`Api`] and so changes nothing.
//!
//! ```no_run
//! # async fn run<A: shoal_rpc::Api + 'static>(api: std::sync::Arc<A>) -> Result<(), Box<dyn std::error::Error>> {
//! use shoal_rpc::http::{Access, DEFAULT_LISTEN, check_bind, router};
//! let access = Access::open();
//! check_bind(DEFAULT_LISTEN, &access)?;
//! let listener = tokio::net::TcpListener::bind(DEFAULT_LISTEN).await?;
//! axum::serve(listener, router(api, access)).await?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod api;
mod groups;
mod hits;
pub mod http;
mod ids;
pub mod jsonrpc;
pub mod method;
pub mod push;
pub mod transmission;
pub mod xmlrpc;

#[cfg(test)]
mod fake;

pub use api::{
    AddRequest, AddResult, Api, ApiError, FileInfo, Ids, PeerInfo, Priority, RemoveRequest, SessionSettings,
    SessionStats, SessionUpdate, SetRequest, Source, TorrentId, TorrentInfo, TorrentRef, TorrentState, TrackerInfo,
    TransferTotals,
};
pub use http::{Access, Config, InsecureBind, check_bind, router, router_with};
