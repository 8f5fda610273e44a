//! The per-torrent state machine: it decides, for one torrent, every message we send, every
//! block we request, write, serve and verify, and every peer we drop.
//!
//! Call protocol (sans-IO, in the manner of quinn-proto's `Connection`):
//! - the driver performs handshakes itself and then calls [`Swarm::add_peer`]; the first action
//!   queued for the peer is its bitfield (or BEP 6 have-all / have-none), which must be the first
//!   message after the handshake, so the driver drains actions before sending anything else;
//! - every decoded message goes to [`Swarm::handle_message`]; an `Err` means the peer broke the
//!   protocol: the driver closes the connection and calls [`Swarm::remove_peer`];
//! - [`Action::Write`] blocks must reach storage before the driver hashes the piece named by a
//!   later [`Action::Verify`]; the result comes back through [`Swarm::handle_verified`];
//! - [`Action::Serve`] asks the driver to read a block and send it as a `piece` message;
//! - [`Swarm::tick`] runs rechoking, snub detection and rate sampling; call it about once per
//!   second with the current time;
//! - after any call, drain [`Swarm::poll_action`] until it returns `None`.
//!
//! Time is always a parameter, so a whole swarm can run in virtual time (see [`crate::sim`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::{BlockRange, Layout, Message, PieceIndex};

use crate::peer::{Peer, PeerView};
use crate::picker::{Accepted, Picker, PieceState};
use crate::rng::Rng;
use crate::superseed::SuperSeed;
use crate::{Bitfield, PeerKey, Rate};

mod choking;
mod deadlines;
mod requesting;
mod revealing;
mod verifying;
mod wanting;

pub use wanting::WANTS_AT_ONCE;

/// Why reveals stop counting as copies on their way (see [`Swarm::settle_reveals`]).
#[derive(Clone, Copy)]
enum Settle {
    Announced(PieceIndex),
    Left,
    Choked,
    /// Not asked for since this tick: the peer does not want them (it may download only some
    /// files), so others get them and the peer is shown more.
    Unwanted(u64),
}

/// Ticks after which a revealed piece the peer has not asked for stops counting as a copy on
/// its way.
const UNWANTED_TICKS: u64 = 3;

/// The peer wants data from us: it said so, or, while we seed initially and hide our pieces,
/// it lacks any.
fn wants_us(p: &Peer, superseed: bool) -> bool {
    !p.awaiting_extensions && (p.peer_interested || (superseed && !p.has.is_full()))
}

/// A block queued at another peer is taken over only when that peer has at least this many
/// more requests outstanding than the one taking it.
const TAKE_OVER_MARGIN: usize = 4;

/// Tunables of the swarm logic. The defaults suit real networks and loopback alike.
#[derive(Clone, Debug)]
pub struct Config {
    /// Peers unchoked at once while we download, the optimistic one included.
    pub unchoke_slots: usize,
    /// Peers unchoked at once while we seed (beyond them, a seed under its upload cap opens
    /// more; see [`Swarm::set_upload_use`]). In the simulator, where the peers upload as fast
    /// as the seed, 6 instead of 4 took 200 peers from 0.90 to 0.92 of the optimum and 1,000
    /// from 0.88 to 0.90 (the pieces an initial seed sends to more peers at once give more of
    /// them something new to pass on), with the seed-bound cases unchanged; 32 real processes
    /// capped at 512 KiB/s measured 0.975 against 0.978 with 4 (medians of 3 in the same hour,
    /// ranges 0.974-0.982 and 0.977-0.981). 8 went further in the simulator (0.93 and 0.91)
    /// but cost the real processes (0.963).
    pub seed_unchoke_slots: usize,
    /// How often the regular unchoke set is recomputed.
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke moves to another peer.
    pub optimistic_interval: Duration,
    /// A peer with requests outstanding that sends nothing for this long is snubbed.
    pub snub_timeout: Duration,
    /// Fewest requests kept outstanding per unchoking peer.
    pub min_queue: usize,
    /// Most requests kept outstanding per peer.
    pub max_queue: usize,
    /// Requests outstanding per peer aim to cover this much transfer time at its current rate
    /// (the bandwidth-delay product with a margin).
    pub queue_time: Duration,
    /// Sole-source verification failures after which a peer is banned.
    pub ban_strikes: u32,
    /// Seed of the random choices (piece ties, optimistic unchokes).
    pub seed: u64,
    /// A swarm that starts out complete seeds initially (BEP 16): it reveals its pieces to
    /// each peer a few at a time, rarest first, so it sends each piece once before any twice.
    pub initial_seeding: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            unchoke_slots: 4,
            seed_unchoke_slots: 6,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(30),
            min_queue: 4,
            max_queue: 1000,
            queue_time: Duration::from_millis(1000),
            ban_strikes: 2,
            seed: 0x5eed,
            initial_seeding: true,
        }
    }
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a peer.
    Send {
        /// Destination.
        peer: PeerKey,
        /// The message.
        msg: Message,
    },
    /// Read a block from storage and send it to the peer as a `piece` message.
    Serve {
        /// Destination.
        peer: PeerKey,
        /// The block to read.
        block: BlockRange,
    },
    /// Write a received block to storage.
    Write {
        /// Where the data goes.
        block: BlockRange,
        /// The data (`block.length` bytes).
        data: Bytes,
    },
    /// Every block of the piece has been written: check its hash and report back.
    Verify {
        /// The piece to check.
        piece: PieceIndex,
    },
    /// Ask the peer to show us these pieces, which a reader waits for and no peer has shown
    /// (Shoal's `shoal_wants` extension message; see [`Swarm::handle_wants`]).
    Want {
        /// Destination.
        peer: PeerKey,
        /// The pieces, most urgent first, at most [`WANTS_AT_ONCE`].
        pieces: Vec<PieceIndex>,
    },
    /// The peer cancelled a request it made: if the block was not sent yet, drop it.
    Withdraw {
        /// The peer.
        peer: PeerKey,
        /// The cancelled block.
        block: BlockRange,
    },
    /// Close the connection to the peer; it has already been removed from the swarm.
    Disconnect {
        /// The peer.
        peer: PeerKey,
        /// Refuse further connections from this peer's address for this torrent.
        ban: bool,
        /// Why, for the log.
        reason: &'static str,
    },
}

/// A protocol violation by a peer; the connection should be closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// The peer is not (or no longer) part of this swarm.
    #[error("unknown peer")]
    UnknownPeer,
    /// A `have` or `allowed fast` message named a piece past the end of the torrent.
    #[error("piece index {0} is out of range")]
    PieceOutOfRange(u32),
    /// A `bitfield` message did not fit the torrent.
    #[error(transparent)]
    Bitfield(#[from] crate::bitfield::BitfieldError),
    /// A `request`, `piece`, `cancel` or `reject` named a block outside its piece or too large.
    #[error("invalid block: piece {index}, offset {begin}, length {length}")]
    InvalidBlock {
        /// Piece index as sent.
        index: u32,
        /// Offset as sent.
        begin: u32,
        /// Length as sent.
        length: u32,
    },
    /// The peer sent a block we never requested.
    #[error("unrequested block: piece {index}, offset {begin}")]
    UnrequestedBlock {
        /// Piece index as sent.
        index: u32,
        /// Offset as sent.
        begin: u32,
    },
}

/// While seeding initially, an unchoked peer is shown new pieces until at least this many of
/// its shown pieces are not yet requested (see `Swarm::reveal`).
const MIN_UNREQUESTED_REVEALS: usize = 2;

/// While a file is read as it arrives, requests outstanding per peer cover at most this much
/// transfer time: a peer answers in order (and libtorrent reads what was asked into its send
/// buffer at once, where a cancel no longer reaches it), so whatever is queued delays the
/// pieces a seek needs next.
const STREAM_QUEUE_TIME: Duration = Duration::from_millis(300);
/// After a seek, requests outstanding for pieces due within this long of the first one stay.
const SEEK_KEEP: Duration = Duration::from_secs(2);

/// Totals for front ends.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Verified pieces.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub pieces_total: u32,
    /// Bytes of verified data.
    pub bytes_have: u64,
    /// Payload bytes received (including discarded duplicates).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Current download rate, bytes per second.
    pub down_rate: f64,
    /// Current upload rate, bytes per second.
    pub up_rate: f64,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that have every piece.
    pub seeds: usize,
    /// Connected peers sending us data now.
    pub sending: usize,
    /// Connected peers receiving data from us now.
    pub receiving: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Bytes of padding taken as zeros instead of fetched (see [`Swarm::fill_padding`]).
    pub padding_filled: u64,
}

/// Swarm logic for one torrent. See the module documentation for the call protocol.
#[derive(Debug)]
pub struct Swarm {
    config: Config,
    layout: Layout,
    have: Bitfield,
    bytes_have: u64,
    picker: Picker,
    peers: std::collections::BTreeMap<PeerKey, Peer>,
    actions: VecDeque<Action>,
    rng: Rng,
    next_rechoke: Instant,
    next_optimistic: Instant,
    optimistic: Option<PeerKey>,
    down: Rate,
    up: Rate,
    hash_failures: u32,
    padding_filled: u64,
    /// Scratch buffer for picked blocks, kept to avoid an allocation per refill.
    scratch: Vec<BlockRange>,
    /// Pieces with deadlines (streaming), most urgent first; see [`Swarm::set_deadlines`].
    deadlines: Vec<crate::stream::Urgent>,
    /// Each piece of `deadlines` with its place in it (0: the most urgent).
    rank: HashMap<PieceIndex, u32>,
    /// The hidden pieces last asked for with `shoal_wants`, and when.
    last_wants: (Vec<PieceIndex>, Option<Instant>),
    /// While seeding initially: peers waiting for pieces they asked to be shown (players).
    streamers: usize,
    /// A choked player asked to be shown pieces: rechoke at the next tick.
    rechoke_soon: bool,
    /// The best download rate of a peer at the last tick: peers much slower are not asked
    /// for pieces with deadlines.
    fastest_down: f64,
    /// Initial seeding state, while it lasts.
    superseed: Option<SuperSeed>,
    /// Calls to [`Swarm::tick`] so far.
    ticks: u64,
    /// The share of the upload cap used since the last tick (`None`: no cap); see
    /// [`Swarm::set_upload_use`].
    upload_use: Option<f64>,
    /// Unchoke slots open beyond the configured ones.
    extra_slots: usize,
    /// While seeding initially: whether a first copy of a piece was being fetched when last
    /// checked, and when (see `Swarm::first_copies_out`).
    first_copies_checked: Option<(Instant, bool)>,
    /// Ticks in a row at the upload cap.
    saturated_ticks: u32,
    /// How long pieces with deadlines take; see [`crate::stream::PieceTimes`].
    times: crate::stream::PieceTimes,
    /// The latest time a caller passed in (for work done without one, as in `refill`).
    now: Instant,
    /// A peer marked `restripe_due` since the last `poll_action`.
    restripe_due: bool,
}

impl Swarm {
    /// Swarm logic for a torrent of the given geometry, holding the verified pieces `have`.
    pub fn new(layout: Layout, have: Bitfield, config: Config, now: Instant) -> Self {
        let bytes_have = have.ones().map(|p| layout.piece_size(p) as u64).sum();
        let picker = Picker::new(layout, &have, config.seed.rotate_left(17));
        let superseed = (config.initial_seeding && have.is_full() && layout.piece_count() > 1)
            .then(|| SuperSeed::new(layout.piece_count(), config.seed.rotate_left(31)));
        Self {
            superseed,
            ticks: 0,
            upload_use: None,
            extra_slots: 0,
            first_copies_checked: None,
            saturated_ticks: 0,
            times: crate::stream::PieceTimes::default(),
            now,
            rng: Rng::new(config.seed),
            next_rechoke: now + config.rechoke_interval,
            next_optimistic: now,
            config,
            layout,
            have,
            bytes_have,
            picker,
            peers: Default::default(),
            actions: VecDeque::new(),
            optimistic: None,
            down: Rate::new(now),
            up: Rate::new(now),
            hash_failures: 0,
            padding_filled: 0,
            scratch: Vec::new(),
            deadlines: Vec::new(),
            rank: HashMap::new(),
            last_wants: (Vec::new(), None),
            streamers: 0,
            rechoke_soon: false,
            fastest_down: 0.0,
            restripe_due: false,
        }
    }

    /// The torrent's geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// True when every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.layout.pieces().all(|p| matches!(self.picker.state(p), PieceState::Have | PieceState::Skipped))
    }

    /// Sets which pieces are wanted (`wanted[i]` for piece `i`, from file priorities; pieces
    /// already started finish), before or while peers are connected: interest in every peer is
    /// worked out again and requests topped up. `high` marks the
    /// pieces to fetch before the others (missing entries: not high).
    pub fn set_wanted(&mut self, wanted: &[bool], high: &[bool]) {
        for piece in self.layout.pieces() {
            self.picker.set_wanted(piece, wanted.get(piece.idx()).copied().unwrap_or(true));
            self.picker.set_high(piece, high.get(piece.idx()).copied().unwrap_or(false));
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get_mut(&key) else { continue };
            let picker = &self.picker;
            let have = &self.have;
            p.interesting =
                p.has.ones().filter(|&piece| !have.get(piece) && picker.state(piece) != PieceState::Skipped).count()
                    as u32;
            let interested = p.interesting > 0;
            self.set_interest(key, interested);
        }
        self.refill_all();
    }

    /// Fetch new pieces in order, first to last (`true`), or rarest first: for files read
    /// while they arrive. File priorities still come first.
    pub fn set_sequential(&mut self, sequential: bool) {
        self.picker.set_sequential(sequential);
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        // Once per batch of messages, not per message: the haves of a seed's answer come
        // together.
        if std::mem::take(&mut self.restripe_due) {
            self.restripe();
        }
        self.actions.pop_front()
    }

    /// Totals and rates.
    pub fn stats(&self) -> Stats {
        Stats {
            pieces_have: self.have.count(),
            pieces_total: self.layout.piece_count(),
            bytes_have: self.bytes_have,
            downloaded: self.down.total(),
            uploaded: self.up.total(),
            down_rate: self.down.bytes_per_sec(),
            up_rate: self.up.bytes_per_sec(),
            peers: self.peers.len(),
            seeds: self.peers.values().filter(|p| p.has.is_full()).count(),
            sending: self.peers.values().filter(|p| p.down.bytes_per_sec() > 0.0).count(),
            receiving: self.peers.values().filter(|p| p.up.bytes_per_sec() > 0.0).count(),
            hash_failures: self.hash_failures,
            padding_filled: self.padding_filled,
        }
    }

    /// Connected peers and their state.
    pub fn peers(&self) -> impl Iterator<Item = (PeerKey, PeerView)> + '_ {
        self.peers.iter().map(|(k, p)| (*k, PeerView::from(p)))
    }

    /// One connected peer's state.
    pub fn peer(&self, peer: PeerKey) -> Option<PeerView> {
        self.peers.get(&peer).map(PeerView::from)
    }

    /// Whether `peer` announced `piece`.
    pub fn peer_has(&self, peer: PeerKey, piece: PieceIndex) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.has.get(piece))
    }

    /// A peer finished its handshake. `fast` is true when both sides set the BEP 6 bit.
    pub fn add_peer(&mut self, now: Instant, peer: PeerKey, fast: bool) {
        self.now = self.now.max(now);
        let mut state = Peer::new(now, self.layout.piece_count(), fast);
        if self.superseed.is_some() {
            state.revealed = Some(Bitfield::new(self.layout.piece_count()));
            // Alone, it waits for its extension handshake (`peer_extensions`); a peer that
            // waits for its handshake is no longer alone, so it waits no more.
            state.awaiting_extensions = self.peers.is_empty();
            // Only a lone peer ever waits: O(1), not a pass over every peer per connection.
            if self.peers.len() == 1
                && let Some(other) = self.peers.values_mut().next()
            {
                other.awaiting_extensions = false;
            }
        }
        self.peers.insert(peer, state);
        let msg = if self.superseed.is_some() {
            fast.then_some(Message::HaveNone)
        } else if fast && self.have.is_full() {
            Some(Message::HaveAll)
        } else if fast && self.have.count() == 0 {
            Some(Message::HaveNone)
        } else if self.have.count() > 0 {
            Some(Message::Bitfield(self.have.to_wire()))
        } else {
            None
        };
        if let Some(msg) = msg {
            self.actions.push_back(Action::Send { peer, msg });
        }
        if self.superseed.is_some() {
            // The peer sees nothing to be interested in until we unchoke it and reveal pieces.
            self.fill_unchoke_slots();
        }
    }

    /// The peer told us (BEP 10 `reqq`) how many requests it accepts at once.
    pub fn set_peer_reqq(&mut self, peer: PeerKey, reqq: u32) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.reqq = Some(reqq.max(1) as usize);
        }
    }

    /// The connection to the peer is gone (or being closed by the driver).
    pub fn remove_peer(&mut self, peer: PeerKey) {
        self.settle_reveals(peer, Settle::Left);
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        for piece in p.has.ones() {
            self.picker.peer_lost(piece);
        }
        for block in &p.pending {
            self.picker.release(block);
        }
        self.picker.drop_exclusive(peer);
        if self.optimistic == Some(peer) {
            self.optimistic = None;
        }
        if !p.am_choking {
            self.fill_unchoke_slots();
        }
        if !p.pending.is_empty() {
            self.refill_all();
        }
    }

    /// Handles one message from a peer.
    pub fn handle_message(&mut self, now: Instant, peer: PeerKey, msg: Message) -> Result<(), PeerError> {
        self.now = self.now.max(now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return Err(PeerError::UnknownPeer);
        };
        p.heard = true;
        p.stalled = false;
        if matches!(msg, Message::Request { .. }) {
            p.unserved = false;
        }
        match msg {
            Message::KeepAlive
            | Message::Port(_)
            | Message::SuggestPiece(_)
            | Message::Extended { .. }
            | Message::Unknown { .. } => {}
            Message::Choke => self.on_choke(peer),
            Message::Unchoke => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.peer_choking = false;
                    p.last_block = now;
                }
                self.source_changed(peer, None);
            }
            Message::Interested => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.peer_interested = true;
                }
                self.fill_unchoke_slots();
            }
            Message::NotInterested => self.on_not_interested(peer),
            Message::Have(index) => {
                let piece = self.layout.piece(index).ok_or(PeerError::PieceOutOfRange(index))?;
                self.on_have(peer, piece);
                self.source_changed(peer, Some(piece));
            }
            Message::Bitfield(bits) => {
                let field = Bitfield::from_wire(&bits, self.layout.piece_count())?;
                self.on_bitfield(peer, field);
                self.source_changed(peer, None);
            }
            Message::HaveAll => {
                self.on_bitfield(peer, Bitfield::full(self.layout.piece_count()));
                self.source_changed(peer, None);
            }
            Message::HaveNone => self.on_bitfield(peer, Bitfield::new(self.layout.piece_count())),
            Message::Request { index, begin, length } => {
                let block = self.check_block(index, begin, length)?;
                self.on_request(peer, block);
            }
            Message::Cancel { index, begin, length } => {
                let block = self.check_block(index, begin, length)?;
                self.actions.push_back(Action::Withdraw { peer, block });
            }
            Message::Piece { index, begin, data } => {
                let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
                let block = self.check_block(index, begin, length)?;
                self.on_block(now, peer, block, data)?;
            }
            Message::RejectRequest { index, begin, length } => {
                let block = self.check_block(index, begin, length)?;
                // A cancel is answered by the block or a reject (BEP 6), and answers come in
                // order: a reject of a block we cancelled, then asked for again, answers the
                // cancelled request, not the new one.
                if let Some(p) = self.peers.get_mut(&peer)
                    && !p.forget_cancelled(&block)
                    && p.pending.remove(&block)
                {
                    p.backoff = true;
                    self.picker.release(&block);
                }
            }
            Message::AllowedFast(index) => {
                let piece = self.layout.piece(index).ok_or(PeerError::PieceOutOfRange(index))?;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.allowed_fast.insert(piece);
                }
                self.refill(peer);
            }
        }
        Ok(())
    }

    fn check_block(&self, index: u32, begin: u32, length: u32) -> Result<BlockRange, PeerError> {
        self.layout.check_block(index, begin, length).ok_or(PeerError::InvalidBlock { index, begin, length })
    }

    fn on_choke(&mut self, peer: PeerKey) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.peer_choking = true;
        if !p.fast {
            // Without the fast extension a choke discards every outstanding request (BEP 3).
            let voided: Vec<BlockRange> = p.pending.drain().collect();
            for block in voided {
                p.remember_cancelled(block);
                self.picker.release(&block);
            }
            self.refill_all();
        }
        self.picker.drop_exclusive(peer);
    }

    fn on_have(&mut self, peer: PeerKey, piece: PieceIndex) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.has.set(piece) {
            return;
        }
        self.picker.peer_has(piece);
        if self.superseed.is_some() {
            self.settle_reveals(peer, Settle::Announced(piece));
            self.reveal(peer);
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !self.have.get(piece) && self.picker.state(piece) != PieceState::Skipped {
            p.interesting += 1;
            if p.interesting == 1 {
                self.set_interest(peer, true);
            }
        }
        self.disconnect_if_both_seeds(peer);
    }

    fn on_bitfield(&mut self, peer: PeerKey, field: Bitfield) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        for piece in p.has.ones() {
            self.picker.peer_lost(piece);
        }
        let mut interesting = 0;
        for piece in field.ones() {
            self.picker.peer_has(piece);
            if !self.have.get(piece) && self.picker.state(piece) != PieceState::Skipped {
                interesting += 1;
            }
        }
        let newly: Vec<PieceIndex> =
            p.reveals_open.iter().map(|open| open.piece).filter(|&piece| field.get(piece)).collect();
        p.has = field;
        p.interesting = interesting;
        self.set_interest(peer, interesting > 0);
        for piece in newly {
            self.settle_reveals(peer, Settle::Announced(piece));
        }
        self.reveal(peer);
        self.disconnect_if_both_seeds(peer);
    }

    fn disconnect_if_both_seeds(&mut self, peer: PeerKey) {
        let both = self.have.is_full() && self.peers.get(&peer).is_some_and(|p| p.has.is_full());
        if both {
            self.drop_peer(peer, false, "both sides are seeds");
        }
    }

    fn set_interest(&mut self, peer: PeerKey, interested: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.am_interested == interested {
            return;
        }
        p.am_interested = interested;
        let msg = if interested { Message::Interested } else { Message::NotInterested };
        self.actions.push_back(Action::Send { peer, msg });
    }

    /// Bytes counted as uploaded when the peer asked for them were not sent after all: the
    /// peer cancelled a block while it waited in the send queue, the queue was full, or the
    /// connection ended with blocks queued (the peer may be gone already).
    pub fn not_sent(&mut self, peer: PeerKey, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.up.take_back(bytes);
        }
        self.up.take_back(bytes);
    }

    fn on_request(&mut self, peer: PeerKey, block: BlockRange) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let allowed = (!p.am_choking || p.allowed_out.contains(&block.piece)) && self.have.get(block.piece);
        if allowed {
            let mut first_ask = false;
            if let Some(open) = p.reveals_open.iter_mut().find(|open| open.piece == block.piece) {
                first_ask = !open.requested;
                open.requested = true;
            }
            p.up.add(block.length as u64);
            self.up.add(block.length as u64);
            if first_ask {
                // The next piece is shown before this one's data goes out, so the peer
                // knows of it before it can finish what it asked for.
                self.reveal(peer);
            }
            self.actions.push_back(Action::Serve { peer, block });
        } else if p.fast {
            let msg = Message::RejectRequest { index: block.piece.get(), begin: block.begin, length: block.length };
            self.actions.push_back(Action::Send { peer, msg });
        }
    }

    /// A block asked of `peer` that lies wholly in padding (BEP 47 padding files, a v2
    /// torrent's alignment of files on pieces): the driver does not send the request and hands
    /// the zeros in here instead. It is taken as if the peer had sent it, except that no byte is
    /// counted as downloaded.
    pub fn fill_padding(&mut self, now: Instant, peer: PeerKey, block: BlockRange) {
        static ZEROS: [u8; shoal_proto::BLOCK_SIZE as usize] = [0; shoal_proto::BLOCK_SIZE as usize];
        let Some(zeros) = ZEROS.get(..block.length as usize) else { return };
        if let Ok(true) = self.take_block(now, peer, block, Bytes::from_static(zeros), false) {
            self.padding_filled += u64::from(block.length);
        }
    }

    fn on_block(&mut self, now: Instant, peer: PeerKey, block: BlockRange, data: Bytes) -> Result<(), PeerError> {
        self.take_block(now, peer, block, data, true).map(drop)
    }

    /// A block arrived (`counted`: over the wire, so it counts as downloaded from the peer).
    /// Returns whether it was new.
    fn take_block(
        &mut self,
        now: Instant,
        peer: PeerKey,
        block: BlockRange,
        data: Bytes,
        counted: bool,
    ) -> Result<bool, PeerError> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return Err(PeerError::UnknownPeer);
        };
        let late = !p.pending.remove(&block);
        if late && !p.forget_cancelled(&block) {
            return Err(PeerError::UnrequestedBlock { index: block.piece.get(), begin: block.begin });
        }
        if late && self.picker.is_suspect(block.piece) {
            // A piece that failed verification takes data from its one chosen peer only.
            return Ok(false);
        }
        // A peer's first block comes at once from its unspent upload allowance (a capped seed
        // sends it in a millisecond, then one per block's time): timed, it made every piece
        // asked for next look overdue and sent copies of them to other peers, which then came
        // a round late for the pieces they pushed back (four capped seeds, an MP4's index at
        // its end: the player ran dry right after its first frame).
        let first = p.down.total() == 0;
        if counted {
            p.down.add(block.length as u64);
            p.last_block = now;
            p.snubbed = false;
            self.down.add(block.length as u64);
        }
        let new = match self.picker.accept(peer, &block) {
            Accepted::Duplicate => false,
            Accepted::New { complete, shared } => {
                self.actions.push_back(Action::Write { block, data });
                // A late copy of a cancelled block still counts when we lack the block; the
                // requests that replaced it are then withdrawn, as in endgame, and so are the
                // second requests for an overdue piece.
                if late || shared || self.picker.in_endgame() {
                    self.cancel_duplicates(peer, &block);
                }
                if complete {
                    if first {
                        self.times.forget(block.piece);
                    } else {
                        self.times.finished(block.piece, now);
                    }
                    self.actions.push_back(Action::Verify { piece: block.piece });
                }
                true
            }
        };
        self.refill(peer);
        Ok(new)
    }

    /// Outside endgame a block picked for `peer` that is also pending elsewhere moves here:
    /// it is cancelled where it was queued.
    fn take_over(&mut self, peer: PeerKey, block: &BlockRange) {
        for (&key, p) in self.peers.iter_mut() {
            if key != peer && p.pending.remove(block) {
                p.remember_cancelled(*block);
                self.picker.release(block);
                let msg = Message::Cancel { index: block.piece.get(), begin: block.begin, length: block.length };
                self.actions.push_back(Action::Send { peer: key, msg });
            }
        }
    }

    /// Withdraws the block from every other peer it was requested from (in endgame, for a
    /// late copy of a cancelled block, and for the copies of an overdue piece).
    fn cancel_duplicates(&mut self, from: PeerKey, block: &BlockRange) {
        for (&key, p) in self.peers.iter_mut() {
            if key != from && p.pending.remove(block) {
                p.remember_cancelled(*block);
                let msg = Message::Cancel { index: block.piece.get(), begin: block.begin, length: block.length };
                self.actions.push_back(Action::Send { peer: key, msg });
            }
        }
    }

    /// Removes a peer and asks the driver to close its connection.
    fn drop_peer(&mut self, peer: PeerKey, ban: bool, reason: &'static str) {
        if self.peers.contains_key(&peer) {
            self.remove_peer(peer);
            self.actions.push_back(Action::Disconnect { peer, ban, reason });
        }
    }

    /// Periodic work: rate sampling, snub detection, rechoking. Call about once per second.
    pub fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.ticks += 1;
        if self.superseed.is_some()
            && let Some(before) = self.ticks.checked_sub(UNWANTED_TICKS)
        {
            // An interested peer is working through what it was shown (its request queue
            // follows its rate); only one that wants none of it is given up on.
            let idle: Vec<PeerKey> =
                self.peers.iter().filter(|(_, p)| !p.am_choking && !p.peer_interested).map(|(k, _)| *k).collect();
            for key in idle {
                if self.settle_reveals(key, Settle::Unwanted(before)) > 0 {
                    self.reveal_everything(key);
                }
            }
        }
        if self.superseed.is_some() {
            // Unchoked, shown pieces (and then everything), and silent since its handshake: the
            // slot goes to another peer, and this one comes after all others until it speaks.
            // (Only silence is judged: a peer that speaks but has nothing to ask for yet is
            // common, and choking it slowed many-peer swarms three times over.)
            let mut stalled = Vec::new();
            for (&key, p) in self.peers.iter_mut() {
                p.idle_ticks = if !p.am_choking && !p.heard { p.idle_ticks + 1 } else { 0 };
                if p.idle_ticks > UNWANTED_TICKS + 1 {
                    p.am_choking = true;
                    p.stalled = true;
                    p.idle_ticks = 0;
                    stalled.push(key);
                }
            }
            for key in &stalled {
                self.actions.push_back(Action::Send { peer: *key, msg: Message::Choke });
                self.settle_reveals(*key, Settle::Choked);
            }
            if !stalled.is_empty() {
                self.fill_unchoke_slots();
            }
        }
        if self.superseed.is_none() {
            self.choke_unserved();
        }
        self.down.update(now);
        self.up.update(now);
        self.adapt_slots();
        if self.superseed.is_some() && self.peers.len() == 1 {
            // A lone peer whose extension handshake never came is taken as one that cannot
            // ask for pieces.
            if let Some((&key, _)) = self.peers.iter().find(|(_, p)| p.awaiting_extensions) {
                self.peer_extensions(key, false);
            }
            self.reveal_to_lone_peer();
        }
        self.count_streamers();
        if !self.deadlines.is_empty() {
            self.update_urgent();
            self.ask_for_hidden(Some(now));
        }
        self.fastest_down = 0.0;
        let mut snubbed = Vec::new();
        for (&key, p) in self.peers.iter_mut() {
            p.down.update(now);
            p.up.update(now);
            self.fastest_down = self.fastest_down.max(p.down.bytes_per_sec());
            p.reveals_announced = [0, p.reveals_announced[0]];
            p.backoff = false;
            if !p.pending.is_empty() && now.saturating_duration_since(p.last_block) >= self.config.snub_timeout {
                snubbed.push(key);
            }
        }
        for key in snubbed {
            self.snub(now, key);
        }
        if now >= self.next_rechoke || std::mem::take(&mut self.rechoke_soon) {
            let rotate = now >= self.next_optimistic;
            self.rechoke(rotate);
            self.next_rechoke = now + self.config.rechoke_interval;
            if rotate {
                self.next_optimistic = now + self.config.optimistic_interval;
            }
        }
        self.reveal_all();
        self.refill_all();
    }

    /// The peer sat on our requests: give its blocks to others and ask it for one at a time.
    fn snub(&mut self, now: Instant, peer: PeerKey) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.snubbed = true;
        p.last_block = now;
        let blocks: Vec<BlockRange> = p.pending.drain().collect();
        for block in blocks {
            p.remember_cancelled(block);
            self.picker.release(&block);
            let msg = Message::Cancel { index: block.piece.get(), begin: block.begin, length: block.length };
            self.actions.push_back(Action::Send { peer, msg });
        }
        self.picker.drop_exclusive(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Swarm) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn leecher(now: Instant) -> Swarm {
        let layout = Layout::new(4 * 32_768, 32_768).expect("layout");
        Swarm::new(layout, Bitfield::new(4), Config { min_queue: 8, ..Config::default() }, now)
    }

    fn requests(actions: &[Action], to: PeerKey) -> Vec<BlockRange> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer, msg: Message::Request { index, begin, length } } if *peer == to => {
                    Layout::new(4 * 32_768, 32_768)?.check_block(*index, *begin, *length)
                }
                _ => None,
            })
            .collect()
    }

    /// A second peer comes before the first one's extension handshake: neither is alone, so
    /// an initial seed shows them pieces a few at a time (the first one first).
    fn another_peer(s: &mut Swarm, now: Instant) {
        s.add_peer(now, PeerKey(99), true);
    }

    fn revealed(actions: &[Action], to: PeerKey) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer, msg: Message::Have(index) } if *peer == to => Some(*index),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_message_is_have_none_or_bitfield() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        assert_eq!(drain(&mut s), vec![Action::Send { peer: PeerKey(1), msg: Message::HaveNone }]);
        s.add_peer(now, PeerKey(2), false);
        assert!(drain(&mut s).is_empty(), "nothing to announce to a peer without the fast extension");
    }

    #[test]
    fn r_unrequested_block_is_refused() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        let data = Bytes::from_static(&[0u8; 16]);
        let err = s.handle_message(now, PeerKey(1), Message::Piece { index: 0, begin: 0, data });
        assert_eq!(err, Err(PeerError::UnrequestedBlock { index: 0, begin: 0 }));
    }

    #[test]
    fn r_out_of_range_indices_are_refused() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        assert_eq!(s.handle_message(now, PeerKey(1), Message::Have(4)), Err(PeerError::PieceOutOfRange(4)));
        let req = Message::Request { index: 0, begin: 32_000, length: 16_384 };
        assert!(matches!(s.handle_message(now, PeerKey(1), req), Err(PeerError::InvalidBlock { .. })));
        let bits = Message::Bitfield(Bytes::from_static(&[0xff]));
        assert!(matches!(s.handle_message(now, PeerKey(1), bits), Err(PeerError::Bitfield(_))));
    }

    #[test]
    fn pieces_with_deadlines_are_requested_first_in_deadline_order() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        let urgent = |piece, secs| crate::stream::Urgent {
            piece: PieceIndex::new_unchecked(piece),
            deadline: now + Duration::from_secs(secs),
        };
        s.set_deadlines(now, vec![urgent(3, 0), urgent(1, 1)]);
        drain(&mut s);
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let asked: Vec<u32> = pieces_asked(&drain(&mut s), PeerKey(1));
        assert_eq!(asked[..4], [3, 3, 1, 1], "{asked:?}");
        assert_eq!(asked.len(), 8, "the other pieces follow: {asked:?}");
    }

    #[test]
    fn a_seek_cancels_the_requests_queued_for_pieces_no_longer_needed_first() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let config = Config { min_queue: 4, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        let span = |from: u32, len: u32| -> Vec<crate::stream::Urgent> {
            (from..from + len)
                .map(|p| crate::stream::Urgent {
                    piece: PieceIndex::new_unchecked(p),
                    deadline: now + Duration::from_millis(u64::from(p - from) * 500),
                })
                .collect()
        };
        let window = |from: u32| span(from, 8);
        s.set_deadlines(now, window(0));
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let asked: Vec<u32> = pieces_asked(&drain(&mut s), PeerKey(1));
        assert!(!asked.is_empty() && asked.iter().all(|&p| p < 8), "{asked:?}");
        // The window grows (the reader's rate is measured): nothing queued is withdrawn, as
        // every piece added is needed after those.
        s.set_deadlines(now, span(0, 16));
        assert!(!drain(&mut s).iter().any(|a| matches!(a, Action::Send { msg: Message::Cancel { .. }, .. })));
        // A seek to piece 40: what was queued for pieces 0-7 is cancelled, piece 40 is asked for.
        s.set_deadlines(now, window(40));
        let actions = drain(&mut s);
        let cancelled = cancels_in(&actions, PeerKey(1));
        assert!(!cancelled.is_empty() && cancelled.iter().all(|&p| p < 8), "{actions:?}");
        let asked: Vec<u32> = pieces_asked(&actions, PeerKey(1));
        assert_eq!(asked.first(), Some(&40), "{actions:?}");
        // A late copy of a cancelled block is not a protocol violation.
        let data = Bytes::from(vec![0u8; 16_384]);
        let late = Message::Piece { index: cancelled[0], begin: 0, data };
        assert!(s.handle_message(now, PeerKey(1), late).is_ok());
    }

    #[test]
    fn a_reject_of_a_cancelled_request_leaves_the_new_request_for_the_same_block() {
        let now = Instant::now();
        let layout = Layout::new(8 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 1, max_queue: 1, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(8), config, now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let first = requests_in(&drain(&mut s), PeerKey(1));
        let [block] = first[..] else { panic!("one request: {first:?}") };
        // A seek elsewhere cancels it, a seek back asks for it again.
        let at = |piece: u32| vec![crate::stream::Urgent { piece: PieceIndex::new_unchecked(piece), deadline: now }];
        let elsewhere = if block.piece.get() == 7 { 6 } else { 7 };
        s.set_deadlines(now, at(elsewhere));
        s.set_deadlines(now, at(block.piece.get()));
        let actions = drain(&mut s);
        assert!(requests_in(&actions, PeerKey(1)).contains(&block), "asked again: {actions:?}");
        // The peer rejects the cancelled request: the new one still stands, so nothing is asked
        // twice (each copy would take the peer's upload).
        let reject = Message::RejectRequest { index: block.piece.get(), begin: block.begin, length: block.length };
        s.handle_message(now, PeerKey(1), reject.clone()).expect("reject");
        s.tick(now + Duration::from_secs(1));
        let again = requests_in(&drain(&mut s), PeerKey(1));
        assert!(!again.contains(&block), "the block was asked for twice: {again:?}");
        // A second reject answers the new request: the block is free to ask for again.
        s.handle_message(now, PeerKey(1), reject).expect("reject");
        s.tick(now + Duration::from_secs(2));
        assert!(requests_in(&drain(&mut s), PeerKey(1)).contains(&block));
    }

    #[test]
    fn a_piece_needed_sooner_takes_the_place_of_one_queued_for_later() {
        // A player's first requests went to the pieces a peer (an initial seed) showed it; then
        // the peer shows the head the reader waits for. The queue is full, and the peer answers
        // in order: the head takes the place of the piece needed last.
        let now = Instant::now();
        let layout = Layout::new(32 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 4, max_queue: 4, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(32), config, now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveNone).expect("have none");
        let deadlines = (0..16)
            .map(|p| crate::stream::Urgent {
                piece: PieceIndex::new_unchecked(p),
                deadline: now + Duration::from_millis(u64::from(p) * 100),
            })
            .collect();
        s.set_deadlines(now, deadlines);
        for p in [10, 12, 14, 15, 20] {
            s.handle_message(now, PeerKey(1), Message::Have(p)).expect("have");
        }
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let mut asked: Vec<u32> = pieces_asked(&drain(&mut s), PeerKey(1));
        asked.sort_unstable();
        assert_eq!(asked, [10, 12, 14, 15], "the pieces with deadlines, in a full queue");
        let cancelled = |actions: &[Action]| cancels_in(actions, PeerKey(1));
        s.handle_message(now, PeerKey(1), Message::Have(0)).expect("have 0");
        let actions = drain(&mut s);
        assert_eq!(cancelled(&actions), [15], "{actions:?}");
        let asked: Vec<u32> = pieces_asked(&actions, PeerKey(1));
        assert_eq!(asked, [0], "{actions:?}");
        s.handle_message(now, PeerKey(1), Message::Have(1)).expect("have 1");
        let actions = drain(&mut s);
        assert_eq!(cancelled(&actions), [14], "{actions:?}");
        // A piece needed later than everything queued takes no one's place.
        s.handle_message(now, PeerKey(1), Message::Have(13)).expect("have 13");
        let actions = drain(&mut s);
        assert!(cancelled(&actions).is_empty() && requests_in(&actions, PeerKey(1)).is_empty(), "{actions:?}");
        // Nor does any piece once no reader waits.
        s.set_deadlines(now, Vec::new());
        s.handle_message(now, PeerKey(1), Message::Have(2)).expect("have 2");
        let actions = drain(&mut s);
        assert!(cancelled(&actions).is_empty() && requests_in(&actions, PeerKey(1)).is_empty(), "{actions:?}");
    }

    /// A leecher of 32 pieces of 16 KiB, one request per peer, whose reader needs every piece
    /// now (it reads ahead as fast as data comes).
    fn greedy_reader(t0: Instant) -> Swarm {
        let layout = Layout::new(32 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 1, max_queue: 1, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(32), config, t0);
        let deadlines =
            (0..32).map(|p| crate::stream::Urgent { piece: PieceIndex::new_unchecked(p), deadline: t0 }).collect();
        s.set_deadlines(t0, deadlines);
        s
    }

    #[test]
    fn a_piece_at_a_greedy_readers_edge_goes_to_a_second_peer_only_once_overdue() {
        // A player reads ahead as fast as data comes, so every piece at its edge is past its
        // deadline. A second peer is asked for one only when it has taken clearly longer than
        // pieces usually take; the first copy to arrive cancels the other request.
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = greedy_reader(t0);
        let join = |s: &mut Swarm, now: Instant, peer: u64| {
            s.add_peer(now, PeerKey(peer), true);
            s.handle_message(now, PeerKey(peer), Message::HaveAll).expect("have all");
            s.handle_message(now, PeerKey(peer), Message::Unchoke).expect("unchoke");
            let asked: Vec<u32> = pieces_asked(&drain(s), PeerKey(peer));
            asked
        };
        let data = Bytes::from(vec![0u8; 16_384]);
        let send = |s: &mut Swarm, now: Instant, peer: u64, index: u32| {
            let msg = Message::Piece { index, begin: 0, data: data.clone() };
            s.handle_message(now, PeerKey(peer), msg).expect("piece");
            drain(s)
        };
        assert_eq!(join(&mut s, t0, 1), [0]);
        assert_eq!(join(&mut s, t0, 2), [1]);
        // A peer's first block is not timed (see the next test).
        assert_eq!(requests_in(&send(&mut s, at(400), 1, 0), PeerKey(1)).len(), 1, "piece 2");
        assert_eq!(requests_in(&send(&mut s, at(500), 2, 1), PeerKey(2)).len(), 1, "piece 3");
        // Pieces take 400 and 500 ms: a piece is overdue after about 760 ms.
        assert_eq!(requests_in(&send(&mut s, at(800), 1, 2), PeerKey(1)).len(), 1, "piece 4");
        assert_eq!(requests_in(&send(&mut s, at(1000), 2, 3), PeerKey(2)).len(), 1, "piece 5");
        // Piece 4 has taken 600 ms: a new peer gets a piece nobody was asked for.
        assert_eq!(join(&mut s, at(1400), 3), [6]);
        // At 800 ms it is overdue: the next peer asks for it too.
        assert_eq!(join(&mut s, at(1600), 4), [4]);
        let actions = send(&mut s, at(1700), 4, 4);
        assert_eq!(cancels_in(&actions, PeerKey(1)), [4], "{actions:?}");
    }

    #[test]
    fn a_peers_first_block_sent_at_once_does_not_make_the_next_pieces_overdue() {
        // A capped seed sends its first block at once from its unspent allowance, then one per
        // block's time. Timed, that block made every piece asked for next overdue within
        // milliseconds, and copies of them went to the other peers ahead of the pieces readers
        // needed next.
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = greedy_reader(t0);
        for peer in [1, 2] {
            s.add_peer(t0, PeerKey(peer), true);
            s.handle_message(t0, PeerKey(peer), Message::HaveAll).expect("have all");
        }
        s.handle_message(t0, PeerKey(1), Message::Unchoke).expect("unchoke");
        assert_eq!(pieces_asked(&drain(&mut s), PeerKey(1)), [0]);
        let data = Bytes::from(vec![0u8; 16_384]);
        s.handle_message(at(1), PeerKey(1), Message::Piece { index: 0, begin: 0, data }).expect("piece");
        assert_eq!(pieces_asked(&drain(&mut s), PeerKey(1)), [1]);
        // 100 ms later piece 1 is on its way at its peer's pace: the second peer gets piece 2.
        s.handle_message(at(100), PeerKey(2), Message::Unchoke).expect("unchoke");
        let asked: Vec<u32> = pieces_asked(&drain(&mut s), PeerKey(2));
        assert_eq!(asked, [2]);
    }

    /// A leecher of 64 pieces of 16 KiB with four seeds connected, four requests each at most.
    fn four_seeds(now: Instant) -> Swarm {
        let layout = Layout::new(64 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 4, max_queue: 4, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        for peer in 1..=4 {
            s.add_peer(now, PeerKey(peer), true);
            s.handle_message(now, PeerKey(peer), Message::HaveAll).expect("have all");
        }
        s
    }

    /// Sixteen pieces from `from` with deadlines from `at`, `step_ms` apart.
    fn run_of(from: u32, at: Instant, step_ms: u64) -> Vec<crate::stream::Urgent> {
        (from..from + 16)
            .map(|p| crate::stream::Urgent {
                piece: PieceIndex::new_unchecked(p),
                deadline: at + Duration::from_millis(u64::from(p - from) * step_ms),
            })
            .collect()
    }

    #[test]
    fn after_a_seek_the_pieces_needed_first_are_spread_over_the_peers() {
        // Each peer answers in order at its own pace: the first pieces after a seek go one to
        // each peer, not four to the first one.
        let now = Instant::now();
        let mut s = four_seeds(now);
        let urgent = |from: u32| run_of(from, now, 100);
        s.set_deadlines(now, urgent(0));
        for peer in 1..=4 {
            s.handle_message(now, PeerKey(peer), Message::Unchoke).expect("unchoke");
        }
        drain(&mut s);
        // A new reader at piece 40 while the old one waits for its pieces (needed sooner, all
        // asked for): the old reader's requests stay.
        let mut both: Vec<_> = urgent(0)
            .into_iter()
            .map(|u| crate::stream::Urgent { deadline: u.deadline - Duration::from_secs(10), ..u })
            .collect();
        both.extend(urgent(40));
        s.set_deadlines(now, both);
        let actions = drain(&mut s);
        assert!((1..=4).all(|peer| cancels_in(&actions, PeerKey(peer)).is_empty()), "{actions:?}");
        // The old reader goes: its pieces give way to the new reader's.
        s.set_deadlines(now, urgent(40));
        let actions = drain(&mut s);
        let firsts: Vec<Vec<u32>> = (1..=4)
            .map(|peer| {
                let mut asked: Vec<u32> = pieces_asked(&actions, PeerKey(peer));
                asked.sort_unstable();
                asked
            })
            .collect();
        assert_eq!(firsts, [[40, 44, 48, 52], [41, 45, 49, 53], [42, 46, 50, 54], [43, 47, 51, 55]], "{actions:?}");
    }

    #[test]
    fn a_peer_sending_the_short_last_piece_is_given_the_next_piece_first() {
        // Four peers, each asked for one piece of a file's tail (an MP4's index at its end);
        // the last piece is short. After a seek to the head, the peer sending the short piece
        // sends its next one soonest, so it is given the piece needed first.
        let now = Instant::now();
        let layout = Layout::new(63 * 16_384 + 6_000, 16_384).expect("layout");
        let config = Config { min_queue: 1, max_queue: 1, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        let tail = |p: u32| crate::stream::Urgent { piece: PieceIndex::new_unchecked(p), deadline: now };
        s.set_deadlines(now, (60..64).map(tail).collect());
        for peer in 1..=4 {
            s.add_peer(now, PeerKey(peer), true);
            s.handle_message(now, PeerKey(peer), Message::HaveAll).expect("have all");
            s.handle_message(now, PeerKey(peer), Message::Unchoke).expect("unchoke");
        }
        let first = drain(&mut s);
        let at_four: Vec<u32> = pieces_asked(&first, PeerKey(4));
        assert_eq!(at_four, [63], "{first:?}");
        (s.config.min_queue, s.config.max_queue) = (2, 2);
        let mut urgent: Vec<_> = (60..64).map(tail).collect();
        urgent.extend(run_of(10, now, 100));
        s.set_deadlines(now, urgent);
        let actions = drain(&mut s);
        let asked: Vec<u32> = pieces_asked(&actions, PeerKey(4));
        assert_eq!(asked, [10], "{actions:?}");
    }

    #[test]
    fn at_the_start_the_head_is_spread_over_seeds_that_unchoke_one_after_another() {
        // The reader's deadlines are set before any peer connects; the seeds then unchoke us
        // one after another, each in its own batch of messages. The first was asked for the
        // first four pieces; as the others come, those queued behind its first move to them,
        // so the first eight pieces are at most two deep at any peer.
        let now = Instant::now();
        let layout = Layout::new(64 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 4, max_queue: 4, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        let urgent: Vec<_> = (0..16)
            .map(|p| crate::stream::Urgent {
                piece: PieceIndex::new_unchecked(p),
                deadline: now + Duration::from_millis(u64::from(p) * 100),
            })
            .collect();
        s.set_deadlines(now, urgent);
        let mut queued: std::collections::BTreeMap<u64, Vec<u32>> = Default::default();
        for peer in 1..=4 {
            s.add_peer(now, PeerKey(peer), true);
            s.handle_message(now, PeerKey(peer), Message::HaveAll).expect("have all");
            s.handle_message(now, PeerKey(peer), Message::Unchoke).expect("unchoke");
            for action in drain(&mut s) {
                match action {
                    Action::Send { peer, msg: Message::Request { index, .. } } => {
                        queued.entry(peer.0).or_default().push(index);
                    }
                    Action::Send { peer, msg: Message::Cancel { index, .. } } => {
                        queued.entry(peer.0).or_default().retain(|&p| p != index);
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(queued[&1][0], 0, "the first peer's first request stays: {queued:?}");
        for (peer, q) in &queued {
            let head = q.iter().filter(|&&p| p < 8).count();
            assert!(head <= 2, "peer {peer} holds {head} of the first eight pieces: {queued:?}");
            let mut unique = q.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), q.len(), "a piece asked twice of one peer: {queued:?}");
        }
        let asked: std::collections::BTreeSet<u32> = queued.values().flatten().copied().collect();
        assert!((0..8).all(|p| asked.contains(&p)), "{queued:?}");

        // A peer that has sent blocks already moves nothing when it unchokes us again.
        let block = BlockRange { piece: PieceIndex::new_unchecked(queued[&2][0]), begin: 0, length: 16_384 };
        s.handle_message(
            now,
            PeerKey(2),
            Message::Piece { index: block.piece.get(), begin: 0, data: vec![0; 16_384].into() },
        )
        .expect("block");
        s.handle_message(now, PeerKey(2), Message::Choke).expect("choke");
        s.handle_message(now, PeerKey(2), Message::Unchoke).expect("unchoke");
        let actions = drain(&mut s);
        assert!((1..=4).all(|peer| cancels_in(&actions, PeerKey(peer)).is_empty()), "{actions:?}");
    }

    #[test]
    fn an_index_needed_now_moves_ahead_of_the_requests_queued_before_it() {
        // A player read an MP4's head and now needs the index at the file's end, asked for
        // behind pieces of the head at the peer: those give way and are asked for again behind
        // it. Pieces arriving in order move nothing.
        let now = Instant::now();
        let layout = Layout::new(64 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 8, max_queue: 8, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        s.add_peer(now, PeerKey(1), true);
        let urgent = |at: Instant, pieces: &[u32]| -> Vec<crate::stream::Urgent> {
            pieces
                .iter()
                .enumerate()
                .map(|(i, &p)| crate::stream::Urgent {
                    piece: PieceIndex::new_unchecked(p),
                    deadline: at + Duration::from_millis(i as u64 * 100),
                })
                .collect()
        };
        s.set_deadlines(now, urgent(now, &[0, 1, 2, 3, 4, 5, 62, 63]));
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let asked: Vec<u32> = pieces_asked(&drain(&mut s), PeerKey(1));
        assert_eq!(asked, [0, 1, 2, 3, 4, 5, 62, 63]);
        // Piece 0 arrives; the reader reads on.
        let t1 = now + Duration::from_millis(50);
        let msg = Message::Piece { index: 0, begin: 0, data: Bytes::from(vec![0u8; 16_384]) };
        s.handle_message(t1, PeerKey(1), msg).expect("piece");
        s.handle_verified(t1, PieceIndex::new_unchecked(0), true);
        drain(&mut s);
        s.set_deadlines(t1, urgent(t1, &[1, 2, 3, 4, 5, 62, 63]));
        let actions = drain(&mut s);
        assert!(cancels_in(&actions, PeerKey(1)).is_empty(), "{actions:?}");
        // Now it needs the index (62, 63) first.
        let t2 = now + Duration::from_millis(60);
        s.set_deadlines(t2, urgent(t2 - Duration::from_millis(100), &[62, 63, 1, 2, 3, 4, 5]));
        let actions = drain(&mut s);
        let mut cancelled = cancels_in(&actions, PeerKey(1));
        cancelled.sort_unstable();
        assert_eq!(cancelled[..5], [1, 2, 3, 4, 5], "{actions:?}");
        assert!(!cancelled.contains(&62) && !cancelled.contains(&63), "{actions:?}");
        let again: Vec<u32> = pieces_asked(&actions, PeerKey(1));
        assert_eq!(again[..5], [1, 2, 3, 4, 5], "asked again, behind the index: {actions:?}");
    }

    #[test]
    fn a_seek_while_the_old_request_is_open_still_spreads_the_new_pieces() {
        // A player keeps the request it seeks away from open until the new one's headers came:
        // the old reader's pieces, needed soon, stay queued, and the new reader's take their
        // places one by one. The new pieces still go one to each peer.
        let now = Instant::now();
        let mut s = four_seeds(now);
        let urgent = |from: u32, after: Duration| run_of(from, now + after, 50);
        s.set_deadlines(now, urgent(0, Duration::ZERO));
        for peer in 1..=4 {
            s.handle_message(now, PeerKey(peer), Message::Unchoke).expect("unchoke");
        }
        drain(&mut s);
        let later = now + Duration::from_millis(10);
        let mut both = urgent(40, Duration::ZERO);
        both.extend(urgent(0, Duration::from_millis(100)));
        s.set_deadlines(later, both);
        let actions = drain(&mut s);
        let new: Vec<Vec<u32>> = (1..=4)
            .map(|peer| {
                let asked = requests_in(&actions, PeerKey(peer));
                asked.iter().map(|b| b.piece.get()).filter(|p| (40..44).contains(p)).collect()
            })
            .collect();
        assert!(new.iter().all(|n| n.len() == 1), "pieces 40-43 one per peer: {new:?} {actions:?}");
    }

    #[test]
    fn a_reader_waiting_for_a_piece_no_peer_has_is_no_seek() {
        // Reader B waits for piece 50, which no connected peer has; reader A plays on. Each of
        // A's moves must not count as a seek that cancels A's own requests.
        let now = Instant::now();
        let layout = Layout::new(64 * 16_384, 16_384).expect("layout");
        let config = Config { min_queue: 4, max_queue: 4, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(64), config, now);
        s.add_peer(now, PeerKey(1), true);
        let mut bits = Bitfield::new(64);
        (0..32).for_each(|p| {
            bits.set(PieceIndex::new_unchecked(p));
        });
        s.handle_message(now, PeerKey(1), Message::Bitfield(bits.to_wire())).expect("bitfield");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let readers = |at: u32, now: Instant| {
            let mut u: Vec<crate::stream::Urgent> = (at..at + 8)
                .map(|p| crate::stream::Urgent {
                    piece: PieceIndex::new_unchecked(p),
                    deadline: now + Duration::from_millis(u64::from(p - at) * 100),
                })
                .collect();
            u.insert(
                0,
                crate::stream::Urgent { piece: PieceIndex::new_unchecked(50), deadline: now - Duration::from_secs(3) },
            );
            u
        };
        drain(&mut s);
        s.set_deadlines(now, readers(0, now));
        drain(&mut s);
        // A reads on within piece 0 (its deadlines are set again, from a later time).
        let later = now + Duration::from_millis(100);
        s.set_deadlines(later, readers(0, later));
        let actions = drain(&mut s);
        assert!(cancels_in(&actions, PeerKey(1)).is_empty(), "{actions:?}");
    }

    /// Pieces of the cancels sent to `to` among the actions.
    fn cancels_in(actions: &[Action], to: PeerKey) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer, msg: Message::Cancel { index, .. } } if *peer == to => Some(*index),
                _ => None,
            })
            .collect()
    }

    /// Requests to `to` among the actions, for any layout.
    /// The pieces of the requests among `actions` sent to `to`, in order.
    fn pieces_asked(actions: &[Action], to: PeerKey) -> Vec<u32> {
        requests_in(actions, to).iter().map(|b| b.piece.get()).collect()
    }

    fn requests_in(actions: &[Action], to: PeerKey) -> Vec<BlockRange> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer, msg: Message::Request { index, begin, length } } if *peer == to => {
                    Some(BlockRange { piece: PieceIndex::new_unchecked(*index), begin: *begin, length: *length })
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn download_flow_requests_writes_and_verifies() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        drain(&mut s);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        assert!(drain(&mut s).contains(&Action::Send { peer: PeerKey(1), msg: Message::Interested }));
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let requests: Vec<(u32, u32, u32)> = drain(&mut s)
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { msg: Message::Request { index, begin, length }, .. } => Some((index, begin, length)),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 8, "every block of the torrent is requested");
        let mut verified = Vec::new();
        for (index, begin, length) in requests {
            let data = Bytes::from(vec![1u8; length as usize]);
            s.handle_message(now, PeerKey(1), Message::Piece { index, begin, data }).expect("piece");
            for a in drain(&mut s) {
                if let Action::Verify { piece } = a {
                    verified.push(piece);
                }
            }
        }
        assert_eq!(verified.len(), 4);
        for piece in verified {
            s.handle_verified(now, piece, true);
        }
        assert!(s.is_complete());
        let actions = drain(&mut s);
        assert!(actions.contains(&Action::Send { peer: PeerKey(1), msg: Message::NotInterested }));
        assert!(
            actions.iter().any(|a| matches!(a, Action::Disconnect { peer: PeerKey(1), ban: false, .. })),
            "two seeds have nothing to exchange"
        );
    }

    /// A v2 piece that failed its check is held; once the block hashes name the bad block, its
    /// sender is banned and only that block is fetched again, from the other peer.
    #[test]
    fn a_held_piece_refetches_only_the_bad_block_and_bans_its_sender() {
        let now = Instant::now();
        let layout = Layout::new(4 * 16_384, 4 * 16_384).expect("layout");
        let config = Config { min_queue: 2, ..Config::default() };
        let mut s = Swarm::new(layout, Bitfield::new(1), config, now);
        for key in [PeerKey(1), PeerKey(2)] {
            s.add_peer(now, key, true);
            s.handle_message(now, key, Message::HaveAll).expect("have all");
            s.handle_message(now, key, Message::Unchoke).expect("unchoke");
        }
        let actions = drain(&mut s);
        let mut from = Vec::new();
        for key in [PeerKey(1), PeerKey(2)] {
            for b in requests_in(&actions, key) {
                from.push((b.begin / 16_384, key));
                let data = Bytes::from(vec![1u8; b.length as usize]);
                s.handle_message(now, key, Message::Piece { index: 0, begin: b.begin, data }).expect("piece");
            }
        }
        from.sort();
        assert_eq!(from.len(), 4, "{from:?}");
        assert!(drain(&mut s).contains(&Action::Verify { piece: PieceIndex::new_unchecked(0) }));
        let piece = PieceIndex::new_unchecked(0);
        let senders = s.hold_failed(piece).expect("a piece waiting for its check");
        assert_eq!(senders, from.iter().map(|f| f.1).collect::<Vec<_>>());
        assert!(drain(&mut s).iter().all(|a| !matches!(a, Action::Send { msg: Message::Request { .. }, .. })));
        // Block 3 was bad: its sender goes, the block is asked of the honest peer alone.
        let (liar, honest) = (from[3].1, if from[3].1 == PeerKey(1) { PeerKey(2) } else { PeerKey(1) });
        s.reopen_blocks(piece, &[3], &[liar]);
        let actions = drain(&mut s);
        assert!(actions.iter().any(|a| matches!(a, Action::Disconnect { peer, ban: true, .. } if *peer == liar)));
        let again = requests_in(&actions, honest);
        assert_eq!(again.iter().map(|b| b.begin).collect::<Vec<_>>(), vec![3 * 16_384], "{actions:?}");
        let data = Bytes::from(vec![2u8; 16_384]);
        s.handle_message(now, honest, Message::Piece { index: 0, begin: 3 * 16_384, data }).expect("piece");
        assert!(drain(&mut s).contains(&Action::Verify { piece }));
        s.handle_verified(now, piece, true);
        assert!(s.is_complete());
        assert_eq!(s.stats().hash_failures, 1);
    }

    /// A block of padding the driver does not fetch is taken as zeros: written, the piece
    /// completes, nothing counts as downloaded, and the bytes are reported as filled.
    #[test]
    fn padding_blocks_are_filled_with_zeros_not_counted_as_downloaded() {
        let now = Instant::now();
        let layout = Layout::new(2 * 16_384, 2 * 16_384).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::new(1), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let asked = requests_in(&drain(&mut s), PeerKey(1));
        assert_eq!(asked.len(), 2);
        s.fill_padding(now, PeerKey(1), asked[1]);
        let data = Bytes::from(vec![3u8; 16_384]);
        s.handle_message(now, PeerKey(1), Message::Piece { index: 0, begin: 0, data }).expect("piece");
        let actions = drain(&mut s);
        let zeros = Bytes::from(vec![0u8; 16_384]);
        assert!(actions.contains(&Action::Write { block: asked[1], data: zeros }), "{actions:?}");
        assert!(actions.contains(&Action::Verify { piece: PieceIndex::new_unchecked(0) }));
        let stats = s.stats();
        assert_eq!((stats.downloaded, stats.padding_filled), (16_384, 16_384));
        // Filling it again (an endgame duplicate) changes nothing.
        s.fill_padding(now, PeerKey(1), asked[1]);
        assert_eq!(s.stats().padding_filled, 16_384);
    }

    #[test]
    fn seed_serves_only_unchoked_peers() {
        let now = Instant::now();
        let layout = Layout::new(32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(1), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        assert_eq!(drain(&mut s), vec![Action::Send { peer: PeerKey(1), msg: Message::HaveAll }]);
        let req = Message::Request { index: 0, begin: 0, length: 16_384 };
        s.handle_message(now, PeerKey(1), req.clone()).expect("request");
        assert!(matches!(drain(&mut s)[..], [Action::Send { msg: Message::RejectRequest { .. }, .. }]));
        s.handle_message(now, PeerKey(1), Message::Interested).expect("interested");
        assert_eq!(drain(&mut s), vec![Action::Send { peer: PeerKey(1), msg: Message::Unchoke }]);
        s.handle_message(now, PeerKey(1), req).expect("request");
        let block = layout.block(PieceIndex::new_unchecked(0), 0).expect("block");
        assert_eq!(drain(&mut s), vec![Action::Serve { peer: PeerKey(1), block }]);
    }

    #[test]
    fn cancel_withdraws_a_queued_block() {
        let now = Instant::now();
        let layout = Layout::new(32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(1), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        drain(&mut s);
        let cancel = Message::Cancel { index: 0, begin: 16_384, length: 16_384 };
        s.handle_message(now, PeerKey(1), cancel).expect("cancel");
        let block = layout.block(PieceIndex::new_unchecked(0), 1).expect("block");
        assert_eq!(drain(&mut s), vec![Action::Withdraw { peer: PeerKey(1), block }]);
    }

    #[test]
    fn a_peer_with_nothing_new_takes_over_blocks_queued_elsewhere() {
        let now = Instant::now();
        // Five pieces of two blocks; requests are kept eight deep, so one piece stays
        // unstarted and the swarm is not in endgame.
        let layout = Layout::new(5 * 32_768, 32_768).expect("layout");
        let mut s =
            Swarm::new(layout, Bitfield::new(5), Config { min_queue: 8, max_queue: 8, ..Config::default() }, now);
        for peer in [PeerKey(1), PeerKey(2)] {
            s.add_peer(now, peer, true);
        }
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        drain(&mut s);
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let at_peer_1: Vec<u32> = drain(&mut s)
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { msg: Message::Request { index, .. }, .. } => Some(index),
                _ => None,
            })
            .collect();
        assert_eq!(at_peer_1.len(), 8);
        // Peer 2 has only a piece whose blocks are all queued at peer 1.
        let piece = at_peer_1[0];
        s.handle_message(now, PeerKey(2), Message::Have(piece)).expect("have");
        s.handle_message(now, PeerKey(2), Message::Unchoke).expect("unchoke");
        let actions = drain(&mut s);
        let moved: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer: PeerKey(1), msg: Message::Cancel { index, begin, .. } } => Some((*index, *begin)),
                _ => None,
            })
            .collect();
        let asked: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer: PeerKey(2), msg: Message::Request { index, begin, .. } } => Some((*index, *begin)),
                _ => None,
            })
            .collect();
        assert!(!asked.is_empty(), "peer 2 gets something to send: {actions:?}");
        assert_eq!(moved, asked, "each block asked of peer 2 is cancelled at peer 1");
        assert!(asked.iter().all(|(index, _)| *index == piece));
    }

    #[test]
    fn every_late_copy_of_a_block_cancelled_twice_is_accepted() {
        let now = Instant::now();
        let mut s = leecher(now);
        s.add_peer(now, PeerKey(1), true);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let block = *requests(&drain(&mut s), PeerKey(1)).iter().min().expect("requests");
        // Two snubs: each cancels the block and asks for it again (a snubbed peer is asked for
        // the first open block), so the peer may send it three times.
        for secs in [31, 62] {
            s.tick(now + Duration::from_secs(secs));
            assert!(requests(&drain(&mut s), PeerKey(1)).contains(&block));
        }
        let data = Bytes::from(vec![7u8; block.length as usize]);
        for copy in 0..3 {
            let msg = Message::Piece { index: block.piece.get(), begin: block.begin, data: data.clone() };
            s.handle_message(now, PeerKey(1), msg).unwrap_or_else(|e| panic!("copy {copy}: {e}"));
        }
        let msg = Message::Piece { index: block.piece.get(), begin: block.begin, data };
        assert!(s.handle_message(now, PeerKey(1), msg).is_err(), "a fourth copy was never asked for");
    }

    #[test]
    fn a_late_copy_of_a_block_still_missing_is_written() {
        let now = Instant::now();
        let mut s = leecher(now);
        // Without the fast extension a choke voids every request.
        s.add_peer(now, PeerKey(1), false);
        s.handle_message(now, PeerKey(1), Message::HaveAll).expect("have all");
        s.handle_message(now, PeerKey(1), Message::Unchoke).expect("unchoke");
        let block = requests(&drain(&mut s), PeerKey(1))[0];
        s.handle_message(now, PeerKey(1), Message::Choke).expect("choke");
        drain(&mut s);
        let data = Bytes::from(vec![7u8; block.length as usize]);
        let msg = Message::Piece { index: block.piece.get(), begin: block.begin, data };
        s.handle_message(now, PeerKey(1), msg).expect("late copy");
        assert!(
            drain(&mut s).iter().any(|a| matches!(a, Action::Write { block: b, .. } if *b == block)),
            "the block is written rather than fetched again"
        );
    }

    /// The default configuration with 4 seed unchoke slots: the tests of a seed's slots are
    /// written for that number, whatever the default.
    fn four_seed_slots() -> Config {
        Config { seed_unchoke_slots: 4, ..Config::default() }
    }

    #[test]
    fn initial_seed_reveals_distinct_rare_pieces() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), four_seed_slots(), now);
        for key in 1..=5 {
            s.add_peer(now, PeerKey(key), true);
        }
        let actions = drain(&mut s);
        assert_eq!(actions[0], Action::Send { peer: PeerKey(1), msg: Message::HaveNone }, "the seed hides its pieces");
        let shown: Vec<Vec<u32>> = (1..=5).map(|key| revealed(&actions, PeerKey(key))).collect();
        // Four unchoke slots: the first four peers are unchoked at once and each is shown a
        // quarter megabyte of pieces; the fifth is shown nothing until its turn.
        for (n, pieces) in shown.iter().take(4).enumerate() {
            assert_eq!(pieces.len(), 8, "peer {}: {actions:?}", n + 1);
        }
        assert!(shown[4].is_empty(), "a choked peer is shown nothing");
        let all: std::collections::BTreeSet<u32> = shown.iter().flatten().copied().collect();
        assert_eq!(all.len(), 32, "no piece is shown to two peers while others are unshown");
        // A peer that announces a piece it was shown is shown another, new one.
        s.handle_message(now, PeerKey(1), Message::Have(shown[0][0])).expect("have");
        let next = revealed(&drain(&mut s), PeerKey(1));
        assert_eq!(next.len(), 1);
        assert!(!all.contains(&next[0]));
    }

    /// Once every piece has a copy at a peer or on its way to one, a peer that still has shown
    /// pieces to fetch is not shown more (the seed would send a piece twice while pieces it
    /// never sent wait); a peer with nothing left to fetch still is, so it never runs dry.
    #[test]
    fn an_initial_seed_shows_no_second_copy_to_a_peer_with_pieces_to_fetch() {
        let now = Instant::now();
        let layout = Layout::new(12 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(12), Config::default(), now);
        for key in 1..=2 {
            s.add_peer(now, PeerKey(key), true);
        }
        let actions = drain(&mut s);
        let shown: Vec<Vec<u32>> = (1..=2).map(|key| revealed(&actions, PeerKey(key))).collect();
        let all: std::collections::BTreeSet<u32> = shown.iter().flatten().copied().collect();
        assert_eq!(all.len(), 12, "every piece is out once: {shown:?}");
        assert_eq!(shown.iter().map(Vec::len).sum::<usize>(), 12, "and no piece twice: {shown:?}");
        // Peer 1 announces one of its pieces: every piece left has a copy somewhere, and peer 1
        // still has shown pieces to fetch, so it is shown nothing more.
        s.handle_message(now, PeerKey(1), Message::Have(shown[0][0])).expect("have");
        assert!(revealed(&drain(&mut s), PeerKey(1)).is_empty());
        // Once it announced them all, it is shown a piece another peer has, so it never runs dry.
        for &piece in &shown[0][1..] {
            s.handle_message(now, PeerKey(1), Message::Have(piece)).expect("have");
        }
        let next = revealed(&drain(&mut s), PeerKey(1));
        assert!(!next.is_empty() && next.iter().all(|p| !shown[0].contains(p)), "{next:?}");
    }

    /// Once every piece is held by some peer, a peer is shown more pieces while it still
    /// fetches the ones it was shown (second copies are all the seed has left to send; held
    /// back until it had fetched everything, each peer waited a round trip per few pieces).
    #[test]
    fn an_initial_seed_keeps_showing_once_every_piece_is_held() {
        let now = Instant::now();
        let layout = Layout::new(16 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(16), Config::default(), now);
        // Peer 2 holds pieces 0-7, peer 3 pieces 8-15: every piece is held.
        for (key, bits) in [(2, [0xff, 0x00]), (3, [0x00, 0xff])] {
            s.add_peer(now, PeerKey(key), true);
            s.handle_message(now, PeerKey(key), Message::Bitfield(Bytes::copy_from_slice(&bits))).expect("bitfield");
        }
        drain(&mut s);
        s.add_peer(now, PeerKey(1), true);
        let shown = revealed(&drain(&mut s), PeerKey(1));
        assert!(shown.len() > 1, "a peer is shown one piece at a time once every piece is held: {shown:?}");
    }

    #[test]
    fn an_initial_seed_shows_a_player_the_pieces_it_asks_for_within_bounds() {
        let now = Instant::now();
        // Pieces of 1 MiB: at most 16 (4 MiB, but never fewer than 16 pieces) shown on request
        // and not yet announced.
        let layout = Layout::new(64 << 20, 1 << 20).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), four_seed_slots(), now);
        for key in 1..=5 {
            s.add_peer(now, PeerKey(key), true);
        }
        let first = revealed(&drain(&mut s), PeerKey(1));
        // Peer 1 plays the file from its start: it names pieces it was not shown, one twice,
        // one it was shown already, and one past the end.
        let wanted: Vec<u32> = (0..12).filter(|p| !first.contains(p)).take(9).collect();
        let mut asked = wanted.clone();
        asked.insert(1, wanted[0]);
        asked.insert(2, first[0]);
        asked.insert(3, 999);
        s.handle_wants(PeerKey(1), &asked);
        let shown = revealed(&drain(&mut s), PeerKey(1));
        assert_eq!(shown, wanted, "the valid, unshown ones, each once");
        // A choked peer asking is shown nothing, but is unchoked first at the next rechoke.
        s.handle_wants(PeerKey(5), &[40]);
        assert!(revealed(&drain(&mut s), PeerKey(5)).is_empty(), "a choked peer is shown nothing");
        s.tick(now + Duration::from_secs(11));
        let actions = drain(&mut s);
        assert!(actions.contains(&Action::Send { peer: PeerKey(5), msg: Message::Unchoke }), "{actions:?}");
        // At most sixteen shown on request and not yet announced, per peer.
        s.handle_wants(PeerKey(1), &(16..64).collect::<Vec<u32>>());
        let open = s.peers[&PeerKey(1)].reveals_open.iter().filter(|o| o.wanted).count();
        assert_eq!(open, 16);
        // A seed that is not seeding initially, and a leecher, ignore requests.
        let mut plain =
            Swarm::new(layout, Bitfield::full(64), Config { initial_seeding: false, ..four_seed_slots() }, now);
        plain.add_peer(now, PeerKey(1), true);
        drain(&mut plain);
        plain.handle_wants(PeerKey(1), &[3]);
        assert!(revealed(&drain(&mut plain), PeerKey(1)).is_empty());
    }

    #[test]
    fn a_player_asks_for_the_hidden_pieces_it_waits_for_and_repeats_only_after_a_while() {
        let now = Instant::now();
        // Pieces of 1 MiB: a request names eight of them (at least eight, 2 MiB or more).
        let layout = Layout::new(64 << 20, 1 << 20).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::new(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        s.add_peer(now, PeerKey(2), true);
        s.peer_extensions(PeerKey(1), true);
        s.handle_message(now, PeerKey(2), Message::Have(0)).expect("have");
        drain(&mut s);
        let urgent = |p: u32| crate::stream::Urgent {
            piece: PieceIndex::new_unchecked(p),
            deadline: now + Duration::from_secs(1),
        };
        s.set_deadlines(now, (0..12).map(urgent).collect());
        let wants: Vec<Action> = drain(&mut s).into_iter().filter(|a| matches!(a, Action::Want { .. })).collect();
        // Only peer 1 takes requests; it is told the first eight pieces not received (piece 0
        // too, which peer 2 has: the request also says this node is a player).
        let expected: Vec<PieceIndex> = (0..8).map(PieceIndex::new_unchecked).collect();
        assert_eq!(wants, vec![Action::Want { peer: PeerKey(1), pieces: expected }]);
        s.tick(now + Duration::from_secs(1));
        assert!(!drain(&mut s).iter().any(|a| matches!(a, Action::Want { .. })), "asked again too soon");
        s.tick(now + Duration::from_secs(3));
        assert!(drain(&mut s).iter().any(|a| matches!(a, Action::Want { .. })), "asked again after a while");
    }

    #[test]
    fn a_peer_that_wants_none_of_the_shown_pieces_is_shown_everything() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        another_peer(&mut s, now);
        let first = revealed(&drain(&mut s), PeerKey(1));
        assert_eq!(first.len(), 8);
        // The peer downloads only some files: it never gets interested in what it was shown.
        for n in 1..=UNWANTED_TICKS + 1 {
            s.tick(now + Duration::from_secs(n));
        }
        let rest = revealed(&drain(&mut s), PeerKey(1));
        assert_eq!(first.len() + rest.len(), 64, "every piece is shown in the end: {rest:?}");
    }

    #[test]
    fn an_initial_seed_shows_a_lone_peer_everything_before_its_unchoke() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        let actions = drain(&mut s);
        assert!(revealed(&actions, PeerKey(1)).is_empty(), "nothing before its extension handshake");
        assert!(!actions.iter().any(|a| matches!(a, Action::Send { msg: Message::Unchoke, .. })));
        // Still alone when its handshake comes, and it cannot ask for hidden pieces: every
        // piece, the head of the file first, then the unchoke (a client that looks for pieces
        // at the unchoke sees them all).
        s.peer_extensions(PeerKey(1), false);
        let actions = drain(&mut s);
        assert_eq!(revealed(&actions, PeerKey(1)), (0..64).collect::<Vec<u32>>(), "{actions:?}");
        let unchoke = position(&actions, |a| matches!(a, Action::Send { msg: Message::Unchoke, .. }));
        assert_eq!(unchoke, actions.len() - 1, "{actions:?}");
        // A Shoal peer (it takes `shoal_wants`) is shown a few, then everything at the next
        // tick while it stays alone.
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        s.peer_extensions(PeerKey(1), true);
        assert_eq!(revealed(&drain(&mut s), PeerKey(1)).len(), 8);
        s.tick(now + Duration::from_millis(500));
        assert_eq!(revealed(&drain(&mut s), PeerKey(1)).len(), 56);
        // A handshake that never comes: every piece at the first tick.
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        drain(&mut s);
        s.tick(now + Duration::from_millis(500));
        assert_eq!(revealed(&drain(&mut s), PeerKey(1)).len(), 64);
        // Two peers that come together (the second before the first's handshake) are shown a
        // few pieces each, the first as soon as the second comes.
        let mut two = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        two.add_peer(now, PeerKey(1), true);
        two.add_peer(now, PeerKey(2), true);
        two.peer_extensions(PeerKey(1), false);
        two.peer_extensions(PeerKey(2), false);
        let actions = drain(&mut two);
        assert_eq!((revealed(&actions, PeerKey(1)).len(), revealed(&actions, PeerKey(2)).len()), (8, 8));
        two.tick(now + Duration::from_millis(500));
        assert!(revealed(&drain(&mut two), PeerKey(1)).len() < 56);
    }

    #[test]
    fn r_silent_peers_do_not_keep_an_initial_seeds_unchoke_slots() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), four_seed_slots(), now);
        // Four peers that connect and then say nothing take the four slots first.
        for key in 1..=4 {
            s.add_peer(now, PeerKey(key), true);
        }
        s.add_peer(now, PeerKey(5), true);
        let unchoked =
            |actions: &[Action], key| actions.contains(&Action::Send { peer: PeerKey(key), msg: Message::Unchoke });
        let first = drain(&mut s);
        assert!(!unchoked(&first, 5), "the fifth peer waits at first");
        s.handle_message(now, PeerKey(5), Message::HaveNone).expect("have none");
        let mut later = Vec::new();
        for n in 1..=UNWANTED_TICKS + 3 {
            s.tick(now + Duration::from_millis(500 * n));
            later.extend(drain(&mut s));
        }
        assert!(unchoked(&later, 5), "a silent peer's slot went to the waiting one: {later:?}");
        // The silent ones may have free slots while nobody else waits, but a newcomer goes
        // before them as soon as one of them is found silent again.
        s.add_peer(now, PeerKey(6), true);
        s.handle_message(now, PeerKey(6), Message::HaveNone).expect("have none");
        let mut after = Vec::new();
        for n in UNWANTED_TICKS + 4..=2 * UNWANTED_TICKS + 7 {
            s.tick(now + Duration::from_millis(500 * n));
            after.extend(drain(&mut s));
        }
        assert!(unchoked(&after, 6), "{after:?}");
    }

    #[test]
    fn a_seed_serves_its_peers_in_turn() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let config = Config { initial_seeding: false, ..four_seed_slots() };
        let mut s = Swarm::new(layout, Bitfield::full(64), config, now);
        for key in 1..=6 {
            s.add_peer(now, PeerKey(key), true);
            s.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
            s.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
        }
        let unchoked =
            |actions: &[Action], key| actions.contains(&Action::Send { peer: PeerKey(key), msg: Message::Unchoke });
        let first = drain(&mut s);
        let served: Vec<u64> = (1..=6).filter(|&k| unchoked(&first, k)).collect();
        assert_eq!(served.len(), 4, "{first:?}");
        // The first four take data; at the next rechoke the two that got nothing come first.
        for &k in &served {
            s.handle_message(now, PeerKey(k), Message::Request { index: 0, begin: 0, length: 16_384 })
                .expect("request");
        }
        drain(&mut s);
        let later = now + Duration::from_secs(11);
        s.tick(later);
        let after = drain(&mut s);
        for k in (1..=6).filter(|k| !served.contains(k)) {
            assert!(unchoked(&after, k), "peer {k} waited: {after:?}");
        }
    }

    #[test]
    fn a_seed_under_its_upload_cap_opens_more_slots_and_closes_them_at_the_cap() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        for initial_seeding in [false, true] {
            let config = Config { initial_seeding, ..four_seed_slots() };
            let mut s = Swarm::new(layout, Bitfield::full(64), config, now);
            for key in 1..=40 {
                s.add_peer(now, PeerKey(key), true);
                s.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
                s.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
            }
            let unchoked = |s: &Swarm| s.peers.values().filter(|p| !p.am_choking).count();
            drain(&mut s);
            assert_eq!(unchoked(&s), 4);
            // No cap: the slots stay as configured.
            let mut t = now;
            for _ in 0..5 {
                t += Duration::from_secs(1);
                s.set_upload_use(None);
                s.tick(t);
            }
            assert_eq!((s.unchoke_slots(), unchoked(&s)), (4, 4));
            // Half the cap used: slots open tick by tick and peers are unchoked at once.
            for _ in 0..4 {
                t += Duration::from_secs(1);
                s.set_upload_use(Some(0.5));
                s.tick(t);
            }
            let grown = s.unchoke_slots();
            assert!(grown >= 8, "{grown} slots");
            assert_eq!(unchoked(&s), grown, "initial seeding {initial_seeding}");
            assert!(drain(&mut s).iter().any(|a| matches!(a, Action::Send { msg: Message::Unchoke, .. })));
            // Near the cap: no more slots.
            t += Duration::from_secs(1);
            s.set_upload_use(Some(0.95));
            s.tick(t);
            assert_eq!(s.unchoke_slots(), grown);
            // At the cap for a while: one slot closes per ten ticks, down to the configured four.
            for _ in 0..(10 * (grown - 4) + 30) {
                t += Duration::from_secs(1);
                s.set_upload_use(Some(1.0));
                s.tick(t);
            }
            assert_eq!(s.unchoke_slots(), 4);
            assert!(unchoked(&s) <= 5, "rechoking followed the slots: {}", unchoked(&s));
        }
    }

    /// A leecher holding half of 64 pieces, with `n` peers that have none and want ours.
    fn half_leecher_with_wanting_peers(now: Instant, n: u64) -> Swarm {
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut have = Bitfield::new(64);
        for i in 0..32 {
            have.set(PieceIndex::new_unchecked(i));
        }
        let mut s = Swarm::new(layout, have, four_seed_slots(), now);
        for key in 1..=n {
            s.add_peer(now, PeerKey(key), true);
            s.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
            s.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
        }
        s
    }

    fn unchoked_wanting(s: &Swarm) -> Vec<u64> {
        s.peers.iter().filter(|(_, p)| !p.am_choking && p.peer_interested).map(|(k, _)| k.0).collect()
    }

    #[test]
    fn r_lurker_an_unchoked_peer_that_takes_nothing_gives_its_slot_to_one_that_waits() {
        let now = Instant::now();
        let mut s = half_leecher_with_wanting_peers(now, 6);
        drain(&mut s);
        let first = unchoked_wanting(&s);
        assert_eq!(first.len(), 4);
        // One unchoked peer asks for data; the other three ask for nothing.
        let taker = first[0];
        s.handle_message(now, PeerKey(taker), Message::Request { index: 0, begin: 0, length: 16_384 })
            .expect("request");
        drain(&mut s);
        s.tick(now + Duration::from_secs(1));
        drain(&mut s);
        s.handle_message(now, PeerKey(taker), Message::Request { index: 0, begin: 16_384, length: 16_384 })
            .expect("request");
        s.tick(now + Duration::from_secs(2));
        let actions = drain(&mut s);
        let choked: Vec<u64> =
            (1..=6).filter(|&k| actions.contains(&Action::Send { peer: PeerKey(k), msg: Message::Choke })).collect();
        let unchoked: Vec<u64> =
            (1..=6).filter(|&k| actions.contains(&Action::Send { peer: PeerKey(k), msg: Message::Unchoke })).collect();
        let waited: Vec<u64> = (1..=6).filter(|k| !first.contains(k)).collect();
        assert_eq!(unchoked, waited, "the two waiting peers get slots: {actions:?}");
        assert_eq!(choked.len(), 2, "{actions:?}");
        assert!(!choked.contains(&taker), "the peer taking data keeps its slot");
        // Choked lurkers come after the peers that wait; with nobody else waiting, a slot that
        // frees up may go to one of them again.
        s.handle_message(now, PeerKey(taker), Message::NotInterested).expect("not interested");
        let after = drain(&mut s);
        let lurker_unchoked =
            choked.iter().any(|&k| after.contains(&Action::Send { peer: PeerKey(k), msg: Message::Unchoke }));
        assert!(lurker_unchoked, "with nobody else waiting a lurker may have the free slot: {after:?}");
    }

    #[test]
    fn a_peer_that_loses_interest_is_choked_and_waits_for_a_slot_like_any_other() {
        let now = Instant::now();
        let mut s = half_leecher_with_wanting_peers(now, 8);
        drain(&mut s);
        let first = unchoked_wanting(&s);
        assert_eq!(first.len(), 4);
        // Two unchoked peers lose interest: they are choked and their slots go to two others.
        for &k in &first[..2] {
            s.handle_message(now, PeerKey(k), Message::NotInterested).expect("not interested");
            assert!(s.peer(PeerKey(k)).expect("peer").am_choking, "peer {k} is choked");
        }
        let chokes = drain(&mut s)
            .into_iter()
            .filter(|a| matches!(a, Action::Send { peer, msg: Message::Choke } if first[..2].contains(&peer.0)))
            .count();
        assert_eq!(chokes, 2, "each is told");
        assert_eq!(unchoked_wanting(&s).len(), 4);
        // When they want our data again, the four slots are taken: they wait (before, they were
        // still unchoked and six peers shared four slots).
        for &k in &first[..2] {
            s.handle_message(now, PeerKey(k), Message::Interested).expect("interested");
        }
        assert_eq!(unchoked_wanting(&s).len(), 4);
        assert!(first[..2].iter().all(|&k| s.peer(PeerKey(k)).expect("peer").am_choking));
    }

    /// The position of the first action matching `f`.
    fn position(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
        actions.iter().position(f).unwrap_or(usize::MAX)
    }

    #[test]
    fn r_rtorrent_stall_an_unchoked_peer_is_shown_pieces_before_its_unchoke() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        // Not alone (a lone peer is shown everything).
        // rTorrent does not speak the fast extension: no `have none`, straight to the pieces.
        s.add_peer(now, PeerKey(1), false);
        another_peer(&mut s, now);
        let actions: Vec<Action> =
            drain(&mut s).into_iter().filter(|a| matches!(a, Action::Send { peer: PeerKey(1), .. })).collect();
        let first_have = position(&actions, |a| matches!(a, Action::Send { msg: Message::Have(_), .. }));
        let unchoke = position(&actions, |a| matches!(a, Action::Send { msg: Message::Unchoke, .. }));
        assert!(first_have < unchoke && unchoke != usize::MAX, "{actions:?}");
    }

    #[test]
    fn r_rtorrent_stall_a_peer_that_asked_for_everything_shown_still_has_pieces_to_ask_for() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        s.add_peer(now, PeerKey(1), false);
        another_peer(&mut s, now);
        let mut shown = revealed(&drain(&mut s), PeerKey(1));
        assert!(!shown.is_empty());
        s.handle_message(now, PeerKey(1), Message::Interested).expect("interested");
        drain(&mut s);
        // The peer asks for every block of every piece it was shown, piece by piece, as
        // rTorrent does early in a transfer on a fast link.
        let mut asked = std::collections::BTreeSet::new();
        for round in 0..4 {
            let pieces: Vec<u32> = shown.iter().copied().filter(|p| !asked.contains(p)).collect();
            for piece in pieces {
                asked.insert(piece);
                for begin in [0, 16_384] {
                    s.handle_message(now, PeerKey(1), Message::Request { index: piece, begin, length: 16_384 })
                        .expect("request");
                }
                let actions = drain(&mut s);
                let serve = position(&actions, |a| matches!(a, Action::Serve { .. }));
                let new_haves = revealed(&actions, PeerKey(1));
                let have_at = position(&actions, |a| matches!(a, Action::Send { msg: Message::Have(_), .. }));
                if !new_haves.is_empty() {
                    assert!(have_at < serve, "round {round}: the new piece is shown before the data: {actions:?}");
                }
                shown.extend(new_haves);
            }
            let unasked = shown.iter().filter(|p| !asked.contains(p)).count();
            assert!(unasked >= MIN_UNREQUESTED_REVEALS, "round {round}: only {unasked} shown pieces left to ask for");
        }
        assert!(shown.len() < 64, "the peer does not pull the whole torrent unannounced: {}", shown.len());
    }

    #[test]
    fn a_peer_choked_in_the_middle_of_a_shown_piece_may_still_finish_it() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(64), Config::default(), now);
        // Four peers are unchoked and shown pieces; each asks for the first block of one.
        let mut begun = Vec::new();
        for key in 1..=4 {
            s.add_peer(now, PeerKey(key), true);
            s.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
            s.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
        }
        let actions = drain(&mut s);
        for key in 1..=4 {
            let piece = *revealed(&actions, PeerKey(key)).first().expect("a piece shown");
            s.handle_message(now, PeerKey(key), Message::Request { index: piece, begin: 0, length: 16_384 })
                .expect("request");
            begun.push((key, piece));
        }
        // They come to hold many pieces (from each other), and eight peers with none arrive:
        // the next rechoke gives the slots to those, which have least.
        let others: Vec<u32> = (0..64).filter(|p| begun.iter().all(|&(_, b)| b != *p)).take(20).collect();
        for key in 1..=4 {
            for &piece in &others {
                s.handle_message(now, PeerKey(key), Message::Have(piece)).expect("have");
            }
        }
        for key in 5..=12 {
            s.add_peer(now, PeerKey(key), true);
            s.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
            s.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
        }
        drain(&mut s);
        s.tick(now + Duration::from_secs(11));
        let actions = drain(&mut s);
        let mut choked = 0;
        for &(key, piece) in &begun {
            let peer = PeerKey(key);
            if !actions.iter().any(|a| matches!(a, Action::Send { peer: p, msg: Message::Choke } if *p == peer)) {
                continue;
            }
            choked += 1;
            assert!(
                actions.iter().any(
                    |a| matches!(a, Action::Send { peer: p, msg: Message::AllowedFast(i) } if *p == peer && *i == piece)
                ),
                "peer {key} may fetch the rest of piece {piece} while choked: {actions:?}"
            );
            // It asks for the piece's second block while choked, and gets it.
            s.handle_message(now, peer, Message::Request { index: piece, begin: 16_384, length: 16_384 })
                .expect("request");
            let served = drain(&mut s);
            assert!(
                served
                    .iter()
                    .any(|a| matches!(a, Action::Serve { peer: p, block } if *p == peer && block.piece.get() == piece)),
                "peer {key}: {served:?}"
            );
            // Any other piece is refused while it is choked.
            let other = (0..64).find(|p| begun.iter().all(|&(_, b)| b != *p)).expect("another piece");
            s.handle_message(now, peer, Message::Request { index: other, begin: 0, length: 16_384 }).expect("request");
            let refused = drain(&mut s);
            assert!(
                refused
                    .iter()
                    .any(|a| matches!(a, Action::Send { peer: p, msg: Message::RejectRequest { .. } } if *p == peer))
            );
        }
        assert!(choked >= 3, "three of the four gave their slots up: {actions:?}");
    }

    #[test]
    fn an_initial_seed_shows_no_second_copy_while_a_first_copy_is_being_fetched() {
        let now = Instant::now();
        let layout = Layout::new(4 * 32_768, 32_768).expect("layout");
        let mut s = Swarm::new(layout, Bitfield::full(4), Config::default(), now);
        s.add_peer(now, PeerKey(1), true);
        another_peer(&mut s, now);
        s.handle_message(now, PeerKey(1), Message::HaveNone).expect("have none");
        let first = revealed(&drain(&mut s), PeerKey(1));
        assert_eq!(first.len(), 4, "every piece is new: all go to the first peer");
        s.remove_peer(PeerKey(99));
        s.handle_message(now, PeerKey(1), Message::Request { index: first[0], begin: 0, length: 16_384 })
            .expect("request");
        // A second peer comes while the first fetches: every piece left would be a second
        // copy, which would share the seed's upload with the first copy on its way.
        let soon = now + Duration::from_millis(200);
        s.add_peer(soon, PeerKey(2), true);
        s.handle_message(soon, PeerKey(2), Message::HaveNone).expect("have none");
        s.handle_message(soon, PeerKey(2), Message::Interested).expect("interested");
        let shown2 = drain(&mut s);
        assert!(revealed(&shown2, PeerKey(2)).is_empty(), "no second copy yet: {shown2:?}");
        // The first copy is out (announced) and the other pieces shown are not asked for:
        // the second peer is shown one, so it never runs dry.
        let later = now + Duration::from_millis(500);
        s.handle_message(later, PeerKey(1), Message::Have(first[0])).expect("have");
        s.tick(later + Duration::from_millis(500));
        assert_eq!(revealed(&drain(&mut s), PeerKey(2)).len(), 1);
    }

    #[test]
    fn a_seed_unchokes_its_own_number_of_peers() {
        let now = Instant::now();
        let layout = Layout::new(64 * 32_768, 32_768).expect("layout");
        let config = Config { initial_seeding: false, seed_unchoke_slots: 8, ..Config::default() };
        let mut seed = Swarm::new(layout, Bitfield::full(64), config, now);
        let mut half = half_leecher_with_wanting_peers(now, 10);
        for key in 1..=10 {
            seed.add_peer(now, PeerKey(key), true);
            seed.handle_message(now, PeerKey(key), Message::HaveNone).expect("have none");
            seed.handle_message(now, PeerKey(key), Message::Interested).expect("interested");
        }
        let unchoked = |s: &Swarm| s.peers.values().filter(|p| !p.am_choking).count();
        assert_eq!((unchoked(&seed), unchoked(&half)), (8, 4));
        drain(&mut half);
    }
}
