//! How the remote commands find and log in to the daemon, end to end on 127.0.0.1: `--rpc` as
//! `HOST:PORT` or a URL, `SHOAL_RPC`, `SHOAL_USER`/`SHOAL_PASSWORD`/`SHOAL_TOKEN`, and the client
//! config file `$XDG_CONFIG_HOME/shoal/client.toml`, against daemons that require HTTP Basic
//! credentials or a token; refused credentials (exit 1) and malformed settings (exit 2) are
//! named in the message.
//!
//! Every command runs with `HOME` and `XDG_CONFIG_HOME` in a temporary folder and without the
//! `SHOAL_*` variables of whoever runs the tests.

#[path = "support/shoal.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use shoal_testkit::{Captured, Proc, TempDir, free_port};
use support::{QUICK, assert_input_error, run, shoal_raw};

/// A daemon on 127.0.0.1:`rpc_port` (no DHT, no LSD) with its state in `dir/state` and
/// `config` as its config file.
fn start_daemon(dir: &Path, rpc_port: u16, config: &str) -> Proc {
    let config_file = dir.join("daemon.toml");
    std::fs::write(&config_file, config).expect("write the daemon's config");
    let mut cmd = shoal_raw(["daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen"]);
    cmd.arg(format!("127.0.0.1:{rpc_port}")).arg("--data-dir").arg(dir.join("state"));
    cmd.arg("--config").arg(&config_file);
    let proc = Proc::spawn("daemon", cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line("ready: ", QUICK).unwrap_or_else(|e| panic!("{e}"));
    proc
}

/// The folders a client runs with: `HOME` and, outside it, `XDG_CONFIG_HOME`.
struct Folders {
    home: PathBuf,
    xdg: PathBuf,
    _dir: TempDir,
}

impl Folders {
    fn new() -> Folders {
        let dir = TempDir::new().expect("temp dir");
        Folders { home: dir.path().join("home"), xdg: dir.path().join("xdg"), _dir: dir }
    }

    /// `shoal ARGS` with these folders, the `SHOAL_*` variables removed and then `env` set.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = shoal_raw(args);
        cmd.env("HOME", &self.home).env("XDG_CONFIG_HOME", &self.xdg);
        for var in ["SHOAL_RPC", "SHOAL_TOKEN", "SHOAL_USER", "SHOAL_PASSWORD"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    /// Runs [`Folders::command`].
    fn shoal(&self, args: &[&str], env: &[(&str, &str)]) -> Captured {
        run(self.command(args, env), QUICK)
    }

    /// Writes `$XDG_CONFIG_HOME/shoal/client.toml` and returns its path.
    fn client_toml(&self, text: &str) -> PathBuf {
        write(&self.xdg.join("shoal/client.toml"), text)
    }
}

/// Writes `text` to `path`, making its folder.
fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("config folder");
    std::fs::write(path, text).expect("write the file");
    path.to_owned()
}

/// The command listed the daemon's (empty) torrent list.
fn assert_listed(out: &Captured) {
    assert!(out.status.success() && out.stdout.contains("(no torrents)"), "{out:?}");
}

/// The command failed at run time (exit 1) with one `shoal: ` line mentioning each of `mentions`.
fn assert_refused(out: &Captured, mentions: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {out:?}");
    assert!(lines[0].starts_with("shoal: "), "{out:?}");
    for m in mentions {
        assert!(lines[0].contains(m), "the message must mention {m:?}: {out:?}");
    }
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn user_and_password_from_flags_the_environment_or_client_toml() {
    let dir = TempDir::new().expect("temp dir");
    let port = free_port();
    let _daemon = start_daemon(dir.path(), port, "[rpc]\nuser = \"u\"\npassword = \"p\"\n");
    let client = Folders::new();
    let host_port = format!("127.0.0.1:{port}");
    let base = format!("http://127.0.0.1:{port}");

    // --rpc HOST:PORT with --user/--password (HTTP Basic, as Transmission clients send).
    assert_listed(&client.shoal(&["list", "--rpc", &host_port, "--user", "u", "--password", "p"], &[]));
    // A base URL with and without its slash, and the full URL.
    for rpc in [base.clone(), format!("{base}/"), format!("{base}/jsonrpc")] {
        assert_listed(&client.shoal(&["list", "--rpc", &rpc, "--user", "u", "--password", "p"], &[]));
    }
    // SHOAL_RPC and the credentials from the environment.
    let env = [("SHOAL_RPC", base.as_str()), ("SHOAL_USER", "u"), ("SHOAL_PASSWORD", "p")];
    assert_listed(&client.shoal(&["list"], &env));
    // The user on the command line, the password from the environment (kept out of `ps`).
    assert_listed(&client.shoal(&["list", "--rpc", &host_port, "--user", "u"], &[("SHOAL_PASSWORD", "p")]));

    // A wrong password: exit 1, naming the user, where the password came from and where
    // credentials are set.
    let config = client.xdg.join("shoal/client.toml").display().to_string();
    let out = client.shoal(&["list", "--rpc", &host_port, "--user", "u", "--password", "wrong"], &[]);
    let mentions = [host_port.as_str(), "refused the password for user \"u\" (from --user and --password", &config];
    assert_refused(&out, &mentions);
    assert_refused(&out, &["--user/--password, SHOAL_USER/SHOAL_PASSWORD or user/password in"]);
    let env = [("SHOAL_RPC", host_port.as_str()), ("SHOAL_USER", "u"), ("SHOAL_PASSWORD", "no")];
    assert_refused(&client.shoal(&["list"], &env), &["(from SHOAL_RPC)", "(from SHOAL_USER and SHOAL_PASSWORD"]);
    // Nothing sent: the daemon wants a user and password, and the message says where they go
    // (with XDG_CONFIG_HOME unset, the file is under ~/.config).
    let mut cmd = client.command(&["list", "--rpc", &host_port], &[]);
    cmd.env_remove("XDG_CONFIG_HOME");
    let out = run(cmd, QUICK);
    assert_refused(&out, &["no credentials were sent; the daemon requires them", "--user/--password"]);
    assert_refused(&out, &["user/password in ~/.config/shoal/client.toml"]);
    // A token where the daemon takes only a user and password.
    let out = client.shoal(&["list", "--rpc", &host_port, "--token", "t"], &[]);
    assert_refused(&out, &["refused the token (from --token", "it takes a user and password instead"]);

    // client.toml sets the daemon and the login; the environment and flags win over it.
    client.client_toml(&format!("rpc = \"{host_port}\"\nuser = \"u\"\npassword = \"p\"\n"));
    assert_listed(&client.shoal(&["list"], &[]));
    let out = client.shoal(&["list"], &[("SHOAL_PASSWORD", "stale")]);
    assert_refused(&out, &[&format!("(user from {config}, password from SHOAL_PASSWORD")]);
    assert_refused(&client.shoal(&["list", "--password", "typo"], &[]), &["password from --password"]);
    // Without XDG_CONFIG_HOME, ~/.config/shoal/client.toml is read.
    write(
        &client.home.join(".config/shoal/client.toml"),
        &format!("rpc = \"{base}\"\nuser = \"u\"\npassword = \"p\"\n"),
    );
    std::fs::remove_file(&config).expect("remove client.toml");
    let mut cmd = client.command(&["list"], &[]);
    cmd.env_remove("XDG_CONFIG_HOME");
    assert_listed(&run(cmd, QUICK));
    // A user without a password anywhere is bad input, reported before anything is sent.
    let out = client.shoal(&["list", "--rpc", &host_port, "--user", "u"], &[]);
    assert_input_error(&out, &["(--user)", "no password", "--password, SHOAL_PASSWORD or password in"]);
}

#[test]
fn a_token_in_client_toml() {
    let dir = TempDir::new().expect("temp dir");
    let port = free_port();
    let _daemon = start_daemon(dir.path(), port, "[rpc]\ntoken = \"s3cret\"\n");
    let client = Folders::new();
    let config = client.client_toml(&format!("rpc = \"http://127.0.0.1:{port}/\"\ntoken = \"s3cret\"\n"));
    let config = config.display().to_string();

    assert_listed(&client.shoal(&["list"], &[]));
    let listed = client.shoal(&["list", "--json"], &[]);
    assert!(listed.status.success() && listed.stdout.trim() == "[]", "{listed:?}");
    // SHOAL_TOKEN and --token win over the file.
    let out = client.shoal(&["list"], &[("SHOAL_TOKEN", "old")]);
    assert_refused(
        &out,
        &["refused the token (from SHOAL_TOKEN", &format!("--token, SHOAL_TOKEN or token in {config}")],
    );
    let out = client.shoal(&["list", "--token", "typo"], &[]);
    assert_refused(&out, &[&format!("(from {config}) refused the token (from --token")]);
    // No token: the daemon wants one.
    client.client_toml(&format!("rpc = \"127.0.0.1:{port}\"\n"));
    let out = client.shoal(&["list"], &[]);
    assert_refused(&out, &["no credentials were sent", "a token: --token, SHOAL_TOKEN or token in"]);
    // SHOAL_RPC wins over the file's rpc: here a port nobody listens on.
    let closed = format!("127.0.0.1:{}", free_port());
    let out = client.shoal(&["list"], &[("SHOAL_RPC", &closed)]);
    assert_refused(&out, &["cannot reach the daemon at", &closed, "(from SHOAL_RPC)"]);
}

#[test]
fn malformed_addresses_and_unknown_keys_are_bad_input() {
    let client = Folders::new();

    // --rpc: clap's usage error, exit 2, naming the value.
    for bad in
        ["nonsense", "127.0.0.1", "127.0.0.1:0", "ftp://127.0.0.1:9091/", "http://127.0.0.1:9091/transmission/rpc"]
    {
        let out = client.shoal(&["list", "--rpc", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stderr.contains("--rpc") && out.stderr.contains(bad), "{out:?}");
        assert!(out.stdout.is_empty() && !out.stderr.contains("panicked"), "{out:?}");
    }
    let out = client.shoal(&["status", "1", "--rpc", "http://u:p@127.0.0.1:9091/"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("credentials do not belong in the URL"), "{out:?}");

    // SHOAL_RPC: one line naming the variable and the value.
    let out = client.shoal(&["list"], &[("SHOAL_RPC", "127.0.0.1:notaport")]);
    assert_input_error(&out, &["SHOAL_RPC", "127.0.0.1:notaport"]);

    // client.toml: an unknown key, named with the file and the line.
    let path = client.client_toml("rpc = \"127.0.0.1:9\"\ntokn = \"s3cret\"\n").display().to_string();
    let out = client.shoal(&["list"], &[]);
    assert_input_error(&out, &[&format!("client config {path}, line 2"), "key `tokn`", "unknown field"]);
    // Even when flags give every setting: the file is read on every run.
    assert_input_error(&client.shoal(&["pause", "all", "--rpc", "127.0.0.1:9", "--token", "t"], &[]), &["`tokn`"]);
    // A malformed rpc in the file, and a file that is not TOML.
    client.client_toml("# the daemon\nrpc = \"127.0.0.1\"\n");
    assert_input_error(&client.shoal(&["list"], &[]), &[&path, "line 2", "key `rpc`", "\"127.0.0.1\""]);
    client.client_toml("rpc = \n");
    assert_input_error(&client.shoal(&["list"], &[]), &[&path, "line 1"]);

    // The TUI resolves the same way, before it takes the terminal.
    assert_input_error(&client.shoal(&["tui"], &[]), &[&path, "line 1"]);
}
