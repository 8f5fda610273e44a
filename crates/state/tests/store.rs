//! The store against real SQLite files in temporary folders: every table round-trips,
//! survives reopening, and the schema version rules hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use shoal_state::{
    FilePriority, FileStamp, Limits, NewTorrent, ResumeData, StateError, Store, TorrentId, TorrentRow, TorrentState,
    Unlimited,
};
use tempfile::TempDir;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn hash(i: u32) -> String {
    format!("{i:040x}")
}

fn torrent(i: u32) -> NewTorrent {
    NewTorrent {
        info_hash: hash(i),
        name: format!("torrent {i}"),
        metainfo: Some(format!("d4:infod4:name{}:torrent {i}ee", format!("torrent {i}").len()).into_bytes()),
        magnet: None,
        download_dir: PathBuf::from("/srv/dl"),
        state: TorrentState::Active,
        added_at: at(1_700_000_000 + u64::from(i)),
        limits: Limits::default(),
        file_priorities: None,
        labels: Vec::new(),
        sequential: false,
        peers: Vec::new(),
    }
}

fn full_torrent() -> NewTorrent {
    NewTorrent {
        info_hash: "AB".repeat(32),
        name: "Ünïcode name".into(),
        metainfo: Some(vec![0, 1, 2, 255]),
        magnet: Some(format!("magnet:?xt=urn:btmh:1220{}&dn=x", "ab".repeat(32))),
        download_dir: PathBuf::from("/home/a/Downloads/ü"),
        state: TorrentState::Paused,
        added_at: at(1_234_567_890),
        limits: Limits {
            upload: Some(1 << 20),
            download: Some(u64::try_from(i64::MAX).expect("fits")),
            max_peers: Some(u32::MAX),
            seed_ratio: Some(1.5),
            seed_time: Some(Duration::from_secs(3600)),
            seed_idle: Some(Duration::from_secs(600)),
            unlimited: Unlimited { ratio: true, time: false, idle: true },
        },
        file_priorities: Some(vec![FilePriority::Skip, FilePriority::Low, FilePriority::Normal, FilePriority::High]),
        labels: vec!["tv".into(), "ünï, code".into()],
        sequential: true,
        peers: vec!["127.0.0.1:6881".parse().expect("addr"), "[::1]:51413".parse().expect("addr")],
    }
}

fn resume(seed: u8, pieces: usize) -> ResumeData {
    ResumeData {
        fingerprint: [seed; 20],
        pieces: (0..pieces).map(|i| (i + usize::from(seed)) % 3 != 0).collect(),
        files: vec![
            FileStamp { length: 10, mtime_secs: 1_700_000_000, mtime_nanos: 123_456_789 },
            FileStamp { length: 0, mtime_secs: -1, mtime_nanos: 0 },
        ],
        saved_at: at(1_700_000_500),
    }
}

fn open(dir: &TempDir) -> Store {
    Store::open(Store::path_in(dir.path())).expect("open store")
}

fn row(store: &Store, id: TorrentId) -> TorrentRow {
    store.torrent(id).expect("query").expect("stored")
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn threads_share_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(open(&dir));
    let workers: Vec<_> = (0..4u32)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..20 {
                    let id = store.add_torrent(&torrent(t * 100 + i)).expect("add");
                    store.add_counters(id, 1, 1).expect("counters");
                    store.set_setting(&format!("t{t}"), &i).expect("setting");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let rows = store.torrents().expect("list");
    assert_eq!(rows.len(), 80);
    let mut positions: Vec<u32> = rows.iter().map(|r| r.queue_position).collect();
    positions.sort_unstable();
    assert_eq!(positions, (0..80).collect::<Vec<_>>(), "queue positions stay dense under concurrency");
    assert_eq!(store.get_setting::<u32>("t3").expect("get"), Some(19));
}

#[test]
fn torrents_roundtrip_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let new = full_torrent();
    let id = store.add_torrent(&new).expect("add");
    let expected = TorrentRow {
        id,
        info_hash: "ab".repeat(32),
        name: new.name.clone(),
        metainfo: new.metainfo.clone(),
        magnet: new.magnet.clone(),
        download_dir: new.download_dir.clone(),
        state: TorrentState::Paused,
        added_at: new.added_at,
        completed_at: None,
        limits: new.limits.clone(),
        file_priorities: new.file_priorities.clone(),
        queue_position: 0,
        uploaded_total: 0,
        downloaded_total: 0,
        labels: new.labels.clone(),
        sequential: true,
        peers: new.peers.clone(),
    };
    assert_eq!(row(&store, id), expected);
    assert_eq!(store.by_info_hash(&"aB".repeat(32)).expect("query"), Some(expected.clone()));
    assert_eq!(store.torrents().expect("list"), vec![expected]);
    assert_eq!(store.by_info_hash(&hash(9)).expect("query"), None);
    assert_eq!(store.torrent(TorrentId::new(999)).expect("query"), None);
}

#[test]
fn every_setter_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.add_torrent(&torrent(1)).expect("add");
    let limits = Limits {
        upload: Some(5),
        max_peers: Some(7),
        seed_ratio: Some(0.0),
        seed_idle: Some(Duration::from_secs(60)),
        unlimited: Unlimited { time: true, ..Unlimited::default() },
        ..Limits::default()
    };
    store.set_state(id, TorrentState::Paused).expect("state");
    store.set_limits(id, &limits).expect("limits");
    store.set_file_priorities(id, Some(&[FilePriority::High])).expect("priorities");
    store.set_metainfo(id, b"d4:infodee", "new name").expect("metainfo");
    store.set_download_dir(id, Path::new("/elsewhere")).expect("dir");
    store.set_completed_at(id, Some(at(1_800_000_000))).expect("completed");
    store.set_labels(id, &["a".into(), "b".into()]).expect("labels");
    store.set_sequential(id, true).expect("sequential");
    store.add_counters(id, 100, 40).expect("add counters");
    store.add_counters(id, 1, 2).expect("add counters");
    let r = row(&store, id);
    assert_eq!(r.state, TorrentState::Paused);
    assert_eq!(r.limits, limits);
    assert_eq!(r.file_priorities, Some(vec![FilePriority::High]));
    assert_eq!((r.metainfo.as_deref(), r.name.as_str()), (Some(&b"d4:infodee"[..]), "new name"));
    assert_eq!(r.download_dir, Path::new("/elsewhere"));
    assert_eq!(r.completed_at, Some(at(1_800_000_000)));
    assert_eq!((r.uploaded_total, r.downloaded_total), (101, 42));
    assert_eq!((r.labels, r.sequential), (vec!["a".to_owned(), "b".to_owned()], true));

    store.set_counters(id, 7, 8).expect("set counters");
    store.set_file_priorities(id, None).expect("priorities");
    store.set_completed_at(id, None).expect("completed");
    store.set_limits(id, &Limits::default()).expect("limits");
    let r = row(&store, id);
    assert_eq!((r.uploaded_total, r.downloaded_total), (7, 8));
    assert_eq!((r.file_priorities, r.completed_at, r.limits), (None, None, Limits::default()));

    let missing = TorrentId::new(id.get() + 1);
    let no_such = |r: Result<(), StateError>| matches!(r, Err(StateError::NoSuchTorrent(m)) if m == missing);
    assert!(no_such(store.set_state(missing, TorrentState::Active)));
    assert!(no_such(store.set_limits(missing, &limits)));
    assert!(no_such(store.set_file_priorities(missing, None)));
    assert!(no_such(store.set_labels(missing, &[])));
    assert!(no_such(store.set_sequential(missing, false)));
    assert!(no_such(store.set_metainfo(missing, b"x", "x")));
    assert!(no_such(store.add_counters(missing, 1, 1)));
    assert!(no_such(store.set_counters(missing, 1, 1)));
    assert!(no_such(store.set_queue_position(missing, 0)));
    assert!(no_such(store.remove_torrent(missing)));
    assert!(no_such(store.save_resume(missing, &resume(1, 3))));
}

#[test]
fn bad_torrents_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.add_torrent(&torrent(1)).expect("add");
    let mut dup = torrent(1);
    dup.info_hash = dup.info_hash.to_uppercase();
    assert!(matches!(store.add_torrent(&dup), Err(StateError::DuplicateTorrent { existing, .. }) if existing == id));

    let mut bad = torrent(2);
    bad.info_hash = "xyz".into();
    assert!(matches!(store.add_torrent(&bad), Err(StateError::InvalidValue { .. })));
    let mut bad = torrent(2);
    bad.metainfo = None;
    assert!(matches!(store.add_torrent(&bad), Err(StateError::InvalidValue { .. })));
    let mut bad = torrent(2);
    bad.limits.seed_ratio = Some(f64::NAN);
    assert!(matches!(store.add_torrent(&bad), Err(StateError::InvalidValue { .. })));
    let mut bad = torrent(2);
    bad.limits.upload = Some(u64::MAX);
    assert!(matches!(store.add_torrent(&bad), Err(StateError::InvalidValue { .. })));
    assert!(matches!(store.add_counters(id, u64::MAX, 0), Err(StateError::InvalidValue { .. })));
    assert_eq!(store.torrents().expect("list").len(), 1);
}

#[test]
fn magnet_without_metadata_then_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let magnet = format!("magnet:?xt=urn:btih:{}", hash(3));
    let id = store
        .add_torrent(&NewTorrent { metainfo: None, magnet: Some(magnet.clone()), name: hash(3), ..torrent(3) })
        .expect("add magnet");
    assert_eq!(row(&store, id).metainfo, None);
    drop(store);
    let store = open(&dir);
    store.set_metainfo(id, b"d8:announce3:url4:infod4:name1:xee", "x").expect("metadata arrived");
    let r = row(&store, id);
    assert_eq!((r.metainfo.is_some(), r.magnet, r.name.as_str()), (true, Some(magnet), "x"));
}

#[test]
fn ids_are_never_reused_and_queue_stays_dense() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let ids: Vec<TorrentId> = (0..4).map(|i| store.add_torrent(&torrent(i)).expect("add")).collect();
    let queue = |store: &Store| -> Vec<(TorrentId, u32)> {
        let mut rows: Vec<_> = store.torrents().expect("list").into_iter().map(|r| (r.id, r.queue_position)).collect();
        rows.sort_by_key(|&(_, pos)| pos);
        rows
    };
    assert_eq!(queue(&store), vec![(ids[0], 0), (ids[1], 1), (ids[2], 2), (ids[3], 3)]);
    store.set_queue_position(ids[3], 0).expect("to front");
    assert_eq!(queue(&store), vec![(ids[3], 0), (ids[0], 1), (ids[1], 2), (ids[2], 3)]);
    store.set_queue_position(ids[3], 99).expect("to back");
    assert_eq!(queue(&store), vec![(ids[0], 0), (ids[1], 1), (ids[2], 2), (ids[3], 3)]);
    store.set_queue_position(ids[0], 2).expect("down");
    assert_eq!(queue(&store), vec![(ids[1], 0), (ids[2], 1), (ids[0], 2), (ids[3], 3)]);

    store.remove_torrent(ids[2]).expect("remove");
    assert_eq!(queue(&store), vec![(ids[1], 0), (ids[0], 1), (ids[3], 2)]);
    store.remove_torrent(ids[3]).expect("remove the newest");
    drop(store);
    let store = open(&dir);
    let new = store.add_torrent(&torrent(9)).expect("add");
    assert!(new > ids[3], "id {new} reuses a removed one");
    assert_eq!(queue(&store), vec![(ids[1], 0), (ids[0], 1), (new, 2)]);
}

#[test]
fn resume_roundtrip_replace_and_cascade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let a = store.add_torrent(&torrent(1)).expect("add");
    let b = store.add_torrent(&torrent(2)).expect("add");
    assert_eq!(store.load_resume(a).expect("load"), None);
    for pieces in [0, 1, 8, 13] {
        let data = resume(3, pieces);
        store.save_resume(a, &data).expect("save");
        assert_eq!(store.load_resume(a).expect("load"), Some(data));
    }
    store.save_resume(b, &resume(4, 100)).expect("save");
    store.clear_resume(a).expect("clear");
    assert_eq!(store.load_resume(a).expect("load"), None);
    store.save_resume(a, &resume(5, 9)).expect("save");

    store.remove_torrent(b).expect("remove");
    assert_eq!(store.load_resume(b).expect("load"), None);
    let rows = rusqlite::Connection::open(store.path())
        .and_then(|c| {
            c.query_row("SELECT COUNT(*) FROM resume WHERE torrent_id = ?1", [b.get()], |r| r.get::<_, i64>(0))
        })
        .expect("count");
    assert_eq!(rows, 0, "resume row deleted with its torrent");
    assert_eq!(store.load_resume(a).expect("load"), Some(resume(5, 9)), "other torrents keep theirs");
    store.check_integrity().expect("integrity");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Speeds {
    up: Option<u64>,
    down: Option<u64>,
    alt: bool,
}

#[test]
fn settings_roundtrip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.get_setting::<u32>("missing").expect("get"), None);
    let speeds = Speeds { up: Some(10), down: None, alt: true };
    store.set_setting("speeds", &speeds).expect("set");
    store.set_setting("port", &6881u16).expect("set");
    store.set_setting("name", "shoal").expect("set unsized");
    assert_eq!(store.get_setting::<Speeds>("speeds").expect("get"), Some(speeds));
    store.set_setting("port", &6882u16).expect("overwrite");
    assert_eq!(store.get_setting::<u16>("port").expect("get"), Some(6882));
    assert!(matches!(store.get_setting::<u16>("name"), Err(StateError::Setting { key, .. }) if key == "name"));

    let all = store.settings().expect("all");
    let expected: BTreeMap<String, serde_json::Value> = [
        ("name".to_owned(), serde_json::json!("shoal")),
        ("port".to_owned(), serde_json::json!(6882)),
        ("speeds".to_owned(), serde_json::json!({"up": 10, "down": null, "alt": true})),
    ]
    .into();
    assert_eq!(all, expected);
    assert!(store.remove_setting("port").expect("remove"));
    assert!(!store.remove_setting("port").expect("remove again"));
    assert_eq!(store.get_setting::<u16>("port").expect("get"), None);
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let seeding = store.add_torrent(&torrent(1)).expect("add");
    let paused = store.add_torrent(&full_torrent()).expect("add");
    store.set_completed_at(seeding, Some(at(1_750_000_000))).expect("complete");
    store.set_counters(seeding, 5_000_000_000, 1_000).expect("counters");
    store.save_resume(seeding, &resume(1, 20)).expect("resume");
    store.save_resume(paused, &resume(2, 5)).expect("resume");
    store.set_setting("alt_speed", &true).expect("setting");
    let before = (store.torrents().expect("list"), store.settings().expect("settings"));
    drop(store);

    let store = open(&dir);
    assert_eq!((store.torrents().expect("list"), store.settings().expect("settings")), before);
    assert_eq!(row(&store, paused).state, TorrentState::Paused);
    assert_eq!(row(&store, seeding).state, TorrentState::Active);
    assert_eq!(store.load_resume(seeding).expect("load"), Some(resume(1, 20)));
    assert_eq!(store.load_resume(paused).expect("load"), Some(resume(2, 5)));
    store.check_integrity().expect("integrity");
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .expect("read version")
}

#[test]
fn an_empty_file_is_version_0_and_is_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/folder/state.sqlite3");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"").expect("empty file");
    let store = Store::open(&path).expect("open");
    store.add_torrent(&torrent(1)).expect("schema is there");
    drop(store);
    assert_eq!(user_version(&path), Store::schema_version());
    let mode: String = rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
        .expect("mode");
    assert_eq!(mode, "wal");

    // A missing file in a missing folder is created.
    let fresh = dir.path().join("a/b/c.sqlite3");
    drop(Store::open(&fresh).expect("create"));
    assert_eq!(user_version(&fresh), Store::schema_version());
}

#[test]
fn a_version_1_database_is_upgraded_keeping_its_torrents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Store::path_in(dir.path());
    {
        // The version 1 schema as Shoal released it, with one torrent.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(include_str!("support/schema_v1.sql")).expect("v1 schema");
        conn.execute(
            "INSERT INTO torrents (info_hash, name, metainfo, download_dir, state, added_at, seed_ratio, \
             queue_position) VALUES (?1, 'old', x'00', '/dl', 'active', 1700000000, 2.0, 0)",
            [hash(9)],
        )
        .expect("v1 row");
        conn.pragma_update(None, "application_id", 0x5348_4f4c).expect("owner");
        conn.pragma_update(None, "user_version", 1).expect("version");
    }
    let store = Store::open(&path).expect("upgrade");
    assert_eq!(user_version(&path), Store::schema_version());
    let rows = store.torrents().expect("list");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.name.as_str(), r.limits.seed_ratio), ("old", Some(2.0)));
    assert_eq!((r.limits.seed_idle, r.limits.unlimited), (None, Unlimited::default()));
    assert_eq!((r.labels.len(), r.sequential, r.peers.len()), (0, false, 0));
    store.set_labels(r.id, &["kept".into()]).expect("the new columns are writable");
    store.check_integrity().expect("integrity");
}

#[test]
fn a_database_from_a_newer_shoal_is_refused_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Store::path_in(dir.path());
    let store = Store::open(&path).expect("open");
    store.add_torrent(&torrent(1)).expect("add");
    drop(store);
    let future = Store::schema_version() + 1;
    rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_update(None, "user_version", future))
        .expect("bump version");
    let before = std::fs::read(&path).expect("read");

    let err = Store::open(&path).expect_err("must refuse");
    assert!(matches!(err, StateError::TooNew { found, supported, .. } if found == future && supported == future - 1));
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("upgrade Shoal"), "{message}");
    assert_eq!(std::fs::read(&path).expect("read"), before, "file untouched");
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a database, but it is long enough to have a header........").expect("write");
    let err = Store::open(&text).expect_err("not sqlite");
    assert!(matches!(err, StateError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE mine (x INTEGER);"))
        .expect("other app's db");
    assert!(matches!(Store::open(&other), Err(StateError::NotShoal { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_setting_roundtrips(
        key in "\\PC{0,24}",
        text in "\\PC{0,40}",
        number in any::<i64>(),
        ratio in -1e12f64..1e12,
        list in proptest::collection::vec(any::<u32>(), 0..8),
        flag in any::<Option<bool>>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let value = (text, number, ratio, list, flag);
        store.set_setting(&key, &value).expect("set");
        prop_assert_eq!(store.get_setting::<(String, i64, f64, Vec<u32>, Option<bool>)>(&key).expect("get"), Some(value));
        prop_assert_eq!(store.settings().expect("all").len(), 1);
    }
}
