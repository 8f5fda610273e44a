//! The HTTP front: one axum [`Router`] serving the three dialects on one port (default
//! [`DEFAULT_LISTEN`], 127.0.0.1:9091).
//!
//! | path | methods | dialect |
//! |---|---|---|
//! | `/jsonrpc` | POST, `Content-Type: application/json` | [`crate::jsonrpc`] |
//! | `/xmlrpc` | POST, `Content-Type: text/xml` | [`crate::xmlrpc`] |
//! | `/transmission/rpc` (and `/transmission/rpc/`) | POST (GET for the session id) | [`crate::transmission`] |
//!
//! Every request passes these checks in order, and one that fails reaches no [`Api`] method:
//! 1. Credentials ([`Access`]): with a token, `Authorization: Bearer <token>` or
//!    `X-Shoal-Token: <token>`; with a user and password, HTTP Basic (what `transmission-remote
//!    --auth user:pw` sends). Wrong or missing: 401 with `WWW-Authenticate`.
//! 2. Without credentials (allowed on loopback only, see [`check_bind`]), the `Host` header must
//!    be an IP address or `localhost`: a web page that rebinds its own DNS name to 127.0.0.1
//!    gets 421 (Transmission's DNS rebinding protection, spec 2.3.2).
//! 3. The body is at most the configured limit ([`DEFAULT_BODY_LIMIT`]): 413 beyond.
//! 4. `/jsonrpc` and `/xmlrpc` need their content type (415 otherwise). Browsers cannot send
//!    those cross-site without a CORS preflight, which this server never grants, so a web page
//!    cannot forge calls (CSRF); `/transmission/rpc` gets the same protection from its
//!    `X-Transmission-Session-Id` handshake: 409 with the id (random per server) until the
//!    client sends it back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;

use crate::api::Api;
use crate::{jsonrpc, transmission, xmlrpc};

/// Where the RPC listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9091);
/// Largest request body accepted by default (a .torrent file in base64 fits easily).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The Transmission CSRF header (spec 2.3.1).
pub const SESSION_ID_HEADER: &str = "X-Transmission-Session-Id";
/// The header that may carry the token instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "X-Shoal-Token";

/// Who may call the RPC. With neither a token nor a user and password the RPC is open, which
/// [`check_bind`] allows on loopback only. Empty strings count as not set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// A secret sent as `Authorization: Bearer <token>` or `X-Shoal-Token: <token>`.
    pub token: Option<String>,
    /// A user name and password sent with HTTP Basic authentication.
    pub user_password: Option<(String, String)>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token().map(|_| "<redacted>"))
            .field("user", &self.user_password().map(|(u, _)| u))
            .finish()
    }
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// No credentials: anyone who can connect may call.
    pub fn open() -> Access {
        Access::default()
    }

    fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }

    fn user_password(&self) -> Option<(&str, &str)> {
        self.user_password
            .as_ref()
            .filter(|(u, p)| !u.is_empty() || !p.is_empty())
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// True when some credential is required.
    pub fn has_credentials(&self) -> bool {
        self.token().is_some() || self.user_password().is_some()
    }

    /// True when the request's headers carry a valid credential (or none is required).
    fn allows(&self, headers: &HeaderMap) -> bool {
        if !self.has_credentials() {
            return true;
        }
        let text = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
        if let Some(token) = self.token() {
            let bearer = text(header::AUTHORIZATION.as_str()).into_iter().filter_map(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
            if bearer.chain(text(TOKEN_HEADER).into_iter().map(str::trim)).any(|t| same(t.as_bytes(), token.as_bytes()))
            {
                return true;
            }
        }
        if let Some((user, password)) = self.user_password() {
            for v in text(header::AUTHORIZATION.as_str()) {
                let Some((scheme, rest)) = v.split_once(' ') else { continue };
                if !scheme.eq_ignore_ascii_case("basic") {
                    continue;
                }
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else { continue };
                let Some((u, p)) = std::str::from_utf8(&decoded).ok().and_then(|s| s.split_once(':')) else {
                    continue;
                };
                // Both comparisons run, so timing does not tell which one failed.
                let user_ok = same(u.as_bytes(), user.as_bytes());
                let password_ok = same(p.as_bytes(), password.as_bytes());
                if user_ok & password_ok {
                    return true;
                }
            }
        }
        false
    }
}

/// The RPC would listen beyond loopback with no credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to serve the RPC on {addr} without credentials: anyone who can reach it could control the node; \
     set a token or a user and password, or listen on 127.0.0.1"
)]
pub struct InsecureBind {
    /// The address asked for.
    pub addr: SocketAddr,
}

/// Refuses a non-loopback `addr` when `access` requires no credentials.
pub fn check_bind(addr: SocketAddr, access: &Access) -> Result<(), InsecureBind> {
    if addr.ip().is_loopback() || access.has_credentials() { Ok(()) } else { Err(InsecureBind { addr }) }
}

/// How the router behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Who may call.
    pub access: Access,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { access: Access::open(), body_limit: DEFAULT_BODY_LIMIT }
    }
}

struct Shared<A> {
    api: Arc<A>,
    access: Access,
    transmission: transmission::Context,
}

/// The router for `api` with `access` and the default body limit.
pub fn router<A: Api + 'static>(api: Arc<A>, access: Access) -> Router {
    router_with(api, Config { access, ..Config::default() })
}

/// The router for `api` with `config`.
pub fn router_with<A: Api + 'static>(api: Arc<A>, config: Config) -> Router {
    router_with_streams(api, config, Router::new())
}

/// The router for `api` with `config`, and `streams` (routes under `/stream/`) behind the same
/// credential check; there a `?token=` query parameter is accepted in place of the token
/// header, for players that cannot set headers.
pub fn router_with_streams<A: Api + 'static>(api: Arc<A>, config: Config, streams: Router) -> Router {
    let session_id: String = rand::rng().sample_iter(Alphanumeric).take(48).map(char::from).collect();
    let shared = Arc::new(Shared {
        api,
        access: config.access,
        transmission: transmission::Context {
            session_id,
            max_torrent_file: u64::try_from(config.body_limit).unwrap_or(u64::MAX),
        },
    });
    let rpc = post(transmission_rpc::<A>).get(transmission_get::<A>);
    Router::new()
        .route("/jsonrpc", post(json_rpc::<A>))
        .route("/xmlrpc", post(xml_rpc::<A>))
        .route("/transmission/rpc", rpc.clone())
        .route("/transmission/rpc/", rpc)
        .with_state(shared.clone())
        .merge(streams)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(middleware::from_fn_with_state(shared, guard::<A>))
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

/// True for a `Host` that names this machine by address or as localhost.
fn host_allowed(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.")
}

/// Checks credentials and the `Host` before anything else runs.
async fn guard<A: Api + 'static>(State(shared): State<Arc<Shared<A>>>, request: Request, next: Next) -> Response {
    let access = &shared.access;
    let query_token = request
        .uri()
        .path()
        .starts_with("/stream/")
        .then(|| request.uri().query())
        .flatten()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let by_query =
        query_token.is_some_and(|t| access.token().is_some_and(|token| same(t.as_bytes(), token.as_bytes())));
    if !by_query && !access.allows(request.headers()) {
        let mut response = plain(StatusCode::UNAUTHORIZED, "401: wrong or missing credentials");
        if access.user_password().is_some() {
            response.headers_mut().append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Shoal\""));
        }
        if access.token().is_some() {
            response.headers_mut().append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"Shoal\""));
        }
        return response;
    }
    if !access.has_credentials() && !host_allowed(request.headers()) {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            "421: an RPC without credentials answers only requests to an IP address or localhost",
        );
    }
    next.run(request).await
}

/// Runs a request's work on a task of its own, so that a client that disconnects (which drops
/// the handler's future) cannot cancel an operation halfway: it completes, and only its answer
/// is lost. `Err` is the 500 answer when the work panicked.
async fn detached<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Result<T, Response> {
    tokio::spawn(work)
        .await
        .map_err(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "500: the request failed inside the daemon"))
}

fn media_type(headers: &HeaderMap) -> String {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

async fn json_rpc<A: Api + 'static>(State(shared): State<Arc<Shared<A>>>, headers: HeaderMap, body: Bytes) -> Response {
    if !matches!(media_type(&headers).as_str(), "application/json" | "application/json-rpc" | "application/jsonrequest")
    {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "415: JSON-RPC needs Content-Type: application/json");
    }
    let out = detached(async move { jsonrpc::handle(&*shared.api, &body).await }).await;
    match out {
        Ok(Some(out)) => ([(header::CONTENT_TYPE, "application/json")], out).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(failed) => failed,
    }
}

async fn xml_rpc<A: Api + 'static>(State(shared): State<Arc<Shared<A>>>, headers: HeaderMap, body: Bytes) -> Response {
    if !matches!(media_type(&headers).as_str(), "text/xml" | "application/xml") {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "415: XML-RPC needs Content-Type: text/xml");
    }
    match detached(async move { xmlrpc::handle(&*shared.api, &body).await }).await {
        Ok(out) => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], out).into_response(),
        Err(failed) => failed,
    }
}

/// The 409 answer when the request lacks this server's session id, `None` when it has it.
fn session_check<A>(shared: &Shared<A>, headers: &HeaderMap) -> Option<Response> {
    let id = &shared.transmission.session_id;
    let sent = headers.get(SESSION_ID_HEADER).and_then(|v| v.to_str().ok());
    if sent.is_some_and(|s| same(s.trim().as_bytes(), id.as_bytes())) {
        return None;
    }
    let mut response = plain(StatusCode::CONFLICT, &format!("409: Conflict\n{SESSION_ID_HEADER}: {id}"));
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(SESSION_ID_HEADER, value);
    }
    Some(response)
}

async fn transmission_rpc<A: Api + 'static>(
    State(shared): State<Arc<Shared<A>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(conflict) = session_check(&shared, &headers) {
        return conflict;
    }
    let out = detached(async move { transmission::handle(&*shared.api, &shared.transmission, &body).await }).await;
    match out {
        Ok(out) => ([(header::CONTENT_TYPE, "application/json; charset=UTF-8")], out).into_response(),
        Err(failed) => failed,
    }
}

async fn transmission_get<A: Api + 'static>(State(shared): State<Arc<Shared<A>>>, headers: HeaderMap) -> Response {
    match session_check(&shared, &headers) {
        Some(conflict) => conflict,
        None => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "405: send requests with POST");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            response
        }
    }
}

#[cfg(test)]
mod tests;
