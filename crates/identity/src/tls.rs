//! TLS for SSL torrents (libtorrent's scheme, `../shared/specs/libtorrent-ssl-torrents.rst`):
//! both peers present a certificate signed by the authority whose certificate the torrent
//! carries as `ssl-cert`; the dialling peer names the torrent by sending its hex info-hash as
//! SNI. A peer certificate is accepted when it chains to that authority, covers the torrent by
//! libtorrent's name rule (a SubjectAltName DNS name equal to the torrent's name or `*`), and
//! its key is not on the group's revocation list. The SNI is not checked against the
//! certificate's names (it names the torrent, not the peer).
//!
//! rustls with the `ring` provider does the TLS (1.3, and 1.2 for older peers); the checks
//! above sit in verifiers of our own around rustls's WebPKI path building.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use crate::cert::CertInfo;
use crate::{Error, Membership};

/// The keys a group has revoked, shared by every connection of the group's torrents in this
/// process and replaced when a newer signed list arrives.
#[derive(Debug, Default)]
pub struct Revoked {
    inner: RwLock<(u64, BTreeSet<[u8; 32]>)>,
}

impl Revoked {
    /// Whether the key with this SubjectPublicKeyInfo fingerprint is revoked.
    pub fn contains(&self, fingerprint: &[u8; 32]) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).1.contains(fingerprint)
    }

    /// The number of the list in force (0: none).
    pub fn number(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Puts a (verified) list in force if it is newer than the one in force.
    pub fn update(&self, number: u64, keys: BTreeSet<[u8; 32]>) -> bool {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if number <= guard.0 {
            return false;
        }
        *guard = (number, keys);
        true
    }
}

/// The TLS side of one SSL torrent: configurations to dial and to accept its peers.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// For connections we open (SNI: the hex info-hash).
    pub client: Arc<ClientConfig>,
    /// For connections we accept.
    pub server: Arc<ServerConfig>,
    /// The group's name on this node.
    pub group: String,
    /// The group's revocations in force.
    pub revoked: Arc<Revoked>,
}

/// rustls's `ring` provider with AES-128-GCM first: bulk data is most of what peers send, and
/// on CPUs with AES instructions it is the cheapest AEAD (ring's default order starts with
/// AES-256-GCM). The other suites stay, for peers that prefer them.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        [cipher_suite::TLS13_AES_128_GCM_SHA256, cipher_suite::TLS13_AES_256_GCM_SHA384]
            .iter()
            .position(|f| f.suite() == s.suite())
            .unwrap_or(usize::MAX)
    });
    Arc::new(provider)
}

/// The SNI a peer sends for a torrent: its info-hash in hex.
pub fn server_name(info_hash_hex: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(info_hash_hex.to_string()).map_err(|e| Error::Invalid(format!("bad SNI {info_hash_hex}: {e}")))
}

/// Builds the TLS configurations for a torrent named `torrent_name` of the group of `member`.
/// `revoked` is shared by every torrent of the group.
pub fn peer_tls(member: &Membership, torrent_name: &str, revoked: Arc<Revoked>) -> Result<PeerTls, Error> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(member.ca.clone()).map_err(|e| Error::Invalid(format!("the torrent's ssl-cert is not usable: {e}")))?;
    let roots = Arc::new(roots);
    let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(member.key_pkcs8.clone()));
    let chain = vec![member.cert.clone()];
    let inner_client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| Error::Invalid(format!("cannot check peers against the torrent's ssl-cert: {e}")))?;
    let verifier = Arc::new(PeerVerifier {
        roots,
        algs: provider.signature_verification_algorithms,
        torrent: torrent_name.to_string(),
        revoked: revoked.clone(),
        inner_client,
    });
    let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(Error::crypto)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(chain.clone(), key())
        .map_err(|e| Error::Invalid(format!("this node's member certificate is not usable: {e}")))?;
    client.enable_sni = true;
    // No session resumption either way: a resumed session skips the certificate checks, so a
    // member revoked since its last connection would get back in.
    client.resumption = rustls::client::Resumption::disabled();
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(Error::crypto)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key())
        .map_err(|e| Error::Invalid(format!("this node's member certificate is not usable: {e}")))?;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    Ok(PeerTls { client: Arc::new(client), server: Arc::new(server), group: member.group.clone(), revoked })
}

/// Checks that `cert` chains to `ca` (any usage), for invitations.
pub(crate) fn verify_chain(
    ca: &CertificateDer<'_>,
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        now,
        provider().signature_verification_algorithms.all,
    )
}

#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    torrent: String,
    revoked: Arc<Revoked>,
    inner_client: Arc<dyn ClientCertVerifier>,
}

impl PeerVerifier {
    /// The checks beyond the chain: the torrent's name and the revocation list.
    fn check_member(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let info =
            CertInfo::parse(end_entity, "the peer's certificate").map_err(|e| rustls::Error::General(e.to_string()))?;
        if !info.covers(&self.torrent) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        }
        if self.revoked.contains(&info.fingerprint) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        Ok(())
    }
}

/// The handshake-signature checks both verifier traits ask for, done by the provider's
/// algorithms.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        self.check_member(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: they would tell anyone who knows the info-hash the authority's name.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner_client.verify_client_cert(end_entity, intermediates, now)?;
        self.check_member(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// A group's revocation list as the SSL torrents of one group pass it between members: the
/// list in force (shared with the torrents' verifiers through [`Revoked`]) and the store that
/// keeps newer ones. One per group in a process, shared by all of its torrents, so a list one
/// torrent receives is in force for all.
#[derive(Debug)]
pub struct GroupRevocations {
    groups: crate::Groups,
    group: String,
    authority: Option<[u8; 32]>,
    revoked: Arc<Revoked>,
    current: RwLock<Option<Vec<u8>>>,
}

impl GroupRevocations {
    /// The revocations of `member`'s group, with `revoked` (the set the TLS verifiers read)
    /// brought up to the list the member holds.
    pub fn new(groups: crate::Groups, member: &Membership, revoked: Arc<Revoked>) -> Self {
        let current = member.revocations.as_ref().map(|l| {
            revoked.update(l.number, l.revoked.clone());
            l.bytes.clone()
        });
        Self {
            groups,
            group: member.group.clone(),
            authority: member.authority,
            revoked,
            current: RwLock::new(current),
        }
    }

    /// The set in force, for [`peer_tls`].
    pub fn revoked(&self) -> Arc<Revoked> {
        self.revoked.clone()
    }

    /// The signed list in force.
    pub fn current(&self) -> Option<Vec<u8>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn put_in_force(&self, list: crate::RevocationList) -> bool {
        if !self.revoked.update(list.number, list.revoked.clone()) {
            return false;
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(list.bytes);
        true
    }

    /// A list from a peer: put in force when it is newer than the one in force (checked
    /// first, from its header) and its signature verifies, and kept on disk when newer than
    /// the one kept there.
    pub fn offer(&self, bytes: &[u8]) -> bool {
        let Some(authority) = self.authority else { return false };
        if crate::RevocationList::peek_number(bytes).is_none_or(|n| n <= self.revoked.number()) {
            return false;
        }
        let Ok(list) = crate::RevocationList::verify(bytes, &authority) else { return false };
        let _ = self.groups.keep_revocations(&self.group, &list);
        self.put_in_force(list)
    }

    /// Reads the list this node keeps for the group again and puts it in force when newer.
    pub fn refresh(&self) -> bool {
        match self.groups.revocations_of(&self.group) {
            Ok(Some(list)) => self.put_in_force(list),
            _ => false,
        }
    }

    /// Whether the list in force revokes this certificate's key.
    pub fn is_revoked(&self, cert: &[u8]) -> bool {
        CertInfo::parse(cert, "a peer certificate").is_ok_and(|info| self.revoked.contains(&info.fingerprint))
    }
}
