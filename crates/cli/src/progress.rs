//! Progress display: indicatif bars fed from a torrent's status channel, and plain-text
//! formatting of sizes, rates and durations.

use std::time::Duration;

use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shoal_engine::{Torrent, TorrentState, TorrentStatus};
use tokio::sync::watch;

/// A bar for transferring `total` bytes, labelled `prefix`.
pub(crate) fn transfer_bar(multi: Option<&MultiProgress>, total: u64, prefix: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let bar = match multi {
        Some(m) => m.add(bar),
        None => bar,
    };
    let style =
        ProgressStyle::with_template("{prefix:>10.bold} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

/// A bar counting hashed bytes.
/// A spinner with a message, for work of unknown length (hidden when quiet).
pub(crate) fn spinner(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(crate) fn hashing_bar(total: u64, quiet: bool) -> ProgressBar {
    let bar = transfer_bar(None, total, "hashing", quiet);
    bar.set_message("");
    bar
}

/// Shows one status snapshot on a bar.
pub(crate) fn show(bar: &ProgressBar, s: &TorrentStatus) {
    match &s.state {
        TorrentState::Checking { done, total } => {
            bar.set_length(*total as u64);
            bar.set_position(*done as u64);
            bar.set_message("checking existing data");
        }
        _ => {
            bar.set_length(s.total_length);
            bar.set_position(s.stats.bytes_have);
            let eta = s.eta().map(|d| format!(" ETA {}", HumanDuration(d))).unwrap_or_default();
            let tracker = s.tracker_error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
            bar.set_message(format!(
                "{}/s down {}/s up  {} peers{eta}{tracker}",
                HumanBytes(s.stats.down_rate as u64),
                HumanBytes(s.stats.up_rate as u64),
                s.stats.peers
            ));
        }
    }
}

/// Follows a torrent's status on a bar until it completes or fails; returns the last status.
pub(crate) async fn follow(torrent: &Torrent, bar: &ProgressBar) -> TorrentStatus {
    follow_status(torrent.subscribe(), bar).await
}

/// [`follow`] on a status channel, for use from spawned tasks.
pub(crate) async fn follow_status(mut rx: watch::Receiver<TorrentStatus>, bar: &ProgressBar) -> TorrentStatus {
    loop {
        let status = rx.borrow_and_update().clone();
        show(bar, &status);
        if matches!(status.state, TorrentState::Seeding | TorrentState::Error(_) | TorrentState::Stopped) {
            return status;
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

/// "12.3 MiB/s" for `bytes` moved in `elapsed`.
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}
