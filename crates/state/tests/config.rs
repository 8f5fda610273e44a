//! The config file: a full example parses, mistakes are reported with file, line and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shoal_state::{
    ConfigError, ConfigOverrides, DaemonConfig, DhtConfig, LimitsConfig, LsdConfig, RpcConfig, SearchConfig,
    ServerConfig,
};

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("shoal.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().expect("address"))
}

const FULL: &str = r#"
data_dir = "/var/lib/shoal"
listen = "0.0.0.0:6881"
ssl_listen = "0.0.0.0:6882"
rpc_listen = "127.0.0.1:9091"
download_dir = "/srv/downloads"
encryption = "require"
utp = "prefer"

[rpc]
token = "long-random-string"
user = "alice"
password = "secret"

[limits]
upload = 1_048_576
download = 10_485_760
max_connections = 200
max_connections_per_torrent = 50
max_active_downloads = 5
max_active_seeds = 10
seed_ratio = 2.0
seed_time = 86_400
seed_idle = 1_800

[dht]
enabled = false
port = 6881
bootstrap = ["router.bittorrent.com:6881", "127.0.0.1:7000"]

[lsd]
enabled = false

[server]
listen = "0.0.0.0:7000"
allow = ["group:friends"]
quota = "50G"
dir = "/srv/pushed"

[search]
index = ["http://127.0.0.1:7070"]
peers = ["192.0.2.7:6881"]
overlay = false
dht_crawl = true
trust = ["SOMEONE"]
"#;

#[test]
fn a_full_file_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonConfig::load(&write(&dir, FULL)).expect("valid config");
    let expected = DaemonConfig {
        data_dir: Some("/var/lib/shoal".into()),
        listen: addr("0.0.0.0:6881"),
        ssl_listen: addr("0.0.0.0:6882"),
        rpc_listen: addr("127.0.0.1:9091"),
        download_dir: Some("/srv/downloads".into()),
        encryption: Some("require".into()),
        utp: Some("prefer".into()),
        rpc: RpcConfig {
            token: Some("long-random-string".into()),
            user: Some("alice".into()),
            password: Some("secret".into()),
        },
        limits: LimitsConfig {
            upload: Some(1_048_576),
            download: Some(10_485_760),
            max_connections: Some(200),
            max_connections_per_torrent: Some(50),
            max_active_downloads: Some(5),
            max_active_seeds: Some(10),
            seed_ratio: Some(2.0),
            seed_time: Some(86_400),
            seed_idle: Some(1_800),
        },
        dht: DhtConfig {
            enabled: false,
            port: Some(6881),
            bootstrap: vec!["router.bittorrent.com:6881".into(), "127.0.0.1:7000".into()],
        },
        lsd: LsdConfig { enabled: false },
        server: ServerConfig {
            listen: addr("0.0.0.0:7000"),
            allow: vec!["group:friends".into()],
            quota: Some(50 << 30),
            dir: Some("/srv/pushed".into()),
        },
        search: SearchConfig {
            index: vec!["http://127.0.0.1:7070".into()],
            peers: vec!["192.0.2.7:6881".parse().expect("address")],
            overlay: Some(false),
            dht_crawl: true,
            trust: vec!["SOMEONE".into()],
        },
    };
    assert_eq!(config, expected);
    // The file format round-trips through serialization.
    let text = toml::to_string(&config).expect("serialize");
    assert_eq!(DaemonConfig::parse(&text, Path::new("x")).expect("reparse"), config);
}

#[test]
fn an_empty_file_gives_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonConfig::load(&write(&dir, "# nothing\n")).expect("valid");
    assert_eq!(config, DaemonConfig::default());
    assert!(config.dht.enabled && config.lsd.enabled, "discovery is on by default");
    assert_eq!(config.limits.seed_ratio, None);
}

/// Parses `text`, expects a parse error, returns (line, key, message, display).
fn parse_error(text: &str) -> (usize, Option<String>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, text);
    let err = DaemonConfig::load(&path).expect_err("must be refused");
    let display = err.to_string();
    assert!(display.contains(&path.display().to_string()), "names the file: {display}");
    match err {
        ConfigError::Parse { line, key, message, .. } => (line, key, message, display),
        other => panic!("not a parse error: {other:?}"),
    }
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let (line, key, message, display) = parse_error("listen = \"0.0.0.0:1\"\nlisten_port = 5\n");
    assert_eq!((line, key.as_deref()), (2, Some("listen_port")), "{display}");
    assert!(message.contains("unknown field"), "{message}");

    let (line, key, _, display) = parse_error("[dht]\nenabled = true\n\n  bootstrap_nodes = []\n");
    assert_eq!((line, key.as_deref()), (4, Some("dht.bootstrap_nodes")), "{display}");
    assert!(display.contains("line 4") && display.contains("`dht.bootstrap_nodes`"), "{display}");

    let (line, key, _, display) = parse_error("[dth]\nenabled = true\n");
    assert_eq!((line, key.as_deref()), (1, Some("dth")), "{display}");
}

#[test]
fn wrong_values_name_line_and_key() {
    let (line, key, message, display) = parse_error("[lsd]\nenabled = true\n[dht]\nport = \"sixty\"\n");
    assert_eq!((line, key.as_deref()), (4, Some("dht.port")), "{display}");
    assert!(message.contains("invalid type"), "{message}");

    let (line, key, _, display) = parse_error("[dht]\nport = 70000\n");
    assert_eq!((line, key.as_deref()), (2, Some("dht.port")), "{display}");

    let (line, key, _, display) = parse_error("\n\nrpc_listen = \"localhost\"\n");
    assert_eq!((line, key.as_deref()), (3, Some("rpc_listen")), "{display}");

    let (line, key, message, display) = parse_error("[limits]\nseed_ratio = -1.0\n");
    assert_eq!((line, key.as_deref()), (2, Some("limits.seed_ratio")), "{display}");
    assert!(message.contains("non-negative"), "{message}");

    let (line, key, _, display) = parse_error("[limits]\nupload = -5\n");
    assert_eq!((line, key.as_deref()), (2, Some("limits.upload")), "{display}");
}

#[test]
fn syntax_errors_name_the_line() {
    let (line, key, _, display) = parse_error("data_dir = \"/x\"\n[rpc\ntoken = \"t\"\n");
    assert_eq!((line, key), (2, None), "{display}");
    let (line, _, _, display) = parse_error("a = 1\nb = \"unterminated\n");
    assert_eq!(line, 2, "{display}");
}

#[test]
fn half_a_login_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DaemonConfig::load(&write(&dir, "[rpc]\nuser = \"alice\"\n")).expect_err("no password");
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "rpc.password"), "{err:?}");
}

#[test]
fn an_unknown_utp_mode_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DaemonConfig::load(&write(&dir, "utp = \"sometimes\"\n")).expect_err("bad mode");
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "utp"), "{err:?}");
}

#[test]
fn an_unknown_encryption_policy_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DaemonConfig::load(&write(&dir, "encryption = \"always\"\n")).expect_err("bad policy");
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "encryption"), "{err:?}");
    assert!(err.to_string().contains("prefer, require or off"), "{err}");
}

#[test]
fn an_allow_entry_naming_no_group_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DaemonConfig::load(&write(&dir, "[server]\nallow = [\"group:\"]\n")).expect_err("no group");
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "server.allow"), "{err:?}");
    let err = DaemonConfig::load(&write(&dir, "[server]\nquota = \"lots\"\n")).expect_err("bad quota");
    assert!(err.to_string().contains("server.quota"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let err = DaemonConfig::load(&path).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = DaemonConfig::load(&write(&dir, FULL)).expect("valid");
    config.merge(ConfigOverrides {
        data_dir: Some("/tmp/other".into()),
        rpc_listen: addr("127.0.0.1:1"),
        ..ConfigOverrides::default()
    });
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/tmp/other")));
    assert_eq!(config.rpc_listen, addr("127.0.0.1:1"));
    assert_eq!(config.listen, addr("0.0.0.0:6881"), "not given on the command line: the file's value stays");
    assert_eq!(config.resolved_data_dir(), Some(PathBuf::from("/tmp/other")));
}

#[test]
fn rates_take_suffixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonConfig::load(&write(&dir, "[limits]\nupload = \"1M\"\ndownload = \"512k\"\n")).expect("parses");
    assert_eq!(config.limits.upload, Some(1 << 20));
    assert_eq!(config.limits.download, Some(512 << 10));
    let config = DaemonConfig::load(&write(&dir, "[limits]\nupload = 2048\n")).expect("parses");
    assert_eq!(config.limits.upload, Some(2048));

    let (line, key, message, display) = parse_error("[limits]\n\nupload = \"1 furlong\"\n");
    assert_eq!((line, key.as_deref()), (3, Some("limits.upload")), "{display}");
    assert!(message.contains("1 furlong"), "{message}");
}
