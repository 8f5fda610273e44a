//! Reading certificates and keys: PEM text, the fields Shoal checks (key, validity, names),
//! and key fingerprints.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::{Error, IdentityId};

/// The kinds of public key a member certificate may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Ed25519 (Shoal identities).
    Ed25519,
    /// ECDSA on P-256.
    EcdsaP256,
    /// RSA.
    Rsa,
    /// Anything else (refused for members).
    Other,
}

impl KeyKind {
    /// Short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa => "rsa",
            Self::Other => "other",
        }
    }
}

/// What Shoal reads from a certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// SHA-256 of [`Self::spki`]: what revocation lists name.
    pub fingerprint: [u8; 32],
    /// The key's algorithm.
    pub kind: KeyKind,
    /// The Shoal identity when the key is Ed25519.
    pub identity: Option<IdentityId>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// Validity, Unix seconds.
    pub not_after: i64,
    /// Marked as a certificate authority.
    pub is_ca: bool,
    /// SubjectAltName DNS names.
    pub dns_names: Vec<String>,
    /// The last Common Name of the subject.
    pub common_name: Option<String>,
    /// Serial number, hex.
    pub serial: String,
}

/// The DER of every certificate in PEM `text`; an error when there is none or the PEM is
/// broken.
pub fn certs_from_pem(text: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("{what} is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!("{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")));
    }
    Ok(certs)
}

/// The one certificate in PEM `text`.
pub fn cert_from_pem(text: &[u8], what: &str) -> Result<CertificateDer<'static>, Error> {
    let mut certs = certs_from_pem(text, what)?;
    Ok(certs.swap_remove(0))
}

/// SHA-256 of a SubjectPublicKeyInfo.
pub fn fingerprint(spki: &[u8]) -> [u8; 32] {
    Sha256::digest(spki).into()
}

/// OID of Ed25519 keys (RFC 8410).
const OID_ED25519: &str = "1.3.101.112";
/// OID of EC public keys and of the P-256 curve.
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// OID of RSA keys.
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// The kind of a SubjectPublicKeyInfo and, for Ed25519, the raw key.
pub(crate) fn key_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> (KeyKind, Option<[u8; 32]>) {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_ED25519 => {
            let raw: Option<[u8; 32]> = spki.subject_public_key.data.as_ref().try_into().ok();
            (if raw.is_some() { KeyKind::Ed25519 } else { KeyKind::Other }, raw)
        }
        OID_EC => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            (if curve.as_deref() == Some(OID_P256) { KeyKind::EcdsaP256 } else { KeyKind::Other }, None)
        }
        OID_RSA => (KeyKind::Rsa, None),
        _ => (KeyKind::Other, None),
    }
}

impl CertInfo {
    /// Reads a DER certificate (`what` names it in errors).
    pub fn parse(der: &[u8], what: &str) -> Result<Self, Error> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| Error::Invalid(format!("{what} does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Invalid(format!("{what} has {} bytes after the certificate", rest.len())));
        }
        let spki = cert.public_key();
        let (kind, raw) = key_kind(spki);
        let spki_der = spki.raw.to_vec();
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    dns_names.push((*n).to_string());
                }
            }
        }
        let common_name = cert.subject().iter_common_name().last().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        Ok(Self {
            fingerprint: fingerprint(&spki_der),
            spki: spki_der,
            kind,
            identity: raw.map(IdentityId),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
            dns_names,
            common_name,
            serial: cert.raw_serial_as_string().replace(':', ""),
        })
    }

    /// Whether the certificate may serve a torrent called `torrent_name`, by libtorrent's rule:
    /// a SubjectAltName DNS name equal to the name or `*`, else the last Common Name.
    pub fn covers(&self, torrent_name: &str) -> bool {
        if self.dns_names.iter().any(|n| n == "*" || n == torrent_name) {
            return true;
        }
        self.common_name.as_deref().is_some_and(|cn| cn == "*" || cn == torrent_name)
    }

    /// How people see this key: its identity ID, or the fingerprint of an outside key.
    pub fn member_label(&self) -> String {
        match self.identity {
            Some(id) => id.to_string(),
            None => format!("sha256:{}", hex(&self.fingerprint)),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
