//! `shoal play`: download a torrent and serve one of its files over HTTP while it arrives, so a
//! player can start at once; starts a player on the URL unless told not to. The data stays in
//! the output folder, so a later `shoal get` of the same torrent finds it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use shoal_engine::{AddTorrent, Session, Torrent};
use shoal_proto::Metainfo;

use crate::args::PlayArgs;
use crate::get::{Source, fetch_metadata, load_source};
use crate::{BadInput, Failure, interrupted, progress, resolve_peers};

/// Extensions of files players play, to choose the default file.
const MEDIA: &[&str] = &[
    "mp4", "m4v", "mkv", "webm", "avi", "mov", "ts", "m2ts", "mts", "mpg", "mpeg", "ogv", "flv", "wmv", "mp3", "m4a",
    "m4b", "aac", "flac", "ogg", "oga", "opus", "wav",
];

/// Players tried in this order when `--player` is not given.
const PLAYERS: &[&str] = &["mpv", "vlc", "ffplay"];

pub(crate) async fn run(a: PlayArgs, quiet: bool) -> Result<(), Failure> {
    let source = load_source(&a.source).await?;
    let mut peers = resolve_peers(&a.peers).await?;
    let ssl = match &source {
        Source::Torrent(meta) => crate::group::ssl_for(meta, a.data_dir.as_deref(), quiet)?,
        Source::Magnet(_) => None,
    };
    let session = Session::start(a.node.session_config_for(ssl.is_some(), a.data_dir.as_deref()))
        .await
        .map_err(anyhow::Error::from)?;
    let result = async {
        let meta = match source {
            Source::Torrent(meta) => *meta,
            Source::Magnet(magnet) => {
                let (meta, found) =
                    fetch_metadata(&session, &magnet, peers.clone(), !a.no_trackers, quiet, None).await?;
                peers.extend(found);
                meta
            }
        };
        // A sealed share is played as plaintext, decrypted as it is read.
        let sealed = match meta.info.sealed {
            Some(_) => {
                let dir = crate::sealed::data_dir_with_identity(a.data_dir.as_deref(), quiet)?;
                crate::sealed::Opener::for_torrent(&meta, ssl.as_ref().map(|(_, g)| g.as_str()), &dir)?
            }
            None => None,
        };
        play(&a, quiet, &session, meta, peers, ssl.map(|(tls, _)| tls), sealed).await
    }
    .await;
    session.shutdown().await;
    result
}

/// A file as `play` chooses among them: its path with the torrent's (or sealed share's) name
/// first, its path inside, its length, and whether it is a padding file.
struct Choice {
    full: String,
    inner: String,
    length: u64,
    padding: bool,
}

/// The files of `meta`, or of the sealed share `opener` opens.
fn choices(meta: &Metainfo, opener: Option<&crate::sealed::Opener>) -> Vec<Choice> {
    match opener {
        Some(o) => o
            .files()
            .iter()
            .map(|f| Choice {
                full: o.full_path(f).join("/"),
                inner: f.path.join("/"),
                length: f.length,
                padding: false,
            })
            .collect(),
        None => meta
            .info
            .files
            .iter()
            .map(|f| Choice {
                full: meta.info.file_components(f).join("/"),
                inner: f.path.join("/"),
                length: f.length,
                padding: f.padding,
            })
            .collect(),
    }
}

/// The file `--file` names (an index, or a path in the torrent with `/` between components),
/// or by default the largest audio or video file (the largest file when there is none).
fn choose_file(files: &[Choice], wanted: Option<&str>) -> Result<usize, Failure> {
    if let Some(w) = wanted {
        if let Ok(i) = w.parse::<usize>() {
            return if i < files.len() && !files[i].padding {
                Ok(i)
            } else {
                Err(Failure::Input(anyhow!("--file {i}: the torrent has files 0 to {}", files.len().saturating_sub(1))))
            };
        }
        return (0..files.len())
            .find(|&i| !files[i].padding && (files[i].full == w || files[i].inner == w))
            .ok_or_else(|| {
                let names: Vec<&str> = files.iter().filter(|f| !f.padding).take(10).map(|f| f.full.as_str()).collect();
                Failure::Input(anyhow!("--file {w:?}: no such file in the torrent; it has {}", names.join(", ")))
            });
    }
    let is_media = |i: usize| {
        let name = files[i].inner.rsplit('/').next().unwrap_or_default();
        name.rsplit_once('.').is_some_and(|(_, ext)| MEDIA.contains(&ext.to_ascii_lowercase().as_str()))
    };
    let largest = |media: bool| {
        (0..files.len()).filter(|&i| !files[i].padding && (!media || is_media(i))).max_by_key(|&i| files[i].length)
    };
    largest(true).or_else(|| largest(false)).ok_or_else(|| Failure::Input(anyhow!("the torrent has no file to play")))
}

/// What the HTTP server needs: the torrent, the name of each file, and for a sealed share
/// what opens it.
struct Served {
    torrent: Torrent,
    names: Vec<String>,
    sealed: Option<crate::sealed::Opener>,
    /// A stream of the chosen file at its start, opened before the player is: the head is
    /// asked for first from the first peer on. The first request's answer lets it go.
    ahead: std::sync::Mutex<Option<shoal_engine::FileStream>>,
}

async fn serve_file(
    State(served): State<Arc<Served>>,
    UrlPath((index, _name)): UrlPath<(usize, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(name) = served.names.get(index) else {
        return (axum::http::StatusCode::NOT_FOUND, format!("no file {index} in this torrent\n")).into_response();
    };
    let response = match served.torrent.stream(index) {
        Ok(stream) => match &served.sealed {
            Some(opener) => {
                shoal_engine::stream::http::respond(opener.plaintext(index, stream), name, &method, &headers).await
            }
            None => shoal_engine::stream::http::respond(stream, name, &method, &headers).await,
        },
        Err(e @ shoal_engine::StreamError::NoSuchFile { .. }) => {
            (axum::http::StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    // The request's own stream told the torrent where it reads (its first bytes are in).
    drop(served.ahead.lock().unwrap_or_else(|e| e.into_inner()).take());
    response
}

/// Percent-encodes a path component for a URL.
fn url_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

async fn play(
    a: &PlayArgs,
    quiet: bool,
    session: &Session,
    meta: Metainfo,
    peers: Vec<SocketAddr>,
    ssl: Option<shoal_engine::SslTorrent>,
    sealed: Option<crate::sealed::Opener>,
) -> Result<(), Failure> {
    let files = choices(&meta, sealed.as_ref());
    let index = choose_file(&files, a.file.as_deref())?;
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    let names: Vec<String> = files.iter().map(|f| f.inner.rsplit('/').next().unwrap_or_default().to_string()).collect();
    let shown = crate::text::printable(&files[index].full).into_owned();
    // A sealed share's ciphertext goes where `get` puts it, which opens it later.
    let download_dir = match &sealed {
        Some(_) => a.output.join(crate::sealed::SEALED_DIR),
        None => a.output.clone(),
    };
    let listener = tokio::net::TcpListener::bind(a.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {} (--http)", a.http))
        .bad_input()?;
    let addr = listener.local_addr().context("the HTTP listener has no address")?;
    let torrent = session
        .add(AddTorrent {
            meta,
            download_dir,
            peers,
            use_trackers: !a.no_trackers,
            file_priorities: None,
            sequential: false,
            resume: None,
            ssl,
        })
        .await
        .map_err(anyhow::Error::from)?;
    let url = format!("http://{addr}/{index}/{}", url_component(&names[index]));
    // The one line scripts wait for, printed even with --quiet.
    println!("stream: {url}");
    if !quiet {
        println!(
            "playing {shown} while it downloads into {}; listening for peers on {}",
            a.output.display(),
            session.listen_addr()
        );
    }
    let ahead = torrent.stream(index).ok().map(|mut stream| {
        stream.expect_read(0);
        stream
    });
    let served = Arc::new(Served { torrent, names, sealed, ahead: std::sync::Mutex::new(ahead) });
    let app = axum::Router::new()
        .route("/{index}/{name}", axum::routing::get(serve_file).head(serve_file))
        .with_state(served.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let player = if a.no_player { None } else { start_player(a.player.as_deref(), &url, quiet)? };
    let bar = progress::transfer_bar(None, served.torrent.status().total_length, "play", quiet);
    let mut rx = served.torrent.subscribe();
    let shown_progress = async {
        loop {
            progress::show(&bar, &rx.borrow_and_update().clone());
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let outcome = tokio::select! {
        _ = interrupted() => Ok(()),
        status = wait_player(player) => status,
        r = server => Err(Failure::Runtime(anyhow!("the HTTP server stopped: {}", match r {
            Ok(Ok(())) => "no reason given".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        }))),
        () = shown_progress => Ok(()),
    };
    bar.finish_and_clear();
    let last = served.torrent.subscribe();
    match Arc::try_unwrap(served) {
        Ok(served) => served.torrent.stop().await,
        Err(_) => tracing::debug!("a request still holds the torrent; it stops with the session"),
    }
    if !quiet {
        let s = last.borrow().clone();
        println!(
            "stopped with {} of {} pieces verified; the data stays in {}",
            s.stats.pieces_have,
            s.stats.pieces_total,
            a.output.display()
        );
        println!("{}", crate::get::transferred(s.stats.downloaded, s.stats.uploaded));
    }
    outcome
}

/// Starts `--player` (split on whitespace: a command and its arguments) or the first known
/// player found on PATH, with the URL as its last argument. None (and a note) when no player
/// is found: the URL is served all the same.
fn start_player(chosen: Option<&str>, url: &str, quiet: bool) -> Result<Option<tokio::process::Child>, Failure> {
    let (program, args) = match chosen {
        Some(cmd) => {
            let mut words = cmd.split_whitespace().map(str::to_owned);
            let program = words.next().ok_or_else(|| Failure::Input(anyhow!("--player is empty")))?;
            (program, words.collect())
        }
        None => match found_player() {
            Some(p) => (p, Vec::new()),
            None => {
                eprintln!("no player found ({}); open the URL above in one, Ctrl-C to stop", PLAYERS.join(", "));
                return Ok(None);
            }
        },
    };
    let child = tokio::process::Command::new(&program)
        .args(&args)
        .arg(url)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the player {program:?}"))
        .bad_input()?;
    if !quiet {
        println!("player: {program}");
    }
    Ok(Some(child))
}

/// The first of the known players found on PATH.
pub(crate) fn found_player() -> Option<String> {
    PLAYERS.iter().find(|p| on_path(p)).map(|p| (*p).to_owned())
}

/// Starts a player on `url` in the background, its output discarded (for the terminal UI);
/// says which one, or why none.
pub(crate) fn open_in_player(url: &str) -> Result<String, String> {
    let program = found_player().ok_or_else(|| format!("no player found ({})", PLAYERS.join(", ")))?;
    std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    Ok(program)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Waits for the player to exit (for ever without one).
async fn wait_player(player: Option<tokio::process::Child>) -> Result<(), Failure> {
    let Some(mut child) = player else { return std::future::pending().await };
    match child.wait().await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(Failure::Runtime(anyhow!("the player exited with {status}"))),
        Err(e) => Err(Failure::Runtime(anyhow!("cannot wait for the player: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_components_are_escaped() {
        assert_eq!(url_component("My Film (2024).mkv"), "My%20Film%20%282024%29.mkv");
        assert_eq!(url_component("a/b?c"), "a%2Fb%3Fc");
    }
}
