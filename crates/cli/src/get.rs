//! `shoal get`: download a torrent (a .torrent file, an http(s) URL of one, or a magnet link)
//! with a progress bar; exit 0 once every piece is verified, then optionally keep seeding.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, anyhow};
use indicatif::{HumanBytes, HumanDuration};
use shoal_engine::{AddTorrent, FilePriority, MetadataProgress, Session, TorrentState};
use shoal_proto::Metainfo;
use shoal_proto::magnet::Magnet;

use crate::args::GetArgs;
use crate::{BadInput, Failure, interrupted, progress, resolve_peers};

/// Largest .torrent file read.
pub(crate) const MAX_TORRENT_FILE: u64 = shoal_engine::MAX_TORRENT_FILE;

pub(crate) async fn run(a: GetArgs, quiet: bool) -> Result<(), Failure> {
    // `@N`: result N of the last `shoal search`.
    let link = crate::search::result_link(&a.source, a.data_dir.as_deref())?;
    let source = load_source(link.as_deref().unwrap_or(&a.source)).await?;
    let peers = resolve_peers(&a.peers).await?;
    let ssl = match &source {
        Source::Torrent(meta) => crate::group::ssl_for(meta, a.data_dir.as_deref(), quiet)?,
        Source::Magnet(_) => None,
    };
    let session = Session::start(a.node.session_config_for(ssl.is_some(), a.data_dir.as_deref()))
        .await
        .map_err(anyhow::Error::from)?;
    if let Some(dht) = session.dht().filter(|_| !quiet) {
        println!("dht: node on {}", dht.local_addr());
    }
    let result = download(&a, quiet, &session, source, peers, ssl).await;
    // On every way out, so the DHT keeps what it learned.
    session.shutdown().await;
    result
}

/// Fetches the metadata if needed, then the data; seeds afterwards with `--seed`.
async fn download(
    a: &GetArgs,
    quiet: bool,
    session: &Session,
    source: Source,
    mut peers: Vec<std::net::SocketAddr>,
    ssl: Option<(shoal_engine::SslTorrent, String)>,
) -> Result<(), Failure> {
    // `--timeout` bounds the whole wait: metadata and data.
    let deadline = a.timeout.map(|secs| tokio::time::Instant::now() + std::time::Duration::from_secs(secs));
    let (meta, only_files) = match source {
        Source::Torrent(meta) => (*meta, None),
        Source::Magnet(magnet) => {
            let (meta, found) =
                fetch_metadata(session, &magnet, peers.clone(), !a.no_trackers, quiet, deadline.zip(a.timeout)).await?;
            peers.extend(found);
            let files = meta.info.files.len();
            if let Some(beyond) = magnet.select_only.iter().flatten().map(|r| *r.end()).find(|&i| i as usize >= files) {
                return Err(Failure::Input(anyhow!(
                    "so= names file {beyond}, but {} has {files} files (0 to {})",
                    crate::text::printable(&meta.info.name),
                    files.saturating_sub(1)
                )));
            }
            let only = magnet
                .select_only
                .as_ref()
                .map(|_| (0..files).filter(|&i| u32::try_from(i).is_ok_and(|i| magnet.is_selected(i))).collect());
            (meta, only)
        }
    };
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    // A sealed share: its ciphertext goes to `.shoal-sealed/` and is opened once verified.
    let opener = match meta.info.sealed {
        Some(_) => {
            let dir = crate::sealed::data_dir_with_identity(a.data_dir.as_deref(), quiet)?;
            crate::sealed::Opener::for_torrent(&meta, ssl.as_ref().map(|(_, g)| g.as_str()), &dir)?
        }
        None => None,
    };
    let download_dir = match &opener {
        Some(_) => a.output.join(crate::sealed::SEALED_DIR),
        None => a.output.clone(),
    };
    // What the user asked for: the chosen files (padding files are never data).
    let chosen = |i: usize| only_files.as_ref().is_none_or(|only: &Vec<usize>| only.contains(&i));
    let chosen_files: Vec<&shoal_proto::metainfo::FileEntry> =
        meta.info.files.iter().enumerate().filter(|(i, f)| chosen(*i) && !f.padding).map(|(_, f)| f).collect();
    let chosen_bytes: u64 = chosen_files.iter().map(|f| f.length).sum();
    let chosen_note = match &only_files {
        Some(_) => format!(
            "; {} of {} files chosen",
            chosen_files.len(),
            meta.info.files.iter().filter(|f| !f.padding).count()
        ),
        None => String::new(),
    };
    let name = crate::text::printable(opener.as_ref().map_or(meta.info.name.as_str(), |o| o.name())).into_owned();
    let sealed_meta = opener.as_ref().map(|_| meta.clone());
    let stored_name = meta.info.name.clone();
    let hash = meta.info_hash;
    let file_count = meta.info.files.len();
    let torrent = session
        .add(AddTorrent {
            meta,
            download_dir: download_dir.clone(),
            peers,
            use_trackers: !a.no_trackers,
            file_priorities: only_files.map(|only| {
                let skip_unless = |i| if only.contains(&i) { FilePriority::Normal } else { FilePriority::Skip };
                (0..file_count).map(skip_unless).collect()
            }),
            sequential: false,
            resume: None,
            ssl: ssl.as_ref().map(|(tls, _)| tls.clone()),
        })
        .await
        .map_err(anyhow::Error::from)?;
    if !quiet {
        println!("downloading {name} ({hash}) into {}; listening on {}", a.output.display(), session.listen_addr());
        if let (Some((_, group)), Some(addr)) = (&ssl, session.ssl_listen_addr()) {
            println!("private share of group {group}: peers connect over TLS on {addr}");
        }
    }
    // Opened while it downloads; dropped (stopped, partial plaintext removed) on every way out
    // but success.
    let opening = opener
        .as_ref()
        .zip(sealed_meta.as_ref())
        .map(|(o, m)| o.start(m, torrent.piece_check(), &download_dir.join(&stored_name), &a.output));
    let initial = torrent.status();
    if !quiet && initial.stats.pieces_have > 0 {
        println!("resuming: {} of {} pieces already verified", initial.stats.pieces_have, initial.stats.pieces_total);
    }
    let bar = progress::transfer_bar(None, initial.total_length, "get", quiet);
    let start = Instant::now();
    let before = initial.stats.bytes_have;
    let status = tokio::select! {
        s = progress::follow(&torrent, &bar) => s,
        () = report_waiting(&torrent, session, &bar, quiet) => unreachable!("reports until dropped"),
        () = until(deadline) => {
            bar.abandon();
            let s = torrent.status();
            let tried = waiting_summary(&s, session).await;
            torrent.stop().await;
            return Err(Failure::Runtime(anyhow!(
                "gave up after {} s (--timeout) with {} of {} pieces verified; {tried}",
                a.timeout.unwrap_or(0), s.stats.pieces_have, s.stats.pieces_total
            )));
        }
        _ = interrupted() => {
            bar.abandon();
            let s = torrent.status();
            torrent.stop().await;
            return Err(Failure::Interrupted(anyhow!(
                "interrupted with {} of {} pieces verified; run the same command again to continue",
                s.stats.pieces_have, s.stats.pieces_total
            )));
        }
    };
    bar.finish_and_clear();
    if let TorrentState::Error(e) = &status.state {
        torrent.stop().await;
        return Err(Failure::Runtime(anyhow!("{name}: {e}")));
    }
    let elapsed = start.elapsed();
    // Padding is verified with the pieces but never crosses the network.
    let fetched = (status.stats.bytes_have - before).saturating_sub(status.stats.padding_filled);
    if !quiet {
        // Blocks that arrived twice (endgame, late copies) or failed verification.
        let wasted = status.stats.downloaded.saturating_sub(fetched);
        let wasted = if wasted > 0 { format!("; {} wasted", HumanBytes(wasted)) } else { String::new() };
        println!(
            "complete: {name}, {} verified ({} fetched in {}, {}{wasted}{chosen_note})",
            HumanBytes(chosen_bytes),
            HumanBytes(fetched),
            HumanDuration(elapsed),
            progress::rate(fetched, elapsed)
        );
    }
    if let (Some(opener), Some(opening)) = (&opener, opening) {
        let (files, bytes) = opener.size();
        let (at, waited) = match opening.finish().await {
            Ok(done) => done,
            Err(e) => {
                torrent.stop().await;
                return Err(e);
            }
        };
        println!(
            "opened: {name}, {files} file(s), {} of plaintext in {} ({:.2} s after the download)",
            HumanBytes(bytes),
            at.display(),
            waited.as_secs_f64()
        );
    }
    if a.seed {
        if !quiet {
            println!("seeding on {}; press Ctrl-C to stop", session.listen_addr());
        }
        let bar = progress::transfer_bar(None, status.total_length, "seed", quiet);
        let mut rx = torrent.subscribe();
        tokio::select! {
            _ = interrupted() => {}
            _ = async { loop { progress::show(&bar, &rx.borrow_and_update().clone()); if rx.changed().await.is_err() { break } } } => {}
        }
        bar.finish_and_clear();
        let last = torrent.subscribe();
        torrent.stop().await;
        if !quiet {
            let stats = last.borrow().stats.clone();
            println!("{}", transferred(stats.downloaded, stats.uploaded));
        }
        return Ok(());
    }
    torrent.stop().await;
    Ok(())
}

/// `transferred: downloaded X (N bytes), uploaded Y (M bytes)`: payload over the whole run.
pub(crate) fn transferred(downloaded: u64, uploaded: u64) -> String {
    format!(
        "transferred: downloaded {} ({downloaded} bytes), uploaded {} ({uploaded} bytes)",
        HumanBytes(downloaded),
        HumanBytes(uploaded)
    )
}

/// Sleeps until `deadline`, or for ever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How often a download with no peer says what it is trying.
const WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// While the download has no peer, says every [`WAITING_EVERY`] (the first time after 3 s)
/// what is being tried and what came of it. Never returns.
async fn report_waiting(torrent: &shoal_engine::Torrent, session: &Session, bar: &indicatif::ProgressBar, quiet: bool) {
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    loop {
        let s = torrent.status();
        if !quiet && s.stats.peers == 0 && s.state == TorrentState::Downloading {
            let line = waiting_summary(&s, session).await;
            bar.suspend(|| eprintln!("waiting for peers: {}", crate::text::printable(&line)));
        }
        tokio::time::sleep(WAITING_EVERY).await;
    }
}

/// What a download without peers is trying: each tracker's last answer, the DHT, and the
/// peers named with `--peer` or `x.pe` that could not be reached.
async fn waiting_summary(s: &shoal_engine::TorrentStatus, session: &Session) -> String {
    let mut parts = Vec::new();
    for t in &s.trackers {
        parts.push(match &t.last_result {
            Some(Ok(n)) => format!("tracker {} answered with {n} peers", t.url),
            Some(Err(e)) => format!("tracker {}: {e}", t.url),
            None => format!("tracker {}: no answer yet", t.url),
        });
    }
    if s.trackers.is_empty() {
        parts.push("no trackers".to_owned());
    }
    match session.dht() {
        Some(dht) => match dht.stats().await {
            Ok(st) => parts.push(format!(
                "DHT: {} nodes{}",
                st.nodes,
                if st.bootstrapped { "" } else { ", not bootstrapped yet" }
            )),
            Err(e) => parts.push(format!("DHT: {e}")),
        },
        None => parts.push("DHT off".to_owned()),
    }
    for (addr, e) in &s.unreachable {
        parts.push(format!("peer {addr}: {e}"));
    }
    match session.unreadable_handshakes() {
        0 => {}
        n => parts.push(format!(
            "{n} incoming connection(s) did not open with a BitTorrent handshake or a protocol encryption one Shoal \
             could read"
        )),
    }
    parts.join("; ")
}

/// What a metadata fetch is trying: the peers known and asked, the last failure, the DHT.
async fn metadata_summary(p: &MetadataProgress, session: &Session) -> String {
    let mut line = format!("{} peers known, {} failed attempts", p.peers_known, p.failed);
    if let Some(e) = &p.last_error {
        line.push_str(&format!(" (last: {e})"));
    }
    match session.dht() {
        Some(dht) => match dht.stats().await {
            Ok(st) => line.push_str(&format!("; DHT: {} nodes", st.nodes)),
            Err(e) => line.push_str(&format!("; DHT: {e}")),
        },
        None => line.push_str("; DHT off"),
    }
    line
}

/// What `shoal get` was asked to fetch.
pub(crate) enum Source {
    /// A torrent whose metadata we have.
    Torrent(Box<Metainfo>),
    /// A magnet link: the metadata comes from peers first.
    Magnet(Magnet),
}

/// Reads and parses SOURCE: a magnet link, an http(s) URL of a .torrent file, or a path. A
/// malformed source is bad input (exit code 2); a URL that cannot be fetched is a runtime
/// failure.
pub(crate) async fn load_source(source: &str) -> Result<Source, Failure> {
    if source.starts_with("magnet:") {
        return Ok(Source::Magnet(Magnet::parse(source).bad_input()?));
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        let bytes = fetch_torrent(source).await?;
        let meta =
            Metainfo::from_bytes(&bytes).with_context(|| format!("{source} is not a valid torrent")).bad_input()?;
        return Ok(Source::Torrent(Box::new(meta)));
    }
    load_torrent_file(Path::new(source)).map(|m| Source::Torrent(Box::new(m)))
}

/// Downloads a .torrent file; one that is too large is bad input, one that cannot be fetched a
/// runtime failure.
async fn fetch_torrent(url: &str) -> Result<Vec<u8>, Failure> {
    shoal_engine::fetch_torrent(url).await.map_err(|e| match e {
        shoal_engine::FetchError::TooLarge { .. } => Failure::Input(e.into()),
        e => Failure::Runtime(e.into()),
    })
}

/// Fetches a magnet link's metadata from peers, showing how the search goes.
pub(crate) async fn fetch_metadata(
    session: &Session,
    magnet: &Magnet,
    peers: Vec<std::net::SocketAddr>,
    use_trackers: bool,
    quiet: bool,
    timeout: Option<(tokio::time::Instant, u64)>,
) -> Result<(Metainfo, Vec<std::net::SocketAddr>), Failure> {
    let name = crate::text::printable(magnet.display_name.as_deref().unwrap_or("the torrent")).into_owned();
    if !quiet {
        println!("fetching metadata of {name} ({}); listening on {}", magnet.info_hash, session.listen_addr());
    }
    let spinner = progress::spinner(quiet);
    let (tx, mut rx) = tokio::sync::watch::channel(MetadataProgress::default());
    let fetch = session.fetch_metadata(magnet, peers, use_trackers, tx);
    tokio::pin!(fetch);
    let start = Instant::now();
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + std::time::Duration::from_secs(3), WAITING_EVERY);
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r,
            () = until(timeout.map(|t| t.0)) => {
                spinner.abandon();
                let progress = rx.borrow().clone();
                let tried = metadata_summary(&progress, session).await;
                return Err(Failure::Runtime(anyhow!(
                    "gave up after {} s (--timeout) without the metadata of {}; {tried}",
                    timeout.map_or(0, |t| t.1),
                    magnet.info_hash
                )));
            }
            _ = report.tick() => {
                let p = rx.borrow().clone();
                if !quiet && p.asking == 0 {
                    let line = metadata_summary(&p, session).await;
                    spinner.suspend(|| eprintln!("waiting for metadata: {}", crate::text::printable(&line)));
                }
            }
            _ = interrupted() => {
                spinner.abandon();
                return Err(Failure::Interrupted(anyhow!("interrupted while fetching the metadata of {}", magnet.info_hash)));
            }
            changed = rx.changed() => {
                if changed.is_ok() {
                    let p = rx.borrow_and_update().clone();
                    spinner.set_message(format!(
                        "fetching metadata: {} peers known, asking {}, {} failed",
                        p.peers_known, p.asking, p.failed
                    ));
                }
            }
        }
    };
    spinner.finish_and_clear();
    let (meta, found) = result.map_err(anyhow::Error::from)?;
    if !quiet {
        // Padding entries (BEP 47, and the piece alignment of v2 torrents) are not files the
        // user gets.
        let real = meta.info.files.iter().filter(|f| !f.padding);
        println!(
            "metadata: {} ({}, {} files) in {}",
            crate::text::printable(&meta.info.name),
            HumanBytes(real.clone().map(|f| f.length).sum::<u64>()),
            real.count(),
            HumanDuration(start.elapsed())
        );
    }
    Ok((meta, found))
}

fn load_torrent_file(path: &Path) -> Result<Metainfo, Failure> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display())).bad_input()?.len();
    if len > MAX_TORRENT_FILE {
        return Err(Failure::Input(anyhow!("{} is {len} bytes, too large for a .torrent file", path.display())));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display())).bad_input()?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{} is not a valid torrent", path.display())).bad_input()
}
