//! Identity IDs: a node's Ed25519 public key in a form people can copy.
//!
//! An ID is the 32-byte public key followed by a 3-byte checksum (the first bytes of
//! SHA-256 over `"shoal-id"` and the key), in RFC 4648 base32: 56 characters, written in 8
//! groups of 7 joined by `-` (63 characters, about as long as a Syncthing device ID). Parsing
//! ignores case, dashes and spaces; a typo fails the checksum instead of naming someone else.
//! Because the ID *is* the key, an authority can issue a certificate from the ID alone.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Bytes of checksum after the key.
const CHECKSUM: usize = 3;
/// Characters of an ID without separators.
const CHARS: usize = 56;
/// Characters per group when written.
const GROUP: usize = 7;

/// A node's identity: its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityId(pub [u8; 32]);

/// Why a text is not an identity ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong number of characters.
    #[error("an identity ID has 56 letters and digits (8 groups of 7), got {0}")]
    Length(usize),
    /// A character outside A–Z and 2–7.
    #[error("an identity ID uses only the letters A-Z and the digits 2-7, got {0:?}")]
    Alphabet(char),
    /// Well formed but the checksum does not match: a typo.
    #[error("the identity ID has a typo: its checksum does not match")]
    Checksum,
}

fn checksum(key: &[u8; 32]) -> [u8; CHECKSUM] {
    let digest = Sha256::new().chain_update(b"shoal-id").chain_update(key).finalize();
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&digest[..CHECKSUM]);
    out
}

impl IdentityId {
    /// The ID without separators (56 characters).
    pub fn compact(&self) -> String {
        let mut bytes = self.0.to_vec();
        bytes.extend_from_slice(&checksum(&self.0));
        data_encoding::BASE32_NOPAD.encode(&bytes)
    }

    /// Whether `signature` is this identity's Ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, self.0).verify(message, signature).is_ok()
    }

    /// The first group of the ID, for tables where the whole ID does not fit.
    pub fn short(&self) -> String {
        self.compact()[..GROUP].to_string()
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compact = self.compact();
        for (i, chunk) in compact.as_bytes().chunks(GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            // Base32 output is ASCII.
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityId({self})")
    }
}

impl FromStr for IdentityId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let mut text = String::with_capacity(CHARS);
        for c in s.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = c.to_ascii_uppercase();
            if !(c.is_ascii_uppercase() || ('2'..='7').contains(&c)) {
                return Err(IdError::Alphabet(c));
            }
            text.push(c);
        }
        if text.len() != CHARS {
            return Err(IdError::Length(text.len()));
        }
        let bytes = data_encoding::BASE32_NOPAD.decode(text.as_bytes()).map_err(|_| IdError::Length(text.len()))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[..32]);
        if bytes[32..] != checksum(&key) {
            return Err(IdError::Checksum);
        }
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_63_characters_and_reads_back() {
        let id = IdentityId([7; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 63);
        assert_eq!(text.matches('-').count(), 7);
        assert_eq!(text.parse::<IdentityId>(), Ok(id));
        assert_eq!(text.to_lowercase().replace('-', " ").parse::<IdentityId>(), Ok(id));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let id = IdentityId(*b"0123456789abcdef0123456789abcdef");
        let text = id.compact();
        let mut caught = 0;
        let mut tried = 0;
        for i in 0..text.len() {
            for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".chars() {
                if text.as_bytes()[i] as char == c {
                    continue;
                }
                let mut typo = text.clone().into_bytes();
                typo[i] = c as u8;
                let typo = String::from_utf8(typo).expect("ascii");
                tried += 1;
                if typo.parse::<IdentityId>() != Ok(id) {
                    caught += 1;
                }
            }
        }
        assert_eq!(caught, tried);
    }

    #[test]
    fn wrong_length_and_alphabet_are_named() {
        assert_eq!("ABC".parse::<IdentityId>(), Err(IdError::Length(3)));
        assert_eq!("ABC1".parse::<IdentityId>(), Err(IdError::Alphabet('1')));
    }
}
