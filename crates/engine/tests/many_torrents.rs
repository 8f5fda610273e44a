//! Many torrents in one process: the disk threads are the session's, not each torrent's, so
//! the thread count stays bounded whatever the number of torrents, while downloads through
//! the shared threads still verify every piece.

use std::path::Path;
use std::time::Duration;

use shoal_engine::{Session, TorrentState};
use shoal_proto::Metainfo;

const SEEDING: usize = 300;
const DOWNLOADING: usize = 20;
const DEADLINE: Duration = Duration::from_secs(120);

mod support;

use support::{add, bytes, folder_torrent, local};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_torrents_share_a_few_disk_threads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let before = threads();
    let seed = Session::start(local()).await.expect("seed session");
    let leech = Session::start(local()).await.expect("leech session");
    // Torrent i: one file of 100 KiB in its own folder `seed/i/set`.
    let metas: Vec<Metainfo> = (0..SEEDING)
        .map(|i| folder_torrent(&seed_dir.join(i.to_string()), &[("t.bin", bytes(100 * 1024, i as u32))]))
        .collect();
    let mut seeding = Vec::new();
    for (i, meta) in metas.iter().enumerate() {
        seeding.push(add(&seed, meta, &seed_dir.join(i.to_string()), vec![]).await);
    }
    let mut downloads = Vec::new();
    for (i, meta) in metas[..DOWNLOADING].iter().enumerate() {
        downloads.push(add(&leech, meta, &leech_dir.join(i.to_string()), vec![seed.listen_addr()]).await);
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
    for i in 0..DOWNLOADING {
        let file = Path::new(&i.to_string()).join("set/t.bin");
        assert_eq!(
            std::fs::read(leech_dir.join(&file)).expect("read"),
            std::fs::read(seed_dir.join(&file)).expect("read"),
            "torrent {i}"
        );
    }
    // Two sessions, each with two disk threads, plus the runtime's own threads (tokio's
    // blocking pool for the data checks); three disk threads per torrent were over 900.
    assert!(
        peak - before <= 40,
        "{} threads for {} torrents (from {before} to {peak})",
        peak - before,
        SEEDING + DOWNLOADING
    );
    // Torrents with nobody to serve close their files: the process holds a descriptor per
    // active torrent, not one per torrent (each of the 320 has one file open after its check).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while open_fds() >= SEEDING {
        assert!(std::time::Instant::now() < deadline, "{} descriptors open with {SEEDING} idle torrents", open_fds());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((seeding, downloads));
}
