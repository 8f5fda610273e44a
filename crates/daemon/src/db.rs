//! The daemon's access to its SQLite [`Store`]: every call runs on a blocking thread
//! (`spawn_blocking`), never on the async runtime's threads, because each write is a
//! `synchronous = FULL` transaction that waits for `fsync`. And the torrents' resume records,
//! kept in the same database ([`DbResume`]).

use std::sync::Arc;
use std::time::SystemTime;

use shoal_rpc::api::ApiError;
use shoal_state::{StateError, Store, TorrentId};

/// A cheap handle on the store for async code.
#[derive(Clone, Debug)]
pub(crate) struct Db(pub(crate) Arc<Store>);

impl Db {
    /// Runs `f` on a blocking thread.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.0.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ApiError::Failed(format!("the state database: {e}"))),
            Err(_) => Err(ApiError::Failed("the state database call did not finish".into())),
        }
    }
}

/// A torrent's resume record in the daemon's database, next to the torrent itself. Called by
/// the engine from its blocking threads.
#[derive(Debug)]
pub(crate) struct DbResume {
    pub(crate) store: Arc<Store>,
    pub(crate) id: TorrentId,
}

impl shoal_storage::ResumeBackend for DbResume {
    fn load(&self) -> std::io::Result<Option<shoal_storage::ResumeRecord>> {
        let data = self.store.load_resume(self.id).map_err(std::io::Error::other)?;
        Ok(data.map(|d| shoal_storage::ResumeRecord {
            fingerprint: d.fingerprint,
            verified: d.pieces,
            files: d
                .files
                .iter()
                .map(|f| shoal_storage::FileStamp {
                    length: f.length,
                    mtime_secs: f.mtime_secs,
                    mtime_nanos: f.mtime_nanos,
                })
                .collect(),
        }))
    }

    fn save(&self, record: &shoal_storage::ResumeRecord) -> std::io::Result<()> {
        let data = shoal_state::ResumeData {
            fingerprint: record.fingerprint,
            pieces: record.verified.clone(),
            files: record
                .files
                .iter()
                .map(|f| shoal_state::FileStamp {
                    length: f.length,
                    mtime_secs: f.mtime_secs,
                    mtime_nanos: f.mtime_nanos,
                })
                .collect(),
            saved_at: SystemTime::now(),
        };
        self.store.save_resume(self.id, &data).map_err(std::io::Error::other)
    }

    fn remove(&self) -> std::io::Result<()> {
        self.store.clear_resume(self.id).map_err(std::io::Error::other)
    }
}
