//! Fetching a torrent's info dictionary from peers for a magnet link (BEP 9 `ut_metadata`
//! over the BEP 10 extension protocol), before anything else about the torrent is known.
//!
//! Peers arrive from any source (the link's `x.pe`, trackers, the DHT) on a channel. A few
//! connections run at once; each fetches the whole dictionary on its own (it is small: a 4 GiB
//! torrent's is about 40 KiB) and checks it against the info-hash before returning it, so a
//! peer that sends a wrong or oversized dictionary only costs its own connection. The first
//! verified copy wins. Every step of a connection has a timeout, and the whole attempt with one
//! peer is bounded.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_proto::extension::{ExtHandshake, MetadataMessage, UT_METADATA, UT_PEX};
use shoal_proto::wire::decode_message;
use shoal_proto::{InfoHash, MAX_METADATA_SIZE, Message, MetadataAssembler, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::peer;

/// Our `ut_metadata` id in the extension handshakes we send.
pub(crate) const OUR_UT_METADATA: u8 = 1;
/// Our `ut_pex` id.
pub(crate) const OUR_UT_PEX: u8 = 2;
/// Peers asked for the metadata at once.
const PARALLEL: usize = 6;
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
    /// Peer addresses known so far.
    pub peers_known: usize,
    /// Peers being asked right now.
    pub asking: usize,
    /// Peers that failed to provide it.
    pub failed: usize,
    /// The last failure, for the log.
    pub last_error: Option<String>,
}

/// Fetches the info dictionary of `info_hash` from the peers that arrive on `sources`. Returns
/// the verified dictionary and every peer address seen (to start the download with). Fails
/// when `sources` is closed and every known peer failed.
pub async fn fetch_metadata(
    info_hash: InfoHash,
    peer_id: PeerId,
    listen_port: u16,
    mut sources: mpsc::UnboundedReceiver<Vec<SocketAddr>>,
    progress: watch::Sender<MetadataProgress>,
) -> Result<(Bytes, Vec<SocketAddr>), String> {
    let mut known: Vec<SocketAddr> = Vec::new();
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut queue: VecDeque<SocketAddr> = VecDeque::new();
    let mut tasks: JoinSet<(SocketAddr, Result<Bytes, String>)> = JoinSet::new();
    let mut sources_open = true;
    loop {
        while tasks.len() < PARALLEL
            && let Some(addr) = queue.pop_front()
        {
            tasks.spawn(async move {
                let result =
                    match tokio::time::timeout(PEER_TIMEOUT, fetch_from(addr, info_hash, peer_id, listen_port)).await {
                        Ok(r) => r,
                        Err(_) => Err("took too long".to_string()),
                    };
                (addr, result)
            });
        }
        progress.send_modify(|p| {
            p.peers_known = known.len();
            p.asking = tasks.len();
        });
        if tasks.is_empty() && !sources_open {
            let last = progress.borrow().last_error.clone();
            return Err(match (known.len(), last) {
                (0, _) => "no peers found".to_string(),
                (n, Some(e)) => format!("none of {n} peers sent the metadata (last: {e})"),
                (n, None) => format!("none of {n} peers sent the metadata"),
            });
        }
        tokio::select! {
            more = sources.recv(), if sources_open => match more {
                Some(addrs) => {
                    for addr in addrs {
                        if addr.port() != 0 && seen.insert(addr) {
                            known.push(addr);
                            queue.push_back(addr);
                        }
                    }
                }
                None => sources_open = false,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                Ok((_, Ok(info))) => return Ok((info, known)),
                Ok((addr, Err(e))) => {
                    tracing::debug!(%addr, "no metadata from peer: {e}");
                    progress.send_modify(|p| {
                        p.failed += 1;
                        p.last_error = Some(format!("{addr}: {e}"));
                    });
                }
                Err(e) => tracing::warn!("metadata task failed: {e}"),
            },
        }
    }
}

/// Fetches and verifies the whole dictionary from one peer.
async fn fetch_from(addr: SocketAddr, info_hash: InfoHash, peer_id: PeerId, listen_port: u16) -> Result<Bytes, String> {
    let (mut stream, theirs) = peer::connect(addr, info_hash, peer_id, false).await.map_err(|e| e.to_string())?;
    if theirs.reserved[5] & 0x10 == 0 {
        return Err("the peer does not support extension messages (BEP 10)".into());
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
            let ext = ExtHandshake::decode(&payload).map_err(|e| format!("bad extension handshake: {e}"))?;
            let id = ext.id_of(UT_METADATA).ok_or("the peer does not serve metadata (no ut_metadata)")?;
            let size = ext.metadata_size.ok_or("the peer did not say how large the metadata is")?;
            if size > MAX_METADATA_SIZE {
                return Err(format!("the peer announced {size} bytes of metadata, over the {MAX_METADATA_SIZE} limit"));
            }
            assembler = Some(MetadataAssembler::new(info_hash, size).map_err(|e| e.to_string())?);
            their_id = Some(id);
        } else if id == OUR_UT_METADATA {
            let Some(asm) = assembler.as_mut() else {
                return Err("metadata arrived before the extension handshake".into());
            };
            match MetadataMessage::decode(&payload).map_err(|e| format!("bad metadata message: {e}"))? {
                MetadataMessage::Data { piece, total_size, data } => {
                    in_flight = in_flight.saturating_sub(1);
                    if let Some(info) = asm.on_data(piece, total_size, &data).map_err(|e| e.to_string())? {
                        return Ok(Bytes::from(info));
                    }
                }
                MetadataMessage::Reject { piece } => return Err(format!("the peer refused metadata piece {piece}")),
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
    Err(format!("no metadata after {MAX_MESSAGES} messages"))
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(READ_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("send failed: {e}")),
        Err(_) => Err("send timed out".into()),
    }
}

async fn read_message(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Message, String> {
    loop {
        if let Some(msg) = decode_message(buf, MAX_MESSAGE).map_err(|e| format!("protocol error: {e}"))? {
            return Ok(msg);
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout(READ_TIMEOUT, stream.read_buf(buf)).await {
            Err(_) => return Err("the peer went silent".into()),
            Ok(Err(e)) => return Err(format!("receive failed: {e}")),
            Ok(Ok(0)) => return Err("closed by the peer".into()),
            Ok(Ok(_)) => {}
        }
    }
}
