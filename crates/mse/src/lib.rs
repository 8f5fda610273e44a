//! Message stream encryption (MSE, also called protocol encryption, PE): the obfuscated
//! handshake Azureus, libtorrent, Transmission, qBittorrent, rTorrent and aria2 speak before
//! the BitTorrent handshake, and the RC4 stream that may follow it.
//!
//! The exchange (initiator A, responder B; `S` the Diffie-Hellman secret, `SKEY` the info-hash,
//! `HASH` SHA-1, `VC` eight zero bytes, pads random and at most 512 bytes):
//!
//! 1. A → B: `Ya`, PadA
//! 2. B → A: `Yb`, PadB
//! 3. A → B: `HASH("req1", S)`, `HASH("req2", SKEY) xor HASH("req3", S)`,
//!    RC4ᴬ(VC, crypto_provide, len(PadC), PadC, len(IA)), RC4ᴬ(IA)
//! 4. B → A: RC4ᴮ(VC, crypto_select, len(PadD), PadD), then the stream
//! 5. A → B: the stream
//!
//! `Y = 2^X mod P` with the protocol's 768-bit prime `P` and a random 160-bit `X`; each
//! direction's RC4 key is `HASH("keyA" | "keyB", S, SKEY)`, the first 1024 bytes of its key
//! stream discarded. `crypto_provide` / `crypto_select` are bit sets: 1 plaintext (the stream
//! after step 4 is not encrypted: only the handshake was obfuscated), 2 RC4. B finds where step
//! 3 starts by scanning for `HASH("req1", S)` after PadA, and A where step 4 starts by scanning
//! for `RC4ᴮ(VC)` after PadB; both scans are bounded (PadA/PadB at most 512 bytes).
//!
//! Policy ([`Encryption`]): `prefer` (the default, as Transmission and qBittorrent) dials with
//! MSE offering both plaintext and RC4 and falls back to a plain handshake when the peer does
//! not answer it, takes both plain and MSE connections, and as a responder picks plaintext when
//! the initiator offers it (libtorrent's choice too: the handshake is hidden, the bulk data not
//! encrypted for nothing); `require` speaks only MSE with RC4, both ways; `off` speaks only
//! plain handshakes. RC4 is RustCrypto's `rc4`; the 768-bit arithmetic `num-bigint`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher, consts::U20};
use sha1::{Digest, Sha1};
use shoal_proto::InfoHash;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A byte stream an MSE handshake runs over, split afterwards into halves that read and write
/// without a lock between them (a `TcpStream`'s owned halves, a uTP stream's halves).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The reading and the writing half.
    fn into_halves(self) -> (Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncWrite + Unpin + Send>);
}

impl Transport for TcpStream {
    fn into_halves(self) -> (Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncWrite + Unpin + Send>) {
        let (r, w) = self.into_split();
        (Box::new(r), Box::new(w))
    }
}

/// Protocol encryption policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// MSE when the peer speaks it, plain otherwise (see the module documentation).
    #[default]
    Prefer,
    /// MSE with RC4 only.
    Require,
    /// Plain handshakes only.
    Off,
}

impl std::str::FromStr for Encryption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "off" => Ok(Encryption::Off),
            other => Err(format!("encryption {other:?}: expected prefer, require or off")),
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Off => "off",
        })
    }
}

/// The protocol's prime (768 bits).
const P_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
/// Bytes of a public key.
pub const KEY_LEN: usize = 96;
/// Longest pad.
pub const MAX_PAD: usize = 512;
/// Longest initial payload taken from an initiator (a BitTorrent handshake is 68 bytes).
pub const MAX_IA: usize = 1024;
const VC: [u8; 8] = [0; 8];
/// `crypto_provide` / `crypto_select` bits.
pub const PLAINTEXT: u32 = 1;
/// RC4.
pub const RC4: u32 = 2;

/// Why an MSE handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum MseError {
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer's bytes are not a valid MSE handshake.
    #[error("not a protocol-encryption handshake: {0}")]
    Bad(&'static str),
    /// The peer hung up during the handshake: it may not speak protocol encryption.
    #[error("the peer closed the connection during the encryption handshake (it may not speak protocol encryption)")]
    Closed,
    /// The peer asked for a torrent this node does not have.
    #[error("an encrypted handshake for a torrent this node does not have")]
    UnknownTorrent,
    /// No method both sides accept.
    #[error("no encryption both sides accept (they offered {offered:#x}, this node takes {ours:#x})")]
    NoCommonMethod {
        /// What the peer offered or chose.
        offered: u32,
        /// What this node accepts.
        ours: u32,
    },
}

fn prime() -> BigUint {
    BigUint::parse_bytes(P_HEX, 16).unwrap_or_default()
}

fn to_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let raw = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let start = KEY_LEN.saturating_sub(raw.len());
    out[start..].copy_from_slice(&raw[raw.len().saturating_sub(KEY_LEN)..]);
    out
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// A Diffie-Hellman key pair.
struct KeyPair {
    private: BigUint,
    public: [u8; KEY_LEN],
}

impl KeyPair {
    fn new() -> KeyPair {
        let private = BigUint::from_bytes_be(&random_bytes(20));
        let public = to_bytes(&BigUint::from(2u32).modpow(&private, &prime()));
        KeyPair { private, public }
    }

    /// The shared secret with the peer's public key.
    fn secret(&self, theirs: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], MseError> {
        let y = BigUint::from_bytes_be(theirs);
        let p = prime();
        if y <= BigUint::from(1u32) || y >= &p - 1u32 {
            return Err(MseError::Bad("a degenerate public key"));
        }
        Ok(to_bytes(&y.modpow(&self.private, &p)))
    }
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(&h.finalize());
    out
}

fn cipher(name: &[u8], secret: &[u8], skey: &InfoHash) -> Rc4<U20> {
    let key = hash(&[name, secret, &skey.0]);
    let mut rc4 = Rc4::<U20>::new(rc4::Key::<U20>::from_slice(&key));
    let mut discard = [0u8; 1024];
    rc4.apply_keystream(&mut discard);
    rc4
}

fn pad() -> Vec<u8> {
    let len = random_bytes(2);
    random_bytes(u16::from_be_bytes([len[0], len[1]]) as usize % (MAX_PAD + 1))
}

/// Reads until the last bytes read equal `marker`, at most `limit` bytes in all; returns
/// nothing else (what came before the marker is a pad).
async fn scan(stream: &mut (impl AsyncRead + Unpin), marker: &[u8], limit: usize) -> Result<(), MseError> {
    let mut window: Vec<u8> = Vec::with_capacity(limit);
    let mut byte = [0u8; 1];
    while window.len() < limit {
        stream.read_exact(&mut byte).await?;
        window.push(byte[0]);
        if window.ends_with(marker) {
            return Ok(());
        }
    }
    Err(MseError::Bad("no handshake marker within the padding's bounds"))
}

/// The ciphers (reading, writing) a handshake agreed on: none when it selected plaintext.
pub type Ciphers = Option<(Rc4<U20>, Rc4<U20>)>;

/// Dials side: runs steps 1, 3 and 5 over `tcp` for `info_hash`, offering `provide`
/// ([`PLAINTEXT`] and/or [`RC4`]), with `ia` (at most [`MAX_IA`] bytes, usually the BitTorrent
/// handshake) as the initial payload of step 3, so the peer can answer it together with step 4
/// instead of a round trip later; returns the stream whatever follows `ia` goes over.
pub async fn initiate(
    mut tcp: impl Transport,
    info_hash: InfoHash,
    provide: u32,
    ia: &[u8],
) -> Result<MseStream, MseError> {
    let ciphers = initiate_on(&mut tcp, info_hash, provide, ia).await?;
    Ok(MseStream::new(tcp, ciphers, Vec::new()))
}

/// [`initiate`] over any stream; returns the ciphers agreed on.
pub async fn initiate_on(
    tcp: &mut (impl AsyncRead + AsyncWrite + Unpin),
    info_hash: InfoHash,
    provide: u32,
    ia: &[u8],
) -> Result<Ciphers, MseError> {
    if ia.len() > MAX_IA {
        return Err(MseError::Bad("an initial payload over 1 KiB"));
    }
    initiate_steps(tcp, info_hash, provide, ia).await.map_err(|e| match e {
        MseError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) =>
        {
            MseError::Closed
        }
        e => e,
    })
}

async fn initiate_steps(
    tcp: &mut (impl AsyncRead + AsyncWrite + Unpin),
    info_hash: InfoHash,
    provide: u32,
    ia: &[u8],
) -> Result<Ciphers, MseError> {
    let keys = KeyPair::new();
    let mut hello = keys.public.to_vec();
    hello.extend(pad());
    tcp.write_all(&hello).await?;
    let mut theirs = [0u8; KEY_LEN];
    tcp.read_exact(&mut theirs).await?;
    let secret = keys.secret(&theirs)?;
    let mut out_rc4 = cipher(b"keyA", &secret, &info_hash);
    let mut in_rc4 = cipher(b"keyB", &secret, &info_hash);
    let req2 = hash(&[b"req2", &info_hash.0]);
    let req3 = hash(&[b"req3", &secret]);
    let mut step3 = hash(&[b"req1", &secret]).to_vec();
    step3.extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
    let pad_c = pad();
    let mut sealed = VC.to_vec();
    sealed.extend(provide.to_be_bytes());
    sealed.extend((pad_c.len() as u16).to_be_bytes());
    sealed.extend(&pad_c);
    // The initial payload goes under RC4 whatever method the peer selects.
    sealed.extend((ia.len() as u16).to_be_bytes());
    sealed.extend(ia);
    out_rc4.apply_keystream(&mut sealed);
    step3.extend(sealed);
    tcp.write_all(&step3).await?;
    // Step 4: after PadB, RC4ᴮ(VC).
    let mut vc = VC;
    in_rc4.apply_keystream(&mut vc);
    scan(tcp, &vc, MAX_PAD + VC.len()).await?;
    let mut head = [0u8; 6];
    tcp.read_exact(&mut head).await?;
    in_rc4.apply_keystream(&mut head);
    let select = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let pad_d = u16::from_be_bytes([head[4], head[5]]) as usize;
    if pad_d > MAX_PAD {
        return Err(MseError::Bad("a pad over 512 bytes"));
    }
    let mut skip = vec![0u8; pad_d];
    tcp.read_exact(&mut skip).await?;
    in_rc4.apply_keystream(&mut skip);
    let rc4 = match select {
        RC4 if provide & RC4 != 0 => true,
        PLAINTEXT if provide & PLAINTEXT != 0 => false,
        offered => return Err(MseError::NoCommonMethod { offered, ours: provide }),
    };
    Ok(rc4.then_some((in_rc4, out_rc4)))
}

/// What an incoming MSE handshake asked for.
#[derive(Debug)]
pub struct Accepted {
    /// The stream, past the MSE handshake (with any initial payload first).
    pub stream: MseStream,
    /// The torrent it named.
    pub info_hash: InfoHash,
}

/// Accepting side: `first` holds the bytes already read (the start of `Ya`); runs steps 2 and
/// 4, finding the torrent among `torrents`, and selects RC4 or plaintext from what `accept`
/// allows ([`PLAINTEXT`] preferred when both are offered and allowed).
pub async fn respond(
    mut tcp: impl Transport,
    first: &[u8],
    torrents: impl Fn(&[u8; 20]) -> Option<InfoHash>,
    accept: u32,
) -> Result<Accepted, MseError> {
    let (ciphers, ia, info_hash) = respond_on(&mut tcp, first, torrents, accept).await?;
    Ok(Accepted { stream: MseStream::new(tcp, ciphers, ia), info_hash })
}

/// [`respond`] over any stream; returns the ciphers agreed on, the initial payload and the
/// torrent.
pub async fn respond_on(
    tcp: &mut (impl AsyncRead + AsyncWrite + Unpin),
    first: &[u8],
    torrents: impl Fn(&[u8; 20]) -> Option<InfoHash>,
    accept: u32,
) -> Result<(Ciphers, Vec<u8>, InfoHash), MseError> {
    let mut theirs = [0u8; KEY_LEN];
    let have = first.len().min(KEY_LEN);
    theirs[..have].copy_from_slice(&first[..have]);
    tcp.read_exact(&mut theirs[have..]).await?;
    let keys = KeyPair::new();
    let secret = keys.secret(&theirs)?;
    let mut hello = keys.public.to_vec();
    hello.extend(pad());
    tcp.write_all(&hello).await?;
    // Step 3: after PadA, HASH("req1", S).
    scan(tcp, &hash(&[b"req1", &secret]), MAX_PAD + 20 + (first.len().saturating_sub(KEY_LEN))).await?;
    let mut masked = [0u8; 20];
    tcp.read_exact(&mut masked).await?;
    let req3 = hash(&[b"req3", &secret]);
    let mut req2 = [0u8; 20];
    for (i, b) in req2.iter_mut().enumerate() {
        *b = masked[i] ^ req3[i];
    }
    let info_hash = torrents(&req2).ok_or(MseError::UnknownTorrent)?;
    let mut in_rc4 = cipher(b"keyA", &secret, &info_hash);
    let mut out_rc4 = cipher(b"keyB", &secret, &info_hash);
    let mut head = [0u8; 14];
    tcp.read_exact(&mut head).await?;
    in_rc4.apply_keystream(&mut head);
    if head[..8] != VC {
        return Err(MseError::Bad("the verification constant is wrong"));
    }
    let provide = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let pad_c = u16::from_be_bytes([head[12], head[13]]) as usize;
    if pad_c > MAX_PAD {
        return Err(MseError::Bad("a pad over 512 bytes"));
    }
    let mut rest = vec![0u8; pad_c + 2];
    tcp.read_exact(&mut rest).await?;
    in_rc4.apply_keystream(&mut rest);
    let ia_len = u16::from_be_bytes([rest[pad_c], rest[pad_c + 1]]) as usize;
    if ia_len > MAX_IA {
        return Err(MseError::Bad("an initial payload over 1 KiB"));
    }
    let mut ia = vec![0u8; ia_len];
    tcp.read_exact(&mut ia).await?;
    in_rc4.apply_keystream(&mut ia);
    let select = if provide & accept & PLAINTEXT != 0 {
        PLAINTEXT
    } else if provide & accept & RC4 != 0 {
        RC4
    } else {
        return Err(MseError::NoCommonMethod { offered: provide, ours: accept });
    };
    let mut reply = VC.to_vec();
    reply.extend(select.to_be_bytes());
    reply.extend(0u16.to_be_bytes());
    out_rc4.apply_keystream(&mut reply);
    tcp.write_all(&reply).await?;
    // The initial payload was sent under RC4 in any case; it is the stream's first bytes.
    Ok(((select == RC4).then_some((in_rc4, out_rc4)), ia, info_hash))
}

/// A connection (TCP or uTP) past an MSE handshake: RC4 both ways, or plain.
#[derive(Debug)]
pub struct MseStream {
    read: MseRead,
    write: MseWrite,
}

/// Reading half of an [`MseStream`].
pub struct MseRead {
    tcp: Box<dyn AsyncRead + Unpin + Send>,
    rc4: Option<Rc4<U20>>,
    /// Bytes to give before reading the socket (an initial payload).
    prefix: Vec<u8>,
}

/// Writing half of an [`MseStream`].
pub struct MseWrite {
    tcp: Box<dyn AsyncWrite + Unpin + Send>,
    rc4: Option<Rc4<U20>>,
    /// Encrypted bytes not written yet (the cipher has moved past them).
    pending: Vec<u8>,
    written: usize,
}

impl std::fmt::Debug for MseRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MseRead").field("rc4", &self.rc4.is_some()).finish()
    }
}

impl std::fmt::Debug for MseWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MseWrite").field("rc4", &self.rc4.is_some()).finish()
    }
}

impl MseStream {
    fn new(tcp: impl Transport, ciphers: Ciphers, prefix: Vec<u8>) -> MseStream {
        let (r, w) = tcp.into_halves();
        let (read_rc4, write_rc4) = match ciphers {
            Some((i, o)) => (Some(i), Some(o)),
            None => (None, None),
        };
        MseStream {
            read: MseRead { tcp: r, rc4: read_rc4, prefix },
            write: MseWrite { tcp: w, rc4: write_rc4, pending: Vec::new(), written: 0 },
        }
    }

    /// Whether the stream is RC4-encrypted (else only the handshake was).
    pub fn is_rc4(&self) -> bool {
        self.write.rc4.is_some()
    }

    /// The two halves.
    pub fn split(self) -> (MseRead, MseWrite) {
        (self.read, self.write)
    }
}

impl AsyncRead for MseRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(rc4)) = (&r, &mut this.rc4) {
            rc4.apply_keystream(&mut buf.filled_mut()[before..]);
        }
        r
    }
}

impl MseWrite {
    /// Writes out what is pending; Ready once it all left.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            match Pin::new(&mut self.tcp).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MseWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rc4.is_none() {
            return Pin::new(&mut this.tcp).poll_write(cx, buf);
        }
        // Earlier bytes first: once encrypted they must go out before anything else.
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let take = buf.len().min(256 * 1024);
        this.pending.extend_from_slice(&buf[..take]);
        if let Some(rc4) = &mut this.rc4 {
            rc4.apply_keystream(&mut this.pending);
        }
        // Taken: the bytes are the stream's now, whether or not the socket took them yet.
        let _ = this.poll_pending(cx);
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_shutdown(cx),
            other => other,
        }
    }
}

impl AsyncRead for MseStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for MseStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}

/// Whether the first bytes of an incoming connection are a plain BitTorrent handshake (else
/// they may be an MSE one).
pub fn is_plain_handshake(first: &[u8]) -> bool {
    const START: &[u8] = b"\x13BitTorrent protocol";
    first.len() >= START.len() && &first[..START.len()] == START
}

/// The `HASH("req2", info_hash)` a responder matches a request against.
pub fn req2(info_hash: &InfoHash) -> [u8; 20] {
    hash(&[b"req2", &info_hash.0])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    async fn exchange(provide: u32, accept: u32) -> Result<(bool, Vec<u8>, Vec<u8>), MseError> {
        let ih = InfoHash([7; 20]);
        let (a, mut b) = pair().await;
        let responder = tokio::spawn(async move {
            let mut first = [0u8; 20];
            b.read_exact(&mut first).await?;
            assert!(!is_plain_handshake(&first));
            let want = req2(&ih);
            let mut acc = respond(b, &first, |r| (*r == want).then_some(ih), accept).await?;
            assert_eq!(acc.info_hash, ih);
            let mut got = [0u8; 16];
            acc.stream.read_exact(&mut got).await?;
            acc.stream.write_all(b"and back").await?;
            acc.stream.flush().await?;
            Ok::<_, MseError>(got.to_vec())
        });
        let mut s = match initiate(a, ih, provide, b"first").await {
            Ok(s) => s,
            // The responder's reason, when it refused.
            Err(e) => return Err(responder.await.expect("join").err().unwrap_or(e)),
        };
        let rc4 = s.is_rc4();
        s.write_all(b"hello there").await?;
        s.flush().await?;
        let mut back = [0u8; 8];
        s.read_exact(&mut back).await?;
        let got = responder.await.expect("join")?;
        Ok((rc4, got, back.to_vec()))
    }

    #[tokio::test]
    async fn both_methods_carry_bytes_and_plaintext_is_chosen_when_offered() {
        let (rc4, got, back) = exchange(PLAINTEXT | RC4, PLAINTEXT | RC4).await.expect("exchange");
        assert!(!rc4);
        // The initial payload, then the stream.
        assert_eq!((got.as_slice(), back.as_slice()), (&b"firsthello there"[..], &b"and back"[..]));
        let (rc4, got, back) = exchange(RC4, PLAINTEXT | RC4).await.expect("exchange");
        assert!(rc4);
        assert_eq!((got.as_slice(), back.as_slice()), (&b"firsthello there"[..], &b"and back"[..]));
        let (rc4, _, _) = exchange(PLAINTEXT | RC4, RC4).await.expect("exchange");
        assert!(rc4, "a responder that requires RC4 picks it");
        assert!(matches!(exchange(PLAINTEXT, RC4).await, Err(MseError::NoCommonMethod { .. })));
    }

    #[test]
    fn keys_agree_and_degenerate_keys_are_refused() {
        let (a, b) = (KeyPair::new(), KeyPair::new());
        assert_eq!(a.secret(&b.public).expect("secret"), b.secret(&a.public).expect("secret"));
        assert!(a.secret(&[0; KEY_LEN]).is_err());
        let mut one = [0; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        assert!(a.secret(&one).is_err());
        assert!(is_plain_handshake(b"\x13BitTorrent protocol\0\0"));
    }
}
