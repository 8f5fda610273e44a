//! Fuzzes what Shoal's identities read from others: invitations (text from another person),
//! revocation lists (sent by peers), certificates (presented by peers) and sealed shares'
//! headers (in torrents). The first byte picks the decoder. No input may panic; a decoded invitation must encode to text that decodes to
//! the same value, and a decoded revocation list must hold its own bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_identity::seal::{Sealed, plain_len, sealed_len};
use shoal_identity::{CertInfo, Invitation, RevocationList};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if let Ok(inv) = Invitation::decode(text) {
                assert_eq!(Invitation::decode(&inv.encode()).ok(), Some(inv));
            }
        }
        1 => {
            if let Ok(list) = RevocationList::decode(rest) {
                assert_eq!(list.bytes, rest);
                // A list from anyone but the authority never verifies.
                assert!(RevocationList::verify(rest, &[7u8; 32]).is_err() || list.authority == [7u8; 32]);
            }
        }
        2 => {
            if let Ok(sealed) = Sealed::decode(rest) {
                assert_eq!(sealed.encode(), rest);
            }
            if rest.len() >= 8 {
                let n = u64::from_le_bytes(rest[..8].try_into().unwrap_or_default()) >> 8;
                if let Some(plain) = plain_len(n) {
                    assert_eq!(sealed_len(plain), n);
                }
            }
        }
        _ => {
            if let Ok(info) = CertInfo::parse(rest, "fuzz") {
                let _ = info.covers("name");
                let _ = info.member_label();
            }
        }
    }
});
