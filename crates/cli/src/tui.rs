//! `shoal tui`: a terminal UI on a running `shoal daemon`, over the same JSON-RPC the remote
//! commands use.
//!
//! - [`app`]: the state machine (torrents, selection, view, status line); keys in, commands out.
//! - [`arrange`]: the list's sort orders and filters.
//! - [`change`]: a torrent's settings as the detail view edits them and `torrent.set` sends them.
//! - [`draw`]: renders that state with ratatui; pure, tested on ratatui's `TestBackend`.
//! - this module: the async driver. It owns the terminal (raw mode and the alternate screen,
//!   restored on exit, on error and on panic), reads keys on a thread of its own, and runs
//!   every RPC as a task of its own so a slow daemon never freezes the keyboard.
//!
//! Message flow: a key goes to [`App::on_key`]; the [`Command`] it returns becomes an RPC task
//! whose [`Outcome`] comes back over a channel to [`App::apply`]; the screen is redrawn after
//! every key, answer and tick. Every second (and right after an action) the driver fetches
//! `torrent.list`, plus `torrent.get` and `torrent.peers` while a detail view is open. When
//! the daemon cannot be reached the status line says so and the next tick tries again.

mod app;
mod arrange;
mod change;
mod draw;
mod find;

use std::io::{IsTerminal, Stdout};
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use anyhow::{Context, anyhow};
use base64::Engine;
use crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use serde_json::{Value, json};
use shoal_rpc::api::{AddResult, TorrentId, TorrentInfo};
use tokio::sync::mpsc;

use self::app::{App, Command, Detail, Outcome};
use crate::Failure;
use crate::args::RemoteArgs;
use crate::remote::{Remote, call};

/// How often the torrent list is fetched.
const REFRESH: Duration = Duration::from_secs(1);
/// Longest wait for one answer of the daemon before the status line says it is not answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the key reader looks whether the UI has quit.
const KEY_POLL: Duration = Duration::from_millis(100);

/// What an RPC task hands back to the driver.
enum Answer {
    /// The periodic refresh finished (the list, then the open detail view).
    Refreshed(Vec<Outcome>),
    /// An action (add, pause, resume, remove, set) finished; the list is fetched again at once.
    Acted(Outcome),
    /// The detail view's data arrived.
    Loaded(Outcome),
}

/// Runs the terminal UI until the user quits.
pub(crate) async fn run(remote: RemoteArgs) -> Result<(), Failure> {
    // Resolved before the screen is taken, so a bad address or config file is a plain message.
    let remote = Arc::new(Remote::resolve(&remote)?);
    if !std::io::stdout().is_terminal() {
        return Err(Failure::Input(anyhow!(
            "`shoal tui` needs a terminal; in scripts use `shoal list` and the other remote commands"
        )));
    }
    let mut screen = Screen::enter().context("cannot set up the terminal")?;
    let (key_tx, mut keys) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("tui-keys".into())
        .spawn(move || read_events(key_tx))
        .context("cannot start the key reader")?;
    let (answer_tx, mut answers) = mpsc::channel(64);
    let mut app = App::new(remote.url().to_string());
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refreshing = false;
    loop {
        screen.terminal.draw(|frame| draw::draw(frame, &app)).context("cannot draw on the terminal")?;
        tokio::select! {
            event = keys.recv() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => return Err(anyhow!("cannot read the keyboard: {e}").into()),
                    None => return Err(anyhow!("cannot read the keyboard").into()),
                };
                match event {
                    Event::Key(key) => match app.on_key(key) {
                        Some(Command::Quit) => break,
                        Some(Command::Refresh) => tick.reset_immediately(),
                        Some(Command::Search(words)) => {
                            let (remote, tx) = (remote.clone(), answer_tx.clone());
                            tokio::spawn(async move {
                                // This node's index and index servers first, then everywhere.
                                for peers in [false, true] {
                                    let params = json!({"q": words, "limit": 50, "peers": peers});
                                    let found = rpc(&remote, "search.query", params).await.and_then(|v| {
                                        serde_json::from_value(v).map_err(|e| format!("the daemon's answer: {e}"))
                                    });
                                    let failed = found.is_err();
                                    let _ = tx.send(Answer::Loaded(Outcome::Found(words.clone(), peers, found))).await;
                                    if failed {
                                        break;
                                    }
                                }
                            });
                        }
                        Some(Command::LoadDetail(id)) => {
                            let (remote, tx) = (remote.clone(), answer_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(Answer::Loaded(Outcome::Detail(id, detail(&remote, id).await))).await;
                            });
                        }
                        Some(command) => {
                            let (remote, tx) = (remote.clone(), answer_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(Answer::Acted(act(&remote, command).await)).await;
                            });
                        }
                        None => {}
                    },
                    Event::Paste(text) => app.on_paste(&text),
                    // A resize needs only the redraw at the top of the loop.
                    _ => {}
                }
            }
            _ = tick.tick(), if !refreshing => {
                refreshing = true;
                let (remote, tx, shown) = (remote.clone(), answer_tx.clone(), app.detail_id());
                tokio::spawn(async move {
                    let _ = tx.send(Answer::Refreshed(refresh(&remote, shown).await)).await;
                });
            }
            Some(answer) = answers.recv() => match answer {
                Answer::Refreshed(outcomes) => {
                    refreshing = false;
                    outcomes.into_iter().for_each(|o| app.apply(o));
                }
                Answer::Acted(outcome) => {
                    app.apply(outcome);
                    tick.reset_immediately();
                }
                Answer::Loaded(outcome) => app.apply(outcome),
            },
        }
    }
    drop(screen);
    Ok(())
}

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        static PANIC_HOOK: Once = Once::new();
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        enable_raw_mode()?;
        let mut stdout = std::io::stdout();
        if let Err(e) = crossterm::execute!(stdout, EnterAlternateScreen, EnableBracketedPaste) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor; safe to call twice.
fn restore() {
    let _ = disable_raw_mode();
    let _ =
        crossterm::execute!(std::io::stdout(), DisableBracketedPaste, LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Reads terminal events until the UI stops listening (or reading fails), on a thread of its
/// own: crossterm's reads block.
fn read_events(tx: mpsc::Sender<std::io::Result<Event>>) {
    while !tx.is_closed() {
        match event::poll(KEY_POLL) {
            Ok(false) => {}
            Ok(true) => {
                let event = event::read();
                let failed = event.is_err();
                if tx.blocking_send(event).is_err() || failed {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// One RPC with [`CALL_TIMEOUT`]; the error is a line for the status bar.
async fn rpc(remote: &Remote, method: &str, params: Value) -> Result<Value, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call(remote, method, params)).await {
        Ok(Ok(mut value)) => {
            // Names, paths and peers' client names come from strangers: no escapes reach the terminal.
            crate::text::scrub(&mut value);
            Ok(value)
        }
        Ok(Err(Failure::Input(e) | Failure::Runtime(e) | Failure::Interrupted(e))) => {
            Err(crate::text::printable(&format!("{e:#}")).into_owned())
        }
        Err(_) => Err(format!("{method}: the daemon at {} did not answer within {CALL_TIMEOUT:?}", remote.url())),
    }
}

/// Turns a failed decoding of the daemon's answer to `method` into a status line.
fn decode<T>(method: &str, decoded: serde_json::Result<T>) -> Result<T, String> {
    decoded.map_err(|e| format!("{method}: unexpected answer from the daemon: {e}"))
}

/// `torrent.list`, then the detail view's torrent if one is open and the list answered.
async fn refresh(remote: &Remote, shown: Option<TorrentId>) -> Vec<Outcome> {
    let listed = list(remote).await;
    let ok = listed.is_ok();
    let mut outcomes = vec![Outcome::Listed(listed)];
    if let Some(id) = shown.filter(|_| ok) {
        outcomes.push(Outcome::Detail(id, detail(remote, id).await));
    }
    outcomes
}

async fn list(remote: &Remote) -> Result<Vec<TorrentInfo>, String> {
    let mut value = rpc(remote, "torrent.list", json!({})).await?;
    // The list leaves out the per-file and per-tracker lists; the detail view fetches them.
    if let Some(torrents) = value.as_array_mut() {
        for t in torrents.iter_mut().filter_map(Value::as_object_mut) {
            t.entry("files").or_insert_with(|| json!([]));
            t.entry("trackers").or_insert_with(|| json!([]));
        }
    }
    decode("torrent.list", serde_json::from_value(value))
}

async fn detail(remote: &Remote, id: TorrentId) -> Result<Box<Detail>, String> {
    let got = rpc(remote, "torrent.get", json!({"ids": [id]})).await?;
    let got: Vec<TorrentInfo> = decode("torrent.get", serde_json::from_value(got))?;
    let info = got.into_iter().next().ok_or_else(|| format!("torrent.get: no torrent {id}"))?;
    let peers = rpc(remote, "torrent.peers", json!({"id": id})).await?;
    let peers = decode("torrent.peers", serde_json::from_value(peers))?;
    Ok(Box::new(Detail { info, peers }))
}

/// Runs an action and says what happened.
async fn act(remote: &Remote, command: Command) -> Outcome {
    let result = match command {
        Command::Add(text) => add(remote, &text).await,
        Command::Pause(id) => rpc(remote, "torrent.pause", json!({"ids": [id]})).await.map(|_| format!("paused #{id}")),
        Command::Resume(id) => {
            rpc(remote, "torrent.resume", json!({"ids": [id]})).await.map(|_| format!("resumed #{id}"))
        }
        Command::Remove(id, delete_data) => {
            let params = json!({"ids": [id], "delete_data": delete_data});
            let data = if delete_data { " and deleted its files" } else { "" };
            rpc(remote, "torrent.remove", params).await.map(|_| format!("removed #{id}{data}"))
        }
        Command::Set(id, change) => match rpc(remote, "torrent.set", change.params(id)).await {
            Ok(_) => Ok(change.done(id)),
            Err(e) => Err(change.failed(id, &e)),
        },
        Command::Play(path) => {
            let url = remote.stream_url(&path);
            crate::play::open_in_player(&url).map(|player| format!("playing {path} in {player}"))
        }
        Command::Refresh | Command::LoadDetail(_) | Command::Search(_) | Command::Quit => {
            return Outcome::Done(Ok(String::new()));
        }
    };
    Outcome::Done(result)
}

/// What the add prompt's text names.
#[derive(Debug, PartialEq, Eq)]
enum AddSource {
    /// A magnet link.
    Magnet(String),
    /// An http(s) URL of a .torrent, fetched by the daemon.
    Url(String),
    /// A .torrent file on this machine.
    Path(PathBuf),
}

/// Reads the prompt's text: surrounding quotes (pasted from a file manager) are dropped and a
/// leading `~/` is the home folder.
fn add_source(text: &str) -> AddSource {
    let text = text.trim();
    let text = ['\'', '"'].iter().find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q))).unwrap_or(text);
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("magnet:") {
        AddSource::Magnet(text.to_owned())
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        AddSource::Url(text.to_owned())
    } else if let (Some(rest), Some(home)) = (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        AddSource::Path(PathBuf::from(home).join(rest))
    } else {
        AddSource::Path(PathBuf::from(text))
    }
}

async fn add(remote: &Remote, text: &str) -> Result<String, String> {
    let params = match add_source(text) {
        AddSource::Magnet(link) => json!({"magnet": link}),
        AddSource::Url(url) => json!({"url": url}),
        AddSource::Path(path) => {
            let bytes = tokio::fs::read(&path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            json!({"torrent": base64::engine::general_purpose::STANDARD.encode(bytes)})
        }
    };
    let added = rpc(remote, "torrent.add", params).await?;
    let added: AddResult = decode("torrent.add", serde_json::from_value(added))?;
    Ok(if added.duplicate {
        format!("#{} {} is already there", added.id, added.name)
    } else {
        format!("added #{} {}", added.id, added.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_add_prompt_tells_magnets_urls_and_paths_apart() {
        let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
        assert_eq!(add_source(&format!("  {magnet} ")), AddSource::Magnet(magnet.into()));
        assert_eq!(add_source("HTTPS://example.org/a.torrent"), AddSource::Url("HTTPS://example.org/a.torrent".into()));
        assert_eq!(add_source("http://x/y"), AddSource::Url("http://x/y".into()));
        assert_eq!(add_source("'/tmp/my file.torrent'"), AddSource::Path("/tmp/my file.torrent".into()));
        assert_eq!(add_source("a.torrent"), AddSource::Path("a.torrent".into()));
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(add_source("~/t/a.torrent"), AddSource::Path(PathBuf::from(home).join("t/a.torrent")));
        }
    }
}
