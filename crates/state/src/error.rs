//! [`StateError`]: everything that can go wrong opening or using the state database.

use std::io;
use std::path::PathBuf;

use crate::torrents::TorrentId;

/// An error from [`Store`](crate::Store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The folder that should hold the database could not be created.
    #[error("cannot create the folder {} for the state database: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// SQLite could not open or configure the database file (permissions, a full disk, a
    /// file locked by another program for longer than the busy timeout).
    #[error("cannot open the state database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not an SQLite database.
    #[error("{} is not an SQLite database; move it away or choose another data folder", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database written by another program (a foreign
    /// `application_id`, or tables without Shoal's schema version).
    #[error("{} is an SQLite database that does not belong to Shoal; refusing to change it", path.display())]
    NotShoal {
        /// The file.
        path: PathBuf,
    },
    /// The database was written by a newer Shoal (its schema version is above the newest
    /// this build knows). It is left untouched.
    #[error(
        "the state database {} has schema version {found}, but this Shoal only knows versions up to {supported}; \
         upgrade Shoal (the file was not changed)",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build can read and write.
        supported: i64,
    },
    /// SQLite refused to switch to write-ahead logging (for example on a network file
    /// system without shared memory support).
    #[error(
        "the state database {} cannot use write-ahead logging (journal mode is {mode:?}); \
         put the data folder on a local file system",
        path.display()
    )]
    JournalMode {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead of `wal`.
        mode: String,
    },
    /// Upgrading the schema failed; the transaction was rolled back, so the file still has
    /// version `from`.
    #[error("cannot upgrade the state database {} from schema version {from}: {source}", path.display())]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version the failing step started from.
        from: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed on an open database (I/O error, full disk, busy for longer than
    /// the busy timeout, or a constraint the caller's data broke).
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No torrent has this id (never added, or removed).
    #[error("no torrent with id {0}")]
    NoSuchTorrent(TorrentId),
    /// A torrent with this info-hash is already stored.
    #[error("a torrent with info-hash {info_hash} is already stored (id {existing})")]
    DuplicateTorrent {
        /// The info-hash, lower-case hex.
        info_hash: String,
        /// The id of the stored torrent.
        existing: TorrentId,
    },
    /// A value given to the store cannot be stored (an info-hash that is not 40 or 64 hex
    /// digits, a path that is not UTF-8, a number above `i64::MAX`, a negative or NaN ratio,
    /// a torrent with neither metainfo nor magnet link).
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// Which value.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting could not be converted to or from JSON, or the stored JSON does not fit the
    /// type asked for.
    #[error("setting {key:?}: {source}")]
    Setting {
        /// The setting's key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored row breaks an invariant the store itself maintains (it was edited by hand, or
    /// `PRAGMA integrity_check` reported damage). The row is not trusted.
    #[error("corrupt state: {0}")]
    Corrupt(String),
}

impl StateError {
    /// An [`StateError::InvalidValue`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidValue { field, reason: reason.into() }
    }
}
