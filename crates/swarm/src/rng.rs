//! The deterministic random generator the swarm logic draws from (shared with the DHT).

pub use shoal_proto::rng::Rng;
