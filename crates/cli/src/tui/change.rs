//! Changes to one torrent's settings made in the detail view: what its prompts accept
//! ([`Setting::parse`]), what they start with ([`Setting::current`]), the `torrent.set`
//! parameters a [`Change`] becomes, and the status line that says what was changed.
//!
//! The text rules follow `shoal set`: rates with the suffixes of [`parse_size`] (powers of
//! 1024); for a limit, nothing or `none` removes it. A seeding goal has three states
//! ([`Goal`]): nothing (or `default`) is the daemon's goal, `none` is no goal at all (seed until
//! stopped), a number is the torrent's own.

use indicatif::HumanBytes;
use serde_json::{Value, json};
use shoal_rpc::api::{Goal, Priority, TorrentId, TorrentInfo};
use shoal_state::size::parse_size;

use super::draw::duration;

/// A setting the detail view's prompt edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    /// Upload rate limit, bytes per second.
    UploadLimit,
    /// Download rate limit, bytes per second.
    DownloadLimit,
    /// Most peer connections of the torrent.
    MaxConnections,
    /// Seeding goal as an upload/download ratio.
    SeedRatio,
    /// Seeding goal as a time spent seeding.
    SeedTime,
}

/// One change to one torrent, sent as one `torrent.set`. `None` removes a limit or returns
/// to the daemon's default.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Change {
    /// `upload_limit`, bytes per second.
    UploadLimit(Option<u64>),
    /// `download_limit`, bytes per second.
    DownloadLimit(Option<u64>),
    /// `max_connections`.
    MaxConnections(Option<u32>),
    /// `seed_ratio_limit`.
    SeedRatio(Goal<f64>),
    /// `seed_time_limit`, seconds.
    SeedTime(Goal<u64>),
    /// `file_priorities` of one file.
    FilePriority {
        /// The file's index in the torrent.
        index: usize,
        /// Its new priority.
        priority: Priority,
    },
}

impl Setting {
    /// The prompt's title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Setting::UploadLimit => "Upload limit",
            Setting::DownloadLimit => "Download limit",
            Setting::MaxConnections => "Connection limit",
            Setting::SeedRatio => "Seed ratio goal",
            Setting::SeedTime => "Seed time goal",
        }
    }

    /// The line above the prompt's text: what it accepts.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Setting::UploadLimit | Setting::DownloadLimit => {
                "A rate like 500k or 2M per second; empty or none removes the limit:"
            }
            Setting::MaxConnections => "Most peer connections; empty or none: the daemon's default:",
            Setting::SeedRatio => "A ratio like 1.5 to stop seeding at; none: forever; empty: the daemon's:",
            Setting::SeedTime => "Seconds, or 90m, 12h, 2d of seeding; none: forever; empty: the daemon's:",
        }
    }

    /// The torrent's value as the prompt's starting text (empty when unset); typing it back
    /// gives the same value.
    pub(crate) fn current(self, t: &TorrentInfo) -> String {
        match self {
            Setting::UploadLimit => t.upload_limit.map(size_text).unwrap_or_default(),
            Setting::DownloadLimit => t.download_limit.map(size_text).unwrap_or_default(),
            Setting::MaxConnections => t.max_connections.map(|n| n.to_string()).unwrap_or_default(),
            Setting::SeedRatio => goal_text(t.seed_ratio_limit, |r| r.to_string()),
            Setting::SeedTime => goal_text(t.seed_time_limit, |s| s.to_string()),
        }
    }

    /// Reads the prompt's text; the error is a line for the status bar.
    pub(crate) fn parse(self, text: &str) -> Result<Change, String> {
        let text = text.trim();
        let is = |words: &[&str]| words.iter().any(|w| text.eq_ignore_ascii_case(w));
        let default = text.is_empty() || is(&["default"]);
        let never = is(&["none", "unlimited", "never"]);
        let unset = default || never;
        Ok(match self {
            Setting::UploadLimit => Change::UploadLimit(if unset { None } else { Some(rate(text)?) }),
            Setting::DownloadLimit => Change::DownloadLimit(if unset { None } else { Some(rate(text)?) }),
            Setting::MaxConnections if unset => Change::MaxConnections(None),
            Setting::MaxConnections => match text.parse::<u32>() {
                Ok(n) if n > 0 => Change::MaxConnections(Some(n)),
                _ => return Err(format!("{text:?} is not a number of connections like 50 (or none)")),
            },
            Setting::SeedRatio if default => Change::SeedRatio(Goal::Session),
            Setting::SeedRatio if never => Change::SeedRatio(Goal::Unlimited),
            Setting::SeedRatio => match text.parse::<f64>() {
                Ok(r) if r.is_finite() && r >= 0.0 => Change::SeedRatio(Goal::Limit(r)),
                _ => return Err(format!("{text:?} is not a ratio like 1.5 (or none)")),
            },
            Setting::SeedTime if default => Change::SeedTime(Goal::Session),
            Setting::SeedTime if never => Change::SeedTime(Goal::Unlimited),
            Setting::SeedTime => Change::SeedTime(Goal::Limit(seconds(text)?)),
        })
    }
}

/// A rate limit: a size per second, above zero.
fn rate(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("{text:?} is not a positive rate; type none to remove the limit")),
        n => Ok(n),
    }
}

/// A time: whole seconds, or a number of minutes, hours or days (`90m`, `12h`, `2d`).
fn seconds(text: &str) -> Result<u64, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| unit > 0)
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a time like 3600, 90m, 12h or 2d (or none)"))
}

/// Bytes as the shortest text [`parse_size`] reads back exactly: `2M`, `640k`, `1500`.
fn size_text(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A goal as a prompt's text: empty for the daemon's, `none` for no goal.
fn goal_text<T: Copy>(goal: Goal<T>, number: impl Fn(T) -> String) -> String {
    match goal {
        Goal::Session => String::new(),
        Goal::Unlimited => "none".to_owned(),
        Goal::Limit(v) => number(v),
    }
}

/// A goal as the detail view shows it: `2`, `none` (no goal) or `daemon's`.
pub(crate) fn goal_shown<T: Copy>(goal: Goal<T>, number: impl Fn(T) -> String) -> String {
    match goal {
        Goal::Session => "daemon's".to_owned(),
        Goal::Unlimited => "none".to_owned(),
        Goal::Limit(v) => number(v),
    }
}

/// A rate limit as the detail view shows it.
pub(crate) fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "none".to_owned(), |n| format!("{}/s", HumanBytes(n)))
}

/// The priority after `p` when the Files tab's key cycles it: skip, normal, high, skip.
pub(crate) fn next_priority(p: Priority) -> Priority {
    match p {
        Priority::Skip => Priority::Normal,
        Priority::Normal => Priority::High,
        Priority::High => Priority::Skip,
    }
}

/// A priority as the Files tab and the status line name it.
pub(crate) fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Skip => "skip",
        Priority::Normal => "normal",
        Priority::High => "high",
    }
}

impl Change {
    /// The parameters of `torrent.set` (the JSON shape of `SetRequest`) for torrent `id`.
    pub(crate) fn params(&self, id: TorrentId) -> Value {
        match self {
            Change::UploadLimit(v) => json!({"ids": [id], "upload_limit": v}),
            Change::DownloadLimit(v) => json!({"ids": [id], "download_limit": v}),
            Change::MaxConnections(v) => json!({"ids": [id], "max_connections": v}),
            Change::SeedRatio(v) => json!({"ids": [id], "seed_ratio_limit": v}),
            Change::SeedTime(v) => json!({"ids": [id], "seed_time_limit": v}),
            Change::FilePriority { index, priority } => {
                json!({"ids": [id], "file_priorities": [[index, priority_name(*priority)]]})
            }
        }
    }

    /// What is changed, as the subject of the status line: `upload limit of #3`.
    pub(crate) fn subject(&self, id: TorrentId) -> String {
        let what = match self {
            Change::UploadLimit(_) => "upload limit".to_owned(),
            Change::DownloadLimit(_) => "download limit".to_owned(),
            Change::MaxConnections(_) => "connection limit".to_owned(),
            Change::SeedRatio(_) => "seed ratio goal".to_owned(),
            Change::SeedTime(_) => "seed time goal".to_owned(),
            Change::FilePriority { index, .. } => format!("priority of file {index}"),
        };
        format!("{what} of #{id}")
    }

    /// The status line once the daemon accepted the change.
    pub(crate) fn done(&self, id: TorrentId) -> String {
        let subject = self.subject(id);
        match self {
            Change::UploadLimit(None) | Change::DownloadLimit(None) => format!("{subject} removed"),
            Change::UploadLimit(Some(n)) | Change::DownloadLimit(Some(n)) => {
                format!("{subject} set to {}", limit_text(Some(*n)))
            }
            Change::MaxConnections(None) | Change::SeedRatio(Goal::Session) | Change::SeedTime(Goal::Session) => {
                format!("{subject} back to the daemon's")
            }
            Change::SeedRatio(Goal::Unlimited) | Change::SeedTime(Goal::Unlimited) => {
                format!("{subject} removed: it seeds until stopped")
            }
            Change::MaxConnections(Some(n)) => format!("{subject} set to {n}"),
            Change::SeedRatio(Goal::Limit(r)) => format!("{subject} set to {r}"),
            Change::SeedTime(Goal::Limit(s)) => format!("{subject} set to {}", duration(*s)),
            Change::FilePriority { priority, .. } => format!("{subject} set to {}", priority_name(*priority)),
        }
    }

    /// The status line when the daemon refused the change (or could not be asked).
    pub(crate) fn failed(&self, id: TorrentId, error: &str) -> String {
        format!("{} not changed: {error}", self.subject(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::torrent;
    use shoal_rpc::api::{Ids, SetRequest, TorrentState};

    #[test]
    fn prompts_read_rates_counts_ratios_and_times_and_none_removes() {
        let ok = |s: Setting, t: &str| s.parse(t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(ok(Setting::UploadLimit, " 1M "), Change::UploadLimit(Some(1 << 20)));
        assert_eq!(ok(Setting::UploadLimit, "1.5k"), Change::UploadLimit(Some(1536)));
        assert_eq!(ok(Setting::UploadLimit, ""), Change::UploadLimit(None));
        assert_eq!(ok(Setting::DownloadLimit, "None"), Change::DownloadLimit(None));
        assert_eq!(ok(Setting::DownloadLimit, "640"), Change::DownloadLimit(Some(640)));
        assert_eq!(ok(Setting::MaxConnections, "50"), Change::MaxConnections(Some(50)));
        assert_eq!(ok(Setting::MaxConnections, "default"), Change::MaxConnections(None));
        assert_eq!(ok(Setting::SeedRatio, "1.5"), Change::SeedRatio(Goal::Limit(1.5)));
        assert_eq!(ok(Setting::SeedRatio, "none"), Change::SeedRatio(Goal::Unlimited));
        assert_eq!(ok(Setting::SeedRatio, " "), Change::SeedRatio(Goal::Session));
        assert_eq!(ok(Setting::SeedTime, "90m"), Change::SeedTime(Goal::Limit(5400)));
        assert_eq!(ok(Setting::SeedTime, "3600"), Change::SeedTime(Goal::Limit(3600)));
        assert_eq!(ok(Setting::SeedTime, "default"), Change::SeedTime(Goal::Session));
        for (s, bad, says) in [
            (Setting::UploadLimit, "fast", "unknown unit"),
            (Setting::UploadLimit, "k", "not a size"),
            (Setting::UploadLimit, "0", "not a positive rate"),
            (Setting::DownloadLimit, "5X", "unknown unit"),
            (Setting::MaxConnections, "-1", "number of connections"),
            (Setting::SeedRatio, "-2", "not a ratio"),
            (Setting::SeedRatio, "inf", "not a ratio"),
            (Setting::SeedTime, "2w", "not a time"),
        ] {
            let e = s.parse(bad).expect_err(bad);
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_prompt_starts_with_the_value_it_would_read_back() {
        let mut t = torrent(1, "a", TorrentState::Seeding, 1.0);
        assert_eq!(Setting::UploadLimit.current(&t), "");
        for limit in [1 << 20, 3 << 10, 1500, 5 << 30] {
            t.upload_limit = Some(limit);
            let text = Setting::UploadLimit.current(&t);
            assert_eq!(Setting::UploadLimit.parse(&text), Ok(Change::UploadLimit(Some(limit))), "{text}");
        }
        assert_eq!(size_text(2 << 20), "2M");
        for goal in [Goal::Session, Goal::Unlimited, Goal::Limit(1.25)] {
            t.seed_ratio_limit = goal;
            let text = Setting::SeedRatio.current(&t);
            assert_eq!(Setting::SeedRatio.parse(&text), Ok(Change::SeedRatio(goal)), "{text}");
        }
    }

    #[test]
    fn changes_are_the_json_of_a_set_request() {
        let id = TorrentId(7);
        let cases = [
            (Change::UploadLimit(Some(1 << 20)), json!({"ids": [7], "upload_limit": 1048576})),
            (Change::UploadLimit(None), json!({"ids": [7], "upload_limit": null})),
            (Change::DownloadLimit(Some(5)), json!({"ids": [7], "download_limit": 5})),
            (Change::MaxConnections(None), json!({"ids": [7], "max_connections": null})),
            (Change::SeedRatio(Goal::Limit(1.5)), json!({"ids": [7], "seed_ratio_limit": 1.5})),
            (Change::SeedRatio(Goal::Session), json!({"ids": [7], "seed_ratio_limit": null})),
            (Change::SeedTime(Goal::Limit(60)), json!({"ids": [7], "seed_time_limit": 60})),
            (Change::SeedTime(Goal::Unlimited), json!({"ids": [7], "seed_time_limit": "unlimited"})),
            (
                Change::FilePriority { index: 2, priority: Priority::High },
                json!({"ids": [7], "file_priorities": [[2, "high"]]}),
            ),
        ];
        for (change, expected) in cases {
            let params = change.params(id);
            assert_eq!(params, expected);
            let request: SetRequest = serde_json::from_value(params).unwrap_or_else(|e| panic!("{change:?}: {e}"));
            assert_eq!(request.ids, Ids::one(id));
            assert!(!request.is_empty(), "{change:?} changes something");
        }
        let removed: SetRequest = serde_json::from_value(Change::UploadLimit(None).params(id)).expect("a set request");
        assert_eq!(removed.upload_limit, Some(None), "null removes the limit");
    }

    #[test]
    fn the_status_line_says_what_was_changed() {
        let id = TorrentId(3);
        assert_eq!(Change::UploadLimit(Some(1 << 20)).done(id), "upload limit of #3 set to 1.00 MiB/s");
        assert_eq!(Change::DownloadLimit(None).done(id), "download limit of #3 removed");
        assert_eq!(Change::SeedRatio(Goal::Session).done(id), "seed ratio goal of #3 back to the daemon's");
        assert_eq!(Change::SeedRatio(Goal::Limit(2.0)).done(id), "seed ratio goal of #3 set to 2");
        assert_eq!(Change::SeedTime(Goal::Unlimited).done(id), "seed time goal of #3 removed: it seeds until stopped");
        assert_eq!(Change::SeedTime(Goal::Limit(5400)).done(id), "seed time goal of #3 set to 1h30m");
        let high = Change::FilePriority { index: 0, priority: Priority::High };
        assert_eq!(high.done(id), "priority of file 0 of #3 set to high");
        assert_eq!(
            Change::SeedRatio(Goal::Limit(-1.0)).failed(id, "torrent.set: bad ratio"),
            "seed ratio goal of #3 not changed: torrent.set: bad ratio"
        );
        let mut p = Priority::Skip;
        let cycle: Vec<Priority> = (0..3)
            .map(|_| {
                p = next_priority(p);
                p
            })
            .collect();
        assert_eq!(cycle, [Priority::Normal, Priority::High, Priority::Skip]);
    }
}
