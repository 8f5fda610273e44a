//! Driving a running torrent through its handle, over real sockets on 127.0.0.1: pause and
//! resume, a per-torrent download cap, choosing files while connected, and listing peers.

use std::time::{Duration, Instant};

use shoal_engine::{FilePriority, Session, SessionConfig, Torrent, TorrentState};

const DEADLINE: Duration = Duration::from_secs(60);

mod support;

use support::{add, bytes, folder_torrent, local};

async fn wait_state(t: &Torrent, want: impl Fn(&TorrentState) -> bool) -> TorrentState {
    let mut rx = t.subscribe();
    let wait = async {
        loop {
            let s = rx.borrow_and_update().state.clone();
            if want(&s) {
                return s;
            }
            if rx.changed().await.is_err() {
                return s;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.unwrap_or_else(|_| panic!("state not reached within {DEADLINE:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_cap_files_and_peers() {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let files = [("a.bin", bytes(600_000, 1)), ("b.bin", bytes(700_000, 2)), ("c.bin", bytes(500_000, 3))];
    let meta = folder_torrent(seed_dir.path(), &files);
    let seed = Session::start(local()).await.expect("seed session");
    let seeding = add(&seed, &meta, seed_dir.path(), vec![]).await;
    wait_state(&seeding, |s| *s == TorrentState::Seeding).await;

    // Paused before it knows any peer (a peer given at add time could send pieces before the
    // pause arrives): no connection, no progress, even once the seed's address is known.
    let leech_dir = tempfile::tempdir().expect("temp dir");
    let leech = Session::start(local()).await.expect("leech session");
    let t = add(&leech, &meta, leech_dir.path(), vec![]).await;
    t.pause();
    wait_state(&t, |s| *s == TorrentState::Paused).await;
    t.add_peers(vec![seed.listen_addr()]);
    assert!(t.peers().await.is_empty(), "a paused torrent holds no connections");

    // Only b.bin, capped at 256 KiB/s: 700 kB takes well over two seconds.
    t.set_files_wanted(&[false, true, false]);
    t.set_limits(None, Some(256 * 1024));
    let started = Instant::now();
    t.resume();
    let peer_seen = tokio::time::timeout(DEADLINE, async {
        loop {
            let peers = t.peers().await;
            if let Some(p) = peers.first() {
                return p.addr;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the seed shows up among the peers");
    assert_eq!(peer_seen, seed.listen_addr());
    wait_state(&t, |s| *s == TorrentState::Seeding).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2200), "the 256 KiB/s cap held: 700 kB in {took:?}");
    let got = std::fs::read(leech_dir.path().join("set/b.bin")).expect("b.bin");
    assert_eq!(got, files[1].1, "b.bin arrived intact");
    let fetched = t.status().stats.bytes_have;
    assert!(fetched < 700_000 + 2 * 16_384 + 1, "only b.bin's pieces were fetched: {fetched}");

    // Asking for everything afterwards fetches the rest.
    t.set_limits(None, None);
    t.set_files_wanted(&[true, true, true]);
    wait_state(&t, |_| t.status().stats.bytes_have == meta.info.total_length()).await;
    for (name, data) in &files {
        assert_eq!(&std::fs::read(leech_dir.path().join("set").join(name)).expect("file"), data, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_download_cap_holds_within_five_percent_over_ten_seconds() {
    cap_holds(Cap::SessionDownload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrent_upload_cap_holds_within_five_percent_over_ten_seconds() {
    cap_holds(Cap::TorrentUpload).await;
}

enum Cap {
    SessionDownload,
    TorrentUpload,
}

/// 13 MiB from a seed to a leecher with one 1 MiB/s cap, measured after the first MiB.
async fn cap_holds(which: Cap) {
    const CAP: u64 = 1024 * 1024;
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let files = [("big.bin", bytes(13 * 1024 * 1024, 9))];
    let meta = folder_torrent(seed_dir.path(), &files);
    let seed = Session::start(local()).await.expect("seed session");
    let seeding = add(&seed, &meta, seed_dir.path(), vec![]).await;
    wait_state(&seeding, |s| *s == TorrentState::Seeding).await;
    if let Cap::TorrentUpload = which {
        seeding.set_limits(Some(CAP), None);
    }

    let leech_dir = tempfile::tempdir().expect("temp dir");
    let download_limit = matches!(which, Cap::SessionDownload).then_some(CAP);
    let leech = Session::start(SessionConfig { download_limit, ..local() }).await.expect("leech");
    let t = add(&leech, &meta, leech_dir.path(), vec![seed.listen_addr()]).await;
    // Measure from the first mebibyte on (connection set-up excluded) to the end: 12 MiB,
    // about 12 s at the cap.
    let mut rx = t.subscribe();
    let first = tokio::time::timeout(DEADLINE, have_at_least(&mut rx, 1024 * 1024)).await.expect("first MiB");
    let from = t.status().stats.bytes_have;
    let total = meta.info.total_length();
    let last = tokio::time::timeout(DEADLINE, have_at_least(&mut rx, total)).await.expect("complete");
    let moved = meta.info.total_length() - from;
    let secs = last.duration_since(first).as_secs_f64();
    let rate = moved as f64 / secs;
    println!("{moved} bytes in {secs:.2} s: {:.3} of the cap", rate / CAP as f64);
    assert!(secs >= 10.0, "the measurement spans ten seconds: {secs:.2} s");
    assert!(rate <= 1.05 * CAP as f64, "the cap held: {:.3} of it", rate / CAP as f64);
    assert!(rate >= 0.95 * CAP as f64, "the transfer ran at the cap: {:.3} of it", rate / CAP as f64);
}

/// Waits until the torrent has `bytes` verified; returns when.
async fn have_at_least(rx: &mut tokio::sync::watch::Receiver<shoal_engine::TorrentStatus>, bytes: u64) -> Instant {
    loop {
        if rx.borrow_and_update().stats.bytes_have >= bytes {
            return Instant::now();
        }
        if rx.changed().await.is_err() {
            panic!("the torrent stopped");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_hold() {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let files = [("c.bin", bytes(2 * 1024 * 1024, 5))];
    let meta = folder_torrent(seed_dir.path(), &files);
    let mut seeds = Vec::new();
    for _ in 0..3 {
        let s = Session::start(local()).await.expect("seed session");
        let t = add(&s, &meta, seed_dir.path(), vec![]).await;
        wait_state(&t, |st| *st == TorrentState::Seeding).await;
        seeds.push((s, t));
    }
    let addrs: Vec<_> = seeds.iter().map(|(s, _)| s.listen_addr()).collect();

    // A session-wide limit of one connection, then a per-torrent limit of two.
    let leech_dir = tempfile::tempdir().expect("temp dir");
    let leech = Session::start(SessionConfig { max_connections: 1, download_limit: Some(512 * 1024), ..local() })
        .await
        .expect("leech");
    let t = add(&leech, &meta, leech_dir.path(), addrs.clone()).await;
    let watch = async {
        let mut most = 0;
        while t.status().stats.bytes_have < 1024 * 1024 {
            most = most.max(t.peers().await.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        most
    };
    let most = tokio::time::timeout(DEADLINE, watch).await.expect("half the data");
    assert_eq!(most, 1, "one connection at most under a session limit of one");
    leech.set_max_connections(10);
    t.set_max_peers(2);
    t.add_peers(addrs);
    let watch = async {
        let mut most = 0;
        while t.status().state != TorrentState::Seeding {
            most = most.max(t.peers().await.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        most
    };
    let most = tokio::time::timeout(DEADLINE, watch).await.expect("complete");
    assert!(most <= 2, "at most two connections under a torrent limit of two: {most}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_files_come_first() {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let files = [("a.bin", bytes(600_000, 11)), ("b.bin", bytes(700_000, 12)), ("c.bin", bytes(500_000, 13))];
    let meta = folder_torrent(seed_dir.path(), &files);
    // A seed that shows everything at once (initial seeding would choose the pieces for us).
    let mut config = local();
    config.swarm.initial_seeding = false;
    let seed = Session::start(config).await.expect("seed session");
    let seeding = add(&seed, &meta, seed_dir.path(), vec![]).await;
    wait_state(&seeding, |s| *s == TorrentState::Seeding).await;

    let leech_dir = tempfile::tempdir().expect("temp dir");
    let leech = Session::start(SessionConfig { download_limit: Some(512 * 1024), ..local() }).await.expect("leech");
    let t = add(&leech, &meta, leech_dir.path(), vec![]).await;
    t.set_file_priorities(&[FilePriority::Normal, FilePriority::Normal, FilePriority::High]);
    t.add_peers(vec![seed.listen_addr()]);
    let c_done = async {
        loop {
            if std::fs::read(leech_dir.path().join("set/c.bin")).ok().as_deref() == Some(&files[2].1[..]) {
                return t.status().stats.bytes_have;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let have = tokio::time::timeout(DEADLINE, c_done).await.expect("c.bin completes");
    assert!(have < 800_000, "c.bin came first: {have} of 1.8 MB verified when it was complete");
    wait_state(&t, |s| *s == TorrentState::Seeding).await;
}
