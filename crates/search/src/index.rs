//! The local index: every record a node knows, in SQLite with an FTS5 table over names, file
//! paths and tags, with where each came from, whether it was checked against its metadata,
//! when it was first and last stored, and the seeders last seen.
//!
//! Queries are the user's words, each matched as a prefix of a token (`ubu 24` finds
//! `ubuntu-24.04-desktop-amd64.iso`), all of them required; the user's text never reaches FTS5
//! as syntax (each word is quoted). Results are ranked by BM25 with the name weighing most,
//! then tags, then file paths; publishers the user trusts come first. A record of a group share
//! is only returned to a caller that names that group's authority among its own. Each
//! publisher has its own record of a torrent (nobody can take an info-hash over from another);
//! a publisher's newer record replaces its older one. The index holds at most `max_items`
//! records: past that, the least recently stored (added or replaced) go.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::record::Record;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite failed.
    #[error("the search index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record no longer parses.
    #[error("the search index holds a damaged record: {0}")]
    Damaged(String),
}

/// What [`Index::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A new record.
    Added,
    /// It replaced that publisher's older record of the torrent.
    Updated,
    /// An older or equal record of that publisher's: nothing changed.
    Unchanged,
    /// The publisher keeps this many records already, the most it may.
    OverLimit(usize),
}

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The record.
    pub record: Record,
    /// Where it came from (`local`, `index`, `peers`, `dht`).
    pub source: String,
    /// Its metadata was fetched and its info-hash checked.
    pub verified: bool,
    /// BM25 score (lower ranks higher).
    pub score: f64,
    /// Seeders last seen (an index's tracker's count, or nodes that said they hold it), and
    /// when (Unix seconds).
    pub seeders: Option<(u32, u64)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id         INTEGER PRIMARY KEY,
    info_hash  TEXT NOT NULL,
    name       TEXT NOT NULL,
    files      TEXT NOT NULL,
    tags       TEXT NOT NULL,
    publisher  TEXT NOT NULL,
    grp        TEXT,
    record     TEXT NOT NULL,
    source     TEXT NOT NULL,
    verified   INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    UNIQUE (info_hash, publisher)
);
CREATE INDEX IF NOT EXISTS items_by_last_seen ON items (last_seen);
CREATE INDEX IF NOT EXISTS items_by_publisher ON items (publisher);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
    name, files, tags, content='items', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS items_ai AFTER INSERT ON items BEGIN
    INSERT INTO items_fts (rowid, name, files, tags) VALUES (new.id, new.name, new.files, new.tags);
END;
CREATE TRIGGER IF NOT EXISTS items_ad AFTER DELETE ON items BEGIN
    INSERT INTO items_fts (items_fts, rowid, name, files, tags) VALUES ('delete', old.id, old.name, old.files, old.tags);
END;
CREATE TRIGGER IF NOT EXISTS items_au AFTER UPDATE ON items BEGIN
    INSERT INTO items_fts (items_fts, rowid, name, files, tags) VALUES ('delete', old.id, old.name, old.files, old.tags);
    INSERT INTO items_fts (rowid, name, files, tags) VALUES (new.id, new.name, new.files, new.tags);
END;
";

/// Longest query read (characters), and most words used.
pub const MAX_QUERY_CHARS: usize = 256;
/// Words of a query used.
pub const MAX_QUERY_WORDS: usize = 8;

/// The FTS5 query for the user's `words`: each word quoted and matched as a prefix, all
/// required. `None` when no word is left.
pub fn fts_query(words: &str) -> Option<String> {
    let words: Vec<String> = words
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect::<String>()
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(MAX_QUERY_WORDS)
        // A one-letter word is matched whole: as a prefix it would walk most of the index.
        .map(|w| format!("\"{}\"{}", w.replace('"', "\"\""), if w.chars().count() > 1 { "*" } else { "" }))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The local index.
pub struct Index {
    conn: Mutex<Connection>,
    max_items: usize,
}

impl Index {
    /// Opens (or makes) the index at `path`, keeping at most `max_items` records.
    pub fn open(path: &Path, max_items: usize) -> Result<Index, IndexError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.execute_batch(SCHEMA)?;
        // Indexes made before seeders were kept get the two columns.
        let has_seeders: bool =
            conn.prepare("SELECT 1 FROM pragma_table_info('items') WHERE name = 'seeders'")?.exists([])?;
        if !has_seeders {
            conn.execute_batch(
                "ALTER TABLE items ADD COLUMN seeders INTEGER; ALTER TABLE items ADD COLUMN seeders_at INTEGER;",
            )?;
        }
        Ok(Index { conn: Mutex::new(conn), max_items: max_items.max(1) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a checked record from `source` at `now`: added, or replacing that publisher's
    /// older record of the same torrent; an older or equal one changes nothing (a replay), and
    /// a new one is refused when its publisher keeps `per_publisher` records already. The least
    /// recently stored records go when the index is over its bound.
    pub fn insert(
        &self,
        record: &Record,
        source: &str,
        verified: bool,
        now: u64,
        per_publisher: Option<usize>,
    ) -> Result<Stored, IndexError> {
        let b = &record.body;
        let files: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        let json = serde_json::to_string(record).map_err(|e| IndexError::Damaged(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT record FROM items WHERE info_hash = ?1 AND publisher = ?2",
                params![b.info_hash, b.publisher],
                |r| r.get(0),
            )
            .optional()?;
        let stored = match existing {
            Some(old) => {
                let old = serde_json::from_str::<Record>(&old).ok();
                let newer = old.as_ref().is_some_and(|o| o.body.published_at < b.published_at);
                // The same content published again later: kept as the newer record, reported
                // as nothing changed (it is what a user republishing a torrent expects to read).
                let same = old.is_some_and(|o| {
                    let mut o = o.body;
                    o.published_at = b.published_at;
                    o == *b
                });
                if newer {
                    tx.execute(
                        "UPDATE items SET name = ?3, files = ?4, tags = ?5, grp = ?6, record = ?7, last_seen = ?8, \
                         verified = MAX(verified, ?9) WHERE info_hash = ?1 AND publisher = ?2",
                        params![
                            b.info_hash,
                            b.publisher,
                            b.name,
                            files.join("\n"),
                            b.tags.join(" "),
                            b.group,
                            json,
                            now as i64,
                            verified
                        ],
                    )?;
                    if same { Stored::Unchanged } else { Stored::Updated }
                } else {
                    Stored::Unchanged
                }
            }
            None => {
                if let Some(limit) = per_publisher {
                    let kept: i64 =
                        tx.query_row("SELECT COUNT(*) FROM items WHERE publisher = ?1", [&b.publisher], |r| r.get(0))?;
                    if kept as usize >= limit {
                        return Ok(Stored::OverLimit(kept as usize));
                    }
                }
                tx.execute(
                    "INSERT INTO items (info_hash, name, files, tags, publisher, grp, record, source, verified, \
                     first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                    params![
                        b.info_hash,
                        b.name,
                        files.join("\n"),
                        b.tags.join(" "),
                        b.publisher,
                        b.group,
                        json,
                        source,
                        verified,
                        now as i64
                    ],
                )?;
                let count: i64 = tx.query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))?;
                let over = count - self.max_items as i64;
                if over > 0 {
                    tx.execute(
                        "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY last_seen, id LIMIT ?1)",
                        [over],
                    )?;
                }
                Stored::Added
            }
        };
        tx.commit()?;
        Ok(stored)
    }

    /// Records matching `words`, best first, at most `limit`: records of group shares only for
    /// the groups (authority fingerprints) in `groups`; publishers in `trusted` first.
    pub fn search(
        &self,
        words: &str,
        groups: &[String],
        trusted: &[String],
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let Some(query) = fts_query(words) else { return Ok(Vec::new()) };
        let groups_json = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
        let trusted_json = serde_json::to_string(trusted).unwrap_or_else(|_| "[]".into());
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT items.record, items.source, items.verified, bm25(items_fts, 10.0, 1.0, 4.0) AS score,
                    items.seeders, items.seeders_at
             FROM items_fts JOIN items ON items.id = items_fts.rowid
             WHERE items_fts MATCH ?1
               AND (items.grp IS NULL OR items.grp IN (SELECT value FROM json_each(?2)))
             ORDER BY (items.publisher IN (SELECT value FROM json_each(?3))) DESC, score, items.id
             LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![query, groups_json, trusted_json, limit as i64], |r| {
            let seeders = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<i64>>(5)?) {
                (Some(n), Some(at)) => Some((n.clamp(0, i64::from(u32::MAX)) as u32, at.max(0) as u64)),
                _ => None,
            };
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, f64>(3)?, seeders))
        })?;
        let mut hits = Vec::new();
        for row in rows {
            let (json, source, verified, score, seeders) = row?;
            let record: Record = serde_json::from_str(&json).map_err(|e| IndexError::Damaged(e.to_string()))?;
            hits.push(Hit { record, source, verified, score, seeders });
        }
        Ok(hits)
    }

    /// Calls `f` with the name, file paths and tags of every record not limited to a group
    /// (what this node may answer strangers for).
    pub fn for_each_public_text(&self, mut f: impl FnMut(&str)) -> Result<(), IndexError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name, files, tags FROM items WHERE grp IS NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for i in 0..3 {
                f(row.get_ref(i)?.as_str().unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Notes the seeders seen for `info_hash` at `now` (on every publisher's record of it).
    pub fn note_seeders(&self, info_hash: &str, seeders: u32, now: u64) -> Result<(), IndexError> {
        self.conn().execute(
            "UPDATE items SET seeders = ?2, seeders_at = ?3 WHERE info_hash = ?1",
            params![info_hash, seeders, now as i64],
        )?;
        Ok(())
    }

    /// Marks `publisher`'s record of `info_hash` as checked against the torrent's metadata.
    pub fn mark_verified(&self, info_hash: &str, publisher: &str) -> Result<bool, IndexError> {
        let n = self
            .conn()
            .execute("UPDATE items SET verified = 1 WHERE info_hash = ?1 AND publisher = ?2", [info_hash, publisher])?;
        Ok(n > 0)
    }

    /// Removes every record of `publisher`; how many there were.
    pub fn remove_publisher(&self, publisher: &str) -> Result<usize, IndexError> {
        Ok(self.conn().execute("DELETE FROM items WHERE publisher = ?1", [publisher])?)
    }

    /// Whether `publisher` has a record of `info_hash` here.
    pub fn has(&self, info_hash: &str, publisher: &str) -> Result<bool, IndexError> {
        let found: Option<i64> = self
            .conn()
            .query_row("SELECT 1 FROM items WHERE info_hash = ?1 AND publisher = ?2", [info_hash, publisher], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(found.is_some())
    }

    /// Removes `publisher`'s record of `info_hash`; whether there was one.
    pub fn remove(&self, info_hash: &str, publisher: &str) -> Result<bool, IndexError> {
        let n =
            self.conn().execute("DELETE FROM items WHERE info_hash = ?1 AND publisher = ?2", [info_hash, publisher])?;
        Ok(n > 0)
    }

    /// How many records the index holds.
    pub fn len(&self) -> Result<usize, IndexError> {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Whether the index holds no record.
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        self.len().map(|n| n == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FileItem, RecordBody};
    use shoal_identity::Identity;

    fn record(
        me: &Identity,
        hash: char,
        name: &str,
        files: &[&str],
        tags: &[&str],
        group: Option<&str>,
        at: u64,
    ) -> Record {
        let body = RecordBody {
            info_hash: hash.to_string().repeat(40),
            name: name.into(),
            size: 1,
            files: files.iter().map(|f| FileItem { path: (*f).into(), size: 1 }).collect(),
            file_count: files.len() as u64,
            tags: tags.iter().map(|t| (*t).into()).collect(),
            trackers: Vec::new(),
            group: group.map(str::to_string),
            publisher: me.id().compact(),
            published_at: at,
        };
        let mut bytes = b"shoal-record-v1\n".to_vec();
        bytes.extend(serde_json::to_vec(&body).expect("json"));
        let signature = me.sign(&bytes).expect("sign").iter().map(|b| format!("{b:02x}")).collect();
        Record { body, signature }
    }

    fn names(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.record.body.name.as_str()).collect()
    }

    #[test]
    fn words_match_as_prefixes_and_the_name_outranks_files_and_tags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(dir.path(), None).expect("identity");
        let index = Index::open(&dir.path().join("index.sqlite3"), 100).expect("open");
        // The name's match goes in last, so that only the ranking can put it first.
        let holiday = record(&me, 'b', "holiday photos", &["ubuntu wallpaper.png"], &[], None, 1);
        index.insert(&holiday, "index", false, 10, None).expect("b");
        index.insert(&record(&me, 'c', "notes", &[], &["ubuntu"], None, 1), "peers", false, 10, None).expect("c");
        let iso = record(&me, 'a', "ubuntu-24.04-desktop-amd64.iso", &[], &["linux"], None, 1);
        index.insert(&iso, "local", true, 10, None).expect("a");
        let hits = index.search("ubu", &[], &[], 10).expect("search");
        assert_eq!(names(&hits)[0], "ubuntu-24.04-desktop-amd64.iso", "the name match first: {:?}", names(&hits));
        assert_eq!(hits.len(), 3);
        assert!(
            names(&hits).iter().position(|n| *n == "notes") < names(&hits).iter().position(|n| *n == "holiday photos"),
            "a tag outranks a file path: {:?}",
            names(&hits)
        );
        assert_eq!(
            names(&index.search("ubuntu 24.04 iso", &[], &[], 10).expect("search")),
            ["ubuntu-24.04-desktop-amd64.iso"]
        );
        assert!(index.search("ubuntu debian", &[], &[], 10).expect("search").is_empty(), "every word is required");
        // The user's text is never FTS5 syntax.
        for hostile in ["\"", "NEAR(a b)", "name:ubuntu OR *", "a\" OR \"b", "-", "((("] {
            assert!(index.search(hostile, &[], &[], 10).is_ok(), "{hostile} broke the query");
        }
        assert_eq!(fts_query("  "), None);
    }

    #[test]
    fn group_records_are_only_for_members_and_trusted_publishers_rank_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(&dir.path().join("me"), None).expect("identity");
        let (friend, _) = Identity::load_or_create(&dir.path().join("friend"), None).expect("identity");
        let index = Index::open(&dir.path().join("index.sqlite3"), 100).expect("open");
        let lab = "ab".repeat(32);
        index.insert(&record(&me, 'a', "lecture one", &[], &[], Some(&lab), 1), "index", false, 1, None).expect("a");
        index.insert(&record(&me, 'b', "lecture two", &[], &[], None, 1), "index", false, 1, None).expect("b");
        index.insert(&record(&friend, 'c', "lecture three", &[], &[], None, 1), "index", false, 1, None).expect("c");
        assert_eq!(
            index.search("lecture", &[], &[], 10).expect("search").len(),
            2,
            "a group record shown to a stranger"
        );
        assert_eq!(index.search("lecture", std::slice::from_ref(&lab), &[], 10).expect("search").len(), 3);
        let hits = index.search("lecture", &[], &[friend.id().compact()], 10).expect("search");
        assert_eq!(names(&hits)[0], "lecture three", "the trusted publisher first");
    }

    #[test]
    fn seeders_seen_are_kept_and_an_index_made_before_them_gets_their_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(dir.path(), None).expect("identity");
        let path = dir.path().join("old.sqlite3");
        // The tables as they were before seeders were kept (SCHEMA has not changed since).
        Connection::open(&path).expect("open").execute_batch(SCHEMA).expect("schema");
        let index = Index::open(&path, 10).expect("an old index opens");
        index.insert(&record(&me, 'a', "field notes", &[], &[], None, 1), "peers", false, 5, None).expect("insert");
        assert_eq!(index.search("field", &[], &[], 10).expect("search")[0].seeders, None);
        index.note_seeders(&"a".repeat(40), 3, 7).expect("note");
        assert_eq!(index.search("field", &[], &[], 10).expect("search")[0].seeders, Some((3, 7)));
        drop(index);
        let again = Index::open(&path, 10).expect("reopen");
        assert_eq!(again.search("field", &[], &[], 10).expect("search")[0].seeders, Some((3, 7)));
    }

    #[test]
    fn the_index_keeps_its_bound_by_evicting_the_least_recently_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (me, _) = Identity::load_or_create(dir.path(), None).expect("identity");
        let index = Index::open(&dir.path().join("index.sqlite3"), 3).expect("open");
        for (i, hash) in ['a', 'b', 'c'].into_iter().enumerate() {
            let r = record(&me, hash, &format!("item {hash}"), &[], &[], None, 1);
            index.insert(&r, "peers", false, i as u64, None).expect("insert");
        }
        // The same record again (a replay) changes nothing; a newer one from its publisher
        // replaces it and makes it the most recently stored: d then pushes out b.
        let again = record(&me, 'a', "item a", &[], &[], None, 1);
        assert_eq!(index.insert(&again, "peers", false, 10, None).expect("again"), Stored::Unchanged);
        let newer = record(&me, 'a', "item a renamed", &[], &[], None, 2);
        assert_eq!(index.insert(&newer, "index", false, 10, None).expect("newer"), Stored::Updated);
        index.insert(&record(&me, 'd', "item d", &[], &[], None, 1), "peers", false, 11, None).expect("d");
        assert_eq!(index.len().expect("len"), 3);
        let mut left: Vec<String> =
            names(&index.search("item", &[], &[], 10).expect("search")).into_iter().map(String::from).collect();
        left.sort();
        assert_eq!(left, ["item a renamed", "item c", "item d"]);
        // Another publisher's record of the same torrent stands beside it; it replaces nothing.
        let other = tempfile::tempdir().expect("tempdir");
        let (them, _) = Identity::load_or_create(other.path(), None).expect("identity");
        index.insert(&record(&them, 'a', "hijack", &[], &[], None, 9), "index", false, 13, None).expect("other");
        assert_eq!(names(&index.search("renamed", &[], &[], 10).expect("search")), ["item a renamed"]);
        assert_eq!(names(&index.search("hijack", &[], &[], 10).expect("search")), ["hijack"]);
        // A publisher at its limit is refused a new record, not an update of its own.
        let e = record(&them, 'e', "e", &[], &[], None, 1);
        assert_eq!(index.insert(&e, "index", false, 14, Some(1)).expect("limit"), Stored::OverLimit(1));
        let own = record(&them, 'a', "hijack two", &[], &[], None, 10);
        assert_eq!(index.insert(&own, "index", false, 15, Some(1)).expect("own"), Stored::Updated);
        // The same content published again a second later: nothing changed, says the index.
        let republished = record(&them, 'a', "hijack two", &[], &[], None, 11);
        assert_eq!(index.insert(&republished, "index", false, 16, Some(1)).expect("again"), Stored::Unchanged);
    }
}
