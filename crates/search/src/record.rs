//! Publication records: what a publisher says about a torrent, signed by its identity.
//!
//! A record is JSON: a [`RecordBody`] and an Ed25519 signature (hex) by the identity the body
//! names as publisher, over `shoal-record-v1\n` followed by the body's JSON as this crate writes
//! it (fields in declaration order, no unknown field accepted, so the bytes signed are the bytes
//! checked). Everything in a record is bounded ([`Record::check`]): an index never stores more
//! than a few kilobytes per record, whoever sends it.

use serde::{Deserialize, Serialize};
use shoal_identity::{Identity, IdentityId};
use shoal_proto::Metainfo;

/// Files listed in a record (a torrent with more lists its first ones and counts the rest).
pub const MAX_FILES_LISTED: usize = 100;
/// Tags per record.
pub const MAX_TAGS: usize = 16;
/// Characters per tag.
pub const MAX_TAG_CHARS: usize = 32;
/// Characters of a name or a file path.
pub const MAX_NAME_CHARS: usize = 512;
/// Trackers per record.
pub const MAX_TRACKERS: usize = 8;
/// Bytes of a record's JSON.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Files a record may count (a torrent's own limit).
pub const MAX_FILE_COUNT: u64 = 1_000_000;
/// How far in the future a record's time may be (clocks differ).
pub const MAX_CLOCK_SKEW: u64 = 600;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

const CONTEXT: &[u8] = b"shoal-record-v1\n";

/// Why a record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A field is missing, malformed or over its bound.
    #[error("bad record: {0}")]
    Invalid(String),
    /// The signature is not the publisher's.
    #[error("the record's signature is not its publisher's ({0}): it was altered or forged")]
    BadSignature(String),
}

/// One file as a record lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileItem {
    /// Its path in the torrent, components joined with `/`.
    pub path: String,
    /// Its length.
    pub size: u64,
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// The torrent's info-hash, 40 lower-case hex digits.
    pub info_hash: String,
    /// The torrent's name.
    pub name: String,
    /// Total bytes.
    pub size: u64,
    /// Its first files (at most [`MAX_FILES_LISTED`]).
    pub files: Vec<FileItem>,
    /// How many files it has.
    pub file_count: u64,
    /// Words the publisher adds.
    pub tags: Vec<String>,
    /// Trackers of the torrent (for the magnet link).
    pub trackers: Vec<String>,
    /// For a group share: the SHA-256 fingerprint (hex) of the group authority's key; only
    /// the group's members are shown the record.
    pub group: Option<String>,
    /// The publisher's identity ID.
    pub publisher: String,
    /// When it was published, Unix seconds.
    pub published_at: u64,
}

/// A signed record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// What it says.
    pub body: RecordBody,
    /// The publisher's Ed25519 signature, hex.
    pub signature: String,
}

fn signed_bytes(body: &RecordBody) -> Vec<u8> {
    let mut out = CONTEXT.to_vec();
    out.extend(serde_json::to_vec(body).unwrap_or_default());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn chars_ok(s: &str, max: usize) -> bool {
    !s.chars().any(char::is_control) && s.chars().count() <= max
}

impl Record {
    /// A record of `meta` with `tags`, signed by `identity`, dated `now` (Unix seconds).
    pub fn publish(meta: &Metainfo, tags: &[String], identity: &Identity, now: u64) -> Result<Record, RecordError> {
        let files: Vec<FileItem> = meta
            .info
            .files
            .iter()
            .filter(|f| !f.padding)
            .take(MAX_FILES_LISTED)
            .map(|f| FileItem { path: f.path.join("/"), size: f.length })
            .collect();
        let group = match &meta.info.ssl_cert {
            Some(pem) => {
                let ca = shoal_identity::cert_from_pem(pem.as_bytes(), "the torrent's ssl-cert")
                    .map_err(|e| RecordError::Invalid(e.to_string()))?;
                let info = shoal_identity::CertInfo::parse(&ca, "the torrent's ssl-cert")
                    .map_err(|e| RecordError::Invalid(e.to_string()))?;
                Some(hex(&info.fingerprint))
            }
            None => None,
        };
        let body = RecordBody {
            info_hash: meta.info_hash.to_hex(),
            name: meta.info.name.clone(),
            size: meta.info.total_length(),
            file_count: meta.info.files.iter().filter(|f| !f.padding).count() as u64,
            files,
            tags: tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect(),
            trackers: meta.trackers().iter().take(MAX_TRACKERS).map(|t| t.to_string()).collect(),
            group,
            publisher: identity.id().compact(),
            published_at: now,
        };
        let mut body = body;
        // Long paths: fewer of them listed, so the record fits.
        while serde_json::to_vec(&body).map_or(0, |v| v.len()) + 256 > MAX_RECORD_BYTES && !body.files.is_empty() {
            body.files.pop();
        }
        Record::sign(body, identity)
    }

    /// Signs `body` with `identity` (which must be the body's publisher) and checks the result.
    pub fn sign(body: RecordBody, identity: &Identity) -> Result<Record, RecordError> {
        let signature = identity.sign(&signed_bytes(&body)).map_err(|e| RecordError::Invalid(e.to_string()))?;
        let record = Record { body, signature: hex(&signature) };
        record.check()?;
        Ok(record)
    }

    /// Checks every bound and the signature; returns the publisher.
    pub fn check(&self) -> Result<IdentityId, RecordError> {
        let b = &self.body;
        let bad = |why: String| Err(RecordError::Invalid(why));
        if b.info_hash.len() != 40 || !b.info_hash.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return bad(format!("info_hash {:?} is not 40 lower-case hex digits", b.info_hash));
        }
        if b.name.is_empty() || !chars_ok(&b.name, MAX_NAME_CHARS) {
            return bad(format!("the name is empty, too long or holds control characters ({} chars)", b.name.len()));
        }
        if b.files.len() > MAX_FILES_LISTED || (b.files.len() as u64) > b.file_count {
            return bad(format!("{} files listed for {} (at most {MAX_FILES_LISTED})", b.files.len(), b.file_count));
        }
        if let Some(f) = b.files.iter().find(|f| !chars_ok(&f.path, MAX_NAME_CHARS) || f.path.is_empty()) {
            return bad(format!("a file path is empty, too long or holds control characters: {:?}", f.path));
        }
        if b.tags.len() > MAX_TAGS || b.tags.iter().any(|t| t.is_empty() || !chars_ok(t, MAX_TAG_CHARS)) {
            return bad(format!("at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} printable characters"));
        }
        if b.trackers.len() > MAX_TRACKERS || b.trackers.iter().any(|t| !chars_ok(t, MAX_NAME_CHARS)) {
            return bad(format!("at most {MAX_TRACKERS} trackers"));
        }
        let lower_hex = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if b.group.as_ref().is_some_and(|g| g.len() != 64 || !lower_hex(g)) {
            return bad("group is not a SHA-256 fingerprint in lower-case hex".into());
        }
        if b.file_count > MAX_FILE_COUNT {
            return bad(format!("{} files; a record counts at most {MAX_FILE_COUNT}", b.file_count));
        }
        if b.published_at > now().saturating_add(MAX_CLOCK_SKEW) {
            return bad("published_at is in the future".into());
        }
        let publisher: IdentityId =
            b.publisher.parse().map_err(|e| RecordError::Invalid(format!("publisher {:?}: {e}", b.publisher)))?;
        // One spelling per identity, so that limits and ownership compare like with like.
        if b.publisher != publisher.compact() {
            return bad("publisher is not written in its compact form".into());
        }
        let signature =
            unhex(&self.signature).ok_or_else(|| RecordError::Invalid("the signature is not hex".into()))?;
        if !publisher.verify(&signed_bytes(b), &signature) {
            return Err(RecordError::BadSignature(publisher.to_string()));
        }
        Ok(publisher)
    }

    /// Reads a record's JSON (at most [`MAX_RECORD_BYTES`]) and checks it.
    pub fn from_json(bytes: &[u8]) -> Result<(Record, IdentityId), RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Invalid(format!(
                "{} bytes; a record has at most {MAX_RECORD_BYTES}",
                bytes.len()
            )));
        }
        let record: Record = serde_json::from_slice(bytes).map_err(|e| RecordError::Invalid(e.to_string()))?;
        let publisher = record.check()?;
        Ok((record, publisher))
    }

    /// A magnet link to the torrent, with its name and trackers.
    pub fn magnet(&self) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    b => format!("%{b:02X}"),
                })
                .collect()
        };
        let mut link = format!("magnet:?xt=urn:btih:{}&dn={}", self.body.info_hash, enc(&self.body.name));
        for t in &self.body.trackers {
            link.push_str(&format!("&tr={}", enc(t)));
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(identity: &Identity, name: &str, hash: char) -> Record {
        let body = RecordBody {
            info_hash: hash.to_string().repeat(40),
            name: name.into(),
            size: 1000,
            files: vec![FileItem { path: format!("{name}/a.txt"), size: 1000 }],
            file_count: 1,
            tags: vec!["docs".into()],
            trackers: Vec::new(),
            group: None,
            publisher: identity.id().compact(),
            published_at: 1,
        };
        let signature = hex(&identity.sign(&signed_bytes(&body)).expect("sign"));
        Record { body, signature }
    }

    #[test]
    fn a_signed_record_checks_and_an_altered_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(dir.path(), None).expect("identity");
        let record = sample(&me, "debian-13-netinst", 'a');
        assert_eq!(record.check(), Ok(me.id()));
        let json = serde_json::to_vec(&record).expect("json");
        assert_eq!(Record::from_json(&json).map(|(_, id)| id), Ok(me.id()));
        let mut altered = record.clone();
        altered.body.name = "something else".into();
        assert!(matches!(altered.check(), Err(RecordError::BadSignature(_))));
        let mut forged = record.clone();
        let other = tempfile::tempdir().expect("tempdir");
        let (them, _) = Identity::load_or_create(other.path(), None).expect("identity");
        forged.body.publisher = them.id().compact();
        assert!(matches!(forged.check(), Err(RecordError::BadSignature(_))), "a record claimed another publisher");
        let mut extra = serde_json::to_value(&record).expect("json");
        extra["body"]["evil"] = serde_json::json!(1);
        assert!(Record::from_json(extra.to_string().as_bytes()).is_err(), "an unknown field was taken");
        // One spelling per identity: the grouped form, even signed, is refused.
        let mut spelled = sample(&me, "x", 'b');
        spelled.body.publisher = me.id().to_string();
        spelled.signature = hex(&me.sign(&signed_bytes(&spelled.body)).expect("sign"));
        assert!(matches!(spelled.check(), Err(RecordError::Invalid(_))), "another spelling of the publisher");
        let mut future = sample(&me, "x", 'c');
        future.body.published_at = u64::MAX;
        future.signature = hex(&me.sign(&signed_bytes(&future.body)).expect("sign"));
        assert!(matches!(future.check(), Err(RecordError::Invalid(_))), "a record from the future");
        let mut many = record;
        many.body.tags = (0..20).map(|i| format!("t{i}")).collect();
        assert!(matches!(many.check(), Err(RecordError::Invalid(_))));
        assert!(Record::from_json(&vec![b' '; MAX_RECORD_BYTES + 1]).is_err());
    }
}
