//! [`Store`]: the connection to the state database, how it is opened and configured.
//!
//! # Durability
//! The database runs in write-ahead-log mode with `synchronous = FULL`: every write method
//! returns only after its transaction is in the WAL and the WAL is `fsync`ed. So
//! - after a process crash (`kill -9`, a panic, an OOM kill) every write that returned is
//!   there, and a write that was interrupted is absent as a whole;
//! - after a power cut or kernel crash the same holds, which `synchronous = NORMAL` would
//!   not promise (in WAL mode it may lose the last commits, though never consistency).
//!
//! FULL costs one `fsync` per write. The daemon writes rarely (a user action, a periodic
//! resume save), and a user who was told "added" or "paused" must find it so after a power
//! cut, so the cost is worth it. Callers that save many torrents at once should space the
//! saves out (every few tens of seconds) rather than write after every piece.
//!
//! # Threads and async
//! A `Store` is `Send + Sync`: it holds one SQLite connection behind a [`Mutex`], and every
//! method locks it for one transaction. Methods block on disk I/O (including `fsync`), so
//! async code shares an `Arc<Store>` and calls it inside `tokio::task::spawn_blocking`.
//! A poisoned lock is recovered: a panic mid-transaction drops the transaction, which rolls
//! it back, so the connection is still consistent.
//!
//! Another process may open the same file (SQLite locks it; a writer waits up to
//! [`BUSY_TIMEOUT`]), but two daemons on one data folder would fight over the torrents: the
//! daemon should hold a lock file of its own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::error::StateError;
use crate::schema::{self, APPLICATION_ID, MIGRATIONS};

/// How long a write waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database's file name inside the data folder (see [`Store::path_in`]).
pub const DB_FILE_NAME: &str = "state.sqlite3";

/// The daemon's durable state: torrents, resume data and settings in one SQLite file.
/// See the module doc for durability and threading.
#[derive(Debug)]
pub struct Store {
    /// The only connection; every method holds the lock for exactly one transaction.
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// The database path inside `data_dir`: `data_dir/state.sqlite3`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(DB_FILE_NAME)
    }

    /// Opens the database at `path`, creating it (and its folder) when missing, switching it
    /// to WAL mode and upgrading its schema to the newest version. Refuses files that are not
    /// SQLite, belong to another program, or come from a newer Shoal, without changing them.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StateError> {
        Self::open_with(path.as_ref(), MIGRATIONS)
    }

    /// [`Store::open`] with an explicit migration list (tests add steps to it).
    pub(crate) fn open_with(path: &Path, migrations: &[&str]) -> Result<Store, StateError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir { path: dir.to_owned(), source })?;
        }
        let open_err = |source: rusqlite::Error| classify(path, source);
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;

        // Look before changing anything.
        let found = schema::version_and_owner(&conn).map_err(open_err)?;
        let supported = migrations.len() as i64;
        if found.version > supported {
            return Err(StateError::TooNew { path: path.to_owned(), found: found.version, supported });
        }
        let ours = found.application_id == APPLICATION_ID;
        let fresh = found.application_id == 0 && found.version == 0 && !found.has_objects;
        if !(ours || fresh) || found.version < 0 {
            return Err(StateError::NotShoal { path: path.to_owned() });
        }

        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::JournalMode { path: path.to_owned(), mode });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(open_err)?;

        schema::migrate(&mut conn, migrations).map_err(|(from, source)| StateError::Migration {
            path: path.to_owned(),
            from,
            source,
        })?;
        // The version may have been raised by another process between the look and the
        // migration; never run against a schema newer than ours.
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_err)?;
        if version > supported {
            return Err(StateError::TooNew { path: path.to_owned(), found: version, supported });
        }
        Ok(Store { conn: Mutex::new(conn), path: path.to_owned() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this build writes (`PRAGMA user_version` of every file it opened).
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    /// Runs SQLite's `PRAGMA integrity_check` and a foreign key check; `Err(Corrupt)` lists
    /// the problems.
    pub fn check_integrity(&self) -> Result<(), StateError> {
        self.read(|conn| {
            let mut problems = Vec::new();
            conn.pragma_query(None, "integrity_check", |row| {
                let line: String = row.get(0)?;
                if line != "ok" {
                    problems.push(line);
                }
                Ok(())
            })?;
            conn.pragma_query(None, "foreign_key_check", |row| {
                let table: String = row.get(0)?;
                problems.push(format!("row in {table} refers to a missing row"));
                Ok(())
            })?;
            if problems.is_empty() { Ok(()) } else { Err(StateError::Corrupt(problems.join("; "))) }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection (for single-statement reads; use [`Store::write`] for
    /// anything that changes data).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StateError>) -> Result<T, StateError> {
        f(&self.lock())
    }

    /// Runs `f` in an immediate transaction and commits it if `f` succeeds; on error (or a
    /// panic) nothing `f` did is kept.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StateError>) -> Result<T, StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Turns an SQLite error on opening into the most telling [`StateError`].
fn classify(path: &Path, source: rusqlite::Error) -> StateError {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StateError::NotADatabase { path: path.to_owned() },
        _ => StateError::Open { path: path.to_owned(), source },
    }
}

/// Unix seconds of `time` (rounded down; negative before 1970).
pub(crate) fn to_unix(field: &'static str, time: SystemTime) -> Result<i64, StateError> {
    let too_far = || StateError::invalid(field, "time is too far from 1970");
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).map_err(|_| too_far()),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| too_far())?;
            Ok(if d.subsec_nanos() > 0 { -secs - 1 } else { -secs })
        }
    }
}

/// The time `secs` Unix seconds (the inverse of [`to_unix`] on whole seconds).
pub(crate) fn from_unix(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

/// `value` as an SQLite integer, or `InvalidValue` above `i64::MAX`.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StateError> {
    i64::try_from(value).map_err(|_| StateError::invalid(field, format!("{value} is above {}", i64::MAX)))
}

/// A stored integer that the schema keeps non-negative.
pub(crate) fn to_u64(field: &'static str, value: i64) -> Result<u64, StateError> {
    u64::try_from(value).map_err(|_| StateError::Corrupt(format!("{field} is negative ({value})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_roundtrip() {
        for secs in [0, 1, -1, 1_700_000_000, -86_400] {
            assert_eq!(to_unix("t", from_unix(secs)).expect("in range"), secs);
        }
        let half_before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(to_unix("t", half_before).expect("in range"), -1);
    }

    #[test]
    fn a_later_migration_upgrades_and_keeps_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = Store::open_with(&path, MIGRATIONS).expect("open");
        store.write(|tx| Ok(tx.execute("INSERT INTO settings (key, value) VALUES ('k', '1')", [])?)).expect("insert");
        drop(store);

        let step = "ALTER TABLE settings ADD COLUMN note TEXT NOT NULL DEFAULT 'x';";
        let mut more = MIGRATIONS.to_vec();
        more.push(step);
        let store = Store::open_with(&path, &more).expect("open with one more step");
        let (value, note, version): (String, String, i64) = store
            .read(|conn| {
                let version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
                Ok(conn
                    .query_row("SELECT value, note FROM settings", [], |row| Ok((row.get(0)?, row.get(1)?, version)))?)
            })
            .expect("read");
        assert_eq!((value.as_str(), note.as_str(), version), ("1", "x", more.len() as i64));
        drop(store);

        // This build's list is now older than the file.
        let (found, supported) = (more.len() as i64, MIGRATIONS.len() as i64);
        assert!(matches!(
            Store::open_with(&path, MIGRATIONS),
            Err(StateError::TooNew { found: f, supported: s, .. }) if f == found && s == supported
        ));
    }

    #[test]
    fn a_failing_migration_leaves_the_old_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        drop(Store::open_with(&path, MIGRATIONS).expect("open"));
        let mut more = MIGRATIONS.to_vec();
        more.push("CREATE TABLE extra (x INTEGER) STRICT; THIS IS NOT SQL;");
        let current = MIGRATIONS.len() as i64;
        assert!(matches!(Store::open_with(&path, &more), Err(StateError::Migration { from, .. }) if from == current));
        let store = Store::open_with(&path, MIGRATIONS).expect("still the current version");
        let extra: bool = store
            .read(|conn| {
                Ok(conn
                    .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'extra')", [], |r| r.get(0))?)
            })
            .expect("read");
        assert!(!extra, "the half-done step was rolled back");
    }
}
