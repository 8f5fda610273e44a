//! The daemon in-process, against a real engine seed on 127.0.0.1 and a real SQLite store:
//! what it reports is true (per-file progress while downloading and when paused, a skipped
//! file never complete, a magnet link waiting for its metadata in its own state, rates 0 while
//! paused), a torrent in error resumes once its problem is gone, and `session.set` applies
//! what it accepts and refuses the rest.

use std::time::Duration;

use shoal_rpc::api::{AddRequest, Api, Goal, Ids, Priority, SessionUpdate, SetRequest, Source, TorrentState};
use shoal_testkit::make_test_file;

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_file_progress_is_real_while_downloading_and_paused_and_skipped_files_are_never_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_dir = dir.path().join("seed");
    let sizes = [4 * PIECE as u64, 4 * PIECE as u64, 8 * PIECE as u64];
    let (bytes, meta) = folder_torrent(&seed_dir, sizes);
    let (_seed, seed_handle) = slow_seed(meta, &seed_dir, true).await;

    let (d, session) = daemon(&dir.path().join("state")).await;
    let added = d.add(AddRequest::new(Source::TorrentFile(bytes.clone()))).await.expect("add");
    let id = added.id.0;
    let mut set = SetRequest::new(Ids::one(added.id));
    set.file_priorities = vec![(1, Priority::Skip)];
    d.set(set).await.expect("skip file 1");
    // The torrent names no tracker: the seed dials the daemon's node.
    let daemon_addr = session.listen_addr();
    seed_handle.add_peers(vec![daemon_addr]);

    let partway = wait_for(&d, id, "some of file 0 or 2 verified, not all", |t| {
        t.state == TorrentState::Downloading && t.files.iter().any(|f| f.have > 0 && f.have < f.length)
    })
    .await;
    assert!(partway.have_bytes < partway.wanted_bytes);
    assert_eq!(partway.wanted_bytes, sizes[0] + sizes[2], "the skipped file is not wanted");
    d.pause(Ids::one(added.id)).await.expect("pause");
    let paused = wait_for(&d, id, "paused", |t| t.state == TorrentState::Paused).await;
    assert_eq!((paused.download_rate, paused.upload_rate), (0, 0), "no rates while paused");
    let have: u64 = paused.files.iter().map(|f| f.have).sum();
    assert!(have > 0, "progress is kept while paused: {:#?}", paused.files);
    assert_eq!(
        paused.have_bytes,
        paused.files.iter().filter(|f| f.priority != Priority::Skip).map(|f| f.have).sum::<u64>()
    );

    d.resume(Ids::one(added.id)).await.expect("resume");
    seed_handle.add_peers(vec![daemon_addr]);
    let done = wait_for(&d, id, "seeding", |t| t.state == TorrentState::Seeding).await;
    assert_eq!(done.files[0].have, sizes[0]);
    assert_eq!(done.files[2].have, sizes[2]);
    assert_eq!(done.files[1].have, 0, "the skipped file shares no piece and is not complete: {:#?}", done.files);
    assert!(!dir.path().join("state/downloads/set/f1.bin").exists(), "the skipped file was not created");
    assert_eq!(done.progress, 1.0);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a_magnet_waiting_for_metadata_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, _session) = daemon(dir.path()).await;
    // Its only peer refuses connections: the search goes on (retrying it) until removed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = closed.local_addr().expect("addr");
    drop(closed);
    let link = format!("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=nowhere&x.pe={nobody}");
    let added = d.add(AddRequest::new(Source::Magnet(link))).await.expect("add");
    // Still looking a few retries later.
    for _ in 0..3 {
        let t = one(&d, added.id.0).await;
        assert_eq!(t.state, TorrentState::Metadata, "{t:#?}");
        assert_eq!((t.progress, t.total_bytes), (0.0, 0));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a_torrent_in_error_resumes_once_the_problem_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_dir = dir.path().join("seed");
    let (bytes, _meta) = folder_torrent(&seed_dir, [PIECE as u64, 2 * PIECE as u64, 3 * PIECE as u64]);
    let (d, _session) = daemon(&dir.path().join("state")).await;
    // A file longer than the torrent says is in the way: Shoal never cuts user data.
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("set")).expect("mkdir");
    std::fs::write(target.join("set/f0.bin"), vec![7u8; PIECE as usize + 10]).expect("write");
    let added_id = add_in(&d, bytes, &target).await;
    let failed = wait_for(&d, added_id.0, "error", |t| t.state == TorrentState::Error).await;
    assert!(failed.error.as_deref().is_some_and(|e| e.contains("f0.bin")), "{failed:#?}");
    // The user moves the file away and resumes: the torrent starts (and finds its data missing).
    std::fs::remove_file(target.join("set/f0.bin")).expect("rm");
    d.resume(Ids::one(added_id)).await.expect("resume");
    let t = wait_for(&d, added_id.0, "downloading after resume", |t| t.state == TorrentState::Downloading).await;
    assert_eq!(t.error, None);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_session_set_applies_what_it_accepts_and_refuses_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, _session) = daemon(dir.path()).await;
    let before = d.session_get().await.expect("get");
    for (update, key) in [
        (SessionUpdate { dht: Some(true), ..Default::default() }, "dht"),
        (SessionUpdate { lsd: Some(true), ..Default::default() }, "lsd"),
        (SessionUpdate { pex: Some(false), ..Default::default() }, "pex"),
        (SessionUpdate { listen_port: Some(before.listen_port.wrapping_add(1)), ..Default::default() }, "listen_port"),
    ] {
        let e = d.session_set(update).await.expect_err(key);
        assert!(e.to_string().contains(key), "{e}");
    }
    assert_eq!(d.session_get().await.expect("get"), before, "nothing changed");
    let next = d
        .session_set(SessionUpdate {
            max_connections_per_torrent: Some(7),
            upload_limit: Some(Some(1000)),
            ..Default::default()
        })
        .await
        .expect("accepted");
    assert_eq!((next.max_connections_per_torrent, next.upload_limit), (7, Some(1000)));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_damaged_piece_and_the_torrent_downloads_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let sizes = [2 * PIECE as u64, 2 * PIECE as u64, 2 * PIECE as u64];
    let (bytes, _meta) = folder_torrent(&data, sizes);
    let (d, _session) = daemon(&dir.path().join("state")).await;
    let added_id = add_in(&d, bytes, &data).await;
    wait_for(&d, added_id.0, "seeding its own data", |t| t.state == TorrentState::Seeding).await;
    // One byte changes behind the daemon's back; only a check from disk can tell.
    let file = data.join("set/f2.bin");
    let mut content = std::fs::read(&file).expect("read");
    content[100] ^= 0xff;
    std::fs::write(&file, &content).expect("write");
    d.verify(Ids::one(added_id)).await.expect("verify");
    let t = wait_for(&d, added_id.0, "downloading the damaged piece", |t| t.state == TorrentState::Downloading).await;
    assert_eq!(t.have_bytes, t.wanted_bytes - u64::from(PIECE), "exactly one piece is missing: {t:#?}");
    assert_eq!(t.files[2].have, sizes[2] - u64::from(PIECE));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reannounce_asks_the_tracker_again_at_once() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    // A tracker that counts announces and asks for the next one in half an hour.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let tracker = format!("http://{}/announce", listener.local_addr().expect("addr"));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(32) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            if buf.starts_with(b"GET /announce") {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let body = b"d8:intervali1800e5:peers0:e";
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    let data = dir.path().join("data");
    make_test_file(data.join("one.bin"), 100_000, 99);
    let torrent = torrent_of(&data.join("one.bin"), vec![tracker]);
    let (d, _session) = daemon(&dir.path().join("state")).await;
    let added_id = add_in(&d, torrent, &data).await;
    let announced = |n: usize| {
        let count = count.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while count.load(std::sync::atomic::Ordering::SeqCst) < n {
                assert!(tokio::time::Instant::now() < deadline, "no announce number {n}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    announced(1).await;
    let t = wait_for(&d, added_id.0, "the tracker's answer shown", |t| t.trackers[0].last_announce.is_some()).await;
    assert_eq!((t.trackers[0].last_error.as_deref(), t.trackers[0].last_peers), (None, Some(0)), "{t:#?}");
    let next = t.trackers[0].next_announce.expect("a next announce");
    assert!(next >= t.trackers[0].last_announce.unwrap_or(0) + 1700, "the tracker's interval: {t:#?}");
    assert_eq!(d.reannounce(Ids::one(added_id)).await.expect("reannounce"), vec![added_id]);
    announced(2).await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrents_own_seeding_goal_stops_it_and_a_new_goal_lets_it_seed_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (bytes, _meta) = folder_torrent(&data, [PIECE as u64, PIECE as u64, PIECE as u64]);
    let (d, _session) = daemon(&dir.path().join("state")).await;
    tokio::spawn(d.clone().run_policy());
    let added_id = add_in(&d, bytes, &data).await;
    wait_for(&d, added_id.0, "seeding", |t| t.state == TorrentState::Seeding).await;
    // The session has no goal; the torrent's own (seed 0 seconds) stops it.
    let mut set = SetRequest::new(Ids::one(added_id));
    set.seed_time_limit = Some(Goal::Limit(0));
    d.set(set).await.expect("set");
    let t = wait_for(&d, added_id.0, "stopped at its goal", |t| t.state == TorrentState::Paused).await;
    assert_eq!((t.seed_time_limit, t.seed_ratio_limit), (Goal::Limit(0), Goal::Session));
    // Back to the session's goal (none): it seeds again.
    let mut set = SetRequest::new(Ids::one(added_id));
    set.seed_time_limit = Some(Goal::Session);
    d.set(set).await.expect("set");
    wait_for(&d, added_id.0, "seeding again", |t| t.state == TorrentState::Seeding).await;
    let mut bad = SetRequest::new(Ids::one(added_id));
    bad.seed_ratio_limit = Some(Goal::Limit(-1.0));
    assert!(matches!(d.set(bad).await, Err(shoal_rpc::api::ApiError::InvalidParams(_))));
    d.shutdown().await;
}
