//! Downloading a `.torrent` file from an http(s) URL, with a size cap and a time limit.

use std::time::Duration;

/// Largest `.torrent` file accepted, from a URL or from disk.
pub const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

/// Longest wait for a `.torrent` file over HTTP.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a `.torrent` file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP client could not be set up.
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    /// The server could not be reached or the transfer broke.
    #[error("cannot fetch {url}: {reason}")]
    Transfer {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("cannot fetch {url}: HTTP status {status}")]
    Status {
        /// The URL asked for.
        url: String,
        /// The status line's code and reason.
        status: String,
    },
    /// The body is larger than [`MAX_TORRENT_FILE`].
    #[error("{url} is larger than {MAX_TORRENT_FILE} bytes, too large for a .torrent file")]
    TooLarge {
        /// The URL asked for.
        url: String,
    },
}

/// Downloads a `.torrent` file, refusing anything larger than [`MAX_TORRENT_FILE`].
pub async fn fetch_torrent(url: &str) -> Result<Vec<u8>, FetchError> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))?;
    let failed = |e: reqwest::Error| FetchError::Transfer { url: url.to_owned(), reason: e.without_url().to_string() };
    let mut response = client.get(url).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(FetchError::Status { url: url.to_owned(), status: response.status().to_string() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_TORRENT_FILE {
            return Err(FetchError::TooLarge { url: url.to_owned() });
        }
    }
    Ok(body)
}
