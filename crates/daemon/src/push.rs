//! The push protocol between `shoal push` and a server peer ([`crate::server`]).
//!
//! The pusher dials the server's push endpoint over TLS between identities
//! ([`shoal_identity::direct_client`]): it checks that the server's key is the identity it was
//! given, and the server learns the pusher's identity from its certificate. Then each side
//! sends frames: a 4-byte big-endian length and that many bytes of JSON, a [`Request`] from the
//! pusher and a [`Reply`] from the server, in turn, as many as the pusher likes on one
//! connection. A frame is at most [`MAX_FRAME`] bytes; the server closes a connection idle for
//! [`IDLE`].
//!
//! A push names the torrent (its .torrent bytes) and the port on which the pusher serves it
//! (its TLS port for a group share): the server dials that port at the address the connection
//! came from, joins the swarm like any peer, and keeps the torrent once every piece verifies
//! ("held"). The messages and their framing are in [`shoal_rpc::push`] (re-exported here).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_identity::{Identity, IdentityId};
pub use shoal_rpc::push::{MAX_FRAME, PushInfo, Reply, Request, decode_body, decode_frame, encode_frame, frame_len};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a push connection may stay silent.
pub const IDLE: Duration = Duration::from_secs(120);
/// How long connecting and the TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a push conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The server could not be reached.
    #[error("cannot reach the server at {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed: the server is not the identity given, or what answered is no
    /// push endpoint.
    #[error("{}", handshake_text(addr, id, reason))]
    Handshake {
        /// Where.
        addr: String,
        /// The identity expected.
        id: String,
        /// The TLS error.
        reason: String,
    },
    /// The connection broke or a frame was malformed.
    #[error("the connection to the server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused.
    #[error("the server refused: {0}")]
    Refused(String),
    /// This node's identity could not be used.
    #[error("{0}")]
    Identity(String),
}

fn handshake_text(addr: &str, id: &str, reason: &str) -> String {
    if reason.contains("NotValidForName") {
        format!("the server at {addr} is not {id}: it proved another identity (check the ID in --to)")
    } else {
        format!(
            "no push endpoint answered at {addr} ({reason}): is it the address the server printed as \
             `server: pushes on ADDR`?"
        )
    }
}

fn invalid(e: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Reads a frame's header from `io`: the length of its body (checked against [`MAX_FRAME`]);
/// `Ok(None)` at a clean end of stream.
pub async fn read_header(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<usize>> {
    let mut header = [0u8; 4];
    match io.read_exact(&mut header).await {
        Ok(_) => frame_len(header).map(Some).map_err(invalid),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a frame's body of `len` bytes (as [`read_header`] gave) and decodes it.
pub async fn read_body<T: for<'de> Deserialize<'de>>(
    io: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<T> {
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    decode_body(&body).map_err(invalid)
}

/// Reads one frame (JSON) from `io`; `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<T>> {
    match read_header(io).await? {
        Some(len) => read_body(io, len).await.map(Some),
        None => Ok(None),
    }
}

/// Writes one frame.
pub async fn write_frame(io: &mut (impl AsyncWrite + Unpin), value: &impl Serialize) -> std::io::Result<()> {
    let frame = encode_frame(value).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    io.write_all(&frame).await?;
    io.flush().await
}

/// A server as `shoal push --to` names it: `ID@HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The server's identity.
    pub id: IdentityId,
    /// Its push endpoint, `HOST:PORT`.
    pub addr: String,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, addr) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("{s:?} is not ID@HOST:PORT (the server's identity ID, @, its push endpoint)"))?;
        let id = id.parse::<IdentityId>().map_err(|e| format!("{s:?}: the server's identity ID: {e}"))?;
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("{s:?}: {addr:?} is not HOST:PORT"));
        }
        Ok(Target { id, addr: addr.to_string() })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id.compact(), self.addr)
    }
}

/// The member certificates (PEM) a push shows, which a server that allows `group:NAME`
/// checks: this node's certificate of the share's own group (for a group share) and of the
/// groups named in `also`, and no other, so a server learns of no other group this node is in.
pub fn member_certs(
    data_dir: &std::path::Path,
    identity: &Identity,
    meta: &shoal_proto::Metainfo,
    also: &[String],
) -> Result<Vec<String>, shoal_identity::Error> {
    let groups = shoal_identity::Groups::new(data_dir);
    let mut certs = Vec::new();
    if let Some(pem) = &meta.info.ssl_cert {
        let ca = shoal_identity::cert_from_pem(pem.as_bytes(), "the torrent's ssl-cert")?;
        if let Some(m) = groups.membership_for(identity, &ca)? {
            certs.push(shoal_identity::pem_cert(&m.cert));
        }
    }
    for name in also {
        certs.push(shoal_identity::pem_cert(&groups.membership(identity, name)?.cert));
    }
    Ok(certs)
}

/// A connection to a server's push endpoint.
pub struct PushClient {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl PushClient {
    /// Dials `target` as `identity` and checks the server's identity.
    pub async fn connect(identity: &Identity, target: &Target) -> Result<Self, PushError> {
        let config =
            shoal_identity::direct_client(identity, target.id).map_err(|e| PushError::Identity(e.to_string()))?;
        let connect = async {
            let tcp = TcpStream::connect(target.addr.as_str())
                .await
                .map_err(|source| PushError::Connect { addr: target.addr.clone(), source })?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(shoal_identity::DIRECT_SERVER_NAME)
                .map_err(|e| PushError::Identity(e.to_string()))?;
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| PushError::Handshake {
                addr: target.addr.clone(),
                id: target.id.to_string(),
                reason: e.to_string(),
            })
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect).await.map_err(|_| PushError::Connect {
            addr: target.addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10 s"),
        })??;
        Ok(PushClient { stream })
    }

    /// The local address of the connection (the address the server sees us at, on loopback).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.get_ref().0.local_addr().ok()
    }

    /// Sends `request` and waits for the answer; a refusal becomes [`PushError::Refused`].
    pub async fn call(&mut self, request: &Request) -> Result<Reply, PushError> {
        write_frame(&mut self.stream, request).await?;
        let reply = tokio::time::timeout(IDLE, read_frame::<Reply>(&mut self.stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the server did not answer"))??
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection")
            })?;
        match reply {
            Reply::Error { message } => Err(PushError::Refused(message)),
            other => Ok(other),
        }
    }
}

impl crate::Daemon {
    /// The `push.*` methods: this daemon talks to a server peer as its own identity.
    pub(crate) async fn push_as_node(
        &self,
        call: shoal_rpc::api::PushCall,
    ) -> Result<serde_json::Value, shoal_rpc::api::ApiError> {
        use base64::Engine as _;
        use shoal_rpc::api::{ApiError, PushCall};
        let to = match &call {
            PushCall::Start { to, .. }
            | PushCall::Status { to, .. }
            | PushCall::List { to }
            | PushCall::Withdraw { to, .. } => to,
        };
        let target: Target = to.parse().map_err(|e: String| ApiError::InvalidParams(format!("to: {e}")))?;
        let dir = self.inner.data_dir.clone();
        let identity = tokio::task::spawn_blocking(move || Identity::load_or_create(&dir, None).map(|(id, _)| id))
            .await
            .map_err(|_| ApiError::Failed("the identity could not be read".into()))?
            .map_err(|e| ApiError::Failed(e.to_string()))?;
        let request = match call {
            PushCall::Start { torrent, .. } => {
                let (id, ssl, complete) = {
                    let entries = crate::lock(&self.inner.entries);
                    let id = match &torrent {
                        shoal_rpc::api::TorrentRef::Id(id) => entries.contains_key(&id.0).then_some(id.0),
                        shoal_rpc::api::TorrentRef::InfoHash(h) => entries.id_of(h),
                    }
                    .ok_or_else(|| ApiError::NotFound(torrent.clone()))?;
                    let entry = entries.get(&id).ok_or_else(|| ApiError::NotFound(torrent.clone()))?;
                    let complete = entry
                        .torrent
                        .as_ref()
                        .is_some_and(|t| t.peek(|s| s.state == shoal_engine::TorrentState::Seeding));
                    (id, entry.meta.as_ref().is_some_and(|m| m.info.ssl_cert.is_some()), complete)
                };
                if !complete {
                    return Err(ApiError::InvalidParams(format!(
                        "torrent {id} is not seeding here: a push sends what this daemon holds complete"
                    )));
                }
                let sid = shoal_state::TorrentId::new(id as i64);
                let bytes = self
                    .inner
                    .db
                    .call(move |s| s.torrent(sid))
                    .await?
                    .and_then(|row| row.metainfo)
                    .ok_or_else(|| ApiError::Failed(format!("torrent {id} has no stored .torrent")))?;
                let port = match (ssl, self.inner.session.ssl_listen_addr()) {
                    (true, Some(tls)) => tls.port(),
                    _ => self.inner.session.listen_addr().port(),
                };
                let meta = shoal_proto::Metainfo::from_bytes(&bytes).map_err(|e| ApiError::Failed(e.to_string()))?;
                let members = member_certs(&self.inner.data_dir, &identity, &meta, &[])
                    .map_err(|e| ApiError::Failed(e.to_string()))?;
                Request::Push { torrent: base64::engine::general_purpose::STANDARD.encode(bytes), port, members }
            }
            PushCall::Status { info_hash, .. } => Request::Status { torrent: info_hash },
            PushCall::List { .. } => Request::List,
            PushCall::Withdraw { info_hash, .. } => Request::Withdraw { torrent: info_hash },
        };
        let reply = async {
            let mut client = PushClient::connect(&identity, &target).await?;
            client.call(&request).await
        }
        .await
        .map_err(|e| match e {
            PushError::Refused(m) => ApiError::InvalidParams(format!("the server refused: {m}")),
            e => ApiError::Failed(e.to_string()),
        })?;
        serde_json::to_value(&reply).map_err(|e| ApiError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_an_identity_and_an_endpoint() {
        let id = IdentityId([7; 32]);
        let text = format!("{}@127.0.0.1:7000", id.compact());
        let target: Target = text.parse().expect("parse");
        assert_eq!(target, Target { id, addr: "127.0.0.1:7000".into() });
        assert_eq!(target.to_string(), text);
        let grouped = format!("{id}@server.example:7000");
        assert_eq!(grouped.parse::<Target>().expect("grouped id").id, id);
        for bad in [
            "127.0.0.1:7000",
            "nope@127.0.0.1:7000",
            &format!("{}@host", id.compact()),
            &format!("{}@:1", id.compact()),
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad} was taken");
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_an_oversized_one_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let request = Request::Status { torrent: "ab".repeat(20) };
        write_frame(&mut a, &request).await.expect("write");
        assert_eq!(read_frame::<Request>(&mut b).await.expect("read"), Some(request));
        a.write_all(&((MAX_FRAME as u32) + 1).to_be_bytes()).await.expect("write");
        let err = read_frame::<Request>(&mut b).await.expect_err("oversized");
        assert!(err.to_string().contains("over the limit"), "{err}");
        drop(a);
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&3u32.to_be_bytes()).await.expect("write");
        a.write_all(b"{x}").await.expect("write");
        assert!(read_frame::<Request>(&mut b).await.is_err(), "malformed JSON was taken");
    }
}
