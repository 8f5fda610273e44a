//! The index server (`shoal index`): publishers send signed records, anyone searches.
//!
//! - `POST /publish` with a [`Record`] as JSON (at most [`crate::record::MAX_RECORD_BYTES`]):
//!   `200 {"info_hash": ...}`, or `400 {"error": ...}` for a record that is malformed, unsigned
//!   or badly signed, `429` past the publisher's limits (records kept per identity, publishes
//!   per minute).
//! - `GET /search?q=WORDS[&limit=N]`: `200 {"results": [...]}`, best first (see
//!   [`crate::index`]); each result is the record's fields plus `signature`, `magnet` and
//!   `score`.
//!   Records of group shares are returned only to a caller that proves membership: a signed
//!   query (headers `X-Shoal-Identity: ID`, `X-Shoal-Time: UNIX_SECONDS` within 5 minutes,
//!   `X-Shoal-Signature: HEX` over [`query_message`], and one `X-Shoal-Member: BASE64` per group:
//!   the group's authority certificate and the caller's member certificate, PEM, one after the
//!   other). The server holds no group's revocation list: a revoked member still sees the
//!   group's records here (not the data, which its members refuse it).
//!
//! Bounds: records of at most 64 KiB, at most `per_identity` records kept per publisher,
//! `per_minute` stored records per publisher per minute (a replay of a record already here costs
//! nothing) and 4 × `per_minute` publish requests per address per minute (budgets refill
//! continuously; at most 10,000 of each are tracked, the longest idle forgotten first), queries
//! of at most 256 characters and 100 results, 4 searches at once, at most 8 member certificate
//! pairs per query. Each publisher has its own record of a torrent: nobody takes an info-hash
//! over from another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use shoal_identity::{Identity, IdentityId};

use crate::index::{Index, Stored};
use crate::record::{MAX_RECORD_BYTES, Record};

/// How far a signed query's time may be from the server's.
pub const QUERY_SKEW_SECS: u64 = 300;
/// Most results one query returns.
pub const MAX_RESULTS: usize = 100;
/// Publishers whose publish rate is tracked at once.
const MAX_TRACKED: usize = 10_000;
/// Member certificate pairs read from one query.
const MAX_MEMBER_PAIRS: usize = 8;
/// Searches run at once (more wait their turn).
const MAX_SEARCHES: usize = 4;

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

/// Spending budgets that refill continuously, per key (a publisher, an address), for at most
/// [`MAX_TRACKED`] keys (the longest idle forgotten first).
struct Budgets<K> {
    per_minute: u32,
    budgets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: std::hash::Hash + Eq + Copy> Budgets<K> {
    fn new(per_minute: u32) -> Self {
        Budgets { per_minute: per_minute.max(1), budgets: Mutex::new(HashMap::new()) }
    }

    /// Refills `key`'s budget; with `take`, spends one. Returns whether one was there.
    fn check(&self, key: K, take: bool) -> bool {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let full = f64::from(self.per_minute);
        if !budgets.contains_key(&key) && budgets.len() >= MAX_TRACKED {
            let idle = budgets.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
            if let Some(k) = idle {
                budgets.remove(&k);
            }
        }
        let (tokens, at) = budgets.entry(key).or_insert((full, Instant::now()));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * full / 60.0).min(full);
        *at = Instant::now();
        let there = *tokens >= 1.0;
        if there && take {
            *tokens -= 1.0;
        }
        there
    }
}

struct Server {
    index: Index,
    limits: Limits,
    /// Publishes per publisher: spent only on a record that changes the index.
    publishers: Budgets<IdentityId>,
    /// Publish requests per address, whatever they carry.
    addresses: Budgets<std::net::IpAddr>,
    /// Searches running at once.
    searching: tokio::sync::Semaphore,
    /// The tracker beside the index, if any.
    seeders: Option<Seeders>,
}

/// The index server's routes over `index`.
pub fn router(index: Index, limits: Limits) -> axum::Router {
    router_with_seeders(index, limits, None)
}

/// The index server's routes over `index`, each result with the seeders `seeders` counts.
pub fn router_with_seeders(index: Index, limits: Limits, seeders: Option<Seeders>) -> axum::Router {
    let server = Arc::new(Server {
        seeders,
        index,
        limits,
        publishers: Budgets::new(limits.per_minute),
        addresses: Budgets::new(limits.per_minute.saturating_mul(4)),
        searching: tokio::sync::Semaphore::new(MAX_SEARCHES),
    });
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

async fn publish(
    State(server): State<Arc<Server>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    if !server.addresses.check(from.ip(), true) {
        return error(StatusCode::TOO_MANY_REQUESTS, format!("too many publishes from {}; wait", from.ip()));
    }
    let (record, publisher) = match Record::from_json(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !server.publishers.check(publisher, false) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{publisher} published more than {} records in a minute; wait", server.limits.per_minute),
        );
    }
    let server2 = server.clone();
    let info_hash = record.body.info_hash.clone();
    let stored = tokio::task::spawn_blocking(move || {
        server2.index.insert(&record, "index", false, now(), Some(server2.limits.per_identity))
    })
    .await;
    match stored {
        Ok(Ok(Stored::OverLimit(kept))) => error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{publisher} keeps {kept} records here, the most this index takes from one publisher"),
        ),
        Ok(Ok(stored)) => {
            // A replay of a record already here costs its publisher nothing.
            if stored != Stored::Unchanged {
                server.publishers.check(publisher, true);
            }
            let changed = if stored == Stored::Unchanged { "unchanged" } else { "stored" };
            json(StatusCode::OK, &serde_json::json!({ "info_hash": info_hash, "result": changed }))
        }
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
    /// BM25 score (lower ranks higher).
    pub score: f64,
    /// Seeders the index's tracker counts now (absent: it has no tracker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeders: Option<u32>,
}

/// Counts a torrent's seeders (its info-hash in hex): the tracker sharing the index's port.
pub type Seeders = Arc<dyn Fn(&str) -> u32 + Send + Sync>;

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
    let Ok(_slot) = server.searching.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the index is closing");
    };
    let server2 = server.clone();
    let hits = tokio::task::spawn_blocking(move || server2.index.search(&p.q, &groups, &[], limit)).await;
    match hits {
        Ok(Ok(hits)) => {
            let results: Vec<Found> = hits
                .into_iter()
                .map(|h| Found {
                    magnet: h.record.magnet(),
                    seeders: server.seeders.as_ref().map(|count| count(&h.record.body.info_hash)),
                    signature: h.record.signature,
                    body: h.record.body,
                    score: h.score,
                })
                .collect();
            json(StatusCode::OK, &serde_json::json!({ "results": results }))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the index did not answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_identity::Groups;

    fn headers(list: Vec<(String, String)>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in list {
            let name = axum::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("name");
            map.append(name, v.parse().expect("value"));
        }
        map
    }

    #[test]
    fn a_signed_query_proves_only_its_own_signers_membership() {
        let dir = tempfile::tempdir().expect("tempdir");
        let person = |n: &str| {
            let path = dir.path().join(n);
            let (id, _) = Identity::load_or_create(&path, None).expect("identity");
            (id, Groups::new(&path))
        };
        let (alice, alice_groups) = person("alice");
        let (bob, bob_groups) = person("bob");
        let (mallory, _) = person("mallory");
        alice_groups.create(&alice, "lab").expect("group");
        let invitation = alice_groups.invite("lab", bob.id(), None, 7, false).expect("invite");
        bob_groups.join(&bob, &invitation).expect("join");
        let m = bob_groups.membership(&bob, "lab").expect("membership");
        let pair = vec![(shoal_identity::pem_cert(&m.ca), shoal_identity::pem_cert(&m.cert))];
        let expected = shoal_identity::CertInfo::parse(&m.ca, "ca").expect("ca").fingerprint;
        let expected: String = expected.iter().map(|b| format!("{b:02x}")).collect();

        // bob's own query proves lab.
        let h = headers(signed_query_headers(&bob, "lecture", &pair));
        assert_eq!(proven_groups(&h, "lecture"), Ok(vec![expected]));
        // bob's certificate under mallory's signature proves nothing.
        let h = headers(signed_query_headers(&mallory, "lecture", &pair));
        assert_eq!(proven_groups(&h, "lecture"), Ok(Vec::new()));
        // bob's signed query replayed for other words is refused; so is an unsigned identity.
        let h = headers(signed_query_headers(&bob, "lecture", &pair));
        assert!(proven_groups(&h, "exam answers").is_err());
        let mut h = headers(signed_query_headers(&bob, "lecture", &pair));
        h.insert("x-shoal-time", "1".parse().expect("value"));
        assert!(proven_groups(&h, "lecture").expect_err("stale").contains("clock"));
        assert_eq!(proven_groups(&HeaderMap::new(), "lecture"), Ok(Vec::new()));
    }
}
