//! Sealed shares: content only a group's members can read, even on peers that store and serve
//! it (a server peer).
//!
//! Keys, from the outside in:
//! - the **group key**: 32 random bytes made by the group's authority (`content.key` in the
//!   group's folder). An invitation carries it wrapped for the invited identity alone
//!   ([`wrap_group_key`]: X25519 with the identity's Ed25519 key in its Montgomery form, an
//!   ephemeral key, HKDF-SHA256, AES-256-GCM; the recipient stanza of `age` is the model), unless
//!   the invitation is for a member that should only fetch and seed (a server peer): then it
//!   carries none.
//! - the **content key** of one sealed share: 32 random bytes, stored in the torrent wrapped
//!   under the group key ([`Sealed`]), so the torrent itself tells nothing to whoever lacks the
//!   group key.
//! - per file, a key derived from the content key (HKDF, the file's index): the file is cut in
//!   chunks of [`CHUNK`] bytes, each sealed with AES-256-GCM (nonce: the chunk's index, and a flag
//!   on the last chunk, so chunks cannot be reordered, dropped or the file cut short unnoticed,
//!   the STREAM construction). The manifest (the share's real name and file paths and lengths) is
//!   sealed under a key of its own derived the same way.
//!
//! The torrent lists ciphertext files (`000000`, `000001`, ... under a random name), so its
//! piece hashes cover ciphertext: a peer that alters a piece is caught by the normal piece
//! check before anything is decrypted. AEAD and HKDF are `ring`'s; X25519 is `x25519-dalek`
//! and the Ed25519-to-X25519 conversion `ed25519-dalek`'s, from the same `curve25519-dalek`.
//!
//! What a peer without the group key (a server peer, a non-member who got the ciphertext)
//! still learns: the number of files, each file's size (within 16 bytes per 64 KiB), the
//! total size, when the share was made and pushed, and which peers fetch it when. It does not
//! learn names, paths or content.

use std::io::{Read, Write};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::{Error, Identity, IdentityId};

/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
/// Bytes each chunk grows by (the AEAD tag).
pub const TAG: usize = 16;
/// Longest sealed manifest read (a share of very many files).
pub const MAX_MANIFEST: usize = 4 << 20;

const MAGIC: &[u8; 8] = b"SHOALSL1";

/// A group's key for sealed shares.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey(pub(crate) [u8; 32]);

/// The key of one sealed share.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey([u8; 32]);

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

fn random32() -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    SystemRandom::new().fill(&mut out).map_err(|_| Error::Crypto("no randomness".into()))?;
    Ok(out)
}

impl GroupKey {
    /// A new random key.
    pub fn generate() -> Result<Self, Error> {
        random32().map(Self)
    }
}

impl ContentKey {
    /// A new random key.
    pub fn generate() -> Result<Self, Error> {
        random32().map(Self)
    }

    /// A name for the share's ciphertext that tells nothing: `sealed-` and 16 hex digits
    /// derived from the key.
    pub fn share_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        format!("sealed-{}", crate::hex(&digest.as_ref()[..8]))
    }
}

/// An AES-256-GCM key derived from `secret` for `purpose`.
fn derive(secret: &[u8], purpose: &[u8]) -> LessSafeKey {
    struct Len;
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"shoal sealed v1").extract(secret);
    let info = [purpose];
    let mut key = [0u8; 32];
    // Expanding to 32 bytes with SHA-256 cannot fail.
    if let Ok(okm) = prk.expand(&info, Len) {
        let _ = okm.fill(&mut key);
    }
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key")))
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[0] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn seal(key: &LessSafeKey, n: Nonce, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    // Sealing in memory only fails for inputs over AES-GCM's length limit (64 GiB).
    let _ = key.seal_in_place_append_tag(n, Aad::from(aad), &mut buf);
    buf
}

fn open(key: &LessSafeKey, n: Nonce, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    let mut buf = sealed.to_vec();
    let plain = key
        .open_in_place(n, Aad::from(aad), &mut buf)
        .map_err(|_| Error::Invalid(format!("{what} does not open with this key")))?;
    let len = plain.len();
    buf.truncate(len);
    Ok(buf)
}

/// The X25519 public key of an identity (its Ed25519 key in Montgomery form).
fn x25519_public(id: IdentityId) -> Result<x25519_dalek::PublicKey, Error> {
    let ed = ed25519_dalek::VerifyingKey::from_bytes(&id.0)
        .map_err(|_| Error::Invalid(format!("{id} is not a usable public key")))?;
    Ok(x25519_dalek::PublicKey::from(ed.to_montgomery().to_bytes()))
}

/// The X25519 secret of this node's identity.
fn x25519_secret(identity: &Identity) -> Result<x25519_dalek::StaticSecret, Error> {
    let der = identity.key().serialize_der();
    let ed = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
        .map_err(|e| Error::Crypto(format!("this node's identity key cannot be read: {e}")))?;
    Ok(x25519_dalek::StaticSecret::from(ed.to_scalar_bytes()))
}

fn box_key(shared: &[u8; 32], eph: &[u8; 32], to: &[u8; 32]) -> LessSafeKey {
    let mut purpose = b"group key for".to_vec();
    purpose.extend_from_slice(eph);
    purpose.extend_from_slice(to);
    derive(shared, &purpose)
}

/// The group key wrapped for `member` alone: 32 bytes of ephemeral public key, then the key
/// sealed (48 bytes).
pub fn wrap_group_key(key: &GroupKey, member: IdentityId) -> Result<Vec<u8>, Error> {
    let to = x25519_public(member)?;
    let eph = x25519_dalek::StaticSecret::from(random32()?);
    let eph_public = x25519_dalek::PublicKey::from(&eph);
    let shared = eph.diffie_hellman(&to);
    if !shared.was_contributory() {
        return Err(Error::Invalid(format!("{member} is not a usable public key")));
    }
    let sealed = seal(&box_key(shared.as_bytes(), eph_public.as_bytes(), to.as_bytes()), nonce(0, true), b"", &key.0);
    let mut out = eph_public.as_bytes().to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a group key wrapped for this node by [`wrap_group_key`].
pub fn unwrap_group_key(identity: &Identity, wrapped: &[u8]) -> Result<GroupKey, Error> {
    let bad = || Error::Invalid("the group key in the invitation is not for this node or was altered".into());
    if wrapped.len() != 32 + 32 + TAG {
        return Err(bad());
    }
    let secret = x25519_secret(identity)?;
    let me = x25519_dalek::PublicKey::from(&secret);
    let eph: [u8; 32] = wrapped[..32].try_into().map_err(|_| bad())?;
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(eph));
    let plain =
        open(&box_key(shared.as_bytes(), &eph, me.as_bytes()), nonce(0, true), b"", &wrapped[32..], "the group key")
            .map_err(|_| bad())?;
    plain.try_into().map(GroupKey).map_err(|_| bad())
}

/// One file of a sealed share as its members see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path components (below the share's folder for a folder).
    pub path: Vec<String>,
    /// Plaintext length.
    pub length: u64,
}

/// The names a sealed share hides: the share's own name and its files, in the order of the
/// ciphertext files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file's or folder's name.
    pub name: String,
    /// A folder (files below `name`) or one file.
    pub folder: bool,
    /// The files.
    pub files: Vec<ManifestFile>,
}

/// What a sealed torrent carries in its info dictionary (`shoal-sealed`): the content key
/// under the group key, and the manifest under the content key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The content key sealed under the group key (12-byte nonce, 32 + 16 bytes).
    pub wrapped: Vec<u8>,
    /// The manifest's JSON sealed under the content key.
    pub manifest: Vec<u8>,
}

impl Sealed {
    /// Seals `manifest` under a new content key wrapped with `group`; returns both.
    pub fn make(group: &GroupKey, manifest: &Manifest) -> Result<(Sealed, ContentKey), Error> {
        let content = ContentKey::generate()?;
        let mut n = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut n).map_err(|_| Error::Crypto("no randomness".into()))?;
        let mut wrapped = n.to_vec();
        wrapped.extend(seal(&derive(&group.0, b"content key"), Nonce::assume_unique_for_key(n), MAGIC, &content.0));
        let json = serde_json::to_vec(manifest).map_err(Error::crypto)?;
        let manifest = seal(&derive(&content.0, b"manifest"), nonce(0, true), MAGIC, &json);
        Ok((Sealed { wrapped, manifest }, content))
    }

    /// The content key and the manifest, with the group key.
    pub fn open(&self, group: &GroupKey) -> Result<(ContentKey, Manifest), Error> {
        if self.wrapped.len() != NONCE_LEN + 32 + TAG {
            return Err(Error::Invalid("the sealed share's key is malformed".into()));
        }
        let (n, body) = self.wrapped.split_at(NONCE_LEN);
        let n = Nonce::try_assume_unique_for_key(n).map_err(|_| Error::Invalid("bad nonce".into()))?;
        let key = open(&derive(&group.0, b"content key"), n, MAGIC, body, "the sealed share")?;
        let content = ContentKey(key.try_into().map_err(|_| Error::Invalid("bad content key".into()))?);
        let json = open(&derive(&content.0, b"manifest"), nonce(0, true), MAGIC, &self.manifest, "the manifest")?;
        let manifest: Manifest =
            serde_json::from_slice(&json).map_err(|e| Error::Invalid(format!("the sealed manifest: {e}")))?;
        Ok((content, manifest))
    }

    /// The bytes stored in the torrent: magic, wrapped key length (u16 BE), wrapped key,
    /// manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.wrapped.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped);
        out.extend_from_slice(&self.manifest);
        out
    }

    /// Reads [`Sealed::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::Invalid(format!("the torrent's sealed header is malformed: {why}"));
        let rest = bytes.strip_prefix(&MAGIC[..]).ok_or_else(|| bad("unknown format"))?;
        if rest.len() < 2 {
            return Err(bad("cut short"));
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let rest = &rest[2..];
        if rest.len() < n {
            return Err(bad("cut short"));
        }
        if rest.len() - n > MAX_MANIFEST {
            return Err(bad("the manifest is too large"));
        }
        Ok(Sealed { wrapped: rest[..n].to_vec(), manifest: rest[n..].to_vec() })
    }
}

/// Length of the sealed form of `plain` bytes (an empty file is one empty chunk).
pub fn sealed_len(plain: u64) -> u64 {
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    plain + chunks * TAG as u64
}

/// Length of the plaintext of a sealed file of `sealed` bytes; `None` when no plaintext has
/// that sealed length.
pub fn plain_len(sealed: u64) -> Option<u64> {
    let full = (CHUNK + TAG) as u64;
    let (chunks, rest) = (sealed / full, sealed % full);
    match rest {
        0 if chunks > 0 => Some(chunks * CHUNK as u64),
        r if r >= TAG as u64 && (r > TAG as u64 || chunks == 0) => Some(chunks * CHUNK as u64 + r - TAG as u64),
        _ => None,
    }
}

fn file_key(content: &ContentKey, index: u32) -> LessSafeKey {
    let mut purpose = b"file".to_vec();
    purpose.extend_from_slice(&index.to_be_bytes());
    derive(&content.0, &purpose)
}

/// Reads as many bytes as `buf` holds, fewer only at the end of `r`.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Seals file `index` of a share: `plain` bytes from `from` to `to`; `progress` is told the
/// plaintext bytes done.
pub fn seal_file(
    content: &ContentKey,
    index: u32,
    plain: u64,
    from: &mut impl Read,
    to: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let key = file_key(content, index);
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    let mut buf = vec![0u8; CHUNK + TAG];
    for i in 0..chunks {
        let want = (plain - i * CHUNK as u64).min(CHUNK as u64) as usize;
        let got = read_full(from, &mut buf[..want])?;
        if got != want {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while it was sealed"));
        }
        let mut chunk = buf[..want].to_vec();
        key.seal_in_place_append_tag(nonce(i, i + 1 == chunks), Aad::empty(), &mut chunk)
            .map_err(|_| std::io::Error::other("sealing failed"))?;
        to.write_all(&chunk)?;
        progress(want as u64);
    }
    Ok(())
}

/// Opens chunk `chunk` of file `index` (of `chunks` chunks) in place: `sealed` holds the chunk's
/// ciphertext and tag; returns its plaintext. Fails when the chunk was altered or is not that
/// chunk.
pub fn open_chunk<'a>(
    content: &ContentKey,
    index: u32,
    chunk: u64,
    chunks: u64,
    sealed: &'a mut [u8],
) -> Result<&'a mut [u8], Error> {
    file_key(content, index)
        .open_in_place(nonce(chunk, chunk + 1 == chunks), Aad::empty(), sealed)
        .map_err(|_| Error::Invalid("a sealed chunk does not open: the data was altered".into()))
}

/// Number of chunks of a file of `plain` bytes.
pub fn chunk_count(plain: u64) -> u64 {
    plain.div_ceil(CHUNK as u64).max(1)
}

/// Opens file `index` of a share: `sealed` bytes from `from`, the plaintext to `to`. Fails
/// (with `InvalidData`) when a chunk was altered, moved or cut.
pub fn open_file(
    content: &ContentKey,
    index: u32,
    sealed: u64,
    from: &mut impl Read,
    to: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let plain = plain_len(sealed).ok_or_else(|| invalid("the sealed file has an impossible length"))?;
    let chunks = chunk_count(plain);
    let mut buf = vec![0u8; CHUNK + TAG];
    for i in 0..chunks {
        let want = (plain - i * CHUNK as u64).min(CHUNK as u64) as usize + TAG;
        let got = read_full(from, &mut buf[..want])?;
        if got != want {
            return Err(invalid("the sealed file is cut short"));
        }
        let text = open_chunk(content, index, i, chunks, &mut buf[..want])
            .map_err(|_| invalid("a sealed chunk does not open: the data was altered"))?;
        to.write_all(text)?;
        progress(text.len() as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (id, _) = Identity::load_or_create(dir.path(), None).expect("identity");
        (dir, id)
    }

    #[test]
    fn a_group_key_opens_only_for_the_identity_it_was_wrapped_for() {
        let ((_a, alice), (_b, bob)) = (identity(), identity());
        let key = GroupKey::generate().expect("key");
        let wrapped = wrap_group_key(&key, bob.id()).expect("wrap");
        assert_eq!(unwrap_group_key(&bob, &wrapped).expect("bob opens it"), key);
        assert!(unwrap_group_key(&alice, &wrapped).is_err(), "alice opened bob's key");
        let mut altered = wrapped.clone();
        altered[40] ^= 1;
        assert!(unwrap_group_key(&bob, &altered).is_err(), "an altered key opened");
    }

    #[test]
    fn a_sealed_header_opens_with_the_group_key_only() {
        let manifest = Manifest {
            name: "holiday".into(),
            folder: true,
            files: vec![ManifestFile { path: vec!["a.jpg".into()], length: 5 }],
        };
        let group = GroupKey::generate().expect("key");
        let (sealed, content) = Sealed::make(&group, &manifest).expect("make");
        let again = Sealed::decode(&sealed.encode()).expect("decode");
        let (opened, m) = again.open(&group).expect("open");
        assert_eq!((opened, m), (content.clone(), manifest));
        assert!(again.open(&GroupKey::generate().expect("other")).is_err(), "another group's key opened it");
        assert!(content.share_name().starts_with("sealed-") && !content.share_name().contains("holiday"));
        assert!(Sealed::decode(b"SHOALSL1\xff").is_err());
    }

    #[test]
    fn files_round_trip_and_any_altered_cut_or_moved_chunk_is_refused() {
        let content = ContentKey::generate().expect("key");
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut sealed = Vec::new();
            seal_file(&content, 3, len as u64, &mut &plain[..], &mut sealed, |_| {}).expect("seal");
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "length of {len}");
            assert_eq!(plain_len(sealed.len() as u64), Some(len as u64));
            let mut back = Vec::new();
            open_file(&content, 3, sealed.len() as u64, &mut &sealed[..], &mut back, |_| {}).expect("open");
            assert_eq!(back, plain);
            // Another file's key (index), a flipped bit, a missing last chunk: refused.
            assert!(open_file(&content, 4, sealed.len() as u64, &mut &sealed[..], &mut Vec::new(), |_| {}).is_err());
            let mut flipped = sealed.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 0x80;
            assert!(open_file(&content, 3, flipped.len() as u64, &mut &flipped[..], &mut Vec::new(), |_| {}).is_err());
            if len > CHUNK {
                let cut = &sealed[..CHUNK + TAG];
                assert!(open_file(&content, 3, cut.len() as u64, &mut &cut[..], &mut Vec::new(), |_| {}).is_err());
            }
        }
        assert_eq!(plain_len(5), None);
        assert_eq!(plain_len((CHUNK + TAG) as u64 + 16), None, "an empty chunk after a full one");
    }
}
