//! TLS between two identities with no group in between, as a server peer's push endpoint uses
//! it: each side shows its self-signed identity certificate ([`crate::Identity::cert_pem`]).
//! The dialling side checks that the server's key is the identity ID it was given, so it
//! knows whom it talks to; the server accepts any Ed25519 identity and reads the caller's ID
//! from its certificate ([`peer_identity`]), then decides by its own rules what the caller may
//! do. The handshake signatures (checked by rustls with the certificate's key) prove that each
//! side holds the key of the certificate it shows; the certificate's own signature and dates
//! add nothing to that, since the identity is the key. TLS 1.3 only, no session resumption
//! (a resumed session would skip the key check).

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DistinguishedName, ServerConfig, SignatureScheme};

use crate::cert::{CertInfo, cert_from_pem};
use crate::tls::{handshake_signatures, provider};
use crate::{Error, Identity, IdentityId};

/// The SNI a pusher sends: it names no host (the server is known by its key).
pub const DIRECT_SERVER_NAME: &str = "shoal-server";

/// Accepts a certificate whose key is an Ed25519 identity (`expected`, when set).
#[derive(Debug)]
struct IdentityVerifier {
    expected: Option<IdentityId>,
    algs: WebPkiSupportedAlgorithms,
}

impl IdentityVerifier {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let info = CertInfo::parse(end_entity, "the peer's certificate").map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(e))))
        })?;
        match (info.identity, self.expected) {
            (None, _) => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
            (Some(id), Some(expected)) if id != expected => {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            }
            _ => Ok(()),
        }
    }
}

impl ServerCertVerifier for IdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for IdentityVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

fn own_cert(identity: &Identity) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let cert = cert_from_pem(identity.cert_pem().as_bytes(), "this node's identity certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key().serialize_der()));
    Ok((vec![cert], key))
}

/// TLS to dial the server whose identity is `server`, as `identity`.
pub fn direct_client(identity: &Identity, server: IdentityId) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let verifier =
        Arc::new(IdentityVerifier { expected: Some(server), algs: provider.signature_verification_algorithms });
    let (chain, key) = own_cert(identity)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::crypto)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::Invalid(format!("this node's identity certificate is not usable: {e}")))?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// TLS to accept callers with an identity, as `identity`.
pub fn direct_server(identity: &Identity) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(IdentityVerifier { expected: None, algs: provider.signature_verification_algorithms });
    let (chain, key) = own_cert(identity)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::crypto)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| Error::Invalid(format!("this node's identity certificate is not usable: {e}")))?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The identity of the other side of a finished handshake made with [`direct_client`] or
/// [`direct_server`] (rustls's `peer_certificates`).
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<IdentityId> {
    let first = certs?.first()?;
    CertInfo::parse(first, "the peer's certificate").ok()?.identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConnection, ServerConnection};

    /// Runs a handshake in memory; returns the identity the server saw, or the first error.
    fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Result<Option<IdentityId>, rustls::Error> {
        let name = ServerName::try_from(DIRECT_SERVER_NAME).expect("name");
        let mut c = ClientConnection::new(client, name)?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).expect("write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("read");
            }
            s.process_new_packets()?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).expect("write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("read");
            }
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(peer_identity(s.peer_certificates()));
            }
        }
        Ok(None)
    }

    #[test]
    fn the_caller_learns_the_server_is_who_it_asked_for_and_the_server_learns_the_caller() {
        let (a, b, c) =
            (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"), tempfile::tempdir().expect("c"));
        let (pusher, _) = Identity::load_or_create(a.path(), None).expect("pusher");
        let (server, _) = Identity::load_or_create(b.path(), None).expect("server");
        let (other, _) = Identity::load_or_create(c.path(), None).expect("other");
        let seen =
            handshake(direct_client(&pusher, server.id()).expect("client"), direct_server(&server).expect("server"))
                .expect("handshake");
        assert_eq!(seen, Some(pusher.id()));
        // A server with another key is refused by the caller.
        let wrong =
            handshake(direct_client(&pusher, other.id()).expect("client"), direct_server(&server).expect("server"));
        assert!(wrong.is_err(), "a server with another identity was accepted");
    }
}
