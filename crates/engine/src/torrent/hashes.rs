//! The BitTorrent v2 hash exchange of a v2-only torrent (BEP 52; messages and proofs in
//! `shoal_proto::merkle`).
//!
//! Serving: a `hash request` for the piece layer or above is answered from the torrent's piece
//! layers (the tree above them is built once, when the torrent starts); one for the leaves
//! (block hashes) reads the pieces it covers from disk, only pieces we have, on a blocking
//! thread, at most [`LEAF_JOBS`] at once in the whole process, each holding one piece at a time
//! (more are rejected, and the peer may ask
//! again). Every answer carries the proof the request asked for.
//!
//! Blame: a piece that fails its check is held (`Swarm::hold_failed`) and the block hashes of the piece are asked of a peer that has it,
//! with no uncle: they must add up to the piece's own trusted hash (peers that sent none of the
//! piece are asked first, but even the sender's own hashes are checked, so a liar cannot
//! blame another: its hashes either add up or it is banned for them). Comparing them with the
//! hashes of the blocks received names each bad block and the peer that sent it: that peer is
//! banned, only the bad blocks are fetched again, and nothing of the piece is marked verified
//! until the whole piece checks out. Hashes that do not add up (a forged proof) ban their
//! sender and the next peer is asked; after [`BLAME_TRIES`] peers, or with none to ask, the
//! piece is fetched again whole as after any failed check.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shoal_proto::PieceIndex;
use shoal_proto::merkle::{HashMessage, HashRequest, Levels, prove, verify};
use shoal_proto::metainfo::v2::{BLOCK, Hash, V2Check};
use shoal_storage::Storage;
use shoal_swarm::PeerKey;

use super::Actor;
use crate::peer::Outgoing;

/// Block-hash answers computed at once, all torrents together (each reads the pieces it covers
/// one at a time), so peers asking every torrent at once cost bounded memory and disk.
const LEAF_JOBS: usize = 4;
/// Block-hash answers being computed now.
static LEAF_JOBS_RUNNING: AtomicUsize = AtomicUsize::new(0);
/// How long a peer has to answer a request for a failed piece's block hashes.
const BLAME_WAIT: Duration = Duration::from_secs(10);
/// Peers asked for one failed piece's block hashes before it is fetched again whole.
const BLAME_TRIES: usize = 3;

/// One file's tree, as far as the torrent knows it without reading data.
#[derive(Debug)]
struct FileTree {
    first_piece: u32,
    pieces: u32,
    /// Leaves of the tree (a power of two).
    leaves: u64,
    /// The tree from the piece layer up (from the root alone for a file of one piece).
    levels: Levels,
}

/// A failed piece whose bad blocks are being found.
#[derive(Debug)]
struct Blame {
    req: HashRequest,
    /// Hashes of the blocks received, in block order.
    received: Vec<Hash>,
    /// The peer each block came from.
    senders: Vec<PeerKey>,
    /// Peers asked so far; the last one is being waited for, since `asked_at`.
    asked: Vec<PeerKey>,
    asked_at: Instant,
}

/// The hash exchange state of a v2-only torrent.
#[derive(Debug)]
pub(super) struct V2Hashes {
    /// The Merkle root of each piece (a hybrid's pieces are checked by SHA-1, but its peers on
    /// the v2 side may ask for these).
    checks: Arc<[V2Check]>,
    files: HashMap<Hash, Arc<FileTree>>,
    /// Each file's first piece and root, by first piece.
    starts: Vec<(u32, Hash)>,
    blames: HashMap<PieceIndex, Blame>,
}

impl V2Hashes {
    /// The trees of a v2-only or hybrid torrent's files, from the root of each of its pieces.
    pub(super) fn new(storage: &Storage, checks: Arc<[V2Check]>) -> Option<Self> {
        let layout = storage.layout();
        let geometry = layout.geometry();
        let piece_length = u64::from(geometry.piece_length());
        let piece_layer = (piece_length / BLOCK as u64).trailing_zeros();
        if checks.len() != geometry.piece_count() as usize {
            return None;
        }
        let mut files = HashMap::new();
        let mut starts = Vec::new();
        for (i, spec) in layout.files().iter().enumerate() {
            if spec.padding || spec.length == 0 {
                continue;
            }
            let first_piece = (layout.file_offset(i) / piece_length) as u32;
            let pieces = spec.length.div_ceil(piece_length) as u32;
            let leaves = spec.length.div_ceil(BLOCK as u64).next_power_of_two();
            let check = |k: u32| checks.get((first_piece + k) as usize).map(|c| c.root);
            let levels = if pieces > 1 {
                let roots: Option<Vec<Hash>> = (0..pieces).map(check).collect();
                Levels::build(roots?, piece_layer, leaves >> piece_layer)
            } else {
                Levels::build(vec![check(0)?], leaves.trailing_zeros(), 1)
            };
            let root = levels.root();
            starts.push((first_piece, root));
            files.insert(root, Arc::new(FileTree { first_piece, pieces, leaves, levels }));
        }
        starts.sort();
        Some(Self { checks, files, starts, blames: HashMap::new() })
    }

    /// The file holding `piece`, and its tree.
    fn file_of(&self, piece: PieceIndex) -> Option<(Hash, &Arc<FileTree>)> {
        let at = self.starts.partition_point(|(first, _)| *first <= piece.get()).checked_sub(1)?;
        let root = self.starts[at].1;
        let tree = self.files.get(&root)?;
        (piece.get() < tree.first_piece + tree.pieces).then_some((root, tree))
    }
}

impl Actor {
    /// A BEP 52 hash message (id 21–23) from a peer.
    pub(super) fn on_hash_message(&mut self, key: PeerKey, id: u8, payload: &[u8]) {
        let msg = match HashMessage::decode(id, payload) {
            Ok(msg) => msg,
            Err(e) => return self.drop_violator(key, &e.to_string()),
        };
        if self.v2.is_none() {
            if let HashMessage::Request(req) = msg {
                self.send(key, HashMessage::Reject(req).to_message());
            }
            return;
        }
        match msg {
            HashMessage::Request(req) => self.serve_hashes(key, req),
            HashMessage::Hashes(req, hashes) => self.on_hashes(key, req, &hashes),
            HashMessage::Reject(req) => {
                let piece = self.blame_for(key, &req);
                if let Some(piece) = piece {
                    tracing::debug!(piece = piece.get(), "a peer would not send a failed piece's block hashes");
                    self.ask_for_blame(piece);
                }
            }
        }
    }

    /// Answers a hash request from the piece layers, or from the data of pieces we have.
    fn serve_hashes(&mut self, key: PeerKey, req: HashRequest) {
        let Some(v2) = &self.v2 else { return };
        let reject = HashMessage::Reject(req).to_message();
        let Some(tree) = v2.files.get(&req.root).cloned() else { return self.send(key, reject) };
        if req.check(tree.leaves).is_err() {
            return self.send(key, reject);
        }
        if req.base >= tree.levels.bottom() {
            return match prove(&req, |layer, i| tree.levels.node(layer, i)) {
                Some(hashes) => self.send(key, HashMessage::Hashes(req, hashes).to_message()),
                None => self.send(key, reject),
            };
        }
        // Block hashes: the pieces covering the span (whole pieces, so the uncles inside a piece
        // can be computed too), all of them verified here.
        let per_piece = 1u64 << tree.levels.bottom();
        let span = u64::from(req.count) << req.base;
        let first_leaf = (u64::from(req.index) << req.base) / per_piece * per_piece;
        let end_leaf = (first_leaf + span.max(per_piece)).min(tree.leaves);
        let end_piece = end_leaf.div_ceil(per_piece).min(u64::from(tree.pieces)) as u32;
        let pieces: Vec<PieceIndex> = ((first_leaf / per_piece) as u32..end_piece)
            .map(|k| PieceIndex::new_unchecked(tree.first_piece + k))
            .collect();
        let have = self.swarm.have();
        let (Some(link), true) = (self.links.get(&key), pieces.iter().all(|&p| have.get(p))) else {
            return self.send(key, reject);
        };
        let jobs = &LEAF_JOBS_RUNNING;
        if jobs.fetch_add(1, Ordering::AcqRel) >= LEAF_JOBS {
            jobs.fetch_sub(1, Ordering::AcqRel);
            return self.send(key, reject);
        }
        let (tx, storage, checks) = (link.tx.clone(), self.storage.clone(), v2.checks.clone());
        tokio::task::spawn_blocking(move || {
            let answer = leaf_answer(&storage, &checks, &tree, &req, &pieces, first_leaf);
            jobs.fetch_sub(1, Ordering::AcqRel);
            let msg = match answer {
                Some(hashes) => HashMessage::Hashes(req, hashes),
                None => HashMessage::Reject(req),
            };
            // A full queue drops the answer; the peer asks again or another peer.
            let _ = tx.try_send(Outgoing::Msg(msg.to_message()));
        });
    }

    /// A v2 piece failed its check; `leaves` are the hashes of the blocks received. Returns
    /// false when the failure is to be handled the ordinary way (the driver then reports it).
    pub(super) fn blame_failed_piece(&mut self, piece: PieceIndex, leaves: Vec<Hash>) -> bool {
        let Some(v2) = &self.v2 else { return false };
        let Some(check) = self.storage.layout().v2_check(piece) else { return false };
        let Some((root, tree)) = v2.file_of(piece) else { return false };
        if check.width < 2 || v2.blames.contains_key(&piece) {
            return false;
        }
        let req = HashRequest {
            root,
            base: 0,
            index: (piece.get() - tree.first_piece) * check.width,
            count: check.width,
            proof_layers: check.width.trailing_zeros() - 1,
        };
        let Some(senders) = self.swarm.hold_failed(piece) else { return false };
        let blame = Blame { req, received: leaves, senders, asked: Vec::new(), asked_at: Instant::now() };
        if let Some(v2) = &mut self.v2 {
            v2.blames.insert(piece, blame);
        }
        self.ask_for_blame(piece);
        true
    }

    /// Asks the next peer that has `piece` for its block hashes, or gives the piece up to an
    /// ordinary refetch.
    fn ask_for_blame(&mut self, piece: PieceIndex) {
        let Some(blame) = self.v2.as_ref().and_then(|v2| v2.blames.get(&piece)) else { return };
        let tried = blame.asked.len();
        // Peers that sent none of the piece first: a liar may not answer honestly about itself.
        let mut candidates: Vec<PeerKey> =
            self.links.keys().copied().filter(|k| !blame.asked.contains(k) && self.swarm.peer_has(*k, piece)).collect();
        candidates.sort_by_key(|k| (blame.senders.contains(k), k.0));
        let req = blame.req;
        let Some(&next) = candidates.first().filter(|_| tried < BLAME_TRIES) else {
            tracing::info!(
                piece = piece.get(),
                "no peer sent the failed piece's block hashes; fetching it again whole"
            );
            if let Some(v2) = &mut self.v2 {
                v2.blames.remove(&piece);
            }
            self.swarm.release_held(piece);
            return;
        };
        if let Some(blame) = self.v2.as_mut().and_then(|v2| v2.blames.get_mut(&piece)) {
            blame.asked.push(next);
            blame.asked_at = Instant::now();
        }
        self.send(next, HashMessage::Request(req).to_message());
    }

    /// The failed piece `key` was asked about with `req`, if any: the request names it (its
    /// file's root, and a span of one piece's blocks), so no search is needed.
    fn blame_for(&self, key: PeerKey, req: &HashRequest) -> Option<PieceIndex> {
        let v2 = self.v2.as_ref()?;
        let tree = v2.files.get(&req.root)?;
        let piece = PieceIndex::new_unchecked(tree.first_piece.checked_add(req.index / req.count.max(1))?);
        let blame = v2.blames.get(&piece)?;
        (blame.req == *req && blame.asked.last() == Some(&key)).then_some(piece)
    }

    /// Block hashes for a failed piece: checked against the piece's hash, then compared with
    /// what was received.
    fn on_hashes(&mut self, key: PeerKey, req: HashRequest, hashes: &[Hash]) {
        let Some(piece) = self.blame_for(key, &req) else {
            tracing::debug!("ignoring hashes nobody asked for");
            return;
        };
        let Some(check) = self.storage.layout().v2_check(piece) else { return };
        let top = check.width.trailing_zeros();
        let slot = u64::from(req.index / check.width);
        let good = match verify(&req, hashes, |layer, i| (layer == top && i == slot).then_some(check.root)) {
            Ok(good) => good,
            Err(e) => {
                let (addr, listen) = self.addresses(key);
                tracing::warn!(
                    ?addr,
                    ?listen,
                    piece = piece.get(),
                    "banning a peer that sent forged block hashes: {e}"
                );
                self.swarm.ban(key, "sent block hashes that do not add up to the torrent's (a forged Merkle proof)");
                self.dispatch();
                return self.ask_for_blame(piece);
            }
        };
        let Some(blame) = self.v2.as_mut().and_then(|v2| v2.blames.remove(&piece)) else { return };
        let data_blocks = (check.data as usize).div_ceil(BLOCK).min(blame.senders.len());
        let bad: Vec<u32> =
            (0..data_blocks).filter(|&b| blame.received.get(b) != good.get(b)).map(|b| b as u32).collect();
        let mut liars: Vec<PeerKey> = bad.iter().map(|&b| blame.senders[b as usize]).collect();
        liars.sort_by_key(|k| k.0);
        liars.dedup();
        for &b in &bad {
            let (from, listen) = self.addresses(blame.senders[b as usize]);
            tracing::warn!(
                piece = piece.get(),
                block = b,
                ?from,
                ?listen,
                "block does not match its BitTorrent v2 block hash; banning its sender and fetching the block again"
            );
        }
        self.swarm.reopen_blocks(piece, &bad, &liars);
    }

    /// Gives up on peers that did not answer a blame request in time.
    pub(super) fn tick_blames(&mut self, now: Instant) {
        let Some(v2) = &self.v2 else { return };
        let late: Vec<PieceIndex> = v2
            .blames
            .iter()
            .filter(|(_, b)| {
                now.duration_since(b.asked_at) > BLAME_WAIT
                    || b.asked.last().is_none_or(|k| !self.links.contains_key(k))
            })
            .map(|(p, _)| *p)
            .collect();
        for piece in late {
            self.ask_for_blame(piece);
        }
    }
}

/// The answer to a block-hash request: the leaves of `pieces` read from disk (zeros past each
/// file's end), the tree over them, and the file's levels above.
fn leaf_answer(
    storage: &Storage,
    checks: &[V2Check],
    tree: &FileTree,
    req: &HashRequest,
    pieces: &[PieceIndex],
    first_leaf: u64,
) -> Option<Vec<Hash>> {
    let per_piece = 1usize << tree.levels.bottom();
    let mut leaves = Vec::with_capacity(pieces.len() * per_piece);
    for &piece in pieces {
        let mut l = storage.piece_leaves(piece, checks.get(piece.idx())?.data).ok()?;
        if pieces.len() > 1 || tree.pieces > 1 {
            l.resize(per_piece, [0u8; 32]);
        }
        leaves.extend(l);
    }
    let width = leaves.len().next_power_of_two() as u64;
    let local = Levels::build(leaves, 0, width);
    let local_top = width.trailing_zeros();
    prove(req, |layer, i| {
        let offset = first_leaf >> layer;
        if layer <= local_top && i >= offset && i - offset < (width >> layer) {
            local.node(layer, i - offset)
        } else {
            tree.levels.node(layer, i)
        }
    })
}
