//! The search benchmark's engine (run by `bench/search.py`): N Shoal search nodes in one
//! process, each with its own identity, SQLite index and loopback TCP listener, joined in a
//! random graph of degree 4 to 8 over the real `shoal_search` wire; items spread by a Zipf
//! popularity (item of rank r on about N / r^0.8 nodes, so most items are on one or two);
//! queries for existing items (chosen uniformly, so rare items are asked as often as popular
//! ones) from random nodes that do not hold them. Then the same items in one index server
//! (the routes `shoal index` serves), queried over HTTP at a fixed rate.
//!
//! Prints one JSON object per case on stdout.
//!
//! Usage: search_bench [--nodes 50] [--items 2000] [--queries 200] [--hops 2,3,4] [--rate 100]
//!        [--seed 7]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_identity::Identity;
use shoal_proto::PeerId;
use shoal_search::neighbours::{self, Neighbours};
use shoal_search::overlay::{self, SplitMix64};
use shoal_search::{FileItem, Index, Record, RecordBody};

struct Args {
    nodes: usize,
    items: usize,
    queries: usize,
    hops: Vec<u8>,
    rate: u32,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args { nodes: 50, items: 2000, queries: 200, hops: vec![2, 3, 4], rate: 100, seed: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let n = || value.parse::<u64>().unwrap_or_else(|_| panic!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--nodes" => a.nodes = n() as usize,
            "--items" => a.items = n() as usize,
            "--queries" => a.queries = n() as usize,
            "--rate" => a.rate = n() as u32,
            "--seed" => a.seed = n(),
            "--hops" => a.hops = value.split(',').map(|h| h.parse().expect("hop limit")).collect(),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

fn ms(v: Option<f64>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, |s| serde_json::json!((s * 1000.0 * 10.0).round() / 10.0))
}

struct Item {
    name: String,
    hash: String,
    holders: Vec<usize>,
}

fn record(identity: &Identity, item: &Item) -> Record {
    let body = RecordBody {
        info_hash: item.hash.clone(),
        name: item.name.clone(),
        size: 1 << 20,
        files: vec![FileItem { path: format!("{}.bin", item.name.replace(' ', "-")), size: 1 << 20 }],
        file_count: 1,
        tags: Vec::new(),
        trackers: Vec::new(),
        group: None,
        publisher: identity.id().compact(),
        published_at: 1,
    };
    Record::sign(body, identity).expect("sign")
}

/// The sum of every node's message counters: (query messages, results messages).
fn messages(nodes: &[Neighbours]) -> (u64, u64) {
    nodes
        .iter()
        .map(|n| n.status())
        .fold((0, 0), |(q, r), s| (q + s.stats.queries_sent, r + s.answers + s.stats.hits_relayed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let mut rng = SplitMix64(a.seed);
    let work = tempfile::tempdir().expect("tempdir");
    // Items: three words from a vocabulary of 3,000, a Zipf number of copies.
    let vocabulary: Vec<String> = (0..3000).map(|i| format!("w{:05x}{}", rng.next_u64() % 0xfffff, i % 10)).collect();
    let items: Vec<Item> = (0..a.items)
        .map(|rank| {
            let name = (0..3).map(|_| vocabulary[rng.below(vocabulary.len())].as_str()).collect::<Vec<_>>().join(" ");
            let copies = ((a.nodes as f64 / (rank as f64 + 1.0).powf(0.8)).round() as usize).clamp(1, a.nodes);
            let mut holders = HashSet::new();
            while holders.len() < copies {
                holders.insert(rng.below(a.nodes));
            }
            let hash = format!("{:016x}{:016x}{:08x}", rng.next_u64(), rng.next_u64(), rng.next_u64() as u32);
            Item { name, hash, holders: holders.into_iter().collect() }
        })
        .collect();
    let copies: usize = items.iter().map(|i| i.holders.len()).sum();
    let on_one_or_two = items.iter().filter(|i| i.holders.len() <= 2).count();
    // Nodes.
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    let mut identities = Vec::new();
    let setup = Instant::now();
    for n in 0..a.nodes {
        let dir = work.path().join(format!("node{n}"));
        let (identity, _) = Identity::load_or_create(&dir, None).expect("identity");
        let index = Index::open(&dir.join("index.sqlite3"), 100_000).expect("index");
        for item in items.iter().filter(|i| i.holders.contains(&n)) {
            index.insert(&record(&identity, item), "local", true, 1, None).expect("insert");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let peer_id = PeerId::generate(id);
        let config = neighbours::Config { peer_id, port: addr.port(), policy: overlay::Config::default() };
        let node = Neighbours::start(config, Arc::new(index));
        node.listen(listener, peer_id);
        nodes.push(node);
        addrs.push(addr);
        identities.push(identity);
    }
    // A random graph of degree 4 to 8: a ring, then random chords.
    let target: Vec<usize> = (0..a.nodes).map(|_| 4 + rng.below(5)).collect();
    let mut degree = vec![0usize; a.nodes];
    let mut edges = HashSet::new();
    for i in 0..a.nodes {
        let j = (i + 1) % a.nodes;
        edges.insert((i.min(j), i.max(j)));
        degree[i] += 1;
        degree[j] += 1;
    }
    for _ in 0..100_000 {
        let (x, y) = (rng.below(a.nodes), rng.below(a.nodes));
        if x == y || degree[x] >= target[x] || degree[y] >= target[y] || !edges.insert((x.min(y), x.max(y))) {
            continue;
        }
        degree[x] += 1;
        degree[y] += 1;
    }
    for &(x, y) in &edges {
        nodes[x].add(addrs[y]);
    }
    let wanted: Vec<usize> = (0..a.nodes).map(|n| edges.iter().filter(|(x, y)| *x == n || *y == n).count()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while nodes.iter().zip(&wanted).any(|(n, w)| n.status().neighbours.len() < *w) {
        assert!(Instant::now() < deadline, "the graph did not form within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Routing tables settle: no table sent for 3 s (at most 60 s).
    let tables = |nodes: &[Neighbours]| nodes.iter().map(|n| n.status().stats.tables_sent).sum::<u64>();
    let (mut last, mut still_since) = (tables(&nodes), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    while still_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = tables(&nodes);
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    let mean_degree = wanted.iter().sum::<usize>() as f64 / a.nodes as f64;
    println!(
        "{}",
        serde_json::json!({
            "case": "setup", "nodes": a.nodes, "items": a.items, "copies": copies,
            "items_on_one_or_two_nodes": on_one_or_two, "mean_degree": (mean_degree * 10.0).round() / 10.0,
            "setup_s": (setup.elapsed().as_secs_f64() * 10.0).round() / 10.0, "tables_sent": last,
        })
    );
    // Flooding, per hop limit: the same queries each time.
    let plan: Vec<(usize, usize)> = (0..a.queries)
        .map(|_| {
            loop {
                let item = rng.below(items.len());
                let from = rng.below(a.nodes);
                if !items[item].holders.contains(&from) {
                    break (item, from);
                }
            }
        })
        .collect();
    for &hops in &a.hops {
        let (mut found, mut first, mut tenth) = (0, Vec::new(), Vec::new());
        let (q0, r0) = messages(&nodes);
        for &(item, from) in &plan {
            let start = Instant::now();
            let Some(mut rx) = nodes[from].ask(&items[item].name, 10, hops).await else { continue };
            let mut got = 0;
            let mut hit = false;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(f)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                got += 1;
                if got == 1 {
                    first.push(start.elapsed().as_secs_f64());
                }
                if got == 10 {
                    tenth.push(start.elapsed().as_secs_f64());
                }
                hit |= Record::from_json(&f.record).is_ok_and(|(r, _)| r.body.info_hash == items[item].hash);
            }
            found += usize::from(hit);
        }
        let (q_items, r_items) = messages(&nodes);
        // Time to the 10th result: words most items share (a vocabulary word of many names).
        let mut common_tenth = Vec::new();
        let common: Vec<&str> = items.iter().take(50).map(|i| i.name.split(' ').next().unwrap_or("")).collect();
        for (k, word) in common.iter().enumerate().take(20) {
            let start = Instant::now();
            let Some(mut rx) = nodes[k % a.nodes].ask(word, 10, hops).await else { continue };
            let mut got = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(_)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                got += 1;
                if got == 10 {
                    common_tenth.push(start.elapsed().as_secs_f64());
                    break;
                }
            }
        }
        let (q1, r1) = messages(&nodes);
        let n = plan.len() as f64;
        let n_common = common.len().min(20) as f64;
        first.sort_by(f64::total_cmp);
        tenth.extend(common_tenth);
        tenth.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({
                "case": format!("flood, hop limit {hops}"), "queries": plan.len(),
                "recall": (found as f64 / plan.len() as f64 * 1000.0).round() / 1000.0,
                "first_p50_ms": ms(percentile(&first, 0.5)), "first_p90_ms": ms(percentile(&first, 0.9)),
                "tenth_p50_ms": ms(percentile(&tenth, 0.5)), "tenth_p90_ms": ms(percentile(&tenth, 0.9)),
                "tenth_samples": tenth.len(),
                "query_msgs_per_query": ((q_items - q0) as f64 / n * 10.0).round() / 10.0,
                "result_msgs_per_query": ((r_items - r0) as f64 / n * 10.0).round() / 10.0,
                "msgs_per_query": (((q_items - q0) + (r_items - r0)) as f64 / n * 10.0).round() / 10.0,
                "common_word_msgs_per_query": (((q1 - q_items) + (r1 - r_items)) as f64 / n_common * 10.0).round() / 10.0,
            })
        );
    }
    drop(nodes);
    // The index server: every item's record in one index, queried over HTTP at `rate`/s.
    let index = Index::open(&work.path().join("server.sqlite3"), 100_000).expect("index");
    for item in &items {
        index.insert(&record(&identities[item.holders[0]], item), "index", false, 1, None).expect("insert");
    }
    let app = shoal_search::server::router(index, shoal_search::server::Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = shoal_search::client::http_client(Duration::from_secs(5)).expect("client");
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let mut ticks = tokio::time::interval(gap);
    let mut asks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for &(item, _) in &plan {
        ticks.tick().await;
        let (client, base, name, hash) =
            (client.clone(), base.clone(), items[item].name.clone(), items[item].hash.clone());
        asks.spawn(async move {
            let start = Instant::now();
            let answer = shoal_search::client::search(&client, &base, &name, 10, &[]).await;
            let took = start.elapsed().as_secs_f64();
            (answer.is_ok_and(|(records, _)| records.iter().any(|a| a.record.body.info_hash == hash)), took)
        });
    }
    let mut times = Vec::new();
    let mut found = 0;
    while let Some(Ok((hit, took))) = asks.join_next().await {
        found += usize::from(hit);
        times.push(took);
    }
    let achieved = plan.len() as f64 / started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "case": "index server", "queries": plan.len(), "rate_per_s": (achieved * 10.0).round() / 10.0,
            "recall": (found as f64 / plan.len() as f64 * 1000.0).round() / 1000.0,
            "first_p50_ms": ms(percentile(&times, 0.5)), "first_p90_ms": ms(percentile(&times, 0.9)),
            "msgs_per_query": 2,
        })
    );
}
