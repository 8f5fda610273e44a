//! The method table JSON-RPC and XML-RPC share: method names, their parameters (by name or by
//! position) and how each maps onto one [`Api`] call.
//!
//! Parsing ([`Call::parse`]) is pure and total: any method name and parameter value gives a
//! [`Call`] or a [`CallError`] naming the parameter at fault. Only [`execute`] touches the
//! [`Api`], so a request that fails to parse changes nothing.
//!
//! | method | parameters by name | by position |
//! |---|---|---|
//! | `torrent.add` | exactly one of `torrent` (base64 .torrent), `magnet`, `url`; `download_dir`, `paused`, `peers`, `labels`, `sequential` | - |
//! | `torrent.list` | `fields` | `fields` |
//! | `torrent.get` | `ids`, `fields` | `ids`, `fields` |
//! | `torrent.pause`, `torrent.resume`, `torrent.verify`, `torrent.reannounce` | `ids` | `ids` |
//! | `torrent.remove` | `ids`, `delete_data` | `ids`, `delete_data` |
//! | `torrent.set` | `ids` and any other [`SetRequest`] field | - |
//! | `torrent.set_location` | `ids`, `location`, `move` | `ids`, `location`, `move` |
//! | `torrent.peers` | `id` | `id` |
//! | `session.get`, `session.stats`, `system.listMethods` | none | none |
//! | `session.free_space` | `path` (default: the download folder) | `path` |
//! | `session.set` | any [`SessionUpdate`] field | - |
//! | `identity.get`, `group.list` | none | none |
//! | `group.create` | `name` | `name` |
//! | `group.invite` | `name`, `member`, `member_name`, `days`, `seed_only` | same order |
//! | `group.join` | `invitation` | `invitation` |
//! | `group.issue` | `name`, `public_key` (PEM), `member_name` | same order |
//! | `group.revoke` | `name`, `member` | `name`, `member` |
//! | `server.pushes` | none | none |
//! | `search.status` | none | none |
//! | `search.query` | `q`, `limit` (default 50, at most 100), `peers` (default true) | same order |
//! | `push.start` | `to` (`ID@HOST:PORT`), `torrent` (id or info-hash) | same order |
//! | `push.status`, `push.withdraw` | `to`, `info_hash` | same order |
//! | `push.list` | `to` | `to` |
//!
//! Results: `torrent.add` an [`crate::AddResult`]; `torrent.list` and `torrent.get` arrays of
//! [`TorrentInfo`] objects (only the `fields` asked for; `torrent.list` leaves out `files` and
//! `trackers` unless asked); `torrent.pause`, `resume`, `remove` and `set` the array of torrent
//! ids affected (`verify`, `reannounce` and `set_location` too); `torrent.peers` an array of [`crate::PeerInfo`]; `session.get` and `session.set`
//! the [`crate::SessionSettings`]; `session.stats` the [`crate::SessionStats`];
//! `session.free_space` a [`crate::api::FreeSpace`]; `identity.get` a
//! [`crate::api::IdentityInfo`]; `group.list` an array of [`crate::api::GroupInfo`]; the other
//! `group.*` methods what [`Api::group_change`] says; `server.pushes` a
//! [`crate::api::ServerPushes`]; the `push.*` methods the server's answer (see
//! [`Api::push_call`]).

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::{
    AddRequest, Api, ApiError, GroupRequest, Ids, LocationRequest, PushCall, RemoveRequest, SessionUpdate, SetRequest,
    Source, TORRENT_FIELDS, TorrentInfo, TorrentRef,
};

/// Every method name, as `system.listMethods` answers.
pub const METHODS: &[&str] = &[
    "torrent.add",
    "torrent.list",
    "torrent.get",
    "torrent.pause",
    "torrent.resume",
    "torrent.verify",
    "torrent.reannounce",
    "torrent.remove",
    "torrent.set",
    "torrent.set_location",
    "torrent.peers",
    "session.get",
    "session.set",
    "session.stats",
    "session.free_space",
    "identity.get",
    "group.list",
    "group.create",
    "group.invite",
    "group.join",
    "group.issue",
    "group.revoke",
    "server.pushes",
    "search.query",
    "search.status",
    "push.start",
    "push.status",
    "push.list",
    "push.withdraw",
    "system.listMethods",
];

/// Fields `torrent.list` returns when no `fields` are given: all but the per-file and
/// per-tracker lists.
const LIST_FIELDS_EXCLUDED: &[&str] = &["files", "trackers"];

/// Parameters as they came on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    /// No parameters.
    None,
    /// By name (a JSON object, or one XML-RPC struct).
    ByName(Map<String, Value>),
    /// By position.
    ByPosition(Vec<Value>),
}

/// One parsed call, ready for [`execute`].
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `torrent.add`.
    Add(AddRequest),
    /// `torrent.list` with the fields to return.
    List(Vec<String>),
    /// `torrent.get`.
    Get {
        /// Which torrents.
        ids: Ids,
        /// The fields to return.
        fields: Vec<String>,
    },
    /// `torrent.pause`.
    Pause(Ids),
    /// `torrent.resume`.
    Resume(Ids),
    /// `torrent.verify`.
    Verify(Ids),
    /// `torrent.reannounce`.
    Reannounce(Ids),
    /// `torrent.remove`.
    Remove(RemoveRequest),
    /// `torrent.set`.
    Set(SetRequest),
    /// `torrent.set_location`.
    SetLocation(LocationRequest),
    /// `torrent.peers`.
    Peers(TorrentRef),
    /// `session.get`.
    SessionGet,
    /// `session.set`.
    SessionSet(SessionUpdate),
    /// `session.stats`.
    SessionStats,
    /// `session.free_space` of a folder (`None`: the download folder).
    FreeSpace(Option<String>),
    /// `system.listMethods`.
    ListMethods,
    /// `identity.get`.
    IdentityGet,
    /// `group.list`.
    GroupList,
    /// `group.create`, `invite`, `join`, `issue`, `revoke`.
    Group(GroupRequest),
    /// `server.pushes`.
    ServerPushes,
    /// `search.query`.
    Search(crate::api::SearchRequest),
    /// `search.status`.
    SearchStatus,
    /// `push.start`, `status`, `list`, `withdraw`.
    Push(PushCall),
}

/// Why a call could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No method has this name.
    #[error("method not found: {0:?}")]
    MethodNotFound(String),
    /// A parameter is missing, unknown, or of the wrong type; the message names it.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
}

fn invalid(message: impl Into<String>) -> CallError {
    CallError::InvalidParams(message.into())
}

/// Turns positional parameters into named ones using `names`; named ones pass through.
fn by_name(method: &str, params: Params, names: &[&str]) -> Result<Map<String, Value>, CallError> {
    match params {
        Params::None => Ok(Map::new()),
        Params::ByName(map) => Ok(map),
        Params::ByPosition(list) if list.len() <= names.len() => {
            Ok(names.iter().map(|n| n.to_string()).zip(list).collect())
        }
        Params::ByPosition(list) if names.is_empty() => {
            Err(invalid(format!("{method} takes its parameters by name, got {} by position", list.len())))
        }
        Params::ByPosition(list) => Err(invalid(format!(
            "{method} takes at most {} parameters ({}), got {}",
            names.len(),
            names.join(", "),
            list.len()
        ))),
    }
}

/// Deserializes `value` into `T`; the error names the field at fault.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, CallError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { invalid(e.inner().to_string()) } else { invalid(format!("{path}: {}", e.inner())) }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddParams {
    torrent: Option<String>,
    magnet: Option<String>,
    url: Option<String>,
    download_dir: Option<String>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    peers: Vec<std::net::SocketAddr>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    sequential: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreeSpaceParams {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    ids: Ids,
    fields: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    fields: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsParams {
    ids: Ids,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteParams {
    name: String,
    member: String,
    member_name: Option<String>,
    days: Option<u32>,
    #[serde(default)]
    seed_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinParams {
    invitation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueParams {
    name: String,
    public_key: String,
    member_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeParams {
    name: String,
    member: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
    peers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushStartParams {
    to: String,
    torrent: TorrentRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushHashParams {
    to: String,
    info_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushToParams {
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersParams {
    id: TorrentRef,
}

/// Decodes base64 with or without padding, ignoring ASCII whitespace (line breaks).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact).ok()
}

fn check_fields(fields: Vec<String>) -> Result<Vec<String>, CallError> {
    for f in &fields {
        if !TORRENT_FIELDS.contains(&f.as_str()) {
            return Err(invalid(format!("fields: unknown field {f:?} (known: {})", TORRENT_FIELDS.join(", "))));
        }
    }
    Ok(fields)
}

impl Call {
    /// Parses a call of `method` with `params`.
    pub fn parse(method: &str, params: Params) -> Result<Call, CallError> {
        let named = |names: &[&str]| by_name(method, params.clone(), names).map(Value::Object);
        let no_params = || match &params {
            Params::None => Ok(()),
            Params::ByName(m) if m.is_empty() => Ok(()),
            Params::ByPosition(l) if l.is_empty() => Ok(()),
            _ => Err(invalid(format!("{method} takes no parameters"))),
        };
        Ok(match method {
            "torrent.add" => {
                let p: AddParams = from_value(named(&[])?)?;
                let source = match (p.torrent, p.magnet, p.url) {
                    (Some(b64), None, None) => {
                        Source::TorrentFile(decode_base64(&b64).ok_or_else(|| invalid("torrent: not valid base64"))?)
                    }
                    (None, Some(magnet), None) => Source::Magnet(magnet),
                    (None, None, Some(url)) => Source::Url(url),
                    _ => return Err(invalid("give exactly one of torrent (base64 .torrent file), magnet, url")),
                };
                Call::Add(AddRequest {
                    source,
                    download_dir: p.download_dir,
                    paused: p.paused,
                    peers: p.peers,
                    labels: p.labels,
                    sequential: p.sequential,
                })
            }
            "torrent.list" => {
                let p: ListParams = from_value(named(&["fields"])?)?;
                let fields = match p.fields {
                    Some(f) => check_fields(f)?,
                    None => default_list_fields(),
                };
                Call::List(fields)
            }
            "torrent.get" => {
                let p: GetParams = from_value(named(&["ids", "fields"])?)?;
                let fields = match p.fields {
                    Some(f) => check_fields(f)?,
                    None => TORRENT_FIELDS.iter().map(|f| f.to_string()).collect(),
                };
                Call::Get { ids: p.ids, fields }
            }
            "torrent.pause" => Call::Pause(from_value::<IdsParams>(named(&["ids"])?)?.ids),
            "torrent.resume" => Call::Resume(from_value::<IdsParams>(named(&["ids"])?)?.ids),
            "torrent.verify" => Call::Verify(from_value::<IdsParams>(named(&["ids"])?)?.ids),
            "torrent.reannounce" => Call::Reannounce(from_value::<IdsParams>(named(&["ids"])?)?.ids),
            "torrent.remove" => Call::Remove(from_value(named(&["ids", "delete_data"])?)?),
            "torrent.set" => Call::Set(from_value(named(&[])?)?),
            "torrent.set_location" => Call::SetLocation(from_value(named(&["ids", "location", "move"])?)?),
            "torrent.peers" => Call::Peers(from_value::<PeersParams>(named(&["id"])?)?.id),
            "session.get" => no_params().map(|()| Call::SessionGet)?,
            "session.set" => Call::SessionSet(from_value(named(&[])?)?),
            "session.stats" => no_params().map(|()| Call::SessionStats)?,
            "session.free_space" => Call::FreeSpace(from_value::<FreeSpaceParams>(named(&["path"])?)?.path),
            "system.listMethods" => no_params().map(|()| Call::ListMethods)?,
            "identity.get" => no_params().map(|()| Call::IdentityGet)?,
            "group.list" => no_params().map(|()| Call::GroupList)?,
            "group.create" => {
                let p: NameParams = from_value(named(&["name"])?)?;
                Call::Group(GroupRequest::Create { name: p.name })
            }
            "group.invite" => {
                let p: InviteParams = from_value(named(&["name", "member", "member_name", "days", "seed_only"])?)?;
                if p.days == Some(0) {
                    return Err(invalid("days: must be at least 1"));
                }
                Call::Group(GroupRequest::Invite {
                    name: p.name,
                    member: p.member,
                    member_name: p.member_name,
                    days: p.days,
                    seed_only: p.seed_only,
                })
            }
            "group.join" => {
                let p: JoinParams = from_value(named(&["invitation"])?)?;
                Call::Group(GroupRequest::Join { invitation: p.invitation })
            }
            "group.issue" => {
                let p: IssueParams = from_value(named(&["name", "public_key", "member_name"])?)?;
                Call::Group(GroupRequest::Issue { name: p.name, public_key: p.public_key, member_name: p.member_name })
            }
            "group.revoke" => {
                let p: RevokeParams = from_value(named(&["name", "member"])?)?;
                Call::Group(GroupRequest::Revoke { name: p.name, member: p.member })
            }
            "server.pushes" => no_params().map(|()| Call::ServerPushes)?,
            "search.status" => no_params().map(|()| Call::SearchStatus)?,
            "search.query" => {
                let p: SearchParams = from_value(named(&["q", "limit", "peers"])?)?;
                if p.q.chars().count() > 256 {
                    return Err(invalid("q: at most 256 characters"));
                }
                let limit = p.limit.unwrap_or(50).clamp(1, 100);
                Call::Search(crate::api::SearchRequest { q: p.q, limit, peers: p.peers.unwrap_or(true) })
            }
            "push.start" => {
                let p: PushStartParams = from_value(named(&["to", "torrent"])?)?;
                Call::Push(PushCall::Start { to: p.to, torrent: p.torrent })
            }
            "push.status" => {
                let p: PushHashParams = from_value(named(&["to", "info_hash"])?)?;
                Call::Push(PushCall::Status { to: p.to, info_hash: p.info_hash })
            }
            "push.list" => Call::Push(PushCall::List { to: from_value::<PushToParams>(named(&["to"])?)?.to }),
            "push.withdraw" => {
                let p: PushHashParams = from_value(named(&["to", "info_hash"])?)?;
                Call::Push(PushCall::Withdraw { to: p.to, info_hash: p.info_hash })
            }
            other => return Err(CallError::MethodNotFound(other.to_owned())),
        })
    }
}

fn default_list_fields() -> Vec<String> {
    TORRENT_FIELDS.iter().filter(|f| !LIST_FIELDS_EXCLUDED.contains(f)).map(|f| f.to_string()).collect()
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Failed(format!("cannot encode the answer: {e}")))
}

/// The torrents as JSON objects holding only `fields` (each field encoded on its own).
fn select(torrents: &[TorrentInfo], fields: &[String]) -> Result<Value, ApiError> {
    let objects = torrents
        .iter()
        .map(|t| Value::Object(fields.iter().filter_map(|f| Some((f.clone(), t.field(f)?))).collect()))
        .collect();
    Ok(Value::Array(objects))
}

/// The torrents as a JSON array of objects holding only `fields`, encoded in one pass.
struct Selected<'a> {
    torrents: &'a [TorrentInfo],
    fields: &'a [String],
}

impl serde::Serialize for Selected<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct One<'a>(&'a TorrentInfo, &'a [String]);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                for f in self.1 {
                    self.0.serialize_field(f, &mut map)?;
                }
                map.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.torrents.len()))?;
        for t in self.torrents {
            seq.serialize_element(&One(t, self.fields))?;
        }
        seq.end()
    }
}

/// Runs a parsed call against `api` and returns its answer encoded as JSON (what JSON-RPC
/// sends): like [`execute`], but torrent lists are written straight from the torrents.
pub async fn execute_encoded<A: Api>(api: &A, call: Call) -> Result<Box<RawValue>, ApiError> {
    let encode = |e: serde_json::Error| ApiError::Failed(format!("cannot encode the answer: {e}"));
    match call {
        Call::List(fields) => {
            serde_json::value::to_raw_value(&Selected { torrents: &api.list().await?, fields: &fields }).map_err(encode)
        }
        Call::Get { ids, fields } => {
            serde_json::value::to_raw_value(&Selected { torrents: &api.get(ids).await?, fields: &fields })
                .map_err(encode)
        }
        call => serde_json::value::to_raw_value(&execute(api, call).await?).map_err(encode),
    }
}

/// Runs a parsed call against `api` and encodes its answer.
pub async fn execute<A: Api>(api: &A, call: Call) -> Result<Value, ApiError> {
    match call {
        Call::Add(request) => to_value(&api.add(request).await?),
        Call::List(fields) => select(&api.list().await?, &fields),
        Call::Get { ids, fields } => select(&api.get(ids).await?, &fields),
        Call::Pause(ids) => to_value(&api.pause(ids).await?),
        Call::Resume(ids) => to_value(&api.resume(ids).await?),
        Call::Verify(ids) => to_value(&api.verify(ids).await?),
        Call::Reannounce(ids) => to_value(&api.reannounce(ids).await?),
        Call::Remove(request) => to_value(&api.remove(request).await?),
        Call::Set(request) => to_value(&api.set(request).await?),
        Call::SetLocation(request) => to_value(&api.set_location(request).await?),
        Call::Peers(id) => to_value(&api.peers(id).await?),
        Call::SessionGet => to_value(&api.session_get().await?),
        Call::SessionSet(update) => to_value(&api.session_set(update).await?),
        Call::SessionStats => to_value(&api.session_stats().await?),
        Call::FreeSpace(path) => to_value(&api.free_space(path).await?),
        Call::ListMethods => Ok(Value::from(METHODS.to_vec())),
        Call::IdentityGet => to_value(&api.identity_get().await?),
        Call::GroupList => to_value(&api.group_list().await?),
        Call::Group(request) => api.group_change(request).await,
        Call::ServerPushes => to_value(&api.server_pushes().await?),
        Call::SearchStatus => to_value(&api.search_status().await?),
        Call::Search(request) => to_value(&api.search_query(request).await?),
        Call::Push(call) => api.push_call(call).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Priority, TorrentId};
    use serde_json::json;

    fn obj(v: Value) -> Params {
        match v {
            Value::Object(m) => Params::ByName(m),
            Value::Array(l) => Params::ByPosition(l),
            _ => Params::None,
        }
    }

    #[test]
    fn add_takes_exactly_one_source() {
        let call = Call::parse("torrent.add", obj(json!({"torrent": "ZDQ6aW5mb2U=", "paused": true}))).expect("works");
        assert_eq!(
            call,
            Call::Add(AddRequest { paused: true, ..AddRequest::new(Source::TorrentFile(b"d4:infoe".to_vec())) })
        );
        let call = Call::parse(
            "torrent.add",
            obj(json!({"magnet": "magnet:?xt=x", "peers": ["127.0.0.1:6881"], "labels": ["tv"], "sequential": true})),
        )
        .expect("works");
        let Call::Add(add) = call else { panic!("not an add") };
        assert_eq!(add.peers, vec!["127.0.0.1:6881".parse().expect("address")]);
        assert_eq!((add.labels, add.sequential), (vec!["tv".to_owned()], true));
        let err = Call::parse("torrent.add", obj(json!({"magnet": "m", "peers": ["nowhere"]}))).expect_err("fails");
        assert!(err.to_string().contains("peers[0]"), "{err}");
        let call =
            Call::parse("torrent.add", obj(json!({"magnet": "magnet:?xt=x", "download_dir": "/d"}))).expect("works");
        assert!(matches!(call, Call::Add(AddRequest { source: Source::Magnet(_), download_dir: Some(_), .. })));
        for bad in [json!({}), json!({"magnet": "m", "url": "u"}), json!({"torrent": "***"}), json!(["magnet:"])] {
            assert!(matches!(Call::parse("torrent.add", obj(bad.clone())), Err(CallError::InvalidParams(_))), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = Call::parse("torrent.set", obj(json!({"ids": [1], "upload_limit": "fast"}))).expect_err("fails");
        assert!(matches!(&err, CallError::InvalidParams(m) if m.starts_with("upload_limit:")), "{err}");
        let err = Call::parse("torrent.set", obj(json!({"ids": [1], "bogus": 1}))).expect_err("fails");
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = Call::parse("torrent.get", obj(json!({"ids": [1], "fields": ["name", "nope"]}))).expect_err("fails");
        assert!(err.to_string().contains("\"nope\""), "{err}");
        let err = Call::parse("torrent.pause", obj(json!({}))).expect_err("fails");
        assert!(err.to_string().contains("ids"), "{err}");
        let err =
            Call::parse("torrent.set", obj(json!({"ids": [1], "file_priorities": [[0, "low"]]}))).expect_err("fails");
        assert!(err.to_string().contains("file_priorities[0]"), "{err}");
    }

    #[test]
    fn positional_params_map_to_names() {
        assert_eq!(
            Call::parse("torrent.pause", obj(json!([[1, 2]]))).expect("works"),
            Call::Pause(Ids::List(vec![TorrentRef::Id(TorrentId(1)), TorrentRef::Id(TorrentId(2))]))
        );
        assert_eq!(
            Call::parse("torrent.remove", obj(json!([3, true]))).expect("works"),
            Call::Remove(RemoveRequest { ids: Ids::one(TorrentId(3)), delete_data: true })
        );
        assert!(Call::parse("torrent.remove", obj(json!([3, true, 1]))).is_err());
        assert!(Call::parse("torrent.set", obj(json!([3]))).is_err());
        assert!(Call::parse("session.get", obj(json!([1]))).is_err());
        assert_eq!(Call::parse("session.get", obj(json!([]))).expect("works"), Call::SessionGet);
    }

    #[test]
    fn set_parses_priorities_and_limits() {
        let call = Call::parse(
            "torrent.set",
            obj(json!({"ids": "all", "download_limit": null, "file_priorities": [[1, "high"]]})),
        )
        .expect("works");
        let Call::Set(set) = call else { panic!("not a set") };
        assert_eq!(set.download_limit, Some(None));
        assert_eq!(set.file_priorities, vec![(1, Priority::High)]);
    }

    #[test]
    fn set_location_and_free_space() {
        assert_eq!(
            Call::parse("torrent.set_location", obj(json!([[2], "/new", true]))).expect("works"),
            Call::SetLocation(LocationRequest {
                ids: Ids::one(TorrentId(2)),
                location: "/new".into(),
                move_data: true
            })
        );
        let Call::SetLocation(r) =
            Call::parse("torrent.set_location", obj(json!({"ids": [2], "location": "/x"}))).expect("works")
        else {
            panic!("not a set_location")
        };
        assert!(!r.move_data, "looking for the data in place is the default, as in Transmission");
        assert!(Call::parse("torrent.set_location", obj(json!({"ids": [2]}))).is_err());
        assert_eq!(Call::parse("session.free_space", Params::None).expect("works"), Call::FreeSpace(None));
        assert_eq!(
            Call::parse("session.free_space", obj(json!(["/tmp"]))).expect("works"),
            Call::FreeSpace(Some("/tmp".into()))
        );
    }

    #[test]
    fn unknown_method() {
        assert_eq!(Call::parse("torrent.nuke", Params::None), Err(CallError::MethodNotFound("torrent.nuke".into())));
    }

    #[test]
    fn list_leaves_out_files_unless_asked() {
        let Call::List(fields) = Call::parse("torrent.list", Params::None).expect("works") else { panic!() };
        assert!(!fields.iter().any(|f| f == "files") && fields.iter().any(|f| f == "name"));
        let Call::List(fields) = Call::parse("torrent.list", obj(json!([["files"]]))).expect("works") else { panic!() };
        assert_eq!(fields, vec!["files"]);
    }
}
