//! What the daemon tests share: torrents made on disk, an in-process daemon over a real
//! engine session on 127.0.0.1 and a real SQLite store, and bounded waits.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use shoal_daemon::Daemon;
use shoal_engine::{AddTorrent, Session, SessionConfig, Torrent};
use shoal_proto::Metainfo;
use shoal_proto::metainfo::{CreateContent, CreateFile, CreateSpec, build_torrent};
use shoal_rpc::api::{AddRequest, Api, Ids, SessionSettings, Source, TorrentId, TorrentInfo};
use shoal_state::Store;
use shoal_testkit::make_test_file;

pub(crate) const PIECE: u32 = 64 * 1024;
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn node(upload_limit: Option<u64>) -> SessionConfig {
    SessionConfig { listen: "127.0.0.1:0".parse().expect("addr"), upload_limit, ..Default::default() }
}

/// Three files of `sizes` bytes under `root/set`, and their torrent (64 KiB pieces).
pub(crate) fn folder_torrent(root: &Path, sizes: [u64; 3]) -> (Vec<u8>, Metainfo) {
    for (i, size) in sizes.iter().enumerate() {
        make_test_file(root.join("set").join(format!("f{i}.bin")), *size, 90 + i as u64);
    }
    let bytes = torrent_of(&root.join("set"), vec![]);
    let meta = Metainfo::from_bytes(&bytes).expect("parses");
    (bytes, meta)
}

/// The torrent of the file or folder at `path` (64 KiB pieces), announcing to `trackers`.
pub(crate) fn torrent_of(path: &Path, trackers: Vec<String>) -> Vec<u8> {
    let scanned = shoal_storage::scan_path(path).expect("scan");
    let hashes = shoal_storage::hash_pieces(&scanned.parent, &scanned, PIECE, |_| {}).expect("hash");
    let content = if scanned.is_dir {
        CreateContent::MultiFile(
            scanned.files.iter().map(|f| CreateFile { path: f.path.clone(), length: f.length }).collect(),
        )
    } else {
        CreateContent::SingleFile { length: scanned.total_length() }
    };
    let spec = CreateSpec {
        name: scanned.name.clone(),
        piece_length: PIECE,
        content,
        trackers,
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    build_torrent(&spec, &hashes)
}

pub(crate) async fn daemon(dir: &Path) -> (Daemon, Session) {
    let session = Session::start(node(None)).await.expect("session");
    let store = Store::open(Store::path_in(dir)).expect("store");
    let settings = SessionSettings {
        listen_port: session.listen_addr().port(),
        download_dir: dir.join("downloads").display().to_string(),
        upload_limit: None,
        download_limit: None,
        dht: false,
        lsd: false,
        pex: true,
        max_connections: 500,
        max_connections_per_torrent: 80,
        download_queue_size: None,
        seed_queue_size: None,
        seed_ratio_limit: None,
        seed_time_limit: None,
        seed_idle_limit: None,
        encryption: "prefer".into(),
        utp: "on".into(),
    };
    (Daemon::new(session.clone(), store, settings, dir.to_path_buf()), session)
}

pub(crate) async fn one(d: &Daemon, id: u64) -> TorrentInfo {
    d.get(Ids::one(TorrentId(id))).await.expect("get").remove(0)
}

pub(crate) async fn wait_for(
    d: &Daemon,
    id: u64,
    what: &str,
    mut done: impl FnMut(&TorrentInfo) -> bool,
) -> TorrentInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let t = one(d, id).await;
        if done(&t) {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {t:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A seed of 256 KiB/s (a 1 MiB download takes seconds, long enough to look at) serving the
/// torrent `meta` whose data is in `dir`; `initial_seeding` as in the swarm's config. Keep the
/// returned pair alive while it serves.
pub(crate) async fn slow_seed(meta: Metainfo, dir: &Path, initial_seeding: bool) -> (Session, Torrent) {
    let mut config = node(Some(256 * 1024));
    config.swarm.initial_seeding = initial_seeding;
    let seed = Session::start(config).await.expect("seed");
    let add = AddTorrent {
        ssl: None,
        meta,
        download_dir: dir.to_path_buf(),
        peers: vec![],
        use_trackers: false,
        file_priorities: None,
        sequential: false,
        resume: None,
    };
    let torrent = seed.add(add).await.expect("seed adds");
    (seed, torrent)
}

/// Adds the torrent `bytes` with its data in `dir`.
pub(crate) async fn add_in(d: &Daemon, bytes: Vec<u8>, dir: &Path) -> TorrentId {
    let request =
        AddRequest { download_dir: Some(dir.display().to_string()), ..AddRequest::new(Source::TorrentFile(bytes)) };
    d.add(request).await.expect("add").id
}
