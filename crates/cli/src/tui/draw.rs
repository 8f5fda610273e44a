//! Drawing the terminal UI: a pure function of the [`App`] state onto a ratatui [`Frame`].
//!
//! The screen, top to bottom: a header (daemon URL, how many torrents are shown of how many,
//! total rates), the body (the torrent table, or one torrent's summary with Files, Peers and
//! Trackers tabs), a status line and one or two help lines of the keys that work in the
//! current view. The list's block title says how it is sorted and filtered, and the sorted
//! column's heading carries an arrow. The add prompt, a setting's prompt and the remove question
//! are drawn as boxes over the body; the name filter is typed on the status line. The search
//! view takes the body: the words typed, then the results with where each came from and
//! whether it was checked.

use indicatif::HumanBytes;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Tabs};
use shoal_rpc::api::{TorrentInfo, TorrentState};

use super::app::{App, DetailAt, InputKind, StatusKind, Tab, View};
use super::arrange::SortKey;
use super::change::{goal_shown, limit_text, priority_name};

/// Width of the text progress bar, in cells.
const BAR_WIDTH: usize = 10;
/// Most rows the help takes; keys that do not fit are left out.
const HELP_ROWS: usize = 2;

/// Draws the whole screen.
pub(crate) fn draw(frame: &mut Frame, app: &App) {
    let help = help_lines(&help_keys(app), usize::from(frame.area().width));
    let [header, body, status, help_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(help.len() as u16),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    if app.view == View::Find {
        draw_find(frame, body, app);
    } else {
        match app.detail_at() {
            Some(at) => match app.torrent(at.id) {
                Some(listed) => draw_detail(frame, body, app, listed, at),
                None => draw_list(frame, body, app),
            },
            None => draw_list(frame, body, app),
        }
    }
    match &app.view {
        View::Input { kind: InputKind::AddMagnetOrPath, buffer } => {
            draw_prompt(frame, body, " Add a torrent ", "Magnet link, http(s) URL or path of a .torrent file:", buffer)
        }
        View::Input { kind: InputKind::Set(setting, at), buffer } => {
            let name = app.torrent(at.id).map_or("", |t| t.name.as_str());
            let title = format!(" {} of #{} {name} ", setting.title(), at.id);
            draw_prompt(frame, body, &title, setting.hint(), buffer);
        }
        View::ConfirmRemove { id, delete_data } => {
            let name = app.torrent(*id).map_or("", |t| t.name.as_str());
            draw_confirm(frame, body, &format!("#{id} {name}"), *delete_data);
        }
        View::List | View::Detail(_) | View::Find | View::Input { kind: InputKind::Filter, .. } => {}
    }
    if let View::Input { kind: InputKind::Filter, buffer } = &app.view {
        let line =
            Line::from(vec![Span::styled("filter: ", Style::new().fg(Color::Yellow)), Span::raw(buffer.as_str())]);
        frame.render_widget(Paragraph::new(line), status);
        let x = status.x.saturating_add(8).saturating_add(buffer.chars().count() as u16);
        frame.set_cursor_position(Position::new(x.min(status.right().saturating_sub(1)), status.y));
    } else if let Some(s) = &app.status {
        let style = match s.kind {
            StatusKind::Info => Style::new().fg(Color::Green),
            StatusKind::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            StatusKind::Offline => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        };
        frame.render_widget(Paragraph::new(Line::styled(s.text.as_str(), style)), status);
    }
    frame.render_widget(Paragraph::new(help), help_area);
}

/// The keys that work now, as `key label` pairs.
fn help_keys(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.view {
        View::List => {
            let mut keys = vec![("↑↓", "select"), ("enter", "details"), ("/", "filter"), ("f", "state")];
            if app.torrents.iter().any(|t| !t.labels.is_empty()) {
                keys.push(("L", "label"));
            }
            keys.extend([("s", "sort"), ("S", "reverse")]);
            if app.filter.is_active() {
                keys.push(("esc", "clear filter"));
            }
            keys.extend([
                ("a", "add"),
                ("F", "search"),
                ("p", "pause"),
                ("r", "resume"),
                ("d", "remove"),
                ("q", "quit"),
            ]);
            keys
        }
        View::Detail(at) => {
            let mut keys = vec![("tab", "files/peers/trackers"), ("↑↓", "select")];
            if at.tab == Tab::Files {
                keys.extend([("space", "priority"), ("o", "play")]);
            }
            keys.extend([
                ("U/D", "up/down limit"),
                ("C", "connections"),
                ("R/T", "seed ratio/time"),
                ("esc", "back"),
                ("p", "pause"),
                ("r", "resume"),
                ("d", "remove"),
                ("q", "quit"),
            ]);
            keys
        }
        View::Input { kind: InputKind::AddMagnetOrPath, .. } => {
            vec![("enter", "add"), ("esc", "cancel"), ("ctrl-u", "clear")]
        }
        View::Input { kind: InputKind::Filter, .. } => {
            vec![("type", "part of the name"), ("enter", "keep filter"), ("esc", "clear filter")]
        }
        View::Input { kind: InputKind::Set(..), .. } => vec![("enter", "set"), ("esc", "cancel"), ("ctrl-u", "clear")],
        View::ConfirmRemove { .. } => vec![("y", "remove"), ("space", "also delete data"), ("n", "cancel")],
        View::Find if app.find.typing => {
            vec![("type", "words"), ("enter", "search"), ("esc", "back"), ("ctrl-u", "clear")]
        }
        View::Find => vec![("↑↓", "select"), ("enter", "add"), ("/", "new search"), ("esc", "back"), ("q", "quit")],
    }
}

/// The search view: the words, then the results as they arrive.
fn draw_find(frame: &mut Frame, area: Rect, app: &App) {
    let f = &app.find;
    let mut title = " Search ".to_string();
    if let Some(asked) = &f.asked {
        title =
            format!(" Search · {asked:?} · {} result{} ", f.results.len(), if f.results.len() == 1 { "" } else { "s" });
        if f.searching {
            title.push_str("· asking the neighbours … ");
        }
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [words, results] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    let prompt = Line::from(vec![Span::styled("find: ", Style::new().fg(Color::Yellow)), Span::raw(f.query.as_str())]);
    frame.render_widget(Paragraph::new(prompt), words);
    if f.typing {
        let x = words.x.saturating_add(6).saturating_add(f.query.chars().count() as u16);
        frame.set_cursor_position(Position::new(x.min(words.right().saturating_sub(1)), words.y));
    }
    if f.results.is_empty() {
        let text = match &f.asked {
            None => "Type words (each the start of a word of a name) and press enter.".to_owned(),
            Some(_) if f.searching => "Searching …".to_owned(),
            Some(asked) => format!("Nothing found for {asked:?}."),
        };
        frame.render_widget(Paragraph::new(text), results);
        return;
    }
    let rows = f.results.iter().enumerate().map(|(i, h)| {
        let mut name = vec![Span::raw(h.name.as_str())];
        if h.group_only {
            name.push(Span::styled("  (group share)", Style::new().fg(Color::Cyan)));
        }
        let by = match &h.publisher {
            _ if h.source == "local" => "yours".to_owned(),
            Some(p) => p.chars().take(7).collect(),
            None => "-".to_owned(),
        };
        let checked = if h.verified {
            Span::styled("verified", Style::new().fg(Color::Green))
        } else {
            Span::styled("not yet", Style::new().fg(Color::DarkGray))
        };
        Row::new(vec![
            Cell::from((i + 1).to_string()),
            Cell::from(Line::from(name)),
            Cell::from(HumanBytes(h.size).to_string()),
            Cell::from(h.seeders.map_or("-".to_owned(), |n| n.to_string())),
            Cell::from(h.source.as_str()),
            Cell::from(by),
            Cell::from(checked),
        ])
    });
    let widths = [
        Constraint::Length(4),
        Constraint::Min(12),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(9),
    ];
    let header = Row::new(["#", "Name", "Size", "Seeds", "From", "By", "Checked"]).style(heading());
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let selected = (!f.typing).then_some(f.selected);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, results, &mut state);
}

/// The help as lines of at most `width` cells (at most [`HELP_ROWS`] of them), never splitting
/// a key from its label.
fn help_lines(keys: &[(&'static str, &'static str)], width: usize) -> Vec<Line<'static>> {
    let key = Style::new().add_modifier(Modifier::BOLD);
    let label = Style::new().fg(Color::DarkGray);
    let mut lines: Vec<Line<'static>> = vec![Line::default()];
    for (k, l) in keys {
        let text = format!(" {l}");
        let needed = k.chars().count() + text.chars().count();
        let Some(line) = lines.last_mut() else { break };
        let used = line.width();
        if used > 0 && used + 2 + needed > width {
            if lines.len() == HELP_ROWS {
                break;
            }
            lines.push(Line::default());
        }
        let Some(line) = lines.last_mut() else { break };
        if line.width() > 0 {
            line.push_span(Span::raw("  "));
        }
        line.push_span(Span::styled(*k, key));
        line.push_span(Span::styled(text, label));
    }
    lines
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let down: u64 = app.torrents.iter().map(|t| t.download_rate).sum();
    let up: u64 = app.torrents.iter().map(|t| t.upload_rate).sum();
    let count = app.torrents.len();
    let plural = if count == 1 { "" } else { "s" };
    let counted = if app.filter.is_active() {
        format!("{} of {count} torrent{plural}  ", app.shown())
    } else {
        format!("{count} torrent{plural}  ")
    };
    let line = Line::from(vec![
        Span::styled(" shoal ", Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)),
        Span::raw(format!(" {}  ", app.rpc)),
        Span::raw(counted),
        Span::styled(format!("↓ {}  ↑ {}", rate(down), rate(up)), Style::new().fg(Color::Cyan)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

/// The list's title: its order and its filters.
fn list_title(app: &App) -> String {
    let mut title = format!(" Torrents · sorted by {} {} ", app.sort.key.title(), app.sort.arrow());
    let f = &app.filter;
    if f.is_active() {
        let mut parts = Vec::new();
        if !f.text.is_empty() {
            parts.push(format!("name {:?}", f.text));
        }
        if f.state != super::arrange::StateFilter::All {
            parts.push(format!("state {}", f.state.title()));
        }
        if let Some(label) = &f.label {
            parts.push(format!("label {label:?}"));
        }
        title.push_str(&format!("· filter: {} ", parts.join(", ")));
    }
    title
}

fn draw_list(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::bordered().title(list_title(app));
    if app.shown() == 0 {
        let text = if !app.loaded {
            format!("Connecting to {} …", app.rpc)
        } else if app.torrents.is_empty() {
            "No torrents yet: press a to add a magnet link, an http(s) URL or a .torrent file.".to_owned()
        } else {
            format!("No torrent matches the filter ({} hidden): esc clears it.", app.torrents.len())
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let rows = app.visible().map(|t| {
        let mut name = vec![Span::raw(t.name.as_str())];
        if let Some(group) = &t.group {
            name.push(Span::styled(format!("  (group {group})"), Style::new().fg(Color::Cyan)));
        }
        if !t.labels.is_empty() {
            name.push(Span::styled(format!("  [{}]", t.labels.join(", ")), Style::new().fg(Color::Magenta)));
        }
        Row::new(vec![
            Cell::from(t.id.to_string()),
            Cell::from(Line::from(name)),
            Cell::from(Span::styled(state_name(t.state), state_style(t.state))),
            Cell::from(progress(t.progress)),
            Cell::from(HumanBytes(t.wanted_bytes).to_string()),
            Cell::from(rate(t.download_rate)),
            Cell::from(rate(t.upload_rate)),
            Cell::from(t.peers.to_string()),
        ])
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(BAR_WIDTH as u16 + 7),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Length(5),
    ];
    let columns = [
        ("ID", Some(SortKey::Added)),
        ("Name", Some(SortKey::Name)),
        ("State", Some(SortKey::State)),
        ("Progress", Some(SortKey::Progress)),
        ("Size", Some(SortKey::Size)),
        ("Down", Some(SortKey::Down)),
        ("Up", Some(SortKey::Up)),
        ("Peers", None),
    ];
    let header = Row::new(columns.map(|(title, key)| {
        if key == Some(app.sort.key) { format!("{title}{}", app.sort.arrow()) } else { title.to_owned() }
    }))
    .style(heading());
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, listed: &TorrentInfo, at: DetailAt) {
    let DetailAt { tab, row, .. } = at;
    let detail = app.shown_detail();
    // The list's snapshot is newer for rates, state and settings; the detail's has files and
    // trackers.
    let t = listed;
    // One more line for a torrent kept for those who pushed it.
    let high = if t.pushed_by.is_empty() { 7 } else { 8 };
    let [summary, tabs, table] =
        Layout::vertical([Constraint::Length(high), Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let mut lines = vec![
        Line::from(vec![
            Span::raw("State: "),
            Span::styled(state_name(t.state), state_style(t.state)),
            Span::raw(format!(
                "   Progress: {:.1}% of {}   Down: {}   Up: {}   Peers: {}",
                t.progress * 100.0,
                HumanBytes(t.wanted_bytes),
                rate(t.download_rate),
                rate(t.upload_rate),
                t.peers
            )),
        ]),
        Line::raw(format!("Hash: {}   Folder: {}", t.info_hash, t.download_dir)),
    ];
    match &t.error {
        Some(e) => lines.push(Line::styled(format!("Error: {e}"), Style::new().fg(Color::Red))),
        None => lines.push(Line::raw(format!(
            "Downloaded: {}   Uploaded: {}   ETA: {}",
            HumanBytes(t.downloaded),
            HumanBytes(t.uploaded),
            t.eta.map_or_else(|| "-".to_owned(), duration)
        ))),
    }
    lines.push(Line::raw(format!(
        "Limits: up {}, down {}, connections {}   Seed goal: ratio {}, time {}, idle {}",
        limit_text(t.upload_limit),
        limit_text(t.download_limit),
        t.max_connections.map_or_else(|| "daemon's".to_owned(), |n| n.to_string()),
        goal_shown(t.seed_ratio_limit, |r| r.to_string()),
        goal_shown(t.seed_time_limit, duration),
        goal_shown(t.seed_idle_limit, duration),
    )));
    lines.push(Line::raw(format!(
        "Labels: {}   Pieces: {}   Shared with: {}",
        if t.labels.is_empty() { "-".to_owned() } else { t.labels.join(", ") },
        if t.sequential { "in order" } else { "rarest first" },
        t.group.as_ref().map_or_else(|| "anyone (public)".to_owned(), |g| format!("members of group {g} only")),
    )));
    if !t.pushed_by.is_empty() {
        lines.push(Line::styled(
            format!("Pushed here by: {} (kept for them until withdrawn)", t.pushed_by.join(", ")),
            Style::new().fg(Color::Yellow),
        ));
    }
    let title = format!(" #{} {} ", t.id, t.name);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), summary);
    let titles = Tab::ALL.iter().map(|t| format!(" {} ", t.title()));
    let tab_bar = Tabs::new(titles)
        .select(tab.index())
        .highlight_style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
        .divider("│");
    frame.render_widget(tab_bar, tabs);

    let block = Block::bordered().title(format!(" {} ", tab.title()));
    let Some(detail) = detail else {
        frame.render_widget(Paragraph::new("loading …").block(block), table);
        return;
    };
    let (header, widths, rows): (Row, Vec<Constraint>, Vec<Row>) = match tab {
        Tab::Files => (
            Row::new(["Path", "Size", "Done", "Priority"]),
            vec![Constraint::Min(20), Constraint::Length(11), Constraint::Length(7), Constraint::Length(8)],
            detail
                .info
                .files
                .iter()
                .map(|f| {
                    let done = if f.length == 0 { 1.0 } else { f.have as f64 / f.length as f64 };
                    Row::new(vec![
                        f.path.clone(),
                        HumanBytes(f.length).to_string(),
                        format!("{:.1}%", done * 100.0),
                        priority_name(f.priority).to_owned(),
                    ])
                })
                .collect(),
        ),
        Tab::Peers => (
            Row::new(["Address", "Client", "Down", "Up", "Progress", "Flags"]),
            vec![
                Constraint::Length(22),
                Constraint::Min(12),
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Length(8),
                Constraint::Length(8),
            ],
            detail
                .peers
                .iter()
                .map(|p| {
                    let mut flags = String::from(if p.incoming { "in" } else { "out" });
                    if p.encrypted {
                        flags.push_str(" enc");
                    }
                    Row::new(vec![
                        p.address.to_string(),
                        if p.client.is_empty() { "?".to_owned() } else { p.client.clone() },
                        rate(p.download_rate),
                        rate(p.upload_rate),
                        format!("{:.1}%", p.progress * 100.0),
                        flags,
                    ])
                })
                .collect(),
        ),
        Tab::Trackers => (
            Row::new(["URL", "Tier", "Last error"]),
            vec![Constraint::Min(20), Constraint::Length(4), Constraint::Min(10)],
            detail
                .info
                .trackers
                .iter()
                .map(|tr| {
                    let status = match (&tr.last_error, tr.last_announce) {
                        (Some(e), _) => e.clone(),
                        (None, Some(_)) => "ok".to_owned(),
                        (None, None) => "-".to_owned(),
                    };
                    Row::new(vec![tr.url.clone(), tr.tier.to_string(), status])
                })
                .collect(),
        ),
    };
    if rows.is_empty() {
        let empty = match tab {
            Tab::Files => "no files known yet (the metadata is still being fetched)",
            Tab::Peers => "no peers connected",
            Tab::Trackers => "no trackers",
        };
        frame.render_widget(Paragraph::new(empty).block(block), table);
        return;
    }
    let widget = Table::new(rows, widths)
        .header(header.style(heading()))
        .block(block)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(row));
    frame.render_stateful_widget(widget, table, &mut state);
}

/// A box of `height` rows in the middle of `area`.
fn popup(area: Rect, height: u16) -> Rect {
    area.centered(Constraint::Length(area.width.saturating_sub(4).min(76)), Constraint::Length(height))
}

/// A one-line text prompt titled `title` under the line `hint`.
fn draw_prompt(frame: &mut Frame, area: Rect, title: &str, hint: &str, buffer: &str) {
    let rect = popup(area, 4);
    let inner_width = usize::from(rect.width.saturating_sub(4));
    // Show the end of a text longer than the box.
    let chars: Vec<char> = buffer.chars().collect();
    let shown: String = chars[chars.len().saturating_sub(inner_width)..].iter().collect();
    let lines = vec![Line::styled(hint.to_owned(), Style::new().fg(Color::DarkGray)), Line::raw(format!("> {shown}"))];
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title.to_owned())), rect);
    let x = rect.x.saturating_add(3).saturating_add(shown.chars().count() as u16);
    frame.set_cursor_position(Position::new(x.min(rect.right().saturating_sub(2)), rect.y + 2));
}

fn draw_confirm(frame: &mut Frame, area: Rect, what: &str, delete_data: bool) {
    let rect = popup(area, 5);
    let mark = if delete_data { "[x]" } else { "[ ]" };
    let lines = vec![
        Line::raw(format!("Remove {what}?")),
        Line::raw(format!("{mark} also delete its downloaded files (space)")),
        Line::styled("y yes   n no", Style::new().add_modifier(Modifier::BOLD)),
    ];
    frame.render_widget(Clear, rect);
    let block = Block::bordered().title(" Remove ").border_style(Style::new().fg(Color::Red));
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn heading() -> Style {
    Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}

fn state_name(state: TorrentState) -> &'static str {
    match state {
        TorrentState::Downloading => "downloading",
        TorrentState::Seeding => "seeding",
        TorrentState::Paused => "paused",
        TorrentState::Checking => "checking",
        TorrentState::Error => "error",
        TorrentState::Queued => "queued",
        TorrentState::Metadata => "metadata",
        TorrentState::Moving => "moving",
    }
}

fn state_style(state: TorrentState) -> Style {
    let color = match state {
        TorrentState::Downloading | TorrentState::Metadata => Color::Cyan,
        TorrentState::Seeding => Color::Green,
        TorrentState::Paused => Color::DarkGray,
        TorrentState::Checking | TorrentState::Queued | TorrentState::Moving => Color::Yellow,
        TorrentState::Error => Color::Red,
    };
    Style::new().fg(color)
}

/// A bar of [`BAR_WIDTH`] cells and the percentage: `██████░░░░  60.0%`.
fn progress(fraction: f64) -> String {
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    format!("{}{} {:>5.1}%", "█".repeat(filled), "░".repeat(BAR_WIDTH - filled), fraction * 100.0)
}

fn rate(bytes_per_second: u64) -> String {
    if bytes_per_second == 0 { "-".to_owned() } else { format!("{}/s", HumanBytes(bytes_per_second)) }
}

/// Seconds as `1h02m`, `3m05s` or `42s`.
pub(crate) fn duration(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::{app, key, torrent};
    use crate::tui::app::{Detail, Outcome, Status};
    use crossterm::event::KeyCode;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use shoal_rpc::api::{Goal, PeerInfo, TorrentId};

    /// The screen `app` draws on a `width` x `height` terminal, one string per row.
    fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        terminal.draw(|f| draw(f, app)).expect("draws");
        let buffer = terminal.backend().buffer();
        buffer.content().chunks(usize::from(width)).map(|row| row.iter().map(|c| c.symbol()).collect()).collect()
    }

    fn row<'a>(screen: &'a [String], needle: &str) -> &'a str {
        screen.iter().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{}", screen.join("\n")))
    }

    #[test]
    fn the_list_shows_each_torrent_with_state_progress_and_the_keys() {
        let mut app = app();
        app.torrents[1].download_rate = 3 << 20;
        app.torrents[1].peers = 7;
        let s = screen(&app, 120, 12);
        let alpha = row(&s, "alpha.iso");
        assert!(alpha.contains("seeding") && alpha.contains("100.0%") && alpha.contains("> "), "{alpha}");
        let beta = row(&s, "beta.mkv");
        assert!(beta.contains("downloading") && beta.contains("42.0%") && beta.contains("3.00 MiB/s"), "{beta}");
        assert!(beta.trim_end().trim_end_matches('│').trim_end().ends_with('7'), "peers: {beta}");
        assert!(row(&s, "gamma.zip").contains("paused"));
        assert!(row(&s, "Progress").contains("Peers"), "column headings");
        assert!(s[0].contains("3 torrents") && s[0].contains("127.0.0.1:9091"), "{}", s[0]);
        let help = s.last().expect("rows");
        assert!(
            help.contains(
                "↑↓ select  enter details  / filter  f state  s sort  S reverse  a add  F search  p pause  r resume  d remove  q quit"
            ),
            "{help}"
        );
        assert!(s[s.len() - 2].trim().is_empty(), "one help line is enough: {s:#?}");
    }

    #[test]
    fn empty_and_unreachable_states_say_what_to_do() {
        let mut app = App::new("http://127.0.0.1:1/jsonrpc");
        app.apply(Outcome::Listed(Err("cannot reach the daemon at http://127.0.0.1:1/jsonrpc".into())));
        let s = screen(&app, 100, 10);
        assert!(row(&s, "Connecting to").contains("127.0.0.1:1"));
        assert!(row(&s, "cannot reach the daemon").contains("retrying"));
        app.apply(Outcome::Listed(Ok(Vec::new())));
        let s = screen(&app, 100, 10);
        assert!(s.iter().any(|l| l.contains("No torrents yet: press a")), "{s:#?}");
        assert!(!s.iter().any(|l| l.contains("cannot reach")));
    }

    #[test]
    fn the_detail_view_has_files_peers_and_trackers_tabs() {
        let mut app = app();
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Enter));
        let s = screen(&app, 100, 20);
        assert!(row(&s, "#2 beta.mkv").contains("#2"));
        let tabs = row(&s, "Files");
        assert!(tabs.contains("Peers") && tabs.contains("Trackers"), "{tabs}");
        assert!(row(&s, "loading").contains("loading"), "no detail yet");
        assert!(row(&s, "tab files/peers/trackers").contains("space priority"));
        assert!(row(&s, "R/T seed ratio/time").contains("esc back"), "the keys take two lines of 100 cells");

        let mut info = torrent(2, "beta.mkv", TorrentState::Downloading, 0.42);
        info.trackers[0].last_error = Some("connection refused".into());
        let peer = PeerInfo {
            address: "10.0.0.9:6881".parse().expect("address"),
            client: "libtorrent 2.1.1".into(),
            progress: 0.5,
            download_rate: 1024,
            upload_rate: 0,
            incoming: true,
            encrypted: false,
            am_choking: false,
            am_interested: true,
            peer_choking: false,
            peer_interested: false,
        };
        app.apply(Outcome::Detail(TorrentId(2), Ok(Box::new(Detail { info, peers: vec![peer] }))));
        let s = screen(&app, 100, 20);
        let file = row(&s, "beta.mkv   ");
        assert!(file.contains("1.00 MiB") && file.contains("42.0%") && file.contains("normal"), "{file}");
        assert!(row(&s, "State:").contains("downloading") && row(&s, "State:").contains("42.0%"));

        app.on_key(key(KeyCode::Tab));
        let s = screen(&app, 100, 20);
        let peer = row(&s, "10.0.0.9:6881");
        assert!(peer.contains("libtorrent 2.1.1") && peer.contains("1.00 KiB/s") && peer.contains("50.0%"), "{peer}");
        assert!(row(&s, "Address").contains("Client"));

        app.on_key(key(KeyCode::Tab));
        let s = screen(&app, 100, 20);
        let tracker = row(&s, "http://tracker.example/announce");
        assert!(tracker.contains("connection refused"), "{tracker}");
    }

    #[test]
    fn prompts_and_questions_are_drawn_over_the_list() {
        let mut app = app();
        app.on_key(key(KeyCode::Char('a')));
        app.on_paste("/tmp/some.torrent");
        let s = screen(&app, 100, 16);
        assert!(row(&s, "Add a torrent").contains("Add a torrent"));
        assert!(row(&s, "> /tmp/some.torrent").contains('>'));
        assert!(s.last().is_some_and(|l| l.contains("enter add") && l.contains("esc cancel")));

        app.on_key(key(KeyCode::Esc));
        app.on_key(key(KeyCode::Char('d')));
        app.on_key(key(KeyCode::Char(' ')));
        let s = screen(&app, 100, 16);
        assert!(row(&s, "Remove #1 alpha.iso?").contains('?'));
        assert!(row(&s, "[x] also delete").contains("[x]"));

        app.on_key(key(KeyCode::Char('n')));
        app.status = Some(Status { text: "torrent.pause: no torrent 9".into(), kind: StatusKind::Error });
        let s = screen(&app, 100, 16);
        assert!(row(&s, "torrent.pause: no torrent 9").starts_with("torrent.pause"), "{s:#?}");
    }

    #[test]
    fn the_search_view_shows_the_words_then_each_result_with_its_source_and_check() {
        use crate::tui::app::{Command, Outcome};
        let mut app = app();
        app.on_key(key(KeyCode::Char('F')));
        app.on_paste("lecture");
        let s = screen(&app, 100, 16);
        assert!(row(&s, "find: lecture").contains("find: lecture"));
        assert!(row(&s, "Type words").contains("press enter"));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Some(Command::Search("lecture".into())));
        assert!(row(&screen(&app, 100, 16), "Searching").contains("Searching"));
        let hit = |name: &str, source: &str, verified: bool| shoal_rpc::api::SearchHit {
            name: name.into(),
            size: 2 * 1024 * 1024,
            info_hash: name.chars().next().unwrap_or('a').to_string().repeat(40),
            magnet: String::new(),
            peers: Vec::new(),
            publisher: Some("ABCDEFGHIJKLMNOP".into()),
            source: source.into(),
            verified,
            seeders: Some(3),
            trusted: false,
            id: None,
            group_only: false,
        };
        app.apply(Outcome::Found("lecture".into(), false, Ok(vec![hit("lecture one", "index", true)])));
        let s = screen(&app, 100, 16);
        assert!(row(&s, "Search ·").contains("asking the neighbours"), "{s:#?}");
        let found = vec![hit("lecture one", "index", true), hit("another lecture", "peers", false)];
        app.apply(Outcome::Found("lecture".into(), true, Ok(found)));
        let s = screen(&app, 100, 16);
        assert!(!row(&s, "Search ·").contains("asking"), "{s:#?}");
        let one = row(&s, "lecture one");
        assert!(
            one.contains("2.00 MiB") && one.contains("index") && one.contains("ABCDEFG") && one.contains("verified")
        );
        let other = row(&s, "another lecture");
        assert!(other.contains("peers") && other.contains("not yet"), "{other}");
        assert!(s.last().is_some_and(|l| l.contains("enter add")), "{s:#?}");
        app.on_key(key(KeyCode::Esc));
        assert!(row(&screen(&app, 100, 16), "F search").contains("F search"));
    }

    #[test]
    fn a_tiny_terminal_does_not_panic() {
        let mut app = app();
        for (w, h) in [(1, 1), (10, 3), (30, 6)] {
            screen(&app, w, h);
        }
        app.on_key(key(KeyCode::Enter));
        app.detail = Some(Detail { info: torrent(1, "alpha.iso", TorrentState::Seeding, 1.0), peers: Vec::new() });
        app.on_key(key(KeyCode::Char('d')));
        for (w, h) in [(1, 1), (10, 3), (30, 6)] {
            screen(&app, w, h);
        }
        app.view = View::Input { kind: crate::tui::app::InputKind::AddMagnetOrPath, buffer: "x".repeat(500) };
        for (w, h) in [(1, 1), (10, 3), (30, 6), (100, 20)] {
            screen(&app, w, h);
        }
    }

    #[test]
    fn helpers_format_progress_rates_and_times() {
        assert_eq!(progress(0.6), "██████░░░░  60.0%");
        assert_eq!(progress(1.5), "██████████ 100.0%");
        assert_eq!(rate(0), "-");
        assert_eq!(rate(2048), "2.00 KiB/s");
        assert_eq!(duration(3725), "1h02m");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(9), "9s");
    }

    #[test]
    fn the_detail_view_shows_limits_goals_and_labels_and_prompts_for_them() {
        let mut app = app();
        let t = &mut app.torrents[0];
        t.upload_limit = Some(1 << 20);
        t.max_connections = Some(40);
        t.seed_ratio_limit = Goal::Limit(2.0);
        t.seed_time_limit = Goal::Unlimited;
        t.labels = vec!["linux".into(), "iso".into()];
        app.apply(Outcome::Listed(Ok(app.torrents.clone())));
        let s = screen(&app, 120, 24);
        assert!(row(&s, "alpha.iso").contains("alpha.iso  [linux, iso]"), "labels in the list");
        app.on_key(key(KeyCode::Enter));
        let s = screen(&app, 120, 24);
        let limits = row(&s, "Limits:");
        for shown in ["up 1.00 MiB/s", "down none", "connections 40", "ratio 2,", "time none", "idle daemon's"] {
            assert!(limits.contains(shown), "{shown:?} in {limits}");
        }
        assert!(row(&s, "Labels:").contains("Labels: linux, iso   Pieces: rarest first"));
        assert!(!s.iter().any(|l| l.contains("Pushed here by")), "a torrent nobody pushed shows a pusher");
        app.torrents[0].pushed_by = vec!["AAAAAAA-BBBBBBB".into()];
        let s = screen(&app, 120, 24);
        assert!(row(&s, "Pushed here by").contains("Pushed here by: AAAAAAA-BBBBBBB (kept for them"), "the pusher");
        assert!(row(&s, "Labels:").contains("Labels: linux, iso"), "the pusher's line hides another");
        app.torrents[0].pushed_by.clear();
        app.on_key(key(KeyCode::Char('U')));
        let s = screen(&app, 120, 24);
        assert!(row(&s, "Upload limit of #1 alpha.iso").contains("Upload limit"));
        assert!(row(&s, "empty or none removes the limit").contains("500k"));
        assert!(row(&s, "> 1M").contains("> 1M"), "starts with the limit in force");
        assert!(s.last().is_some_and(|l| l.contains("enter set") && l.contains("esc cancel")));
        app.on_key(key(KeyCode::Esc));
        app.detail = Some(Detail { info: app.torrents[0].clone(), peers: Vec::new() });
        let s = screen(&app, 120, 24);
        assert!(row(&s, "alpha.iso   ").contains("normal"), "the file's priority");
    }

    #[test]
    fn the_title_and_header_show_the_order_and_the_filter() {
        let mut app = app();
        let s = screen(&app, 120, 12);
        assert!(row(&s, "Torrents · sorted by added ▲").contains("┌"), "{s:#?}");
        assert!(row(&s, "ID▲").contains("Name "), "the sorted column");
        app.on_key(key(KeyCode::Char('s')));
        app.on_key(key(KeyCode::Char('S')));
        let s = screen(&app, 120, 12);
        assert!(row(&s, "Torrents · sorted by name ▼").contains("┌"));
        assert!(row(&s, "Name▼").contains("ID "), "{s:#?}");
        let order: Vec<usize> =
            ["gamma", "beta", "alpha"].iter().map(|n| s.iter().position(|l| l.contains(n)).unwrap_or(0)).collect();
        assert!(order[0] < order[1] && order[1] < order[2], "Z to A: {s:#?}");

        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('B')));
        app.on_key(key(KeyCode::Char('e')));
        let s = screen(&app, 120, 12);
        assert!(s[0].contains("1 of 3 torrents"), "{}", s[0]);
        assert!(row(&s, "filter: Be").starts_with("filter: Be"), "typed on the status line");
        assert!(row(&s, "Torrents · sorted by name ▼ · filter: name \"Be\"").contains("┌"), "{s:#?}");
        assert!(s.iter().any(|l| l.contains("beta.mkv")) && !s.iter().any(|l| l.contains("alpha.iso")));
        assert!(s.last().is_some_and(|l| l.contains("enter keep filter") && l.contains("esc clear filter")));

        app.on_key(key(KeyCode::Enter));
        app.on_key(key(KeyCode::Char('f')));
        let s = screen(&app, 120, 12);
        assert!(s[0].contains("0 of 3 torrents"), "{}", s[0]);
        assert!(row(&s, "filter: name \"Be\", state active").contains("┌"), "{s:#?}");
        assert!(row(&s, "No torrent matches the filter (3 hidden): esc clears it.").contains('│'));
        assert!(s.iter().any(|l| l.contains("esc clear filter")), "the help says how to clear it");
        app.on_key(key(KeyCode::Esc));
        let s = screen(&app, 120, 12);
        assert!(s[0].contains(" 3 torrents") && !s[0].contains(" of "), "{}", s[0]);
        assert!(!row(&s, "Torrents · sorted by").contains("filter"));
    }
}
