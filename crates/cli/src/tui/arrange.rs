//! Which torrents the list shows, and in what order: the sort order ([`Sort`]) and the
//! filters ([`Filter`]: a piece of the name, a state, a label). Pure functions of one
//! [`TorrentInfo`]; [`super::app::App`] keeps the rows they select.
//!
//! Every order is total: torrents that compare equal on the sort key keep their id order, so
//! the rows do not jump between refreshes.

use std::cmp::Ordering;

use shoal_rpc::api::{TorrentInfo, TorrentState};

/// What the list is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
    /// The daemon's id: the order the torrents were added in.
    Added,
    /// The name, ignoring case.
    Name,
    /// Fraction done.
    Progress,
    /// Download rate.
    Down,
    /// Upload rate.
    Up,
    /// Size of the wanted files.
    Size,
    /// What the torrent is doing (downloading first, errors last).
    State,
}

impl SortKey {
    /// Every key, in the order `s` cycles through them.
    pub(crate) const ALL: [SortKey; 7] =
        [SortKey::Added, SortKey::Name, SortKey::Progress, SortKey::Down, SortKey::Up, SortKey::Size, SortKey::State];

    /// The next key in [`SortKey::ALL`], wrapping around.
    pub(crate) fn next(self) -> SortKey {
        let at = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(at + 1) % SortKey::ALL.len()]
    }

    /// How the header names the key.
    pub(crate) fn title(self) -> &'static str {
        match self {
            SortKey::Added => "added",
            SortKey::Name => "name",
            SortKey::Progress => "progress",
            SortKey::Down => "down rate",
            SortKey::Up => "up rate",
            SortKey::Size => "size",
            SortKey::State => "state",
        }
    }

    /// True when the unreversed order puts the largest first (the fastest, the biggest, the
    /// most done), which is what one sorts by those columns for.
    fn largest_first(self) -> bool {
        matches!(self, SortKey::Progress | SortKey::Down | SortKey::Up | SortKey::Size)
    }

    /// `a` against `b` on this key alone, smallest first.
    fn compare(self, a: &TorrentInfo, b: &TorrentInfo) -> Ordering {
        match self {
            SortKey::Added => a.id.cmp(&b.id),
            SortKey::Name => {
                a.name.chars().flat_map(char::to_lowercase).cmp(b.name.chars().flat_map(char::to_lowercase))
            }
            SortKey::Progress => a.progress.total_cmp(&b.progress),
            SortKey::Down => a.download_rate.cmp(&b.download_rate),
            SortKey::Up => a.upload_rate.cmp(&b.upload_rate),
            SortKey::Size => a.wanted_bytes.cmp(&b.wanted_bytes),
            SortKey::State => state_rank(a.state).cmp(&state_rank(b.state)),
        }
    }
}

/// Position of a state when sorting by state: busy torrents first, stopped ones last.
fn state_rank(state: TorrentState) -> u8 {
    match state {
        TorrentState::Downloading => 0,
        TorrentState::Metadata => 1,
        TorrentState::Checking => 2,
        TorrentState::Queued => 3,
        TorrentState::Moving => 4,
        TorrentState::Seeding => 5,
        TorrentState::Paused => 6,
        TorrentState::Error => 7,
    }
}

/// The list's order: a key and whether its usual direction is reversed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sort {
    /// What is compared.
    pub(crate) key: SortKey,
    /// The key's usual direction (A to Z, oldest first, largest first) is turned around.
    pub(crate) reversed: bool,
}

impl Default for Sort {
    fn default() -> Sort {
        Sort { key: SortKey::Added, reversed: false }
    }
}

impl Sort {
    /// True when the largest value comes first.
    pub(crate) fn descending(self) -> bool {
        self.key.largest_first() != self.reversed
    }

    /// `▲` (smallest first) or `▼` (largest first).
    pub(crate) fn arrow(self) -> &'static str {
        if self.descending() { "▼" } else { "▲" }
    }

    /// The row order: the key in its direction, then the id (oldest first) between equals.
    pub(crate) fn compare(self, a: &TorrentInfo, b: &TorrentInfo) -> Ordering {
        let by_key = self.key.compare(a, b);
        let by_key = if self.descending() { by_key.reverse() } else { by_key };
        by_key.then(a.id.cmp(&b.id))
    }
}

/// Which states the list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateFilter {
    /// Every torrent.
    All,
    /// Torrents moving data now (a rate above zero).
    Active,
    /// Fetching pieces or metadata.
    Downloading,
    /// Complete and serving.
    Seeding,
    /// Stopped by the user.
    Paused,
    /// Queued, checking their data or moving it.
    Waiting,
    /// Stopped by an error.
    Error,
}

impl StateFilter {
    /// Every filter, in the order `f` cycles through them.
    pub(crate) const ALL: [StateFilter; 7] = [
        StateFilter::All,
        StateFilter::Active,
        StateFilter::Downloading,
        StateFilter::Seeding,
        StateFilter::Paused,
        StateFilter::Waiting,
        StateFilter::Error,
    ];

    /// The next filter in [`StateFilter::ALL`], wrapping around.
    pub(crate) fn next(self) -> StateFilter {
        let at = StateFilter::ALL.iter().position(|f| *f == self).unwrap_or(0);
        StateFilter::ALL[(at + 1) % StateFilter::ALL.len()]
    }

    /// How the title names the filter.
    pub(crate) fn title(self) -> &'static str {
        match self {
            StateFilter::All => "all",
            StateFilter::Active => "active",
            StateFilter::Downloading => "downloading",
            StateFilter::Seeding => "seeding",
            StateFilter::Paused => "paused",
            StateFilter::Waiting => "waiting",
            StateFilter::Error => "error",
        }
    }

    fn matches(self, t: &TorrentInfo) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Active => t.download_rate > 0 || t.upload_rate > 0,
            StateFilter::Downloading => matches!(t.state, TorrentState::Downloading | TorrentState::Metadata),
            StateFilter::Seeding => t.state == TorrentState::Seeding,
            StateFilter::Paused => t.state == TorrentState::Paused,
            StateFilter::Waiting => {
                matches!(t.state, TorrentState::Queued | TorrentState::Checking | TorrentState::Moving)
            }
            StateFilter::Error => t.state == TorrentState::Error,
        }
    }
}

/// The list's filters; a torrent is shown when it passes all three.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filter {
    /// A piece of the name, matched ignoring case; empty matches every name.
    pub(crate) text: String,
    /// The states shown.
    pub(crate) state: StateFilter,
    /// Only torrents with this label (exactly); `None`: any.
    pub(crate) label: Option<String>,
}

impl Default for Filter {
    fn default() -> Filter {
        Filter { text: String::new(), state: StateFilter::All, label: None }
    }
}

impl Filter {
    /// True when some torrent could be hidden.
    pub(crate) fn is_active(&self) -> bool {
        !self.text.is_empty() || self.state != StateFilter::All || self.label.is_some()
    }

    /// True when `t` is shown.
    pub(crate) fn matches(&self, t: &TorrentInfo) -> bool {
        self.state.matches(t)
            && self.label.as_ref().is_none_or(|l| t.labels.contains(l))
            && (self.text.is_empty() || t.name.to_lowercase().contains(&self.text.to_lowercase()))
    }
}

/// The label after `current` among those `torrents` carry, in alphabetical order: the first
/// one after `None`, and `None` after the last (any label).
pub(crate) fn next_label<'a>(
    current: Option<&str>,
    torrents: impl IntoIterator<Item = &'a TorrentInfo>,
) -> Option<String> {
    let labels: std::collections::BTreeSet<&str> =
        torrents.into_iter().flat_map(|t| t.labels.iter().map(String::as_str)).collect();
    labels.into_iter().find(|l| current.is_none_or(|c| *l > c)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::torrent;

    #[test]
    fn every_key_sorts_in_its_usual_direction_and_reverses() {
        let mut a = torrent(1, "b", TorrentState::Seeding, 1.0);
        let mut b = torrent(2, "A", TorrentState::Downloading, 0.5);
        a.download_rate = 10;
        b.upload_rate = 10;
        b.wanted_bytes = a.wanted_bytes + 1;
        let first = |sort: Sort| if sort.compare(&a, &b) == Ordering::Less { 1 } else { 2 };
        let cases = [
            (SortKey::Added, 1),
            (SortKey::Name, 2),
            (SortKey::Progress, 1),
            (SortKey::Down, 1),
            (SortKey::Up, 2),
            (SortKey::Size, 2),
            (SortKey::State, 2),
        ];
        for (key, expected) in cases {
            assert_eq!(first(Sort { key, reversed: false }), expected, "{key:?}");
            assert_eq!(first(Sort { key, reversed: true }), 3 - expected, "{key:?} reversed");
        }
        let (x, y) = (torrent(1, "b", TorrentState::Seeding, 1.0), torrent(3, "b", TorrentState::Seeding, 1.0));
        for key in SortKey::ALL.into_iter().filter(|k| *k != SortKey::Added) {
            for reversed in [false, true] {
                assert_eq!(Sort { key, reversed }.compare(&x, &y), Ordering::Less, "{key:?}: equals keep id order");
            }
        }
    }

    #[test]
    fn filters_match_a_piece_of_the_name_ignoring_case_and_the_state() {
        let t = torrent(1, "Debian-12.ISO", TorrentState::Downloading, 0.1);
        let filter = |text: &str, state| Filter { text: text.into(), state, label: None };
        assert!(filter("", StateFilter::All).matches(&t));
        assert!(filter("an-12.i", StateFilter::All).matches(&t));
        assert!(filter("DEBIAN", StateFilter::Downloading).matches(&t));
        assert!(!filter("ubuntu", StateFilter::All).matches(&t));
        assert!(!filter("", StateFilter::Seeding).matches(&t));
        assert!(!filter("", StateFilter::Active).matches(&t), "no rate");
        assert!(!Filter::default().is_active() && filter("x", StateFilter::All).is_active());
        let mut tagged = t.clone();
        tagged.labels = vec!["linux".into(), "iso".into()];
        let by_label = |l: &str| Filter { label: Some(l.into()), ..Filter::default() };
        assert!(by_label("iso").matches(&tagged) && by_label("iso").is_active());
        assert!(!by_label("iso").matches(&t) && !by_label("is").matches(&tagged), "whole labels only");
        let mut seen = vec![StateFilter::All];
        while let Some(next) = seen.last().map(|f| f.next()).filter(|f| *f != StateFilter::All) {
            seen.push(next);
        }
        assert_eq!(seen, StateFilter::ALL, "f cycles through every filter once");
    }

    #[test]
    fn the_label_key_cycles_through_the_labels_in_the_list_then_any() {
        let mut a = torrent(1, "a", TorrentState::Seeding, 1.0);
        let mut b = torrent(2, "b", TorrentState::Seeding, 1.0);
        a.labels = vec!["tv".into(), "hd".into()];
        b.labels = vec!["hd".into(), "books".into()];
        let list = [a, b];
        let mut seen = Vec::new();
        let mut label = next_label(None, &list);
        while let Some(l) = label {
            label = next_label(Some(&l), &list);
            seen.push(l);
        }
        assert_eq!(seen, ["books", "hd", "tv"]);
        assert_eq!(next_label(Some("gone"), &list).as_deref(), Some("hd"), "a label no longer listed moves on");
        assert_eq!(next_label(None, &[torrent(3, "c", TorrentState::Seeding, 1.0)]), None, "no labels: any");
    }
}
