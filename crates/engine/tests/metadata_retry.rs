//! The metadata search of a magnet link (BEP 9) keeps asking a peer that refused the
//! connection, over real sockets on 127.0.0.1: the only peer given is a port nobody listens on
//! yet; once the search has reported the refusal and a pending retry, a seed starts on that
//! port and the next attempt fetches the metadata. The progress reported on the way says what
//! happened (one peer known, one failed attempt, one peer waiting to be asked again).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_engine::{AddTorrent, MetadataProgress, Session, SessionConfig};
use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;
use shoal_proto::metainfo::{CreateContent, CreateSpec, build_torrent};
use tokio::sync::watch;

/// How long the first refused attempt may take to be reported.
const REFUSED: Duration = Duration::from_secs(10);
/// How long the fetch may take once the seed listens: the pause after one failure is 2 s.
const FETCHED: Duration = Duration::from_secs(30);

fn listening_on(addr: SocketAddr) -> SessionConfig {
    SessionConfig { listen: addr, ..Default::default() }
}

/// A one-file torrent of `data` with 16 KiB pieces, with the data written under `dir`.
fn torrent_of(data: &[u8], dir: &std::path::Path) -> Metainfo {
    use sha1::{Digest, Sha1};
    let piece = 16 * 1024;
    let hashes: Vec<[u8; 20]> = data.chunks(piece).map(|c| Sha1::digest(c).into()).collect();
    let spec = CreateSpec {
        name: "late.bin".into(),
        piece_length: piece as u32,
        content: CreateContent::SingleFile { length: data.len() as u64 },
        trackers: vec![],
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    std::fs::write(dir.join("late.bin"), data).expect("write data");
    Metainfo::from_bytes(&build_torrent(&spec, &hashes)).expect("torrent parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_metadata_fetch_gave_up_on_a_peer_that_refused_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let meta = torrent_of(&data, dir.path());
    let seed_addr: SocketAddr = format!("127.0.0.1:{}", shoal_testkit::free_port()).parse().expect("address");

    // No DHT, no trackers: the one peer given is the only source, and it is not there yet.
    let leecher = Session::start(listening_on("127.0.0.1:0".parse().expect("address"))).await.expect("session");
    let mut magnet = Magnet::new(meta.info_hash);
    magnet.peers = vec![seed_addr.to_string()];
    let (tx, mut rx) = watch::channel(MetadataProgress::default());
    let started = Instant::now();
    let fetch = tokio::spawn(async move { leecher.fetch_metadata(&magnet, vec![], false, tx).await });

    let refused = tokio::time::timeout(REFUSED, rx.wait_for(|p| p.failed >= 1 && p.retrying == 1))
        .await
        .expect("the refused attempt is reported")
        .expect("the fetch still runs")
        .clone();
    assert_eq!((refused.peers_known, refused.asking, refused.dropped), (1, 0, 0), "{refused:?}");
    let last = refused.last_error.clone().unwrap_or_default();
    assert!(last.contains(&seed_addr.to_string()) && last.contains("refused"), "{refused:?}");
    assert!(!fetch.is_finished(), "the fetch gave up after one refused connection: {:?}", fetch.await);

    let seed = Session::start(listening_on(seed_addr)).await.expect("the seed listens on the port given");
    let _torrent = seed
        .add(AddTorrent {
            ssl: None,
            meta: meta.clone(),
            download_dir: dir.path().to_path_buf(),
            peers: vec![],
            use_trackers: false,
            file_priorities: None,
            sequential: false,
            resume: None,
        })
        .await
        .expect("seed");
    let (got, peers) = tokio::time::timeout(FETCHED, fetch)
        .await
        .expect("the metadata arrives once the seed listens")
        .expect("the fetch task")
        .expect("the seed provides the metadata");
    println!("metadata from a peer that refused {} time(s) first, after {:.2?}", refused.failed, started.elapsed());
    assert_eq!(got.info_bytes, meta.info_bytes);
    assert_eq!(peers, vec![seed_addr]);
}
