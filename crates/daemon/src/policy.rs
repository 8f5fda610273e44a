//! What the daemon decides on its own, every second: the download and seed queues, the
//! seeding goals, and the lifetime transfer counters kept in the database.

use shoal_engine::TorrentState as EngineState;

use crate::{Daemon, lock};

impl Daemon {
    /// Applies the queue (most active downloads and seeds) and the seeding goals (ratio,
    /// seconds seeding, seconds idle): torrents beyond a queue's size wait in it, in the order
    /// they were added, and a seed that reached a goal stops. Also notes each torrent's last
    /// activity. In-memory work only.
    pub(crate) fn enforce(&self) {
        let settings = lock(&self.inner.settings).clone();
        let mut entries = lock(&self.inner.entries);
        let mut downloads = 0u32;
        let mut seeds = 0u32;
        let now = std::time::Instant::now();
        for entry in entries.values_mut() {
            let Some(t) = &entry.torrent else { continue };
            if entry.paused || entry.finished {
                continue;
            }
            let (seeding, uploaded, downloaded, total_length) =
                t.peek(|s| (s.state == EngineState::Seeding, s.stats.uploaded, s.stats.downloaded, s.total_length));
            let moved = uploaded + downloaded;
            if moved != entry.activity.0 {
                entry.activity = (moved, Some(now));
            }
            if seeding {
                let since = *entry.seeding_since.get_or_insert(now);
                let goals = entry.goals;
                let ratio_done = goals
                    .ratio
                    .or_session(settings.seed_ratio_limit)
                    .is_some_and(|r| total_length > 0 && uploaded as f64 >= r * total_length as f64);
                let time_done = goals
                    .time
                    .or_session(settings.seed_time_limit)
                    .is_some_and(|limit| now.duration_since(since).as_secs() >= limit);
                // Idle: no payload moved since seeding began or since the last upload.
                let last = entry.activity.1.map_or(since, |at| at.max(since));
                let idle_done = goals
                    .idle
                    .or_session(settings.seed_idle_limit)
                    .is_some_and(|limit| now.duration_since(last).as_secs() >= limit);
                if ratio_done || time_done || idle_done {
                    entry.finished = true;
                    t.pause();
                    continue;
                }
            }
            let (count, limit) = if seeding {
                (&mut seeds, settings.seed_queue_size)
            } else {
                (&mut downloads, settings.download_queue_size)
            };
            let over = limit.is_some_and(|l| *count >= l);
            if over != entry.queued {
                entry.queued = over;
                if over { t.pause() } else { t.resume() }
            }
            if !over {
                *count += 1;
            }
        }
    }

    /// Adds what each torrent moved since the last call to its lifetime counters: counted
    /// under the lock, written to the database without it, then marked as recorded.
    pub(crate) async fn record_counters(&self) {
        // (torrent, its totals now, what is not yet recorded), as (uploaded, downloaded).
        type Delta = (u64, (u64, u64), (u64, u64));
        let deltas: Vec<Delta> = lock(&self.inner.entries)
            .iter()
            .filter_map(|(key, entry)| {
                let now = entry.torrent.as_ref()?.peek(|s| (s.stats.uploaded, s.stats.downloaded));
                let delta = (now.0.saturating_sub(entry.recorded.0), now.1.saturating_sub(entry.recorded.1));
                (delta != (0, 0)).then_some((*key, now, delta))
            })
            .collect();
        for (key, now, delta) in deltas {
            let sid = shoal_state::TorrentId::new(key as i64);
            match self.inner.db.call(move |s| s.add_counters(sid, delta.0, delta.1)).await {
                Ok(()) => {
                    if let Some(entry) = lock(&self.inner.entries).get_mut(&key) {
                        entry.recorded = now;
                        entry.lifetime = (entry.lifetime.0 + delta.0, entry.lifetime.1 + delta.1);
                    }
                }
                Err(e) => tracing::warn!("cannot record transfer counters: {e}"),
            }
        }
    }
}
