//! What one torrent knows about one connected peer: both sides' choke and interest flags, the
//! peer's pieces, the blocks we asked of it, and its transfer rates.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use shoal_proto::{BlockRange, PieceIndex};

use crate::{Bitfield, Rate};

/// Per-peer protocol state (BEP 3 flags plus BEP 6 fast-extension sets).
#[derive(Debug)]
pub(crate) struct Peer {
    /// We refuse to serve the peer (initially true).
    pub(crate) am_choking: bool,
    /// We told the peer we want its data.
    pub(crate) am_interested: bool,
    /// The peer refuses to serve us (initially true).
    pub(crate) peer_choking: bool,
    /// The peer wants our data.
    pub(crate) peer_interested: bool,
    /// The peer negotiated the fast extension (BEP 6).
    pub(crate) fast: bool,
    /// Pieces the peer has.
    pub(crate) has: Bitfield,
    /// Number of pieces the peer has that we still want; we are interested while above zero.
    pub(crate) interesting: u32,
    /// Pieces the peer lets us fetch while choked (BEP 6 allowed-fast).
    pub(crate) allowed_fast: HashSet<PieceIndex>,
    /// Blocks requested from the peer and not yet received, rejected or cancelled.
    pub(crate) pending: HashSet<BlockRange>,
    /// Blocks we cancelled or that the choke voided, with how many copies may still come (a
    /// block requested, cancelled and requested again can be sent twice); late copies are not
    /// a protocol violation.
    cancelled: HashMap<BlockRange, u32>,
    /// `cancelled` in insertion order, so the oldest entries are forgotten first.
    cancelled_order: VecDeque<BlockRange>,
    /// Most requests the peer accepts at once (BEP 10 `reqq`), if it said.
    pub(crate) reqq: Option<usize>,
    /// Payload received from the peer.
    pub(crate) down: Rate,
    /// Payload sent to the peer.
    pub(crate) up: Rate,
    /// Last time the peer sent us a block we asked for (or when it was connected).
    pub(crate) last_block: Instant,
    /// No block arrived for a long time while requests were outstanding.
    pub(crate) snubbed: bool,
    /// The peer rejected a request since the last tick; wait before asking again.
    pub(crate) backoff: bool,
    /// Verification failures of pieces this peer alone sent.
    pub(crate) strikes: u32,
    /// While we seed initially (BEP 16): the pieces we showed the peer we have.
    pub(crate) revealed: Option<Bitfield>,
    /// While we seed initially, the peer came alone and waits for its extension handshake
    /// before it is unchoked (see `Swarm::peer_extensions`).
    pub(crate) awaiting_extensions: bool,
    /// The peer takes `shoal_wants` requests, and whether it was sent the current one.
    pub(crate) takes_wants: bool,
    pub(crate) asked_wants: bool,
    /// The swarm's tick count when the peer last asked us to show it pieces (a player).
    pub(crate) wants_tick: Option<u64>,
    /// Rare pieces revealed while the peer was unchoked and not announced yet, each counted as
    /// a copy on its way into the swarm.
    pub(crate) reveals_open: Vec<OpenReveal>,
    /// While we seed initially: pieces shown to the peer whose blocks it had begun to ask for
    /// when we choked it; it may still fetch them (BEP 6 `allowed fast`), since no other peer
    /// has them and nobody else is shown them while they count as on their way here.
    pub(crate) allowed_out: Vec<PieceIndex>,
    /// Revealed pieces the peer announced during this tick and the one before.
    pub(crate) reveals_announced: [u32; 2],
    /// While we seed initially: ticks in a row the peer spent unchoked without having sent
    /// a single message.
    pub(crate) idle_ticks: u64,
    /// The peer sent at least one message since its handshake.
    pub(crate) heard: bool,
    /// While we seed initially: the peer was unchoked for a while and never sent a message,
    /// so it is unchoked only when no other peer waits (a peer that only connects, and sends
    /// nothing, must not hold unchoke slots others could use).
    pub(crate) stalled: bool,
    /// `up.total()` at the last tick.
    pub(crate) up_at_tick: u64,
    /// Ticks in a row the peer spent unchoked and interested without taking a byte.
    pub(crate) unserved_ticks: u32,
    /// The peer was choked for taking nothing while unchoked: it comes after the peers that
    /// wait until it asks for a block.
    pub(crate) unserved: bool,
    /// It has sent no block yet and just became able to serve pieces readers wait for: the
    /// requests for them are spread again at the next `Swarm::poll_action`.
    pub(crate) restripe_due: bool,
    /// How many more times the peer may have those requests spread again (each costs a pass
    /// over every peer's requests; see `Swarm::restripe`).
    pub(crate) restripes_left: u8,
}

/// A piece revealed to a peer during initial seeding, not announced by it yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenReveal {
    pub(crate) piece: PieceIndex,
    /// The peer asked for a block of it.
    pub(crate) requested: bool,
    /// The swarm's tick count when it was revealed.
    pub(crate) at: u64,
    /// Shown because the peer asked for it (`shoal_wants`).
    pub(crate) wanted: bool,
}

/// Most times one peer's arrival spreads the requests for pieces readers wait for again.
const MAX_RESTRIPES: u8 = 3;

/// Most cancelled blocks remembered per peer.
pub(crate) const MAX_CANCELLED: usize = 4096;

impl Peer {
    /// We may ask the peer for the piece now: it has it, and it unchoked us or lets us fetch
    /// this piece while choked (BEP 6 allowed-fast).
    pub(crate) fn serves(&self, piece: PieceIndex) -> bool {
        self.has.get(piece) && (!self.peer_choking || self.allowed_fast.contains(&piece))
    }

    pub(crate) fn new(now: Instant, pieces: u32, fast: bool) -> Self {
        Self {
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            fast,
            has: Bitfield::new(pieces),
            interesting: 0,
            allowed_fast: HashSet::new(),
            pending: HashSet::new(),
            cancelled: HashMap::new(),
            cancelled_order: VecDeque::new(),
            reqq: None,
            down: Rate::new(now),
            up: Rate::new(now),
            last_block: now,
            snubbed: false,
            backoff: false,
            strikes: 0,
            revealed: None,
            awaiting_extensions: false,
            takes_wants: false,
            asked_wants: false,
            wants_tick: None,
            reveals_open: Vec::new(),
            allowed_out: Vec::new(),
            reveals_announced: [0; 2],
            idle_ticks: 0,
            heard: false,
            stalled: false,
            restripe_due: false,
            restripes_left: MAX_RESTRIPES,
            up_at_tick: 0,
            unserved_ticks: 0,
            unserved: false,
        }
    }

    /// Remembers a block whose late copy must not count as unrequested data. Only the
    /// [`MAX_CANCELLED`] most recent are kept: a late copy arrives long before that many more
    /// cancels have been sent.
    pub(crate) fn remember_cancelled(&mut self, block: BlockRange) {
        *self.cancelled.entry(block).or_default() += 1;
        self.cancelled_order.push_back(block);
        if self.cancelled_order.len() > MAX_CANCELLED
            && let Some(old) = self.cancelled_order.pop_front()
        {
            self.forget_cancelled(&old);
        }
    }

    /// A copy of a cancelled block arrived: true if one was expected.
    pub(crate) fn forget_cancelled(&mut self, block: &BlockRange) -> bool {
        let Some(count) = self.cancelled.get_mut(block) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.cancelled.remove(block);
        }
        true
    }
}

/// A read-only view of a peer for front ends.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// We are choking the peer.
    pub am_choking: bool,
    /// We are interested in the peer.
    pub am_interested: bool,
    /// The peer is choking us.
    pub peer_choking: bool,
    /// The peer is interested in us.
    pub peer_interested: bool,
    /// Pieces the peer has.
    pub pieces: u32,
    /// Download rate from the peer, bytes per second.
    pub down_rate: f64,
    /// Upload rate to the peer, bytes per second.
    pub up_rate: f64,
    /// Bytes received from the peer.
    pub downloaded: u64,
    /// Bytes sent to the peer.
    pub uploaded: u64,
    /// Requests outstanding to the peer.
    pub pending: usize,
    /// The peer is snubbing us.
    pub snubbed: bool,
}

impl From<&Peer> for PeerView {
    fn from(p: &Peer) -> Self {
        Self {
            am_choking: p.am_choking,
            am_interested: p.am_interested,
            peer_choking: p.peer_choking,
            peer_interested: p.peer_interested,
            pieces: p.has.count(),
            down_rate: p.down.bytes_per_sec(),
            up_rate: p.up.bytes_per_sec(),
            downloaded: p.down.total(),
            uploaded: p.up.total(),
            pending: p.pending.len(),
            snubbed: p.snubbed,
        }
    }
}
