//! The terminal UI's state machine, free of I/O: what is on screen ([`App`]), how keys change it
//! ([`App::on_key`]), and how the daemon's answers are folded in ([`App::apply`]).
//!
//! Call protocol: the driver feeds every key to [`App::on_key`] and runs the [`Command`] it
//! returns, if any; it hands the result of every RPC back as an [`Outcome`] to [`App::apply`]
//! and redraws. Nothing here waits, so every transition is tested without a terminal or a
//! daemon.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use shoal_rpc::api::{PeerInfo, TorrentId, TorrentInfo};

/// What the user asked the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Fetch the torrent list (and the open detail view) now.
    Refresh,
    /// Add a torrent: a magnet link, an http(s) URL of a .torrent, or a local .torrent path.
    Add(String),
    /// Pause one torrent.
    Pause(TorrentId),
    /// Resume one torrent.
    Resume(TorrentId),
    /// Remove one torrent; `true` deletes its data too.
    Remove(TorrentId, bool),
    /// Fetch one torrent's files, trackers and peers for the detail view.
    LoadDetail(TorrentId),
    /// Leave the UI.
    Quit,
}

/// The result of an RPC the driver ran, handed back to [`App::apply`]. Errors are one line of
/// text, ready for the status line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// The answer to `torrent.list`.
    Listed(Result<Vec<TorrentInfo>, String>),
    /// The answers to `torrent.get` and `torrent.peers` for one torrent.
    Detail(TorrentId, Result<Box<Detail>, String>),
    /// An action (add, pause, resume, remove) finished: what happened, or why it failed.
    Done(Result<String, String>),
}

/// The tabs of the detail view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tab {
    /// The torrent's files.
    Files,
    /// Its connected peers.
    Peers,
    /// Its trackers.
    Trackers,
}

impl Tab {
    /// Every tab, in display order.
    pub(crate) const ALL: [Tab; 3] = [Tab::Files, Tab::Peers, Tab::Trackers];

    /// Position in [`Tab::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Tab::Files => 0,
            Tab::Peers => 1,
            Tab::Trackers => 2,
        }
    }

    /// The tab's title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Tab::Files => "Files",
            Tab::Peers => "Peers",
            Tab::Trackers => "Trackers",
        }
    }

    fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    fn previous(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// What the text prompt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A magnet link, an http(s) URL, or a path of a .torrent file.
    AddMagnetOrPath,
}

/// The screen being shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The table of torrents.
    List,
    /// One torrent's details.
    Detail {
        /// The torrent shown.
        id: TorrentId,
        /// The tab shown.
        tab: Tab,
        /// First row of the tab's table on screen.
        scroll: usize,
    },
    /// A text prompt over the list.
    Input {
        /// What the text is for.
        kind: InputKind,
        /// The text typed so far.
        buffer: String,
    },
    /// "Remove this torrent?" over the list.
    ConfirmRemove {
        /// The torrent to remove.
        id: TorrentId,
        /// Delete its data too.
        delete_data: bool,
    },
}

/// How the status line should look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusKind {
    /// The result of an action.
    Info,
    /// An action failed.
    Error,
    /// The daemon cannot be reached; cleared by the next successful refresh.
    Offline,
}

/// The message on the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// One line of text.
    pub(crate) text: String,
    /// How it looks and when it goes away.
    pub(crate) kind: StatusKind,
}

/// A torrent's files, trackers and peers, as last fetched for the detail view.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Detail {
    /// The torrent with its files and trackers.
    pub(crate) info: TorrentInfo,
    /// Its connected peers.
    pub(crate) peers: Vec<PeerInfo>,
}

/// Everything the terminal UI shows.
#[derive(Clone, Debug)]
pub(crate) struct App {
    /// The daemon's URL, shown in the header.
    pub(crate) rpc: String,
    /// The torrents as last listed, in id order.
    pub(crate) torrents: Vec<TorrentInfo>,
    /// Index of the selected row; always `< torrents.len()` unless the list is empty (then 0).
    pub(crate) selected: usize,
    /// The screen shown.
    pub(crate) view: View,
    /// Data of the detail view; may belong to another torrent than the one shown (then ignored).
    pub(crate) detail: Option<Detail>,
    /// The status line.
    pub(crate) status: Option<Status>,
    /// The torrent list has been fetched at least once.
    pub(crate) loaded: bool,
}

impl App {
    /// A UI on the daemon at `rpc`, before the first answer.
    pub(crate) fn new(rpc: impl Into<String>) -> App {
        App {
            rpc: rpc.into(),
            torrents: Vec::new(),
            selected: 0,
            view: View::List,
            detail: None,
            status: None,
            loaded: false,
        }
    }

    /// The selected torrent of the list.
    pub(crate) fn selected_torrent(&self) -> Option<&TorrentInfo> {
        self.torrents.get(self.selected)
    }

    /// The torrent with this id, as last listed.
    pub(crate) fn torrent(&self, id: TorrentId) -> Option<&TorrentInfo> {
        self.torrents.iter().find(|t| t.id == id)
    }

    /// The torrent the detail view shows, when it is open.
    pub(crate) fn detail_id(&self) -> Option<TorrentId> {
        match self.view {
            View::Detail { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The loaded details of the torrent the detail view shows.
    pub(crate) fn shown_detail(&self) -> Option<&Detail> {
        let id = self.detail_id()?;
        self.detail.as_ref().filter(|d| d.info.id == id)
    }

    /// Handles one key; returns what the driver should do.
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Some(Command::Quit);
        }
        match self.view.clone() {
            View::List => self.list_key(key),
            View::Detail { id, tab, scroll } => self.detail_key(key, id, tab, scroll),
            View::Input { kind, buffer } => self.input_key(key, kind, buffer, ctrl),
            View::ConfirmRemove { id, delete_data } => self.confirm_key(key, id, delete_data),
        }
    }

    /// Handles pasted text (bracketed paste): appended to the prompt, ignored elsewhere.
    pub(crate) fn on_paste(&mut self, text: &str) {
        if let View::Input { buffer, .. } = &mut self.view {
            buffer.extend(text.chars().filter(|c| !c.is_control()));
        }
    }

    fn list_key(&mut self, key: KeyEvent) -> Option<Command> {
        let last = self.torrents.len().saturating_sub(1);
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Command::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(last),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                let id = self.selected_torrent()?.id;
                self.view = View::Detail { id, tab: Tab::Files, scroll: 0 };
                return Some(Command::LoadDetail(id));
            }
            KeyCode::Char('a') => {
                self.view = View::Input { kind: InputKind::AddMagnetOrPath, buffer: String::new() };
            }
            KeyCode::Char('p') => return self.selected_torrent().map(|t| Command::Pause(t.id)),
            KeyCode::Char('r') => return self.selected_torrent().map(|t| Command::Resume(t.id)),
            KeyCode::Char('d') | KeyCode::Delete => {
                let id = self.selected_torrent()?.id;
                self.view = View::ConfirmRemove { id, delete_data: false };
            }
            KeyCode::F(5) => return Some(Command::Refresh),
            _ => {}
        }
        None
    }

    fn detail_key(&mut self, key: KeyEvent, id: TorrentId, tab: Tab, scroll: usize) -> Option<Command> {
        let set = |tab, scroll| View::Detail { id, tab, scroll };
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('h') => self.view = View::List,
            KeyCode::Tab | KeyCode::Right => self.view = set(tab.next(), 0),
            KeyCode::BackTab | KeyCode::Left => self.view = set(tab.previous(), 0),
            KeyCode::Char('f') | KeyCode::Char('1') => self.view = set(Tab::Files, 0),
            KeyCode::Char('e') | KeyCode::Char('2') => self.view = set(Tab::Peers, 0),
            KeyCode::Char('t') | KeyCode::Char('3') => self.view = set(Tab::Trackers, 0),
            KeyCode::Up | KeyCode::Char('k') => self.view = set(tab, scroll.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => {
                let last = self.tab_rows(tab).saturating_sub(1);
                self.view = set(tab, (scroll + 1).min(last));
            }
            KeyCode::Char('p') => return Some(Command::Pause(id)),
            KeyCode::Char('r') => return Some(Command::Resume(id)),
            KeyCode::Char('d') | KeyCode::Delete => self.view = View::ConfirmRemove { id, delete_data: false },
            KeyCode::F(5) => return Some(Command::LoadDetail(id)),
            _ => {}
        }
        None
    }

    fn input_key(&mut self, key: KeyEvent, kind: InputKind, mut buffer: String, ctrl: bool) -> Option<Command> {
        match key.code {
            KeyCode::Esc => {
                self.view = View::List;
                return None;
            }
            KeyCode::Enter => {
                self.view = View::List;
                let text = buffer.trim();
                return match kind {
                    InputKind::AddMagnetOrPath if text.is_empty() => None,
                    InputKind::AddMagnetOrPath => Some(Command::Add(text.to_owned())),
                };
            }
            KeyCode::Backspace => {
                buffer.pop();
            }
            KeyCode::Char('u') if ctrl => buffer.clear(),
            KeyCode::Char(c) if !ctrl => buffer.push(c),
            _ => {}
        }
        self.view = View::Input { kind, buffer };
        None
    }

    fn confirm_key(&mut self, key: KeyEvent, id: TorrentId, delete_data: bool) -> Option<Command> {
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                self.view = View::List;
                Some(Command::Remove(id, delete_data))
            }
            KeyCode::Char(' ') | KeyCode::Char('D') | KeyCode::Tab => {
                self.view = View::ConfirmRemove { id, delete_data: !delete_data };
                None
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Char('q') | KeyCode::Esc => {
                self.view = View::List;
                None
            }
            _ => None,
        }
    }

    /// Rows of `tab` in the loaded details.
    fn tab_rows(&self, tab: Tab) -> usize {
        self.shown_detail().map_or(0, |d| match tab {
            Tab::Files => d.info.files.len(),
            Tab::Peers => d.peers.len(),
            Tab::Trackers => d.info.trackers.len(),
        })
    }

    /// Folds the result of an RPC into the state.
    pub(crate) fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Listed(Ok(torrents)) => self.set_torrents(torrents),
            Outcome::Listed(Err(e)) => {
                self.status = Some(Status { text: format!("{e}; retrying"), kind: StatusKind::Offline });
            }
            Outcome::Detail(id, Ok(detail)) => {
                if self.detail_id() == Some(id) {
                    self.detail = Some(*detail);
                    if let View::Detail { tab, scroll, .. } = self.view {
                        let last = self.tab_rows(tab).saturating_sub(1);
                        self.view = View::Detail { id, tab, scroll: scroll.min(last) };
                    }
                }
            }
            Outcome::Detail(id, Err(e)) => {
                if self.detail_id() == Some(id) {
                    self.status = Some(Status { text: e, kind: StatusKind::Error });
                }
            }
            Outcome::Done(Ok(text)) => self.status = Some(Status { text, kind: StatusKind::Info }),
            Outcome::Done(Err(text)) => self.status = Some(Status { text, kind: StatusKind::Error }),
        }
    }

    /// Replaces the list, keeping the same torrent selected when it is still there, and leaves
    /// the detail view of a torrent that is gone.
    fn set_torrents(&mut self, torrents: Vec<TorrentInfo>) {
        let selected_id = self.selected_torrent().map(|t| t.id);
        self.torrents = torrents;
        self.loaded = true;
        self.selected = selected_id
            .and_then(|id| self.torrents.iter().position(|t| t.id == id))
            .unwrap_or(self.selected)
            .min(self.torrents.len().saturating_sub(1));
        if self.status.as_ref().is_some_and(|s| s.kind == StatusKind::Offline) {
            self.status = None;
        }
        let gone = |id| !self.torrents.iter().any(|t| t.id == id);
        match self.view {
            View::Detail { id, .. } | View::ConfirmRemove { id, .. } if gone(id) => {
                self.view = View::List;
                self.detail = None;
                self.status = Some(Status { text: format!("torrent {id} is gone"), kind: StatusKind::Info });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use shoal_rpc::api::{FileInfo, Priority, TorrentState, TrackerInfo};

    /// A torrent for tests: `name`, one file of 1 MiB, `progress` done.
    pub(crate) fn torrent(id: u64, name: &str, state: TorrentState, progress: f64) -> TorrentInfo {
        let total = 1 << 20;
        let have = (total as f64 * progress) as u64;
        TorrentInfo {
            id: TorrentId(id),
            info_hash: format!("{id:040x}"),
            name: name.to_owned(),
            state,
            progress,
            total_bytes: total,
            wanted_bytes: total,
            have_bytes: have,
            left_bytes: total - have,
            download_rate: 0,
            upload_rate: 0,
            downloaded: 0,
            uploaded: 0,
            peers: 0,
            peers_sending: 0,
            peers_receiving: 0,
            eta: None,
            download_dir: "/data".into(),
            error: None,
            upload_limit: None,
            download_limit: None,
            max_connections: None,
            seed_ratio_limit: None,
            seed_time_limit: None,
            piece_count: 4,
            piece_length: 1 << 18,
            files: vec![FileInfo { path: name.to_owned(), length: total, have, priority: Priority::Normal }],
            trackers: vec![TrackerInfo {
                url: "http://tracker.example/announce".into(),
                tier: 0,
                last_error: None,
                last_announce: None,
                next_announce: None,
                last_peers: None,
            }],
            added_at: 0,
        }
    }

    pub(crate) fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    /// An app with three torrents listed.
    pub(crate) fn app() -> App {
        let mut app = App::new("http://127.0.0.1:9091/jsonrpc");
        app.apply(Outcome::Listed(Ok(vec![
            torrent(1, "alpha.iso", TorrentState::Seeding, 1.0),
            torrent(2, "beta.mkv", TorrentState::Downloading, 0.42),
            torrent(3, "gamma.zip", TorrentState::Paused, 0.0),
        ])));
        app
    }

    #[test]
    fn arrows_move_the_selection_within_the_list() {
        let mut app = app();
        assert_eq!(app.on_key(key(KeyCode::Up)), None);
        assert_eq!(app.selected, 0);
        app.on_key(key(KeyCode::Down));
        app.on_key(ch('j'));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected, 2, "stops at the last row");
        app.on_key(ch('k'));
        assert_eq!(app.selected_torrent().map(|t| t.name.as_str()), Some("beta.mkv"));
        app.on_key(key(KeyCode::Home));
        assert_eq!(app.selected, 0);
    }

    #[test]
    fn pause_resume_and_refresh_name_the_selected_torrent() {
        let mut app = app();
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.on_key(ch('p')), Some(Command::Pause(TorrentId(2))));
        assert_eq!(app.on_key(ch('r')), Some(Command::Resume(TorrentId(2))));
        assert_eq!(app.on_key(key(KeyCode::F(5))), Some(Command::Refresh));
        assert_eq!(app.view, View::List);
        let mut empty = App::new("x");
        assert_eq!(empty.on_key(ch('p')), None, "nothing to pause");
        assert_eq!(empty.on_key(key(KeyCode::Enter)), None, "nothing to open");
        assert_eq!(empty.view, View::List);
    }

    #[test]
    fn enter_opens_details_tabs_cycle_and_escape_goes_back() {
        let mut app = app();
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Some(Command::LoadDetail(TorrentId(2))));
        assert_eq!(app.view, View::Detail { id: TorrentId(2), tab: Tab::Files, scroll: 0 });
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, View::Detail { id: TorrentId(2), tab: Tab::Peers, scroll: 0 });
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, View::Detail { id: TorrentId(2), tab: Tab::Files, scroll: 0 }, "wraps around");
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.view, View::Detail { id: TorrentId(2), tab: Tab::Trackers, scroll: 0 });
        assert_eq!(app.on_key(ch('p')), Some(Command::Pause(TorrentId(2))), "acts on the torrent shown");
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert_eq!(app.view, View::List);
        assert_eq!(app.selected, 1, "the selection is kept");
    }

    #[test]
    fn detail_answers_for_another_torrent_are_ignored() {
        let mut app = app();
        app.on_key(key(KeyCode::Enter));
        let other = torrent(3, "gamma.zip", TorrentState::Paused, 0.0);
        app.apply(Outcome::Detail(TorrentId(3), Ok(Box::new(Detail { info: other, peers: Vec::new() }))));
        assert!(app.shown_detail().is_none());
        let shown = torrent(1, "alpha.iso", TorrentState::Seeding, 1.0);
        app.apply(Outcome::Detail(TorrentId(1), Ok(Box::new(Detail { info: shown, peers: Vec::new() }))));
        assert_eq!(app.shown_detail().map(|d| d.info.id), Some(TorrentId(1)));
    }

    #[test]
    fn adding_types_into_a_prompt_and_enter_sends_the_text() {
        let mut app = app();
        assert_eq!(app.on_key(ch('a')), None);
        assert!(matches!(app.view, View::Input { .. }));
        for c in "magnet:?xt=urn:btih:qq".chars() {
            assert_eq!(app.on_key(ch(c)), None, "{c} is typed, not a command");
        }
        app.on_key(key(KeyCode::Backspace));
        app.on_paste(" \n");
        assert_eq!(app.view, View::Input { kind: InputKind::AddMagnetOrPath, buffer: "magnet:?xt=urn:btih:q ".into() });
        assert_eq!(app.on_key(key(KeyCode::Enter)), Some(Command::Add("magnet:?xt=urn:btih:q".into())));
        assert_eq!(app.view, View::List);

        app.on_key(ch('a'));
        app.on_key(ch('x'));
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(app.on_key(key(KeyCode::Enter)), None, "an empty prompt adds nothing");
        app.on_key(ch('a'));
        app.on_key(ch('x'));
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert_eq!(app.view, View::List);
    }

    #[test]
    fn remove_asks_first_and_can_delete_the_data() {
        let mut app = app();
        app.on_key(ch('d'));
        assert_eq!(app.view, View::ConfirmRemove { id: TorrentId(1), delete_data: false });
        assert_eq!(app.on_key(ch('n')), None);
        assert_eq!(app.view, View::List);
        app.on_key(ch('d'));
        assert_eq!(app.on_key(ch('y')), Some(Command::Remove(TorrentId(1), false)));
        app.on_key(ch('d'));
        app.on_key(ch(' '));
        assert_eq!(app.view, View::ConfirmRemove { id: TorrentId(1), delete_data: true });
        assert_eq!(app.on_key(key(KeyCode::Enter)), Some(Command::Remove(TorrentId(1), true)));
    }

    #[test]
    fn q_and_ctrl_c_quit_but_q_is_text_in_the_prompt() {
        let mut app = app();
        assert_eq!(app.on_key(ch('q')), Some(Command::Quit));
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.on_key(ch('q')), Some(Command::Quit), "from the detail view too");
        app.view = View::List;
        app.on_key(ch('a'));
        assert_eq!(app.on_key(ch('q')), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Command::Quit));
    }

    #[test]
    fn refresh_keeps_the_selected_torrent_and_leaves_details_of_a_removed_one() {
        let mut app = app();
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected_torrent().map(|t| t.id), Some(TorrentId(3)));
        // Torrent 1 went away: the selection follows torrent 3 to its new row.
        app.apply(Outcome::Listed(Ok(vec![
            torrent(2, "beta.mkv", TorrentState::Downloading, 0.5),
            torrent(3, "gamma.zip", TorrentState::Paused, 0.0),
        ])));
        assert_eq!((app.selected, app.selected_torrent().map(|t| t.id)), (1, Some(TorrentId(3))));
        app.on_key(key(KeyCode::Enter));
        app.apply(Outcome::Listed(Ok(vec![torrent(2, "beta.mkv", TorrentState::Downloading, 0.5)])));
        assert_eq!(app.view, View::List);
        assert_eq!(app.selected, 0, "clamped to the list");
        assert!(app.status.as_ref().is_some_and(|s| s.text.contains("torrent 3 is gone")));
        app.apply(Outcome::Listed(Ok(Vec::new())));
        assert_eq!(app.selected, 0);
    }

    #[test]
    fn an_unreachable_daemon_is_a_status_line_that_clears_when_it_answers() {
        let mut app = App::new("http://127.0.0.1:1/jsonrpc");
        app.apply(Outcome::Listed(Err("cannot reach the daemon".into())));
        let status = app.status.clone().expect("a status");
        assert_eq!(status.kind, StatusKind::Offline);
        assert!(status.text.starts_with("cannot reach the daemon") && status.text.contains("retrying"));
        app.apply(Outcome::Done(Err("torrent.pause: no torrent 9".into())));
        app.apply(Outcome::Listed(Ok(Vec::new())));
        assert_eq!(app.status.as_ref().map(|s| s.kind), Some(StatusKind::Error), "an action's error stays");
        app.apply(Outcome::Listed(Err("down".into())));
        app.apply(Outcome::Listed(Ok(Vec::new())));
        assert_eq!(app.status, None);
        assert!(app.loaded);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut app = app();
        let mut release = ch('q');
        release.kind = KeyEventKind::Release;
        assert_eq!(app.on_key(release), None);
    }
}
