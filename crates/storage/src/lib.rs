//! shoal-storage
