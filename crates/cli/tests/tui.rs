//! `shoal tui` in a real terminal: tmux runs it in a 120x30 window, keys go in with
//! `tmux send-keys` and the screen comes back with `tmux capture-pane -p`.
//!
//! The UI starts before the daemon and says it cannot reach it, then finds the daemon once it
//! runs; it lists a torrent added over RPC, pauses it with `p` (the daemon then says paused),
//! shows its files, sets its upload limit with `U` and a file's priority with space (both
//! read back from the daemon with `torrent.get`), adds a second torrent from a path typed into
//! the `a` prompt, sorts the list by name both ways with `s` and `S`, filters it with `/`,
//! removes the one torrent the filter shows with `d` `y`, clears the filter with Esc, resumes
//! the first torrent with `r`, and quits with `q` with exit status 0.
//!
//! Every tmux server here has a socket of its own in the test's temporary folder (`tmux -S`),
//! killed by [`Tmux`]'s `Drop`, so a failing test leaves no session behind. `./scripts/test` installs tmux when missing.

#[path = "support/shoal.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shoal_testkit::{Captured, Proc, TempDir, free_port, make_test_file, run_captured, wait_until};
use support::{MIB, QUICK, jsonrpc_call, run, shoal_raw};

/// How often the screen is read while waiting for it to change.
const POLL: Duration = Duration::from_millis(100);

/// A tmux server of its own running one session; killed when dropped.
struct Tmux {
    /// The server's socket, in the test's temporary folder.
    socket: PathBuf,
}

impl Tmux {
    /// Runs the shell `command` in a detached 120x30 session on a new tmux server whose socket
    /// is `socket`.
    fn start(socket: PathBuf, command: &str) -> Tmux {
        let tmux = Tmux { socket };
        tmux.run(&["new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", command])
            .ok()
            .unwrap_or_else(|e| panic!("cannot start tmux (./scripts/test installs it: apt-get install -y tmux): {e}"));
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        // No user configuration, and no nesting inside a tmux the tests may run in.
        cmd.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]).args(args);
        cmd.env_remove("TMUX").env("TERM", "xterm-256color");
        cmd
    }

    fn run(&self, args: &[&str]) -> Captured {
        run_captured(self.command(args), QUICK)
            .unwrap_or_else(|e| panic!("tmux {args:?} (./scripts/test installs tmux): {e}"))
    }

    /// Presses keys (tmux key names: `Enter`, `Escape`, `Down`, or single characters).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        self.run(&args).ok().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "tui", "-l", text]).ok().unwrap_or_else(|e| panic!("{e}"));
    }

    /// What the window shows now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"]).ok().unwrap_or_else(|e| panic!("{e}")).stdout
    }

    /// Waits until the screen satisfies `cond`; returns that screen or panics showing the last.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let waited = wait_until(QUICK, POLL, || {
            last = self.screen();
            cond(&last)
        });
        if let Err(e) = waited {
            panic!("waiting for {what}: {e}; the screen:\n{last}");
        }
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = run_captured(self.command(&["kill-server"]), QUICK);
    }
}

/// The screen line holding `needle`, if any.
fn line<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

/// The table row of the torrent `name` (the only lines with a name and a percentage).
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(name) && l.contains('%'))
}

/// Torrent 1 as the daemon's `torrent.get` answers (JSON-RPC, not through the UI).
fn torrent_one(port: u16) -> Value {
    let (reply, _) = jsonrpc_call(port, "torrent.get", serde_json::json!({"ids": [1]}))
        .unwrap_or_else(|| panic!("no daemon on port {port}"));
    reply["result"][0].clone()
}

/// Waits until torrent 1 satisfies `cond` in the daemon's own answer; panics showing the last.
fn wait_for_torrent_one(port: u16, what: &str, cond: impl Fn(&Value) -> bool) {
    let mut last = Value::Null;
    if let Err(e) = wait_until(QUICK, POLL, || {
        last = torrent_one(port);
        cond(&last)
    }) {
        panic!("the daemon never had {what}: {e}; torrent.get says {last:#}");
    }
}

/// True when the table row of torrent `first` is above the one of `second`.
fn above(screen: &str, first: &str, second: &str) -> bool {
    let at = |name: &str| screen.lines().position(|l| l.contains(name) && l.contains('%'));
    matches!((at(first), at(second)), (Some(a), Some(b)) if a < b)
}

/// `s` quoted for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A daemon on 127.0.0.1 with its data in `data`, no DHT and no LSD.
fn start_daemon(data: &Path, rpc_port: u16) -> Proc {
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).arg("--data-dir").arg(data);
    let proc = Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    proc
}

/// Makes a file of `len` bytes and its torrent; returns the torrent's path.
fn torrent(dir: &Path, name: &str, len: u64) -> std::path::PathBuf {
    let data = dir.join("data").join(name);
    make_test_file(&data, len, len);
    let out = dir.join(format!("{name}.torrent"));
    let mut cmd = shoal_raw(["create"]);
    cmd.arg(&data).arg("-o").arg(&out);
    let created = run(cmd, QUICK);
    assert!(created.status.success(), "{created:?}");
    out
}

/// `(name, state)` of every torrent, as the daemon's `torrent.list` says (through `shoal list --json`).
fn states(url: &str) -> Vec<(String, String)> {
    let mut cmd = shoal_raw(["list", "--json", "--rpc", url]);
    cmd.env_remove("TMUX");
    let out = run(cmd, QUICK);
    let list: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    list.as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or("?").to_owned(), t["state"].as_str().unwrap_or("?").to_owned()))
        .collect()
}

#[test]
fn tui_lists_pauses_adds_removes_and_quits_in_a_real_terminal() {
    let dir = TempDir::new().expect("temp dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/jsonrpc");
    let a = torrent(dir.path(), "a.bin", MIB + 1);
    let b = torrent(dir.path(), "b.bin", MIB / 2 + 3);
    let folder = dir.path().join("data").display().to_string();

    // Before the daemon runs: a clear message, and the UI keeps trying.
    // `timeout` and the closing `sleep` bound what a test killed before its `Drop` leaves behind
    // (`--foreground`: the UI must stay in the terminal's foreground to read keys).
    let command = format!(
        "timeout --foreground 600 {} tui --rpc {}; echo \"tui exited $?\"; sleep 120",
        quote(env!("CARGO_BIN_EXE_shoal")),
        quote(&url)
    );
    let tmux = Tmux::start(dir.path().join("tmux.sock"), &command);
    tmux.wait_for("the unreachable daemon's message", |s| {
        line(s, "cannot reach the daemon").is_some_and(|l| l.contains(&port.to_string()) && l.contains("retrying"))
    });
    assert!(line(&tmux.screen(), "q quit").is_some_and(|l| l.contains("a add") && l.contains("p pause")));

    let daemon = start_daemon(&dir.path().join("state"), port);
    let mut add = shoal_raw(["add", a.to_str().expect("path"), "-o", &folder, "--rpc", &url]);
    add.env_remove("TMUX");
    let added = run(add, QUICK);
    assert!(added.status.success(), "{added:?}");
    let screen = tmux
        .wait_for("a.bin seeding", |s| row(s, "a.bin").is_some_and(|l| l.contains("seeding") && l.contains("100.0%")));
    assert!(!screen.contains("cannot reach the daemon"), "the message went away:\n{screen}");
    assert!(line(&screen, "Progress").is_some_and(|l| l.contains("State") && l.contains("Peers")), "{screen}");

    // p pauses the selected torrent: the daemon says so, and so does the screen.
    tmux.keys(&["p"]);
    wait_until(QUICK, POLL, || states(&url) == [("a.bin".to_owned(), "paused".to_owned())])
        .unwrap_or_else(|e| panic!("the daemon never said paused: {e}; {:?}", states(&url)));
    tmux.wait_for("a.bin paused", |s| row(s, "a.bin").is_some_and(|l| l.contains("paused")));

    // enter: the detail view with its tabs and the file.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the detail view", |s| {
        s.contains("#1 a.bin")
            && line(s, "Files").is_some_and(|l| l.contains("Peers") && l.contains("Trackers"))
            && line(s, "Priority").is_some()
            && line(s, "a.bin   ").is_some_and(|l| l.contains("normal"))
            && line(s, "Limits:").is_some_and(|l| l.contains("up none"))
    });

    // U: a prompt for the upload limit; 1M is sent with torrent.set and the daemon keeps it.
    tmux.keys(&["U"]);
    tmux.wait_for("the upload limit prompt", |s| s.contains("Upload limit of #1 a.bin"));
    tmux.type_text("1M");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the status line", |s| line(s, "upload limit of #1 set to 1.00 MiB/s").is_some());
    wait_for_torrent_one(port, "an upload limit of 1 MiB/s", |t| t["upload_limit"] == 1_048_576);
    tmux.wait_for("the limit in the detail view", |s| {
        line(s, "Limits:").is_some_and(|l| l.contains("up 1.00 MiB/s") && l.contains("down none"))
    });

    // space: the selected file's priority goes from normal to high.
    tmux.keys(&["Space"]);
    tmux.wait_for("the status line", |s| line(s, "priority of file 0 of #1 set to high").is_some());
    wait_for_torrent_one(port, "file 0 at high priority", |t| t["files"][0]["priority"] == "high");
    tmux.wait_for("the file's new priority", |s| line(s, "a.bin   ").is_some_and(|l| l.contains("high")));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the list again", |s| line(s, "enter details").is_some());

    // a: a prompt; a typed path of a .torrent adds it.
    tmux.keys(&["a"]);
    tmux.wait_for("the add prompt", |s| s.contains("Add a torrent"));
    tmux.type_text(b.to_str().expect("path"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("b.bin listed", |s| line(s, "added #2 b.bin").is_some() && row(s, "b.bin").is_some());

    // s sorts by name (a.bin first), S reverses it (b.bin first); a.bin stays selected.
    tmux.keys(&["s"]);
    tmux.wait_for("sorted by name", |s| {
        line(s, "sorted by name ▲").is_some() && line(s, "Name▲").is_some() && above(s, "a.bin", "b.bin")
    });
    tmux.keys(&["S"]);
    let screen = tmux
        .wait_for("sorted by name, Z to A", |s| line(s, "sorted by name ▼").is_some() && above(s, "b.bin", "a.bin"));
    assert!(row(&screen, "a.bin").is_some_and(|l| l.contains("> 1")), "the selection stays on a.bin:\n{screen}");

    // /: a filter by name, applied as it is typed; Enter keeps it.
    tmux.keys(&["/"]);
    tmux.type_text("B.B");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("only b.bin", |s| {
        row(s, "b.bin").is_some() && row(s, "a.bin").is_none() && line(s, "1 of 2 torrents").is_some()
    });
    assert!(line(&screen, "filter: name \"B.B\"").is_some(), "the title shows the filter:\n{screen}");

    // d removes the one torrent shown (asking first), not the selected a.bin hidden by the filter.
    tmux.keys(&["d"]);
    tmux.wait_for("the remove question", |s| s.contains("Remove #2 b.bin?"));
    tmux.keys(&["y"]);
    tmux.wait_for("b.bin gone", |s| {
        line(s, "removed #2").is_some() && row(s, "b.bin").is_none() && line(s, "No torrent matches").is_some()
    });
    assert_eq!(states(&url), [("a.bin".to_owned(), "paused".to_owned())]);

    // Esc clears the filter: a.bin is back.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the whole list", |s| row(s, "a.bin").is_some() && line(s, " 1 torrent ").is_some());

    // r resumes a.bin.
    tmux.keys(&["r"]);
    tmux.wait_for("a.bin seeding again", |s| row(s, "a.bin").is_some_and(|l| l.contains("seeding")));
    assert_eq!(states(&url), [("a.bin".to_owned(), "seeding".to_owned())]);

    // q leaves the UI with exit status 0, the terminal back to normal.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the UI to exit", |s| s.contains("tui exited"));
    assert!(screen.contains("tui exited 0"), "{screen}");
    drop(daemon);
}

#[test]
fn tui_without_a_terminal_is_bad_usage() {
    let mut cmd = shoal_raw(["tui", "--rpc", "http://127.0.0.1:9/jsonrpc"]);
    cmd.stdin(std::process::Stdio::null());
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.starts_with("shoal: ") && out.stderr.contains("needs a terminal"), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing drawn: {out:?}");
}
