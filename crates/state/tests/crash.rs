//! `kill -9` in the middle of writing: a child process (the `crash_writer` binary) writes to
//! the store in a loop and reports each step after it returned; the parent SIGKILLs it mid-way, reopens the
//! database and checks that it is intact and that every reported step is there.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "support/crash_steps.rs"]
mod crash_steps;

use crash_steps::{hash, resume};
use shoal_state::{Store, TorrentState};

fn spawn_writer(db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn writer")
}

/// Runs a writer until it reported `steps` more steps, waits `linger`, SIGKILLs it, and
/// returns the last step it reported.
fn run_and_kill(db: &Path, steps: u64, linger: Duration) -> Option<u64> {
    let mut child = spawn_writer(db);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut last = None;
    let mut seen = 0;
    let mut line = String::new();
    while seen < steps {
        line.clear();
        if lines.read_line(&mut line).expect("read child") == 0 {
            let mut err = String::new();
            child.stderr.take().expect("stderr").read_to_string(&mut err).ok();
            panic!("writer exited early: {:?}\n{err}", child.wait());
        }
        if let Some(n) = line.trim().strip_prefix("committed ") {
            last = Some(n.parse::<u64>().expect("step number"));
            seen += 1;
        }
    }
    std::thread::sleep(linger);
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
    let status = child.wait().expect("reap");
    assert!(status.code().is_none(), "the writer was killed by a signal, not exited: {status:?}");
    // Reports written before the kill are still in the pipe.
    for line in lines.lines() {
        if let Some(n) = line.expect("read child").trim().strip_prefix("committed ") {
            last = Some(n.parse().expect("step number"));
        }
    }
    last
}

#[test]
fn sigkill_while_writing_loses_nothing_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Store::path_in(dir.path());
    let mut last = None;
    for (round, (steps, linger_ms)) in
        [(40, 0), (25, 3), (60, 1), (10, 7), (15, 2), (30, 5), (5, 1), (20, 4)].into_iter().enumerate()
    {
        let reported = run_and_kill(&db, steps, Duration::from_millis(linger_ms));
        assert!(reported > last, "round {round}: no progress");
        last = reported;
        let last = last.expect("some step reported");

        let store = Store::open(&db).expect("reopen after SIGKILL");
        store.check_integrity().expect("integrity_check ok after SIGKILL");
        let rows = store.torrents().expect("list");
        // Every reported step is complete; at most one more step was begun (steps are
        // written in order, each write its own transaction).
        assert!(rows.len() as u64 == last + 1 || rows.len() as u64 == last + 2, "round {round}: {} rows", rows.len());
        for (i, row) in rows.iter().enumerate().take(last as usize + 1) {
            let i = i as u64;
            assert_eq!(row.info_hash, hash(i), "round {round}: torrents in order");
            assert_eq!(row.state, if i.is_multiple_of(2) { TorrentState::Active } else { TorrentState::Paused });
            assert_eq!(store.load_resume(row.id).expect("load"), Some(resume(i)), "round {round}: resume of step {i}");
            assert_eq!((row.uploaded_total, row.downloaded_total), (i, 2 * i), "round {round}: counters of step {i}");
        }
        let recorded: u64 = store.get_setting("last_step").expect("get").expect("set");
        assert!(recorded == last || recorded == last + 1, "round {round}: last_step {recorded}, reported {last}");
        // A half-done next step is finished by the next writer only if it was the add; the
        // next round starts after the rows present, so tidy it up here to keep steps whole.
        if rows.len() as u64 == last + 2 {
            store.remove_torrent(rows[rows.len() - 1].id).expect("drop the unfinished step");
        }
    }
}
