//! Identities and groups for Shoal.
//!
//! - [`Identity`]: this node's Ed25519 key and self-signed certificate; its [`IdentityId`] is
//!   the public key itself in a checksummed, copyable text form.
//! - [`Groups`]: groups are certificate authorities. The node that creates a group keeps its
//!   key and issues member certificates, sent as one-line [`Invitation`]s (or as PEM for a key
//!   made outside Shoal); revocations travel as signed [`RevocationList`]s.
//! - [`peer_tls`]: the TLS configurations of an SSL torrent (libtorrent's scheme), for members.
//! - [`seal`]: sealed shares, content only members holding the group's key can read.
//! - [`direct_client`] and [`direct_server`]: TLS between two identities (a server peer's push
//!   endpoint).
//!
//! Certificates are made with `rcgen` and read with `x509-parser`; TLS is `rustls` with `ring`.
//! Only the revocation list format is Shoal's own (see [`revoke`]).

mod cert;
mod direct;
mod files;
mod group;
mod id;
mod identity;
mod invite;
pub mod revoke;
pub mod seal;
mod tls;

use std::path::{Path, PathBuf};

pub use cert::{CertInfo, KeyKind, cert_from_pem, certs_from_pem, fingerprint, hex};
pub use direct::{DIRECT_SERVER_NAME, direct_client, direct_server, peer_identity};
pub use group::{GroupSummary, Groups, INVITATION_DAYS, MemberRecord, Membership, Role, check_group_name, pem_cert};
pub use id::{IdError, IdentityId};
pub use identity::Identity;
pub use invite::Invitation;
pub use revoke::RevocationList;
pub use tls::{GroupRevocations, PeerTls, Revoked, peer_tls, server_name};

/// What can go wrong with identities and groups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored file is damaged.
    #[error("{0}: damaged: {1}")]
    Corrupt(PathBuf, String),
    /// Bad input (an invitation, a key, a name, a certificate).
    #[error("{0}")]
    Invalid(String),
    /// No group of that name on this node.
    #[error("no group called {0:?} on this node (see `shoal group list`)")]
    NoGroup(String),
    /// The node is a member, not the authority.
    #[error("this node is a member of {0:?}, not its authority: only the node that created the group can do this")]
    NotAuthority(String),
    /// Key or certificate generation failed.
    #[error("{0}")]
    Crypto(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn crypto(e: impl std::fmt::Display) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// A Unix time as an ISO 8601 UTC date and time.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}
