//! A private transmission-daemon (Transmission 3.00) for one test.
//!
//! [`Transmission::start`] runs `drivers/transmission.py daemon` in a fresh temporary folder
//! with its own RPC and peer ports on 127.0.0.1, no RPC authentication, and DHT, local peer
//! discovery, peer exchange, uTP and port mapping off. The other methods call the script's RPC
//! subcommands. Dropping the value stops the daemon (the script stops it on SIGTERM, on stdin
//! closing, or, should the script itself be killed, through the kernel's parent-death signal).
//!
//! Transmission never dials 127.0.0.0/8 peers: whatever it exchanges data with must dial
//! [`Transmission::peer_addr`]. See the crate documentation for its other loopback habits.

use std::ffi::OsStr;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::net::free_port;
use crate::process::{Captured, Proc, run_captured};
use crate::tools::python_transmission;

/// How long the daemon may take to answer its first RPC.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one RPC subcommand may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon may take to stop.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How many lines of the daemon's log an error message quotes.
const LOG_TAIL: usize = 40;

/// A running transmission-daemon; stopped when dropped.
pub struct Transmission {
    daemon: Proc,
    home: TempDir,
    rpc_port: u16,
    peer_port: u16,
}

/// A torrent added to Transmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Transmission's id for the torrent (1 for the first one).
    pub id: u32,
    /// The info-hash as Transmission computed it, 40 lowercase hex digits.
    pub info_hash: String,
}

impl Transmission {
    /// Starts a daemon in a new temporary folder and waits until its RPC answers.
    pub fn start() -> Result<Self, String> {
        let home = tempfile::Builder::new()
            .prefix("shoal-transmission-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let (rpc_port, peer_port) = (free_port(), free_port());
        let mut cmd = python_transmission(["daemon", "--watch-stdin", "--home"]);
        cmd.arg(home.path()).args(["--rpc-port", &rpc_port.to_string()]).args(["--peer-port", &peer_port.to_string()]);
        let daemon = Proc::spawn("transmission", cmd)?;
        let t = Transmission { daemon, home, rpc_port, peer_port };
        t.daemon.wait_for_line("READY ", START_TIMEOUT).map_err(|e| t.with_log(e))?;
        Ok(t)
    }

    /// The RPC port on 127.0.0.1.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The peer port on 127.0.0.1.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The address peers must dial to reach it: 127.0.0.1 and its peer port.
    pub fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.peer_port))
    }

    /// Its private folder (config, log and the default download folder).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The folder torrents go to when [`Transmission::add`] is given no other.
    pub fn download_dir(&self) -> PathBuf {
        self.home.path().join("downloads")
    }

    /// Everything the daemon logged so far (info level).
    pub fn log(&self) -> String {
        fs::read_to_string(self.home.path().join("transmission.log")).unwrap_or_default()
    }

    fn with_log(&self, error: String) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
        format!("{error}\n--- transmission-daemon log (last lines) ---\n{tail}\n--- end ---")
    }

    fn rpc<S: AsRef<OsStr>>(&self, sub: &str, args: &[S], timeout: Duration) -> Result<Captured, String> {
        let mut cmd = python_transmission([sub, "--rpc", &self.rpc_port.to_string()]);
        cmd.args(args);
        run_captured(cmd, timeout).and_then(Captured::ok).map_err(|e| self.with_log(e))
    }

    /// Adds `torrent` with its data in (or going to) `download_dir` and starts it. Adding data
    /// that is already complete makes Transmission verify it and then seed.
    pub fn add(&self, torrent: &Path, download_dir: &Path) -> Result<Added, String> {
        let out = self.rpc(
            "add",
            &[OsStr::new("--torrent"), torrent.as_os_str(), OsStr::new("--download-dir"), download_dir.as_os_str()],
            RPC_TIMEOUT,
        )?;
        // "ID <id> HASH <hex>"
        let line = out.stdout.lines().find(|l| l.starts_with("ID ")).unwrap_or("");
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["ID", id, "HASH", hash] => Ok(Added {
                id: id.parse().map_err(|_| format!("bad torrent id in {line:?}"))?,
                info_hash: hash.to_owned(),
            }),
            _ => Err(format!("transmission.py add printed no ID line:\n{}", out.stdout)),
        }
    }

    /// Waits until torrent `id` is complete and verified (a seed after checking its data, or a
    /// leech that has downloaded everything). The error includes its progress lines, its state
    /// and the daemon's log.
    pub fn wait_done(&self, id: u32, timeout: Duration) -> Result<(), String> {
        let args = ["--id".to_owned(), id.to_string(), "--timeout".to_owned(), format!("{}", timeout.as_secs_f64())];
        match self.rpc("wait", &args, timeout + RPC_TIMEOUT) {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = self.status(id).unwrap_or_else(|e| format!("(no status: {e})"));
                Err(format!("Transmission torrent {id} did not complete: {e}\n--- status ---\n{status}"))
            }
        }
    }

    /// The info-hash of torrent `id` as Transmission reports it.
    pub fn info_hash(&self, id: u32) -> Result<String, String> {
        let out = self.rpc("hash", &["--id".to_owned(), id.to_string()], RPC_TIMEOUT)?;
        Ok(out.stdout.trim().to_owned())
    }

    /// The state of torrent `id` as `key: value` lines (status, percentDone, peersConnected,
    /// error, ...).
    pub fn status(&self, id: u32) -> Result<String, String> {
        let out = self.rpc("status", &["--id".to_owned(), id.to_string()], RPC_TIMEOUT)?;
        Ok(out.stdout)
    }

    /// Stops the daemon and reports whether it stopped cleanly.
    pub fn stop(mut self) -> Result<(), String> {
        self.daemon.terminate(STOP_GRACE).map(drop)
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        let _ = self.daemon.terminate(STOP_GRACE);
    }
}
