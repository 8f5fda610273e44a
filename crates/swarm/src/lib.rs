//! Sans-IO swarm logic: everything Shoal decides about a torrent, with no sockets, no disk and
//! no clock. The engine feeds it decoded peer messages, verification results and the current
//! time, and carries out the [`Action`]s it returns. Because time is a parameter, the
//! [`sim`] module runs whole swarms of peers in virtual time, with exact, repeatable results.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod bitfield;
pub mod candidates;
pub mod choker;
mod peer;
pub mod pex;
mod picker;
pub mod rate;
pub mod rng;
pub mod sim;
pub mod stream;
mod superseed;
mod swarm;

pub use bitfield::Bitfield;
pub use candidates::{CandidateConfig, Candidates, Source as CandidateSource};
pub use peer::PeerView;
pub use pex::PexSchedule;
pub use rate::Rate;
pub use swarm::{Action, Config, PeerError, Stats, Swarm, WANTS_AT_ONCE};

/// Identifies one peer connection within a torrent. Chosen by the driver; never reused while
/// the connection is known to the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);
