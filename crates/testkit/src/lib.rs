//! Test-only helpers for Shoal's integration and interop tests.
//!
//! - [`data`]: deterministic test files ([`make_test_file`]) and byte-for-byte comparison of
//!   files and folder trees ([`compare_files`], [`files_equal`], [`assert_same_tree`]).
//! - [`wait`]: [`wait_until`], the one way tests wait on a condition (bounded in time and in
//!   number of polls; no fixed sleeps).
//! - [`process`]: [`ChildGuard`] (kills a child process when dropped) and [`Proc`] (a child whose
//!   stdout and stderr are drained by background threads, so a test can wait for a line such
//!   as `READY <port>` with a timeout and print everything the child said when it fails).
//! - [`net`]: [`free_port`], a fresh loopback port for each server a test starts.
//! - [`netns`]: [`netns::NetPair`], two network namespaces of the test's own joined by a link,
//!   for local peer discovery tests (multicast never leaves them).
//! - [`tools`]: the real clients Shoal is tested against. [`ensure_tools`] fails the test when
//!   libtorrent or transmission-daemon is missing (`./scripts/test` installs both; tests never
//!   skip), [`python_lt`] builds a command for `drivers/lt_client.py` (libtorrent as seeder,
//!   leecher and torrent tool), [`spawn_lt_seed`] starts a libtorrent seed, [`lt_create`] and
//!   [`lt_info_hash`] make and read .torrent files with libtorrent.
//! - [`transmission`]: [`Transmission`], a private transmission-daemon on loopback driven
//!   through `drivers/transmission.py`.
//!
//! Conventions: helpers that prepare a test (writing data, finding a port) panic with a plain
//! message, since there is nothing a test could do about the failure; helpers that wait on the
//! system under test return `Result<_, String>` whose error says what was expected, what was
//! seen, and what the processes involved printed.
//!
//! Loopback facts the drivers rely on:
//! - Every real client is bound to 127.0.0.1 and finds peers only through `--peer` dialling or
//!   the trackers named in the torrent (no DHT, LSD, PEX, UPnP, NAT-PMP or uTP).
//! - Transmission never dials a 127.0.0.0/8 peer but accepts connections from one, so the other
//!   side must dial [`Transmission::peer_addr`]. It keeps one connection per IP address and
//!   torrent, so only one 127.0.0.1 peer at a time can exchange data with one of its torrents,
//!   and once a 127.0.0.1 peer was a seed, a seeding Transmission refuses 127.0.0.1 peers for
//!   that torrent: start a fresh [`Transmission`] per test, and give each extra peer its own
//!   loopback address (`lt_client.py --bind 127.0.0.2`; any 127.x.y.z works on Linux).
//! - Transmission decides which peers it is interested in, and which it unchokes, every 10 s,
//!   so its transfers start up to ~10 s after the connection is made.

pub mod data;
pub mod net;
pub mod netns;
pub mod process;
pub mod tools;
pub mod transmission;
pub mod wait;

pub use data::{assert_same_tree, compare_files, files_equal, make_test_file, test_bytes};
pub use net::free_port;
pub use process::{Captured, ChildGuard, Proc, run_captured};
pub use tempfile::{self, TempDir};
pub use tools::{
    ensure_tools, lt_create, lt_info_hash, python_lt, python_qbt, python_transmission, repo_root, spawn_lt_seed,
};
pub use transmission::{Added, Transmission};
pub use wait::wait_until;
