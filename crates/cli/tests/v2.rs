//! BitTorrent v2 (BEP 52) torrents made by libtorrent 2.1, read by Shoal's v2 parser
//! (`shoal_proto::metainfo::v2`): every file's `pieces root` equals the root Shoal computes from
//! the file's bytes, every piece layer adds up to its root and matches Shoal's per-piece roots,
//! and the v2 info-hash equals libtorrent's. A hybrid torrent is also read as the v1 torrent it
//! is; a v2-only one is read with its swarm named by the truncated v2 hash. Then transfers both
//! ways with libtorrent, of torrents libtorrent made and of torrents Shoal made (`--v2`,
//! `--hybrid`).

use std::path::Path;
use std::time::Duration;

use shoal_proto::metainfo::Metainfo;
use shoal_proto::metainfo::v2::{self, file_root, piece_root};
use shoal_testkit::{TempDir, ensure_tools, lt_create, make_test_file, python_lt, run_captured};

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-v2-").tempdir().expect("temporary folder")
}

/// libtorrent's v1 and v2 info-hashes of a torrent (hex; `-` when it has none).
fn lt_hashes(torrent: &Path) -> (String, String) {
    let mut cmd = python_lt(["info", "-v", "--torrent"]);
    cmd.arg(torrent);
    let out = run_captured(cmd, std::time::Duration::from_secs(60)).expect("lt info").ok().expect("lt info ran");
    let field = |name: &str| {
        out.stdout.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).expect("a hash line")
    };
    (field("v1:"), field("v2:"))
}

#[test]
fn libtorrent_v2_and_hybrid_torrents_agree_with_shoals_merkle_trees() {
    ensure_tools();
    let work = temp_dir();
    let folder = work.path().join("set");
    make_test_file(folder.join("big.bin"), 3 * 1024 * 1024 + 12_345, 61);
    make_test_file(folder.join("sub").join("small.bin"), 20_000, 62);
    make_test_file(folder.join("tiny.txt"), 100, 63);
    for format in ["v2", "hybrid"] {
        let torrent = work.path().join(format!("{format}.torrent"));
        lt_create(&folder, &torrent, &["--format", format, "--piece-size", "65536"]).expect("libtorrent creates it");
        let bytes = std::fs::read(&torrent).expect("read the torrent");
        let t = v2::parse(&bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(t.piece_length, 65_536);
        let names: Vec<String> = t.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(names, ["big.bin", "sub/small.bin", "tiny.txt"], "{format}");
        for file in &t.files {
            let data = std::fs::read(folder.join(file.path.join("/"))).expect("read the file");
            assert_eq!(file.pieces_root, Some(file_root(&data)), "{format}: {}", file.path.join("/"));
        }
        // The big file's layer: one root per 64 KiB piece, each Shoal's root of that piece.
        let big = &t.files[0];
        let data = std::fs::read(folder.join("big.bin")).expect("read");
        for (i, piece) in data.chunks(65_536).enumerate() {
            assert_eq!(t.piece_hash(big, i), Some(piece_root(piece, 65_536)), "{format}: piece {i}");
        }
        assert_eq!(t.piece_hash(big, data.len().div_ceil(65_536)), None);
        let (lt_v1, lt_v2) = lt_hashes(&torrent);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&t.info_hash_v2), lt_v2, "{format}: the v2 info-hash");
        assert_eq!(t.swarm_hash().to_hex(), lt_v2[..40], "{format}: the truncated v2 hash");
        match (format, Metainfo::from_bytes(&bytes)) {
            ("v2", Ok(m)) => {
                assert_eq!(m.v2_hash, Some(t.info_hash_v2));
                assert_eq!(m.info_hash, t.swarm_hash(), "a v2 swarm is named by the truncated v2 hash");
                assert_eq!(m.info.v2.as_ref().map(|c| c.len()), Some(m.info.layout.piece_count() as usize));
            }
            ("hybrid", Ok(m)) => assert_eq!(m.info_hash.to_hex(), lt_v1, "a hybrid is also its v1 torrent"),
            (f, other) => panic!("{f}: {other:?}"),
        }
    }
}

#[path = "support/interop.rs"]
mod interop;

use interop::{START_TIMEOUT, TRANSFER_TIMEOUT, ok, spawn_get, spawn_share, stop_cleanly, wait_get_complete};
use shoal_testkit::{Proc, assert_same_tree, spawn_lt_seed};

fn spawn_lt_leech(torrent: &Path, save: &Path, peer: &str) -> Proc {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.arg("--torrent").arg(torrent).arg("--save").arg(save).args(["--peer", peer]);
    ok(Proc::spawn("lt leech", cmd))
}

/// A libtorrent leecher of a magnet link (its metadata from peers), told of `peer` if given,
/// waited for until it has the whole of `folder` in `save`.
fn lt_fetch_magnet(magnet: &str, save: &Path, peer: Option<&str>, folder: &Path) {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    cmd.args(["--magnet", magnet]).arg("--save").arg(save);
    cmd.args(peer.map(|p| ["--peer", p]).into_iter().flatten());
    let mut leech = ok(Proc::spawn("lt leech --magnet", cmd));
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(folder, save.join("set"));
}

/// A folder of three files (one larger than many pieces, one in a subfolder, one tiny).
fn content(work: &Path) -> std::path::PathBuf {
    let folder = work.join("set");
    make_test_file(folder.join("big.bin"), 5 * 1024 * 1024 + 777, 71);
    make_test_file(folder.join("sub").join("small.bin"), 40_000, 72);
    make_test_file(folder.join("tiny.txt"), 10, 73);
    folder
}

#[test]
fn v2_and_hybrid_torrents_made_by_libtorrent_download_from_libtorrent_and_seed_to_it() {
    ensure_tools();
    let work = temp_dir();
    let folder = content(work.path());
    for format in ["v2", "hybrid"] {
        let torrent = work.path().join(format!("lt-{format}.torrent"));
        ok(lt_create(&folder, &torrent, &["--format", format, "--piece-size", "32768"]));
        // libtorrent seeds, Shoal downloads (v2: pieces checked by their Merkle roots).
        let (_seed, port) = ok(spawn_lt_seed(&torrent, work.path(), &[]));
        let out = work.path().join(format!("out-{format}"));
        let peer = format!("127.0.0.1:{port}");
        let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peer, "--no-trackers"]);
        wait_get_complete(&mut get);
        assert_same_tree(&folder, out.join("set"));
        assert!(!out.join("set").join(".pad").exists(), "{format}: padding is never written");
        // Shoal seeds the same torrent, libtorrent downloads.
        let mut share = spawn_share(&folder, &torrent, &[]);
        let save = work.path().join(format!("lt-out-{format}"));
        let mut leech = spawn_lt_leech(&torrent, &save, &share.addr.to_string());
        ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
        assert_same_tree(&folder, save.join("set"));
        stop_cleanly(&mut share.proc);
    }
}

#[test]
fn v2_and_hybrid_torrents_made_by_shoal_are_read_and_fetched_by_libtorrent() {
    ensure_tools();
    let work = temp_dir();
    let folder = content(work.path());
    for format in ["v2", "hybrid"] {
        let torrent = work.path().join(format!("shoal-{format}.torrent"));
        let flag = format!("--{format}");
        let mut share = spawn_share(&folder, &torrent, &[&flag, "--piece-size", "32k"]);
        let bytes = std::fs::read(&torrent).expect("the torrent");
        let t = v2::parse(&bytes).expect("Shoal's torrent has valid v2 parts");
        let (lt_v1, lt_v2) = lt_hashes(&torrent);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&t.info_hash_v2), lt_v2, "{format}: libtorrent reads the same v2 info-hash");
        assert_eq!(lt_v1 == "-", format == "v2", "{format}: a v1 part only in the hybrid ({lt_v1})");
        let save = work.path().join(format!("lt-out-{format}"));
        let mut leech = spawn_lt_leech(&torrent, &save, &share.addr.to_string());
        ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
        assert_same_tree(&folder, save.join("set"));
        stop_cleanly(&mut share.proc);
    }
}

/// The magnet link a running `shoal share` printed.
fn printed_magnet(share: &interop::Share) -> String {
    let line = ok(share.proc.wait_for_line("magnet: ", START_TIMEOUT));
    line["magnet: ".len()..].trim().to_owned()
}

/// libtorrent joins a v2-only torrent Shoal seeds knowing only its `urn:btmh` magnet link: the
/// info dictionary comes by BEP 9 (checked against the SHA-256 info-hash), then the piece
/// layers of every file larger than a piece by `hash request`s, which Shoal answers with
/// Merkle proofs up to each file's root — libtorrent checks every one before it takes a piece.
/// [`content`] plus a file of more than 512 pieces of 16 KiB, whose piece layer takes two hash
/// requests, each with uncle hashes up to the root.
fn content_with_long_layer(work: &Path) -> std::path::PathBuf {
    let folder = content(work);
    make_test_file(folder.join("long.bin"), 9 * 1024 * 1024 + 1, 74);
    folder
}

#[test]
fn libtorrent_fetches_a_v2_torrent_by_its_btmh_magnet_with_piece_layers_from_shoal() {
    ensure_tools();
    let work = temp_dir();
    let folder = content_with_long_layer(work.path());
    let torrent = work.path().join("shoal-v2.torrent");
    let share = spawn_share(&folder, &torrent, &["--v2", "--piece-size", "16k"]);
    let magnet = printed_magnet(&share);
    assert!(magnet.contains("xt=urn:btmh:1220") && !magnet.contains("urn:btih"), "{magnet}");
    let save = work.path().join("lt-out");
    lt_fetch_magnet(&magnet, &save, Some(&share.addr.to_string()), &folder);
}

/// Rewrites block `block` (16 KiB) of every `piece`-byte piece of `file` in place, so a seed
/// that already checked the file serves altered data.
fn alter_blocks(file: &Path, piece: u64, block: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(file).expect("the file").len();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).expect("open for writing");
    let mut at = block * 16_384;
    while at + 16_384 <= len {
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&[0x5a; 16_384]).expect("write");
        at += piece;
    }
    f.sync_all().expect("sync");
}

/// A libtorrent seed whose file was altered after it checked it serves a bad block in every
/// piece (block 5). Shoal's v2 check fails those pieces, asks for their block hashes (BEP 52
/// `hash request`, answered by the honest seed), finds that exactly block 5 is bad, bans the
/// liar, fetches only that block again from the honest seed, and completes with the original
/// bytes: a bad block is never taken as verified.
#[test]
fn a_lying_libtorrent_seed_is_banned_for_the_exact_block_it_altered() {
    ensure_tools();
    let work = temp_dir();
    let folder = work.path().join("set");
    make_test_file(folder.join("data.bin"), 3 * 1024 * 1024, 81);
    make_test_file(folder.join("notes.txt"), 3000, 82);
    let torrent = work.path().join("lt-v2.torrent");
    ok(lt_create(&folder, &torrent, &["--format", "v2", "--piece-size", "262144"]));
    // The honest seed is slow, so most blocks come from the liar at first.
    let (_honest, honest_port) = ok(spawn_lt_seed(&torrent, work.path(), &["--upload-limit", "1000000"]));
    let liar_dir = work.path().join("liar");
    std::fs::create_dir_all(&liar_dir).expect("liar folder");
    let copy = std::process::Command::new("cp").arg("-r").arg(&folder).arg(&liar_dir).status().expect("cp");
    assert!(copy.success());
    let (_liar, liar_port) = ok(spawn_lt_seed(&torrent, &liar_dir, &[]));
    alter_blocks(&liar_dir.join("set").join("data.bin"), 262_144, 5);

    let out = work.path().join("out");
    let peers = [format!("127.0.0.1:{liar_port}"), format!("127.0.0.1:{honest_port}")];
    let mut get = spawn_get("shoal get", &torrent, &out, &["--peer", &peers[0], "--peer", &peers[1], "--no-trackers"]);
    wait_get_complete(&mut get);
    assert_same_tree(&folder, out.join("set"));
    let log = get.output();
    let blamed: Vec<&str> = log.lines().filter(|l| l.contains("block hash; banning its sender")).collect();
    assert!(!blamed.is_empty(), "no bad block was named:\n{log}");
    for line in &blamed {
        assert!(line.contains("block=5"), "a block other than the altered one was blamed: {line}");
        assert!(line.contains(&format!("listen=Some({})", peers[0])), "the block was blamed on another peer: {line}");
    }
    assert!(
        log.lines().any(|l| l.contains("disconnecting") && l.contains(&peers[0]) && l.contains("ban=true")),
        "the liar was not banned:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.contains("ban=true") && l.contains(&peers[1])),
        "the honest seed was banned:\n{log}"
    );
}

/// Shoal joins a v2-only torrent knowing only its `urn:btmh` magnet link, from a libtorrent seed
/// and from a Shoal seed: the info dictionary comes by BEP 9, checked against its SHA-256
/// info-hash, then the piece layers by `hash request`s, each checked against its file's root
/// before a piece is taken.
#[test]
fn shoal_fetches_a_v2_torrent_by_its_btmh_magnet_from_libtorrent_and_from_shoal() {
    ensure_tools();
    let work = temp_dir();
    let folder = content_with_long_layer(work.path());
    let torrent = work.path().join("lt-v2.torrent");
    ok(lt_create(&folder, &torrent, &["--format", "v2", "--piece-size", "16384"]));
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).expect("the torrent")).expect("v2 torrent");
    let magnet = meta.magnet().to_string();
    assert!(magnet.contains("urn:btmh:1220") && !magnet.contains("urn:btih"), "{magnet}");
    let (_seed, port) = ok(spawn_lt_seed(&torrent, work.path(), &[]));
    let out = work.path().join("from-lt");
    let peer = format!("127.0.0.1:{port}");
    let mut get = spawn_get("shoal get btmh", Path::new(&magnet), &out, &["--peer", &peer, "--no-trackers"]);
    wait_get_complete(&mut get);
    assert_same_tree(&folder, out.join("set"));

    let mut share = spawn_share(&folder, &work.path().join("shoal-v2.torrent"), &["--v2", "--piece-size", "16k"]);
    let magnet = printed_magnet(&share);
    let out = work.path().join("from-shoal");
    let peer = share.addr.to_string();
    let mut get = spawn_get("shoal get btmh", Path::new(&magnet), &out, &["--peer", &peer, "--no-trackers"]);
    wait_get_complete(&mut get);
    assert_same_tree(&folder, out.join("set"));
    // The piece alignment's padding entries are not counted as files.
    let line = ok(get.wait_for_line("metadata: ", Duration::ZERO));
    assert!(line.contains(", 4 files)"), "{line}");
    stop_cleanly(&mut share.proc);
}

/// A hybrid torrent Shoal seeds is announced to its tracker under both info-hashes and accepts
/// connections under both: libtorrent, given only the v2 side's `urn:btmh` link and the tracker,
/// finds Shoal in the v2 swarm and downloads (metadata, then piece layers by hash requests, which
/// Shoal answers for a hybrid too); given only the v1 `urn:btih` link, in the v1 swarm; given the
/// link Shoal printed (both hashes), in either.
#[test]
fn a_hybrid_is_announced_and_accepted_under_both_info_hashes() {
    ensure_tools();
    let work = temp_dir();
    let folder = content(work.path());
    let tracker = interop::spawn_tracker(2);
    let torrent = work.path().join("hybrid.torrent");
    let mut share = spawn_share(&folder, &torrent, &["--hybrid", "--piece-size", "16k", "--tracker", &tracker.url]);
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).expect("the torrent")).expect("hybrid torrent");
    let hybrid = meta.hybrid.clone().expect("Shoal reads the v2 side of its hybrid");
    for (side, v2_hash, info_hash) in [("v2", Some(hybrid.v2_hash), hybrid.swarm_hash()), ("v1", None, meta.info_hash)]
    {
        let magnet = shoal_proto::Magnet {
            info_hash,
            v2_hash,
            hybrid_v2: None,
            display_name: None,
            trackers: vec![tracker.url.clone()],
            peers: Vec::new(),
            select_only: None,
        }
        .to_string();
        let save = work.path().join(format!("lt-{side}"));
        lt_fetch_magnet(&magnet, &save, None, &folder);
    }
    // The link `share` printed names both hashes, and libtorrent takes it as it is.
    let printed = printed_magnet(&share);
    let both = shoal_proto::Magnet::parse(&printed).expect("the printed link parses");
    assert_eq!((both.info_hash, both.hybrid_v2), (meta.info_hash, Some(hybrid.v2_hash)), "{printed}");
    let with_tracker = format!("{printed}&tr={}", tracker.url);
    lt_fetch_magnet(&with_tracker, &work.path().join("lt-both"), None, &folder);
    stop_cleanly(&mut share.proc);
}

/// A peer (this test, over a plain socket) asks a Shoal seed of a v2 torrent for block hashes
/// (the leaf layer, read from disk) and for a stretch of a piece layer, each with a proof up to
/// the file's root; every answer must verify against the root the torrent names, and a request
/// outside the file's tree is rejected.
#[test]
fn a_shoal_seed_answers_block_and_piece_layer_hash_requests_with_proofs() {
    use shoal_proto::merkle::{HashMessage, HashRequest, verify};
    use std::io::{Read, Write};
    ensure_tools();
    let work = temp_dir();
    let folder = content(work.path());
    let torrent = work.path().join("shoal-v2.torrent");
    let mut share = spawn_share(&folder, &torrent, &["--v2", "--piece-size", "64k"]);
    let bytes = std::fs::read(&torrent).expect("the torrent");
    let t = v2::parse(&bytes).expect("a v2 torrent");
    let big = t.files.iter().find(|f| f.path == ["big.bin"]).expect("big.bin");
    let root = big.pieces_root.expect("a root");
    let leaves = big.length.div_ceil(16_384).next_power_of_two();
    let height = leaves.trailing_zeros();

    let mut sock = std::net::TcpStream::connect(share.addr).expect("connect to the seed");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
    let hello = shoal_proto::Handshake::new(t.swarm_hash(), shoal_proto::PeerId(*b"-TS0001-hash-checker"));
    sock.write_all(&hello.encode()).expect("handshake");
    let mut theirs = [0u8; shoal_proto::Handshake::LEN];
    sock.read_exact(&mut theirs).expect("the seed's handshake");
    let mut buf = bytes::BytesMut::new();
    let mut ask = |req: HashRequest| -> HashMessage {
        let mut out = bytes::BytesMut::new();
        HashMessage::Request(req).to_message().encode(&mut out);
        sock.write_all(&out).expect("send");
        loop {
            match shoal_proto::decode_message(&mut buf, 1 << 24).expect("a valid frame") {
                Some(shoal_proto::Message::Unknown { id: id @ 22..=23, payload }) => {
                    return HashMessage::decode(id, &payload).expect("a hash message");
                }
                Some(_) => {}
                None => {
                    let mut chunk = [0u8; 65_536];
                    let n = sock.read(&mut chunk).expect("read");
                    assert!(n > 0, "the seed closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    };
    let trusted = |layer: u32, i: u64| (layer == height && i == 0).then_some(root);
    // The block hashes of piece 3 (4 blocks of 16 KiB), with the proof up to the root.
    let data = std::fs::read(folder.join("big.bin")).expect("big.bin");
    for req in [
        HashRequest { root, base: 0, index: 12, count: 4, proof_layers: height - 1 },
        HashRequest { root, base: 0, index: 16, count: 2, proof_layers: height - 1 },
        HashRequest { root, base: 2, index: 0, count: 64, proof_layers: height - 3 },
    ] {
        match ask(req) {
            HashMessage::Hashes(r, hashes) if r == req => {
                let got = verify(&req, &hashes, trusted).unwrap_or_else(|e| panic!("{req:?}: {e}"));
                if req.base == 0 {
                    let first = req.index as usize * 16_384;
                    let want: Vec<_> =
                        data[first..first + 16_384 * req.count as usize].chunks(16_384).map(v2::leaf).collect();
                    assert_eq!(got, want, "the block hashes of the file's bytes");
                }
            }
            other => panic!("{req:?} answered with {other:?}"),
        }
    }
    let outside = HashRequest { root, base: 0, index: leaves as u32, count: 4, proof_layers: 0 };
    assert_eq!(ask(outside), HashMessage::Reject(outside), "a request past the file's tree");
    stop_cleanly(&mut share.proc);
}
