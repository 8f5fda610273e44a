//! The Transmission RPC, rpc-version 16 (Transmission 3.00; `shared/specs/transmission-rpc-spec-
//! 3.00.txt`), mapped onto the [`Api`], so Transmission front ends (`transmission-remote`, web
//! and desktop remotes, download managers) can drive Shoal.
//!
//! Flow: [`parse_request`] turns a body into a [`Request`] (pure: method, typed arguments, tag),
//! [`handle`] runs it and answers `{"result": "success" | <error>, "arguments": {..}, "tag": n}`.
//! The HTTP layer does the `X-Transmission-Session-Id` 409 handshake (spec 2.3.1) before this.
//!
//! Methods: `torrent-add` (`filename` = magnet link, http(s) URL or a path on the daemon's
//! machine; `metainfo` = base64 .torrent; `download-dir`, `paused`, `peer-limit`, and the file
//! arguments), `torrent-get` (`fields` from [`TORRENT_GET_FIELDS`], `ids`, `format` objects or
//! table), `torrent-start`, `torrent-start-now`, `torrent-stop`, `torrent-verify`,
//! `torrent-reannounce`, `torrent-remove` (`delete-local-data`), `torrent-set` (`downloadLimit`/`downloadLimited`,
//! `uploadLimit`/`uploadLimited`, `peer-limit`, `seedRatioLimit`/`seedRatioMode` and
//! `seedIdleLimit`/`seedIdleMode` 0, 1 or 2, `labels`, `location`, `files-wanted`,
//! `files-unwanted`, `priority-high`/`-normal`/`-low`), `torrent-set-location` (`move`),
//! `free-space` (answering `size-bytes` and `total_size`), `session-get` (`fields`),
//! `session-set` (speed limits, peer limits, `dht-enabled`, `lpd-enabled`, `pex-enabled`,
//! `peer-port`, `download-dir`, queue sizes, `seedRatioLimit`/`seedRatioLimited`,
//! `idle-seeding-limit`/`-enabled`) and `session-stats`. `ids` is absent or empty (all
//! torrents), `"recently-active"` (all), a number, an info-hash, or a list of numbers and
//! info-hashes. Sequential download uses Transmission 4.1's name, `sequential_download`, in
//! `torrent-add`, `torrent-set` and `torrent-get`; labels also go with `torrent-add`, as in
//! Transmission 4.
//!
//! Where Shoal differs from Transmission, it says so instead of pretending: other methods
//! (`torrent-rename-path`, `port-test`, queue moves, ...) and arguments Shoal has no setting
//! for (`encryption`, `bandwidthPriority` in `torrent-set`, ...) get an error result and change nothing; an
//! unknown torrent id is an error, not silently skipped. Shoal has no low file priority (low is
//! normal) and keeps no value for a disabled limit, so `*-enabled: true` / `*Limited: true`
//! needs the limit in the same call. Unknown `torrent-get` and `session-get` field names are
//! ignored, as Transmission does.

mod fields;

use serde_json::{Map, Number, Value, json};

use crate::api::{
    AddRequest, Api, ApiError, FileInfo, Goal, Ids, LocationRequest, Priority, RemoveRequest, SessionSettings,
    SessionUpdate, SetRequest, Source, TorrentId, TorrentRef,
};
use crate::method::decode_base64;

pub use fields::{RPC_VERSION, TORRENT_GET_FIELDS};

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The client's tag, echoed in the response.
    pub tag: Option<Number>,
    /// The method and its arguments.
    pub method: Method,
}

/// A method with its typed arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// `torrent-add`.
    TorrentAdd(TorrentAdd),
    /// `torrent-get`.
    TorrentGet {
        /// Which torrents.
        ids: Ids,
        /// The fields asked for.
        fields: Vec<String>,
        /// `format: "table"`: an array of rows, the first holding the keys.
        table: bool,
    },
    /// `torrent-start` and `torrent-start-now`.
    TorrentStart(Ids),
    /// `torrent-stop`.
    TorrentStop(Ids),
    /// `torrent-verify`.
    TorrentVerify(Ids),
    /// `torrent-reannounce`.
    TorrentReannounce(Ids),
    /// `torrent-remove`.
    TorrentRemove(RemoveRequest),
    /// `torrent-set`.
    TorrentSet(TorrentSet),
    /// `torrent-set-location`.
    TorrentSetLocation(LocationRequest),
    /// `free-space` of a folder.
    FreeSpace(String),
    /// `session-get`, with the fields asked for (all when `None`).
    SessionGet(Option<Vec<String>>),
    /// `session-set`.
    SessionSet(SessionSet),
    /// `session-stats`.
    SessionStats,
}

/// Where `torrent-add` takes the torrent from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddSource {
    /// `metainfo`: the .torrent file's bytes.
    Metainfo(Vec<u8>),
    /// `filename`: a magnet link, an http(s) URL, or a path on the daemon's machine.
    Filename(String),
}

/// File selection arguments of `torrent-add` and `torrent-set`: file indices, where an empty
/// list means every file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileArgs {
    /// `files-wanted`.
    pub wanted: Option<Vec<usize>>,
    /// `files-unwanted`.
    pub unwanted: Option<Vec<usize>>,
    /// `priority-high`.
    pub high: Option<Vec<usize>>,
    /// `priority-normal` and `priority-low` (Shoal has no low priority).
    pub normal: Option<Vec<usize>>,
}

impl FileArgs {
    fn is_empty(&self) -> bool {
        self.wanted.is_none() && self.unwanted.is_none() && self.high.is_none() && self.normal.is_none()
    }
}

/// `torrent-add` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentAdd {
    /// The torrent.
    pub source: AddSource,
    /// `download-dir`.
    pub download_dir: Option<String>,
    /// `paused`.
    pub paused: bool,
    /// `peer-limit`.
    pub peer_limit: Option<u32>,
    /// `labels`.
    pub labels: Vec<String>,
    /// `sequential_download` (Transmission 4.1's name).
    pub sequential: bool,
    /// File selection.
    pub files: FileArgs,
}

/// A limit and its switch, as Transmission sends them (`speed-limit-up` and
/// `speed-limit-up-enabled`, `uploadLimit` and `uploadLimited`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switched<T> {
    /// The value.
    pub value: Option<T>,
    /// The switch.
    pub enabled: Option<bool>,
}

impl<T: Copy> Switched<T> {
    /// The change to make: `Some(None)` removes the limit, `Some(Some(v))` sets it.
    fn update(&self, name: &str, value_name: &str) -> Result<Option<Option<T>>, String> {
        match (self.value, self.enabled) {
            (_, Some(false)) => Ok(Some(None)),
            (Some(v), _) => Ok(Some(Some(v))),
            (None, Some(true)) => Err(format!("{name}: true needs {value_name} in the same call")),
            (None, None) => Ok(None),
        }
    }
}

/// `torrent-set` arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentSet {
    /// Which torrents.
    pub ids: Ids,
    /// `downloadLimit` (kB/s) and `downloadLimited`.
    pub download: Switched<u64>,
    /// `uploadLimit` (kB/s) and `uploadLimited`.
    pub upload: Switched<u64>,
    /// `peer-limit`.
    pub peer_limit: Option<u32>,
    /// `seedRatioLimit`.
    pub seed_ratio_limit: Option<f64>,
    /// `seedRatioMode`: 0 the session's goal, 1 the torrent's own, 2 none.
    pub seed_ratio_mode: Option<u64>,
    /// `seedIdleLimit`, minutes.
    pub seed_idle_limit: Option<u64>,
    /// `seedIdleMode`: 0 the session's goal, 1 the torrent's own, 2 none.
    pub seed_idle_mode: Option<u64>,
    /// `labels`.
    pub labels: Option<Vec<String>>,
    /// `sequential_download` (Transmission 4.1's name).
    pub sequential: Option<bool>,
    /// `location`: look for the data in this folder (as `torrent-set-location` without
    /// `move`).
    pub location: Option<String>,
    /// File selection.
    pub files: FileArgs,
}

/// `session-set` arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionSet {
    /// `speed-limit-down` (kB/s) and `speed-limit-down-enabled`.
    pub download: Switched<u64>,
    /// `speed-limit-up` (kB/s) and `speed-limit-up-enabled`.
    pub upload: Switched<u64>,
    /// `download-queue-size` and `download-queue-enabled`.
    pub download_queue: Switched<u32>,
    /// `seed-queue-size` and `seed-queue-enabled`.
    pub seed_queue: Switched<u32>,
    /// `seedRatioLimit` and `seedRatioLimited`.
    pub seed_ratio: Switched<f64>,
    /// `idle-seeding-limit` (minutes) and `idle-seeding-limit-enabled`.
    pub seed_idle: Switched<u64>,
    /// `peer-limit-global`.
    pub peer_limit_global: Option<u32>,
    /// `peer-limit-per-torrent`.
    pub peer_limit_per_torrent: Option<u32>,
    /// `dht-enabled`.
    pub dht: Option<bool>,
    /// `lpd-enabled`.
    pub lpd: Option<bool>,
    /// `pex-enabled`.
    pub pex: Option<bool>,
    /// `peer-port`.
    pub peer_port: Option<u16>,
    /// `download-dir`.
    pub download_dir: Option<String>,
}

/// Why a request could not be parsed: the `result` string to send, and the tag if it was read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The tag, when the envelope was readable.
    pub tag: Option<Number>,
    /// The `result` string.
    pub message: String,
}

/// Methods of the Transmission RPC that Shoal does not implement.
const UNSUPPORTED: &[&str] = &[
    "torrent-rename-path",
    "blocklist-update",
    "port-test",
    "session-close",
    "queue-move-top",
    "queue-move-up",
    "queue-move-down",
    "queue-move-bottom",
];

fn int(key: &str, v: &Value) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{key}: expected an integer, got {v}"))
}

fn uint<T: TryFrom<i64>>(key: &str, v: &Value) -> Result<T, String> {
    let n = int(key, v)?;
    T::try_from(n).map_err(|_| format!("{key}: {n} is out of range"))
}

/// Transmission reads booleans leniently: `true`/`false` or 0/1.
fn boolean(key: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        _ => Err(format!("{key}: expected a boolean, got {v}")),
    }
}

fn string(key: &str, v: &Value) -> Result<String, String> {
    v.as_str().map(str::to_owned).ok_or_else(|| format!("{key}: expected a string, got {v}"))
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or_else(|| format!("{key}: expected an array of strings, got {v}"))?;
    list.iter().map(|s| string(key, s)).collect()
}

fn indices(key: &str, v: &Value) -> Result<Vec<usize>, String> {
    let list = v.as_array().ok_or_else(|| format!("{key}: expected an array of file indices, got {v}"))?;
    list.iter().map(|i| uint(key, i)).collect()
}

fn torrent_ref(v: &Value) -> Result<TorrentRef, String> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(id) => Ok(TorrentRef::Id(TorrentId(id))),
            None => Err(format!("ids: {n} is not a torrent id")),
        },
        Value::String(s) => TorrentRef::info_hash(s).ok_or_else(|| format!("ids: {s:?} is not an info-hash")),
        other => Err(format!("ids: expected torrent ids or info-hashes, got {other}")),
    }
}

/// Spec 3.1: absent, empty or `"recently-active"` is every torrent.
fn ids(v: Option<&Value>) -> Result<Ids, String> {
    match v {
        None => Ok(Ids::All),
        Some(Value::String(s)) if s == "recently-active" => Ok(Ids::All),
        Some(Value::Array(list)) if list.is_empty() => Ok(Ids::All),
        Some(Value::Array(list)) => list.iter().map(torrent_ref).collect::<Result<_, _>>().map(Ids::List),
        Some(one) => torrent_ref(one).map(|r| Ids::List(vec![r])),
    }
}

fn file_arg(files: &mut FileArgs, key: &str, v: &Value) -> Result<(), String> {
    let list = indices(key, v)?;
    let slot = match key {
        "files-wanted" => &mut files.wanted,
        "files-unwanted" => &mut files.unwanted,
        "priority-high" => &mut files.high,
        _ => &mut files.normal,
    };
    // An empty list means every file, so once one is seen the slot stays empty.
    match slot {
        Some(existing) if existing.is_empty() => {}
        _ if list.is_empty() => *slot = Some(Vec::new()),
        Some(existing) => existing.extend(list),
        None => *slot = Some(list),
    }
    Ok(())
}

fn unsupported(method: &str, key: &str) -> String {
    format!("{method}: argument {key:?} is not supported by Shoal")
}

fn parse_add(args: &Map<String, Value>) -> Result<TorrentAdd, String> {
    let (mut metainfo, mut filename) = (None, None);
    let mut add = TorrentAdd {
        source: AddSource::Filename(String::new()),
        download_dir: None,
        paused: false,
        peer_limit: None,
        labels: Vec::new(),
        sequential: false,
        files: FileArgs::default(),
    };
    for (key, v) in args {
        match key.as_str() {
            "labels" => add.labels = strings(key, v)?,
            "sequential_download" => add.sequential = boolean(key, v)?,
            "metainfo" => {
                let text = string(key, v)?;
                metainfo = Some(decode_base64(&text).ok_or("metainfo: not valid base64")?);
            }
            "filename" => filename = Some(string(key, v)?),
            "download-dir" => add.download_dir = Some(string(key, v)?),
            "paused" => add.paused = boolean(key, v)?,
            "peer-limit" => add.peer_limit = Some(uint(key, v)?),
            "files-wanted" | "files-unwanted" | "priority-high" | "priority-normal" | "priority-low" => {
                file_arg(&mut add.files, key, v)?
            }
            // Shoal needs no cookies (fetches are its own) and has one bandwidth class.
            "cookies" => {
                string(key, v)?;
            }
            "bandwidthPriority" => {
                int(key, v)?;
            }
            other => return Err(unsupported("torrent-add", other)),
        }
    }
    add.source = match (metainfo, filename) {
        (Some(bytes), _) => AddSource::Metainfo(bytes),
        (None, Some(name)) if !name.is_empty() => AddSource::Filename(name),
        _ => return Err("torrent-add: give \"filename\" or \"metainfo\"".to_owned()),
    };
    Ok(add)
}

fn parse_set(args: &Map<String, Value>) -> Result<TorrentSet, String> {
    let mut set = TorrentSet {
        ids: ids(args.get("ids"))?,
        download: Switched::default(),
        upload: Switched::default(),
        peer_limit: None,
        seed_ratio_limit: None,
        seed_ratio_mode: None,
        seed_idle_limit: None,
        seed_idle_mode: None,
        labels: None,
        sequential: None,
        location: None,
        files: FileArgs::default(),
    };
    for (key, v) in args {
        match key.as_str() {
            "ids" => {}
            "downloadLimit" => set.download.value = Some(uint(key, v)?),
            "downloadLimited" => set.download.enabled = Some(boolean(key, v)?),
            "uploadLimit" => set.upload.value = Some(uint(key, v)?),
            "uploadLimited" => set.upload.enabled = Some(boolean(key, v)?),
            "peer-limit" => set.peer_limit = Some(uint(key, v)?),
            "seedRatioLimit" => {
                set.seed_ratio_limit =
                    Some(v.as_f64().filter(|r| *r >= 0.0).ok_or(format!("seedRatioLimit: expected a ratio, got {v}"))?)
            }
            "seedRatioMode" => set.seed_ratio_mode = Some(uint(key, v)?),
            "seedIdleLimit" => set.seed_idle_limit = Some(uint(key, v)?),
            "seedIdleMode" => set.seed_idle_mode = Some(uint(key, v)?),
            "labels" => set.labels = Some(strings(key, v)?),
            "sequential_download" => set.sequential = Some(boolean(key, v)?),
            "location" => set.location = Some(string(key, v)?),
            "files-wanted" | "files-unwanted" | "priority-high" | "priority-normal" | "priority-low" => {
                file_arg(&mut set.files, key, v)?
            }
            other => return Err(unsupported("torrent-set", other)),
        }
    }
    Ok(set)
}

fn parse_session_set(args: &Map<String, Value>) -> Result<SessionSet, String> {
    let mut s = SessionSet::default();
    for (key, v) in args {
        match key.as_str() {
            "speed-limit-down" => s.download.value = Some(uint(key, v)?),
            "speed-limit-down-enabled" => s.download.enabled = Some(boolean(key, v)?),
            "speed-limit-up" => s.upload.value = Some(uint(key, v)?),
            "speed-limit-up-enabled" => s.upload.enabled = Some(boolean(key, v)?),
            "download-queue-size" => s.download_queue.value = Some(uint(key, v)?),
            "download-queue-enabled" => s.download_queue.enabled = Some(boolean(key, v)?),
            "seed-queue-size" => s.seed_queue.value = Some(uint(key, v)?),
            "seed-queue-enabled" => s.seed_queue.enabled = Some(boolean(key, v)?),
            "seedRatioLimit" => {
                let ratio =
                    v.as_f64().filter(|r| *r >= 0.0).ok_or_else(|| format!("{key}: expected a ratio, got {v}"))?;
                s.seed_ratio.value = Some(ratio);
            }
            "seedRatioLimited" => s.seed_ratio.enabled = Some(boolean(key, v)?),
            "idle-seeding-limit" => s.seed_idle.value = Some(uint(key, v)?),
            "idle-seeding-limit-enabled" => s.seed_idle.enabled = Some(boolean(key, v)?),
            "peer-limit-global" => s.peer_limit_global = Some(uint(key, v)?),
            "peer-limit-per-torrent" => s.peer_limit_per_torrent = Some(uint(key, v)?),
            "dht-enabled" => s.dht = Some(boolean(key, v)?),
            "lpd-enabled" => s.lpd = Some(boolean(key, v)?),
            "pex-enabled" => s.pex = Some(boolean(key, v)?),
            "peer-port" => s.peer_port = Some(uint(key, v)?),
            "download-dir" => s.download_dir = Some(string(key, v)?),
            other => return Err(unsupported("session-set", other)),
        }
    }
    Ok(s)
}

fn parse_method(method: &str, args: &Map<String, Value>) -> Result<Method, String> {
    Ok(match method {
        "torrent-add" => Method::TorrentAdd(parse_add(args)?),
        "torrent-get" => {
            let fields = strings("fields", args.get("fields").ok_or("torrent-get: \"fields\" is required")?)?;
            let table = match args.get("format") {
                None => false,
                Some(Value::String(f)) if f == "objects" => false,
                Some(Value::String(f)) if f == "table" => true,
                Some(other) => return Err(format!("format: expected \"objects\" or \"table\", got {other}")),
            };
            Method::TorrentGet { ids: ids(args.get("ids"))?, fields, table }
        }
        "torrent-start" | "torrent-start-now" => Method::TorrentStart(ids(args.get("ids"))?),
        "torrent-stop" => Method::TorrentStop(ids(args.get("ids"))?),
        "torrent-verify" => Method::TorrentVerify(ids(args.get("ids"))?),
        "torrent-reannounce" => Method::TorrentReannounce(ids(args.get("ids"))?),
        "torrent-remove" => {
            let delete_data = match args.get("delete-local-data") {
                Some(v) => boolean("delete-local-data", v)?,
                None => false,
            };
            Method::TorrentRemove(RemoveRequest { ids: ids(args.get("ids"))?, delete_data })
        }
        "torrent-set" => Method::TorrentSet(parse_set(args)?),
        "torrent-set-location" => {
            for key in args.keys() {
                if !["ids", "location", "move"].contains(&key.as_str()) {
                    return Err(unsupported(method, key));
                }
            }
            let location =
                string("location", args.get("location").ok_or("torrent-set-location: \"location\" is required")?)?;
            let move_data = args.get("move").map(|v| boolean("move", v)).transpose()?.unwrap_or(false);
            Method::TorrentSetLocation(LocationRequest { ids: ids(args.get("ids"))?, location, move_data })
        }
        "free-space" => {
            let path = args.get("path").ok_or("free-space: \"path\" is required")?;
            Method::FreeSpace(string("path", path)?)
        }
        "session-get" => Method::SessionGet(args.get("fields").map(|f| strings("fields", f)).transpose()?),
        "session-set" => Method::SessionSet(parse_session_set(args)?),
        "session-stats" => Method::SessionStats,
        m if UNSUPPORTED.contains(&m) => return Err(format!("method {m:?} is not supported by Shoal")),
        _ => return Err("method name not recognized".to_owned()),
    })
}

/// Parses a request body.
pub fn parse_request(body: &[u8]) -> Result<Request, ParseError> {
    let fail = |tag: Option<Number>, message: String| ParseError { tag, message };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| fail(None, format!("request is not valid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(fail(None, "request must be a JSON object".to_owned()));
    };
    let tag = match top.remove("tag") {
        None => None,
        Some(Value::Number(n)) => Some(n),
        Some(other) => return Err(fail(None, format!("tag: expected a number, got {other}"))),
    };
    let method = match top.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(fail(tag, "no method name".to_owned())),
    };
    let args = match top.remove("arguments") {
        None => Map::new(),
        Some(Value::Object(args)) => args,
        Some(other) => return Err(fail(tag, format!("arguments: expected an object, got {other}"))),
    };
    match parse_method(&method, &args) {
        Ok(method) => Ok(Request { tag, method }),
        Err(message) => Err(fail(tag, message)),
    }
}

/// What [`handle`] needs besides the [`Api`].
#[derive(Clone, Debug)]
pub struct Context {
    /// This server's `X-Transmission-Session-Id` (reported by `session-get`).
    pub session_id: String,
    /// Largest .torrent file `torrent-add` reads from a path.
    pub max_torrent_file: u64,
}

/// The new priorities of `files` after `args`, as changes; `Err` names a bad index.
fn file_changes(id: TorrentId, files: &[FileInfo], args: &FileArgs) -> Result<Vec<(usize, Priority)>, String> {
    let n = files.len();
    let expand = |key: &str, list: &Option<Vec<usize>>| -> Result<Vec<usize>, String> {
        match list {
            None => Ok(Vec::new()),
            Some(l) if l.is_empty() => Ok((0..n).collect()),
            Some(l) => match l.iter().find(|&&i| i >= n) {
                Some(i) => Err(format!("{key}: torrent {id} has {n} files, there is no file {i}")),
                None => Ok(l.clone()),
            },
        }
    };
    let mut p: Vec<Priority> = files.iter().map(|f| f.priority).collect();
    for i in expand("files-unwanted", &args.unwanted)? {
        p[i] = Priority::Skip;
    }
    for i in expand("files-wanted", &args.wanted)? {
        if p[i] == Priority::Skip {
            p[i] = Priority::Normal;
        }
    }
    for (key, list, to) in
        [("priority-high", &args.high, Priority::High), ("priority-normal", &args.normal, Priority::Normal)]
    {
        for i in expand(key, list)? {
            if p[i] != Priority::Skip {
                p[i] = to;
            }
        }
    }
    Ok(p.into_iter().enumerate().filter(|&(i, to)| files[i].priority != to).collect())
}

/// Applies `files` (per torrent, since file counts differ) and the limits in `base`.
async fn apply_set<A: Api>(api: &A, base: SetRequest, files: &FileArgs) -> Result<(), String> {
    if files.is_empty() {
        if !base.is_empty() {
            api.set(base).await.map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let torrents = api.get(base.ids.clone()).await.map_err(|e| e.to_string())?;
    let mut requests = Vec::with_capacity(torrents.len());
    for t in &torrents {
        let mut request = base.clone();
        request.ids = Ids::one(t.id);
        request.file_priorities = file_changes(t.id, &t.files, files)?;
        requests.push(request);
    }
    for request in requests.into_iter().filter(|r| !r.is_empty()) {
        api.set(request).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn add_source(name: &str, max: u64) -> Result<Source, String> {
    if name.starts_with("magnet:") {
        return Ok(Source::Magnet(name.to_owned()));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Source::Url(name.to_owned()));
    }
    // Only a regular file, checked before opening (a FIFO or device would block or never
    // end), read through a cap (it could grow after the check), and never quoted back.
    let meta = tokio::fs::metadata(name).await.map_err(|e| format!("cannot read torrent file {name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("torrent file {name} is not a regular file"));
    }
    if meta.len() > max {
        return Err(format!("torrent file {name} is larger than {max} bytes"));
    }
    let file = tokio::fs::File::open(name).await.map_err(|e| format!("cannot read torrent file {name}: {e}"))?;
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::AsyncReadExt::take(file, max + 1), &mut bytes)
        .await
        .map_err(|e| format!("cannot read torrent file {name}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("torrent file {name} is larger than {max} bytes"));
    }
    Ok(Source::TorrentFile(bytes))
}

async fn torrent_add<A: Api>(api: &A, ctx: &Context, add: TorrentAdd) -> Result<Map<String, Value>, String> {
    let from_path = match &add.source {
        AddSource::Filename(name) => Some(name.clone()),
        AddSource::Metainfo(_) => None,
    };
    let source = match add.source {
        AddSource::Metainfo(bytes) => Source::TorrentFile(bytes),
        AddSource::Filename(name) => add_source(&name, ctx.max_torrent_file).await?,
    };
    let from_path = match &source {
        Source::TorrentFile(_) => from_path,
        _ => None,
    };
    let request = AddRequest {
        download_dir: add.download_dir,
        paused: add.paused,
        labels: add.labels,
        sequential: add.sequential,
        ..AddRequest::new(source)
    };
    let added = api.add(request).await.map_err(|e| match (e, &from_path) {
        // The parser's message may quote the file's bytes: a path names any file the daemon
        // can read, so say only that it is not a torrent.
        (ApiError::BadTorrent(_), Some(name)) => format!("torrent file {name} is not a valid .torrent file"),
        (e, _) => e.to_string(),
    })?;
    if !added.duplicate {
        let mut set = SetRequest::new(Ids::one(added.id));
        set.max_connections = add.peer_limit.map(Some);
        apply_set(api, set, &add.files).await?;
    }
    let key = if added.duplicate { "torrent-duplicate" } else { "torrent-added" };
    let summary = json!({"id": added.id.0, "name": added.name, "hashString": added.info_hash});
    Ok(Map::from_iter([(key.to_owned(), summary)]))
}

async fn torrent_get<A: Api>(
    api: &A,
    ids: Ids,
    fields: Vec<String>,
    table: bool,
) -> Result<Map<String, Value>, String> {
    let torrents = api.get(ids).await.map_err(|e| e.to_string())?;
    let fields: Vec<String> = fields.into_iter().filter(|f| fields::TORRENT_GET_FIELDS.contains(&f.as_str())).collect();
    let asked = |names: &[&str]| fields.iter().any(|f| names.contains(&f.as_str()));
    let (peer_limit, session_ratio, session_idle) =
        if asked(&["peer-limit", "maxConnectedPeers", "seedRatioLimit", "seedIdleLimit"]) {
            let s = api.session_get().await.map_err(|e| e.to_string())?;
            (s.max_connections_per_torrent, s.seed_ratio_limit, s.seed_idle_limit)
        } else {
            (0, None, None)
        };
    let mut rows = Vec::with_capacity(torrents.len());
    for t in &torrents {
        let peers = if asked(&["peers"]) {
            api.peers(TorrentRef::Id(t.id)).await.map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let extra = fields::Extra { peers: &peers, peer_limit, session_ratio, session_idle };
        let row: Vec<Value> =
            fields.iter().map(|f| fields::torrent_field(f, t, extra).unwrap_or(Value::Null)).collect();
        rows.push(row);
    }
    let torrents: Vec<Value> = if table {
        std::iter::once(json!(fields)).chain(rows.into_iter().map(Value::Array)).collect()
    } else {
        rows.into_iter().map(|row| Value::Object(fields.iter().cloned().zip(row).collect())).collect()
    };
    Ok(Map::from_iter([("torrents".to_owned(), Value::Array(torrents)), ("removed".to_owned(), json!([]))]))
}

fn session_update(set: &SessionSet) -> Result<SessionUpdate, String> {
    let kbps = |v: Option<Option<u64>>| v.map(|l| l.map(|k| k.saturating_mul(1000)));
    Ok(SessionUpdate {
        listen_port: set.peer_port,
        download_dir: set.download_dir.clone(),
        upload_limit: kbps(set.upload.update("speed-limit-up-enabled", "speed-limit-up")?),
        download_limit: kbps(set.download.update("speed-limit-down-enabled", "speed-limit-down")?),
        dht: set.dht,
        lsd: set.lpd,
        pex: set.pex,
        max_connections: set.peer_limit_global,
        max_connections_per_torrent: set.peer_limit_per_torrent,
        download_queue_size: set.download_queue.update("download-queue-enabled", "download-queue-size")?,
        seed_queue_size: set.seed_queue.update("seed-queue-enabled", "seed-queue-size")?,
        seed_ratio_limit: set.seed_ratio.update("seedRatioLimited", "seedRatioLimit")?,
        seed_time_limit: None,
        seed_idle_limit: set
            .seed_idle
            .update("idle-seeding-limit-enabled", "idle-seeding-limit")?
            .map(|l| l.map(|minutes| minutes.saturating_mul(60))),
    })
}

fn torrent_set_request(set: &TorrentSet) -> Result<SetRequest, String> {
    let kbps = |v: Option<Option<u64>>| v.map(|l| l.map(|k| k.saturating_mul(1000)));
    let mut request = SetRequest::new(set.ids.clone());
    request.download_limit = kbps(set.download.update("downloadLimited", "downloadLimit")?);
    request.upload_limit = kbps(set.upload.update("uploadLimited", "uploadLimit")?);
    request.max_connections = set.peer_limit.map(Some);
    request.seed_ratio_limit = goal("seedRatio", set.seed_ratio_mode, set.seed_ratio_limit)?;
    request.seed_idle_limit =
        goal("seedIdle", set.seed_idle_mode, set.seed_idle_limit.map(|minutes| minutes.saturating_mul(60)))?;
    request.labels = set.labels.clone();
    request.sequential = set.sequential;
    Ok(request)
}

/// A seeding goal from Transmission's mode (`{name}Mode`: 0 the session's, 1 the torrent's
/// own, 2 none) and limit (`{name}Limit`). Transmission keeps a limit apart from its mode;
/// Shoal keeps the goal in force, so a limit comes with mode 1.
fn goal<T>(name: &str, mode: Option<u64>, limit: Option<T>) -> Result<Option<Goal<T>>, String> {
    Ok(match (mode, limit) {
        (None, None) => None,
        (Some(0), _) => Some(Goal::Session),
        (Some(1), Some(limit)) => Some(Goal::Limit(limit)),
        (Some(1), None) => return Err(format!("{name}Mode 1 needs {name}Limit in the same call")),
        (Some(2), _) => Some(Goal::Unlimited),
        (Some(m), _) => return Err(format!("{name}Mode: expected 0, 1 or 2, got {m}")),
        (None, Some(_)) => return Err(format!("{name}Limit needs {name}Mode 1 in the same call")),
    })
}

fn pick(all: Map<String, Value>, fields: Option<Vec<String>>) -> Map<String, Value> {
    match fields {
        None => all,
        Some(fields) => all.into_iter().filter(|(k, _)| fields.contains(k)).collect(),
    }
}

async fn run<A: Api>(api: &A, ctx: &Context, method: Method) -> Result<Map<String, Value>, String> {
    let api_err = |e: ApiError| e.to_string();
    match method {
        Method::TorrentAdd(add) => torrent_add(api, ctx, add).await,
        Method::TorrentGet { ids, fields, table } => torrent_get(api, ids, fields, table).await,
        Method::TorrentStart(ids) => api.resume(ids).await.map(|_| Map::new()).map_err(api_err),
        Method::TorrentStop(ids) => api.pause(ids).await.map(|_| Map::new()).map_err(api_err),
        Method::TorrentVerify(ids) => api.verify(ids).await.map(|_| Map::new()).map_err(api_err),
        Method::TorrentReannounce(ids) => api.reannounce(ids).await.map(|_| Map::new()).map_err(api_err),
        Method::TorrentRemove(request) => api.remove(request).await.map(|_| Map::new()).map_err(api_err),
        Method::TorrentSet(set) => {
            let request = torrent_set_request(&set)?;
            if let Some(location) = &set.location {
                let request = LocationRequest { ids: set.ids.clone(), location: location.clone(), move_data: false };
                api.set_location(request).await.map_err(api_err)?;
            }
            apply_set(api, request, &set.files).await.map(|()| Map::new())
        }
        Method::TorrentSetLocation(request) => api.set_location(request).await.map(|_| Map::new()).map_err(api_err),
        Method::FreeSpace(path) => {
            let free = api.free_space(Some(path)).await.map_err(api_err)?;
            Ok(Map::from_iter([
                ("path".to_owned(), json!(free.path)),
                ("size-bytes".to_owned(), json!(free.free_bytes)),
                ("total_size".to_owned(), json!(free.total_bytes)),
            ]))
        }
        Method::SessionGet(fields) => {
            let settings: SessionSettings = api.session_get().await.map_err(api_err)?;
            Ok(pick(fields::session(&settings, &ctx.session_id), fields))
        }
        Method::SessionSet(set) => {
            let update = session_update(&set)?;
            api.session_set(update).await.map(|_| Map::new()).map_err(api_err)
        }
        Method::SessionStats => api.session_stats().await.map(|s| fields::session_stats(&s)).map_err(api_err),
    }
}

fn respond(result: &str, arguments: Map<String, Value>, tag: Option<Number>) -> Vec<u8> {
    let mut top = Map::new();
    top.insert("arguments".to_owned(), Value::Object(arguments));
    top.insert("result".to_owned(), Value::from(result));
    if let Some(tag) = tag {
        top.insert("tag".to_owned(), Value::Number(tag));
    }
    serde_json::to_vec(&Value::Object(top))
        .unwrap_or_else(|_| br#"{"arguments":{},"result":"internal error"}"#.to_vec())
}

/// Answers a Transmission RPC body (always a JSON response; errors are in `result`).
pub async fn handle<A: Api>(api: &A, ctx: &Context, body: &[u8]) -> Vec<u8> {
    let request = match parse_request(body) {
        Ok(r) => r,
        Err(e) => return respond(&e.message, Map::new(), e.tag),
    };
    match run(api, ctx, request.method).await {
        Ok(arguments) => respond("success", arguments, request.tag),
        Err(message) => respond(&message, Map::new(), request.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TorrentState;
    use crate::fake::Fake;

    fn ctx() -> Context {
        Context { session_id: "sid".to_owned(), max_torrent_file: 1 << 20 }
    }

    async fn call(fake: &Fake, body: Value) -> Value {
        serde_json::from_slice(&handle(fake, &ctx(), body.to_string().as_bytes()).await).expect("works")
    }

    #[test]
    fn parses_ids_in_every_form() {
        let hash = "ab".repeat(20);
        for (v, want) in [
            (None, Ids::All),
            (Some(json!([])), Ids::All),
            (Some(json!("recently-active")), Ids::All),
            (Some(json!(4)), Ids::one(TorrentId(4))),
            (Some(json!(hash.to_uppercase())), Ids::List(vec![TorrentRef::InfoHash(hash.clone())])),
            (Some(json!([1, hash])), Ids::List(vec![TorrentRef::Id(TorrentId(1)), TorrentRef::InfoHash(hash.clone())])),
        ] {
            assert_eq!(ids(v.as_ref()).expect("works"), want);
        }
        for bad in [json!(-1), json!("nope"), json!([1.5]), json!({})] {
            assert!(ids(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_errors_keep_the_tag() {
        let e = parse_request(br#"{"method": "torrent-frob", "tag": 7}"#).expect_err("fails");
        assert_eq!((e.tag, e.message.as_str()), (Some(7.into()), "method name not recognized"));
        let e = parse_request(br#"{"method": "torrent-set", "arguments": {"ids": [1], "bandwidthPriority": 1}}"#)
            .expect_err("fails");
        assert!(e.message.contains("bandwidthPriority"), "{e}");
        assert!(parse_request(b"{").is_err());
        assert!(parse_request(br#"{"method": "torrent-get", "arguments": {}}"#).is_err());
        assert!(parse_request(br#"{"method": "port-test"}"#).expect_err("fails").message.contains("not supported"));
    }

    #[test]
    fn file_arguments_follow_transmission() {
        let t = crate::fake::torrent(TorrentId(1), "x");
        let args = FileArgs { unwanted: Some(vec![]), wanted: Some(vec![1]), high: Some(vec![0, 1]), normal: None };
        assert_eq!(file_changes(t.id, &t.files, &args).expect("works"), vec![(0, Priority::Skip), (1, Priority::High)]);
        let mut args = FileArgs::default();
        file_arg(&mut args, "priority-normal", &json!([])).expect("empty list");
        file_arg(&mut args, "priority-low", &json!([1])).expect("list");
        assert_eq!(args.normal, Some(vec![]), "an empty list (all files) wins");
        let args = FileArgs { high: Some(vec![2]), ..FileArgs::default() };
        assert!(file_changes(t.id, &t.files, &args).expect_err("fails").contains("no file 2"));
    }

    #[tokio::test]
    async fn torrent_methods_map_onto_the_api() {
        let fake = Fake::with_torrents(2);
        let v = call(
            &fake,
            json!({"method": "torrent-get", "arguments": {"fields": ["id", "name", "status", "bogus"]}, "tag": 4}),
        )
        .await;
        assert_eq!(v["result"], "success");
        assert_eq!(v["tag"], 4);
        assert_eq!(
            v["arguments"]["torrents"],
            json!([{"id": 1, "name": "torrent-1", "status": 4}, {"id": 2, "name": "torrent-2", "status": 4}])
        );

        let v = call(
            &fake,
            json!({"method": "torrent-get", "arguments": {"ids": 2, "fields": ["id", "peers"], "format": "table"}}),
        )
        .await;
        assert_eq!(v["arguments"]["torrents"][0], json!(["id", "peers"]));
        assert_eq!(v["arguments"]["torrents"][1][1][0]["address"], "192.0.2.1");

        let v = call(&fake, json!({"method": "torrent-stop", "arguments": {"ids": [1]}})).await;
        assert_eq!(v["result"], "success");
        assert_eq!(fake.state_of(1), TorrentState::Paused);
        call(&fake, json!({"method": "torrent-start", "arguments": {"ids": [1]}})).await;
        assert_eq!(fake.state_of(1), TorrentState::Downloading);

        let v = call(
            &fake,
            json!({"method": "torrent-set", "arguments": {"ids": [1, 2], "uploadLimit": 50, "uploadLimited": true, "files-unwanted": [1], "peer-limit": 9}}),
        )
        .await;
        assert_eq!(v["result"], "success", "{v}");
        for id in [1, 2] {
            let t = fake.torrent(id);
            assert_eq!(
                (t.upload_limit, t.max_connections, t.files[1].priority),
                (Some(50_000), Some(9), Priority::Skip)
            );
        }
        call(&fake, json!({"method": "torrent-set", "arguments": {"ids": [1], "uploadLimited": false}})).await;
        assert_eq!(fake.torrent(1).upload_limit, None);

        let v = call(
            &fake,
            json!({"method": "torrent-add", "arguments": {"filename": crate::fake::MAGNET, "paused": true}}),
        )
        .await;
        assert_eq!(v["arguments"]["torrent-added"]["id"], 3);
        assert_eq!(fake.state_of(3), TorrentState::Paused);
        let v = call(&fake, json!({"method": "torrent-add", "arguments": {"filename": crate::fake::MAGNET}})).await;
        assert_eq!(v["arguments"]["torrent-duplicate"]["id"], 3);

        let dir = tempfile::tempdir().expect("works");
        let path = dir.path().join("a.torrent");
        std::fs::write(&path, b"d4:infod4:name1:aee").expect("works");
        let v =
            call(&fake, json!({"method": "torrent-add", "arguments": {"filename": path, "files-unwanted": [0]}})).await;
        assert_eq!(v["arguments"]["torrent-added"]["id"], 4, "{v}");
        assert_eq!(fake.torrent(4).files[0].priority, Priority::Skip);

        let v =
            call(&fake, json!({"method": "torrent-remove", "arguments": {"ids": [3, 4], "delete-local-data": true}}))
                .await;
        assert_eq!(v["result"], "success");
        assert_eq!(fake.count(), 2);
    }

    #[tokio::test]
    async fn session_methods() {
        let fake = Fake::with_torrents(1);
        let v = call(&fake, json!({"method": "session-get", "arguments": {"fields": ["rpc-version", "session-id", "speed-limit-down"]}})).await;
        assert_eq!(v["arguments"], json!({"rpc-version": 16, "session-id": "sid", "speed-limit-down": 1000}));
        let v = call(&fake, json!({"method": "session-get"})).await;
        assert_eq!(v["arguments"]["peer-port"], 6881);
        assert_eq!(
            (&v["arguments"]["encryption"], &v["arguments"]["utp-enabled"]),
            (&json!("preferred"), &json!(true))
        );
        assert!(v["arguments"]["version"].as_str().expect("works").starts_with("3.00"));

        let v = call(
            &fake,
            json!({"method": "session-set", "arguments": {"speed-limit-up": 20, "speed-limit-up-enabled": true, "speed-limit-down-enabled": false, "dht-enabled": false, "peer-port": 7000}}),
        )
        .await;
        assert_eq!(v["result"], "success", "{v}");
        let s = fake.snapshot().settings;
        assert_eq!((s.upload_limit, s.download_limit, s.dht, s.listen_port), (Some(20_000), None, false, 7000));

        let v = call(&fake, json!({"method": "session-stats", "tag": 1})).await;
        assert_eq!(v["arguments"]["torrentCount"], 1);
        assert_eq!(v["arguments"]["cumulative-stats"]["sessionCount"], 12);
    }

    #[tokio::test]
    async fn errors_change_nothing() {
        let fake = Fake::with_torrents(2);
        let before = fake.snapshot();
        for body in [
            json!({"method": "torrent-stop", "arguments": {"ids": [1, 99]}}),
            json!({"method": "torrent-remove", "arguments": {"ids": [-1]}}),
            json!({"method": "torrent-set", "arguments": {"ids": [1, 2], "uploadLimit": 5, "priority-high": [7]}}),
            json!({"method": "torrent-set", "arguments": {"ids": [1], "uploadLimit": "fast"}}),
            json!({"method": "torrent-set", "arguments": {"ids": [1], "downloadLimited": true}}),
            json!({"method": "torrent-add", "arguments": {"metainfo": "!!!"}}),
            json!({"method": "torrent-add", "arguments": {"metainfo": "bm90IGEgdG9ycmVudA=="}}),
            json!({"method": "torrent-add", "arguments": {"filename": "/nonexistent/x.torrent"}}),
            json!({"method": "torrent-add", "arguments": {}}),
            json!({"method": "session-set", "arguments": {"dht-enabled": true, "encryption": "required"}}),
            json!({"method": "session-set", "arguments": {"speed-limit-up-enabled": true}}),
            json!({"method": "session-set", "arguments": {"peer-port": 70000}}),
            json!({"method": "torrent-get", "arguments": {"fields": "name"}}),
            json!({"method": "port-test"}),
            json!(["not", "an", "object"]),
        ] {
            let v = call(&fake, body.clone()).await;
            let result = v["result"].as_str().expect("works");
            assert!(result != "success" && !result.is_empty(), "{body} -> {v}");
        }
        assert_eq!(fake.snapshot(), before);
    }

    #[tokio::test]
    async fn r_torrent_add_reads_only_regular_files_and_never_quotes_them() {
        let fake = Fake::with_torrents(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"root:$6$verysecrethash:19000:0:99999:7:::\n").expect("write");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(made.success());
        for (path, says) in [
            ("/dev/zero".to_owned(), "not a regular file"),
            (fifo.display().to_string(), "not a regular file"),
            (dir.path().display().to_string(), "not a regular file"),
            (secret.display().to_string(), "not a valid .torrent file"),
        ] {
            let started = std::time::Instant::now();
            let v = call(&fake, json!({"method": "torrent-add", "arguments": {"filename": path}})).await;
            let result = v["result"].as_str().expect("a result string");
            assert!(result.contains(says), "{path}: {result}");
            assert!(!result.contains('$') && !result.contains(":19000"), "file content quoted: {result}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "{path} answered at once");
        }
        assert_eq!(fake.snapshot().torrents.len(), 0);
    }

    #[tokio::test]
    async fn verify_and_reannounce() {
        let fake = Fake::with_torrents(2);
        let v = call(&fake, json!({"method": "torrent-verify", "arguments": {"ids": [1]}})).await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.snapshot().torrents[&1].state, TorrentState::Checking);
        let v = call(&fake, json!({"method": "torrent-reannounce", "arguments": {"ids": [2]}})).await;
        assert_eq!(v["result"], "success", "{v}");
        let v = call(&fake, json!({"method": "torrent-verify", "arguments": {"ids": [9]}})).await;
        assert_ne!(v["result"], "success", "an unknown id is an error: {v}");
    }

    #[tokio::test]
    async fn per_torrent_seed_ratio() {
        let fake = Fake::with_torrents(2);
        let get = |id: u64| json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": ["seedRatioMode", "seedRatioLimit"]}});
        let v = call(
            &fake,
            json!({"method": "torrent-set", "arguments": {"ids": [1], "seedRatioMode": 1, "seedRatioLimit": 2.5}}),
        )
        .await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.snapshot().torrents[&1].seed_ratio_limit, Goal::Limit(2.5));
        let v = call(&fake, get(1)).await;
        assert_eq!(v["arguments"]["torrents"][0], json!({"seedRatioMode": 1, "seedRatioLimit": 2.5}));
        let v = call(&fake, json!({"method": "torrent-set", "arguments": {"ids": [1], "seedRatioMode": 0}})).await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.snapshot().torrents[&1].seed_ratio_limit, Goal::Session);
        let v = call(&fake, json!({"method": "torrent-set", "arguments": {"ids": [1], "seedRatioMode": 2}})).await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.snapshot().torrents[&1].seed_ratio_limit, Goal::Unlimited);
        let v = call(&fake, get(1)).await;
        assert_eq!(v["arguments"]["torrents"][0]["seedRatioMode"], 2, "{v}");
        let before = fake.snapshot();
        for bad in [json!({"seedRatioMode": 3}), json!({"seedRatioMode": 1}), json!({"seedRatioLimit": 1.0})] {
            let mut args = bad.clone();
            args["ids"] = json!([1]);
            let v = call(&fake, json!({"method": "torrent-set", "arguments": args})).await;
            assert!(v["result"].as_str().is_some_and(|r| r.contains("seedRatio")), "{bad} -> {v}");
        }
        assert_eq!(fake.snapshot(), before, "refusals change nothing");
    }

    #[tokio::test]
    async fn idle_goals_labels_and_sequential() {
        let fake = Fake::with_torrents(2);
        let set = json!({"method": "torrent-set", "arguments": {
            "ids": [2], "seedIdleMode": 1, "seedIdleLimit": 15, "labels": ["tv", " hd "], "sequential_download": true
        }});
        let v = call(&fake, set).await;
        assert_eq!(v["result"], "success", "{v}");
        let t = fake.torrent(2);
        assert_eq!(
            (t.seed_idle_limit, t.labels.clone(), t.sequential),
            (Goal::Limit(900), vec!["tv".into(), "hd".into()], true)
        );
        let get = json!({"method": "torrent-get", "arguments": {"ids": [2], "fields": ["seedIdleMode", "seedIdleLimit", "labels", "sequential_download"]}});
        let v = call(&fake, get).await;
        assert_eq!(
            v["arguments"]["torrents"][0],
            json!({"seedIdleMode": 1, "seedIdleLimit": 15, "labels": ["tv", "hd"], "sequential_download": true})
        );
        let v = call(&fake, json!({"method": "torrent-set", "arguments": {"ids": [2], "labels": ["a,b"]}})).await;
        assert!(v["result"].as_str().is_some_and(|r| r.contains("comma")), "{v}");
        let v = call(&fake, json!({"method": "session-set", "arguments": {"idle-seeding-limit": 30, "idle-seeding-limit-enabled": true}})).await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.snapshot().settings.seed_idle_limit, Some(1800));
        let v = call(&fake, json!({"method": "session-get", "arguments": {"fields": ["idle-seeding-limit", "idle-seeding-limit-enabled"]}})).await;
        assert_eq!(v["arguments"], json!({"idle-seeding-limit": 30, "idle-seeding-limit-enabled": true}));
        let add = json!({"method": "torrent-add", "arguments": {"filename": crate::fake::MAGNET, "labels": ["new"], "sequential_download": true}});
        let v = call(&fake, add).await;
        let id = v["arguments"]["torrent-added"]["id"].as_u64().expect("added");
        assert_eq!((fake.torrent(id).labels, fake.torrent(id).sequential), (vec!["new".to_owned()], true));
    }

    #[tokio::test]
    async fn set_location_and_free_space() {
        let fake = Fake::with_torrents(2);
        let v = call(
            &fake,
            json!({"method": "torrent-set-location", "arguments": {"ids": [1], "location": "/new", "move": true}}),
        )
        .await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.torrent(1).download_dir, "/new");
        let v = call(&fake, json!({"method": "torrent-set", "arguments": {"ids": [2], "location": "/there"}})).await;
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(fake.torrent(2).download_dir, "/there");
        let v =
            call(&fake, json!({"method": "torrent-set-location", "arguments": {"ids": [1], "location": "rel"}})).await;
        assert!(v["result"].as_str().is_some_and(|r| r.contains("absolute")), "{v}");
        let v = call(&fake, json!({"method": "torrent-set-location", "arguments": {"ids": [1]}})).await;
        assert!(v["result"].as_str().is_some_and(|r| r.contains("location")), "{v}");
        let v = call(&fake, json!({"method": "free-space", "arguments": {"path": "/data"}})).await;
        assert_eq!(v["arguments"], json!({"path": "/data", "size-bytes": 123_456_789, "total_size": 1_000_000_000u64}));
        let v = call(&fake, json!({"method": "free-space", "arguments": {}})).await;
        assert!(v["result"].as_str().is_some_and(|r| r.contains("path")), "{v}");
    }
}
