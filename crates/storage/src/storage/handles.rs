//! A bounded cache of open file handles, shared by every thread using one [`super::Storage`].
//!
//! Torrents can hold tens of thousands of files, more than a process may keep open, so at most
//! `capacity` handles stay open; the least recently used is dropped to make room. Handles are
//! `Arc<File>`: I/O runs on a clone outside the lock (positioned reads and writes need no
//! shared cursor), and an evicted handle still in use closes when its last user drops it.
//! Reopening after eviction re-checks that the path is not a symbolic link.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{IoOp, StorageError};

/// See the module doc.
#[derive(Debug)]
pub(crate) struct HandleCache {
    inner: Mutex<Inner>,
    capacity: usize,
    writable: bool,
}

#[derive(Debug)]
struct Inner {
    /// `slots[i]` is file `i`'s open handle and the tick of its last use.
    slots: Vec<Option<(Arc<File>, u64)>>,
    /// Indices of the `Some` slots; at most `capacity` long.
    open: Vec<usize>,
    /// Monotonic use counter for LRU eviction.
    tick: u64,
}

impl HandleCache {
    /// An empty cache for `file_count` files keeping at most `capacity` (at least 1) open.
    pub(crate) fn new(file_count: usize, capacity: usize, writable: bool) -> Self {
        let inner = Inner { slots: vec![None; file_count], open: Vec::new(), tick: 0 };
        Self { inner: Mutex::new(inner), capacity: capacity.max(1), writable }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a handle opened by the caller (used while opening the storage).
    pub(crate) fn insert(&self, index: usize, file: File) {
        self.lock().put(index, Arc::new(file), self.capacity);
    }

    /// Closes every handle (those in use close when their users are done); files reopen on
    /// demand.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        for index in std::mem::take(&mut inner.open) {
            inner.slots[index] = None;
        }
    }

    /// Handles open now.
    pub(crate) fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// The handle of file `index` at `path`, opening it when it is not cached.
    pub(crate) fn get(&self, index: usize, path: &Path) -> Result<Arc<File>, StorageError> {
        if let Some(file) = self.lock().touch(index) {
            return Ok(file);
        }
        // Open outside the lock so other files' I/O is not held up by a slow open.
        let meta = std::fs::symlink_metadata(path).map_err(|e| StorageError::io(IoOp::Stat, path, e))?;
        if meta.file_type().is_symlink() {
            return Err(StorageError::Symlink { path: path.to_owned() });
        }
        let file = File::options()
            .read(true)
            .write(self.writable)
            .open(path)
            .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
        let mut inner = self.lock();
        if let Some(raced) = inner.touch(index) {
            return Ok(raced);
        }
        let file = Arc::new(file);
        inner.put(index, file.clone(), self.capacity);
        Ok(file)
    }
}

impl Inner {
    fn touch(&mut self, index: usize) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, used) = self.slots.get_mut(index)?.as_mut()?;
        *used = tick;
        Some(file.clone())
    }

    fn put(&mut self, index: usize, file: Arc<File>, capacity: usize) {
        if index >= self.slots.len() {
            return;
        }
        self.tick += 1;
        if self.slots[index].is_none() {
            if self.open.len() >= capacity {
                self.evict_oldest();
            }
            self.open.push(index);
        }
        self.slots[index] = Some((file, self.tick));
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .open
            .iter()
            .enumerate()
            .min_by_key(|&(_, &i)| self.slots[i].as_ref().map_or(0, |(_, used)| *used))
            .map(|(pos, _)| pos);
        if let Some(pos) = oldest {
            let index = self.open.swap_remove(pos);
            self.slots[index] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_open_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = (0..5).map(|i| dir.path().join(format!("f{i}"))).collect();
        for p in &paths {
            std::fs::write(p, b"x").expect("write");
        }
        let cache = HandleCache::new(5, 2, false);
        for (i, p) in paths.iter().enumerate() {
            cache.get(i, p).expect("open");
            assert!(cache.lock().open.len() <= 2);
        }
        // File 4 and 3 are the most recent; 0 was evicted and comes back on demand.
        assert!(cache.lock().slots[0].is_none());
        cache.get(0, &paths[0]).expect("reopen");
        assert!(cache.lock().slots[3].is_none());
        assert!(cache.lock().slots[4].is_some());
        cache.clear();
        assert_eq!(cache.open_count(), 0);
        assert!(cache.lock().slots.iter().all(Option::is_none));
        cache.get(4, &paths[4]).expect("reopen after clear");
        assert_eq!(cache.open_count(), 1);
    }
}
