//! Signed revocation lists: which member keys a group's authority has revoked.
//!
//! Shoal members refuse a revoked certificate in the TLS handshake and pass the newest list
//! they hold to the members they meet, so a revocation reaches members the authority never
//! talks to. The list is Shoal's own compact format rather than an X.509 CRL because it names
//! keys (any certificate for a revoked key is refused, whoever issued it later) and is checked
//! with one Ed25519 signature:
//!
//! ```text
//! "SHOALRL1" | authority key (32) | number (u64 BE) | issued (u64 BE, Unix s) |
//! count (u32 BE) | count x SHA-256 of a revoked SubjectPublicKeyInfo (32 each) |
//! Ed25519 signature by the authority over everything before it (64)
//! ```
//!
//! A list replaces an older one of the same authority when its number is higher.

use std::collections::BTreeSet;

use rcgen::{KeyPair, SigningKey};

use crate::Error;

const MAGIC: &[u8; 8] = b"SHOALRL1";
const HEADER: usize = 8 + 32 + 8 + 8 + 4;
const SIGNATURE: usize = 64;
/// Most entries a list may hold: a list this long (about 1 MB) still fits in one peer
/// message (peers refuse messages over 1 MiB).
pub const MAX_REVOKED: usize = 32_000;

/// A verified (or freshly signed) revocation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    /// The authority's Ed25519 public key.
    pub authority: [u8; 32],
    /// Higher numbers replace lower ones.
    pub number: u64,
    /// When it was signed, Unix seconds.
    pub issued: u64,
    /// SHA-256 fingerprints of revoked SubjectPublicKeyInfos.
    pub revoked: BTreeSet<[u8; 32]>,
    /// The signed encoding.
    pub bytes: Vec<u8>,
}

impl RevocationList {
    /// Signs a list with the authority's key.
    pub(crate) fn sign(key: &KeyPair, number: u64, revoked: BTreeSet<[u8; 32]>) -> Result<Self, Error> {
        let authority: [u8; 32] =
            key.public_key_raw().try_into().map_err(|_| Error::Invalid("the authority key is not Ed25519".into()))?;
        if revoked.len() > MAX_REVOKED {
            return Err(Error::Invalid(format!("a revocation list holds at most {MAX_REVOKED} keys")));
        }
        let issued = crate::cert::now().max(0) as u64;
        let mut bytes = Vec::with_capacity(HEADER + revoked.len() * 32 + SIGNATURE);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&authority);
        bytes.extend_from_slice(&number.to_be_bytes());
        bytes.extend_from_slice(&issued.to_be_bytes());
        bytes.extend_from_slice(&(revoked.len() as u32).to_be_bytes());
        for fp in &revoked {
            bytes.extend_from_slice(fp);
        }
        let signature = key.sign(&bytes).map_err(Error::crypto)?;
        bytes.extend_from_slice(&signature);
        Ok(Self { authority, number, issued, revoked, bytes })
    }

    /// Reads and verifies a list; `authority` is the key it must be signed by.
    pub fn verify(bytes: &[u8], authority: &[u8; 32]) -> Result<Self, Error> {
        let list = Self::decode(bytes)?;
        if &list.authority != authority {
            return Err(Error::Invalid("the revocation list is from another authority".into()));
        }
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, authority)
            .verify(signed, signature)
            .map_err(|_| Error::Invalid("the revocation list's signature does not verify".into()))?;
        Ok(list)
    }

    /// The number in a list's header, read without checking anything else (to drop a list
    /// that is not newer before verifying it).
    pub fn peek_number(bytes: &[u8]) -> Option<u64> {
        (bytes.len() >= HEADER && &bytes[..8] == MAGIC)
            .then(|| u64::from_be_bytes(bytes[40..48].try_into().unwrap_or_default()))
    }

    /// Reads a list without checking its signature (see [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::Invalid(format!("bad revocation list: {why}"));
        if bytes.len() < HEADER + SIGNATURE {
            return Err(bad("too short"));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a Shoal revocation list"));
        }
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let mut authority = [0u8; 32];
        authority.copy_from_slice(&bytes[8..40]);
        let (number, issued) = (word(40), word(48));
        let count = u32::from_be_bytes(bytes[56..60].try_into().unwrap_or_default()) as usize;
        if count > MAX_REVOKED {
            return Err(bad("too many entries"));
        }
        if bytes.len() != HEADER + count * 32 + SIGNATURE {
            return Err(bad("its length does not match its entry count"));
        }
        let revoked = bytes[HEADER..HEADER + count * 32]
            .chunks_exact(32)
            .map(|c| {
                let mut fp = [0u8; 32];
                fp.copy_from_slice(c);
                fp
            })
            .collect();
        Ok(Self { authority, number, issued, revoked, bytes: bytes.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_verifies_and_any_change_breaks_it() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let authority: [u8; 32] = key.public_key_raw().try_into().expect("ed25519");
        let list = RevocationList::sign(&key, 3, [[1u8; 32], [2u8; 32]].into()).expect("sign");
        let back = RevocationList::verify(&list.bytes, &authority).expect("verify");
        assert_eq!(back, list);
        for i in 0..list.bytes.len() {
            let mut bad = list.bytes.clone();
            bad[i] ^= 1;
            assert!(RevocationList::verify(&bad, &authority).is_err(), "byte {i} changed and still verified");
        }
        let other = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let other: [u8; 32] = other.public_key_raw().try_into().expect("ed25519");
        assert!(RevocationList::verify(&list.bytes, &other).is_err());
        assert!(RevocationList::decode(&list.bytes[..list.bytes.len() - 1]).is_err());
    }
}
