//! `GET /stream/{torrent-id}/{file-index}` on the RPC listener: a file of a running torrent
//! over HTTP while it downloads, for players (see [`shoal_engine::stream::http`] for the HTTP
//! rules). The RPC's credential check guards it; a `?token=` query parameter stands for the
//! token header, since players cannot set headers.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{Daemon, lock};

/// How long a request waits for a torrent that is starting (checking its data).
const STARTING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The path of file `index` of torrent `id`, as `torrent.get` reports it.
pub fn stream_path(id: u64, index: usize) -> String {
    format!("/stream/{id}/{index}")
}

/// The streaming routes, to merge into the RPC router (inside its credential check).
pub fn routes(daemon: Daemon) -> axum::Router {
    axum::Router::new().route("/stream/{id}/{index}", axum::routing::get(serve).head(serve)).with_state(daemon)
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{message}\n")).into_response()
}

enum Lookup {
    Found(Result<(shoal_engine::FileStream, String), shoal_engine::StreamError>),
    Answer(Response),
    Starting,
}

/// File `index` of torrent `id`: a stream, an answer for a bad request, or (while `wait` and
/// the torrent is starting) nothing yet.
fn look_up(daemon: &Daemon, id: u64, index: usize, wait: bool) -> Lookup {
    let entries = lock(&daemon.inner.entries);
    let Some(entry) = entries.get(&id) else { return Lookup::Answer(not_found(format!("no torrent {id}"))) };
    let Some(meta) = &entry.meta else {
        return Lookup::Answer(
            (StatusCode::SERVICE_UNAVAILABLE, format!("torrent {id} has no metadata yet\n")).into_response(),
        );
    };
    let files = &meta.info.files;
    let Some(file) = files.get(index).filter(|f| !f.padding) else {
        return Lookup::Answer(not_found(format!(
            "no file {index} in torrent {id} (it has files 0 to {})",
            files.len().saturating_sub(1)
        )));
    };
    let name = file.path.last().cloned().unwrap_or_default();
    match &entry.torrent {
        Some(torrent) => Lookup::Found(torrent.stream(index).map(|s| (s, name))),
        None if entry.paused => Lookup::Found(Err(shoal_engine::StreamError::Paused)),
        None if (entry.starting || entry.moving) && wait => Lookup::Starting,
        None => Lookup::Found(Err(shoal_engine::StreamError::Stopped)),
    }
}

async fn serve(
    State(daemon): State<Daemon>,
    Path((id, index)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<u64>() else { return not_found(format!("no torrent {id:?}: ids are numbers")) };
    let Ok(index) = index.parse::<usize>() else {
        return not_found(format!("no file {index:?} in torrent {id}: file indices are numbers"));
    };
    // A torrent just added or resumed is checking its data: wait for it to start (bounded).
    let deadline = tokio::time::Instant::now() + STARTING_WAIT;
    let found = loop {
        match look_up(&daemon, id, index, tokio::time::Instant::now() < deadline) {
            Lookup::Found(found) => break found,
            Lookup::Answer(response) => return response,
            Lookup::Starting => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    match found {
        Ok((stream, name)) => shoal_engine::stream::http::respond(stream, &name, &method, &headers).await,
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("torrent {id}: {e}\n")).into_response(),
    }
}
