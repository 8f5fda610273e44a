//! The writer's steps, shared by the `crash_writer` binary (which performs them until it is
//! killed) and the `crash` test (which checks what survived). Each side uses part of it.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_state::{FileStamp, NewTorrent, ResumeData, Store, TorrentState};

pub(crate) fn hash(i: u64) -> String {
    format!("{i:040x}")
}

pub(crate) fn resume(i: u64) -> ResumeData {
    ResumeData {
        fingerprint: [(i % 251) as u8; 20],
        pieces: (0..(i % 50 + 1)).map(|p| (p + i).is_multiple_of(2)).collect(),
        files: vec![FileStamp { length: i, mtime_secs: i as i64, mtime_nanos: (i % 1000) as u32 }],
        saved_at: UNIX_EPOCH + Duration::from_secs(i),
    }
}

/// Step `i`: add torrent `i`, save its resume data, bump its counters, record `i` as a
/// setting. Each call is its own transaction; the step is reported on stdout after all four
/// returned.
pub(crate) fn step(store: &Store, i: u64) {
    let id = store
        .add_torrent(&NewTorrent {
            info_hash: hash(i),
            name: format!("t{i}"),
            metainfo: Some(vec![b'x'; (i % 4096) as usize + 1]),
            magnet: None,
            download_dir: "/dl".into(),
            state: if i.is_multiple_of(2) { TorrentState::Active } else { TorrentState::Paused },
            added_at: SystemTime::now(),
            limits: Default::default(),
            file_priorities: None,
            labels: Vec::new(),
            sequential: false,
            peers: Vec::new(),
        })
        .expect("add");
    store.save_resume(id, &resume(i)).expect("resume");
    store.add_counters(id, i, 2 * i).expect("counters");
    store.set_setting("last_step", &i).expect("setting");
}
