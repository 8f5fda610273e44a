//! This node's identity: an Ed25519 key pair and a self-signed certificate, kept in
//! `DATA_DIR/identity/` (the key readable by the owner only).

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ED25519};
use serde::{Deserialize, Serialize};

use crate::files::{private_dir, read_text, write_private};
use crate::{Error, IdentityId};

/// This node's identity.
#[derive(Debug)]
pub struct Identity {
    key: KeyPair,
    id: IdentityId,
    name: String,
    cert_pem: String,
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    name: String,
}

/// Years a self-signed identity certificate is valid.
const SELF_CERT_YEARS: i64 = 20;

impl Identity {
    /// The identity in `data_dir`, made on first use. `name` sets (or changes) the display name.
    /// Returns whether it was created now.
    pub fn load_or_create(data_dir: &Path, name: Option<&str>) -> Result<(Self, bool), Error> {
        if let Some(name) = name {
            check_name(name)?;
        }
        let dir = data_dir.join("identity");
        let key_path = dir.join("key.pem");
        let (key, created) = match read_text(&key_path)? {
            Some(pem) => (KeyPair::from_pem(&pem).map_err(|e| Error::Corrupt(key_path.clone(), e.to_string()))?, false),
            None => {
                private_dir(data_dir)?;
                private_dir(&dir)?;
                let key = KeyPair::generate_for(&PKCS_ED25519).map_err(Error::crypto)?;
                write_private(&key_path, key.serialize_pem().as_bytes())?;
                (key, true)
            }
        };
        let raw: [u8; 32] = key
            .public_key_raw()
            .try_into()
            .map_err(|_| Error::Corrupt(key_path.clone(), "not an Ed25519 key".into()))?;
        let id = IdentityId(raw);
        let meta_path = dir.join("identity.json");
        let stored: Option<Meta> = read_text(&meta_path)?.and_then(|t| serde_json::from_str(&t).ok());
        let cert_path = dir.join("cert.pem");
        let old_cert = read_text(&cert_path)?;
        let wanted_name = name.map(str::to_string).or(stored.as_ref().map(|m| m.name.clone()));
        let name = wanted_name.clone().unwrap_or_else(|| format!("shoal-{}", id.short().to_lowercase()));
        let renamed = stored.as_ref().map(|m| &m.name) != Some(&name);
        let cert_pem = match old_cert {
            Some(pem) if !renamed => pem,
            _ => {
                let pem = self_signed(&key, &name)?;
                write_private(&cert_path, pem.as_bytes())?;
                let meta = serde_json::to_vec_pretty(&Meta { name: name.clone() }).map_err(Error::crypto)?;
                write_private(&meta_path, &meta)?;
                pem
            }
        };
        Ok((Self { key, id, name, cert_pem, dir }, created))
    }

    /// The identity ID (the public key).
    pub fn id(&self) -> IdentityId {
        self.id
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The self-signed certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The folder the identity lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key pair (signs TLS handshakes and group certificates).
    pub(crate) fn key(&self) -> &KeyPair {
        &self.key
    }

    /// An Ed25519 signature of `message` by this identity (see [`IdentityId::verify`]).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use rcgen::SigningKey;
        self.key.sign(message).map_err(Error::crypto)
    }
}

/// A display name: printable, at most 64 characters.
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!("a name has 1 to 64 printable characters, got {name:?}")));
    }
    Ok(())
}

fn self_signed(key: &KeyPair, name: &str) -> Result<String, Error> {
    let mut params = CertificateParams::new(vec!["*".to_string()]).map_err(Error::crypto)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    crate::group::set_validity(&mut params, SELF_CERT_YEARS);
    Ok(params.self_signed(key).map_err(Error::crypto)?.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, created) = Identity::load_or_create(dir.path(), None).expect("create");
        assert!(created);
        let (b, created) = Identity::load_or_create(dir.path(), None).expect("load");
        assert!(!created);
        assert_eq!(a.id(), b.id());
        assert_eq!(a.cert_pem(), b.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identity/key.pem")).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }
        let (c, _) = Identity::load_or_create(dir.path(), Some("Ada")).expect("rename");
        assert_eq!(c.name(), "Ada");
        assert_eq!(c.id(), a.id());
        let info = crate::CertInfo::parse(&crate::cert_from_pem(c.cert_pem().as_bytes(), "cert").expect("pem"), "cert")
            .expect("parse");
        assert_eq!(info.identity, Some(a.id()));
        assert_eq!(info.common_name.as_deref(), Some("Ada"));
        let (d, _) = Identity::load_or_create(dir.path(), None).expect("load");
        assert_eq!(d.name(), "Ada");
    }
}
