//! Fetching a torrent's info dictionary from peers for a magnet link (BEP 9 `ut_metadata`
//! over the BEP 10 extension protocol), before anything else about the torrent is known.
//!
//! Peers come from the caller (the link's `x.pe`, `--peer`) and then from any source (trackers,
//! the DHT) on a channel, for as long as the search runs. They go into a bounded
//! [`Candidates`] set (see `shoal_swarm::candidates`): at most [`MAX_PEERS`] addresses, the
//! caller's first and never evicted, then those that failed least. A few connections run at
//! once; each fetches the whole dictionary on its own (it is small: a 4 GiB torrent's is about
//! 40 KiB) and checks it against the info-hash before returning it, so a peer that sends a wrong
//! or oversized dictionary only costs its own connection. The first verified copy wins. Every
//! step of a connection has a timeout, and the whole attempt with one peer is bounded.
//!
//! A failed attempt is not the end of a peer. One that may do better later (it refused the
//! connection because it has not started yet, timed out, closed, or has no metadata yet) is
//! asked again after a pause that grows with each failure in a row (2, 4, 8, 16, then every
//! 32 s); one that proved it cannot help (a dictionary that fails the info-hash, an oversized
//! one, no extension protocol, another torrent, ourselves) is dropped and not taken back when a
//! source names it again. So the search runs until the metadata arrives or the caller drops the
//! future (Ctrl-C, a time limit, the user removing the torrent); it fails by itself only when
//! the sources are closed and no peer is left to ask.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::conn::PeerStream;
use bytes::{Bytes, BytesMut};
use shoal_proto::extension::{ExtHandshake, MetadataMessage, UT_METADATA, UT_PEX};
use shoal_proto::wire::decode_message;
use shoal_proto::{InfoHash, MAX_METADATA_SIZE, Message, MetadataAssembler, MetadataError, PeerId};
use shoal_swarm::{CandidateConfig, CandidateSource, Candidates};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::peer::{self, HandshakeError};

/// Our `ut_metadata` id in the extension handshakes we send.
pub(crate) const OUR_UT_METADATA: u8 = 1;
/// Our `ut_pex` id.
pub(crate) const OUR_UT_PEX: u8 = 2;
/// Name and our id of the extension that passes a group's revocation list between members
/// of SSL torrents.
pub(crate) const SHOAL_REVOCATIONS: &str = "shoal_revocations";
pub(crate) const OUR_SHOAL_REVOCATIONS: u8 = 3;
/// Our id of `shoal_wants` (a player asks an initial seed to show it pieces).
pub(crate) const OUR_SHOAL_WANTS: u8 = 4;
/// Name of the search overlay's extension (`shoal_search`): on a torrent's connections it only
/// says that the node takes part in the search overlay; the search runs on connections of its
/// own (see `shoal_search::neighbours`).
pub(crate) const SHOAL_SEARCH: &str = "shoal_search";
/// The id we would take `shoal_search` messages on; none come on a torrent's connections.
pub(crate) const OUR_SHOAL_SEARCH: u8 = 5;
/// Peers asked for the metadata at once.
const PARALLEL: usize = 6;
/// Most peer addresses held at once (and most remembered as dropped).
const MAX_PEERS: usize = 1000;
/// How often the search looks for peers whose pause is over, while some wait. The candidate
/// set does not say when its next pause ends; the shortest pause is 2 s.
const RETRY_POLL: Duration = Duration::from_millis(250);
/// Longest wait for any one message from a peer.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest time spent with one peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Metadata pieces requested from one peer at once.
const PIPELINE: usize = 8;
/// Largest message accepted while fetching metadata (a bitfield of a huge torrent, or a
/// metadata piece with its header).
const MAX_MESSAGE: u32 = 1 << 20;
/// Messages read from one peer before giving up on it.
const MAX_MESSAGES: usize = 10_000;

/// Where a metadata fetch stands, for progress lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataProgress {
    /// Peer addresses held: being asked, waiting for their turn or for another try.
    pub peers_known: usize,
    /// Peers being asked right now.
    pub asking: usize,
    /// Attempts that failed so far (a peer asked again and again counts each time).
    pub failed: usize,
    /// Peers whose last attempt failed and that will be asked again after a pause.
    pub retrying: usize,
    /// Peers never asked again: they proved they cannot provide this torrent's metadata.
    pub dropped: usize,
    /// The last failure, for the log.
    pub last_error: Option<String>,
}

/// Why one attempt with one peer failed.
#[derive(Debug)]
struct AttemptError {
    /// What happened, for the log.
    reason: String,
    /// True when asking this peer again cannot help.
    hopeless: bool,
}

impl AttemptError {
    /// A failure that may pass: the peer is asked again later.
    fn retry(reason: impl Into<String>) -> Self {
        AttemptError { reason: reason.into(), hopeless: false }
    }

    /// A failure that will not pass: the peer is dropped.
    fn hopeless(reason: impl Into<String>) -> Self {
        AttemptError { reason: reason.into(), hopeless: true }
    }
}

impl From<String> for AttemptError {
    fn from(reason: String) -> Self {
        AttemptError::retry(reason)
    }
}

impl From<&str> for AttemptError {
    fn from(reason: &str) -> Self {
        AttemptError::retry(reason)
    }
}

/// Tokio's clock, as the candidate set takes it (so a paused clock in tests moves it too).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The peers of one search and what became of them. Every address in `known` and `failing`
/// is in `candidates` (both are pruned after evictions); `dropped` is disjoint from it.
struct Search {
    candidates: Candidates,
    /// Addresses held by `candidates` (it cannot list them), to hand back at the end.
    known: HashSet<SocketAddr>,
    /// Held addresses whose last attempt failed.
    failing: HashSet<SocketAddr>,
    /// Addresses never asked again; at most [`MAX_PEERS`] are remembered.
    dropped: HashSet<SocketAddr>,
    /// Distinct addresses learned, for the final error.
    learned: usize,
    /// Attempts that failed.
    failed: usize,
    last_error: Option<String>,
}

impl Search {
    fn new() -> Self {
        Search {
            // Nobody is forgotten for failing: a full set evicts the most failed for newcomers.
            candidates: Candidates::new(CandidateConfig { max_candidates: MAX_PEERS, max_failures: u32::MAX }),
            known: HashSet::new(),
            failing: HashSet::new(),
            dropped: HashSet::new(),
            learned: 0,
            failed: 0,
            last_error: None,
        }
    }

    /// Takes in addresses from `source`.
    fn learn(&mut self, addrs: Vec<SocketAddr>, source: CandidateSource) {
        let now = now();
        let mut evicted = false;
        for addr in addrs {
            if self.dropped.contains(&addr) {
                continue;
            }
            let full = self.candidates.len() >= MAX_PEERS;
            if self.candidates.insert(now, addr, source) {
                evicted |= full;
                if self.known.insert(addr) {
                    self.learned += 1;
                }
            }
        }
        if evicted {
            let candidates = &self.candidates;
            self.known.retain(|a| candidates.contains(a));
            self.failing.retain(|a| candidates.contains(a));
        }
    }

    /// The next address to ask, if one is ready.
    fn next(&mut self) -> Option<SocketAddr> {
        let addr = self.candidates.next(now(), |_| false)?;
        self.failing.remove(&addr);
        Some(addr)
    }

    /// An attempt with `addr` failed.
    fn failed(&mut self, addr: SocketAddr, e: AttemptError) {
        tracing::debug!(%addr, hopeless = e.hopeless, "no metadata from peer: {}", e.reason);
        self.failed += 1;
        self.last_error = Some(format!("{addr}: {}", e.reason));
        if e.hopeless {
            self.candidates.remove(addr);
            self.known.remove(&addr);
            if self.dropped.len() < MAX_PEERS {
                self.dropped.insert(addr);
            }
        } else {
            self.candidates.failed(now(), addr);
            self.failing.insert(addr);
        }
    }

    fn progress(&self, asking: usize) -> MetadataProgress {
        MetadataProgress {
            peers_known: self.candidates.len(),
            asking,
            failed: self.failed,
            retrying: self.failing.len(),
            dropped: self.dropped.len(),
            last_error: self.last_error.clone(),
        }
    }

    /// Why the search ended without the metadata.
    fn give_up(&self) -> String {
        match (self.learned, &self.last_error) {
            (0, _) => "no peers found".to_string(),
            (n, Some(e)) => format!("none of {n} peers sent the metadata (last: {e})"),
            (n, None) => format!("none of {n} peers sent the metadata"),
        }
    }
}

/// Fetches the info dictionary of `info_hash` (checked against the SHA-256 `v2_hash` of a
/// v2-only torrent when there is one, and then fetched with its piece layers) from `peers` (the caller's, asked first and
/// never evicted) and the peers that arrive on `sources`. Returns the verified dictionary and
/// the peer addresses still held (to start the download with). Runs until the metadata
/// arrives; fails only when `sources` is closed and no peer is left to ask (none was ever
/// known, or every one was dropped). See the module doc for retries.
pub(crate) async fn fetch_metadata(
    (info_hash, v2_hash): (InfoHash, Option<[u8; 32]>),
    peer_id: PeerId,
    listen_port: u16,
    dialer: peer::Dialer,
    peers: Vec<SocketAddr>,
    mut sources: mpsc::UnboundedReceiver<Vec<SocketAddr>>,
    progress: watch::Sender<MetadataProgress>,
) -> Result<(Bytes, Vec<SocketAddr>), String> {
    let mut search = Search::new();
    search.learn(peers, CandidateSource::Manual);
    let mut tasks: JoinSet<Result<Bytes, AttemptError>> = JoinSet::new();
    // The peer each task asks; an entry goes when its task ends.
    let mut asking: HashMap<tokio::task::Id, SocketAddr> = HashMap::new();
    let mut sources_open = true;
    loop {
        while tasks.len() < PARALLEL
            && let Some(addr) = search.next()
        {
            let dialer = dialer.clone();
            let task = tasks.spawn(async move {
                let attempt = fetch_from(addr, info_hash, v2_hash, peer_id, listen_port, &dialer);
                match tokio::time::timeout(PEER_TIMEOUT, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(AttemptError::retry("took too long")),
                }
            });
            asking.insert(task.id(), addr);
        }
        let current = search.progress(tasks.len());
        progress.send_if_modified(|p| {
            let changed = *p != current;
            *p = current;
            changed
        });
        if tasks.is_empty() && !sources_open && search.candidates.is_empty() {
            return Err(search.give_up());
        }
        // With room for another attempt, held peers not being asked are waiting for their
        // pause to end.
        let waiting = tasks.len() < PARALLEL && search.candidates.len() > tasks.len();
        tokio::select! {
            more = sources.recv(), if sources_open => match more {
                Some(addrs) => search.learn(addrs, CandidateSource::Discovery),
                None => sources_open = false,
            },
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, result) = match done {
                    Ok((id, result)) => (id, result),
                    Err(e) => (e.id(), Err(AttemptError::retry(format!("the attempt failed: {e}")))),
                };
                let Some(addr) = asking.remove(&id) else { continue };
                match result {
                    Ok(info) => return Ok((info, search.known.into_iter().collect())),
                    Err(e) => search.failed(addr, e),
                }
            }
            () = tokio::time::sleep(RETRY_POLL), if waiting => {}
        }
    }
}

/// Fetches and verifies the whole dictionary from one peer; for a v2-only torrent, then its
/// piece layers, and returns a whole `.torrent` (info dictionary and piece layers).
async fn fetch_from(
    addr: SocketAddr,
    info_hash: InfoHash,
    v2_hash: Option<[u8; 32]>,
    peer_id: PeerId,
    listen_port: u16,
    dialer: &peer::Dialer,
) -> Result<Bytes, AttemptError> {
    let (mut stream, theirs) =
        peer::connect(addr, info_hash, peer_id, false, None, dialer, &|_| {}).await.map_err(|e| match e {
            HandshakeError::WrongTorrent | HandshakeError::SelfConnection => AttemptError::hopeless(e.to_string()),
            e => AttemptError::retry(e.to_string()),
        })?;
    if theirs.reserved[5] & 0x10 == 0 {
        return Err(AttemptError::hopeless("the peer does not support extension messages (BEP 10)"));
    }
    let mut out = BytesMut::new();
    if theirs.reserved[7] & 0x04 != 0 {
        // BEP 6: with the fast extension on both sides the first message states our pieces.
        Message::HaveNone.encode(&mut out);
    }
    let hello = ExtHandshake {
        m: [(UT_METADATA.to_string(), OUR_UT_METADATA), (UT_PEX.to_string(), OUR_UT_PEX)].into_iter().collect(),
        v: Some(concat!("Shoal ", env!("CARGO_PKG_VERSION")).to_string()),
        p: Some(listen_port),
        ..Default::default()
    };
    Message::Extended { id: 0, payload: hello.encode().into() }.encode(&mut out);
    send(&mut stream, &out).await?;

    // Data that breaks the protocol or fails the info-hash: this peer will not do better.
    let bad = |e: MetadataError| AttemptError::hopeless(e.to_string());
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let mut their_id = None;
    let mut assembler: Option<MetadataAssembler> = None;
    let mut in_flight = 0usize;
    for _ in 0..MAX_MESSAGES {
        let msg = read_message(&mut stream, &mut buf).await?;
        let Message::Extended { id, payload } = msg else {
            continue;
        };
        if id == 0 {
            let ext = ExtHandshake::decode(&payload)
                .map_err(|e| AttemptError::hopeless(format!("bad extension handshake: {e}")))?;
            // A peer without the metadata yet (another magnet download) may have it later.
            let id = ext.id_of(UT_METADATA).ok_or("the peer does not serve metadata (no ut_metadata)")?;
            let size = ext.metadata_size.ok_or("the peer did not say how large the metadata is")?;
            if size > MAX_METADATA_SIZE {
                return Err(AttemptError::hopeless(format!(
                    "the peer announced {size} bytes of metadata, over the {MAX_METADATA_SIZE} limit"
                )));
            }
            let asm = MetadataAssembler::new(info_hash, size).map_err(bad)?;
            assembler = Some(match v2_hash {
                Some(v2) => asm.with_v2(v2),
                None => asm,
            });
            their_id = Some(id);
        } else if id == OUR_UT_METADATA {
            let Some(asm) = assembler.as_mut() else {
                return Err(AttemptError::hopeless("metadata arrived before the extension handshake"));
            };
            let msg = MetadataMessage::decode(&payload)
                .map_err(|e| AttemptError::hopeless(format!("bad metadata message: {e}")))?;
            match msg {
                MetadataMessage::Data { piece, total_size, data } => {
                    in_flight = in_flight.saturating_sub(1);
                    if let Some(info) = asm.on_data(piece, total_size, &data).map_err(bad)? {
                        if v2_hash.is_some() {
                            return fetch_layers(&mut stream, &mut buf, &info).await;
                        }
                        return Ok(Bytes::from(info));
                    }
                }
                MetadataMessage::Reject { piece } => {
                    return Err(AttemptError::retry(format!("the peer refused metadata piece {piece}")));
                }
                MetadataMessage::Request { .. } | MetadataMessage::Unknown { .. } => {}
            }
        } else {
            continue;
        }
        // Keep a few piece requests outstanding.
        if let (Some(asm), Some(their_id)) = (assembler.as_mut(), their_id) {
            let mut out = BytesMut::new();
            while in_flight < PIPELINE
                && let Some(piece) = asm.request_next()
            {
                let payload = MetadataMessage::Request { piece }.encode();
                Message::Extended { id: their_id, payload: payload.into() }.encode(&mut out);
                in_flight += 1;
            }
            if !out.is_empty() {
                send(&mut stream, &out).await?;
            }
        }
    }
    Err(AttemptError::retry(format!("no metadata after {MAX_MESSAGES} messages")))
}

/// The piece layers of a v2-only torrent's files larger than a piece, asked of the peer that
/// sent its info dictionary with BEP 52 `hash request`s (at most 512 hashes each, with the
/// proof up to the file's root, which the dictionary names): returns the info dictionary and
/// its layers as a `.torrent`. A layer that does not add up to its root was forged.
async fn fetch_layers(stream: &mut PeerStream, buf: &mut BytesMut, info: &[u8]) -> Result<Bytes, AttemptError> {
    use shoal_proto::merkle::{HashMessage, HashRequest, MAX_COUNT, verify};
    use shoal_proto::metainfo::v2::{self, BLOCK};
    let t = v2::parse_info(info)
        .map_err(|e| AttemptError::hopeless(format!("the metadata is not a valid v2 info dictionary: {e}")))?;
    let piece_layer = (t.piece_length / BLOCK as u64).trailing_zeros();
    let mut layers = Vec::new();
    let mut messages = 0usize;
    for file in t.files.iter().filter(|f| f.length > t.piece_length) {
        let Some(root) = file.pieces_root else { continue };
        let leaves = file.length.div_ceil(BLOCK as u64).next_power_of_two();
        let height = leaves.trailing_zeros();
        let pieces = file.length.div_ceil(t.piece_length);
        let mut layer = Vec::with_capacity(pieces as usize);
        while (layer.len() as u64) < pieces {
            let index = layer.len() as u64;
            let count = (pieces - index).next_power_of_two().clamp(2, u64::from(MAX_COUNT)) as u32;
            let req = HashRequest {
                root,
                base: piece_layer,
                index: index as u32,
                count,
                proof_layers: height - piece_layer - 1,
            };
            let mut out = BytesMut::new();
            HashMessage::Request(req).to_message().encode(&mut out);
            send(stream, &out).await?;
            let hashes = loop {
                messages += 1;
                if messages > MAX_MESSAGES {
                    return Err(AttemptError::retry("no piece layers after many messages"));
                }
                let Message::Unknown { id: id @ 22..=23, payload } = read_message(stream, buf).await? else { continue };
                match HashMessage::decode(id, &payload) {
                    Ok(HashMessage::Hashes(r, hashes)) if r == req => break hashes,
                    Ok(HashMessage::Reject(r)) if r == req => {
                        return Err(AttemptError::retry(format!(
                            "the peer would not send the piece layer of {}",
                            file.path.join("/")
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(AttemptError::hopeless(format!("bad hash message: {e}"))),
                }
            };
            let good = verify(&req, &hashes, |l, i| (l == height && i == 0).then_some(root))
                .map_err(|e| AttemptError::hopeless(format!("forged piece layer of {}: {e}", file.path.join("/"))))?;
            layer.extend(good.into_iter().take((pieces - index) as usize));
        }
        layers.push((root, layer));
    }
    Ok(Bytes::from(v2::torrent_with_layers(info, &layers)))
}

async fn send(stream: &mut PeerStream, bytes: &[u8]) -> Result<(), AttemptError> {
    match tokio::time::timeout(READ_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AttemptError::retry(format!("send failed: {e}"))),
        Err(_) => Err(AttemptError::retry("send timed out")),
    }
}

async fn read_message(stream: &mut PeerStream, buf: &mut BytesMut) -> Result<Message, AttemptError> {
    loop {
        let decoded =
            decode_message(buf, MAX_MESSAGE).map_err(|e| AttemptError::hopeless(format!("protocol error: {e}")))?;
        if let Some(msg) = decoded {
            return Ok(msg);
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout(READ_TIMEOUT, stream.read_buf(buf)).await {
            Err(_) => return Err(AttemptError::retry("the peer went silent")),
            Ok(Err(e)) => return Err(AttemptError::retry(format!("receive failed: {e}"))),
            Ok(Ok(0)) => return Err(AttemptError::retry("closed by the peer")),
            Ok(Ok(_)) => {}
        }
    }
}
