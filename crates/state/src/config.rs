//! The daemon's TOML config file ([`DaemonConfig`]) and where its data lives by default
//! ([`default_data_dir`]).
//!
//! Every key is optional; a missing key means the built-in default (given on each field).
//! Unknown keys are refused, so a typo is reported rather than silently ignored. Errors name
//! the file, the line and column, and the key ([`ConfigError`]).
//!
//! Precedence, lowest first: built-in defaults, the config file, command-line flags
//! ([`DaemonConfig::merge`]). Settings changed at run time over RPC are kept in the state
//! database and applied on top by the daemon.
//!
//! ```toml
//! data_dir = "/var/lib/shoal"
//! listen = "0.0.0.0:6881"
//! ssl_listen = "0.0.0.0:6882"     # TLS peers of group shares (default: the listen address, any port)
//! rpc_listen = "127.0.0.1:9091"
//! download_dir = "/srv/downloads"
//! encryption = "prefer"           # protocol encryption (MSE/PE): prefer, require or off
//! utp = "on"                      # uTP (BEP 29): on, prefer (dialled first) or off
//!
//! [rpc]
//! token = "long-random-string"
//! user = "alice"
//! password = "secret"            # keep this file private (mode 0600)
//!
//! [limits]
//! upload = "1M"                  # bytes per second; suffixes k, M, G (powers of 1024)
//! download = 10_485_760
//! max_connections = 200
//! max_connections_per_torrent = 50
//! max_active_downloads = 5
//! max_active_seeds = 10
//! seed_ratio = 2.0
//! seed_time = 86_400             # seconds
//! seed_idle = 1_800              # seconds without uploading
//!
//! [dht]
//! enabled = true
//! port = 6881
//! bootstrap = ["router.bittorrent.com:6881"]
//!
//! [lsd]
//! enabled = true
//!
//! [server]                       # keep shares pushed by others (`shoal push`)
//! listen = "0.0.0.0:7000"        # the push endpoint (mutual TLS with identities); on when set
//! allow = ["XXXXXXX-...", "group:friends"]   # identity IDs, or the members of a group of this node
//! quota = "50G"                  # bytes each identity may keep here (default: no limit)
//! dir = "/srv/shoal/pushed"      # default: DATA_DIR/pushed
//!
//! [search]
//! index = ["http://index.example:7070"]   # index servers search.query asks
//! peers = ["192.0.2.7:6881"]              # search neighbours to keep
//! overlay = true                          # answer and ask search neighbours
//! dht_crawl = false                       # fill the index from the DHT (BEP 51)
//! trust = ["ID", ...]                     # publishers whose results rank first
//! ```

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// The daemon's configuration. See the module doc for the file format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Folder of the state database. Default: [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// Address for peer connections. Default: chosen by the daemon.
    pub listen: Option<SocketAddr>,
    /// Address for the TLS connections of group shares (SSL torrents). Default: the `listen`
    /// address with any free port.
    pub ssl_listen: Option<SocketAddr>,
    /// Address of the RPC server. Default: chosen by the daemon (loopback).
    pub rpc_listen: Option<SocketAddr>,
    /// Where new torrents' data goes unless the add request says otherwise. Default: chosen
    /// by the daemon.
    pub download_dir: Option<PathBuf>,
    /// Protocol encryption (MSE/PE): `prefer`, `require` or `off`. Default: prefer.
    pub encryption: Option<String>,
    /// uTP (BEP 29): `on` (accepted, dialled when TCP fails), `prefer` (dialled first) or `off`.
    /// Default: on.
    pub utp: Option<String>,
    /// RPC access control.
    pub rpc: RpcConfig,
    /// Rate, connection, queue and seeding limits.
    pub limits: LimitsConfig,
    /// Mainline DHT (BEP 5).
    pub dht: DhtConfig,
    /// Local service discovery (BEP 14).
    pub lsd: LsdConfig,
    /// The server peer role: keeping shares pushed by others.
    pub server: ServerConfig,
    /// Search.
    pub search: SearchConfig,
}

/// `[search]`: where `search.query` looks besides this node's own torrents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Index servers (`http://HOST:PORT`) to ask.
    pub index: Vec<String>,
    /// Search neighbours to keep (other Shoal nodes' peer ports).
    pub peers: Vec<SocketAddr>,
    /// Take part in search without a server (default true).
    pub overlay: Option<bool>,
    /// Crawl the DHT for torrents to index (BEP 51; default false).
    pub dht_crawl: bool,
    /// Publishers (identity IDs) whose results rank first.
    pub trust: Vec<String>,
}

/// `[server]`: the server peer role, on when `listen` is set (here or by flag).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The push endpoint's address.
    pub listen: Option<SocketAddr>,
    /// Who may push: identity IDs, or `group:NAME` for the members of this node's group NAME.
    pub allow: Vec<String>,
    /// Bytes each identity may keep here, all its pushes together (`"50G"`; default: no limit).
    #[serde(deserialize_with = "crate::size::deserialize_size", skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Where pushed data lives. Default: `DATA_DIR/pushed`.
    pub dir: Option<PathBuf>,
}

/// `[rpc]`: who may use the RPC. With nothing set, the RPC is open to whoever can reach
/// `rpc_listen`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// A bearer token clients must send.
    pub token: Option<String>,
    /// User name for HTTP basic authentication (needs `password`).
    pub user: Option<String>,
    /// Password for HTTP basic authentication (needs `user`).
    pub password: Option<String>,
}

/// `[limits]`: global limits; each unset one is unlimited (rates, seeding) or the daemon's
/// default (counts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Upload rate, bytes per second (`1048576` or `"1M"`).
    #[serde(deserialize_with = "crate::size::deserialize_size", skip_serializing_if = "Option::is_none")]
    pub upload: Option<u64>,
    /// Download rate, bytes per second (`10485760` or `"10M"`).
    #[serde(deserialize_with = "crate::size::deserialize_size", skip_serializing_if = "Option::is_none")]
    pub download: Option<u64>,
    /// Peer connections over all torrents.
    pub max_connections: Option<u32>,
    /// Peer connections per torrent.
    pub max_connections_per_torrent: Option<u32>,
    /// Torrents downloading at once; the rest wait in the queue.
    pub max_active_downloads: Option<u32>,
    /// Torrents seeding at once.
    pub max_active_seeds: Option<u32>,
    /// Stop seeding a torrent at this upload/download ratio (finite, not negative).
    #[serde(deserialize_with = "ratio", skip_serializing_if = "Option::is_none")]
    pub seed_ratio: Option<f64>,
    /// Stop seeding a torrent after this many seconds of seeding.
    pub seed_time: Option<u64>,
    /// Stop seeding a torrent after this many seconds without uploading to anyone.
    pub seed_idle: Option<u64>,
}

/// `[dht]`: the Mainline DHT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhtConfig {
    /// Whether to join the DHT. Default: true.
    pub enabled: bool,
    /// UDP port. Default: the daemon's choice.
    pub port: Option<u16>,
    /// `host:port` nodes to bootstrap from. Default (empty): the usual public routers.
    pub bootstrap: Vec<String>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self { enabled: true, port: None, bootstrap: Vec::new() }
    }
}

/// `[lsd]`: finding peers on the local network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LsdConfig {
    /// Whether to announce and listen on the LAN. Default: true.
    pub enabled: bool,
}

impl Default for LsdConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Values given on the command line, which win over the file (see [`DaemonConfig::merge`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--rpc-listen`.
    pub rpc_listen: Option<SocketAddr>,
    /// `--download-dir`.
    pub download_dir: Option<PathBuf>,
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, no permission, not UTF-8).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, a value has the wrong type or range, or a key is unknown.
    #[error("{}", parse_message(path, *line, *column, key.as_deref(), message))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column (in characters) of the fault.
        column: usize,
        /// Dotted path of the key at fault (`dht.port`), when known.
        key: Option<String>,
        /// What is wrong, as the TOML parser or the field's type says it.
        message: String,
    },
    /// Values that are fine alone but not together.
    #[error("config file {}: key `{key}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the key at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn parse_message(path: &Path, line: usize, column: usize, key: Option<&str>, message: &str) -> String {
    match key {
        Some(key) => format!("config file {}, line {line}, column {column}, key `{key}`: {message}", path.display()),
        None => format!("config file {}, line {line}, column {column}: {message}", path.display()),
    }
}

impl DaemonConfig {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `origin` is the file name used in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let parse_error = |err: toml::de::Error, key: Option<String>| {
            let offset = err.span().map_or(0, |span| span.start).min(text.len());
            let (line, column) = line_column(text, offset);
            ConfigError::Parse { path: origin.to_owned(), line, column, key, message: err.message().trim().to_owned() }
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|err| parse_error(err, None))?;
        let config: DaemonConfig = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = key_path(&err);
            parse_error(err.into_inner(), key)
        })?;
        config.check(origin)?;
        Ok(config)
    }

    /// Cross-field checks.
    fn check(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: origin.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if let Some(e) = self.encryption.as_deref().filter(|e| !["prefer", "require", "off"].contains(e)) {
            return Err(invalid("encryption", &format!("{e:?}: expected prefer, require or off")));
        }
        if let Some(u) = self.utp.as_deref().filter(|u| !["on", "prefer", "off"].contains(u)) {
            return Err(invalid("utp", &format!("{u:?}: expected on, prefer or off")));
        }
        if let Some(bad) = self.search.index.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(invalid("search.index", &format!("{bad:?} is not an http:// or https:// URL")));
        }
        if let Some(bad) = self.server.allow.iter().find(|a| a.strip_prefix("group:").is_some_and(str::is_empty)) {
            return Err(invalid("server.allow", &format!("{bad:?} names no group (write group:NAME)")));
        }
        match (&self.rpc.user, &self.rpc.password) {
            (Some(_), None) => Err(invalid("rpc.password", "`rpc.user` is set, so a password is needed too")),
            (None, Some(_)) => Err(invalid("rpc.user", "`rpc.password` is set, so a user name is needed too")),
            _ => Ok(()),
        }
    }

    /// Applies command-line flags: each one given replaces the file's value.
    pub fn merge(&mut self, overrides: ConfigOverrides) {
        let ConfigOverrides { data_dir, listen, rpc_listen, download_dir } = overrides;
        if data_dir.is_some() {
            self.data_dir = data_dir;
        }
        if listen.is_some() {
            self.listen = listen;
        }
        if rpc_listen.is_some() {
            self.rpc_listen = rpc_listen;
        }
        if download_dir.is_some() {
            self.download_dir = download_dir;
        }
    }

    /// The data folder: the configured one, else [`default_data_dir`]; `None` only when
    /// neither is set nor derivable (no `$HOME`).
    pub fn resolved_data_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone().or_else(default_data_dir)
    }
}

/// The default data folder: `$XDG_DATA_HOME/shoal`, or `~/.local/share/shoal` when
/// `XDG_DATA_HOME` is unset, empty or relative (as the XDG Base Directory spec says).
/// `None` if `$HOME` is unset or empty too.
pub fn default_data_dir() -> Option<PathBuf> {
    data_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_data_dir`] for given values of `XDG_DATA_HOME` and `HOME`.
fn data_dir_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let xdg = xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| home.filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local").join("share")))?;
    Some(base.join("shoal"))
}

/// 1-based line and character column of byte `offset` in `text` (for messages about TOML
/// files, the daemon's and the remote commands' `client.toml`).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted key path of a deserialization error (for an unknown key, the key itself).
fn key_path(err: &serde_path_to_error::Error<toml::de::Error>) -> Option<String> {
    let path = err.path().to_string();
    (path != ".").then_some(path)
}

/// Accepts a finite, non-negative ratio.
fn ratio<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.is_finite() && value >= 0.0 {
        Ok(Some(value))
    } else {
        Err(serde::de::Error::custom(format!("{value} is not a finite, non-negative ratio")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_follows_xdg() {
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(data_dir_from(some("/x/data"), some("/home/a")), Some(PathBuf::from("/x/data/shoal")));
        assert_eq!(data_dir_from(None, some("/home/a")), Some(PathBuf::from("/home/a/.local/share/shoal")));
        assert_eq!(data_dir_from(some(""), some("/home/a")), Some(PathBuf::from("/home/a/.local/share/shoal")));
        assert_eq!(data_dir_from(some("rel"), some("/home/a")), Some(PathBuf::from("/home/a/.local/share/shoal")));
        assert_eq!(data_dir_from(None, None), None);
        assert_eq!(data_dir_from(None, some("")), None);
    }

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 5));
        assert_eq!(line_column(text, 8), (2, 2), "inside 'é' rounds down");
    }
}
