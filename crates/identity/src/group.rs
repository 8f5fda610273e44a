//! Groups: certificate authorities whose member certificates open SSL torrents.
//!
//! A group lives in `DATA_DIR/groups/NAME/`: `ca.pem` (the authority's certificate, which a
//! group share carries as `ssl-cert`), `member.pem` (this node's certificate from that
//! authority), `revocations.bin` (the newest signed revocation list known) and, on the node
//! that created the group only, `ca-key.pem` (the authority's key, which never leaves it) and
//! `members.json` (every certificate it issued).
//!
//! Member certificates carry the SubjectAltName DNS name `*`, so one certificate covers every
//! torrent of the group (libtorrent's rule for SSL torrents), and both TLS client and server
//! usages, since a peer both dials and accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, PublicKeyData, SerialNumber, SignatureAlgorithm, SubjectPublicKeyInfo,
};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::cert::{CertInfo, KeyKind, cert_from_pem, hex, now};
use crate::files::{FolderLock, lock_folder, private_dir, read_optional, read_text, write_private};
use crate::invite::Invitation;
use crate::revoke::RevocationList;
use crate::{Error, Identity, IdentityId};

/// The group's key for sealed shares, in the group's folder.
const GROUP_KEY_FILE: &str = "content.key";
/// Years an authority's certificate is valid.
const CA_YEARS: i64 = 20;
/// Years a member certificate is valid (revocation, not expiry, is how members leave).
const MEMBER_YEARS: i64 = 10;
/// Days an invitation can be used by default.
pub const INVITATION_DAYS: u32 = 7;

/// This node's part in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It holds the authority's key.
    Authority,
    /// It holds a member certificate.
    Member,
}

/// A certificate an authority issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member's identity ID, or `sha256:HEX` of an outside key.
    pub member: String,
    /// Key type (`ed25519`, `ecdsa-p256`, `rsa`).
    pub kind: String,
    /// A name given when it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Certificate serial number, hex.
    pub serial: String,
    /// Unix seconds.
    pub issued: i64,
    /// When it was revoked, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<i64>,
    /// SHA-256 of the key (SubjectPublicKeyInfo), hex.
    pub fingerprint: String,
}

/// What `group list` shows of one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupSummary {
    /// The group's name on this node.
    pub name: String,
    /// This node's part.
    pub role: Role,
    /// SHA-256 of the authority's key, hex.
    pub authority: String,
    /// Certificates issued (authority only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberRecord>,
    /// Number of the newest revocation list held (0: none).
    pub revocation_list: u64,
    /// Keys it revokes.
    pub revoked: usize,
    /// This node holds the group's key and can open its sealed shares (false for a seed-only
    /// member, such as a server peer).
    #[serde(default)]
    pub opens_sealed: bool,
}

/// What a node needs to take part in a group's SSL torrents.
#[derive(Clone, Debug)]
pub struct Membership {
    /// The group's name on this node.
    pub group: String,
    /// The authority's certificate.
    pub ca: CertificateDer<'static>,
    /// This node's member certificate.
    pub cert: CertificateDer<'static>,
    /// This node's key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    /// The authority's Ed25519 key, when it is one (revocation lists are signed with it).
    pub authority: Option<[u8; 32]>,
    /// The newest revocation list held.
    pub revocations: Option<RevocationList>,
}

/// The groups kept in a data folder.
#[derive(Clone, Debug)]
pub struct Groups {
    dir: PathBuf,
}

/// An Ed25519 public key given as raw bytes (a member known by its identity ID only).
struct RawEd25519([u8; 32]);

impl PublicKeyData for RawEd25519 {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// A group name: 1 to 64 of letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_group_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "a group name has 1 to 64 letters, digits, '.', '_' or '-' (not starting with '.'), got {name:?}"
        )))
    }
}

pub(crate) fn set_validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks that run a little behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

impl Groups {
    /// The groups of the data folder `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("groups") }
    }

    /// Changes to the groups run one at a time (threads of a daemon, other processes).
    fn lock(&self) -> Result<FolderLock, Error> {
        lock_folder(&self.dir)
    }

    fn group_dir(&self, name: &str) -> Result<PathBuf, Error> {
        check_group_name(name)?;
        Ok(self.dir.join(name))
    }

    fn existing(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.group_dir(name)?;
        if !dir.join("ca.pem").exists() {
            return Err(Error::NoGroup(name.to_string()));
        }
        Ok(dir)
    }

    /// Makes a group with this node as its authority (and first member).
    pub fn create(&self, identity: &Identity, name: &str) -> Result<GroupSummary, Error> {
        let dir = self.group_dir(name)?;
        let _lock = self.lock()?;
        if dir.join("ca.pem").exists() {
            return Err(Error::Invalid(format!("a group called {name:?} exists already")));
        }
        private_dir(&self.dir)?;
        private_dir(&dir)?;
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(Error::crypto)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::crypto)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Shoal group {name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, CA_YEARS);
        let ca = params.self_signed(&key).map_err(Error::crypto)?;
        write_private(&dir.join("ca-key.pem"), key.serialize_pem().as_bytes())?;
        write_private(&dir.join(GROUP_KEY_FILE), &crate::seal::GroupKey::generate()?.0)?;
        write_private(&dir.join("members.json"), b"[]")?;
        let (cert, _) = self.sign_member(&dir, &key, ca.der(), identity.key(), Some(identity.name()))?;
        write_private(&dir.join("member.pem"), pem_cert(&cert).as_bytes())?;
        // The CA goes last: its presence is what makes the group exist.
        write_private(&dir.join("ca.pem"), ca.pem().as_bytes())?;
        self.summary(name)
    }

    /// Makes the authority of one share for the chosen people (`shoal create --to`): a group
    /// named `to-` and eight random hex digits, with this node and each of `members` as
    /// members. Returns its name and one invitation per member, usable for `days` days.
    pub fn create_for(
        &self,
        identity: &Identity,
        members: &[IdentityId],
        days: u32,
    ) -> Result<(String, Vec<(IdentityId, Invitation)>), Error> {
        if members.is_empty() {
            return Err(Error::Invalid("--to names nobody".into()));
        }
        let name = format!("to-{:08x}", rand::random::<u32>());
        self.create(identity, &name)?;
        let mut invitations = Vec::new();
        for member in members {
            if *member == identity.id() {
                continue;
            }
            invitations.push((*member, self.invite(&name, *member, None, days, false)?));
        }
        Ok((name, invitations))
    }

    /// Signs a member certificate for `public_key` and records it.
    fn sign_member(
        &self,
        dir: &Path,
        ca_key: &KeyPair,
        ca_der: &CertificateDer<'_>,
        public_key: &impl PublicKeyData,
        name: Option<&str>,
    ) -> Result<(CertificateDer<'static>, MemberRecord), Error> {
        let alg = public_key.algorithm();
        let kind = if alg == &PKCS_ED25519 {
            KeyKind::Ed25519
        } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            KeyKind::EcdsaP256
        } else if [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_RSA_SHA384, &rcgen::PKCS_RSA_SHA512].contains(&alg) {
            KeyKind::Rsa
        } else {
            return Err(Error::Invalid(format!("a member key is Ed25519, ECDSA P-256 or RSA; this one is {alg:?}")));
        };
        let issuer = Issuer::from_ca_cert_der(ca_der, ca_key).map_err(Error::crypto)?;
        let spki = public_key.subject_public_key_info();
        let fp = crate::cert::fingerprint(&spki);
        let mut records = read_members(dir)?;
        if records.iter().any(|r| r.revoked.is_some() && r.fingerprint == hex(&fp)) {
            return Err(Error::Invalid(
                "that key was revoked from this group; a revoked key cannot be a member again".into(),
            ));
        }
        let mut params = CertificateParams::new(vec!["*".to_string()]).map_err(Error::crypto)?;
        let raw: Option<[u8; 32]> =
            (public_key.algorithm() == &PKCS_ED25519).then(|| public_key.der_bytes().try_into().ok()).flatten();
        let label = match raw {
            Some(raw) => IdentityId(raw).to_string(),
            None => format!("sha256:{}", hex(&fp)),
        };
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name.unwrap_or(&label));
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        set_validity(&mut params, MEMBER_YEARS);
        let cert = params.signed_by(public_key, &issuer).map_err(Error::crypto)?;
        let record = MemberRecord {
            member: label,
            kind: kind.as_str().to_string(),
            name: name.map(str::to_string),
            serial: hex(&serial.to_bytes()),
            issued: now(),
            revoked: None,
            fingerprint: hex(&fp),
        };
        records.push(record.clone());
        write_members(dir, &records)?;
        Ok((cert.der().clone(), record))
    }

    fn authority(&self, name: &str) -> Result<(PathBuf, KeyPair, CertificateDer<'static>), Error> {
        let dir = self.existing(name)?;
        let key_path = dir.join("ca-key.pem");
        let Some(key_pem) = read_text(&key_path)? else {
            return Err(Error::NotAuthority(name.to_string()));
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| Error::Corrupt(key_path, e.to_string()))?;
        let ca = self.ca_der(&dir)?;
        Ok((dir, key, ca))
    }

    fn ca_der(&self, dir: &Path) -> Result<CertificateDer<'static>, Error> {
        let path = dir.join("ca.pem");
        let pem = read_optional(&path)?.ok_or_else(|| Error::Corrupt(path.clone(), "missing".into()))?;
        cert_from_pem(&pem, &path.display().to_string())
    }

    /// An invitation carrying a member certificate for `member`, usable for `days` days, and
    /// the group's key for sealed shares unless `seed_only` (a member that only fetches and
    /// seeds, such as a server peer, gets no key).
    pub fn invite(
        &self,
        name: &str,
        member: IdentityId,
        label: Option<&str>,
        days: u32,
        seed_only: bool,
    ) -> Result<Invitation, Error> {
        self.invite_until(name, member, label, now() + i64::from(days) * 86_400, seed_only)
    }

    /// Like [`Self::invite`], usable until `expires` (Unix seconds).
    pub fn invite_until(
        &self,
        name: &str,
        member: IdentityId,
        label: Option<&str>,
        expires: i64,
        seed_only: bool,
    ) -> Result<Invitation, Error> {
        let _lock = self.lock()?;
        let (dir, key, ca) = self.authority(name)?;
        let group_key = match seed_only {
            true => None,
            false => Some(crate::seal::wrap_group_key(&self.authority_group_key(&dir)?, member)?),
        };
        let (cert, _) = self.sign_member(&dir, &key, &ca, &RawEd25519(member.0), label)?;
        let revocations = read_optional(&dir.join("revocations.bin"))?;
        Invitation::signed(&key, name, ca.to_vec(), cert.to_vec(), expires, revocations, group_key)
    }

    /// The authority's group key, made now for a group created before sealed shares existed.
    fn authority_group_key(&self, dir: &Path) -> Result<crate::seal::GroupKey, Error> {
        if let Some(key) = self.group_key_in(dir)? {
            return Ok(key);
        }
        let key = crate::seal::GroupKey::generate()?;
        write_private(&dir.join(GROUP_KEY_FILE), &key.0)?;
        Ok(key)
    }

    fn group_key_in(&self, dir: &Path) -> Result<Option<crate::seal::GroupKey>, Error> {
        let path = dir.join(GROUP_KEY_FILE);
        match read_optional(&path)? {
            None => Ok(None),
            Some(bytes) => bytes
                .try_into()
                .map(|k| Some(crate::seal::GroupKey(k)))
                .map_err(|_| Error::Corrupt(path, "not a 32-byte key".into())),
        }
    }

    /// The group's key for sealed shares, when this node holds it (the authority and the
    /// members invited with it; not a seed-only member).
    pub fn group_key(&self, name: &str) -> Result<Option<crate::seal::GroupKey>, Error> {
        let dir = self.existing(name)?;
        if read_text(&dir.join("ca-key.pem"))?.is_some() {
            let _lock = self.lock()?;
            return self.authority_group_key(&dir).map(Some);
        }
        self.group_key_in(&dir)
    }

    /// Signs a member certificate (PEM) for an outside key: `key_pem` is a PEM public key
    /// (Ed25519, ECDSA P-256 or RSA) or a private key whose public half is used.
    pub fn issue(&self, name: &str, key_pem: &str, label: Option<&str>) -> Result<String, Error> {
        let _lock = self.lock()?;
        let (dir, key, ca) = self.authority(name)?;
        let cert = if key_pem.contains("PRIVATE KEY-----") {
            let pair = KeyPair::from_pem(key_pem)
                .map_err(|e| Error::Invalid(format!("the key is not a usable PEM private key: {e}")))?;
            self.sign_member(&dir, &key, &ca, &pair, label)?.0
        } else if key_pem.contains("-----BEGIN PUBLIC KEY-----") {
            let spki = SubjectPublicKeyInfo::from_pem(key_pem).map_err(|e| {
                Error::Invalid(format!("the public key is not Ed25519, ECDSA P-256 or RSA, or does not parse: {e}"))
            })?;
            self.sign_member(&dir, &key, &ca, &spki, label)?.0
        } else {
            return Err(Error::Invalid(
                "the key file is not a PEM public key (-----BEGIN PUBLIC KEY-----); make one with \
                 `openssl pkey -in KEY.pem -pubout -out PUBLIC.pem`"
                    .into(),
            ));
        };
        Ok(pem_cert(&cert))
    }

    /// Stores an invitation's certificate: this node becomes a member of its group.
    pub fn join(&self, identity: &Identity, invitation: &Invitation) -> Result<GroupSummary, Error> {
        let name = invitation.group.as_str();
        let dir = self.group_dir(name)?;
        let (ca, cert, revocations) = invitation.check(identity.id())?;
        let _lock = self.lock()?;
        if dir.join("ca.pem").exists() {
            let existing = self.ca_der(&dir)?;
            if existing.as_ref() != ca.as_ref() {
                return Err(Error::Invalid(format!(
                    "this node already has a group called {name:?} with another authority"
                )));
            }
        }
        private_dir(&self.dir)?;
        private_dir(&dir)?;
        write_private(&dir.join("member.pem"), pem_cert(&cert).as_bytes())?;
        match &invitation.key {
            Some(wrapped) => {
                let key = crate::seal::unwrap_group_key(identity, wrapped)?;
                write_private(&dir.join(GROUP_KEY_FILE), &key.0)?;
            }
            // A seed-only membership: a key held from an earlier invitation goes.
            None => match std::fs::remove_file(dir.join(GROUP_KEY_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&dir.join(GROUP_KEY_FILE), e));
                }
                _ => {}
            },
        }
        if let Some(list) = revocations {
            self.store_revocations(&dir, &list)?;
        }
        write_private(&dir.join("ca.pem"), pem_cert(&ca).as_bytes())?;
        self.summary(name)
    }

    /// Revokes the certificates of `member` (an identity ID, `sha256:HEX` or a fingerprint
    /// prefix of at least 8 hex digits) and signs a new revocation list.
    pub fn revoke(&self, name: &str, member: &str) -> Result<(MemberRecord, RevocationList), Error> {
        let _lock = self.lock()?;
        let (dir, key, _) = self.authority(name)?;
        let mut records = read_members(&dir)?;
        let wanted = member.trim();
        let as_id = wanted.parse::<IdentityId>().ok().map(|id| id.to_string());
        let prefix = wanted.strip_prefix("sha256:").unwrap_or(wanted).to_ascii_lowercase();
        let matches = |r: &MemberRecord| {
            Some(&r.member) == as_id.as_ref()
                || (prefix.len() >= 8
                    && prefix.chars().all(|c| c.is_ascii_hexdigit())
                    && r.fingerprint.starts_with(&prefix))
        };
        let fingerprints: BTreeSet<String> =
            records.iter().filter(|r| matches(r)).map(|r| r.fingerprint.clone()).collect();
        if fingerprints.is_empty() {
            return Err(Error::Invalid(format!("group {name:?} has no member {wanted:?} (see `shoal group list`)")));
        }
        if fingerprints.len() > 1 {
            return Err(Error::Invalid(format!("{wanted:?} matches {} members; give more of it", fingerprints.len())));
        }
        let at = now();
        let mut revoked_one = None;
        for r in records.iter_mut().filter(|r| fingerprints.contains(&r.fingerprint)) {
            r.revoked.get_or_insert(at);
            revoked_one = Some(r.clone());
        }
        let record = revoked_one.ok_or_else(|| Error::Invalid("no member matched".into()))?;
        let all: BTreeSet<[u8; 32]> =
            records.iter().filter(|r| r.revoked.is_some()).filter_map(|r| unhex32(&r.fingerprint)).collect();
        let number = self.revocations_in(&dir)?.map_or(0, |l| l.number) + 1;
        let list = RevocationList::sign(&key, number, all)?;
        write_members(&dir, &records)?;
        write_private(&dir.join("revocations.bin"), &list.bytes)?;
        Ok((record, list))
    }

    /// The names of this node's groups, sorted.
    fn names(&self) -> Result<Vec<String>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_group_name(n).is_ok() && self.dir.join(n).join("ca.pem").exists())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The name of the group whose authority certificate is `ca`.
    fn name_of(&self, ca: &CertificateDer<'_>) -> Result<Option<String>, Error> {
        for name in self.names()? {
            if self.ca_der(&self.dir.join(&name))?.as_ref() == ca.as_ref() {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Every group of this node, by name.
    pub fn list(&self) -> Result<Vec<GroupSummary>, Error> {
        self.names()?.iter().map(|name| self.summary(name)).collect()
    }

    /// One group's summary.
    pub fn summary(&self, name: &str) -> Result<GroupSummary, Error> {
        let dir = self.existing(name)?;
        let ca = CertInfo::parse(&self.ca_der(&dir)?, "the group's authority certificate")?;
        let authority = dir.join("ca-key.pem").exists();
        let list = self.revocations_in(&dir)?;
        Ok(GroupSummary {
            name: name.to_string(),
            role: if authority { Role::Authority } else { Role::Member },
            authority: hex(&ca.fingerprint),
            members: if authority { read_members(&dir)? } else { Vec::new() },
            revocation_list: list.as_ref().map_or(0, |l| l.number),
            revoked: list.as_ref().map_or(0, |l| l.revoked.len()),
            // The authority makes its key when it first needs one.
            opens_sealed: authority || dir.join(GROUP_KEY_FILE).exists(),
        })
    }

    /// The authority certificate of a group, PEM (what `create --group` puts in a torrent).
    pub fn ca_pem(&self, name: &str) -> Result<String, Error> {
        let dir = self.existing(name)?;
        Ok(pem_cert(&self.ca_der(&dir)?))
    }

    /// The membership whose authority certificate is `ca` (a torrent's `ssl-cert`), if this
    /// node has one.
    pub fn membership_for(&self, identity: &Identity, ca: &CertificateDer<'_>) -> Result<Option<Membership>, Error> {
        self.name_of(ca)?.map(|name| self.membership(identity, &name)).transpose()
    }

    /// This node's membership of the group `name`.
    pub fn membership(&self, identity: &Identity, name: &str) -> Result<Membership, Error> {
        let dir = self.existing(name)?;
        let ca = self.ca_der(&dir)?;
        let member_path = dir.join("member.pem");
        let pem = read_optional(&member_path)?.ok_or_else(|| Error::Corrupt(member_path.clone(), "missing".into()))?;
        let cert = cert_from_pem(&pem, &member_path.display().to_string())?;
        let info = CertInfo::parse(&cert, "this node's member certificate")?;
        if info.identity != Some(identity.id()) {
            return Err(Error::Corrupt(member_path, "the member certificate is for another identity".into()));
        }
        let ca_info = CertInfo::parse(&ca, "the group's authority certificate")?;
        let authority = ca_raw_key(&ca_info);
        Ok(Membership {
            group: name.to_string(),
            ca,
            cert,
            key_pkcs8: identity.key().serialize_der(),
            authority,
            revocations: self.revocations_in(&dir)?,
        })
    }

    fn revocations_in(&self, dir: &Path) -> Result<Option<RevocationList>, Error> {
        let path = dir.join("revocations.bin");
        let Some(bytes) = read_optional(&path)? else { return Ok(None) };
        let ca = CertInfo::parse(&self.ca_der(dir)?, "the group's authority certificate")?;
        let Some(authority) = ca_raw_key(&ca) else { return Ok(None) };
        RevocationList::verify(&bytes, &authority).map(Some).map_err(|e| Error::Corrupt(path, e.to_string()))
    }

    fn store_revocations(&self, dir: &Path, list: &RevocationList) -> Result<bool, Error> {
        if self.revocations_in(dir)?.is_some_and(|old| old.number >= list.number) {
            return Ok(false);
        }
        write_private(&dir.join("revocations.bin"), &list.bytes)?;
        Ok(true)
    }

    /// Keeps `bytes` as the revocation list of the group whose authority certificate is `ca`
    /// when it verifies and is newer than the one held. Returns the list when it was kept.
    pub fn accept_revocations(&self, ca: &CertificateDer<'_>, bytes: &[u8]) -> Result<Option<RevocationList>, Error> {
        let ca_info = CertInfo::parse(ca, "the group's authority certificate")?;
        let Some(authority) = ca_raw_key(&ca_info) else { return Ok(None) };
        let list = RevocationList::verify(bytes, &authority)?;
        match self.name_of(ca)? {
            Some(name) => Ok(self.keep_revocations(&name, &list)?.then_some(list)),
            None => Ok(None),
        }
    }

    /// Keeps a verified list as group `name`'s when it is newer than the one kept. Returns
    /// whether it was kept.
    pub fn keep_revocations(&self, name: &str, list: &RevocationList) -> Result<bool, Error> {
        let dir = self.existing(name)?;
        let _lock = self.lock()?;
        self.store_revocations(&dir, list)
    }

    /// The revocation list kept for group `name`.
    pub fn revocations_of(&self, name: &str) -> Result<Option<RevocationList>, Error> {
        let dir = self.existing(name)?;
        self.revocations_in(&dir)
    }

    /// The authority-key fingerprint of the group `cert` shows `id` a member of, given that
    /// group's authority certificate `ca`: the chain holds and the certificate's key is `id`'s.
    /// (No revocation list is consulted: the caller holds none for a group it is not in.)
    pub fn member_of(ca: &CertificateDer<'_>, cert: &CertificateDer<'_>, id: IdentityId) -> Option<[u8; 32]> {
        crate::tls::verify_chain(ca, cert, rustls::pki_types::UnixTime::now()).ok()?;
        let info = CertInfo::parse(cert, "a member certificate").ok()?;
        let ca_info = CertInfo::parse(ca, "an authority certificate").ok()?;
        (info.identity == Some(id) && ca_info.is_ca).then_some(ca_info.fingerprint)
    }

    /// Whether `cert` shows that `id` is a member of group `name`: it chains to the group's
    /// authority, its key is `id`'s, and that key is not on the group's revocation list as
    /// this node holds it.
    pub fn vouches_for(&self, name: &str, cert: &CertificateDer<'_>, id: IdentityId) -> Result<bool, Error> {
        let dir = self.existing(name)?;
        let ca = self.ca_der(&dir)?;
        if crate::tls::verify_chain(&ca, cert, rustls::pki_types::UnixTime::now()).is_err() {
            return Ok(false);
        }
        let Ok(info) = CertInfo::parse(cert, "a member certificate") else { return Ok(false) };
        if info.identity != Some(id) {
            return Ok(false);
        }
        Ok(!self.revocations_in(&dir)?.is_some_and(|list| list.revoked.contains(&info.fingerprint)))
    }
}

fn ca_raw_key(ca: &CertInfo) -> Option<[u8; 32]> {
    ca.identity.map(|id| id.0)
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()?;
    bytes.try_into().ok()
}

fn read_members(dir: &Path) -> Result<Vec<MemberRecord>, Error> {
    let path = dir.join("members.json");
    match read_text(&path)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| Error::Corrupt(path, e.to_string())),
        None => Ok(Vec::new()),
    }
}

fn write_members(dir: &Path, records: &[MemberRecord]) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(records).map_err(Error::crypto)?;
    write_private(&dir.join("members.json"), &bytes)
}

/// A certificate as PEM text.
pub fn pem_cert(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
