//! The index server (`shoal index`): publishers send signed records, anyone searches.
//!
//! - `POST /publish` with a [`Record`] as JSON (at most [`crate::record::MAX_RECORD_BYTES`]):
//!   `200 {"info_hash": ...}`, or `400 {"error": ...}` for a record that is malformed, unsigned
//!   or badly signed, `429` past the publisher's limits (records kept per identity, publishes
//!   per minute).
//! - `GET /search?q=WORDS[&limit=N]`: `200 {"results": [...]}`, best first (see
//!   [`crate::index`]); each result is the record's fields plus `magnet`, `seeders`, `score`.
//!   Records of group shares are returned only to a caller that proves membership: a signed
//!   query (headers `X-Shoal-Identity: ID`, `X-Shoal-Time: UNIX_SECONDS` within 5 minutes,
//!   `X-Shoal-Signature: HEX` over [`query_message`], and one `X-Shoal-Member: BASE64` per group:
//!   the group's authority certificate and the caller's member certificate, PEM, one after the
//!   other). The server holds no group's revocation list: a revoked member still sees the
//!   group's records here (not the data, which its members refuse it).
//!
//! Bounds: records of at most 64 KiB, at most `per_identity` records kept per publisher and
//! `per_minute` publishes per publisher per minute (its budget refills continuously; at most
//! 10,000 publishers are tracked, the longest idle forgotten first), queries of at most 256
//! characters and 100 results, at most 8 member certificates pairs per query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use shoal_identity::{Identity, IdentityId};

use crate::index::Index;
use crate::record::{MAX_RECORD_BYTES, Record};

/// How far a signed query's time may be from the server's.
pub const QUERY_SKEW_SECS: u64 = 300;
/// Most results one query returns.
pub const MAX_RESULTS: usize = 100;
/// Publishers whose publish rate is tracked at once.
const MAX_TRACKED: usize = 10_000;
/// Member certificate pairs read from one query.
const MAX_MEMBER_PAIRS: usize = 8;

/// The index server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Records kept per publisher.
    pub per_identity: usize,
    /// Publishes per publisher per minute.
    pub per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_identity: 1000, per_minute: 60 }
    }
}

struct Server {
    index: Index,
    limits: Limits,
    /// Each publisher's publish budget and when it was last filled.
    budgets: Mutex<HashMap<IdentityId, (f64, Instant)>>,
}

/// The index server's routes over `index`.
pub fn router(index: Index, limits: Limits) -> axum::Router {
    let server = Arc::new(Server { index, limits, budgets: Mutex::new(HashMap::new()) });
    axum::Router::new()
        .route("/publish", axum::routing::post(publish))
        .route("/search", axum::routing::get(search))
        .layer(DefaultBodyLimit::max(MAX_RECORD_BYTES))
        .with_state(server)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": message.into() }))
}

impl Server {
    /// Takes one publish from `who`'s budget; false when it is spent.
    fn spend(&self, who: IdentityId) -> bool {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let rate = f64::from(self.limits.per_minute) / 60.0;
        let full = f64::from(self.limits.per_minute);
        if !budgets.contains_key(&who) && budgets.len() >= MAX_TRACKED {
            let idle = budgets.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| *id);
            if let Some(id) = idle {
                budgets.remove(&id);
            }
        }
        let (tokens, at) = budgets.entry(who).or_insert((full, Instant::now()));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * rate).min(full);
        *at = Instant::now();
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn publish(State(server): State<Arc<Server>>, body: axum::body::Bytes) -> Response {
    let (record, publisher) = match Record::from_json(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !server.spend(publisher) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{publisher} published more than {} records in a minute; wait", server.limits.per_minute),
        );
    }
    let server2 = server.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let who = record.body.publisher.clone();
        let kept = server2.index.count_by(&who)?;
        if kept >= server2.limits.per_identity {
            return Ok(Err(kept));
        }
        server2.index.insert(&record, "index", false, now()).map(|()| Ok(record.body.info_hash))
    })
    .await;
    match stored {
        Ok(Ok(Ok(info_hash))) => json(StatusCode::OK, &serde_json::json!({ "info_hash": info_hash })),
        Ok(Ok(Err(kept))) => error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{publisher} keeps {kept} records here, the most this index takes from one publisher"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the store did not answer"),
    }
}

/// `GET /search` parameters.
#[derive(Deserialize)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
}

/// One search result as the index server answers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Found {
    /// The record.
    #[serde(flatten)]
    pub body: crate::record::RecordBody,
    /// The publisher's signature (so the caller can check the record itself).
    pub signature: String,
    /// A magnet link.
    pub magnet: String,
    /// Seeders last known.
    pub seeders: u32,
    /// BM25 score (lower ranks higher).
    pub score: f64,
}

/// What a signed query signs: its time and its words.
pub fn query_message(time: u64, q: &str) -> Vec<u8> {
    format!("shoal-search-v1\n{time}\n{q}").into_bytes()
}

/// The headers of a signed query for `q` by `identity`, showing the member certificates
/// `members` (pairs of authority and member certificate, PEM).
pub fn signed_query_headers(identity: &Identity, q: &str, members: &[(String, String)]) -> Vec<(String, String)> {
    let time = now();
    let signature: String = identity
        .sign(&query_message(time, q))
        .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default();
    let mut headers = vec![
        ("X-Shoal-Identity".to_string(), identity.id().compact()),
        ("X-Shoal-Time".to_string(), time.to_string()),
        ("X-Shoal-Signature".to_string(), signature),
    ];
    for (ca, cert) in members {
        let both = format!("{ca}{cert}");
        headers.push(("X-Shoal-Member".to_string(), base64::engine::general_purpose::STANDARD.encode(both)));
    }
    headers
}

/// The group fingerprints a signed query proves membership of (none for an unsigned one).
fn proven_groups(headers: &HeaderMap, q: &str) -> Result<Vec<String>, String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(id) = text("x-shoal-identity") else { return Ok(Vec::new()) };
    let id: IdentityId = id.parse().map_err(|e| format!("X-Shoal-Identity: {e}"))?;
    let time: u64 =
        text("x-shoal-time").and_then(|t| t.parse().ok()).ok_or("X-Shoal-Time is missing or not a number")?;
    if time.abs_diff(now()) > QUERY_SKEW_SECS {
        return Err(format!("X-Shoal-Time is more than {QUERY_SKEW_SECS} s from the server's clock"));
    }
    let signature = text("x-shoal-signature")
        .and_then(|s| {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()
        })
        .ok_or("X-Shoal-Signature is missing or not hex")?;
    if !id.verify(&query_message(time, q), &signature) {
        return Err("the query's signature is not its identity's".into());
    }
    let mut groups = Vec::new();
    for value in headers.get_all("x-shoal-member").iter().take(MAX_MEMBER_PAIRS) {
        let Some(pem) = value.to_str().ok().and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        else {
            continue;
        };
        let Ok(certs) = shoal_identity::certs_from_pem(&pem, "X-Shoal-Member") else { continue };
        if let [ca, cert] = certs.as_slice()
            && let Some(fp) = shoal_identity::Groups::member_of(ca, cert, id)
        {
            groups.push(fp.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    Ok(groups)
}

async fn search(State(server): State<Arc<Server>>, Query(p): Query<SearchParams>, headers: HeaderMap) -> Response {
    if p.q.chars().count() > crate::index::MAX_QUERY_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a query has at most {} characters", crate::index::MAX_QUERY_CHARS),
        );
    }
    let groups = match proven_groups(&headers, &p.q) {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let limit = p.limit.unwrap_or(50).clamp(1, MAX_RESULTS);
    let server2 = server.clone();
    let hits = tokio::task::spawn_blocking(move || server2.index.search(&p.q, &groups, &[], limit)).await;
    match hits {
        Ok(Ok(hits)) => {
            let results: Vec<Found> = hits
                .into_iter()
                .map(|h| Found {
                    magnet: h.record.magnet(),
                    signature: h.record.signature,
                    body: h.record.body,
                    seeders: h.seeders,
                    score: h.score,
                })
                .collect();
            json(StatusCode::OK, &serde_json::json!({ "results": results }))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the index did not answer"),
    }
}
