//! The database schema and its forward migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version` (0 in a new, empty file).
//! [`MIGRATIONS`]`[v]` turns version `v` into version `v + 1`; the newest version is
//! `MIGRATIONS.len()`. Opening runs the missing steps and sets the new version in one
//! `BEGIN IMMEDIATE` transaction, so a crash mid-upgrade leaves the old version intact and the
//! next open simply upgrades again. A file with a version above `MIGRATIONS.len()` was written
//! by a newer Shoal and is refused without being changed.
//!
//! Rules for adding a migration: append, never edit a released step; keep each step valid
//! SQL for `execute_batch`; `PRAGMA foreign_keys` cannot change inside a transaction, so a
//! step that rebuilds a referenced table must use the "create new, copy, drop, rename"
//! procedure from SQLite's ALTER TABLE documentation with `PRAGMA foreign_key_check` before
//! committing.
//!
//! # Version 1
//! - `torrents`: one row per torrent. `id` is `AUTOINCREMENT` so an id is never reused after
//!   a removal (RPC clients keep ids). `info_hash` is lower-case hex (40 digits for v1 and
//!   hybrid torrents, 64 for pure v2). At least one of `metainfo` (complete bencoded
//!   .torrent bytes) and `magnet` (the link it was added from) is set; `metainfo IS NULL`
//!   means the metadata is still being fetched. Times are Unix seconds; rates are bytes per
//!   second; `seed_time` is seconds; NULL limits mean "the global setting applies".
//!   `file_priorities` is a JSON array of `"skip"|"low"|"normal"|"high"` (NULL: all normal).
//!   `queue_position` values are 0..n-1 without gaps.
//! - `resume`: at most one row per torrent, deleted with it (`ON DELETE CASCADE`).
//!   `have` is a bitfield as in BEP 3 (piece 0 in the high bit of byte 0) of `piece_count`
//!   bits; `files` is 20 bytes per file: length u64, mtime seconds i64, mtime nanoseconds
//!   u32, little-endian; `fingerprint` identifies the storage layout the bits refer to.
//! - `settings`: key to JSON text.
//!
//! # Version 2
//! `torrents` gains, with defaults that keep every existing row as it was:
//! - `seed_idle`: seconds without uploading after which seeding stops (NULL: the global
//!   setting);
//! - `seed_unlimited`: bit set of the seeding goals the torrent ignores, even the global ones
//!   (1 ratio, 2 time, 4 idle), so a torrent can seed for ever while others stop;
//! - `labels`: JSON array of strings;
//! - `sequential`: 1 to download pieces in order;
//! - `peers`: JSON array of `"ip:port"` strings given when the torrent was added, dialled at
//!   every start.
//!
//! # Version 3
//! An index on `torrents.queue_position`, so adding a torrent (which takes the largest
//! position) and moving one in the queue do not scan every row.
//!
//! # Version 4
//! `pushes`: the torrents a server peer keeps for the identities that pushed them, one row per
//! (torrent, pusher), deleted with the torrent. `pusher` is the identity ID in its compact
//! form; `size` is the torrent's total length in bytes when pushed (what the pusher's quota
//! counts); `pushed_at` is Unix seconds.

use rusqlite::{Connection, TransactionBehavior};

/// Shoal's `PRAGMA application_id` ("SHOL"), so a foreign SQLite file is never mistaken for
/// ours.
pub(crate) const APPLICATION_ID: i32 = 0x5348_4f4c;

/// Every schema step, oldest first. See the module doc.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

const V1: &str = "
CREATE TABLE torrents (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    info_hash        TEXT NOT NULL UNIQUE
                     CHECK (length(info_hash) IN (40, 64) AND info_hash NOT GLOB '*[^0-9a-f]*'),
    name             TEXT NOT NULL,
    metainfo         BLOB,
    magnet           TEXT,
    download_dir     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('active', 'paused')),
    added_at         INTEGER NOT NULL,
    completed_at     INTEGER,
    upload_limit     INTEGER CHECK (upload_limit >= 0),
    download_limit   INTEGER CHECK (download_limit >= 0),
    max_peers        INTEGER CHECK (max_peers >= 0),
    seed_ratio       REAL CHECK (seed_ratio >= 0),
    seed_time        INTEGER CHECK (seed_time >= 0),
    file_priorities  TEXT CHECK (file_priorities IS NULL OR json_valid(file_priorities)),
    queue_position   INTEGER NOT NULL CHECK (queue_position >= 0),
    uploaded_total   INTEGER NOT NULL DEFAULT 0 CHECK (uploaded_total >= 0),
    downloaded_total INTEGER NOT NULL DEFAULT 0 CHECK (downloaded_total >= 0),
    CHECK (metainfo IS NOT NULL OR magnet IS NOT NULL)
) STRICT;

CREATE TABLE resume (
    torrent_id  INTEGER PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 20),
    piece_count INTEGER NOT NULL CHECK (piece_count >= 0),
    have        BLOB NOT NULL,
    files       BLOB NOT NULL,
    saved_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL CHECK (json_valid(value))
) STRICT, WITHOUT ROWID;
";

const V2: &str = "
ALTER TABLE torrents ADD COLUMN seed_idle INTEGER CHECK (seed_idle >= 0);
ALTER TABLE torrents ADD COLUMN seed_unlimited INTEGER NOT NULL DEFAULT 0 CHECK (seed_unlimited BETWEEN 0 AND 7);
ALTER TABLE torrents ADD COLUMN labels TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(labels) AND json_type(labels) = 'array');
ALTER TABLE torrents ADD COLUMN sequential INTEGER NOT NULL DEFAULT 0 CHECK (sequential IN (0, 1));
ALTER TABLE torrents ADD COLUMN peers TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(peers) AND json_type(peers) = 'array');
";

const V3: &str = "
CREATE INDEX torrents_by_queue_position ON torrents (queue_position);
";

const V4: &str = "
CREATE TABLE pushes (
    torrent_id INTEGER NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    pusher     TEXT NOT NULL CHECK (length(pusher) BETWEEN 1 AND 128),
    size       INTEGER NOT NULL CHECK (size >= 0),
    pushed_at  INTEGER NOT NULL,
    PRIMARY KEY (torrent_id, pusher)
) STRICT;
CREATE INDEX pushes_by_pusher ON pushes (pusher);
";

/// What [`version_and_owner`] found in a database file.
pub(crate) struct Found {
    /// `PRAGMA user_version`.
    pub(crate) version: i64,
    /// `PRAGMA application_id`.
    pub(crate) application_id: i32,
    /// Whether the file holds any table, index, view or trigger.
    pub(crate) has_objects: bool,
}

/// Reads the version and owner markers without changing anything.
pub(crate) fn version_and_owner(conn: &Connection) -> rusqlite::Result<Found> {
    let version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let application_id = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let has_objects = conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema)", [], |row| row.get(0))?;
    Ok(Found { version, application_id, has_objects })
}

/// Runs `migrations[from..]` in one immediate transaction and records the new version.
/// Returns `Err((step_start_version, error))` on failure (everything rolled back).
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), (i64, rusqlite::Error)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| (0, e))?;
    // Re-read under the write lock: another process may have upgraded meanwhile.
    let from: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(|e| (0, e))?;
    let target = migrations.len() as i64;
    if from >= target {
        return Ok(());
    }
    for (version, step) in migrations.iter().enumerate().skip(usize::try_from(from).unwrap_or(0)) {
        tx.execute_batch(step).map_err(|e| (version as i64, e))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(|e| (from, e))?;
    tx.pragma_update(None, "user_version", target).map_err(|e| (from, e))?;
    tx.commit().map_err(|e| (from, e))
}
