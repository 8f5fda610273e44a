//! The deterministic random generator the node draws from (shared with the swarm logic; see
//! [`shoal_proto::rng`]). It drives choices that only need to be unpredictable enough for load
//! spreading (transaction id start, refresh targets, peer sampling) and must repeat exactly in
//! virtual-time tests. Nothing secret comes from it: token secrets and the node id are derived
//! from the seed with SHA-1 (see [`crate::Node::new`]), so an observer who reconstructs this
//! generator's state learns nothing that lets them forge tokens.

use crate::id::NodeId;

pub use shoal_proto::rng::Rng;

/// Random node ids.
pub trait RandomNodeId {
    /// A uniformly random node id.
    fn node_id(&mut self) -> NodeId;
}

impl RandomNodeId for Rng {
    fn node_id(&mut self) -> NodeId {
        let mut id = [0u8; 20];
        for chunk in id.chunks_mut(8) {
            let r = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        NodeId(id)
    }
}
