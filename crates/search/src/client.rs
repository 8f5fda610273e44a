//! Asking an index server over HTTP: `shoal publish`, `shoal search --index` and the daemon's
//! `search.query` share this client. Answers are read up to [`MAX_ANSWER`] bytes; every record
//! a search returns is checked again here ([`Record::check`]), since the index could have
//! altered it; records that fail are left out and counted.

use std::time::Duration;

use crate::record::Record;
use crate::server::Found;

/// Longest answer read from an index server.
pub const MAX_ANSWER: usize = 16 << 20;

/// Why asking an index failed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The index could not be reached.
    #[error("cannot reach the index at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The index refused the request (`bad_request`: for the request's own fault).
    #[error("the index refused: {message}")]
    Refused {
        /// The index's reason.
        message: String,
        /// A 4xx answer.
        bad_request: bool,
    },
    /// The answer is not what an index answers.
    #[error("{url}: {reason}")]
    Malformed {
        /// Where.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// An HTTP client for index servers, each request bounded by `timeout`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

async fn answer(request: reqwest::RequestBuilder, url: &str) -> Result<serde_json::Value, AskError> {
    let unreachable =
        |e: reqwest::Error| AskError::Unreachable { url: url.to_string(), reason: e.without_url().to_string() };
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER {
            let reason = format!("the answer is larger than {} MiB", MAX_ANSWER >> 20);
            return Err(AskError::Malformed { url: url.to_string(), reason });
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| AskError::Malformed {
        url: url.to_string(),
        reason: format!("answered {status} with something that is not JSON ({e}): is it a Shoal index?"),
    })?;
    if !status.is_success() {
        let message = value["error"].as_str().unwrap_or("no reason given").to_string();
        return Err(AskError::Refused { message, bad_request: status.is_client_error() });
    }
    Ok(value)
}

/// Sends `record` to the index at `base` (`http://HOST:PORT`); returns its answer.
pub async fn publish(client: &reqwest::Client, base: &str, record: &Record) -> Result<serde_json::Value, AskError> {
    let url = format!("{}/publish", base.trim_end_matches('/'));
    let body = serde_json::to_vec(record).unwrap_or_default();
    answer(client.post(&url).header("Content-Type", "application/json").body(body), &url).await
}

/// A record an index server answered, checked, and the seeders its tracker counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The record.
    pub record: Record,
    /// Seeders now (`None`: the index has no tracker).
    pub seeders: Option<u32>,
}

/// Asks the index at `base` for `words` (at most `limit` results, with `headers`, e.g. a
/// signed query's); returns the records that check, best first, and how many did not check.
pub async fn search(
    client: &reqwest::Client,
    base: &str,
    words: &str,
    limit: usize,
    headers: &[(String, String)],
) -> Result<(Vec<Answered>, usize), AskError> {
    let url = format!("{}/search", base.trim_end_matches('/'));
    let mut request = client.get(&url).query(&[("q", words), ("limit", &limit.to_string())]);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let value = answer(request, &url).await?;
    let found: Vec<Found> = serde_json::from_value(value["results"].clone()).map_err(|e| AskError::Malformed {
        url: url.clone(),
        reason: format!("results this Shoal cannot read: {e}"),
    })?;
    let mut bad = 0;
    let mut records = Vec::new();
    for f in found {
        let record = Record { body: f.body, signature: f.signature };
        match record.check() {
            Ok(_) => records.push(Answered { record, seeders: f.seeders }),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}
