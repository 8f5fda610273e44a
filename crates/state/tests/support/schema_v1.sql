-- Shoal's state schema version 1, as released: the starting point of the upgrade test.
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
