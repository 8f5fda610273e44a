//! The remote commands (`shoal add`, `list`, `status`, `pause`, `resume`, `remove`): JSON-RPC
//! calls to a running `shoal daemon`, printed as readable tables or, with `--json`, as the
//! daemon's answer.

use std::time::Duration;

use anyhow::{Context, anyhow};
use base64::Engine;
use indicatif::HumanBytes;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{RemoteAddArgs, RemoteArgs, RemoteIdArgs, RemoteRemoveArgs};

/// Longest wait for the daemon's answer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Calls `method` with `params`; the JSON-RPC error, if any, becomes a one-line failure.
pub(crate) async fn call(remote: &RemoteArgs, method: &str, params: Value) -> Result<Value, Failure> {
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().context("cannot start the HTTP client")?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut request = client
        .post(&remote.rpc)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).context("encoding the request")?);
    if let Some(token) = &remote.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        anyhow!("cannot reach the daemon at {}: {} (is `shoal daemon` running?)", remote.rpc, e.without_url())
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Failure::Runtime(anyhow!("the daemon refused the credentials (pass --token)")));
    }
    let bytes = response.bytes().await.map_err(|e| anyhow!("reading the daemon's answer: {}", e.without_url()))?;
    let reply: Value = serde_json::from_slice(&bytes)
        .map_err(|_| anyhow!("the daemon at {} answered HTTP {status} without JSON-RPC", remote.rpc))?;
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
    if let Some(dir) = &a.output {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        params["download_dir"] = json!(dir.display().to_string());
    }
    let result = call(&a.remote, "torrent.add", params).await?;
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
    let result = call(&a, "torrent.list", json!({})).await?;
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
    let result = call(&a.remote, "torrent.get", json!({"ids": ids(&a.ids)})).await?;
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
        for f in t["files"].as_array().cloned().unwrap_or_default() {
            println!(
                "  file     {} ({}, {})",
                f["path"].as_str().unwrap_or("?"),
                HumanBytes(f["length"].as_u64().unwrap_or(0)),
                f["priority"].as_str().unwrap_or("normal")
            );
        }
    }
    Ok(())
}

pub(crate) async fn pause_resume(a: RemoteIdArgs, pause: bool) -> Result<(), Failure> {
    let method = if pause { "torrent.pause" } else { "torrent.resume" };
    let result = call(&a.remote, method, json!({"ids": ids(&a.ids)})).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let done: Vec<String> = result.as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        println!("{}: {}", if pause { "paused" } else { "resumed" }, done.join(", "));
    }
    Ok(())
}

pub(crate) async fn remove(a: RemoteRemoveArgs) -> Result<(), Failure> {
    let params = json!({"ids": ids(&a.ids), "delete_data": a.delete_data});
    let result = call(&a.remote, "torrent.remove", params).await?;
    if a.remote.json {
        print_json(&result);
    } else {
        let done: Vec<String> = result.as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        let data = if a.delete_data { " with their data" } else { "" };
        println!("removed{data}: {}", done.join(", "));
    }
    Ok(())
}
