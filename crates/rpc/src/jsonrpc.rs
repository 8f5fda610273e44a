//! JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>) over the [`crate::method`] table.
//!
//! Flow: [`parse_request`] turns a body into one request or a batch (pure; a body that is not
//! JSON or an empty batch gives the error response at once), [`handle`] then parses each
//! request's method and parameters, runs the valid ones against the [`Api`] in order, and encodes
//! the responses. Notifications (requests without `id`) run but get no response; a body of only
//! notifications gets none at all (the HTTP layer answers 204).
//!
//! Error codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
//! invalid params (the message names the parameter), and server errors from the [`Api`]:
//! [`NOT_FOUND`], [`BAD_TORRENT`], [`SHUTTING_DOWN`], [`FAILED`].

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::api::{Api, ApiError};
use crate::method::{self, Call, CallError, Params};

/// The body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON is not a valid request object.
pub const INVALID_REQUEST: i32 = -32600;
/// No method has this name.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// A parameter is missing, unknown, of the wrong type or unacceptable.
pub const INVALID_PARAMS: i32 = -32602;
/// The engine failed (see the message).
pub const FAILED: i32 = -32000;
/// No torrent has the id or info-hash given.
pub const NOT_FOUND: i32 = -32001;
/// The torrent to add cannot be used.
pub const BAD_TORRENT: i32 = -32002;
/// The daemon is shutting down.
pub const SHUTTING_DOWN: i32 = -32003;

/// Most requests in one batch.
pub const MAX_BATCH: usize = 128;

/// The error code for an [`ApiError`] (shared with XML-RPC faults).
pub fn api_error_code(error: &ApiError) -> i32 {
    match error {
        ApiError::NotFound(_) => NOT_FOUND,
        ApiError::InvalidParams(_) => INVALID_PARAMS,
        ApiError::BadTorrent(_) => BAD_TORRENT,
        ApiError::ShuttingDown => SHUTTING_DOWN,
        ApiError::Failed(_) => FAILED,
    }
}

/// The error code for a [`CallError`] (shared with XML-RPC faults).
pub fn call_error_code(error: &CallError) -> i32 {
    match error {
        CallError::MethodNotFound(_) => METHOD_NOT_FOUND,
        CallError::InvalidParams(_) => INVALID_PARAMS,
    }
}

/// A request id: a string, a number or null.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Id {
    /// `null` (allowed, though the spec discourages it).
    Null,
    /// A number.
    Number(Number),
    /// A string.
    String(String),
}

/// One well-formed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `None` for a notification.
    pub id: Option<Id>,
    /// Method name.
    pub method: String,
    /// Parameters.
    pub params: Params,
}

/// What a body holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// One request, or why it is invalid.
    Single(Result<Request, RequestError>),
    /// A batch: each request, or why it is invalid.
    Batch(Vec<Result<Request, RequestError>>),
}

/// A body or request that cannot be run: a parse error (-32700) or an invalid request (-32600).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The request's id when it could be read, else `Id::Null`.
    pub id: Id,
    /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
    pub code: i32,
    /// What is wrong.
    pub message: String,
}

impl From<RequestError> for Response {
    fn from(e: RequestError) -> Response {
        Response::error(e.id, e.code, e.message, None)
    }
}

/// An error object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorObject {
    /// Error code.
    pub code: i32,
    /// What went wrong, in a sentence.
    pub message: String,
    /// More detail (the torrent not found, for example).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A response object. The result is kept encoded: a list of thousands of torrents is written
/// once, straight from the torrents, not built as a JSON tree first.
#[derive(Clone, Debug, Serialize)]
pub struct Response {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject>,
    id: Id,
}

impl Response {
    /// A success.
    pub fn result(id: Id, result: Box<RawValue>) -> Response {
        Response { jsonrpc: "2.0", result: Some(result), error: None, id }
    }

    /// A failure.
    pub fn error(id: Id, code: i32, message: impl Into<String>, data: Option<Value>) -> Response {
        Response { jsonrpc: "2.0", result: None, error: Some(ErrorObject { code, message: message.into(), data }), id }
    }

    /// The error, for a failure.
    pub fn error_object(&self) -> Option<&ErrorObject> {
        self.error.as_ref()
    }

    /// The result, for a success.
    pub fn result_value(&self) -> Option<Value> {
        serde_json::from_str(self.result.as_ref()?.get()).ok()
    }
}

fn invalid_request(id: Id, why: &str) -> RequestError {
    RequestError { id, code: INVALID_REQUEST, message: format!("invalid request: {why}") }
}

fn parse_id(value: Value) -> Result<Id, Value> {
    match value {
        Value::Null => Ok(Id::Null),
        Value::Number(n) => Ok(Id::Number(n)),
        Value::String(s) => Ok(Id::String(s)),
        other => Err(other),
    }
}

fn parse_one(value: Value) -> Result<Request, RequestError> {
    let Value::Object(mut obj) = value else {
        return Err(invalid_request(Id::Null, "a request must be a JSON object"));
    };
    let id = match obj.remove("id").map(parse_id) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Err(invalid_request(Id::Null, "\"id\" must be a string, a number or null")),
    };
    let reply_id = id.clone().unwrap_or(Id::Null);
    match obj.remove("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err(invalid_request(reply_id, "\"jsonrpc\" must be \"2.0\"")),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid_request(reply_id, "\"method\" must be a string")),
    };
    let params = match obj.remove("params") {
        None => Params::None,
        Some(Value::Object(m)) => Params::ByName(m),
        Some(Value::Array(l)) => Params::ByPosition(l),
        Some(_) => return Err(invalid_request(reply_id, "\"params\" must be an object or an array")),
    };
    Ok(Request { id, method, params })
}

/// Parses a body. `Err` is to be answered at once: a parse error (the body is not JSON) or an
/// invalid request (an empty or oversized batch).
pub fn parse_request(body: &[u8]) -> Result<Incoming, RequestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError {
        id: Id::Null,
        code: PARSE_ERROR,
        message: format!("parse error: {e}"),
    })?;
    match value {
        Value::Array(items) if items.is_empty() => Err(invalid_request(Id::Null, "empty batch")),
        Value::Array(items) if items.len() > MAX_BATCH => Err(invalid_request(
            Id::Null,
            &format!("a batch of {} requests is more than the {MAX_BATCH} allowed", items.len()),
        )),
        Value::Array(items) => Ok(Incoming::Batch(items.into_iter().map(parse_one).collect())),
        other => Ok(Incoming::Single(parse_one(other))),
    }
}

/// Runs one request; `None` for a notification.
async fn run<A: Api>(api: &A, request: Result<Request, RequestError>) -> Option<Response> {
    let request = match request {
        Ok(r) => r,
        Err(e) => return Some(e.into()),
    };
    let outcome = match Call::parse(&request.method, request.params) {
        Ok(call) => method::execute_encoded(api, call).await.map_err(|e| {
            let data = match &e {
                ApiError::NotFound(id) => Some(Value::Object(Map::from_iter([("id".to_owned(), id_value(id))]))),
                _ => None,
            };
            (api_error_code(&e), e.to_string(), data)
        }),
        Err(e) => Err((call_error_code(&e), e.to_string(), None)),
    };
    let id = request.id?;
    Some(match outcome {
        Ok(value) => Response::result(id, value),
        Err((code, message, data)) => Response::error(id, code, message, data),
    })
}

fn id_value(id: &crate::api::TorrentRef) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(
            r#"{{"jsonrpc":"2.0","error":{{"code":-32603,"message":"cannot encode the response: {}"}},"id":null}}"#,
            e.to_string().replace(['"', '\\'], "'")
        )
        .into_bytes()
    })
}

/// Answers a JSON-RPC body: the encoded response, or `None` when nothing is to be sent back
/// (only notifications).
pub async fn handle<A: Api>(api: &A, body: &[u8]) -> Option<Vec<u8>> {
    match parse_request(body) {
        Err(e) => Some(encode(&Response::from(e))),
        Ok(Incoming::Single(request)) => run(api, request).await.map(|r| encode(&r)),
        Ok(Incoming::Batch(requests)) => {
            let mut responses = Vec::new();
            for request in requests {
                responses.extend(run(api, request).await);
            }
            (!responses.is_empty()).then(|| encode(&responses))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use serde_json::json;

    async fn call(fake: &Fake, body: Value) -> Value {
        let out = handle(fake, body.to_string().as_bytes()).await.expect("a response");
        serde_json::from_slice(&out).expect("works")
    }

    fn code(v: &Value) -> i64 {
        v["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {v}"))
    }

    #[tokio::test]
    async fn happy_paths() {
        let fake = Fake::with_torrents(2);
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "torrent.list", "id": 1})).await;
        assert_eq!(v["id"], 1);
        assert_eq!(v["result"].as_array().expect("works").len(), 2);
        assert!(v["result"][0].get("files").is_none());

        let v = call(
            &fake,
            json!({"jsonrpc": "2.0", "method": "torrent.get", "params": {"ids": [2], "fields": ["id", "files"]}, "id": "a"}),
        )
        .await;
        assert_eq!(v["id"], "a");
        assert_eq!(v["result"][0]["id"], 2);
        assert_eq!(v["result"][0].as_object().expect("works").len(), 2);

        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "torrent.pause", "params": [[1]], "id": 2})).await;
        assert_eq!(v["result"], json!([1]));
        assert_eq!(fake.state_of(1), crate::api::TorrentState::Paused);

        let v = call(
            &fake,
            json!({"jsonrpc": "2.0", "method": "torrent.add", "params": {"magnet": crate::fake::MAGNET}, "id": 3}),
        )
        .await;
        assert_eq!(v["result"]["id"], 3);
        assert_eq!(v["result"]["duplicate"], false);

        let v = call(
            &fake,
            json!({"jsonrpc": "2.0", "method": "torrent.set", "params": {"ids": [1], "upload_limit": 1000, "file_priorities": [[0, "skip"]]}, "id": 4}),
        )
        .await;
        assert_eq!(v["result"], json!([1]));
        let t = fake.torrent(1);
        assert_eq!(t.upload_limit, Some(1000));
        assert_eq!(t.files[0].priority, crate::api::Priority::Skip);

        let v =
            call(&fake, json!({"jsonrpc": "2.0", "method": "session.set", "params": {"dht": false}, "id": 5})).await;
        assert_eq!(v["result"]["dht"], false);
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "session.stats", "id": 6})).await;
        assert_eq!(v["result"]["torrent_count"], 3);
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "torrent.peers", "params": {"id": 1}, "id": 7})).await;
        assert_eq!(v["result"][0]["address"], "192.0.2.1:6881");
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "system.listMethods", "id": 8})).await;
        assert_eq!(v["result"].as_array().expect("works").len(), crate::method::METHODS.len());
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "torrent.remove", "params": {"ids": [1, 2]}, "id": 9}))
            .await;
        assert_eq!(v["result"], json!([1, 2]));
        assert_eq!(fake.count(), 1);
    }

    #[tokio::test]
    async fn every_error_class_changes_nothing() {
        let fake = Fake::with_torrents(2);
        let before = fake.snapshot();

        let out = handle(&fake, b"{\"jsonrpc\": \"2.0\", \"method\": ").await.expect("works");
        let v: Value = serde_json::from_slice(&out).expect("works");
        assert_eq!(code(&v), -32700);
        assert_eq!(v["id"], Value::Null);

        for (body, want) in [
            (json!({"jsonrpc": "1.0", "method": "torrent.list", "id": 1}), -32600),
            (json!({"jsonrpc": "2.0", "method": 5, "id": 1}), -32600),
            (json!({"jsonrpc": "2.0", "method": "torrent.list", "params": 3, "id": 1}), -32600),
            (json!({"jsonrpc": "2.0", "method": "torrent.list", "id": {}}), -32600),
            (json!({"jsonrpc": "2.0", "method": "torrent.explode", "id": 1}), -32601),
            (json!({"jsonrpc": "2.0", "method": "torrent.pause", "params": {"ids": "one"}, "id": 1}), -32602),
            (
                json!({"jsonrpc": "2.0", "method": "torrent.set", "params": {"ids": [1], "upload_limit": -5}, "id": 1}),
                -32602,
            ),
            (json!({"jsonrpc": "2.0", "method": "torrent.pause", "params": {"ids": [1, 99]}, "id": 1}), -32001),
            (json!({"jsonrpc": "2.0", "method": "torrent.remove", "params": {"ids": [99]}, "id": 1}), -32001),
            (
                json!({"jsonrpc": "2.0", "method": "torrent.set", "params": {"ids": [1], "file_priorities": [[9, "high"]]}, "id": 1}),
                -32602,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "torrent.add", "params": {"torrent": "bm90IGJlbmNvZGU="}, "id": 1}),
                -32002,
            ),
            (json!(42), -32600),
            (json!([]), -32600),
        ] {
            let v = call(&fake, body.clone()).await;
            assert_eq!(code(&v), want, "{body} -> {v}");
            assert!(!v["error"]["message"].as_str().expect("works").is_empty());
        }
        let v = call(
            &fake,
            json!({"jsonrpc": "2.0", "method": "torrent.set", "params": {"ids": [1], "upload_limit": "x"}, "id": 1}),
        )
        .await;
        assert!(v["error"]["message"].as_str().expect("works").contains("upload_limit"), "{v}");
        let v = call(&fake, json!({"jsonrpc": "2.0", "method": "torrent.pause", "params": {"ids": [1, 99]}, "id": 1}))
            .await;
        assert_eq!(v["error"]["data"]["id"], 99);
        assert_eq!(fake.snapshot(), before);
    }

    #[tokio::test]
    async fn batches_and_notifications() {
        let fake = Fake::with_torrents(1);
        let v = call(
            &fake,
            json!([
                {"jsonrpc": "2.0", "method": "torrent.pause", "params": {"ids": [1]}},
                {"jsonrpc": "2.0", "method": "torrent.get", "params": {"ids": [1], "fields": ["state"]}, "id": 1},
                1,
                {"jsonrpc": "2.0", "method": "nope", "id": 2},
            ]),
        )
        .await;
        let list = v.as_array().expect("works");
        assert_eq!(list.len(), 3, "{v}");
        assert_eq!(list[0]["result"][0]["state"], "paused");
        assert_eq!(code(&list[1]), -32600);
        assert_eq!(code(&list[2]), -32601);

        let notification = json!({"jsonrpc": "2.0", "method": "torrent.resume", "params": {"ids": "all"}});
        assert_eq!(handle(&fake, notification.to_string().as_bytes()).await, None);
        assert_eq!(fake.state_of(1), crate::api::TorrentState::Downloading);
        let batch = json!([notification, {"jsonrpc": "2.0", "method": "nope"}]);
        assert_eq!(handle(&fake, batch.to_string().as_bytes()).await, None);

        let big: Vec<Value> =
            (0..=MAX_BATCH).map(|i| json!({"jsonrpc": "2.0", "method": "session.get", "id": i})).collect();
        let v = call(&fake, Value::Array(big)).await;
        assert_eq!(code(&v), -32600);
    }
}
