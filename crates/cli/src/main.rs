//! The `shoal` binary: parses the command line, sets up logging and the runtime, runs one
//! subcommand, and turns its outcome into an exit code (0 success, 1 runtime failure, 2 bad
//! usage or bad input, 130 interrupted by Ctrl-C) with a plain one-line message on stderr.

mod args;
mod create;
mod daemon;
mod demo;
mod get;
mod group;
mod live;
mod play;
mod progress;
mod push;
mod remote;
mod sealed;
mod search;
mod share;
mod text;
mod tracker;
mod tui;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// How a subcommand failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The user's input was wrong (exit code 2).
    Input(anyhow::Error),
    /// Something went wrong while running (exit code 1).
    Runtime(anyhow::Error),
    /// Stopped by Ctrl-C or SIGTERM before the work was done (exit code 130); the message says
    /// what was kept.
    Interrupted(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Marks an error as caused by bad input.
pub(crate) trait BadInput<T> {
    fn bad_input(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> BadInput<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Input(e.into()))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's own text: what is wrong, "did you mean", and the subcommand's usage.
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let quiet = cli.quiet;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a, quiet).await,
            Command::Create(a) => create::run(a, quiet).await,
            Command::Share(a) => share::run(a, quiet).await,
            Command::Get(a) => get::run(a, quiet).await,
            Command::Play(a) => play::run(a, quiet).await,
            Command::Tracker(a) => tracker::run(a).await,
            Command::Daemon(a) => daemon::run(a, quiet).await,
            Command::Add(a) => remote::add(a).await,
            Command::List(a) => remote::list(a).await,
            Command::Status(a) => remote::status(a).await,
            Command::Pause(a) => remote::pause_resume(a, true).await,
            Command::Resume(a) => remote::pause_resume(a, false).await,
            Command::Remove(a) => remote::remove(a).await,
            Command::Set(a) => remote::set(a).await,
            Command::Move(a) => remote::relocate(a).await,
            Command::FreeSpace(a) => remote::free_space(a).await,
            Command::Verify(a) => remote::by_ids(a, "torrent.verify", "checking").await,
            Command::Reannounce(a) => remote::by_ids(a, "torrent.reannounce", "announcing").await,
            Command::Tui(a) => tui::run(a).await,
            Command::Identity(a) => group::identity(a),
            Command::Group(a) => group::run(a, quiet),
            Command::Push(a) => push::run(a, quiet).await,
            Command::Index(a) => search::index(a).await,
            Command::Publish(a) => search::publish(a, quiet).await,
            Command::Search(a) => search::search(a, quiet).await,
            Command::Live(a) => match a.command {
                args::LiveCommand::Broadcast(a) => live::broadcast(a, quiet).await,
                args::LiveCommand::Watch(a) => live::watch(a, quiet).await,
            },
        }
    });
    // Background tasks (peer connections, trackers) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("shoal: {}", text::printable(&message(&e)));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("shoal: {}", text::printable(&message(&e)));
            ExitCode::from(1)
        }
        Err(Failure::Interrupted(e)) => {
            eprintln!("shoal: {}", text::printable(&message(&e)));
            ExitCode::from(130)
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// holds (many errors quote their source in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves `HOST:PORT` strings given with `--peer`.
pub(crate) async fn resolve_peers(peers: &[String]) -> Result<Vec<std::net::SocketAddr>, Failure> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = tokio::net::lookup_host(p.as_str())
            .await
            .map_err(|e| Failure::Input(anyhow::anyhow!("--peer {p:?} is not a reachable HOST:PORT: {e}")))?;
        out.extend(addrs.take(1));
    }
    Ok(out)
}
