//! Helpers shared by the interop test files (`interop_libtorrent.rs`, `interop_transmission.rs`):
//! running the `shoal` binary and reading the lines it prints.
//!
//! Each test file includes this module with `#[path]`, so it lives in a subfolder that Cargo does
//! not take for a test target of its own. Not every test file uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_proto::magnet::Magnet;
use shoal_testkit::{Proc, run_captured};

/// How long a process may take to start and print its first useful line (a seed hashes its
/// data first).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one whole transfer may take.
pub(crate) const TRANSFER_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a process may take to stop after SIGTERM.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(15);
/// Address every Shoal node listens on: loopback, a port the operating system picks.
pub(crate) const LISTEN_ANY: &str = "127.0.0.1:0";
/// Shoal's own discovery stays off in these tests: peers are given by address or found
/// through the test's tracker, never through the public DHT or LAN multicast.
pub(crate) const NO_DISCOVERY: [&str; 2] = ["--no-dht", "--no-lsd"];

/// Unwraps a testkit result, panicking with its message as is (its lines stay readable,
/// unlike `expect`, which would quote them).
pub(crate) fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A command running the `shoal` binary with info logs (shown when a test fails).
pub(crate) fn shoal<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("-v").args(args).env("NO_COLOR", "1").env_remove("SHOAL_LOG");
    cmd
}

/// The text of `line` after `marker` and before `end` (or the end of the line).
fn between<'a>(line: &'a str, marker: &str, end: &str) -> Option<&'a str> {
    let rest = &line[line.find(marker)? + marker.len()..];
    Some(rest.find(end).map_or(rest, |i| &rest[..i]))
}

/// Checks that `hex` looks like a v1 info-hash as clients print it.
fn check_hex(hex: &str, line: &str) -> String {
    assert!(
        hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "expected a 40-digit hex info-hash in {line:?}, found {hex:?}"
    );
    hex.to_ascii_lowercase()
}

/// Runs `shoal create PATH -o OUT EXTRA...` and returns the info-hash from its
/// `created OUT: ..., info-hash HEX` line.
pub(crate) fn shoal_create(path: &Path, out: &Path, extra: &[&str]) -> String {
    let mut cmd = shoal(["create"]);
    cmd.arg(path).arg("-o").arg(out).args(extra);
    let done = ok(ok(run_captured(cmd, START_TIMEOUT)).ok());
    let line = done.stdout.lines().find(|l| l.starts_with("created ")).unwrap_or_else(|| {
        panic!("shoal create printed no `created` line:\n{}\nstderr:\n{}", done.stdout, done.stderr)
    });
    let hex = between(line, "info-hash ", " ").unwrap_or_else(|| panic!("no info-hash in {line:?}"));
    check_hex(hex.trim(), line)
}

/// A running `shoal share`, ready to serve.
pub(crate) struct Share {
    /// The process; dropping it kills it.
    pub(crate) proc: Proc,
    /// Where it accepts peers (from its `ready:` line).
    pub(crate) addr: SocketAddr,
    /// The .torrent file it wrote.
    pub(crate) torrent: PathBuf,
    /// The info-hash from its magnet link, lowercase hex.
    pub(crate) info_hash: String,
}

/// Starts `shoal share PATH -o TORRENT --listen 127.0.0.1:0 EXTRA...` and waits for its
/// `ready:` line.
pub(crate) fn spawn_share(path: &Path, torrent: &Path, extra: &[&str]) -> Share {
    let mut cmd = shoal(["share"]);
    cmd.arg(path).arg("-o").arg(torrent).args(["--listen", LISTEN_ANY]).args(NO_DISCOVERY).args(extra);
    let proc = ok(Proc::spawn("shoal share", cmd));
    let ready = ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    // "ready: seeding 1 torrent(s) on 127.0.0.1:PORT; press Ctrl-C to stop"
    let addr = between(&ready, " on ", ";")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{}", proc.explain(&format!("no address in {ready:?}"))));
    let written = ok(proc.wait_for_line("torrent: ", START_TIMEOUT));
    let written = written["torrent: ".len()..].trim_end_matches(" (existing, matches the data)");
    assert_eq!(Path::new(written), torrent, "shoal share wrote its torrent elsewhere");
    let magnet = ok(proc.wait_for_line("magnet: ", START_TIMEOUT));
    let parsed = Magnet::parse(&magnet["magnet: ".len()..])
        .unwrap_or_else(|e| panic!("shoal share printed a magnet link that does not parse ({e}): {magnet}"));
    let info_hash = parsed.info_hash.to_hex().to_ascii_lowercase();
    Share { proc, addr, torrent: torrent.to_path_buf(), info_hash }
}

/// Starts `shoal get TORRENT -o OUT --listen 127.0.0.1:0 EXTRA...`.
pub(crate) fn spawn_get(name: &str, torrent: &Path, out: &Path, extra: &[&str]) -> Proc {
    let mut cmd = shoal(["get"]);
    cmd.arg(torrent).arg("-o").arg(out).args(["--listen", LISTEN_ANY]).args(NO_DISCOVERY).args(extra);
    ok(Proc::spawn(name, cmd))
}

/// The info-hash a running `shoal get` printed in its `downloading NAME (HEX) into ...` line.
pub(crate) fn get_info_hash(get: &Proc) -> String {
    let line = ok(get.wait_for_line("downloading ", START_TIMEOUT));
    let hex = between(&line, " (", ")").unwrap_or_else(|| panic!("no info-hash in {line:?}"));
    check_hex(hex, &line)
}

/// Waits until a `shoal get` without `--seed` exits 0 and checks it said `complete:`.
pub(crate) fn wait_get_complete(get: &mut Proc) {
    ok(get.wait_success(TRANSFER_TIMEOUT));
    ok(get.wait_for_line("complete: ", Duration::ZERO));
}

/// A running `shoal tracker`.
pub(crate) struct Tracker {
    /// The process; dropping it kills it.
    pub(crate) proc: Proc,
    /// Its announce URL, `http://127.0.0.1:PORT/announce`.
    pub(crate) url: String,
}

/// Starts `shoal tracker --listen 127.0.0.1:0 --interval SECONDS` and reads its announce URL.
pub(crate) fn spawn_tracker(interval_secs: u32) -> Tracker {
    let cmd = shoal(["tracker", "--listen", LISTEN_ANY, "--interval", &interval_secs.to_string()]);
    let proc = ok(Proc::spawn("shoal tracker", cmd));
    let line = ok(proc.wait_for_line("tracker listening on ", START_TIMEOUT));
    let url = line["tracker listening on ".len()..].trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/announce") && !url.ends_with(":0/announce"),
        "unexpected tracker URL {url:?}"
    );
    Tracker { proc, url }
}

/// Stops a Shoal process with SIGTERM and checks it exits 0 (a seed's normal way to stop).
pub(crate) fn stop_cleanly(proc: &mut Proc) {
    let status = ok(proc.terminate(STOP_GRACE));
    assert!(status.success(), "{}", proc.explain(&format!("exited with {status} after SIGTERM")));
}
