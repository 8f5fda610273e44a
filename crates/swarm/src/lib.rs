//! shoal-swarm
