//! Helpers shared by the `shoal` binary's integration tests: building its command lines,
//! starting a seed with `shoal share`, reading the lines `shoal get` prints, and checking the
//! shape of its error messages.
//!
//! Every node binds 127.0.0.1 port 0 and reports the port it got, so tests never race for
//! ports. Waits are bounded ([`Proc::wait_for_line`], [`shoal_testkit::wait_until`]); the
//! bounds are generous because the machine running the tests may be busy.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use shoal_testkit::{Captured, Proc, run_captured};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// How long a seed may take to hash its data and print its `ready:` line.
pub const SEED_READY: Duration = Duration::from_secs(60);
/// How long a command that does no transfer (create, a rejected get, a get that only checks
/// local data) may take.
pub const QUICK: Duration = Duration::from_secs(30);
/// How long a loopback download may take.
pub const DOWNLOAD: Duration = Duration::from_secs(180);
/// How long a node may take to stop after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// A command running the `shoal` binary under test with `args`. `get`, `share` and `play` run without
/// a DHT node and without local peer discovery (tests never reach the public DHT routers nor
/// multicast outside a namespace of their own); see [`shoal_with_dht`].
pub fn shoal<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    with_node_flags(args, &["--no-dht", "--no-lsd"])
}

/// A command running the `shoal` binary with `args`; `get` and `share` keep their DHT node
/// (a test that runs one passes its own `--dht-bootstrap` and sets `XDG_DATA_HOME` to a folder
/// of its own) but run without local peer discovery.
pub fn shoal_with_dht<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    with_node_flags(args, &["--no-lsd"])
}

/// `shoal ARGS`, with `flags` right after the subcommand when it is `get` or `share`.
fn with_node_flags<I, S>(args: I, flags: &[&str]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args = args.into_iter();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    if let Some(first) = args.next() {
        let node = matches!(first.as_ref().to_str(), Some("get" | "share" | "play"));
        cmd.arg(first);
        if node {
            cmd.args(flags);
        }
    }
    cmd.args(args);
    cmd
}

/// A command running the `shoal` binary with `args` exactly as given: only for tests that run
/// inside a network namespace of their own.
pub fn shoal_raw<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args);
    cmd
}

/// Runs `cmd` to completion (at most `timeout`) and returns what it printed.
pub fn run(cmd: Command, timeout: Duration) -> Captured {
    run_captured(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// `shoal get TORRENT -o OUT --listen 127.0.0.1:0 --peer P... EXTRA...`.
pub fn get_cmd(torrent: &Path, out: &Path, peers: &[SocketAddr], extra: &[&str]) -> Command {
    let mut cmd = shoal(["get"]);
    cmd.arg(torrent).arg("-o").arg(out).args(["--listen", "127.0.0.1:0"]);
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    cmd.args(extra);
    cmd
}

/// Starts `shoal get` (see [`get_cmd`]) as a captured child named `name`.
pub fn spawn_get(name: &str, torrent: &Path, out: &Path, peers: &[SocketAddr], extra: &[&str]) -> Proc {
    Proc::spawn(name, get_cmd(torrent, out, peers, extra)).unwrap_or_else(|e| panic!("{e}"))
}

/// A `shoal share` node seeding one path.
pub struct Seed {
    /// The running node.
    pub proc: Proc,
    /// Where it accepts peers.
    pub addr: SocketAddr,
}

impl Seed {
    /// Runs `shoal share DATA -o TORRENT --listen 127.0.0.1:0 EXTRA...` and waits for its
    /// `ready:` line.
    pub fn start(name: &str, data: &Path, torrent: &Path, extra: &[&str]) -> Seed {
        let mut cmd = shoal(["share"]);
        cmd.arg(data).arg("-o").arg(torrent).args(["--listen", "127.0.0.1:0"]).args(extra);
        let proc = Proc::spawn(name, cmd).unwrap_or_else(|e| panic!("{e}"));
        let line = proc.wait_for_line("ready: ", SEED_READY).unwrap_or_else(|e| panic!("{e}"));
        // "ready: seeding N torrent(s) on 127.0.0.1:PORT; press Ctrl-C to stop"
        let addr = line
            .split_once(" on ")
            .and_then(|(_, rest)| rest.split(';').next())
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("{}", proc.explain(&format!("printed a ready line without an address: {line:?}")))
            });
        Seed { proc, addr }
    }

    /// Stops the node with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.terminate(STOP_GRACE).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The address in `downloading NAME (HEX) into DIR; listening on ADDR`.
pub fn listen_addr(proc: &Proc) -> SocketAddr {
    let line = proc.wait_for_line("downloading ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    line.rsplit_once("listening on ")
        .and_then(|(_, a)| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", proc.explain(&format!("no listen address in {line:?}"))))
}

/// The info-hash in `downloading NAME (HEX) into ...`.
pub fn info_hash_hex(proc: &Proc) -> String {
    let line = proc.wait_for_line("downloading ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    let hex = line.split_once(" (").and_then(|(_, rest)| rest.split_once(')')).map(|(h, _)| h.to_owned());
    match hex {
        Some(h) if h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()) => h,
        _ => panic!("{}", proc.explain(&format!("no info-hash in {line:?}"))),
    }
}

/// Parses an amount as `shoal` prints it (`0 B`, `512 B`, `1.50 KiB`, `64.00 MiB`) into bytes.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let (num, unit) = s.trim().split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * mult)
}

/// What the `complete:` line of `shoal get` says.
#[derive(Debug, Clone, Copy)]
pub struct Complete {
    /// Bytes verified (the whole torrent), as printed (two decimals).
    pub verified: f64,
    /// Bytes fetched by this run, as printed.
    pub fetched: f64,
}

/// Parses `complete: NAME, X verified (Y fetched in ...)`.
pub fn parse_complete(line: &str) -> Option<Complete> {
    let rest = line.strip_prefix("complete: ")?;
    // The name may itself contain ", " or " verified (", so cut from the right.
    let (head, tail) = rest.rsplit_once(" verified (")?;
    let verified = parse_bytes(head.rsplit_once(", ")?.1)?;
    let fetched = parse_bytes(tail.split_once(" fetched in ")?.0)?;
    Some(Complete { verified, fetched })
}

/// Waits for the `complete:` line of a `shoal get` and parses it.
pub fn complete_line(proc: &Proc, timeout: Duration) -> Complete {
    let line = proc.wait_for_line("complete: ", timeout).unwrap_or_else(|e| panic!("{e}"));
    parse_complete(&line).unwrap_or_else(|| panic!("{}", proc.explain(&format!("unparsable line {line:?}"))))
}

/// The counts in `resuming: N of M pieces already verified`, if the child printed it.
pub fn resuming(proc: &Proc) -> Option<(u32, u32)> {
    let line = proc.stdout_lines().into_iter().find(|l| l.starts_with("resuming: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["resuming:", n, "of", m, "pieces", "already", "verified"] => Some((n.parse().ok()?, m.parse().ok()?)),
        _ => panic!("unexpected resume line {line:?}"),
    }
}

/// `s` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every line the child wrote to stderr so far, without colour codes.
pub fn log_lines(proc: &Proc) -> Vec<String> {
    proc.output().lines().filter_map(|l| l.strip_prefix("stderr: ")).map(strip_ansi).collect()
}

/// Checks that a command failed the way bad input must: exit code 2, exactly one line on
/// stderr that starts with `shoal: ` and mentions every string in `mentions`, no panic, and
/// nothing on stdout. (Whether the line repeats itself is checked separately, see
/// [`repeated_clause`].)
pub fn assert_input_error(out: &Captured, mentions: &[&str]) {
    let ctx = || format!("{}\n--- stdout ---\n{}--- stderr ---\n{}--- end ---", out.command, out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked") && !out.stdout.contains("panicked"), "panic: {}", ctx());
    assert_eq!(out.status.code(), Some(2), "expected exit code 2 (bad input): {}", ctx());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr: {}", ctx());
    let line = lines[0];
    assert!(line.starts_with("shoal: "), "the message must start with `shoal: `: {}", ctx());
    for m in mentions {
        assert!(line.contains(m), "the message must mention {m:?}: {}", ctx());
    }
    assert!(out.stdout.trim().is_empty(), "nothing belongs on stdout: {}", ctx());
}

/// The first `: `-separated clause of `line` that is immediately repeated (an error's cause
/// printed twice, as in `cannot open x: No such file (os error 2): No such file (os error 2)`).
pub fn repeated_clause(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(": ").collect();
    parts.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0].to_owned())
}

/// The files and folders under `root`, relative to it and sorted (empty when it is missing).
pub fn list_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else { continue };
        for entry in entries.flatten() {
            let child = rel.join(entry.file_name());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort();
    out
}

/// One JSON-RPC call to a daemon at `127.0.0.1:port` over plain std sockets: the whole reply
/// (`result` or `error`) and how long it took; `None` while nothing listens there.
pub fn jsonrpc_call(port: u16, method: &str, params: serde_json::Value) -> Option<(serde_json::Value, Duration)> {
    use std::io::{Read, Write};
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let took = started.elapsed();
    let json = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {reply}"));
    Some((v, took))
}
