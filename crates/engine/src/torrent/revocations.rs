//! A group share's revocation lists (see [`crate::Revocations`]): what a torrent sends and
//! takes over `shoal_revocations`, and what it does when a newer list is in force.

use std::sync::Arc;

use bytes::Bytes;
use shoal_proto::Message;
use shoal_swarm::PeerKey;
use tokio::sync::watch;

use super::Actor;

/// Lists a peer may send us on one connection, at most.
const MOST_PER_CONNECTION: u8 = 4;

/// Our exchange of lists with one peer.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    /// The peer's id for `shoal_revocations` (it takes lists).
    pub(super) id: Option<u8>,
    /// Lists it sent us.
    received: u8,
    /// It was sent the list in force.
    sent: bool,
}

/// Waits until a newer list is in force (for ever without a group share).
pub(super) async fn changed(rx: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    pub(super) fn revocations(&self) -> Option<Arc<dyn crate::Revocations>> {
        self.inbox.ssl.as_ref()?.revocations.clone()
    }

    /// Sends the list in force to a peer that takes lists, once per connection and list.
    pub(super) fn send_revocations(&mut self, key: PeerKey) {
        let Some(their_id) = self.exts.get(&key).filter(|e| !e.revocations.sent).and_then(|e| e.revocations.id) else {
            return;
        };
        let Some(list) = self.revocations().and_then(|r| r.current()) else { return };
        if let Some(e) = self.exts.get_mut(&key) {
            e.revocations.sent = true;
        }
        self.send(key, Message::Extended { id: their_id, payload: list.into() });
    }

    /// A peer sent a list: checked on a blocking thread (signature, disk); a newer one comes
    /// back to every torrent of the group through the watch.
    pub(super) fn on_revocations(&mut self, key: PeerKey, payload: Bytes) {
        let (Some(revocations), Some(state)) = (self.revocations(), self.exts.get_mut(&key)) else { return };
        if state.revocations.received >= MOST_PER_CONNECTION {
            return;
        }
        state.revocations.received += 1;
        tokio::task::spawn_blocking(move || revocations.offer(&payload));
    }

    /// A newer list is in force: peers it revokes are let go, and the others get it.
    pub(super) fn on_revoked(&mut self) {
        let Some(revocations) = self.revocations() else { return };
        let revoked: Vec<PeerKey> = self
            .exts
            .iter()
            .filter(|(_, e)| e.cert.as_deref().is_some_and(|c| revocations.is_revoked(c)))
            .map(|(k, _)| *k)
            .collect();
        for key in revoked {
            if let Some(link) = self.links.get(&key) {
                tracing::info!(addr = %link.addr, "closing a connection to a member whose certificate was revoked");
            }
            self.close(key);
        }
        let keys: Vec<PeerKey> = self.exts.keys().copied().collect();
        for key in keys {
            if let Some(e) = self.exts.get_mut(&key) {
                e.revocations.sent = false;
            }
            self.send_revocations(key);
        }
    }
}
