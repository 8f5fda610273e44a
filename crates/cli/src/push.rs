//! `shoal push`: keep a share on a server peer ([`shoal_daemon::server`]).
//!
//! The share is seeded from this process (made into a torrent first when SOURCE is a file or
//! folder, as `share` does); the server is told about it over the push protocol
//! ([`shoal_daemon::push`]), fetches it from here and any other peer, and the command follows
//! the server's progress until it holds a verified copy, then stops seeding and exits 0. A lost
//! connection to the server (a restart) is retried, and the server goes on with the push where
//! it was. `--list` and `--withdraw` only talk to the server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use base64::Engine as _;
use indicatif::HumanBytes;
use shoal_daemon::push::{PushClient, PushError, PushInfo, Reply, Request, Target};
use shoal_engine::Session;
use shoal_identity::Identity;

use crate::args::{PushArgs, TorrentOptions};
use crate::{BadInput, Failure, interrupted};

/// How often the server's progress is asked (a small local request on the server).
const POLL: Duration = Duration::from_millis(100);
/// How long the server may stay unreachable before the push gives up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(300);

pub(crate) async fn run(a: PushArgs, quiet: bool) -> Result<(), Failure> {
    let dir = crate::group::data_folder(a.data_dir.as_deref())?;
    let identity = crate::group::load_identity(&dir, None, quiet || a.json)?;
    if a.list {
        return list(&identity, &a.to, a.json).await;
    }
    if let Some(torrent) = &a.withdraw {
        return withdraw(&identity, &a.to, torrent, a.json).await;
    }
    let source =
        a.source.clone().ok_or_else(|| Failure::Input(anyhow!("nothing to push: give a file, folder or .torrent")))?;
    push(a, &dir, &identity, &source, quiet).await
}

async fn connect(identity: &Identity, to: &Target) -> Result<PushClient, Failure> {
    PushClient::connect(identity, to).await.map_err(push_failure)
}

fn push_failure(e: PushError) -> Failure {
    match e {
        PushError::Refused(_) | PushError::Handshake { .. } => Failure::Input(anyhow!(e)),
        e => Failure::Runtime(anyhow!(e)),
    }
}

fn line(p: &PushInfo) -> String {
    let state = if p.held { "held".to_string() } else { p.state.clone() };
    let group = p.group.as_ref().map(|g| format!("  group {g}")).unwrap_or_default();
    let error = p.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default();
    format!(
        "{}  {:>10}  {:>5.1}%  {:<11}  {}{group}{error}",
        &p.info_hash[..p.info_hash.len().min(16)],
        HumanBytes(p.size).to_string(),
        if p.size == 0 { 100.0 } else { p.have as f64 * 100.0 / p.size as f64 },
        state,
        crate::text::printable(&p.name)
    )
}

async fn list(identity: &Identity, to: &Target, json: bool) -> Result<(), Failure> {
    let reply = connect(identity, to).await?.call(&Request::List).await.map_err(push_failure)?;
    let Reply::List { pushes, quota } = reply else {
        return Err(Failure::Runtime(anyhow!("unexpected answer {reply:?}")));
    };
    if json {
        println!("{}", serde_json::json!({ "pushes": pushes, "quota": quota }));
        return Ok(());
    }
    let used: u64 = pushes.iter().map(|p| p.size).sum();
    for p in &pushes {
        println!("{}", line(p));
    }
    let quota = quota.map(|q| format!(" of your {} quota", HumanBytes(q))).unwrap_or_default();
    println!("{} push(es), {} kept{quota} on {}", pushes.len(), HumanBytes(used), to);
    Ok(())
}

async fn withdraw(identity: &Identity, to: &Target, torrent: &str, json: bool) -> Result<(), Failure> {
    let request = Request::Withdraw { torrent: torrent.to_string() };
    let reply = connect(identity, to).await?.call(&request).await.map_err(push_failure)?;
    let Reply::Withdrawn { push, deleted } = reply else {
        return Err(Failure::Runtime(anyhow!("unexpected answer {reply:?}")));
    };
    if json {
        println!("{}", serde_json::json!({ "withdrawn": push, "deleted": deleted }));
    } else if deleted {
        println!("withdrawn: {} ({}); the server deleted its data", crate::text::printable(&push.name), push.info_hash);
    } else {
        println!(
            "withdrawn: {} ({}); the server keeps the data for others who pushed it",
            crate::text::printable(&push.name),
            push.info_hash
        );
    }
    Ok(())
}

async fn push(a: PushArgs, dir: &Path, identity: &Identity, source: &Path, quiet: bool) -> Result<(), Failure> {
    let opts = TorrentOptions {
        trackers: a.trackers.clone(),
        piece_size: a.piece_size,
        private: false,
        comment: None,
        web_seeds: Vec::new(),
        v2: false,
        hybrid: false,
        group: a.group.clone(),
        to: Vec::new(),
        data_dir: Some(dir.to_path_buf()),
    };
    let is_torrent = source.extension().is_some_and(|e| e.eq_ignore_ascii_case("torrent")) && source.is_file();
    let (session, seeding) = if is_torrent {
        let bytes = std::fs::read(source).with_context(|| format!("cannot read {}", source.display())).bad_input()?;
        let meta = shoal_proto::Metainfo::from_bytes(&bytes)
            .map_err(|e| Failure::Input(anyhow!("{} is not a valid torrent: {e}", source.display())))?;
        if a.group.is_some() {
            return Err(Failure::Input(anyhow!("--group makes a new torrent; {} is one already", source.display())));
        }
        let data = a.output.clone().unwrap_or_else(|| PathBuf::from("."));
        // A sealed share's ciphertext lives in `.shoal-sealed/` of the folder that holds it.
        let data = match meta.info.sealed {
            Some(_) if !data.ends_with(crate::sealed::SEALED_DIR) => data.join(crate::sealed::SEALED_DIR),
            _ => data,
        };
        let ssl = crate::group::ssl_for(&meta, Some(dir), quiet)?;
        let session =
            Session::start(a.node.session_config_for(ssl.is_some(), Some(dir))).await.map_err(anyhow::Error::from)?;
        let torrent = seed_existing(&session, meta.clone(), &data, ssl.clone()).await?;
        (session, crate::share::Seeding { torrent, meta, bytes, ssl })
    } else {
        let path =
            std::fs::canonicalize(source).with_context(|| format!("cannot push {}", source.display())).bad_input()?;
        let out = crate::share::torrent_path(a.output.as_deref(), &path);
        let ssl = opts.group.is_some()
            || std::fs::read(&out)
                .ok()
                .and_then(|b| shoal_proto::Metainfo::from_bytes(&b).ok())
                .is_some_and(|m| m.info.ssl_cert.is_some());
        let session = Session::start(a.node.session_config_for(ssl, Some(dir))).await.map_err(anyhow::Error::from)?;
        let seeding = match a.sealed {
            true => crate::share::seed_sealed(&session, &path, &out, &opts, &[], quiet).await?,
            false => crate::share::seed_path(&session, &path, &out, &opts, &[], None, quiet).await?,
        };
        (session, seeding)
    };
    let port = match (&seeding.ssl, session.ssl_listen_addr()) {
        (Some(_), Some(tls)) => tls.port(),
        _ => session.listen_addr().port(),
    };
    // A sealed share is shown by its real name (the torrent's tells nothing).
    let shown = match seeding.meta.info.sealed {
        Some(_) => source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() + " (sealed)",
        None => seeding.meta.info.name.clone(),
    };
    let name = crate::text::printable(&shown).into_owned();
    let request = Request::Push {
        torrent: base64::engine::general_purpose::STANDARD.encode(&seeding.bytes),
        port,
        members: shoal_daemon::push::member_certs(dir, identity, &seeding.meta, &a.member).bad_input()?,
    };
    let outcome = tokio::select! {
        r = follow(identity, &a.to, &request, &name, a.timeout.map(Duration::from_secs), quiet) => r,
        _ = interrupted() => Err(Failure::Interrupted(anyhow!(
            "push interrupted: the server keeps what it has fetched and goes on when it can reach the data again"
        ))),
    };
    seeding.torrent.stop().await;
    session.shutdown().await;
    outcome
}

/// Seeds the data of a .torrent from `data`: every piece must verify there.
async fn seed_existing(
    session: &Session,
    meta: shoal_proto::Metainfo,
    data: &Path,
    ssl: Option<(shoal_engine::SslTorrent, String)>,
) -> Result<shoal_engine::Torrent, Failure> {
    let torrent = session
        .add(shoal_engine::AddTorrent {
            meta,
            download_dir: data.to_path_buf(),
            peers: Vec::new(),
            use_trackers: true,
            file_priorities: None,
            sequential: false,
            resume: None,
            ssl: ssl.map(|(tls, _)| tls),
        })
        .await
        .map_err(anyhow::Error::from)?;
    let status = torrent.status();
    if status.state != shoal_engine::TorrentState::Seeding {
        torrent.stop().await;
        return Err(Failure::Input(anyhow!(
            "the data in {} does not match the torrent: {} of {} pieces verify (name the data's folder with -o)",
            data.display(),
            status.stats.pieces_have,
            status.stats.pieces_total
        )));
    }
    Ok(torrent)
}

/// Sends the push, then asks for the server's progress until it holds the data; reconnects
/// when the connection is lost.
async fn follow(
    identity: &Identity,
    to: &Target,
    request: &Request,
    name: &str,
    timeout: Option<Duration>,
    quiet: bool,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut client = connect(identity, to).await?;
    let (push, again) = match client.call(request).await.map_err(push_failure)? {
        Reply::Pushed { push, again } => (push, again),
        other => return Err(Failure::Runtime(anyhow!("unexpected answer {other:?}"))),
    };
    println!(
        "pushed: {name} ({}) to {to}{}; info-hash {}",
        HumanBytes(push.size),
        if again { " (pushed before: it goes on with it)" } else { "" },
        push.info_hash
    );
    let bar = crate::progress::transfer_bar(None, push.size, "server", quiet);
    let status = Request::Status { torrent: push.info_hash.clone() };
    let mut client = Some(client);
    let mut unreachable_since: Option<Instant> = None;
    let mut last = push;
    loop {
        if last.held {
            bar.finish_and_clear();
            println!(
                "held: {name} ({}) verified by the server {} in {:.1} s",
                HumanBytes(last.size),
                to.id,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if let Some(error) = &last.error {
            bar.abandon();
            return Err(Failure::Runtime(anyhow!("the server cannot keep {name}: {error}")));
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            bar.abandon();
            return Err(Failure::Runtime(anyhow!(
                "the server did not hold {name} within {} s ({} of {} verified); it goes on with the push",
                started.elapsed().as_secs(),
                HumanBytes(last.have),
                HumanBytes(last.size)
            )));
        }
        tokio::time::sleep(POLL).await;
        let answer = match client.as_mut() {
            Some(c) => c.call(&status).await,
            None => match PushClient::connect(identity, to).await {
                Ok(mut c) => {
                    // Told again, so that the server dials this process at once.
                    let r = match c.call(request).await {
                        Ok(_) => c.call(&status).await,
                        Err(e) => Err(e),
                    };
                    client = Some(c);
                    r
                }
                Err(e) => Err(e),
            },
        };
        match answer {
            Ok(Reply::Status { push }) => {
                if unreachable_since.take().is_some() && !quiet {
                    bar.println("server: reachable again; it goes on with the push");
                }
                bar.set_position(push.have);
                bar.set_message(push.state.clone());
                last = push;
            }
            Ok(other) => return Err(Failure::Runtime(anyhow!("unexpected answer {other:?}"))),
            Err(PushError::Refused(why)) => {
                bar.abandon();
                return Err(Failure::Runtime(anyhow!("the server dropped the push of {name}: {why}")));
            }
            Err(e) => {
                client = None;
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREACHABLE_FOR {
                    bar.abandon();
                    return Err(Failure::Runtime(anyhow!(
                        "the server has been unreachable for {} s: {e}",
                        UNREACHABLE_FOR.as_secs()
                    )));
                }
                if since.elapsed() < POLL && !quiet {
                    bar.println(format!("server: {e}; trying again"));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
