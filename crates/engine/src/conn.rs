//! A peer connection's byte stream: plain TCP or uTP ([`Wire`]), or TLS over TCP for SSL torrents
//! (libtorrent's scheme: both sides authenticate with certificates from the torrent's
//! authority, and the dialling side names the torrent by its hex info-hash as SNI).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsStream;

/// The TLS configurations of an SSL torrent: one to dial its peers, one to accept them.
#[derive(Clone, Debug)]
pub struct SslTorrent {
    /// For connections we open.
    pub client: Arc<rustls::ClientConfig>,
    /// For connections we accept on the SSL listener.
    pub server: Arc<rustls::ServerConfig>,
    /// The group's revocation list, passed between members (see [`Revocations`]).
    pub revocations: Option<Arc<dyn Revocations>>,
}

/// A group's signed revocation list as the torrents of the group pass it on: members that
/// both announce the `shoal_revocations` extension (BEP 10) send each other the newest list
/// they hold; a newer one that verifies is kept and put in force. The list's format, its
/// signature and where it is kept are the caller's business; one object serves every torrent
/// of a group, and [`Revocations::watch`] tells them all when a newer list is in force (from a
/// peer, or from the node's own store), so each closes its connections to revoked peers and
/// passes the list on.
pub trait Revocations: Send + Sync + std::fmt::Debug {
    /// The signed list in force, if any.
    fn current(&self) -> Option<Vec<u8>>;
    /// A list a peer sent: verified, and kept and put in force when newer. Returns whether it
    /// was (slow work allowed: it runs on a blocking thread).
    fn offer(&self, list: &[u8]) -> bool;
    /// Whether the list in force revokes this peer certificate (DER).
    fn is_revoked(&self, cert: &[u8]) -> bool;
    /// Changes (to the number in force) whenever a newer list comes into force.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// A connection's transport, before any handshake: TCP or uTP (BEP 29).
#[derive(Debug)]
pub(crate) enum Wire {
    Tcp(TcpStream),
    Utp(Box<shoal_utp::UtpStream>),
}

impl Wire {
    /// The stream the peer protocol runs over when no encryption or TLS wraps it.
    pub(crate) fn into_peer_stream(self) -> PeerStream {
        match self {
            Wire::Tcp(s) => PeerStream::Tcp(s),
            Wire::Utp(s) => PeerStream::Utp(s),
        }
    }
}

impl shoal_mse::Transport for Wire {
    fn into_halves(self) -> (Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncWrite + Unpin + Send>) {
        match self {
            Wire::Tcp(s) => shoal_mse::Transport::into_halves(s),
            Wire::Utp(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Utp(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Utp(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_flush(cx),
            Wire::Utp(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Utp(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An established connection to a peer.
#[derive(Debug)]
pub(crate) enum PeerStream {
    Tcp(TcpStream),
    /// uTP (BEP 29), plain.
    Utp(Box<shoal_utp::UtpStream>),
    Tls(Box<TlsStream<TcpStream>>),
    /// Past a protocol encryption handshake (RC4 or plain).
    Mse(Box<crate::mse::MseStream>),
    /// In-process: a web seed's task on the other end (see [`crate::webseed`]).
    Duplex(tokio::io::DuplexStream),
}

/// The reading half of a [`PeerStream`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Utp(shoal_utp::UtpRead),
    Tls(tokio::io::ReadHalf<Box<TlsStream<TcpStream>>>),
    Mse(Box<crate::mse::MseRead>),
    Duplex(tokio::io::ReadHalf<tokio::io::DuplexStream>),
}

/// The writing half of a [`PeerStream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Utp(shoal_utp::UtpWrite),
    Tls(tokio::io::WriteHalf<Box<TlsStream<TcpStream>>>),
    Mse(Box<crate::mse::MseWrite>),
    Duplex(tokio::io::WriteHalf<tokio::io::DuplexStream>),
}

impl PeerStream {
    /// The certificate a TLS peer presented (DER).
    pub(crate) fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Self::Tcp(_) | Self::Utp(_) | Self::Mse(_) | Self::Duplex(_) => None,
            Self::Tls(s) => s.get_ref().1.peer_certificates()?.first().map(|c| c.to_vec()),
        }
    }

    /// Splits into halves for the reader and writer tasks (TCP without a lock; TLS, whose
    /// state both directions share, through tokio's locked split).
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Self::Utp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Utp(r), WriteHalf::Utp(w))
            }
            Self::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
            Self::Mse(s) => {
                let (r, w) = s.split();
                (ReadHalf::Mse(Box::new(r)), WriteHalf::Mse(Box::new(w)))
            }
            Self::Duplex(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Duplex(r), WriteHalf::Duplex(w))
            }
        }
    }
}

/// `AsyncRead` and/or `AsyncWrite` for an enum of a TCP and a TLS variant, each call passed to
/// the variant.
macro_rules! either_io {
    (read $t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Utp(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Mse(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Duplex(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
    (write $t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Utp(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Mse(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Duplex(s) => Pin::new(s).poll_write(cx, buf),
                }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_flush(cx),
                    Self::Utp(s) => Pin::new(s).poll_flush(cx),
                    Self::Tls(s) => Pin::new(s).poll_flush(cx),
                    Self::Mse(s) => Pin::new(s).poll_flush(cx),
                    Self::Duplex(s) => Pin::new(s).poll_flush(cx),
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Utp(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Mse(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Duplex(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

either_io!(read PeerStream);
either_io!(write PeerStream);
either_io!(read ReadHalf);
either_io!(write WriteHalf);

/// Whether and how the session speaks uTP (BEP 29) besides TCP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UtpMode {
    /// uTP accepted on the listening port; peers dialled over TCP first, over uTP when TCP
    /// does not reach them (a peer that takes uTP only, or is behind a TCP-hostile path).
    #[default]
    On,
    /// uTP accepted, and dialled first (libtorrent's order), TCP when uTP does not answer.
    Prefer,
    /// No uTP socket at all: TCP only.
    Off,
}

impl std::str::FromStr for UtpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(UtpMode::On),
            "prefer" => Ok(UtpMode::Prefer),
            "off" => Ok(UtpMode::Off),
            other => Err(format!("uTP mode {other:?}: expected on, prefer or off")),
        }
    }
}

impl std::fmt::Display for UtpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UtpMode::On => "on",
            UtpMode::Prefer => "prefer",
            UtpMode::Off => "off",
        })
    }
}
