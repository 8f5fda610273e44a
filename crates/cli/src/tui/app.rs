//! The terminal UI's state machine, free of I/O: what is on screen ([`App`]), how keys change it
//! ([`App::on_key`]), and how the daemon's answers are folded in ([`App::apply`]).
//!
//! Call protocol: the driver feeds every key to [`App::on_key`] and runs the [`Command`] it
//! returns, if any; it hands the result of every RPC back as an [`Outcome`] to [`App::apply`]
//! and redraws. Nothing here waits, so every transition is tested without a terminal or a
//! daemon.
//!
//! The list shows the torrents that pass the [`Filter`], in the [`Sort`] order (see
//! [`super::arrange`]); every action of the list applies to the selected row of that view, and
//! the selection follows its torrent when the order, the filter or the list changes.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use shoal_rpc::api::{PeerInfo, TorrentId, TorrentInfo};

use super::arrange::{Filter, Sort, next_label};
use super::change::{Change, Setting, next_priority};

/// What the user asked the driver to do.
#[derive(Clone, Debug, PartialEq)]
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
    /// Change one of a torrent's settings (`torrent.set`).
    Set(TorrentId, Change),
    /// Fetch one torrent's files, trackers and peers for the detail view.
    LoadDetail(TorrentId),
    /// Open a file's stream (its path on the daemon's RPC listener) in a player.
    Play(String),
    /// Search for these words (`search.query`: this node's index first, then everywhere).
    Search(String),
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
    /// An action (add, pause, resume, remove, set) finished: what happened, or why it failed.
    Done(Result<String, String>),
    /// An answer to a search: the words, whether the neighbours had their say, the results.
    Found(String, bool, Result<Vec<shoal_rpc::api::SearchHit>, String>),
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

/// Where the detail view is: which torrent, which tab, which row of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DetailAt {
    /// The torrent shown.
    pub(crate) id: TorrentId,
    /// The tab shown.
    pub(crate) tab: Tab,
    /// The selected row of the tab's table (the table scrolls to keep it on screen).
    pub(crate) row: usize,
}

/// What the text prompt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A magnet link, an http(s) URL, or a path of a .torrent file; drawn over the list.
    AddMagnetOrPath,
    /// The list's name filter, applied as it is typed; drawn on the status line.
    Filter,
    /// A setting of the torrent in the detail view, drawn over it; Enter and Esc go back to it.
    Set(Setting, DetailAt),
}

/// The screen being shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The table of torrents.
    List,
    /// One torrent's details.
    Detail(DetailAt),
    /// A text prompt.
    Input {
        /// What the text is for.
        kind: InputKind,
        /// The text typed so far.
        buffer: String,
    },
    /// The search view ([`App::find`]).
    Find,
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
    /// The list's rows: indices into `torrents` of those that pass `filter`, in `sort` order.
    /// Rebuilt by [`App::arrange`] whenever the torrents, the filter or the order change.
    rows: Vec<usize>,
    /// Index into the rows of the selected one; always `< rows.len()` unless there are no
    /// rows (then 0).
    pub(crate) selected: usize,
    /// The list's order.
    pub(crate) sort: Sort,
    /// The list's filters.
    pub(crate) filter: Filter,
    /// The screen shown.
    pub(crate) view: View,
    /// Data of the detail view; may belong to another torrent than the one shown (then ignored).
    pub(crate) detail: Option<Detail>,
    /// The status line.
    pub(crate) status: Option<Status>,
    /// The torrent list has been fetched at least once.
    pub(crate) loaded: bool,
    /// The search view's words and results (kept while the list is shown).
    pub(crate) find: super::find::Find,
}

impl App {
    /// A UI on the daemon at `rpc`, before the first answer.
    pub(crate) fn new(rpc: impl Into<String>) -> App {
        App {
            rpc: rpc.into(),
            torrents: Vec::new(),
            rows: Vec::new(),
            selected: 0,
            sort: Sort::default(),
            filter: Filter::default(),
            view: View::List,
            detail: None,
            status: None,
            loaded: false,
            find: Default::default(),
        }
    }

    /// The list's rows, top to bottom: the torrents that pass the filter, in the sort order.
    pub(crate) fn visible(&self) -> impl ExactSizeIterator<Item = &TorrentInfo> {
        self.rows.iter().map(|&i| &self.torrents[i])
    }

    /// How many rows the list has (torrents that pass the filter).
    pub(crate) fn shown(&self) -> usize {
        self.rows.len()
    }

    /// The selected row's torrent.
    pub(crate) fn selected_torrent(&self) -> Option<&TorrentInfo> {
        self.rows.get(self.selected).and_then(|&i| self.torrents.get(i))
    }

    /// The torrent with this id, as last listed (shown or filtered out).
    pub(crate) fn torrent(&self, id: TorrentId) -> Option<&TorrentInfo> {
        self.torrents.iter().find(|t| t.id == id)
    }

    /// Where the detail view is, when it is open (also under a prompt of its own).
    pub(crate) fn detail_at(&self) -> Option<DetailAt> {
        match self.view {
            View::Detail(at) | View::Input { kind: InputKind::Set(_, at), .. } => Some(at),
            _ => None,
        }
    }

    /// The torrent the detail view shows, when it is open.
    pub(crate) fn detail_id(&self) -> Option<TorrentId> {
        self.detail_at().map(|at| at.id)
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
            View::Detail(at) => self.detail_key(key, at),
            View::Input { kind, buffer } => self.input_key(key, kind, buffer, ctrl),
            View::ConfirmRemove { id, delete_data } => self.confirm_key(key, id, delete_data),
            View::Find => match self.find.key(key, ctrl) {
                super::find::FindKey::Stay => None,
                super::find::FindKey::Run(command) => Some(command),
                super::find::FindKey::Leave => {
                    self.view = View::List;
                    None
                }
            },
        }
    }

    /// Handles pasted text (bracketed paste): appended to the prompt, ignored elsewhere.
    pub(crate) fn on_paste(&mut self, text: &str) {
        if self.view == View::Find {
            self.find.paste(text);
        }
        if let View::Input { kind, buffer } = &mut self.view {
            buffer.extend(text.chars().filter(|c| !c.is_control()));
            if *kind == InputKind::Filter {
                self.filter.text = buffer.clone();
                self.arrange();
            }
        }
    }

    fn list_key(&mut self, key: KeyEvent) -> Option<Command> {
        let last = self.rows.len().saturating_sub(1);
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            // Esc undoes a filter first, so it never quits a list that hides torrents.
            KeyCode::Esc if self.filter.is_active() => {
                self.filter = Filter::default();
                self.arrange();
            }
            KeyCode::Esc => return Some(Command::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(last),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                let id = self.selected_torrent()?.id;
                self.view = View::Detail(DetailAt { id, tab: Tab::Files, row: 0 });
                return Some(Command::LoadDetail(id));
            }
            KeyCode::Char('a') => {
                self.view = View::Input { kind: InputKind::AddMagnetOrPath, buffer: String::new() };
            }
            KeyCode::Char('F') => {
                self.find.open();
                self.view = View::Find;
            }
            KeyCode::Char('/') => {
                self.view = View::Input { kind: InputKind::Filter, buffer: self.filter.text.clone() };
            }
            KeyCode::Char('f') => {
                self.filter.state = self.filter.state.next();
                self.arrange();
            }
            KeyCode::Char('L') => {
                self.filter.label = next_label(self.filter.label.as_deref(), &self.torrents);
                self.arrange();
            }
            KeyCode::Char('s') => {
                self.sort = Sort { key: self.sort.key.next(), reversed: false };
                self.arrange();
            }
            KeyCode::Char('S') => {
                self.sort.reversed = !self.sort.reversed;
                self.arrange();
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

    fn detail_key(&mut self, key: KeyEvent, at: DetailAt) -> Option<Command> {
        let DetailAt { id, tab, row } = at;
        let to = |tab, row| View::Detail(DetailAt { id, tab, row });
        let setting = match key.code {
            KeyCode::Char('U') => Some(Setting::UploadLimit),
            KeyCode::Char('D') => Some(Setting::DownloadLimit),
            KeyCode::Char('C') => Some(Setting::MaxConnections),
            KeyCode::Char('R') => Some(Setting::SeedRatio),
            KeyCode::Char('T') => Some(Setting::SeedTime),
            _ => None,
        };
        if let Some(setting) = setting {
            let buffer = self.torrent(id).map(|t| setting.current(t)).unwrap_or_default();
            self.view = View::Input { kind: InputKind::Set(setting, at), buffer };
            return None;
        }
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('h') => self.view = View::List,
            KeyCode::Tab | KeyCode::Right => self.view = to(tab.next(), 0),
            KeyCode::BackTab | KeyCode::Left => self.view = to(tab.previous(), 0),
            KeyCode::Char('f') | KeyCode::Char('1') => self.view = to(Tab::Files, 0),
            KeyCode::Char('e') | KeyCode::Char('2') => self.view = to(Tab::Peers, 0),
            KeyCode::Char('t') | KeyCode::Char('3') => self.view = to(Tab::Trackers, 0),
            KeyCode::Up | KeyCode::Char('k') => self.view = to(tab, row.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => {
                let last = self.tab_rows(tab).saturating_sub(1);
                self.view = to(tab, (row + 1).min(last));
            }
            KeyCode::Char(' ') if tab == Tab::Files => return self.cycle_priority(id, row),
            KeyCode::Char('o') if tab == Tab::Files => {
                let detail = self.shown_detail()?;
                return detail.info.files.get(row).map(|f| Command::Play(f.stream.clone()));
            }
            KeyCode::Char('p') => return Some(Command::Pause(id)),
            KeyCode::Char('r') => return Some(Command::Resume(id)),
            KeyCode::Char('d') | KeyCode::Delete => self.view = View::ConfirmRemove { id, delete_data: false },
            KeyCode::F(5) => return Some(Command::LoadDetail(id)),
            _ => {}
        }
        None
    }

    /// Moves file `index` of the shown torrent to its next priority. The loaded details show
    /// the new priority at once, so a second press goes on from it; the next refresh shows
    /// what the daemon made of it.
    fn cycle_priority(&mut self, id: TorrentId, index: usize) -> Option<Command> {
        let detail = self.detail.as_mut().filter(|d| d.info.id == id)?;
        let file = detail.info.files.get_mut(index)?;
        file.priority = next_priority(file.priority);
        Some(Command::Set(id, Change::FilePriority { index, priority: file.priority }))
    }

    fn input_key(&mut self, key: KeyEvent, kind: InputKind, mut buffer: String, ctrl: bool) -> Option<Command> {
        let back = match kind {
            InputKind::Set(_, at) => View::Detail(at),
            InputKind::AddMagnetOrPath | InputKind::Filter => View::List,
        };
        match key.code {
            KeyCode::Esc => {
                if kind == InputKind::Filter {
                    self.filter.text.clear();
                    self.arrange();
                }
                self.view = back;
                return None;
            }
            KeyCode::Enter => {
                let text = buffer.trim();
                let command = match kind {
                    InputKind::AddMagnetOrPath if text.is_empty() => None,
                    InputKind::AddMagnetOrPath => Some(Command::Add(text.to_owned())),
                    InputKind::Filter => None,
                    InputKind::Set(setting, at) => match setting.parse(text) {
                        Ok(change) => Some(Command::Set(at.id, change)),
                        Err(e) => {
                            // The prompt stays open with the text, to be corrected.
                            self.status = Some(Status { text: e, kind: StatusKind::Error });
                            return None;
                        }
                    },
                };
                self.view = back;
                return command;
            }
            KeyCode::Backspace => {
                buffer.pop();
            }
            KeyCode::Char('u') if ctrl => buffer.clear(),
            KeyCode::Char(c) if !ctrl => buffer.push(c),
            _ => {}
        }
        if kind == InputKind::Filter && self.filter.text != buffer {
            self.filter.text.clone_from(&buffer);
            self.arrange();
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
                    if let View::Detail(DetailAt { tab, row, .. }) = self.view {
                        let last = self.tab_rows(tab).saturating_sub(1);
                        self.view = View::Detail(DetailAt { id, tab, row: row.min(last) });
                    }
                }
            }
            Outcome::Detail(id, Err(e)) => {
                if self.detail_id() == Some(id) {
                    self.status = Some(Status { text: e, kind: StatusKind::Error });
                }
            }
            Outcome::Found(words, complete, result) => {
                if let Some(text) = self.find.found(&words, complete, result) {
                    self.status = Some(Status { text, kind: StatusKind::Error });
                }
            }
            Outcome::Done(Ok(text)) => self.status = Some(Status { text, kind: StatusKind::Info }),
            Outcome::Done(Err(text)) => self.status = Some(Status { text, kind: StatusKind::Error }),
        }
    }

    /// Rebuilds the rows from the torrents, the filter and the order, keeping the selected
    /// torrent selected while it is shown.
    fn arrange(&mut self) {
        let keep = self.selected_torrent().map(|t| t.id);
        self.arrange_keeping(keep);
    }

    /// Rebuilds the rows; `keep` stays selected when it is shown. Otherwise the selection keeps
    /// its row number (so after a removal the next torrent is selected), within the rows.
    fn arrange_keeping(&mut self, keep: Option<TorrentId>) {
        let torrents = &self.torrents;
        let mut rows: Vec<usize> = (0..torrents.len()).filter(|&i| self.filter.matches(&torrents[i])).collect();
        rows.sort_by(|&a, &b| self.sort.compare(&torrents[a], &torrents[b]));
        self.rows = rows;
        self.selected = keep
            .and_then(|id| self.visible().position(|t| t.id == id))
            .unwrap_or(self.selected)
            .min(self.rows.len().saturating_sub(1));
    }

    /// Replaces the list, keeping the same torrent selected when it is still there, and leaves
    /// the detail view of a torrent that is gone.
    fn set_torrents(&mut self, torrents: Vec<TorrentInfo>) {
        let keep = self.selected_torrent().map(|t| t.id);
        self.torrents = torrents;
        self.arrange_keeping(keep);
        self.loaded = true;
        if self.status.as_ref().is_some_and(|s| s.kind == StatusKind::Offline) {
            self.status = None;
        }
        let gone = |id| !self.torrents.iter().any(|t| t.id == id);
        let shown = self.detail_id().or(match self.view {
            View::ConfirmRemove { id, .. } => Some(id),
            _ => None,
        });
        if let Some(id) = shown.filter(|id| gone(*id)) {
            self.view = View::List;
            self.detail = None;
            self.status = Some(Status { text: format!("torrent {id} is gone"), kind: StatusKind::Info });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tui::arrange::{SortKey, StateFilter};
    use shoal_rpc::api::{FileInfo, Goal, Priority, TorrentState, TrackerInfo};

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
            seed_ratio_limit: Goal::Session,
            seed_time_limit: Goal::Session,
            seed_idle_limit: Goal::Session,
            idle_seconds: None,
            labels: Vec::new(),
            group: None,
            pushed_by: Vec::new(),
            sequential: false,
            piece_count: 4,
            piece_length: 1 << 18,
            files: vec![FileInfo {
                path: name.to_owned(),
                length: total,
                have,
                priority: Priority::Normal,
                stream: format!("/stream/{id}/0"),
            }],
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

    pub(crate) fn ch(c: char) -> KeyEvent {
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
        let at = |tab| View::Detail(DetailAt { id: TorrentId(2), tab, row: 0 });
        assert_eq!(app.view, at(Tab::Files));
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, at(Tab::Peers));
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, at(Tab::Files), "wraps around");
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.view, at(Tab::Trackers));
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

    fn names(app: &App) -> Vec<&str> {
        app.visible().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn s_cycles_the_sort_order_and_the_selection_follows_its_torrent() {
        let mut app = app();
        app.torrents[0].download_rate = 5;
        app.torrents[2].download_rate = 9;
        app.on_key(ch('j'));
        assert_eq!(app.selected_torrent().map(|t| t.id), Some(TorrentId(2)));
        let mut seen = Vec::new();
        for _ in 0..SortKey::ALL.len() {
            app.on_key(ch('s'));
            seen.push((app.sort.key, names(&app).join(" ")));
            assert_eq!(app.selected_torrent().map(|t| t.id), Some(TorrentId(2)), "{:?}", app.sort);
        }
        assert_eq!(
            seen[..4],
            [
                (SortKey::Name, "alpha.iso beta.mkv gamma.zip".to_owned()),
                (SortKey::Progress, "alpha.iso beta.mkv gamma.zip".to_owned()),
                (SortKey::Down, "gamma.zip alpha.iso beta.mkv".to_owned()),
                (SortKey::Up, "alpha.iso beta.mkv gamma.zip".to_owned()),
            ],
            "largest first, equals in id order"
        );
        assert_eq!(app.sort, Sort::default(), "back to the order of adding");
        // Sorted by download rate: S reverses, and p pauses the torrent on the selected row.
        for _ in 0..3 {
            app.on_key(ch('s'));
        }
        app.on_key(ch('g'));
        assert_eq!(app.on_key(ch('p')), Some(Command::Pause(TorrentId(3))), "gamma is fastest");
        app.on_key(ch('S'));
        assert!(app.sort.reversed && !app.sort.descending());
        assert_eq!(names(&app), ["beta.mkv", "alpha.iso", "gamma.zip"]);
        assert_eq!(app.selected_torrent().map(|t| t.id), Some(TorrentId(3)), "still gamma, now last");
        // A refresh with new rates reorders the rows; the selection stays on gamma.
        let mut listed = app.torrents.clone();
        listed[2].download_rate = 0;
        listed[1].download_rate = 7;
        app.apply(Outcome::Listed(Ok(listed)));
        assert_eq!(names(&app), ["gamma.zip", "alpha.iso", "beta.mkv"]);
        assert_eq!((app.selected, app.selected_torrent().map(|t| t.id)), (0, Some(TorrentId(3))));
        app.on_key(ch('s'));
        assert_eq!((app.sort.key, app.sort.reversed), (SortKey::Up, false), "a new key starts unreversed");
    }

    #[test]
    fn slash_filters_by_name_as_typed_enter_keeps_it_and_esc_clears_it() {
        let mut app = app();
        app.on_key(key(KeyCode::End));
        assert_eq!(app.on_key(ch('/')), None);
        assert_eq!(app.view, View::Input { kind: InputKind::Filter, buffer: String::new() });
        app.on_key(ch('M'));
        assert_eq!(names(&app), ["beta.mkv", "gamma.zip"], "live, ignoring case");
        app.on_key(ch('K'));
        assert_eq!(names(&app), ["beta.mkv"]);
        assert_eq!(app.on_key(key(KeyCode::Enter)), None);
        assert_eq!((app.view.clone(), app.filter.text.as_str()), (View::List, "MK"), "enter keeps the filter");
        assert_eq!(app.on_key(ch('d')), None);
        assert_eq!(app.view, View::ConfirmRemove { id: TorrentId(2), delete_data: false }, "the visible torrent");
        app.on_key(ch('n'));
        assert_eq!(app.on_key(ch('p')), Some(Command::Pause(TorrentId(2))));

        app.on_key(ch('/'));
        assert_eq!(app.view, View::Input { kind: InputKind::Filter, buffer: "MK".into() }, "edits the filter");
        app.on_key(ch('x'));
        assert_eq!(app.shown(), 0);
        assert_eq!(app.selected_torrent(), None);
        app.on_key(key(KeyCode::Backspace));
        app.on_paste("v");
        assert_eq!(names(&app), ["beta.mkv"], "pasted text filters too");
        app.on_key(key(KeyCode::Esc));
        assert_eq!((app.view.clone(), app.filter.clone()), (View::List, Filter::default()), "esc clears");
        assert_eq!(app.shown(), 3);
        assert_eq!(app.selected_torrent().map(|t| t.id), Some(TorrentId(2)), "the selection stays on beta");

        app.on_key(ch('/'));
        app.on_key(ch('n'));
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.shown(), 0, "no name has an n");
        assert_eq!(app.on_key(ch('p')), None, "nothing selected, nothing paused");
        assert_eq!(app.on_key(key(KeyCode::Enter)), None);
        assert_eq!(app.on_key(key(KeyCode::Esc)), None, "esc in the list clears a filter first");
        assert_eq!(app.shown(), 3);
        assert_eq!(app.on_key(key(KeyCode::Esc)), Some(Command::Quit), "then it quits");
    }

    #[test]
    fn f_cycles_the_state_filter_and_capital_l_the_labels() {
        let mut app = app();
        app.torrents[0].upload_rate = 1;
        app.torrents[1].labels = vec!["video".into()];
        app.torrents[2].labels = vec!["archive".into(), "video".into()];
        app.apply(Outcome::Listed(Ok(app.torrents.clone())));
        let mut seen = Vec::new();
        for _ in 0..StateFilter::ALL.len() {
            app.on_key(ch('f'));
            seen.push((app.filter.state, names(&app).join(" ")));
        }
        assert_eq!(
            seen,
            [
                (StateFilter::Active, "alpha.iso".to_owned()),
                (StateFilter::Downloading, "beta.mkv".to_owned()),
                (StateFilter::Seeding, "alpha.iso".to_owned()),
                (StateFilter::Paused, "gamma.zip".to_owned()),
                (StateFilter::Waiting, String::new()),
                (StateFilter::Error, String::new()),
                (StateFilter::All, "alpha.iso beta.mkv gamma.zip".to_owned()),
            ]
        );
        app.on_key(ch('L'));
        assert_eq!((app.filter.label.as_deref(), names(&app)), (Some("archive"), vec!["gamma.zip"]));
        app.on_key(ch('L'));
        assert_eq!((app.filter.label.as_deref(), names(&app)), (Some("video"), vec!["beta.mkv", "gamma.zip"]));
        app.on_key(ch('f'));
        app.on_key(ch('f'));
        assert_eq!(names(&app), ["beta.mkv"], "label and state together");
        app.on_key(ch('L'));
        app.on_key(ch('f'));
        assert_eq!(app.filter.label, None, "any label after the last");
    }

    #[test]
    fn the_detail_view_prompts_for_limits_and_sends_them() {
        let mut app = app();
        app.on_key(key(KeyCode::Enter));
        let at = DetailAt { id: TorrentId(1), tab: Tab::Files, row: 0 };
        assert_eq!(app.on_key(ch('U')), None);
        assert_eq!(app.view, View::Input { kind: InputKind::Set(Setting::UploadLimit, at), buffer: String::new() });
        assert_eq!(app.detail_id(), Some(TorrentId(1)), "the detail view stays loaded under its prompt");
        for c in "1M".chars() {
            app.on_key(ch(c));
        }
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Some(Command::Set(TorrentId(1), Change::UploadLimit(Some(1 << 20))))
        );
        assert_eq!(app.view, View::Detail(at), "back to the detail view");

        // The prompt starts with the current value; emptied, it removes the limit.
        app.torrents[0].download_limit = Some(512 << 10);
        app.on_key(ch('D'));
        assert_eq!(app.view, View::Input { kind: InputKind::Set(Setting::DownloadLimit, at), buffer: "512k".into() });
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Some(Command::Set(TorrentId(1), Change::DownloadLimit(None))));

        // A bad value says why and keeps the prompt open to be corrected.
        app.on_key(ch('R'));
        for c in "lots".chars() {
            assert_eq!(app.on_key(ch(c)), None);
        }
        assert_eq!(app.on_key(key(KeyCode::Enter)), None);
        assert!(matches!(app.view, View::Input { kind: InputKind::Set(Setting::SeedRatio, _), .. }));
        assert!(app.status.as_ref().is_some_and(|s| s.kind == StatusKind::Error && s.text.contains("\"lots\"")));
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        app.on_key(ch('2'));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Some(Command::Set(TorrentId(1), Change::SeedRatio(Goal::Limit(2.0))))
        );

        app.on_key(ch('C'));
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert_eq!(app.view, View::Detail(at), "esc cancels");
        app.on_key(ch('T'));
        app.on_key(ch('q'));
        assert!(matches!(&app.view, View::Input { buffer, .. } if buffer == "q"), "q is text in the prompt");

        // The torrent goes away under its prompt: back to the list.
        app.apply(Outcome::Listed(Ok(vec![torrent(2, "beta.mkv", TorrentState::Downloading, 0.5)])));
        assert_eq!(app.view, View::List);
    }

    #[test]
    fn space_in_the_files_tab_cycles_the_selected_files_priority() {
        let mut app = app();
        app.on_key(ch('j'));
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.on_key(ch(' ')), None, "nothing loaded yet");
        let mut info = torrent(2, "beta.mkv", TorrentState::Downloading, 0.42);
        let file = |index, path: &str, priority| FileInfo {
            path: path.into(),
            length: 10,
            have: 0,
            priority,
            stream: format!("/stream/2/{index}"),
        };
        info.files = vec![file(0, "beta/a.mkv", Priority::Skip), file(1, "beta/b.srt", Priority::Normal)];
        app.apply(Outcome::Detail(TorrentId(2), Ok(Box::new(Detail { info, peers: Vec::new() }))));
        let set = |index, priority| Some(Command::Set(TorrentId(2), Change::FilePriority { index, priority }));
        assert_eq!(app.on_key(ch(' ')), set(0, Priority::Normal));
        assert_eq!(app.on_key(ch(' ')), set(0, Priority::High), "goes on from what it sent");
        assert_eq!(app.on_key(ch(' ')), set(0, Priority::Skip));
        app.on_key(ch('j'));
        assert_eq!(app.view, View::Detail(DetailAt { id: TorrentId(2), tab: Tab::Files, row: 1 }));
        app.on_key(ch('j'));
        assert_eq!(app.detail_at().map(|at| at.row), Some(1), "stops at the last file");
        assert_eq!(app.on_key(ch(' ')), set(1, Priority::High));
        assert_eq!(app.shown_detail().map(|d| d.info.files[1].priority), Some(Priority::High));
        assert_eq!(app.on_key(ch('o')), Some(Command::Play("/stream/2/1".into())), "the selected file plays");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.on_key(ch(' ')), None, "only in the Files tab");
        assert_eq!(app.on_key(ch('o')), None, "only in the Files tab");
    }
}
