//! Admitting peers: which addresses are dialled, which connections are taken (bans, the
//! limits per torrent, per address and per session, making room by closing an idle
//! connection), and the first messages on a connection taken.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use shoal_proto::extension::{ExtHandshake, UT_METADATA, UT_PEX};
use shoal_proto::{Handshake, Message, PexState};
use shoal_swarm::{CandidateSource, PeerKey, PexSchedule};

use super::{Actor, IDLE_EVICT_AFTER, MAX_PER_IP, OUR_REQQ, PeerExt, REFUSAL_LOG, revocations};
use crate::conn::PeerStream;
use crate::metadata::{
    OUR_SHOAL_REVOCATIONS, OUR_SHOAL_SEARCH, OUR_SHOAL_WANTS, OUR_UT_METADATA, OUR_UT_PEX, SHOAL_REVOCATIONS,
    SHOAL_SEARCH,
};
use crate::peer;

impl Actor {
    /// Every connection the session allows is in use.
    pub(super) fn session_full(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.connections.0.load(Relaxed) >= self.connections.1.load(Relaxed)
    }

    /// True for our own listening address (trackers list us among the peers).
    fn is_self(&self, addr: SocketAddr) -> bool {
        addr.port() == self.listen_port && (addr.ip().is_loopback() || addr.ip().is_unspecified())
    }

    /// Adds addresses to the candidates and dials what the limits allow.
    pub(super) fn learn(&mut self, addrs: Vec<SocketAddr>, source: CandidateSource) {
        let now = Instant::now();
        for addr in addrs {
            if !self.is_self(addr) && !self.banned_ips.contains(&addr.ip()) && !self.banned_listen.contains(&addr) {
                self.candidates.insert(now, addr, source);
            }
        }
        self.connect_more();
    }

    /// Whether one more connection with `ip` is allowed by the per-IP limit.
    fn ip_has_room(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.per_ip.get(&ip).copied().unwrap_or(0) < MAX_PER_IP
    }

    /// The torrent is full: picks a connection to close so that `newcomer` can take its slot,
    /// if one deserves it less. First fairness between addresses: an IP holding at least two
    /// more connections than the newcomer's gives one up. Then usefulness: a connection open
    /// for a while that moved no data either way and in which neither side is interested.
    fn make_room_for(&self, newcomer: IpAddr, now: Instant) -> Option<PeerKey> {
        let theirs = self.per_ip.get(&newcomer).copied().unwrap_or(0);
        let crowded = self.per_ip.iter().filter(|(ip, _)| **ip != newcomer).max_by_key(|(_, n)| **n);
        let idle = |key: &PeerKey| {
            self.exts.get(key).is_some_and(|e| now.duration_since(e.since) >= IDLE_EVICT_AFTER)
                && self
                    .swarm
                    .peer(*key)
                    .is_some_and(|v| !v.am_interested && !v.peer_interested && v.down_rate < 1.0 && v.up_rate < 1.0)
        };
        if let Some((&ip, &n)) = crowded
            && n >= theirs + 2
        {
            let keys = self.links.iter().filter(|(_, l)| l.addr.ip() == ip).map(|(k, _)| *k);
            // Its least useful connection: an idle one if any, else the newest.
            let keys: Vec<PeerKey> = keys.collect();
            return keys.iter().copied().find(idle).or_else(|| keys.iter().copied().max());
        }
        self.links.keys().copied().find(idle)
    }

    pub(super) fn on_connected(&mut self, stream: PeerStream, addr: SocketAddr, handshake: Handshake, outgoing: bool) {
        let banned = self.banned_ids.contains(&handshake.peer_id)
            || (!addr.ip().is_loopback() && self.banned_ips.contains(&addr.ip()));
        let mut duplicate = false;
        if let Some(old) = self.ids.iter().find(|(_, id)| **id == handshake.peer_id).map(|(k, _)| *k) {
            // Two peers that dial each other at once both hold two connections. Each keeps the
            // one dialled by the side with the smaller peer id, so both keep the same one.
            let we_are_smaller = self.peer_id.0 < handshake.peer_id.0;
            let old_outgoing = self.exts.get(&old).is_some_and(|e| e.outgoing);
            if outgoing == we_are_smaller && old_outgoing != we_are_smaller {
                tracing::debug!(%addr, "replacing a connection to the same peer dialled the other way");
                self.close(old);
            } else {
                duplicate = true;
            }
        }
        let now = Instant::now();
        let mut full = self.links.len() >= self.max_peers;
        if full
            && !banned
            && !duplicate
            && let Some(victim) = self.make_room_for(addr.ip(), now)
        {
            tracing::info!(%addr, "closing a less useful connection to make room for this peer");
            self.close(victim);
            full = false;
        }
        let ip_full = !self.ip_has_room(addr.ip());
        if banned || duplicate || ip_full || self.paused || full || self.session_full() || self.error.is_some() {
            tracing::debug!(%addr, banned, duplicate, ip_full, "refusing connection");
            if (full || self.session_full())
                && self.refusal_logged.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG)
            {
                self.refusal_logged = Some(now);
                if full {
                    tracing::info!(
                        %addr,
                        "refusing peers: {} of {} connections of this torrent (max-peers) in use, none less useful to close",
                        self.links.len(),
                        self.max_peers
                    );
                } else {
                    tracing::info!(%addr, "refusing peers: every connection of the session (max-connections) is in use");
                }
            }
            self.candidates.closed(now, addr, Duration::from_secs(30));
            return;
        }
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        tracing::debug!(%addr, outgoing, "peer connected");
        let cert = stream.peer_certificate();
        // A list that came into force during this peer's handshake.
        if let (Some(c), Some(r)) = (&cert, self.revocations())
            && r.is_revoked(c)
        {
            tracing::info!(%addr, "refusing a member whose certificate was revoked");
            self.candidates.closed(now, addr, Duration::from_secs(300));
            return;
        }
        let link = peer::spawn(
            key,
            addr,
            stream,
            self.inbox.peers.clone(),
            self.storage.clone(),
            self.max_message,
            self.limits.clone(),
        );
        let fast = handshake.reserved[7] & 0x04 != 0;
        let extensions = handshake.reserved[5] & 0x10 != 0;
        self.links.insert(key, link);
        self.link_addrs.insert(addr);
        if let Some(last) = self.named.get_mut(&addr) {
            *last = None;
        }
        *self.per_ip.entry(addr.ip()).or_default() += 1;
        self.candidates.connected(addr);
        self.connections.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.ids.insert(key, handshake.peer_id);
        self.exts.insert(
            key,
            PeerExt {
                listen: outgoing.then_some(addr),
                outgoing,
                client: None,
                ut_metadata: None,
                pex_schedule: PexSchedule::new(now, self.private),
                pex: PexState::new(),
                since: now,
                cert,
                revocations: revocations::Exchange::default(),
                wants: None,
            },
        );
        self.swarm.add_peer(now, key, fast);
        if !extensions {
            self.swarm.peer_extensions(key, false);
        }
        // The bitfield queued by add_peer must be the first message (BEP 6), so dispatch it
        // before the extension handshake.
        self.dispatch();
        // BEP 5: a peer that runs a DHT node learns where ours listens.
        if handshake.supports_dht()
            && let Some(dht) = &self.dht
        {
            let port = dht.local_addr().port();
            self.send(key, Message::Port(port));
        }
        if extensions {
            let mut m = std::collections::BTreeMap::from([(UT_METADATA.to_string(), OUR_UT_METADATA)]);
            if !self.private {
                m.insert(UT_PEX.to_string(), OUR_UT_PEX);
            }
            if self.revocations().is_some() {
                m.insert(SHOAL_REVOCATIONS.to_string(), OUR_SHOAL_REVOCATIONS);
            }
            m.insert(shoal_proto::extension::SHOAL_WANTS.to_string(), OUR_SHOAL_WANTS);
            if self.search_peers.get().is_some() {
                // Only said, never used on this connection: the search runs on connections of
                // its own.
                m.insert(SHOAL_SEARCH.to_string(), OUR_SHOAL_SEARCH);
            }
            let ext = ExtHandshake {
                m,
                v: Some(concat!("Shoal ", env!("CARGO_PKG_VERSION")).to_string()),
                p: Some(self.listen_port),
                reqq: Some(OUR_REQQ),
                metadata_size: u32::try_from(self.info_bytes.len()).ok(),
                ..Default::default()
            };
            self.send(key, Message::Extended { id: 0, payload: ext.encode().into() });
        }
    }
}
