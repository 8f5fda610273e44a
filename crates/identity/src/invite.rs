//! Invitations: one line of text that carries a member certificate from a group's authority.
//!
//! `shoal-invite:` followed by unpadded base64url of a JSON object: the group's name, the
//! authority's certificate, the member certificate (both DER, base64), an expiry (Unix
//! seconds), the newest revocation list, and the authority's Ed25519 signature over the name,
//! both certificates and the expiry. Nothing in it is secret: the certificate is useless
//! without the member's private key, which never left the member's node. The joining node
//! checks the signature (so the expiry cannot be moved), that the certificate is signed by
//! the authority it names and is for its own key, and that the invitation has not expired.
//!
//! It may also carry the group's key for sealed shares, wrapped for the invited identity alone
//! ([`crate::seal::wrap_group_key`]), so it stays safe to send in the open; when present it is
//! signed with the rest. An invitation for a member that should only fetch and seed (a server
//! peer) carries none.

use base64::Engine;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};

use crate::cert::{CertInfo, now};
use crate::revoke::RevocationList;
use crate::{Error, IdentityId};

const PREFIX: &str = "shoal-invite:";
/// Longest invitation text accepted (a certificate pair and a large revocation list).
const MAX_TEXT: usize = 1 << 20;

/// An invitation to a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The group's name.
    pub group: String,
    /// The authority's certificate, DER.
    pub ca: Vec<u8>,
    /// The member certificate, DER.
    pub cert: Vec<u8>,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    /// The authority's newest revocation list.
    pub revocations: Option<Vec<u8>>,
    /// The group's key for sealed shares, wrapped for the invited identity.
    pub key: Option<Vec<u8>>,
    /// The authority's Ed25519 signature over the group, both certificates, the expiry and the
    /// wrapped key.
    pub signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    group: String,
    ca: String,
    cert: String,
    expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocations: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    sig: String,
}

/// What the authority signs: every field but the revocation list (signed on its own); the
/// wrapped key, when there is one, after the rest.
fn signed_bytes(group: &str, ca: &[u8], cert: &[u8], expires: i64, key: Option<&[u8]>) -> Vec<u8> {
    let mut out = b"shoal-invite-v1".to_vec();
    for part in [group.as_bytes(), ca, cert] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&expires.to_be_bytes());
    if let Some(key) = key {
        out.extend_from_slice(b"key");
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Invitation {
    /// An invitation signed with the authority's key.
    pub(crate) fn signed(
        key: &rcgen::KeyPair,
        group: &str,
        ca: Vec<u8>,
        cert: Vec<u8>,
        expires: i64,
        revocations: Option<Vec<u8>>,
        group_key: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        use rcgen::SigningKey;
        let signature =
            key.sign(&signed_bytes(group, &ca, &cert, expires, group_key.as_deref())).map_err(Error::crypto)?;
        Ok(Self { group: group.to_string(), ca, cert, expires, revocations, key: group_key, signature })
    }

    /// The one-line text form.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: 1,
            group: self.group.clone(),
            ca: b64().encode(&self.ca),
            cert: b64().encode(&self.cert),
            expires: self.expires,
            revocations: self.revocations.as_ref().map(|r| b64().encode(r)),
            key: self.key.as_ref().map(|k| b64().encode(k)),
            sig: b64().encode(&self.signature),
        };
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        format!("{PREFIX}{}", b64().encode(json))
    }

    /// Reads the text form (surrounding whitespace is ignored).
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Invalid(format!("not a valid invitation: {why}"));
        let text = text.trim();
        if text.len() > MAX_TEXT {
            return Err(bad(format!("longer than {MAX_TEXT} characters")));
        }
        let body = text.strip_prefix(PREFIX).ok_or_else(|| bad(format!("it does not start with {PREFIX:?}")))?;
        let json = b64().decode(body).map_err(|e| bad(format!("broken base64url ({e}); was it cut short?")))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
        if wire.v != 1 {
            return Err(bad(format!("version {} is not known to this Shoal", wire.v)));
        }
        crate::group::check_group_name(&wire.group).map_err(|e| bad(e.to_string()))?;
        let field = |name: &str, v: &str| b64().decode(v).map_err(|e| bad(format!("{name}: {e}")));
        Ok(Self {
            ca: field("ca", &wire.ca)?,
            cert: field("cert", &wire.cert)?,
            revocations: wire.revocations.as_deref().map(|r| field("revocations", r)).transpose()?,
            key: wire.key.as_deref().map(|k| field("key", k)).transpose()?,
            signature: field("sig", &wire.sig)?,
            group: wire.group,
            expires: wire.expires,
        })
    }

    /// Checks the invitation for the node `me`: not expired, the certificate signed by the
    /// authority and for `me`'s key. Returns the authority's and the member's certificates and
    /// the verified revocation list.
    pub(crate) fn check(
        &self,
        me: IdentityId,
    ) -> Result<(CertificateDer<'static>, CertificateDer<'static>, Option<RevocationList>), Error> {
        let ca_info = CertInfo::parse(&self.ca, "the invitation's authority certificate")?;
        let authority = ca_info.identity.ok_or_else(|| {
            Error::Invalid("the invitation's authority is not a Shoal group (its key is not Ed25519)".into())
        })?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, authority.0)
            .verify(
                &signed_bytes(&self.group, &self.ca, &self.cert, self.expires, self.key.as_deref()),
                &self.signature,
            )
            .map_err(|_| Error::Invalid("the invitation's signature does not verify: it was altered".into()))?;
        if self.expires < now() {
            return Err(Error::Invalid(format!(
                "the invitation to {:?} expired {}; ask the group's authority for a new one",
                self.group,
                crate::when(self.expires)
            )));
        }
        if !ca_info.is_ca {
            return Err(Error::Invalid("the invitation's authority certificate is not a CA certificate".into()));
        }
        let info = CertInfo::parse(&self.cert, "the invitation's member certificate")?;
        if info.identity != Some(me) {
            return Err(Error::Invalid(format!(
                "this invitation is for the identity {}, not this node's {me}",
                info.identity.map_or_else(|| info.member_label(), |id| id.to_string())
            )));
        }
        let ca = CertificateDer::from(self.ca.clone());
        let cert = CertificateDer::from(self.cert.clone());
        crate::tls::verify_chain(&ca, &cert, UnixTime::now())
            .map_err(|e| Error::Invalid(format!("the invitation's certificate is not signed by its authority: {e}")))?;
        let revocations = match &self.revocations {
            Some(bytes) => Some(RevocationList::verify(bytes, &authority.0)?),
            None => None,
        };
        if revocations.as_ref().is_some_and(|l| l.revoked.contains(&info.fingerprint)) {
            return Err(Error::Invalid("the authority has revoked this certificate".into()));
        }
        Ok((ca, cert, revocations))
    }
}
