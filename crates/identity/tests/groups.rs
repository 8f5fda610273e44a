//! Groups end to end in real folders: create, invite, join, issue, revoke, and TLS handshakes
//! between members (rustls on both sides, bytes passed in memory).

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConnection, ServerConnection};
use shoal_identity::{Groups, Identity, Invitation, Revoked, Role, peer_tls, server_name};

fn node(dir: &Path, name: &str) -> (Identity, Groups) {
    let (identity, _) = Identity::load_or_create(dir, Some(name)).expect("identity");
    (identity, Groups::new(dir))
}

/// Runs a TLS handshake between a dialler and an acceptor; Ok when both sides finish.
fn handshake(client: &shoal_identity::PeerTls, server: &shoal_identity::PeerTls, sni: &str) -> Result<(), String> {
    let mut c =
        ClientConnection::new(client.client.clone(), server_name(sni).expect("sni")).map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server.server.clone()).map_err(|e| e.to_string())?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| format!("server: {e}"))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            // TLS 1.3: the server sees the client's certificate in the client's last flight.
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| format!("server: {e}"))?;
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

#[test]
fn an_invited_member_and_the_authority_complete_a_handshake_and_outsiders_do_not() {
    let (a_dir, b_dir, c_dir) =
        (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"), tempfile::tempdir().expect("c"));
    let (alice, alice_groups) = node(a_dir.path(), "alice");
    let (bob, bob_groups) = node(b_dir.path(), "bob");
    let (carol, carol_groups) = node(c_dir.path(), "carol");

    let summary = alice_groups.create(&alice, "lab").expect("create");
    assert_eq!(summary.role, Role::Authority);
    assert_eq!(summary.members.len(), 1, "the authority is its own first member");

    // An invitation is one line and is for one identity only.
    let invitation = alice_groups.invite("lab", bob.id(), Some("Bob"), 7, false).expect("invite").encode();
    assert!(!invitation.contains('\n'));
    let err = carol_groups.join(&carol, &Invitation::decode(&invitation).expect("decode")).expect_err("not carol's");
    assert!(err.to_string().contains("is for the identity"), "{err}");
    let joined = bob_groups.join(&bob, &Invitation::decode(&invitation).expect("decode")).expect("join");
    assert_eq!(joined.role, Role::Member);
    assert!(bob_groups.revoke("lab", &alice.id().to_string()).is_err(), "a member cannot revoke");

    // Carol has a group of her own with the same name: another authority.
    carol_groups.create(&carol, "lab").expect("carol's lab");

    let torrent = "lecture.mp4";
    let info_hash = "0123456789abcdef0123456789abcdef01234567";
    let tls = |id: &Identity, groups: &Groups| {
        let m = groups.membership(id, "lab").expect("membership");
        peer_tls(&m, torrent, Arc::new(Revoked::default())).expect("tls")
    };
    let (a, b, c) = (tls(&alice, &alice_groups), tls(&bob, &bob_groups), tls(&carol, &carol_groups));
    handshake(&b, &a, info_hash).expect("bob dials alice");
    handshake(&a, &b, info_hash).expect("alice dials bob");
    assert!(handshake(&c, &a, info_hash).is_err(), "carol's certificate is from another authority");
    assert!(handshake(&a, &c, info_hash).is_err(), "alice must refuse carol's server certificate");

    // Revoking Bob: a new signed list; with it in force Alice refuses him both ways.
    let (record, list) = alice_groups.revoke("lab", &bob.id().to_string()).expect("revoke");
    assert!(record.revoked.is_some());
    assert_eq!(list.number, 1);
    let a_revoking = {
        let m = alice_groups.membership(&alice, "lab").expect("membership");
        let revoked = Arc::new(Revoked::default());
        let held = m.revocations.clone().expect("list stored");
        assert!(revoked.update(held.number, held.revoked.clone()));
        peer_tls(&m, torrent, revoked).expect("tls")
    };
    assert!(handshake(&b, &a_revoking, info_hash).is_err(), "a revoked member gets in");
    assert!(handshake(&a_revoking, &b, info_hash).is_err(), "a revoked member is accepted as server");
    // Bob's node takes the list when a member passes it on, and can no longer be re-invited.
    let ca = alice_groups.membership(&alice, "lab").expect("m").ca;
    assert!(bob_groups.accept_revocations(&ca, &list.bytes).expect("accept").is_some());
    assert!(bob_groups.accept_revocations(&ca, &list.bytes).expect("again").is_none(), "not newer");
    assert!(alice_groups.invite("lab", bob.id(), None, 7, false).is_err());
    let listed = alice_groups.list().expect("list");
    assert_eq!(listed[0].revoked, 1);
}

#[test]
fn bad_invitations_are_refused_with_a_reason_and_store_nothing() {
    let (a_dir, b_dir) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
    let (alice, alice_groups) = node(a_dir.path(), "alice");
    let (bob, bob_groups) = node(b_dir.path(), "bob");
    alice_groups.create(&alice, "club").expect("create");
    let good = alice_groups.invite("club", bob.id(), None, 7, false).expect("invite");

    for (text, expect) in [
        ("hello", "does not start with"),
        ("shoal-invite:!!!", "base64url"),
        (&good.encode()[..60], "not a valid invitation"),
    ] {
        let err = Invitation::decode(text).expect_err(text);
        assert!(err.to_string().contains(expect), "{text}: {err}");
    }
    let mut moved = good.clone();
    moved.expires += 86_400;
    let err = bob_groups.join(&bob, &moved).expect_err("a moved expiry");
    assert!(err.to_string().contains("signature does not verify"), "{err}");
    let expired = alice_groups.invite_until("club", bob.id(), None, 1_000_000, false).expect("an old invitation");
    let err = bob_groups.join(&bob, &Invitation::decode(&expired.encode()).expect("decode")).expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
    let mut forged = good.clone();
    let (carol_dir, _) = (tempfile::tempdir().expect("c"), ());
    let (carol, carol_groups) = node(carol_dir.path(), "carol");
    carol_groups.create(&carol, "club").expect("carol");
    forged.ca = carol_groups.membership(&carol, "club").expect("m").ca.to_vec();
    let err = bob_groups.join(&bob, &forged).expect_err("forged");
    assert!(err.to_string().contains("signature does not verify"), "{err}");
    assert!(bob_groups.list().expect("list").is_empty(), "a refused invitation stored something");
    bob_groups.join(&bob, &good).expect("the good one still works");
}

#[test]
fn outside_keys_get_certificates_and_unsupported_ones_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let (alice, groups) = node(dir.path(), "alice");
    groups.create(&alice, "lab").expect("create");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for (file, kind) in [("rsa-public.pem", "rsa"), ("p256-public.pem", "ecdsa-p256")] {
        let pem = std::fs::read_to_string(here.join(file)).expect("key");
        let cert = groups.issue("lab", &pem, Some(file)).expect(file);
        let der = shoal_identity::cert_from_pem(cert.as_bytes(), "cert").expect("pem");
        let info = shoal_identity::CertInfo::parse(&der, "cert").expect("parse");
        assert_eq!(info.kind.as_str(), kind);
        assert!(info.covers("any torrent"));
    }
    let p384 = std::fs::read_to_string(here.join("p384-public.pem")).expect("key");
    let err = groups.issue("lab", &p384, None).expect_err("p384");
    assert!(err.to_string().contains("Ed25519, ECDSA P-256 or RSA"), "{err}");
    let err = groups.issue("lab", "not a key", None).expect_err("text");
    assert!(err.to_string().contains("not a PEM public key"), "{err}");
    let summary = groups.summary("lab").expect("summary");
    assert_eq!(summary.members.len(), 3);
    // Revoking by fingerprint prefix.
    let rsa = summary.members.iter().find(|m| m.kind == "rsa").expect("rsa");
    groups.revoke("lab", &rsa.fingerprint[..12]).expect("revoke by prefix");
}

#[test]
fn an_invitation_carries_the_group_key_for_its_member_alone_unless_it_is_seed_only() {
    let (a_dir, b_dir, s_dir) =
        (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"), tempfile::tempdir().expect("s"));
    let (alice, alice_groups) = node(a_dir.path(), "alice");
    let (bob, bob_groups) = node(b_dir.path(), "bob");
    let (server, server_groups) = node(s_dir.path(), "server");
    alice_groups.create(&alice, "lab").expect("create");
    let key = alice_groups.group_key("lab").expect("read").expect("the authority holds the key");

    let invitation = alice_groups.invite("lab", bob.id(), None, 7, false).expect("invite");
    assert!(invitation.key.is_some());
    // The wrapped key is signed with the rest: a changed one is refused.
    let mut altered = invitation.clone();
    if let Some(k) = altered.key.as_mut() {
        k[40] ^= 1;
    }
    let err = bob_groups.join(&bob, &Invitation::decode(&altered.encode()).expect("decode")).expect_err("altered");
    assert!(err.to_string().contains("signature"), "{err}");
    bob_groups.join(&bob, &Invitation::decode(&invitation.encode()).expect("decode")).expect("join");
    assert_eq!(bob_groups.group_key("lab").expect("read"), Some(key.clone()));

    // A seed-only member (a server peer) is a member without the key.
    let seed_only = alice_groups.invite("lab", server.id(), None, 7, true).expect("invite");
    assert!(seed_only.key.is_none());
    server_groups.join(&server, &Invitation::decode(&seed_only.encode()).expect("decode")).expect("join");
    assert_eq!(server_groups.group_key("lab").expect("read"), None);
    assert!(server_groups.membership(&server, "lab").is_ok(), "the server is a member all the same");
    // Each node's summary says whether it can open sealed shares.
    assert!(!server_groups.summary("lab").expect("summary").opens_sealed, "a seed-only member shown as opening");
    assert!(bob_groups.summary("lab").expect("summary").opens_sealed);
    assert!(alice_groups.summary("lab").expect("summary").opens_sealed);

    // A sealed header made with the key opens for bob, not for another group's key.
    let manifest = shoal_identity::seal::Manifest { name: "x".into(), folder: false, files: Vec::new() };
    let (sealed, _) = shoal_identity::seal::Sealed::make(&key, &manifest).expect("seal");
    let bob_key = bob_groups.group_key("lab").expect("read").expect("key");
    assert_eq!(sealed.open(&bob_key).expect("open").1, manifest);
}
