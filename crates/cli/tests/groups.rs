//! Identities, groups and SSL torrents (libtorrent's scheme), through the `shoal` binary and
//! libtorrent 2.1 (`drivers/lt_client.py`), all on 127.0.0.1 with discovery off:
//!
//! - the group commands' round trip and their answers to bad input (exit 2, nothing stored);
//! - a libtorrent member downloads a Shoal group share from a Shoal seed while a Shoal member
//!   downloads it too;
//! - the seed lets nobody else in, one test each, while a member downloads undisturbed: a
//!   libtorrent peer with a certificate from another authority, a revoked Shoal member, a TLS
//!   client without a certificate, a member dialling with a wrong SNI, and a plain BitTorrent
//!   handshake on the normal port all receive no data (not even the seed's handshake);
//! - a revocation reaches a member through another member; a share for chosen people (`--to`);
//!   the daemon's identity and group methods and a group share it seeds;
//! - a Shoal member downloads from a libtorrent seed of an SSL torrent libtorrent made with a
//!   Shoal group's authority certificate.
//!
//! Every transfer ends with a byte-for-byte comparison.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;
#[path = "support/probe.rs"]
mod probe;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interop::{LISTEN_ANY, NO_DISCOVERY, START_TIMEOUT, TRANSFER_TIMEOUT, ok, shoal, shoal_create, spawn_get};
use people::{identity, invite_and_join, run, run_ok};
use probe::{bt_handshake, handshake_bytes_back, info_hash_bytes, member_client, tcp, tls_probe};
use shoal_testkit::{Proc, TempDir, compare_files, ensure_tools, make_test_file, python_lt, run_captured};

const MIB: u64 = 1024 * 1024;

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-groups-").tempdir().expect("temporary folder")
}

fn dh_params() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dh2048.pem")
}

/// A member certificate from `authority`'s `group` for a key made by a Shoal identity in
/// `key_dir` (the PEM private key libtorrent is given); returns (cert, key).
fn issue_for_libtorrent(authority: &Path, group: &str, key_dir: &Path) -> (PathBuf, PathBuf) {
    identity(key_dir);
    let key = key_dir.join("identity/key.pem");
    let cert = key_dir.join("lt-cert.pem");
    run_ok(
        authority,
        &["group", "issue", group, "--public-key", key.to_str().expect("utf-8"), "-o", cert.to_str().expect("utf-8")],
    );
    (cert, key)
}

/// A key made with the openssl tool, as a libtorrent user would (`algorithm`: `RSA` or
/// `EC`, P-256), and a member certificate for it from `authority`'s `group`, signed from its
/// public half (`group issue --public-key`); returns (cert, key).
fn openssl_member(authority: &Path, group: &str, dir: &Path, algorithm: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("folder");
    let (key, public, cert) = (dir.join("key.pem"), dir.join("public.pem"), dir.join("cert.pem"));
    let mut genkey = std::process::Command::new("openssl");
    genkey.args(["genpkey", "-algorithm", algorithm]);
    genkey.args(if algorithm == "EC" {
        ["-pkeyopt", "ec_paramgen_curve:P-256"]
    } else {
        ["-pkeyopt", "rsa_keygen_bits:2048"]
    });
    genkey.arg("-out").arg(&key);
    ok(ok(run_captured(genkey, START_TIMEOUT)).ok());
    let mut pubout = std::process::Command::new("openssl");
    pubout.args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public);
    ok(ok(run_captured(pubout, START_TIMEOUT)).ok());
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    run_ok(authority, &["group", "issue", group, "--public-key", &s(&public), "-o", &s(&cert), "--name", "lt user"]);
    (cert, key)
}

/// A revoked member (identity in `home`) runs `shoal get` against `peer`: it must end without
/// a single piece, told its certificate was revoked.
fn assert_revoked_gets_nothing(torrent: &Path, out: &Path, peer: &str, home: &Path) {
    let mut get = spawn_get(
        "revoked member",
        torrent,
        out,
        &["--peer", peer, "--data-dir", home.to_str().expect("utf-8"), "--timeout", "8"],
    );
    let status = ok(get.wait_exit(START_TIMEOUT));
    assert!(!status.success(), "{}", get.explain("a revoked member finished"));
    let said = get.output();
    assert!(said.contains("with 0 of"), "{}", get.explain("a revoked member got data"));
    assert!(said.contains("CertificateRevoked"), "{}", get.explain("no revocation named"));
}

fn ssl_args<'a>(cert: &'a Path, key: &'a Path, dh: &'a Path) -> Vec<&'a str> {
    let s = |p: &'a Path| p.to_str().expect("utf-8 path");
    vec!["--ssl-cert", s(cert), "--ssl-key", s(key), "--ssl-dh", s(dh)]
}

#[test]
fn group_commands_round_trip_and_bad_input_is_refused_with_exit_2() {
    let work = temp_dir();
    let (alice, bob, carol) = (work.path().join("alice"), work.path().join("bob"), work.path().join("carol"));
    let alice_id = identity(&alice);
    assert_eq!(identity(&alice), alice_id, "the identity must be kept");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&alice, &["identity", "--json", "--name", "Alice"])).expect("identity --json");
    assert_eq!(json["id"], alice_id.as_str());
    assert_eq!(json["name"], "Alice");
    run_ok(&alice, &["group", "create", "lab"]);
    let (code, _, err) = run(&alice, &["group", "create", "lab"]);
    assert_eq!((code, err.contains("exists already")), (2, true), "{err}");

    // An invitation for bob is refused by carol, and a cut or garbled one by anyone.
    let bob_id = identity(&bob);
    let invitation = run_ok(&alice, &["group", "invite", "lab", &bob_id]).trim().to_string();
    identity(&carol);
    for (text, says) in [
        (invitation.as_str(), "is for the identity"),
        (&invitation[..invitation.len() / 2], "not a valid invitation"),
        ("shoal-invite:%%%", "not a valid invitation"),
    ] {
        let (code, _, err) = run(&carol, &["group", "join", text]);
        assert_eq!(code, 2, "join {text:.40}: {err}");
        assert!(err.contains(says), "join {text:.40}: {err}");
    }
    assert!(run_ok(&carol, &["group", "list"]).contains("no groups"), "a refused invitation stored something");
    let (code, _, err) = run(&alice, &["group", "invite", "lab", "not-an-id"]);
    assert_eq!((code, err.contains("MEMBER_ID")), (2, true), "{err}");
    let not_pem = work.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let (code, _, err) = run(&alice, &["group", "issue", "lab", "--public-key", not_pem.to_str().expect("utf-8")]);
    assert_eq!((code, err.contains("not a PEM public key")), (2, true), "{err}");
    let (code, _, err) = run(&bob, &["group", "revoke", "lab", &alice_id]);
    assert_eq!((code, err.contains("no group called")), (2, true), "{err}");

    run_ok(&bob, &["group", "join", &invitation]);
    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(&alice, &["group", "list", "--json"])).expect("group list --json");
    assert_eq!(listed[0]["role"], "authority");
    assert_eq!(listed[0]["members"].as_array().map(Vec::len), Some(2));
    assert!(run_ok(&bob, &["group", "list"]).contains("lab  member"));
    run_ok(&alice, &["group", "revoke", "lab", &bob_id]);
    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(&alice, &["group", "list", "--json"])).expect("group list --json");
    assert_eq!((listed[0]["revocation_list"].as_u64(), listed[0]["revoked"].as_u64()), (Some(1), Some(1)));

    // A torrent of an unknown group, and one whose ssl-cert is damaged.
    let data = work.path().join("data.bin");
    make_test_file(&data, 100_000, 3);
    let torrent = work.path().join("g.torrent");
    let (code, _, err) = run(&alice, &["create", data.to_str().expect("utf-8"), "-o", "x.torrent", "--group", "nope"]);
    assert_eq!((code, err.contains("no group called")), (2, true), "{err}");
    run_ok(
        &alice,
        &["create", data.to_str().expect("utf-8"), "-o", torrent.to_str().expect("utf-8"), "--group", "lab"],
    );
    let mut bytes = std::fs::read(&torrent).expect("torrent");
    let at = bytes.windows(3).position(|w| w == b"MII").expect("a certificate") + 10;
    bytes[at..at + 40].fill(b'A');
    let damaged = work.path().join("damaged.torrent");
    std::fs::write(&damaged, &bytes).expect("write");
    let out = work.path().join("out");
    let (code, _, err) = run(&bob, &["get", damaged.to_str().expect("utf-8"), "-o", out.to_str().expect("utf-8")]);
    assert_eq!((code, err.contains("ssl-cert")), (2, true), "{err}");
    // Carol is in no group: she is told whose certificate she lacks and how to get one.
    let (code, _, err) = run(&carol, &["get", torrent.to_str().expect("utf-8"), "-o", out.to_str().expect("utf-8")]);
    assert_eq!((code, err.contains("shoal group join")), (2, true), "{err}");
}

/// A running `shoal share --group`: its plain and TLS addresses.
struct GroupShare {
    proc: Proc,
    plain: SocketAddr,
    tls: SocketAddr,
}

fn spawn_group_share(dir: &Path, data: &Path, torrent: &Path, group: &str) -> GroupShare {
    let mut cmd = shoal(["share"]);
    cmd.arg(data).arg("-o").arg(torrent).args(["--listen", LISTEN_ANY]).args(NO_DISCOVERY);
    cmd.args(["--group", group]).arg("--data-dir").arg(dir);
    let proc = ok(Proc::spawn("shoal share --group", cmd));
    let line = ok(proc.wait_for_line("group share of ", START_TIMEOUT));
    let tls = line.rsplit(' ').next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address in {line:?}"));
    let ready = ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    let plain = ready
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {ready:?}"));
    GroupShare { proc, plain, tls }
}

/// A TLS client that presents no certificate and accepts any server's.
fn no_certificate_client() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(algs)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A group share seeded by its authority (alice) with a member (bob) downloading it: the
/// setting of the tests below, in which someone else tries to get in meanwhile.
struct Lab {
    work: TempDir,
    alice: PathBuf,
    bob: PathBuf,
    data: PathBuf,
    torrent: PathBuf,
    hex: String,
    info_hash: [u8; 20],
    share: GroupShare,
}

impl Lab {
    /// `size` bytes shared with group "lab" of alice's node; bob is a member. `prepare` runs
    /// before the share starts (to revoke someone, for example).
    fn start(size: u64, prepare: impl FnOnce(&Path, &Path)) -> Lab {
        let work = temp_dir();
        let (alice, bob) = (work.path().join("alice"), work.path().join("bob"));
        run_ok(&alice, &["group", "create", "lab"]);
        invite_and_join(&alice, "lab", &bob);
        prepare(work.path(), &alice);
        let data = work.path().join("lecture.bin");
        make_test_file(&data, size, 7);
        let torrent = work.path().join("lecture.torrent");
        let hex = shoal_create(&data, &torrent, &["--group", "lab", "--data-dir", alice.to_str().expect("utf-8")]);
        let info_hash = info_hash_bytes(&hex);
        let share = spawn_group_share(&alice, &data, &torrent, "lab");
        Lab { work, alice, bob, data, torrent, hex, info_hash, share }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Bob starts downloading from alice.
    fn bob_downloads(&self) -> Proc {
        let seed = self.share.tls.to_string();
        spawn_get(
            "shoal member",
            &self.torrent,
            &self.dir("bob-out"),
            &["--peer", &seed, "--data-dir", self.bob.to_str().expect("utf-8")],
        )
    }

    /// Bob's download ends complete and equal to the data: the intruder did not disturb it.
    fn bob_finishes(&mut self, mut bob: Proc) {
        ok(bob.wait_success(TRANSFER_TIMEOUT));
        ok(compare_files(&self.data, self.dir("bob-out").join("lecture.bin")));
        ok(self.share.proc.terminate(Duration::from_secs(15)).map(drop));
    }
}

#[test]
fn a_libtorrent_member_and_a_shoal_member_download_a_group_share_at_once() {
    ensure_tools();
    let mut lab = Lab::start(24 * MIB + 4_321, |_, _| {});
    let (cert, key) = openssl_member(&lab.alice, "lab", &lab.dir("lt-member"), "EC");
    let lt_out = lab.dir("lt-out");
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.arg("--torrent").arg(&lab.torrent).arg("--save").arg(&lt_out).args(["--peer", &lab.share.tls.to_string()]);
    let dh = dh_params();
    cmd.args(ssl_args(&cert, &key, &dh));
    let mut lt_member = ok(Proc::spawn("lt member", cmd));
    let bob = lab.bob_downloads();
    ok(lt_member.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    ok(lt_member.wait_for_line("DONE ", Duration::ZERO));
    ok(compare_files(&lab.data, lt_out.join("lecture.bin")));
    lab.bob_finishes(bob);
}

#[test]
fn a_peer_with_a_certificate_from_another_authority_gets_nothing() {
    ensure_tools();
    let mut lab = Lab::start(16 * MIB, |_, _| {});
    // Carol runs a group of the same name: her authority is not alice's. Her certificate goes
    // to a libtorrent peer, which presents it to alice's seed.
    let carol = lab.dir("carol");
    run_ok(&carol, &["group", "create", "lab"]);
    let (cert, key) = issue_for_libtorrent(&carol, "lab", &lab.dir("lt-outsider"));
    let bob = lab.bob_downloads();
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", "8"]);
    cmd.arg("--torrent").arg(&lab.torrent).arg("--save").arg(lab.dir("outsider-out"));
    let dh = dh_params();
    cmd.args(["--peer", &lab.share.tls.to_string()]).args(ssl_args(&cert, &key, &dh));
    let mut outsider = ok(Proc::spawn("lt outsider", cmd));
    let status = ok(outsider.wait_exit(START_TIMEOUT));
    assert!(!status.success(), "{}", outsider.explain("an outsider finished"));
    assert!(outsider.output().contains("(0.00%"), "{}", outsider.explain("an outsider got data"));
    // And Shoal refuses carol's authority in a TLS handshake of its own.
    let carol_client = member_client(&carol, "lab", "lecture.bin");
    assert_eq!(tls_probe(lab.share.tls, carol_client, &lab.hex, &lab.info_hash), 0, "another authority's member");
    lab.bob_finishes(bob);
}

#[test]
fn a_revoked_member_gets_nothing() {
    let mut dave = PathBuf::new();
    let mut lab = Lab::start(16 * MIB, |work, alice| {
        dave = work.join("dave");
        invite_and_join(alice, "lab", &dave);
        run_ok(alice, &["group", "revoke", "lab", &identity(&dave)]);
    });
    let bob = lab.bob_downloads();
    assert_revoked_gets_nothing(&lab.torrent, &lab.dir("dave-out"), &lab.share.tls.to_string(), &dave);
    lab.bob_finishes(bob);
}

#[test]
fn a_peer_without_a_certificate_gets_nothing() {
    let mut lab = Lab::start(16 * MIB, |_, _| {});
    let bob = lab.bob_downloads();
    assert_eq!(tls_probe(lab.share.tls, no_certificate_client(), &lab.hex, &lab.info_hash), 0);
    lab.bob_finishes(bob);
}

#[test]
fn a_member_asking_with_a_wrong_sni_gets_nothing() {
    let mut lab = Lab::start(16 * MIB, |_, _| {});
    let bob = lab.bob_downloads();
    let client = member_client(&lab.bob, "lab", "lecture.bin");
    assert_eq!(tls_probe(lab.share.tls, client.clone(), &"ab".repeat(20), &lab.info_hash), 0, "a wrong SNI");
    // The probe itself works: the same member with the right SNI gets the seed's handshake.
    assert_eq!(tls_probe(lab.share.tls, client, &lab.hex, &lab.info_hash), 68, "the member probe was refused");
    lab.bob_finishes(bob);
}

#[test]
fn a_plain_handshake_on_the_normal_port_gets_nothing() {
    let mut lab = Lab::start(16 * MIB, |_, _| {});
    let bob = lab.bob_downloads();
    let mut plain = tcp(lab.share.plain);
    plain.write_all(&bt_handshake(&lab.info_hash)).expect("send");
    assert_eq!(handshake_bytes_back(&mut plain), 0, "a plain handshake on the normal port");
    lab.bob_finishes(bob);
}

#[test]
fn a_shoal_member_downloads_from_a_libtorrent_seed_of_a_libtorrent_made_group_torrent() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob) = (dir("alice"), dir("bob"));
    run_ok(&alice, &["group", "create", "club"]);
    invite_and_join(&alice, "club", &bob);
    let (cert, key) = openssl_member(&alice, "club", &dir("lt-seed"), "RSA");

    let src = dir("src");
    let data = src.join("notes.bin");
    make_test_file(&data, 12 * MIB + 99, 8);
    let torrent = dir("lt.torrent");
    let mut cmd = python_lt(["create", "--path"]);
    cmd.arg(&data).arg("--out").arg(&torrent).arg("--root-cert").arg(alice.join("groups/club/ca.pem"));
    ok(ok(run_captured(cmd, START_TIMEOUT)).ok());
    let mut cmd = python_lt(["seed", "--listen", "0", "--watch-stdin", "--torrent"]);
    cmd.arg(&torrent).arg("--save").arg(&src).args(ssl_args(&cert, &key, &dh_params()));
    let seed = ok(Proc::spawn("lt seed", cmd));
    let line = ok(seed.wait_for_line("SSL ", START_TIMEOUT));
    let peer = format!("127.0.0.1:{}", line["SSL ".len()..].trim());
    ok(seed.wait_for_line("READY ", START_TIMEOUT));

    let out = dir("out");
    let mut get =
        spawn_get("shoal member", &torrent, &out, &["--peer", &peer, "--data-dir", bob.to_str().expect("utf-8")]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(compare_files(&data, out.join("notes.bin")));
}

#[test]
fn a_revocation_reaches_a_member_through_another_member_and_is_enforced_there() {
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob, dave) = (dir("alice"), dir("bob"), dir("dave"));
    run_ok(&alice, &["group", "create", "lab"]);
    invite_and_join(&alice, "lab", &bob);
    invite_and_join(&alice, "lab", &dave);
    // Bob joined before the revocation: only a member can bring it to him.
    run_ok(&alice, &["group", "revoke", "lab", &identity(&dave)]);
    let revocation_list = |home: &Path| -> u64 {
        let listed: serde_json::Value =
            serde_json::from_str(&run_ok(home, &["group", "list", "--json"])).expect("group list --json");
        listed[0]["revocation_list"].as_u64().unwrap_or(0)
    };
    assert_eq!(revocation_list(&bob), 0);

    let data = dir("notes.bin");
    make_test_file(&data, 2 * MIB + 5, 9);
    let torrent = dir("notes.torrent");
    shoal_create(&data, &torrent, &["--group", "lab", "--data-dir", alice.to_str().expect("utf-8")]);
    let mut share = spawn_group_share(&alice, &data, &torrent, "lab");
    let bob_out = dir("bob-out");
    let alice_tls = share.tls.to_string();
    let bob_seed = spawn_get(
        "bob",
        &torrent,
        &bob_out,
        &["--peer", &alice_tls, "--seed", "--data-dir", bob.to_str().expect("utf-8")],
    );
    let line = ok(bob_seed.wait_for_line("private share of group lab", START_TIMEOUT));
    let bob_tls = line.rsplit(' ').next().expect("address").to_string();
    ok(bob_seed.wait_for_line("complete: ", TRANSFER_TIMEOUT));
    ok(compare_files(&data, bob_out.join("notes.bin")));
    ok(shoal_testkit::wait_until(Duration::from_secs(20), Duration::from_millis(100), || revocation_list(&bob) == 1)
        .map_err(|_| "bob never kept the revocation list alice's node passed on".to_string()));
    ok(share.proc.terminate(Duration::from_secs(15)).map(drop));

    // Dave asks Bob, who never talked to the authority about him.
    assert_revoked_gets_nothing(&torrent, &dir("dave-out"), &bob_tls, &dave);
}

#[test]
fn a_share_for_chosen_people_admits_them_and_tells_others_whose_it_is() {
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (alice, bob, carol) = (dir("alice"), dir("bob"), dir("carol"));
    let bob_id = identity(&bob);
    identity(&carol);
    let data = dir("draft.bin");
    make_test_file(&data, MIB + 17, 11);
    let torrent = dir("draft.torrent");
    let (d, t) = (data.to_str().expect("utf-8"), torrent.to_str().expect("utf-8"));
    let made = run_ok(&alice, &["create", d, "-o", t, "--to", &bob_id]);
    let invitation = made
        .lines()
        .find_map(|l| l.strip_prefix(&format!("invite {bob_id}: ")))
        .unwrap_or_else(|| panic!("no invitation for bob in:\n{made}"))
        .to_string();
    run_ok(&bob, &["group", "join", &invitation]);

    // The torrent made above is reused by `share --to` (no second authority).
    let mut cmd = shoal(["share"]);
    cmd.arg(&data).arg("-o").arg(&torrent).args(["--listen", LISTEN_ANY]).args(NO_DISCOVERY);
    cmd.args(["--to", &bob_id]).arg("--data-dir").arg(&alice);
    let share = ok(Proc::spawn("shoal share --to", cmd));
    let line = ok(share.wait_for_line("group share of ", START_TIMEOUT));
    let seed_tls = line.rsplit(' ').next().expect("address").to_string();
    assert!(share.output().contains("existing, matches the data"), "{}", share.explain("a new torrent was made"));

    let out = dir("bob-out");
    let mut get = spawn_get("bob", &torrent, &out, &["--peer", &seed_tls, "--data-dir", bob.to_str().expect("utf-8")]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(compare_files(&data, out.join("draft.bin")));
    let (code, _, err) = run(&carol, &["get", t, "-o", dir("carol-out").to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("members of group \"to-") && err.contains("shoal group join"), "{err}");
}

/// The RPC token of the daemon in the test below.
const TOKEN: &str = "group-test-token-0123456789";

/// One JSON-RPC call to the daemon on 127.0.0.1:`port` with [`TOKEN`]; returns the whole reply.
fn rpc(port: u16, method: &str, params: serde_json::Value) -> serde_json::Value {
    people::rpc(port, Some(TOKEN), method, params)
}

#[test]
fn the_daemon_runs_groups_over_rpc_and_seeds_a_group_share_to_a_member() {
    ensure_tools();
    let work = temp_dir();
    let dir = |n: &str| work.path().join(n);
    let (home, bob, carol) = (dir("daemon"), dir("bob"), dir("carol"));
    let start = |config: Option<&Path>| {
        let port = shoal_testkit::free_port();
        let mut cmd = shoal(["daemon", "--listen", LISTEN_ANY, "--rpc-listen"]);
        cmd.arg(format!("127.0.0.1:{port}")).args(NO_DISCOVERY).arg("--data-dir").arg(&home);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let daemon = ok(Proc::spawn("daemon", cmd));
        let line = ok(daemon.wait_for_line("group shares: TLS peers on ", START_TIMEOUT));
        let tls = line.rsplit(' ').next().expect("address").to_string();
        ok(daemon.wait_for_line("ready: ", START_TIMEOUT));
        (daemon, port, tls)
    };
    // Without RPC credentials, any local user could reach the RPC: it changes no group.
    let (mut open, port, _) = start(None);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "group.create", "params": {"name": "lab"}});
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let text = body.to_string();
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    assert!(reply.contains("needs the daemon's RPC credentials"), "{reply}");
    ok(open.terminate(Duration::from_secs(15)).map(drop));
    let config = dir("daemon.toml");
    std::fs::write(&config, format!("[rpc]\ntoken = \"{TOKEN}\"\n")).expect("config");
    let (mut daemon, port, daemon_tls) = start(Some(&config));

    // The same identity over JSON-RPC and XML-RPC.
    let id = rpc(port, "identity.get", serde_json::json!({}))["result"]["id"].as_str().expect("id").to_string();
    let script = "import sys, xmlrpc.client as x; \
                  print(x.ServerProxy(sys.argv[1], headers=[('Authorization', 'Bearer ' + sys.argv[2])]).identity.get()['id'])";
    let mut py = std::process::Command::new("python3");
    py.args(["-c", script, &format!("http://127.0.0.1:{port}/xmlrpc"), TOKEN]);
    let out = ok(ok(run_captured(py, START_TIMEOUT)).ok());
    assert_eq!(out.stdout.trim(), id, "XML-RPC and JSON-RPC disagree on the identity");

    let created = rpc(port, "group.create", serde_json::json!({"name": "lab"}));
    assert_eq!(created["result"]["role"], "authority", "{created}");
    let bad = rpc(port, "group.invite", serde_json::json!({"name": "lab", "member": "nobody"}));
    assert!(bad["error"]["message"].as_str().is_some_and(|m| m.contains("member")), "{bad}");
    let invited = rpc(port, "group.invite", serde_json::json!(["lab", identity(&bob)]));
    let invitation = invited["result"]["invitation"].as_str().unwrap_or_else(|| panic!("{invited}"));
    run_ok(&bob, &["group", "join", invitation]);

    // The daemon seeds a share of its own group; bob downloads it over TLS.
    let src = dir("src");
    let data = src.join("slides.bin");
    make_test_file(&data, 3 * MIB + 1, 12);
    let torrent = dir("slides.torrent");
    shoal_create(&data, &torrent, &["--group", "lab", "--data-dir", home.to_str().expect("utf-8")]);
    let b64 = people::torrent_b64(&torrent);
    let added =
        rpc(port, "torrent.add", serde_json::json!({"torrent": b64, "download_dir": src.to_str().expect("utf-8")}));
    let torrent_id = added["result"]["id"].as_u64().unwrap_or_else(|| panic!("{added}"));
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let t = rpc(port, "torrent.get", serde_json::json!({"ids": [torrent_id], "fields": ["state", "group"]}));
        t["result"][0]["group"] == "lab" && t["result"][0]["state"] == "seeding"
    }));
    let out = dir("bob-out");
    let mut get =
        spawn_get("bob", &torrent, &out, &["--peer", &daemon_tls, "--data-dir", bob.to_str().expect("utf-8")]);
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(compare_files(&data, out.join("slides.bin")));

    // A share of a group the daemon is not in is refused, and nothing is stored.
    run_ok(&carol, &["group", "create", "club"]);
    let other = dir("other.torrent");
    shoal_create(&data, &other, &["--group", "club", "--data-dir", carol.to_str().expect("utf-8")]);
    let b64 = people::torrent_b64(&other);
    let refused = rpc(port, "torrent.add", serde_json::json!({"torrent": b64}));
    let message = refused["error"]["message"].as_str().unwrap_or_else(|| panic!("{refused}"));
    assert!(message.contains("group \"club\"") && message.contains("shoal group join"), "{message}");
    let listed = rpc(port, "torrent.list", serde_json::json!({}));
    assert_eq!(listed["result"].as_array().map(Vec::len), Some(1), "{listed}");

    let revoked = rpc(port, "group.revoke", serde_json::json!({"name": "lab", "member": identity(&bob)}));
    assert_eq!(revoked["result"]["revocation_list"], 1, "{revoked}");
    let groups = rpc(port, "group.list", serde_json::json!({}));
    assert_eq!(groups["result"][0]["revoked"], 1, "{groups}");
    // The running share refuses bob from the moment the revocation was answered.
    assert_revoked_gets_nothing(&torrent, &dir("bob-again"), &daemon_tls, &bob);
    let status = ok(daemon.terminate(Duration::from_secs(15)));
    assert!(status.success(), "{}", daemon.explain("the daemon did not stop cleanly"));
}

#[test]
fn a_member_revoked_while_the_share_runs_is_refused_from_then_on() {
    let mut dave = PathBuf::new();
    let mut lab = Lab::start(2 * MIB, |work, alice| {
        dave = work.join("dave");
        invite_and_join(alice, "lab", &dave);
    });
    let dave_client = member_client(&dave, "lab", "lecture.bin");
    assert_eq!(tls_probe(lab.share.tls, dave_client.clone(), &lab.hex, &lab.info_hash), 68, "dave is a member yet");
    // Revoked in another process on the authority's node: the running share reads it.
    run_ok(&lab.alice, &["group", "revoke", "lab", &identity(&dave)]);
    ok(shoal_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
        tls_probe(lab.share.tls, dave_client.clone(), &lab.hex, &lab.info_hash) == 0
    })
    .map_err(|e| format!("the running share still admits a revoked member: {e}")));
    let bob = lab.bob_downloads();
    lab.bob_finishes(bob);
}
