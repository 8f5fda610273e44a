//! The remote commands (`shoal add`, `list`, `status`, `set`, `pause`, `resume`, `verify`,
//! `reannounce`, `remove`): JSON-RPC
//! calls to a running `shoal daemon`, printed as readable tables or, with `--json`, as the
//! daemon's answer.
//!
//! Which daemon, and with which credentials ([`Remote::resolve`], also used by `shoal tui`):
//! each setting on its own, the first source that sets it wins.
//! 1. The flags `--rpc`, `--token`, `--user` and `--password`.
//! 2. The environment: `SHOAL_RPC`, `SHOAL_TOKEN`, `SHOAL_USER`, `SHOAL_PASSWORD` (empty counts
//!    as unset).
//! 3. The client config file `$XDG_CONFIG_HOME/shoal/client.toml` (default
//!    `~/.config/shoal/client.toml`; [`ClientConfig`]), read on every run when it exists.
//! 4. `http://127.0.0.1:9091/jsonrpc` and no credentials.
//!
//! The daemon's address may be `HOST:PORT`, a base URL or the `/jsonrpc` URL ([`RpcUrl`]). A
//! token is sent as `Authorization: Bearer`; a user and password as HTTP Basic (what the
//! daemon's `[rpc] user`/`password` check, and all Transmission clients send); with both, the
//! token goes in `X-Shoal-Token`. When the daemon answers 401 the message says which
//! credential it refused, where that one came from and where credentials are set.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use base64::Engine;
use indicatif::HumanBytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{
    RemoteAddArgs, RemoteArgs, RemoteFreeSpaceArgs, RemoteIdArgs, RemoteMoveArgs, RemoteRemoveArgs, RemoteSetArgs,
};

/// Longest wait for the daemon's answer.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The daemon's address when nothing else names one (its default `--rpc-listen`).
const DEFAULT_RPC: &str = "http://127.0.0.1:9091/jsonrpc";
/// What `--rpc`, `SHOAL_RPC` and `rpc` in client.toml accept, for messages.
const RPC_FORMS: &str = "give HOST:PORT, http://HOST:PORT/ or the daemon's /jsonrpc URL";

/// The daemon's JSON-RPC URL. Invariant: http or https, a host, no user or password, no query
/// or fragment, and a path ending in `/jsonrpc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpcUrl(reqwest::Url);

impl RpcUrl {
    /// Reads `HOST:PORT` (`127.0.0.1:9091`, `[::1]:9091`, `nas.local:9091`), a base URL
    /// (`http://host:9091`, `http://host:9091/`, `https://proxy/shoal/`) or the full URL
    /// (`http://host:9091/jsonrpc`); the first two lead to `/jsonrpc`. The error quotes `s`.
    pub(crate) fn parse(s: &str) -> Result<RpcUrl, String> {
        if !s.contains("://") {
            return host_port_url(s).ok_or_else(|| format!("{s:?} is not HOST:PORT or an http(s) URL ({RPC_FORMS})"));
        }
        let mut url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e} ({RPC_FORMS})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{s:?}: the daemon answers http or https, not {}", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{s:?}: credentials do not belong in the URL; use --user/--password, SHOAL_USER/SHOAL_PASSWORD \
                 or user/password in client.toml"
            ));
        }
        if url.host().is_none() {
            return Err(format!("{s:?} names no host ({RPC_FORMS})"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{s:?}: the daemon's URL has no query or fragment ({RPC_FORMS})"));
        }
        let trimmed = url.path().trim_end_matches('/');
        let path = if trimmed.ends_with("/jsonrpc") {
            trimmed.to_owned()
        } else if url.path().ends_with('/') {
            format!("{trimmed}/jsonrpc")
        } else {
            return Err(format!("{s:?} is not the daemon's JSON-RPC URL ({RPC_FORMS})"));
        };
        url.set_path(&path);
        Ok(RpcUrl(url))
    }
}

/// `http://HOST:PORT/jsonrpc` for `HOST:PORT`, if `s` is one.
fn host_port_url(s: &str) -> Option<RpcUrl> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    if host.is_empty() || host.contains(['/', '\\', '@', '?', '#']) || host.chars().any(char::is_whitespace) {
        return None;
    }
    let url = reqwest::Url::parse(&format!("http://{host}:{port}/jsonrpc")).ok()?;
    // Anything the URL parser read differently (a port in the host, a path) is refused.
    (url.port_or_known_default() == Some(port) && url.path() == "/jsonrpc").then_some(RpcUrl(url))
}

impl fmt::Display for RpcUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Where a setting came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The command-line flag of this name.
    Flag(&'static str),
    /// The environment variable of this name.
    Env(&'static str),
    /// The client config file.
    File,
    /// Nothing set it.
    Default,
}

/// A value and where it came from.
#[derive(Clone, PartialEq, Eq)]
struct Setting<T> {
    value: T,
    origin: Origin,
}

/// The first of the flag, the environment variable and the config file's value that is set.
fn pick(
    flag: (&'static str, Option<&String>),
    env: (&'static str, Option<String>),
    file: Option<String>,
) -> Option<Setting<String>> {
    let (flag_name, flag) = flag;
    let (env_name, env) = env;
    flag.map(|v| Setting { value: v.clone(), origin: Origin::Flag(flag_name) })
        .or_else(|| env.map(|v| Setting { value: v, origin: Origin::Env(env_name) }))
        .or_else(|| file.map(|v| Setting { value: v, origin: Origin::File }))
}

/// The remote commands' environment variables (unset or empty: `None`).
#[derive(Default)]
struct Environment {
    /// `SHOAL_RPC`.
    rpc: Option<String>,
    /// `SHOAL_TOKEN`.
    token: Option<String>,
    /// `SHOAL_USER`.
    user: Option<String>,
    /// `SHOAL_PASSWORD`.
    password: Option<String>,
}

impl Environment {
    fn read() -> Result<Environment, Failure> {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Failure::Input(anyhow!("{name} is not valid UTF-8"))),
        };
        Ok(Environment {
            rpc: var("SHOAL_RPC")?,
            token: var("SHOAL_TOKEN")?,
            user: var("SHOAL_USER")?,
            password: var("SHOAL_PASSWORD")?,
        })
    }
}

/// The client config file, `client.toml`: defaults for the remote commands. Every key is
/// optional; unknown keys are refused, naming the file, line and key.
///
/// ```toml
/// rpc = "http://192.0.2.7:9091/"   # HOST:PORT, a base URL or the /jsonrpc URL
/// token = "long-random-string"
/// user = "alice"                    # with password; keep this file private (mode 0600)
/// password = "secret"
/// ```
#[derive(Default)]
struct ClientConfig {
    /// `rpc`, checked.
    rpc: Option<RpcUrl>,
    /// `token`.
    token: Option<String>,
    /// `user`.
    user: Option<String>,
    /// `password`.
    password: Option<String>,
}

/// [`ClientConfig`] as written in the file.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ClientConfigText {
    rpc: Option<toml::Spanned<String>>,
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

impl ClientConfig {
    /// Reads the file at `path` (named `shown` in messages); a missing file sets nothing.
    fn load(path: &Path, shown: &str) -> Result<ClientConfig, Failure> {
        match std::fs::read_to_string(path) {
            Ok(text) => ClientConfig::parse(&text, shown).map_err(|e| Failure::Input(anyhow!(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(Failure::Input(anyhow!("cannot read the client config {shown}: {e}"))),
        }
    }

    /// Parses the file's `text`; the error names `shown`, the line, the column and the key.
    fn parse(text: &str, shown: &str) -> Result<ClientConfig, String> {
        let at = |offset: usize, key: Option<&str>, message: &str| {
            let (line, column) = shoal_state::config::line_column(text, offset.min(text.len()));
            match key {
                Some(key) => format!("client config {shown}, line {line}, column {column}, key `{key}`: {message}"),
                None => format!("client config {shown}, line {line}, column {column}: {message}"),
            }
        };
        let toml_error =
            |e: &toml::de::Error, key: Option<&str>| at(e.span().map_or(0, |span| span.start), key, e.message().trim());
        let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(&e, None))?;
        let file: ClientConfigText = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            toml_error(e.inner(), (key != ".").then_some(key.as_str()))
        })?;
        let rpc = match file.rpc {
            Some(rpc) => Some(RpcUrl::parse(rpc.get_ref()).map_err(|e| at(rpc.span().start, Some("rpc"), &e))?),
            None => None,
        };
        Ok(ClientConfig { rpc, token: file.token, user: file.user, password: file.password })
    }
}

/// `$XDG_CONFIG_HOME/shoal/client.toml`, or `~/.config/shoal/client.toml` when
/// `XDG_CONFIG_HOME` is unset, empty or relative (as the XDG Base Directory spec says).
fn client_config_path(xdg_config_home: Option<OsString>, home: Option<&Path>) -> Option<PathBuf> {
    let xdg = xdg_config_home.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| home.map(|h| h.join(".config")))?;
    Some(base.join("shoal").join("client.toml"))
}

/// `path` as messages show it: `~/...` under the home folder.
fn shown_path(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// HTTP Basic credentials.
struct Basic {
    user: Setting<String>,
    password: Setting<String>,
}

/// Which daemon and which credentials, from the flags, the environment and the client config
/// file (see the module doc).
struct Endpoint {
    url: Setting<RpcUrl>,
    token: Option<Setting<String>>,
    basic: Option<Basic>,
    /// The client config file as messages name it.
    config_file: String,
}

impl Endpoint {
    /// Resolves each setting from its sources; a malformed `SHOAL_RPC`, or a user without a
    /// password (or the reverse), is bad input.
    fn from_sources(
        args: &RemoteArgs,
        env: Environment,
        file: ClientConfig,
        config_file: String,
    ) -> Result<Endpoint, Failure> {
        let url = if let Some(url) = &args.rpc {
            Setting { value: url.clone(), origin: Origin::Flag("--rpc") }
        } else if let Some(text) = &env.rpc {
            let url = RpcUrl::parse(text).map_err(|e| Failure::Input(anyhow!("SHOAL_RPC: {e}")))?;
            Setting { value: url, origin: Origin::Env("SHOAL_RPC") }
        } else if let Some(url) = file.rpc {
            Setting { value: url, origin: Origin::File }
        } else {
            let url = RpcUrl::parse(DEFAULT_RPC).map_err(|e| anyhow!("the default RPC URL: {e}"))?;
            Setting { value: url, origin: Origin::Default }
        };
        let token = pick(("--token", args.token.as_ref()), ("SHOAL_TOKEN", env.token), file.token);
        let user = pick(("--user", args.user.as_ref()), ("SHOAL_USER", env.user), file.user);
        let password = pick(("--password", args.password.as_ref()), ("SHOAL_PASSWORD", env.password), file.password);
        let mut endpoint = Endpoint { url, token, basic: None, config_file };
        endpoint.basic = match (user, password) {
            (Some(user), Some(password)) => Some(Basic { user, password }),
            (None, None) => None,
            (Some(user), None) => {
                return Err(Failure::Input(anyhow!(
                    "a user is set ({}) but no password: set one with --password, SHOAL_PASSWORD or password in {}",
                    endpoint.origin(user.origin),
                    endpoint.config_file
                )));
            }
            (None, Some(password)) => {
                return Err(Failure::Input(anyhow!(
                    "a password is set ({}) but no user: set one with --user, SHOAL_USER or user in {}",
                    endpoint.origin(password.origin),
                    endpoint.config_file
                )));
            }
        };
        Ok(endpoint)
    }

    /// Names a setting's source: `--token`, `SHOAL_TOKEN`, the config file.
    fn origin(&self, origin: Origin) -> String {
        match origin {
            Origin::Flag(name) | Origin::Env(name) => name.to_owned(),
            Origin::File => self.config_file.clone(),
            Origin::Default => "the default".to_owned(),
        }
    }

    /// The URL, with its source when that is out of sight (the environment or the config
    /// file): `URL (from SHOAL_RPC)`.
    fn describe_url(&self) -> String {
        match self.url.origin {
            Origin::Flag(_) | Origin::Default => self.url.value.to_string(),
            origin @ (Origin::Env(_) | Origin::File) => format!("{} (from {})", self.url.value, self.origin(origin)),
        }
    }

    /// See [`Remote::stream_url`].
    fn stream_url(&self, path: &str) -> String {
        let mut url = self.url.value.0.clone();
        let base = url.path().trim_end_matches("/jsonrpc").to_owned();
        url.set_path(&format!("{base}{path}"));
        if let Some(token) = &self.token {
            url.query_pairs_mut().append_pair("token", &token.value);
        } else if let Some(basic) = &self.basic {
            let _ = url.set_username(&basic.user.value);
            let _ = url.set_password(Some(&basic.password.value));
        }
        url.to_string()
    }

    /// Adds the credentials to `request`.
    fn authorize(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(basic) = &self.basic {
            request = request.basic_auth(&basic.user.value, Some(&basic.password.value));
            if let Some(token) = &self.token {
                request = request.header(shoal_rpc::http::TOKEN_HEADER, &token.value);
            }
        } else if let Some(token) = &self.token {
            request = request.bearer_auth(&token.value);
        }
        request
    }

    fn token_places(&self) -> String {
        format!("--token, SHOAL_TOKEN or token in {}", self.config_file)
    }

    fn basic_places(&self) -> String {
        format!("--user/--password, SHOAL_USER/SHOAL_PASSWORD or user/password in {}", self.config_file)
    }

    /// The message for a 401 answer; `schemes` are the daemon's `WWW-Authenticate` schemes.
    fn refused(&self, schemes: &Schemes) -> String {
        let url = self.describe_url();
        // A daemon that names no scheme may take either.
        let (wants_token, wants_basic) = match (schemes.bearer, schemes.basic) {
            (false, false) => (true, true),
            known => known,
        };
        let mut refused = Vec::new();
        if let Some(token) = &self.token {
            refused.push(format!("the token (from {}; set with {})", self.origin(token.origin), self.token_places()));
        }
        if let Some(basic) = &self.basic {
            let from = match (basic.user.origin, basic.password.origin) {
                (Origin::File, Origin::File) => format!("from {}", self.config_file),
                (user, password) if std::mem::discriminant(&user) == std::mem::discriminant(&password) => {
                    format!("from {} and {}", self.origin(user), self.origin(password))
                }
                (user, password) => format!("user from {}, password from {}", self.origin(user), self.origin(password)),
            };
            refused.push(format!(
                "the password for user {:?} ({from}; set with {})",
                basic.user.value,
                self.basic_places()
            ));
        }
        if refused.is_empty() {
            let how = match (wants_token, wants_basic) {
                (true, false) => format!("a token: {}", self.token_places()),
                (false, true) => format!("a user and password: {}", self.basic_places()),
                _ => format!(
                    "--token or --user/--password, SHOAL_TOKEN or SHOAL_USER/SHOAL_PASSWORD, or token or \
                     user/password in {}",
                    self.config_file
                ),
            };
            return format!("the daemon at {url} refused: no credentials were sent; the daemon requires them ({how})");
        }
        let mut line = format!("the daemon at {url} refused {}", refused.join(" and "));
        if self.basic.is_none() && wants_basic && !wants_token {
            line.push_str(&format!("; it takes a user and password instead: {}", self.basic_places()));
        }
        if self.token.is_none() && wants_token && !wants_basic {
            line.push_str(&format!("; it takes a token instead: {}", self.token_places()));
        }
        line
    }
}

/// The authentication schemes a 401 answer offers (`WWW-Authenticate`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Schemes {
    bearer: bool,
    basic: bool,
}

impl Schemes {
    fn of(headers: &reqwest::header::HeaderMap) -> Schemes {
        let mut schemes = Schemes::default();
        for value in headers.get_all(reqwest::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()) {
            let scheme = value.split_whitespace().next().unwrap_or_default();
            schemes.bearer |= scheme.eq_ignore_ascii_case("bearer");
            schemes.basic |= scheme.eq_ignore_ascii_case("basic");
        }
        schemes
    }
}

/// The daemon to call and how, resolved once per run (see the module doc), with the HTTP
/// client every call shares.
pub(crate) struct Remote {
    endpoint: Endpoint,
    client: reqwest::Client,
    /// `--json`: answers are printed as the daemon sent them.
    pub(crate) json: bool,
}

impl Remote {
    /// Resolves `args` with the environment and the client config file.
    pub(crate) fn resolve(args: &RemoteArgs) -> Result<Remote, Failure> {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let (file, config_file) = match client_config_path(std::env::var_os("XDG_CONFIG_HOME"), home.as_deref()) {
            Some(path) => {
                let shown = shown_path(&path, home.as_deref());
                (ClientConfig::load(&path, &shown)?, shown)
            }
            None => (ClientConfig::default(), "~/.config/shoal/client.toml".to_owned()),
        };
        let endpoint = Endpoint::from_sources(args, Environment::read()?, file, config_file)?;
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().context("cannot start the HTTP client")?;
        Ok(Remote { endpoint, client, json: args.json })
    }

    /// The daemon's JSON-RPC URL.
    pub(crate) fn url(&self) -> &RpcUrl {
        &self.endpoint.url.value
    }

    /// The URL a player opens for `path` (a `/stream/...` path `torrent.get` gave): next to the
    /// RPC URL, with the credentials a player can carry (`?token=`, or user and password in the
    /// URL).
    pub(crate) fn stream_url(&self, path: &str) -> String {
        self.endpoint.stream_url(path)
    }
}

/// Calls `method` with `params`; the JSON-RPC error, if any, becomes a one-line failure.
pub(crate) async fn call(remote: &Remote, method: &str, params: Value) -> Result<Value, Failure> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let request = remote
        .client
        .post(remote.url().0.clone())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).context("encoding the request")?);
    let response = remote.endpoint.authorize(request).send().await.map_err(|e| {
        anyhow!(
            "cannot reach the daemon at {}: {} (is `shoal daemon` running?)",
            remote.endpoint.describe_url(),
            e.without_url()
        )
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        let schemes = Schemes::of(response.headers());
        return Err(Failure::Runtime(anyhow!(remote.endpoint.refused(&schemes))));
    }
    let bytes = response.bytes().await.map_err(|e| anyhow!("reading the daemon's answer: {}", e.without_url()))?;
    let reply: Value = serde_json::from_slice(&bytes).map_err(|_| {
        anyhow!("the daemon at {} answered HTTP {status} without JSON-RPC", remote.endpoint.describe_url())
    })?;
    if let Some(err) = reply.get("error") {
        let message = crate::text::printable(err.get("message").and_then(Value::as_str).unwrap_or("unknown error"));
        let failure = anyhow!("{method}: {message}");
        // Bad ids and parameters are the user's input.
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let input =
            [shoal_rpc::jsonrpc::INVALID_PARAMS, shoal_rpc::jsonrpc::NOT_FOUND, shoal_rpc::jsonrpc::BAD_TORRENT]
                .iter()
                .any(|c| i64::from(*c) == code);
        return Err(if input { Failure::Input(failure) } else { Failure::Runtime(failure) });
    }
    let mut result = reply.get("result").cloned().unwrap_or(Value::Null);
    if !remote.json {
        // Shown as text: names and paths come from torrents made by strangers.
        crate::text::scrub(&mut result);
    }
    Ok(result)
}

/// Reads a .torrent file and checks it parses, so a bad file is reported by name (exit 2)
/// before the daemon is asked.
fn read_torrent_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let shown = crate::text::printable(&path.display().to_string()).into_owned();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}")).map_err(Failure::Input)?;
    if !meta.is_file() {
        return Err(Failure::Input(anyhow!("{shown} is not a file")));
    }
    if meta.len() > crate::get::MAX_TORRENT_FILE {
        return Err(Failure::Input(anyhow!("{shown} is {} bytes, too large for a .torrent file", meta.len())));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}")).map_err(Failure::Input)?;
    shoal_proto::Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{shown} is not a valid torrent"))
        .map_err(Failure::Input)?;
    Ok(bytes)
}

/// `ids` as the API takes them: numbers, info-hashes, or `all`.
fn ids(list: &[String]) -> Value {
    if list.iter().any(|i| i == "all") {
        return json!("all");
    }
    Value::Array(list.iter().map(|i| i.parse::<u64>().map_or_else(|_| json!(i), |n| json!(n))).collect())
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn rate(v: &Value) -> String {
    let r = v.as_u64().unwrap_or(0);
    if r == 0 { "-".into() } else { format!("{}/s", HumanBytes(r)) }
}

pub(crate) async fn add(a: RemoteAddArgs) -> Result<(), Failure> {
    let mut params = if a.source.starts_with("magnet:") {
        json!({"magnet": a.source})
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        json!({"url": a.source})
    } else {
        let bytes = read_torrent_file(std::path::Path::new(&a.source))?;
        json!({"torrent": base64::engine::general_purpose::STANDARD.encode(bytes)})
    };
    params["paused"] = json!(a.paused);
    if !a.peers.is_empty() {
        params["peers"] = json!(a.peers);
    }
    if !a.labels.is_empty() {
        params["labels"] = json!(a.labels);
    }
    if a.sequential {
        params["sequential"] = json!(true);
    }
    if let Some(dir) = &a.output {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        params["download_dir"] = json!(dir.display().to_string());
    }
    let remote = Remote::resolve(&a.remote)?;
    let result = call(&remote, "torrent.add", params).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let what = if result["duplicate"].as_bool() == Some(true) { "already there" } else { "added" };
        println!(
            "{what}: {} {} ({})",
            result["id"],
            result["name"].as_str().unwrap_or("?"),
            result["info_hash"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub(crate) async fn list(a: RemoteArgs) -> Result<(), Failure> {
    let result = call(&Remote::resolve(&a)?, "torrent.list", json!({})).await?;
    if a.json {
        print_json(&result);
        return Ok(());
    }
    let torrents = result.as_array().cloned().unwrap_or_default();
    println!(
        "{:>4}  {:<11}  {:>6}  {:>10}  {:>11}  {:>11}  {:>5}  name",
        "id", "state", "done", "size", "down", "up", "peers"
    );
    for t in &torrents {
        println!(
            "{:>4}  {:<11}  {:>5.1}%  {:>10}  {:>11}  {:>11}  {:>5}  {}",
            t["id"].as_u64().unwrap_or(0),
            t["state"].as_str().unwrap_or("?"),
            t["progress"].as_f64().unwrap_or(0.0) * 100.0,
            HumanBytes(t["total_bytes"].as_u64().unwrap_or(0)).to_string(),
            rate(&t["download_rate"]),
            rate(&t["upload_rate"]),
            t["peers"].as_u64().unwrap_or(0),
            t["name"].as_str().unwrap_or("?"),
        );
    }
    if torrents.is_empty() {
        println!("(no torrents)");
    }
    Ok(())
}

pub(crate) async fn status(a: RemoteIdArgs) -> Result<(), Failure> {
    let result = call(&Remote::resolve(&a.remote)?, "torrent.get", json!({"ids": ids(&a.ids)})).await?;
    if a.remote.json {
        print_json(&result);
        return Ok(());
    }
    for t in result.as_array().cloned().unwrap_or_default() {
        println!("id:        {}", t["id"]);
        println!("name:      {}", t["name"].as_str().unwrap_or("?"));
        println!("hash:      {}", t["info_hash"].as_str().unwrap_or("?"));
        println!("state:     {}", t["state"].as_str().unwrap_or("?"));
        println!(
            "progress:  {:.1}% of {}",
            t["progress"].as_f64().unwrap_or(0.0) * 100.0,
            HumanBytes(t["wanted_bytes"].as_u64().unwrap_or(0))
        );
        println!("rates:     down {}, up {}", rate(&t["download_rate"]), rate(&t["upload_rate"]));
        println!("peers:     {}", t["peers"]);
        println!("folder:    {}", t["download_dir"].as_str().unwrap_or("?"));
        if let Some(e) = t["error"].as_str() {
            println!("error:     {e}");
        }
        let goal = |own: &Value, unit: &str| match (own.as_f64(), own.as_str()) {
            (Some(v), _) => format!("{v}{unit}"),
            (None, Some(word)) => word.to_owned(),
            (None, None) => "the daemon's".to_owned(),
        };
        println!(
            "seed goal: ratio {}, time {}, idle {}",
            goal(&t["seed_ratio_limit"], ""),
            goal(&t["seed_time_limit"], " s"),
            goal(&t["seed_idle_limit"], " s")
        );
        let labels: Vec<&str> =
            t["labels"].as_array().map(|l| l.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if !labels.is_empty() {
            println!("labels:    {}", labels.join(", "));
        }
        if t["sequential"].as_bool() == Some(true) {
            println!("order:     sequential (first piece to last)");
        }
        for tr in t["trackers"].as_array().cloned().unwrap_or_default() {
            let last = match (tr["last_error"].as_str(), tr["last_peers"].as_u64()) {
                (Some(e), _) => format!("failed: {e}"),
                (None, Some(n)) => format!("{n} peers"),
                (None, None) => "not announced yet".to_owned(),
            };
            println!("  tracker  {} ({last})", tr["url"].as_str().unwrap_or("?"));
        }
        for f in t["files"].as_array().cloned().unwrap_or_default() {
            let (have, length) = (f["have"].as_u64().unwrap_or(0), f["length"].as_u64().unwrap_or(0));
            let done = if length == 0 { 100.0 } else { have as f64 * 100.0 / length as f64 };
            println!(
                "  file     {} ({}, {done:.1}% done, {})",
                f["path"].as_str().unwrap_or("?"),
                HumanBytes(length),
                f["priority"].as_str().unwrap_or("normal")
            );
        }
    }
    Ok(())
}

pub(crate) async fn pause_resume(a: RemoteIdArgs, pause: bool) -> Result<(), Failure> {
    let (method, verb) = if pause { ("torrent.pause", "paused") } else { ("torrent.resume", "resumed") };
    by_ids(a, method, verb).await
}

/// A method that takes `ids` and answers with the ids it acted on, printed after `verb`.
pub(crate) async fn by_ids(a: RemoteIdArgs, method: &str, verb: &str) -> Result<(), Failure> {
    let result = call(&Remote::resolve(&a.remote)?, method, json!({"ids": ids(&a.ids)})).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let done: Vec<String> = result.as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        if done.is_empty() {
            println!("{verb}: none of them (nothing to do for the torrents named)");
        } else {
            println!("{verb}: {}", done.join(", "));
        }
    }
    Ok(())
}

/// `shoal set`: torrents' limits and file priorities (`torrent.set`), or with `--global` the
/// daemon's (`session.set`).
pub(crate) async fn set(a: RemoteSetArgs) -> Result<(), Failure> {
    let remote = Remote::resolve(&a.remote)?;
    let mut params = serde_json::Map::new();
    if let Some(v) = a.upload_limit {
        params.insert("upload_limit".into(), json!(v));
    }
    if let Some(v) = a.download_limit {
        params.insert("download_limit".into(), json!(v));
    }
    let (method, what) = if a.global {
        if let Some(v) = a.max_peers {
            let n = v.ok_or_else(|| Failure::Input(anyhow!("--max-peers with --global needs a number")))?;
            params.insert("max_connections".into(), json!(n));
        }
        if let Some(n) = a.max_peers_per_torrent {
            params.insert("max_connections_per_torrent".into(), json!(n));
        }
        goals(&mut params, &a, true);
        ("session.set", "the daemon's settings".to_owned())
    } else {
        if a.max_peers_per_torrent.is_some() {
            return Err(Failure::Input(anyhow!("--max-peers-per-torrent is a daemon setting: use it with --global")));
        }
        if let Some(v) = a.max_peers {
            params.insert("max_connections".into(), json!(v));
        }
        goals(&mut params, &a, false);
        if let Some(labels) = &a.labels {
            let list: Vec<&str> = labels.split(',').map(str::trim).filter(|l| !l.is_empty()).collect();
            params.insert("labels".into(), json!(list));
        }
        if let Some(on) = a.sequential {
            params.insert("sequential".into(), json!(on));
        }
        let mut priorities = Vec::new();
        for (list, p) in [(&a.skip, "skip"), (&a.normal, "normal"), (&a.high, "high")] {
            priorities.extend(list.iter().map(|i| json!([i, p])));
        }
        if !priorities.is_empty() {
            params.insert("file_priorities".into(), Value::Array(priorities));
        }
        params.insert("ids".into(), ids(&a.ids));
        ("torrent.set", format!("torrents {}", a.ids.join(", ")))
    };
    if params.len() <= usize::from(!a.global) {
        return Err(Failure::Input(anyhow!(
            "nothing to change: give a limit or a file choice (see `shoal set --help`)"
        )));
    }
    let result = call(&remote, method, Value::Object(params)).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        println!("changed {what}");
    }
    Ok(())
}

/// The seeding goals of `shoal set` as parameters of `torrent.set` or (`global`) `session.set`.
fn goals(params: &mut serde_json::Map<String, Value>, a: &RemoteSetArgs, global: bool) {
    if let Some(g) = a.seed_ratio {
        params.insert("seed_ratio_limit".into(), g.json(global));
    }
    if let Some(g) = a.seed_time {
        params.insert("seed_time_limit".into(), g.json(global));
    }
    if let Some(g) = a.seed_idle {
        params.insert("seed_idle_limit".into(), g.json(global));
    }
}

/// `shoal move`: a new data folder for torrents (`torrent.set_location`).
pub(crate) async fn relocate(a: RemoteMoveArgs) -> Result<(), Failure> {
    let to = std::path::absolute(&a.to).map_err(|e| Failure::Input(anyhow!("{}: {e}", a.to.display())))?;
    let params = json!({"ids": ids(&a.ids), "location": to.display().to_string(), "move": !a.no_move});
    let result = call(&Remote::resolve(&a.remote)?, "torrent.set_location", params).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let done: Vec<String> = result.as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        let verb = if a.no_move { "now looking for the data of" } else { "moved" };
        println!("{verb} torrents {} in {}", done.join(", "), to.display());
    }
    Ok(())
}

/// `shoal free-space`: space left in a folder of the daemon's machine.
pub(crate) async fn free_space(a: RemoteFreeSpaceArgs) -> Result<(), Failure> {
    let path = a
        .path
        .as_ref()
        .map(|p| std::path::absolute(p).map_err(|e| Failure::Input(anyhow!("{}: {e}", p.display()))))
        .transpose()?;
    let params = json!({"path": path.map(|p| p.display().to_string())});
    let result = call(&Remote::resolve(&a.remote)?, "session.free_space", params).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let (free, total) = (result["free_bytes"].as_u64().unwrap_or(0), result["total_bytes"].as_u64().unwrap_or(0));
        println!("{}: {} free of {}", result["path"].as_str().unwrap_or("?"), HumanBytes(free), HumanBytes(total));
    }
    Ok(())
}

pub(crate) async fn remove(a: RemoteRemoveArgs) -> Result<(), Failure> {
    let params = json!({"ids": ids(&a.ids), "delete_data": a.delete_data});
    let result = call(&Remote::resolve(&a.remote)?, "torrent.remove", params).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let done: Vec<String> = result.as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        let data = if a.delete_data { " with their data" } else { "" };
        println!("removed{data}: {}", done.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        RpcUrl::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).to_string()
    }

    #[test]
    fn rpc_takes_host_port_a_base_url_or_the_jsonrpc_url() {
        assert_eq!(url("127.0.0.1:9091"), "http://127.0.0.1:9091/jsonrpc");
        assert_eq!(url("[::1]:9091"), "http://[::1]:9091/jsonrpc");
        assert_eq!(url("nas.local:80"), "http://nas.local/jsonrpc");
        assert_eq!(url("http://127.0.0.1:9091"), "http://127.0.0.1:9091/jsonrpc");
        assert_eq!(url("http://127.0.0.1:9091/"), "http://127.0.0.1:9091/jsonrpc");
        assert_eq!(url("http://127.0.0.1:9091/jsonrpc"), "http://127.0.0.1:9091/jsonrpc");
        assert_eq!(url("http://127.0.0.1:9091/jsonrpc/"), "http://127.0.0.1:9091/jsonrpc");
        assert_eq!(url("HTTPS://proxy.example/shoal/"), "https://proxy.example/shoal/jsonrpc");
        assert_eq!(url(DEFAULT_RPC), DEFAULT_RPC);
    }

    #[test]
    fn a_malformed_rpc_is_refused_naming_it() {
        for bad in [
            "",
            "9091",
            "localhost",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "127.0.0.1:",
            ":9091",
            "::1:9091",
            "a/b:80",
            "u@host:80",
            " 127.0.0.1:9091",
            "ftp://host:21/",
            "http://",
            "http://u:p@host:9091/",
            "http://host:9091/transmission/rpc",
            "http://host:9091/shoal",
            "http://host:9091/jsonrpc?x=1",
            "http://host:9091/#top",
            "http://host:notaport/",
        ] {
            let e = RpcUrl::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    fn args() -> RemoteArgs {
        RemoteArgs { rpc: None, token: None, user: None, password: None, json: false }
    }

    fn resolve(args: &RemoteArgs, env: Environment, file: ClientConfig) -> Result<Endpoint, String> {
        Endpoint::from_sources(args, env, file, "~/.config/shoal/client.toml".into()).map_err(|e| match e {
            Failure::Input(e) => format!("input: {e}"),
            Failure::Runtime(e) | Failure::Interrupted(e) => format!("other: {e}"),
        })
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn stream_urls_carry_what_a_player_can() {
        let plain = resolve(&args(), Environment::default(), ClientConfig::default()).expect("defaults");
        assert_eq!(plain.stream_url("/stream/3/1"), "http://127.0.0.1:9091/stream/3/1");
        let rpc = Some(RpcUrl::parse("https://nas.local/shoal/").expect("url"));
        let token = RemoteArgs { rpc, token: some("a b&c"), ..args() };
        let token = resolve(&token, Environment::default(), ClientConfig::default()).expect("token");
        assert_eq!(token.stream_url("/stream/3/1"), "https://nas.local/shoal/stream/3/1?token=a+b%26c");
        let basic = RemoteArgs { user: some("me"), password: some("pw"), ..args() };
        let basic = resolve(&basic, Environment::default(), ClientConfig::default()).expect("basic");
        assert_eq!(basic.stream_url("/stream/3/1"), "http://me:pw@127.0.0.1:9091/stream/3/1");
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let file = || ClientConfig {
            rpc: Some(RpcUrl::parse("file:1").expect("url")),
            token: some("file-token"),
            user: some("file-user"),
            password: some("file-password"),
        };
        let env = || Environment {
            rpc: some("env:2"),
            token: some("env-token"),
            user: some("env-user"),
            password: some("env-password"),
        };

        let nothing = resolve(&args(), Environment::default(), ClientConfig::default()).expect("defaults");
        assert_eq!(nothing.url.value.to_string(), DEFAULT_RPC);
        assert_eq!(nothing.url.origin, Origin::Default);
        assert!(nothing.token.is_none() && nothing.basic.is_none());

        let from_file = resolve(&args(), Environment::default(), file()).expect("file");
        assert_eq!(from_file.url.value.to_string(), "http://file:1/jsonrpc");
        assert!(from_file.token.as_ref().is_some_and(|t| t.value == "file-token" && t.origin == Origin::File));
        let basic = from_file.basic.as_ref().expect("basic");
        assert_eq!((basic.user.value.as_str(), basic.password.value.as_str()), ("file-user", "file-password"));

        let from_env = resolve(&args(), env(), file()).expect("env");
        assert_eq!(from_env.url.value.to_string(), "http://env:2/jsonrpc");
        assert_eq!(from_env.url.origin, Origin::Env("SHOAL_RPC"));
        assert!(from_env.token.as_ref().is_some_and(|t| t.value == "env-token"));
        assert!(from_env.basic.as_ref().is_some_and(|b| b.password.origin == Origin::Env("SHOAL_PASSWORD")));

        let flags = RemoteArgs {
            rpc: Some(RpcUrl::parse("flag:3").expect("url")),
            token: some("flag-token"),
            user: some("flag-user"),
            password: some("flag-password"),
            json: false,
        };
        let from_flags = resolve(&flags, env(), file()).expect("flags");
        assert_eq!(from_flags.url.value.to_string(), "http://flag:3/jsonrpc");
        assert!(from_flags.token.as_ref().is_some_and(|t| t.value == "flag-token"));
        assert!(from_flags.basic.as_ref().is_some_and(|b| b.user.value == "flag-user"));

        // Each setting on its own: a user on the command line, its password from the environment.
        let user_only = RemoteArgs { user: some("u"), ..args() };
        let mixed =
            resolve(&user_only, Environment { password: some("p"), ..Environment::default() }, file()).expect("mixed");
        let basic = mixed.basic.as_ref().expect("basic");
        assert_eq!((basic.user.origin, basic.password.origin), (Origin::Flag("--user"), Origin::Env("SHOAL_PASSWORD")));
        assert_eq!(mixed.url.origin, Origin::File);
    }

    #[test]
    fn a_bad_shoal_rpc_or_half_a_login_is_bad_input() {
        let env = Environment { rpc: some("nonsense"), ..Environment::default() };
        let e = resolve(&args(), env, ClientConfig::default()).err().expect("refused");
        assert!(e.starts_with("input: SHOAL_RPC: \"nonsense\""), "{e}");
        // --rpc wins, so SHOAL_RPC is not even read.
        let flags = RemoteArgs { rpc: Some(RpcUrl::parse("h:1").expect("url")), ..args() };
        let env = Environment { rpc: some("nonsense"), ..Environment::default() };
        assert!(resolve(&flags, env, ClientConfig::default()).is_ok());

        let e = resolve(&RemoteArgs { user: some("u"), ..args() }, Environment::default(), ClientConfig::default())
            .err()
            .expect("refused");
        assert!(e.starts_with("input: ") && e.contains("--user") && e.contains("--password"), "{e}");
        let file = ClientConfig { password: some("p"), ..ClientConfig::default() };
        let e = resolve(&args(), Environment::default(), file).err().expect("refused");
        assert!(e.contains("~/.config/shoal/client.toml") && e.contains("no user"), "{e}");
    }

    #[test]
    fn client_config_keys_and_errors() {
        let text = "rpc = \"127.0.0.1:9091\"\ntoken = \"t\"\nuser = \"u\"\npassword = \"p\"\n";
        let config = ClientConfig::parse(text, "c.toml").expect("parses");
        assert_eq!(config.rpc.map(|u| u.to_string()).as_deref(), Some("http://127.0.0.1:9091/jsonrpc"));
        assert_eq!((config.token, config.user, config.password), (some("t"), some("u"), some("p")));
        assert!(ClientConfig::parse("", "c.toml").is_ok_and(|c| c.rpc.is_none() && c.token.is_none()));

        let e = ClientConfig::parse("token = \"t\"\npasword = \"p\"\n", "c.toml").err().expect("refused");
        assert!(e.starts_with("client config c.toml, line 2, column 1, key `pasword`: unknown field"), "{e}");
        let e = ClientConfig::parse("\nrpc = \"localhost\"\n", "c.toml").err().expect("refused");
        assert!(e.starts_with("client config c.toml, line 2, column 7, key `rpc`: \"localhost\""), "{e}");
        let e = ClientConfig::parse("token = 5\n", "c.toml").err().expect("refused");
        assert!(e.starts_with("client config c.toml, line 1, column 9, key `token`: "), "{e}");
        let e = ClientConfig::parse("token = \n", "c.toml").err().expect("refused");
        assert!(e.starts_with("client config c.toml, line 1, "), "{e}");
    }

    #[test]
    fn the_client_config_lives_in_xdg_config_home() {
        let home = Path::new("/home/a");
        let xdg = |s: &str| Some(OsString::from(s));
        assert_eq!(client_config_path(xdg("/x/cfg"), Some(home)), Some(PathBuf::from("/x/cfg/shoal/client.toml")));
        assert_eq!(client_config_path(None, Some(home)), Some(PathBuf::from("/home/a/.config/shoal/client.toml")));
        assert_eq!(client_config_path(xdg(""), Some(home)), Some(PathBuf::from("/home/a/.config/shoal/client.toml")));
        assert_eq!(
            client_config_path(xdg("rel"), Some(home)),
            Some(PathBuf::from("/home/a/.config/shoal/client.toml"))
        );
        assert_eq!(client_config_path(None, None), None);
        assert_eq!(
            shown_path(Path::new("/home/a/.config/shoal/client.toml"), Some(home)),
            "~/.config/shoal/client.toml"
        );
        assert_eq!(shown_path(Path::new("/x/cfg/shoal/client.toml"), Some(home)), "/x/cfg/shoal/client.toml");
    }

    #[test]
    fn a_refusal_names_the_credential_where_it_came_from_and_where_to_set_it() {
        let both = Schemes { bearer: true, basic: true };
        let none = resolve(&args(), Environment::default(), ClientConfig::default()).expect("resolves");
        let line = none.refused(&Schemes { bearer: false, basic: true });
        assert!(line.contains("no credentials were sent; the daemon requires them"), "{line}");
        assert!(line.contains("--user/--password") && !line.contains("--token"), "{line}");
        assert!(none.refused(&both).contains("--token or --user/--password"));

        let env = Environment { token: some("t"), ..Environment::default() };
        let token = resolve(&args(), env, ClientConfig::default()).expect("resolves");
        let line = token.refused(&both);
        assert!(line.starts_with("the daemon at http://127.0.0.1:9091/jsonrpc refused the token (from SHOAL_TOKEN; "));
        assert!(line.contains("--token, SHOAL_TOKEN or token in ~/.config/shoal/client.toml"), "{line}");
        let line = token.refused(&Schemes { bearer: false, basic: true });
        assert!(line.contains("it takes a user and password instead"), "{line}");

        let flags = RemoteArgs { rpc: RpcUrl::parse("h:1").ok(), user: some("u"), password: some("p"), ..args() };
        let basic = resolve(&flags, Environment::default(), ClientConfig::default()).expect("resolves");
        let line = basic.refused(&Schemes { bearer: false, basic: true });
        assert_eq!(
            line,
            "the daemon at http://h:1/jsonrpc refused the password for user \"u\" (from --user and \
             --password; set with --user/--password, SHOAL_USER/SHOAL_PASSWORD or user/password in \
             ~/.config/shoal/client.toml)"
        );
        assert!(basic.refused(&Schemes { bearer: true, basic: false }).contains("it takes a token instead"));
    }
}
