//! The real BitTorrent clients Shoal is tested against, and the scripts in `testkit/` that drive
//! them: `lt_client.py` (libtorrent 2.1 through its Python bindings) and `transmission.py`
//! (transmission-daemon 3.00 through its RPC).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{Proc, run_captured};

/// How long a seed may take to verify its data and start listening.
const SEED_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a one-shot script command (create, info) may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository root (the folder holding `testkit/` and `crates/`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn python_script<I, S>(script: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("drivers").join(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// A command running `drivers/lt_client.py` with `args` (see its `--help`): libtorrent as a seed
/// (`seed`, prints `READY <port>`), a leech (`leech`, exits 0 once complete), or a torrent tool
/// (`create`, `info`).
pub fn python_lt<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    python_script("lt_client.py", args)
}

/// A command running `drivers/qbt.py` with `args` (see its `--help`): qBittorrent-nox driven
/// over its Web API, as a seed (`seed`, prints `READY <port>`) or a leech (`leech`, exits 0
/// once complete).
pub fn python_qbt<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    python_script("qbt.py", args)
}

/// A command running `drivers/transmission.py` with `args` (see its `--help`).
pub fn python_transmission<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    python_script("transmission.py", args)
}

/// Panics with instructions unless libtorrent's Python module and transmission-daemon are
/// installed. Interop tests call this first: a missing tool fails the test, it never skips it.
/// `./scripts/test` installs both.
pub fn ensure_tools() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let mut missing = Vec::new();
        let mut lt = Command::new("python3");
        lt.args(["-c", "import libtorrent; print(libtorrent.__version__)"]);
        match run_captured(lt, SCRIPT_TIMEOUT).and_then(|c| c.ok()) {
            Ok(_) => {}
            Err(e) => missing.push(format!("libtorrent's Python module (install: pip install libtorrent==2.1.1): {e}")),
        }
        let mut td = Command::new("transmission-daemon");
        td.arg("--version");
        if let Err(e) = run_captured(td, SCRIPT_TIMEOUT).and_then(|c| c.ok()) {
            missing.push(format!(
                "transmission-daemon (install: apt-get install -y transmission-daemon \
                 transmission-cli): {e}"
            ));
        }
        if missing.is_empty() { Ok(()) } else { Err(missing.join("\n")) }
    });
    if let Err(e) = checked {
        panic!(
            "interop tests need real BitTorrent clients; ./scripts/test installs them.\n\
             missing:\n{e}"
        );
    }
}

/// Starts a libtorrent seed for `torrent` whose data is in `save_dir` (listening on a port the
/// operating system picks, stopping when this process dies) and waits until it has verified
/// its data. `extra` is appended to the `seed` arguments (for example `--upload-limit N` or
/// `--peer 127.0.0.1:PORT`). Returns the running seed and its port.
pub fn spawn_lt_seed(torrent: &Path, save_dir: &Path, extra: &[&str]) -> Result<(Proc, u16), String> {
    let mut cmd = python_lt(["seed", "--listen", "0", "--watch-stdin", "--torrent"]);
    cmd.arg(torrent).arg("--save").arg(save_dir).args(extra);
    let seed = Proc::spawn("lt-seed", cmd)?;
    let line = seed.wait_for_line("READY ", SEED_READY_TIMEOUT)?;
    let port = line["READY ".len()..]
        .trim()
        .parse()
        .map_err(|_| seed.explain(&format!("printed a bad READY line: {line:?}")))?;
    Ok((seed, port))
}

/// Writes a v1 .torrent for `path` (a file or folder) to `out` with libtorrent. `extra` is
/// appended to the `create` arguments (`--piece-size N`, `--tracker URL`, `--format hybrid`).
pub fn lt_create(path: &Path, out: &Path, extra: &[&str]) -> Result<(), String> {
    let mut cmd = python_lt(["create", "--path"]);
    cmd.arg(path).arg("--out").arg(out).args(extra);
    run_captured(cmd, SCRIPT_TIMEOUT)?.ok().map(drop)
}

/// The info-hash of `torrent` as libtorrent computes it (40 lowercase hex digits; v1, or the
/// v2 hash for v2-only torrents).
pub fn lt_info_hash(torrent: &Path) -> Result<String, String> {
    let mut cmd = python_lt(["info", "--torrent"]);
    cmd.arg(torrent);
    let out = run_captured(cmd, SCRIPT_TIMEOUT)?.ok()?;
    Ok(out.stdout.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_where_the_commands_point() {
        for script in ["lt_client.py", "transmission.py"] {
            let path = repo_root().join("drivers").join(script);
            assert!(path.is_file(), "{} is missing", path.display());
        }
        let cmd = python_lt(["info"]);
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args[0].ends_with("drivers/lt_client.py") && args[1] == "info", "{args:?}");
    }
}
