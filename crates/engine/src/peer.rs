//! One TCP connection to a peer (BEP 3 wire protocol): the handshake, then a reader task that
//! decodes messages into the torrent's inbox and a writer task that encodes outgoing messages,
//! reading `piece` payloads straight from storage into the send buffer.
//!
//! Memory per connection is bounded: the receive buffer holds at most one message (the length
//! limit is checked before the payload is buffered) and the outgoing queue is a bounded channel;
//! when it is full, requests to serve are dropped (the peer will ask again or time out) and
//! control messages close the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use shoal_proto::wire::{WireError, decode_message};
use shoal_proto::{BlockRange, Handshake, InfoHash, Message, PeerId};
use shoal_storage::Storage;
use shoal_swarm::PeerKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::conn::{PeerStream, ReadHalf, WriteHalf};
use crate::rate_limit::Caps;

mod buffers;
pub(crate) use buffers::ReadBuffers;

/// The rate caps a connection obeys: its torrent's and the session's.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) upload: Caps,
    pub(crate) download: Caps,
}

/// Longest time to wait for a TCP connect or a handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection silent for this long is closed (peers send keep-alives every two minutes).
const READ_TIMEOUT: Duration = Duration::from_secs(180);
/// We send a keep-alive after this much silence.
const KEEPALIVE: Duration = Duration::from_secs(90);
/// Messages queued for one peer before back-pressure applies.
pub(crate) const OUT_QUEUE: usize = 4096;
/// Bytes gathered before the writer flushes to the socket.
const WRITE_BATCH: usize = 256 * 1024;
/// Room a reader leaves free after each read: enough for the rest of a `piece` message of a
/// 16 KiB block.
const READ_MARGIN: usize = 16 * 1024 + 13;
/// The least room a reader reads into; below it, it moves on to another buffer.
const MIN_READ: usize = 32 * 1024;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// Socket error or timeout.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer spoke something else.
    #[error("bad handshake: {0}")]
    Wire(#[from] WireError),
    /// The peer closed the connection after our plain handshake without sending its own: peers
    /// that require protocol encryption do this.
    #[error(
        "the peer closed the connection at the handshake (it may require protocol encryption, which --encryption \
         off does not speak)"
    )]
    ClosedAtHandshake,
    /// The peer closed the connection at the handshake both with protocol encryption and
    /// without.
    #[error("the peer closed the connection at the handshake, with protocol encryption and without")]
    ClosedBothWays,
    /// The protocol encryption handshake failed, or the policies do not meet.
    #[error("protocol encryption: {0}")]
    Encryption(String),
    /// Nothing answered over TCP, and uTP is off.
    #[error("{0} (the peer may take uTP only, which --utp off does not dial)")]
    TcpOnly(String),
    /// The peer is serving another torrent.
    #[error("peer answered for another torrent")]
    WrongTorrent,
    /// We connected to ourselves.
    #[error("connected to ourselves")]
    SelfConnection,
    /// Took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The TLS handshake of an SSL torrent failed (no certificate, another authority, a
    /// revoked member, a wrong SNI...).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// A plain connection asked for an SSL torrent, or a TLS one for a torrent without TLS.
    #[error("{0}")]
    Refused(&'static str),
}

/// Reads the 68-byte handshake.
pub(crate) async fn read_handshake(stream: &mut (impl AsyncRead + Unpin)) -> Result<Handshake, HandshakeError> {
    read_handshake_after(stream, &[]).await
}

/// Reads the rest of the 68-byte handshake whose first bytes are `first`.
pub(crate) async fn read_handshake_after(
    stream: &mut (impl AsyncRead + Unpin),
    first: &[u8],
) -> Result<Handshake, HandshakeError> {
    let mut buf = [0u8; 68];
    let have = first.len().min(68);
    buf[..have].copy_from_slice(&first[..have]);
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut buf[have..]))
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    Ok(Handshake::decode(&buf)?)
}

/// Sends our handshake for `info_hash`: extension protocol (BEP 10), fast extension (BEP 6),
/// and the DHT bit (BEP 5) when `dht` says we run a node.
pub(crate) async fn write_handshake(
    stream: &mut (impl AsyncWrite + Unpin),
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
) -> Result<(), HandshakeError> {
    let hs = Handshake::new(info_hash, peer_id).with_dht(dht);
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        stream.write_all(&hs.encode()).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| HandshakeError::Timeout)??;
    Ok(())
}

/// How the session dials peers: its protocol encryption policy and its uTP socket.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dialer {
    pub(crate) encryption: crate::mse::Encryption,
    /// The session's uTP socket (none: TCP only).
    pub(crate) utp: Option<shoal_utp::UtpSocket>,
    pub(crate) utp_mode: crate::conn::UtpMode,
}

/// A transport to dial over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Over {
    Tcp,
    Utp,
}

impl std::fmt::Display for Over {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if *self == Over::Tcp { "TCP" } else { "uTP" })
    }
}

/// Dials a peer and exchanges handshakes (`dht`: see [`write_handshake`]). With `tls` (an
/// SSL torrent) the BitTorrent handshake runs inside TLS over TCP, with the hex info-hash as
/// SNI; otherwise the dialer's uTP mode orders the transports (`on`: TCP, then uTP when TCP
/// fails — a peer that takes uTP only still gets reached, and one without uTP costs no wait;
/// `prefer`: uTP first, as libtorrent dials, then TCP), and its encryption policy decides
/// whether an MSE handshake comes first (see [`crate::mse`]): `prefer` tries it and dials again
/// for a plain handshake when the peer does not take it.
///
/// A TCP connection the peer's host refuses outright (nothing listens on that port) is not
/// followed by uTP: uTP-only clients still listen on TCP and reset. When the first transport
/// fails, `note` hears why (so a status line can say it while the second is tried); when the
/// second one only goes unanswered, the first one's reason is the error returned.
pub(crate) async fn connect(
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    dialer: &Dialer,
    note: &(dyn Fn(String) + Send + Sync),
) -> Result<(PeerStream, Handshake), HandshakeError> {
    use crate::conn::UtpMode;
    let order: &[Over] = match (&dialer.utp, dialer.utp_mode, tls.is_some()) {
        (Some(_), UtpMode::Prefer, false) => &[Over::Utp, Over::Tcp],
        (Some(_), UtpMode::On, false) => &[Over::Tcp, Over::Utp],
        _ => &[Over::Tcp],
    };
    let mut first: Option<HandshakeError> = None;
    let mut last = HandshakeError::Timeout;
    for (i, over) in order.iter().enumerate() {
        match connect_over(*over, addr, info_hash, peer_id, dht, tls.clone(), dialer).await {
            Ok(done) => {
                if *over == Over::Utp {
                    tracing::info!(%addr, "connected over uTP");
                }
                return Ok(done);
            }
            Err(e @ (HandshakeError::WrongTorrent | HandshakeError::SelfConnection)) => return Err(e),
            Err(e) => {
                let refused =
                    matches!(&e, HandshakeError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                match order.get(i + 1) {
                    Some(next) if !(refused && *over == Over::Tcp) => {
                        tracing::debug!(%addr, "no connection over {over} ({e}); trying {next}");
                        note(format!("{e} (over {over}; trying {next})"));
                        first = Some(e);
                    }
                    _ => {
                        let unanswered = matches!(e, HandshakeError::Io(_) | HandshakeError::Timeout);
                        last = match first.take() {
                            Some(earlier) if unanswered => earlier,
                            _ => e,
                        };
                        break;
                    }
                }
            }
        }
    }
    let unreachable = matches!(
        last,
        HandshakeError::Io(_)
            | HandshakeError::ClosedAtHandshake
            | HandshakeError::ClosedBothWays
            | HandshakeError::Timeout
    );
    if unreachable && tls.is_none() && dialer.utp_mode == UtpMode::Off {
        return Err(HandshakeError::TcpOnly(last.to_string()));
    }
    Err(last)
}

/// [`connect`] over one transport.
async fn connect_over(
    over: Over,
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    dialer: &Dialer,
) -> Result<(PeerStream, Handshake), HandshakeError> {
    use crate::mse::{self, Encryption};
    let encryption = dialer.encryption;
    if tls.is_none() && encryption != Encryption::Off {
        let provide = if encryption == Encryption::Require { mse::RC4 } else { mse::PLAINTEXT | mse::RC4 };
        // A transport that does not reach the peer at all is not dialled a second time for a
        // plain handshake.
        let wire = dial(over, addr, dialer).await?;
        let attempt = async {
            // Our handshake rides in the MSE handshake's initial payload: the peer answers it
            // with its own at once, a round trip sooner than after the MSE handshake.
            let ours = Handshake::new(info_hash, peer_id).with_dht(dht).encode();
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, mse::initiate(wire, info_hash, provide, &ours))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(|e| HandshakeError::Encryption(e.to_string()))?;
            answer(PeerStream::Mse(Box::new(stream)), info_hash, peer_id).await
        };
        let tried = attempt.await;
        match tried {
            Ok(done) => return Ok(done),
            Err(e @ (HandshakeError::WrongTorrent | HandshakeError::SelfConnection)) => return Err(e),
            Err(e) if encryption == Encryption::Require => {
                tracing::info!(%addr, "no encrypted connection ({e}); --encryption require dials no plain one");
                return Err(e);
            }
            Err(e) => tracing::debug!(%addr, "no encrypted connection ({e}); trying a plain one"),
        }
        return match plain(over, addr, info_hash, peer_id, dht, None, dialer).await {
            Err(HandshakeError::ClosedAtHandshake) => Err(HandshakeError::ClosedBothWays),
            other => other,
        };
    }
    plain(over, addr, info_hash, peer_id, dht, tls, dialer).await
}

/// Dials and exchanges plain (or, with `tls`, TLS) handshakes.
async fn plain(
    over: Over,
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    dialer: &Dialer,
) -> Result<(PeerStream, Handshake), HandshakeError> {
    let wire = dial(over, addr, dialer).await?;
    let stream = match (tls, wire) {
        (None, wire) => wire.into_peer_stream(),
        (Some(config), crate::conn::Wire::Tcp(tcp)) => {
            let name = rustls::pki_types::ServerName::try_from(info_hash.to_hex())
                .map_err(|_| HandshakeError::Refused("the info-hash is not a valid SNI"))?;
            let tls =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_rustls::TlsConnector::from(config).connect(name, tcp))
                    .await
                    .map_err(|_| HandshakeError::Timeout)?
                    .map_err(HandshakeError::Tls)?;
            PeerStream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)))
        }
        (Some(_), crate::conn::Wire::Utp(_)) => return Err(HandshakeError::Refused("SSL torrents dial TCP only")),
    };
    exchange(stream, info_hash, peer_id, dht).await
}

async fn dial(over: Over, addr: SocketAddr, dialer: &Dialer) -> Result<crate::conn::Wire, HandshakeError> {
    match (over, &dialer.utp) {
        (Over::Utp, Some(socket)) => {
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.connect(addr))
                .await
                .map_err(|_| HandshakeError::Timeout)??;
            Ok(crate::conn::Wire::Utp(Box::new(stream)))
        }
        _ => {
            let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| HandshakeError::Timeout)??;
            tcp.set_nodelay(true)?;
            Ok(crate::conn::Wire::Tcp(tcp))
        }
    }
}

/// Our handshake, then theirs, checked.
async fn exchange(
    mut stream: PeerStream,
    info_hash: InfoHash,
    peer_id: PeerId,
    dht: bool,
) -> Result<(PeerStream, Handshake), HandshakeError> {
    write_handshake(&mut stream, info_hash, peer_id, dht).await?;
    answer(stream, info_hash, peer_id).await
}

/// Reads the peer's handshake, ours being sent, and checks it is for this torrent and not from
/// ourselves.
async fn answer(
    mut stream: PeerStream,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<(PeerStream, Handshake), HandshakeError> {
    let theirs = match read_handshake(&mut stream).await {
        Err(HandshakeError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::ClosedAtHandshake);
        }
        other => other?,
    };
    if theirs.info_hash != info_hash {
        return Err(HandshakeError::WrongTorrent);
    }
    if theirs.peer_id == peer_id {
        return Err(HandshakeError::SelfConnection);
    }
    Ok((stream, theirs))
}

/// An event from a peer connection, for its torrent.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    /// What one read decoded; the permit holds the session's budget for the blocks in it until
    /// the torrent has taken them (see [`crate::disk::DiskPool::received`]).
    Messages(PeerKey, Vec<Message>, Option<OwnedSemaphorePermit>),
    Closed(PeerKey, Ended),
    /// The connection's writer stopped with blocks still queued: their bytes, counted as
    /// uploaded when they were queued, did not go out.
    Unsent(PeerKey, u64),
}

/// Where a connection's reader sends what it reads: the torrent's bounded peer inbox, so a
/// busy torrent slows its readers down (back-pressure reaches the sockets). Received blocks
/// also take their size from the session's budget of received data, so what waits in inboxes
/// is bounded in bytes, not only in messages.
#[derive(Clone, Debug)]
pub(crate) struct PeerSink {
    tx: mpsc::Sender<PeerEvent>,
    received: Arc<Semaphore>,
    buffers: Arc<ReadBuffers>,
}

impl PeerSink {
    pub(crate) fn new(tx: mpsc::Sender<PeerEvent>, received: Arc<Semaphore>, buffers: Arc<ReadBuffers>) -> Self {
        Self { tx, received, buffers }
    }

    /// Forwards messages, waiting for room in the budget for the blocks among them; false when
    /// the torrent is gone.
    pub(crate) async fn peer_messages(&self, key: PeerKey, msgs: Vec<Message>) -> bool {
        let bytes: usize = msgs.iter().map(|m| if let Message::Piece { data, .. } = m { data.len() } else { 0 }).sum();
        let permit = match bytes {
            0 => None,
            n => {
                let n = n.min(crate::disk::RECEIVED_BUDGET) as u32;
                match self.received.clone().acquire_many_owned(n).await {
                    Ok(permit) => Some(permit),
                    Err(_) => return false,
                }
            }
        };
        self.tx.send(PeerEvent::Messages(key, msgs, permit)).await.is_ok()
    }

    pub(crate) async fn peer_closed(&self, key: PeerKey, reason: Ended) {
        let _ = self.tx.send(PeerEvent::Closed(key, reason)).await;
    }

    async fn unsent(&self, key: PeerKey, bytes: u64) {
        if bytes > 0 {
            let _ = self.tx.send(PeerEvent::Unsent(key, bytes)).await;
        }
    }
}

/// Why a connection's reader stopped.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The peer broke the protocol (the connection is dropped on our side).
    Violation(String),
    /// The connection ended for an ordinary reason.
    Closed(String),
}

/// Something to send to a peer.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A message as is.
    Msg(Message),
    /// Read this block from storage and send it as a `piece` message.
    Block(BlockRange),
}

/// The torrent's handle on a live connection. Dropping it ends the writer, which closes the
/// socket; the reader then ends too.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub(crate) addr: SocketAddr,
    pub(crate) tx: mpsc::Sender<Outgoing>,
    /// Blocks the peer cancelled while they may still sit in the send queue.
    withdrawn: Arc<Withdrawn>,
    reader: tokio::task::JoinHandle<()>,
}

impl PeerLink {
    /// Queues a block to be read from disk and sent; false when the queue is full (the
    /// request is dropped and the peer will time out and ask again).
    pub(crate) fn serve(&self, block: BlockRange) -> bool {
        self.withdrawn.enqueued(block);
        let sent = self.tx.try_send(Outgoing::Block(block)).is_ok();
        if !sent {
            self.withdrawn.take(&block);
        }
        sent
    }

    /// The peer cancelled this block: one queued copy not yet sent is skipped by the writer
    /// (then true). A cancel for a block already sent changes nothing.
    pub(crate) fn withdraw(&self, block: BlockRange) -> bool {
        self.withdrawn.withdraw(block)
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Blocks waiting in a connection's send queue and how many of them the peer cancelled,
/// shared by the torrent (which queues and withdraws) and the writer (which takes). Entries
/// exist only for queued blocks, so the size is bounded by the queue.
#[derive(Debug, Default)]
struct Withdrawn(std::sync::Mutex<ServeCounts>);

#[derive(Debug, Default)]
struct ServeCounts {
    /// Copies of each block in the send queue.
    queued: std::collections::HashMap<BlockRange, u32>,
    /// Of those, how many the peer cancelled (never more than `queued`).
    withdrawn: std::collections::HashMap<BlockRange, u32>,
}

impl Withdrawn {
    fn lock(&self) -> std::sync::MutexGuard<'_, ServeCounts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueued(&self, block: BlockRange) {
        *self.lock().queued.entry(block).or_insert(0) += 1;
    }

    /// True when a queued copy will now be skipped.
    fn withdraw(&self, block: BlockRange) -> bool {
        let mut c = self.lock();
        let queued = c.queued.get(&block).copied().unwrap_or(0);
        let withdrawn = c.withdrawn.entry(block).or_insert(0);
        if *withdrawn < queued {
            *withdrawn += 1;
            return true;
        }
        if *withdrawn == 0 {
            c.withdrawn.remove(&block);
        }
        false
    }

    /// Bytes of the queued blocks that were not cancelled (what a writer that stops leaves
    /// unsent).
    fn unsent_bytes(&self) -> u64 {
        let c = self.lock();
        c.queued
            .iter()
            .map(|(block, &n)| u64::from(n - c.withdrawn.get(block).copied().unwrap_or(0)) * u64::from(block.length))
            .sum()
    }

    /// The next queued copy of the block was cancelled.
    fn is_withdrawn(&self, block: &BlockRange) -> bool {
        self.lock().withdrawn.contains_key(block)
    }

    /// The writer takes a block off the queue; true when it should be sent.
    fn take(&self, block: &BlockRange) -> bool {
        let mut c = self.lock();
        if let Some(n) = c.queued.get_mut(block) {
            *n -= 1;
            if *n == 0 {
                c.queued.remove(block);
            }
        }
        match c.withdrawn.get_mut(block) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    c.withdrawn.remove(block);
                }
                false
            }
            None => true,
        }
    }
}

/// Starts the reader and writer tasks of an established connection.
pub(crate) fn spawn(
    key: PeerKey,
    addr: SocketAddr,
    stream: PeerStream,
    inbox: PeerSink,
    storage: Arc<Storage>,
    max_message: u32,
    limits: Limits,
) -> PeerLink {
    let (read, write) = stream.split();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let reader_inbox = inbox.clone();
    let Limits { upload, download } = limits;
    let withdrawn = Arc::new(Withdrawn::default());
    let writer_withdrawn = withdrawn.clone();
    // Every message in and out is logged at trace level (`-vvv`) under the peer's address.
    let span = tracing::trace_span!("peer", %addr);
    let reader = tokio::spawn(
        async move {
            let ended = read_loop(key, read, &reader_inbox, max_message, &download).await;
            reader_inbox.peer_closed(key, ended).await;
        }
        .instrument(span.clone()),
    );
    tokio::spawn(
        async move {
            let ended = write_loop(write, rx, &storage, &upload, &writer_withdrawn).await;
            // Blocks still queued (the connection closed, or a capped writer stopped while a
            // block waited for its allowance) were counted when queued and never went out.
            inbox.unsent(key, writer_withdrawn.unsent_bytes()).await;
            if let Err(e) = ended {
                inbox.peer_closed(key, Ended::Closed(format!("send failed: {e}"))).await;
            }
        }
        .instrument(span),
    );
    PeerLink { addr, tx, withdrawn, reader }
}

async fn read_loop(key: PeerKey, mut read: ReadHalf, inbox: &PeerSink, max_message: u32, limit: &Caps) -> Ended {
    let buffers = &inbox.buffers;
    let mut buf = buffers.take();
    let mut end = allocation_end(&buf);
    loop {
        // Everything decoded from one read goes to the torrent as one event: one channel
        // operation and at most one wake-up per read instead of per message.
        let mut batch = Vec::new();
        let violation = loop {
            match decode_message(&mut buf, max_message) {
                Ok(Some(msg)) => {
                    tracing::trace!(%msg, "received");
                    batch.push(msg);
                }
                Ok(None) => break None,
                Err(e) => break Some(format!("protocol error: {e}")),
            }
        };
        if !batch.is_empty() && !inbox.peer_messages(key, batch).await {
            return Ended::Closed("torrent stopped".into());
        }
        if let Some(reason) = violation {
            return Ended::Violation(reason);
        }
        if buf.capacity() - buf.len() < READ_MARGIN + MIN_READ {
            if buf.len() + READ_MARGIN + MIN_READ <= buffers::READ_BUFFER {
                // Move the partial message on to a pooled buffer; the old one goes back to
                // the pool unless it was replaced by a larger one for a long message.
                let mut next = buffers.take();
                next.extend_from_slice(&buf);
                let old = std::mem::replace(&mut buf, next);
                if allocation_end(&old) == end {
                    buffers.give(old);
                }
                end = allocation_end(&buf);
            } else {
                buf.reserve(buffers::READ_BUFFER);
            }
        }
        // The read leaves room for the rest of a partly received block, so cutting the
        // message out never needs a new buffer.
        let room = buf.capacity() - buf.len() - READ_MARGIN;
        match tokio::time::timeout(READ_TIMEOUT, read.read_buf(&mut (&mut buf).limit(room))).await {
            Err(_) => return Ended::Closed("no message for three minutes".into()),
            Ok(Err(e)) => return Ended::Closed(format!("receive failed: {e}")),
            Ok(Ok(0)) => return Ended::Closed("closed by peer".into()),
            Ok(Ok(n)) => limit.acquire(n as u64).await,
        }
    }
}

/// Where a buffer's allocation ends: the same for as long as the buffer is not reallocated
/// (cutting messages off its front moves its start, not its end).
fn allocation_end(buf: &BytesMut) -> usize {
    buf.as_ptr() as usize + buf.capacity()
}

async fn write_loop(
    mut write: WriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    storage: &Storage,
    limit: &Caps,
    withdrawn: &Withdrawn,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH + 32 * 1024);
    let mut deferred = VecDeque::new();
    loop {
        if limit.rate().is_some() || !deferred.is_empty() {
            let mut capped = Capped { write: &mut write, rx: &mut rx, buf: &mut buf, deferred: &mut deferred };
            if !capped.step(storage, limit, withdrawn).await? {
                return Ok(());
            }
            continue;
        }
        let first = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
            Err(_) => Outgoing::Msg(Message::KeepAlive),
            Ok(None) => return Ok(()),
            Ok(Some(out)) => out,
        };
        encode(&mut buf, first, storage, limit, withdrawn).await?;
        // Batch what is already queued, but send at once when the upload is capped so the
        // limiter paces individual blocks.
        while buf.len() < WRITE_BATCH && limit.rate().is_none() {
            match rx.try_recv() {
                Ok(out) => encode(&mut buf, out, storage, limit, withdrawn).await?,
                Err(_) => break,
            }
        }
        write.write_all(&buf).await?;
        // TLS may keep part of a record buffered until flushed (a no-op on TCP).
        write.flush().await?;
        buf.clear();
    }
}

/// Whether a message may go out ahead of blocks queued before it while the upload is capped:
/// what it says does not depend on the order of `piece` messages (BEP 3 gives `have`,
/// `request`, `cancel` and interest no order relative to them), so a `have` an initial seed
/// shows a player, or a request a capped uploader makes, does not wait behind a second of
/// rate-limited data. Chokes, rejects and the data itself keep their order.
fn overtakes(out: &Outgoing) -> bool {
    matches!(
        out,
        Outgoing::Msg(
            Message::KeepAlive
                | Message::Interested
                | Message::NotInterested
                | Message::Have(_)
                | Message::Request { .. }
                | Message::Cancel { .. }
                | Message::Port(_)
                | Message::Extended { .. }
        )
    )
}

/// The writer while the upload is capped: one block at a time, each waiting for its
/// allowance; meanwhile messages that [`overtakes`] allows go out at once and the others
/// (and blocks) wait in `deferred`, in their order, at most [`OUT_QUEUE`] of them.
struct Capped<'a> {
    write: &'a mut WriteHalf,
    rx: &'a mut mpsc::Receiver<Outgoing>,
    buf: &'a mut BytesMut,
    deferred: &'a mut VecDeque<Outgoing>,
}

impl Capped<'_> {
    /// Sends the next item; `false` once the connection's queue is closed.
    async fn step(&mut self, storage: &Storage, limit: &Caps, withdrawn: &Withdrawn) -> std::io::Result<bool> {
        let next = match self.deferred.pop_front() {
            Some(out) => out,
            None => match tokio::time::timeout(KEEPALIVE, self.rx.recv()).await {
                Err(_) => Outgoing::Msg(Message::KeepAlive),
                Ok(None) => return Ok(false),
                Ok(Some(out)) => out,
            },
        };
        let block = match next {
            Outgoing::Block(block) if !withdrawn.is_withdrawn(&block) => block,
            other => {
                encode(self.buf, other, storage, limit, withdrawn).await?;
                self.flush().await?;
                return Ok(true);
            }
        };
        // A cancel that arrives while the block waits still counts, and the allowance goes
        // back to the bucket.
        let allowance = limit.acquire(u64::from(block.length));
        tokio::pin!(allowance);
        loop {
            tokio::select! {
                biased;
                () = &mut allowance => break,
                // Held back items count against the queue's bound: once as many wait here as
                // the queue holds, nothing more is taken from it (so it fills, as before).
                out = self.rx.recv(), if self.deferred.len() < OUT_QUEUE => match out {
                    None => return Ok(false),
                    Some(out) if overtakes(&out) => {
                        encode(self.buf, out, storage, limit, withdrawn).await?;
                        self.flush().await?;
                    }
                    Some(out) => self.deferred.push_back(out),
                },
            }
        }
        if !withdrawn.take(&block) {
            limit.refund(u64::from(block.length));
            return Ok(true);
        }
        put_block(self.buf, block, storage)?;
        self.flush().await?;
        Ok(true)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.write.write_all(self.buf).await?;
        self.write.flush().await?;
        self.buf.clear();
        Ok(())
    }
}

/// Appends one outgoing item to the send buffer; a block is read from disk directly into it.
async fn encode(
    buf: &mut BytesMut,
    out: Outgoing,
    storage: &Storage,
    limit: &Caps,
    withdrawn: &Withdrawn,
) -> std::io::Result<()> {
    match out {
        Outgoing::Msg(msg) => {
            tracing::trace!(%msg, "sent");
            msg.encode(buf);
        }
        Outgoing::Block(block) if withdrawn.is_withdrawn(&block) => {
            withdrawn.take(&block);
        }
        Outgoing::Block(block) => {
            // A capped upload can wait here a while: a cancel that arrives meanwhile still
            // counts, and the allowance goes back to the bucket.
            limit.acquire(block.length as u64).await;
            if !withdrawn.take(&block) {
                limit.refund(block.length as u64);
                return Ok(());
            }
            put_block(buf, block, storage)?;
        }
    }
    Ok(())
}

/// Appends a `piece` message for `block`, read from disk directly into the buffer.
fn put_block(buf: &mut BytesMut, block: BlockRange, storage: &Storage) -> std::io::Result<()> {
    tracing::trace!(piece = block.piece.get(), begin = block.begin, "sent block");
    buf.put_u32(9 + block.length);
    buf.put_u8(7);
    buf.put_u32(block.piece.get());
    buf.put_u32(block.begin);
    let start = buf.len();
    buf.resize(start + block.length as usize, 0);
    storage.read_into(block.piece, block.begin, &mut buf[start..]).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::PieceIndex;

    fn block(n: u32) -> BlockRange {
        BlockRange { piece: PieceIndex::new_unchecked(0), begin: n * shoal_proto::BLOCK_SIZE, length: 16_384 }
    }

    #[test]
    fn a_cancel_skips_one_queued_copy() {
        let w = Withdrawn::default();
        w.enqueued(block(0));
        w.withdraw(block(0));
        assert!(!w.take(&block(0)), "cancelled while queued: not sent");
        w.enqueued(block(0));
        assert!(w.take(&block(0)), "a later request is served");
    }

    #[test]
    fn r_cancel_after_send_does_not_swallow_a_later_request() {
        let w = Withdrawn::default();
        w.enqueued(block(1));
        assert!(w.take(&block(1)));
        // The cancel arrives after the block went out, then the peer asks again.
        w.withdraw(block(1));
        w.withdraw(block(2));
        w.enqueued(block(1));
        assert!(w.take(&block(1)), "the new request must not be skipped");
        assert!(w.lock().queued.is_empty() && w.lock().withdrawn.is_empty(), "nothing left behind");
    }
}
