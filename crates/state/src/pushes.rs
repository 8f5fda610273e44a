//! What a server peer keeps for others: one [`PushRow`] per (torrent, pusher). A push is
//! stored with its torrent in one transaction ([`Store::add_pushed_torrent`]) or, for a
//! torrent already stored, alone ([`Store::add_push`]); removing the torrent removes its
//! pushes.

use std::time::SystemTime;

use rusqlite::params;

use crate::error::StateError;
use crate::store::{Store, from_unix, to_i64, to_u64, to_unix};
use crate::torrents::{NewTorrent, TorrentId};

/// One identity's push of one torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRow {
    /// The torrent kept.
    pub torrent: TorrentId,
    /// The pusher's identity ID (compact form).
    pub pusher: String,
    /// The torrent's total length when pushed: what the pusher's quota counts.
    pub size: u64,
    /// When it was pushed.
    pub pushed_at: SystemTime,
}

fn insert(tx: &rusqlite::Transaction<'_>, push: &PushRow) -> Result<bool, StateError> {
    let size = to_i64("push size", push.size)?;
    let at = to_unix("push time", push.pushed_at)?;
    let changed = tx.execute(
        "INSERT INTO pushes (torrent_id, pusher, size, pushed_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (torrent_id, pusher) DO NOTHING",
        params![push.torrent.get(), push.pusher, size, at],
    )?;
    Ok(changed == 1)
}

impl Store {
    /// Stores a new torrent and `pusher`'s push of it together (see [`Store::add_torrent`]);
    /// `push.torrent` is ignored (the new id is used).
    pub fn add_pushed_torrent(&self, new: &NewTorrent, push: &PushRow) -> Result<TorrentId, StateError> {
        self.add_torrent_with(new, |tx, id| insert(tx, &PushRow { torrent: id, ..push.clone() }).map(|_| ()))
    }

    /// Records a push of a torrent already stored. Returns false when that pusher had pushed it
    /// already (nothing changes).
    pub fn add_push(&self, push: &PushRow) -> Result<bool, StateError> {
        self.write(|tx| {
            crate::torrents::exists(tx, push.torrent)?;
            insert(tx, push)
        })
    }

    /// Every push, oldest first.
    pub fn pushes(&self) -> Result<Vec<PushRow>, StateError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT torrent_id, pusher, size, pushed_at FROM pushes ORDER BY pushed_at, torrent_id")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (torrent, pusher, size, at) = row?;
                out.push(PushRow {
                    torrent: TorrentId::new(torrent),
                    pusher,
                    size: to_u64("push size", size)?,
                    pushed_at: from_unix(at),
                });
            }
            Ok(out)
        })
    }

    /// Forgets `pusher`'s push of `torrent`. Returns how many pushes of that torrent remain.
    pub fn remove_push(&self, torrent: TorrentId, pusher: &str) -> Result<usize, StateError> {
        self.write(|tx| {
            tx.execute("DELETE FROM pushes WHERE torrent_id = ?1 AND pusher = ?2", params![torrent.get(), pusher])?;
            let left: i64 =
                tx.query_row("SELECT COUNT(*) FROM pushes WHERE torrent_id = ?1", [torrent.get()], |row| row.get(0))?;
            Ok(left as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrents::TorrentState;

    fn torrent(hash: char) -> NewTorrent {
        NewTorrent {
            info_hash: hash.to_string().repeat(40),
            name: format!("t{hash}"),
            metainfo: Some(b"d4:infode".to_vec()),
            magnet: None,
            download_dir: "/srv/pushed".into(),
            state: TorrentState::Active,
            added_at: SystemTime::now(),
            limits: Default::default(),
            file_priorities: None,
            labels: Vec::new(),
            sequential: false,
            peers: Vec::new(),
        }
    }

    #[test]
    fn a_push_is_stored_with_its_torrent_and_goes_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(Store::path_in(dir.path())).expect("open");
        let push =
            PushRow { torrent: TorrentId::new(0), pusher: "alice".into(), size: 64, pushed_at: SystemTime::now() };
        let id = store.add_pushed_torrent(&torrent('a'), &push).expect("add");
        assert!(!store.add_push(&PushRow { torrent: id, ..push.clone() }).expect("again"), "a second push counted");
        assert!(store.add_push(&PushRow { torrent: id, pusher: "bob".into(), ..push.clone() }).expect("bob"));
        let rows = store.pushes().expect("pushes");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.torrent == id && r.size == 64));
        assert_eq!(store.remove_push(id, "bob").expect("withdraw"), 1);
        store.remove_torrent(id).expect("remove");
        assert!(store.pushes().expect("pushes").is_empty(), "a removed torrent's pushes stayed");
        // A push of a torrent that is not stored is refused; a failed push stores no torrent.
        assert!(store.add_push(&PushRow { torrent: TorrentId::new(999), ..push.clone() }).is_err());
        let bad = PushRow { pusher: String::new(), ..push };
        assert!(store.add_pushed_torrent(&torrent('b'), &bad).is_err());
        assert!(store.torrents().expect("torrents").is_empty(), "a torrent stayed without its push");
    }
}
