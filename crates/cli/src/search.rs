//! `shoal index`, `shoal publish` and `shoal search` ([`shoal_search`] has the records, the
//! index and the server): a community's index server, publishing signed records to it, and
//! searching it. `shoal search` keeps its results in `DATA_DIR/last-search.json`, so that
//! `shoal get @N` fetches result N.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use indicatif::HumanBytes;
use shoal_search::server::Limits;
use shoal_search::{Index, Record};

use crate::args::{IndexArgs, PublishArgs, SearchArgs};
use crate::{BadInput, Failure, interrupted};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `shoal index`: serves the index until Ctrl-C.
pub(crate) async fn index(a: IndexArgs) -> Result<(), Failure> {
    let dir = crate::group::data_folder(a.data_dir.as_deref())?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("index.sqlite3");
    let store = Index::open(&path, a.max_records).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let listener =
        tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr().context("the listener has no address")?;
    let limits = Limits { per_identity: a.per_identity.max(1), per_minute: a.per_minute.max(1) };
    // A tracker on the same port: torrents that list it get live seeder counts in the results.
    let (tracker, swarms) = shoal_engine::tracker::routes(shoal_engine::tracker::TrackerConfig::default());
    let seeders: shoal_search::server::Seeders =
        std::sync::Arc::new(move |hex: &str| shoal_proto::InfoHash::from_hex(hex).map_or(0, |h| swarms.seeders(&h)));
    let app = shoal_search::server::router_with_seeders(store, limits, Some(seeders)).merge(tracker);
    println!(
        "index: http://{addr}/ (publish: POST /publish; search: GET /search?q=WORDS); records in {}",
        path.display()
    );
    println!("tracker: http://{addr}/announce (torrents that list it get seeder counts in the results)");
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(interrupted())
        .await
        .context("the index server failed")?;
    Ok(())
}

fn client() -> Result<reqwest::Client, Failure> {
    shoal_search::client::http_client(std::time::Duration::from_secs(30)).map_err(|e| Failure::Runtime(anyhow!(e)))
}

/// An index client's failure as the command line reports it (a refused request is bad input).
fn ask_failure(e: shoal_search::client::AskError) -> Failure {
    match e {
        shoal_search::client::AskError::Refused { bad_request: true, .. } => Failure::Input(anyhow!(e)),
        e => Failure::Runtime(anyhow!(e)),
    }
}

fn base(url: &str) -> Result<String, Failure> {
    let url = url.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::Input(anyhow!("--index {url:?} is not an http:// or https:// URL")));
    }
    Ok(url.to_string())
}

/// `shoal publish`.
pub(crate) async fn publish(a: PublishArgs, quiet: bool) -> Result<(), Failure> {
    let bytes = std::fs::read(&a.source).with_context(|| format!("cannot read {}", a.source.display())).bad_input()?;
    let meta = shoal_proto::Metainfo::from_bytes(&bytes)
        .map_err(|e| Failure::Input(anyhow!("{} is not a valid torrent: {e}", a.source.display())))?;
    let dir = crate::group::data_folder(a.data_dir.as_deref())?;
    let identity = crate::group::load_identity(&dir, None, quiet)?;
    let record = Record::publish(&meta, &a.tags, &identity, now()).bad_input()?;
    let said = shoal_search::client::publish(&client()?, &base(&a.index)?, &record).await.map_err(ask_failure)?;
    let again = if said["result"] == "unchanged" { " (it had this record already)" } else { "" };
    println!(
        "published: {} ({}) to {} as {}{again}",
        crate::text::printable(&record.body.name),
        record.body.info_hash,
        a.index,
        identity.id()
    );
    Ok(())
}

/// Where the last search's results are kept.
fn last_search(dir: &Path) -> PathBuf {
    dir.join("last-search.json")
}

/// One result as `shoal search` shows and keeps it.
struct Shown {
    name: String,
    size: u64,
    info_hash: String,
    magnet: String,
    publisher: Option<String>,
    source: String,
    tags: Vec<String>,
    group: bool,
    verified: bool,
    seeders: Option<u32>,
    trusted: bool,
}

/// `shoal search`: an index server directly with `--index`, else the daemon (`search.query`).
pub(crate) async fn search(a: SearchArgs, quiet: bool) -> Result<(), Failure> {
    let words = a.words.join(" ");
    let dir = crate::group::data_folder(a.data_dir.as_deref())?;
    let json = a.remote.json;
    let results = match &a.index {
        Some(index) => from_index(&a, index, &words, &dir, quiet).await?,
        None => {
            if !a.member.is_empty() {
                return Err(Failure::Input(anyhow!(
                    "--member goes with --index (the daemon shows no group records yet)"
                )));
            }
            let remote = crate::remote::Remote::resolve(&a.remote)?;
            let params = serde_json::json!({ "q": words, "limit": a.limit, "peers": !a.no_peers });
            let value = crate::remote::call(&remote, "search.query", params).await?;
            let hits: Vec<shoal_rpc::api::SearchHit> = serde_json::from_value(value)
                .map_err(|e| anyhow!("the daemon answered results this Shoal cannot read: {e}"))?;
            hits.into_iter()
                .map(|h| Shown {
                    name: h.name,
                    size: h.size,
                    info_hash: h.info_hash,
                    magnet: h.magnet,
                    publisher: h.publisher,
                    source: h.source,
                    tags: Vec::new(),
                    group: h.group_only,
                    verified: h.verified,
                    seeders: h.seeders,
                    trusted: h.trusted,
                })
                .collect()
        }
    };
    let kept: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name, "magnet": r.magnet, "info_hash": r.info_hash, "group": r.group,
            })
        })
        .collect();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(last_search(&dir), serde_json::to_vec_pretty(&kept).map_err(|e| anyhow!(e))?)
        .with_context(|| format!("cannot write {}", last_search(&dir).display()))?;
    if json {
        let out: Vec<serde_json::Value> = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                serde_json::json!({
                    "n": i + 1, "name": r.name, "size": r.size, "info_hash": r.info_hash,
                    "publisher": r.publisher, "magnet": r.magnet, "source": r.source,
                    "tags": r.tags, "group_only": r.group, "verified": r.verified, "seeders": r.seeders, "trusted": r.trusted,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    for (i, r) in results.iter().enumerate() {
        let publisher: String = match &r.publisher {
            _ if r.source == "local" => "yours".to_owned(),
            Some(p) if r.trusted => format!("by {} (trusted)", p.chars().take(7).collect::<String>()),
            Some(p) => format!("by {}", p.chars().take(7).collect::<String>()),
            None => "unsigned".to_owned(),
        };
        let group = if r.group { "  (group share)" } else { "" };
        // A name from elsewhere is only what its publisher says until the torrent's metadata
        // is fetched and checked.
        let unverified = if r.verified { "" } else { "  (not verified yet)" };
        let seeders = match r.seeders {
            Some(1) => "  1 seeder".to_string(),
            Some(n) => format!("  {n} seeders"),
            None => String::new(),
        };
        println!(
            "{:>3}. {}  {}{seeders}  {publisher}  [{}]{group}{unverified}",
            i + 1,
            crate::text::printable(&r.name),
            HumanBytes(r.size),
            r.source
        );
    }
    if results.is_empty() {
        println!("nothing found for {words:?}");
    } else if !quiet {
        println!("fetch one with: shoal get @N");
    }
    Ok(())
}

/// The results of an index server, each record checked again here (the index could have
/// altered it).
async fn from_index(a: &SearchArgs, index: &str, words: &str, dir: &Path, quiet: bool) -> Result<Vec<Shown>, Failure> {
    let mut headers = Vec::new();
    if !a.member.is_empty() {
        let identity = crate::group::load_identity(dir, None, quiet || a.remote.json)?;
        let groups = shoal_identity::Groups::new(dir);
        let mut pairs = Vec::new();
        for name in &a.member {
            let m = groups.membership(&identity, name).bad_input()?;
            pairs.push((shoal_identity::pem_cert(&m.ca), shoal_identity::pem_cert(&m.cert)));
        }
        headers = shoal_search::server::signed_query_headers(&identity, words, &pairs);
    }
    let (records, bad) =
        shoal_search::client::search(&client()?, &base(index)?, words, a.limit, &headers).await.map_err(ask_failure)?;
    if bad > 0 {
        tracing::warn!("the index answered {bad} record(s) that do not check; left out");
    }
    let results = records
        .into_iter()
        .map(|shoal_search::client::Answered { record, seeders }| Shown {
            seeders,
            trusted: false,
            magnet: record.magnet(),
            name: record.body.name,
            size: record.body.size,
            info_hash: record.body.info_hash,
            publisher: Some(record.body.publisher),
            source: "index".into(),
            tags: record.body.tags,
            group: record.body.group.is_some(),
            verified: false,
        })
        .collect();
    Ok(results)
}

/// The magnet link of result `n` (from `@N`) of the last search kept in `data_dir`.
pub(crate) fn result_link(source: &str, data_dir: Option<&Path>) -> Result<Option<String>, Failure> {
    let Some(n) = source.strip_prefix('@') else { return Ok(None) };
    let n: usize = n.parse().map_err(|_| Failure::Input(anyhow!("{source:?}: @ is followed by a result's number")))?;
    let dir = crate::group::data_folder(data_dir)?;
    let path = last_search(&dir);
    let text = std::fs::read(&path).map_err(|_| {
        Failure::Input(anyhow!("{source}: no search was made yet (run shoal search WORDS --index URL)"))
    })?;
    let kept: Vec<serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| anyhow!("{} is damaged: {e}", path.display()))?;
    let found = n
        .checked_sub(1)
        .and_then(|i| kept.get(i))
        .ok_or_else(|| Failure::Input(anyhow!("{source}: the last search had {} result(s)", kept.len())))?;
    // A group share opens only over its members' TLS, which needs its .torrent: a magnet link
    // cannot reach it.
    if found["group"].as_bool() == Some(true) {
        return Err(Failure::Input(anyhow!(
            "{source} ({}) is a group share: ask its publisher or a member for the .torrent file and run shoal get \
             FILE.torrent",
            found["name"].as_str().unwrap_or("?")
        )));
    }
    let link = found["magnet"].as_str().ok_or_else(|| anyhow!("{} is damaged: no magnet link", path.display()))?;
    Ok(Some(link.to_string()))
}
