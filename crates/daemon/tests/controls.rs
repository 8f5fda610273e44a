//! The controls users of mature clients reach for, in-process over a real engine session and
//! a real SQLite store: moving a torrent's data, free space, labels, sequential download,
//! peers given at add time, and seeding goals (idle, and "seed for ever" per torrent) — each
//! applied, kept across a restart, or refused with a message naming what is wrong.

use std::time::Duration;

use shoal_daemon::Daemon;
use shoal_rpc::api::{
    AddRequest, Api, ApiError, Goal, Ids, LocationRequest, SessionUpdate, SetRequest, Source, TorrentState,
};
use shoal_testkit::assert_same_tree;

mod support;

use support::*;

fn location(id: shoal_rpc::api::TorrentId, dir: &std::path::Path, move_data: bool) -> LocationRequest {
    LocationRequest { ids: Ids::one(id), location: dir.display().to_string(), move_data }
}

/// The same daemon state folder, opened again as after a restart.
async fn restarted(old: Daemon, state: &std::path::Path) -> Daemon {
    old.shutdown().await;
    let (d, _session) = daemon(state).await;
    d.restore().await.expect("restore");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_data_keeps_the_torrent_seeding_from_its_new_folder_and_a_failed_move_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let (bytes, _meta) = folder_torrent(&old, [PIECE as u64 * 3, 1000, PIECE as u64]);
    let original = dir.path().join("original");
    folder_torrent(&original, [PIECE as u64 * 3, 1000, PIECE as u64]);
    let state = dir.path().join("state");
    let (d, _session) = daemon(&state).await;
    let id = add_in(&d, bytes, &old).await;
    wait_for(&d, id.0, "seeding", |t| t.state == TorrentState::Seeding).await;

    assert_eq!(d.set_location(location(id, &new, true)).await.expect("moves"), vec![id]);
    assert_same_tree(original.join("set"), new.join("set"));
    assert!(!old.join("set").exists(), "nothing left in the old folder");
    let t = wait_for(&d, id.0, "seeding from the new folder", |t| t.state == TorrentState::Seeding).await;
    assert_eq!((t.download_dir, t.progress), (new.display().to_string(), 1.0));

    // A file of the same name in the way: refused, nothing moved, still seeding where it was.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(blocked.join("set")).expect("mkdir");
    std::fs::write(blocked.join("set/f1.bin"), b"someone else's").expect("write");
    let err = d.set_location(location(id, &blocked, true)).await.expect_err("refused");
    assert!(matches!(&err, ApiError::Failed(m) if m.contains("already exists")), "{err}");
    assert_same_tree(original.join("set"), new.join("set"));
    assert_eq!(std::fs::read(blocked.join("set/f1.bin")).expect("kept"), b"someone else's");
    let t = wait_for(&d, id.0, "seeding again", |t| t.state == TorrentState::Seeding).await;
    assert_eq!(t.download_dir, new.display().to_string());

    let err = d.set_location(LocationRequest { ids: Ids::one(id), location: "rel/dir".into(), move_data: true }).await;
    assert!(matches!(&err, Err(ApiError::InvalidParams(m)) if m.contains("absolute")), "{err:?}");

    // Looking for the data where it is not: checked there, so nothing is verified.
    let empty = dir.path().join("empty");
    d.set_location(location(id, &empty, false)).await.expect("points elsewhere");
    let t = wait_for(&d, id.0, "checked in the empty folder", |t| t.state == TorrentState::Downloading).await;
    assert_eq!((t.have_bytes, t.download_dir), (0, empty.display().to_string()));
    // And back where the data is: found and verified.
    d.set_location(location(id, &new, false)).await.expect("points back");
    wait_for(&d, id.0, "seeding from the data found", |t| t.state == TorrentState::Seeding).await;

    // The folder is kept across a restart.
    let d = restarted(d, &state).await;
    let t = wait_for(&d, id.0, "seeding after the restart", |t| t.state == TorrentState::Seeding).await;
    assert_eq!(t.download_dir, new.display().to_string());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_space_is_what_the_file_system_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, _session) = daemon(&dir.path().join("state")).await;
    let free = d.free_space(Some(dir.path().display().to_string())).await.expect("free space");
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=avail,size"])
        .arg(dir.path())
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&df.stdout);
    let numbers: Vec<u64> =
        text.lines().nth(1).expect("a df line").split_whitespace().map(|n| n.parse().expect("a number")).collect();
    assert_eq!(free.total_bytes, numbers[1], "{text}");
    // Other processes write meanwhile: the free space agrees within 64 MiB.
    assert!(free.free_bytes.abs_diff(numbers[0]) < 64 << 20, "{free:?} vs {text}");
    // The download folder does not exist yet: the space where it will be is reported.
    assert!(!dir.path().join("state/downloads").exists());
    let default = d.free_space(None).await.expect("the download folder's");
    assert!(default.path.ends_with("downloads"), "{default:?}");
    assert_eq!(default.total_bytes, free.total_bytes, "the file system of the folder above it");
    for bad in ["relative", "/no/such/folder/anywhere"] {
        let err = d.free_space(Some(bad.into())).await.expect_err("refused");
        assert!(err.to_string().contains(bad), "{err}");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_order_goals_and_peers_are_kept_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bytes, _meta) = folder_torrent(&dir.path().join("data"), [1000, 2000, 3000]);
    let state = dir.path().join("state");
    let (d, _session) = daemon(&state).await;
    let peer: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let request = AddRequest {
        download_dir: Some(dir.path().join("data").display().to_string()),
        labels: vec![" tv ".into(), "hd".into(), "tv".into()],
        sequential: true,
        peers: vec![peer],
        ..AddRequest::new(Source::TorrentFile(bytes))
    };
    let id = d.add(request).await.expect("add").id;
    let mut set = SetRequest::new(Ids::one(id));
    set.seed_ratio_limit = Some(Goal::Unlimited);
    set.seed_idle_limit = Some(Goal::Limit(600));
    d.set(set).await.expect("set");
    let before = one(&d, id.0).await;
    assert_eq!((before.labels.clone(), before.sequential), (vec!["tv".to_owned(), "hd".to_owned()], true));

    // A bounded number of peers: they are stored and dialled at every start.
    let many: Vec<std::net::SocketAddr> = (0..201).map(|i| ([127, 0, 0, 1], 10_000 + i).into()).collect();
    let (other, _) = folder_torrent(&dir.path().join("other"), [10, 20, 30]);
    let err = d.add(AddRequest { peers: many, ..AddRequest::new(Source::TorrentFile(other)) }).await;
    assert!(matches!(&err, Err(ApiError::InvalidParams(m)) if m.contains("at most 200")), "{err:?}");
    assert_eq!(d.list().await.expect("list").len(), 1, "nothing was added");

    let mut bad = SetRequest::new(Ids::one(id));
    bad.labels = Some(vec!["a,b".into()]);
    let err = d.set(bad).await.expect_err("refused");
    assert!(err.to_string().contains("comma"), "{err}");

    let d = restarted(d, &state).await;
    let after = one(&d, id.0).await;
    assert_eq!((after.labels, after.sequential), (before.labels, true));
    assert_eq!(
        (after.seed_ratio_limit, after.seed_idle_limit, after.seed_time_limit),
        (Goal::Unlimited, Goal::Limit(600), Goal::Session)
    );
    let mut set = SetRequest::new(Ids::one(id));
    set.labels = Some(vec![]);
    set.sequential = Some(false);
    d.set(set).await.expect("set");
    let cleared = one(&d, id.0).await;
    assert_eq!((cleared.labels.len(), cleared.sequential), (0, false));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_goals_idle_and_unlimited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, _session) = daemon(&dir.path().join("state")).await;
    tokio::spawn(d.clone().run_policy());
    let mut ids = Vec::new();
    for name in ["forever", "idle", "session"] {
        let data = dir.path().join(name);
        let (bytes, _meta) = folder_torrent(&data, [PIECE as u64, 10 + ids.len() as u64, 20]);
        let id = add_in(&d, bytes, &data).await;
        wait_for(&d, id.0, "seeding", |t| t.state == TorrentState::Seeding).await;
        ids.push(id);
    }
    let (forever, idle, session) = (ids[0], ids[1], ids[2]);
    let mut set = SetRequest::new(Ids::one(forever));
    set.seed_time_limit = Some(Goal::Unlimited);
    set.seed_idle_limit = Some(Goal::Unlimited);
    d.set(set).await.expect("set");
    // No peer ever comes: a 1 s idle goal stops the torrent within seconds.
    let mut set = SetRequest::new(Ids::one(idle));
    set.seed_idle_limit = Some(Goal::Limit(1));
    d.set(set).await.expect("set");
    let t = wait_for(&d, idle.0, "stopped when idle", |t| t.state == TorrentState::Paused).await;
    assert_eq!(t.seed_idle_limit, Goal::Limit(1));
    assert_eq!(one(&d, session.0).await.state, TorrentState::Seeding, "no session goal yet");
    // A session goal of 2 s seeding stops the others, not the one set to seed for ever.
    let update = SessionUpdate { seed_time_limit: Some(Some(2)), ..Default::default() };
    d.session_set(update).await.expect("session goal");
    wait_for(&d, session.0, "stopped at the session's goal", |t| t.state == TorrentState::Paused).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(one(&d, forever.0).await.state, TorrentState::Seeding, "seeds for ever");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_download_verifies_pieces_first_to_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_dir = dir.path().join("seed");
    let sizes = [4 * PIECE as u64, 4 * PIECE as u64, 8 * PIECE as u64];
    let (bytes, meta) = folder_torrent(&seed_dir, sizes);
    // 256 KiB/s: four pieces a second, so the order is visible. Every piece offered at once
    // (initial seeding would reveal them a few at a time, in its own order).
    let (seed, seeding) = slow_seed(meta, &seed_dir, false).await;
    let (d, _session) = daemon(&dir.path().join("state")).await;
    let request = AddRequest {
        download_dir: Some(dir.path().join("out").display().to_string()),
        sequential: true,
        peers: vec![seed.listen_addr()],
        ..AddRequest::new(Source::TorrentFile(bytes))
    };
    let id = d.add(request).await.expect("add").id;
    let _ = &seeding;
    let first_of_last =
        wait_for(&d, id.0, "the last file started", |t| t.files.get(2).is_some_and(|f| f.have > 0)).await;
    assert_eq!(
        (first_of_last.files[0].have, first_of_last.files[1].have),
        (sizes[0], sizes[1]),
        "the first files were complete before the last one began: {:#?}",
        first_of_last.files
    );
    wait_for(&d, id.0, "complete", |t| t.state == TorrentState::Seeding).await;
    assert_same_tree(seed_dir.join("set"), dir.path().join("out/set"));
    d.shutdown().await;
}
