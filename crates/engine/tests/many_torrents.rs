//! Many torrents in one process: the disk threads are the session's, not each torrent's, so
//! the thread count stays bounded whatever the number of torrents, while downloads through
//! the shared threads still verify every piece.

use std::path::Path;
use std::time::Duration;

use shoal_engine::{AddTorrent, Session, SessionConfig, Torrent, TorrentState};
use shoal_proto::{CreateContent, CreateSpec, Metainfo, build_torrent};

const SEEDING: usize = 300;
const DOWNLOADING: usize = 20;
const DEADLINE: Duration = Duration::from_secs(120);

fn local() -> SessionConfig {
    SessionConfig { listen: "127.0.0.1:0".parse().expect("address"), ..Default::default() }
}

/// A single-file torrent `t{i}.bin` of 100 KiB (16 KiB pieces) written in `dir`.
fn small_torrent(dir: &Path, i: usize) -> Metainfo {
    use sha1::{Digest, Sha1};
    let data: Vec<u8> =
        (0..100 * 1024u32).map(|b| (b.wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 11) as u8).collect();
    let name = format!("t{i}.bin");
    std::fs::write(dir.join(&name), &data).expect("write");
    let hashes: Vec<[u8; 20]> = data.chunks(16 * 1024).map(|c| Sha1::digest(c).into()).collect();
    let spec = CreateSpec {
        name,
        piece_length: 16 * 1024,
        content: CreateContent::SingleFile { length: data.len() as u64 },
        trackers: vec![],
        comment: None,
        creation_date: None,
        private: false,
    };
    Metainfo::from_bytes(&build_torrent(&spec, &hashes)).expect("torrent parses")
}

async fn add(session: &Session, meta: &Metainfo, dir: &Path, peers: Vec<std::net::SocketAddr>) -> Torrent {
    let add = AddTorrent {
        meta: meta.clone(),
        download_dir: dir.to_path_buf(),
        peers,
        use_trackers: false,
        file_priorities: None,
        sequential: false,
        resume: None,
    };
    session.add(add).await.expect("add")
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_torrents_share_a_few_disk_threads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    std::fs::create_dir_all(&seed_dir).expect("mkdir");
    let before = threads();
    let seed = Session::start(local()).await.expect("seed session");
    let leech = Session::start(local()).await.expect("leech session");
    let metas: Vec<Metainfo> = (0..SEEDING).map(|i| small_torrent(&seed_dir, i)).collect();
    let mut seeding = Vec::new();
    for meta in &metas {
        seeding.push(add(&seed, meta, &seed_dir, vec![]).await);
    }
    let mut downloads = Vec::new();
    for meta in &metas[..DOWNLOADING] {
        downloads.push(add(&leech, meta, &leech_dir, vec![seed.listen_addr()]).await);
    }
    let mut peak = threads();
    for t in &downloads {
        let mut rx = t.subscribe();
        let done = async {
            loop {
                peak = peak.max(threads());
                if rx.borrow_and_update().state == TorrentState::Seeding {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(DEADLINE, done).await.expect("every download completes");
    }
    for (i, meta) in metas[..DOWNLOADING].iter().enumerate() {
        let name = &meta.info.name;
        assert_eq!(
            std::fs::read(leech_dir.join(name)).expect("read"),
            std::fs::read(seed_dir.join(name)).expect("read"),
            "torrent {i}"
        );
    }
    // Two sessions, each one writer and two hashers, plus the runtime's own threads (tokio's
    // blocking pool for the data checks); three disk threads per torrent were over 900.
    assert!(
        peak - before <= 40,
        "{} threads for {} torrents (from {before} to {peak})",
        peak - before,
        SEEDING + DOWNLOADING
    );
}
