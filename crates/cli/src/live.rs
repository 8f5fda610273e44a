//! `shoal live broadcast` and `shoal live watch`: a live channel carried by its audience.
//!
//! The broadcaster cuts its input into chunks (every [`CUT_EVERY`], whatever arrived, at most
//! [`MAX_PAYLOAD`] bytes; an MPEG-TS input is cut on 188-byte packet boundaries so a player
//! that misses a chunk resynchronises at the next packet), signs each with its identity and
//! prints the channel link. Input is taken no faster than one full chunk per cut, so a file
//! is sent at up to 2 MiB/s and a live pipe at its own pace. At the end of the input it sends
//! a last, empty chunk that ends the broadcast, and stays until its neighbours have it (at most
//! [`LINGER`]).
//!
//! Every node (broadcaster or viewer) runs the [`Mesh`] policy over the connections of the
//! channel's swarm ([`shoal_live::wire`]): taken on the node's peer port, dialled from
//! `--peer`, from the DHT and local discovery (the channel's swarm is announced as a torrent's
//! would be) and from the addresses neighbours pass on (`peers` frames, like PEX). Each chunk's
//! signature is checked as it comes off the wire; a neighbour that sends one the channel's key
//! did not sign is dropped and its peer id and address banned. A viewer writes the chunks in
//! order as they fall due to its output — a file, stdout, or any number of HTTP readers — and
//! an output that cannot keep up jumps to the live edge (the chunks it missed are left out and
//! the log says how many) rather than lagging for ever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use shoal_engine::Session;
use shoal_identity::Identity;
use shoal_live::ChannelLink;
use shoal_live::mesh::{self, Mesh};
use tokio::sync::broadcast;

mod media;
mod node;

use media::{Input, cut, serve_http, write_output};
use node::{Cmd, Outlet, start_node};

use crate::args::{LiveBroadcastArgs, LiveWatchArgs};
use crate::{BadInput, Failure, interrupted, resolve_peers};

/// The broadcaster cuts a chunk this often.
pub(crate) const CUT_EVERY: Duration = Duration::from_millis(125);
/// A broadcaster whose input ended waits at most this long for its neighbours to get the end.
pub(crate) const LINGER: Duration = Duration::from_secs(30);
/// Chunks an output may fall behind before it jumps to the live edge.
const OUTPUT_BACKLOG: usize = 128;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `shoal live broadcast`.
pub(crate) async fn broadcast(a: LiveBroadcastArgs, quiet: bool) -> Result<(), Failure> {
    let dir = crate::group::data_folder(a.data_dir.as_deref())?;
    let identity = crate::group::load_identity(&dir, None, quiet)?;
    let input = Input::open(&a.input).await?;
    let peers = resolve_peers(&a.peers).await?;
    let session =
        Session::start(a.node.session_config_for(false, a.data_dir.as_deref())).await.map_err(anyhow::Error::from)?;
    let (tls, group) = match &a.group {
        Some(name) => {
            let groups = shoal_identity::Groups::new(&dir);
            let summary = groups.summary(name).map_err(|e| Failure::Input(anyhow!("--group {name}: {e}")))?;
            (Some(group_tls(&dir, &identity, name)?), Some(summary.authority))
        }
        None => (None, None),
    };
    for t in &a.trackers {
        shoal_live::link::check_tracker(t).map_err(|e| Failure::Input(anyhow!("--tracker: {e}")))?;
    }
    let link = ChannelLink { key: identity.id(), name: a.name.clone(), trackers: a.trackers.clone(), group };
    println!("channel: {link}");
    let source = Mesh::source(mesh::Config::default());
    let node = start_node(&session, &link, source, a.node.upload_limit, &peers, tls, quiet);
    println!("listening: {}", session.listen_addr());
    if a.wait_for_viewers > 0 {
        if !quiet {
            eprintln!("waiting for {} viewers", a.wait_for_viewers);
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = interrupted() => return Ok(()),
            }
            if node.stats().await.neighbours >= a.wait_for_viewers {
                break;
            }
        }
    }
    let result = tokio::select! {
        r = cut(input, identity, node.tx.clone(), quiet) => r,
        _ = interrupted() => Ok(()),
    };
    let result = match result {
        Ok(()) => {
            // Input over (or Ctrl-C): give the neighbours time to get the end.
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let _ = node.tx.send(Cmd::WhenEndSpread(done_tx)).await;
            tokio::select! {
                _ = done_rx => {}
                _ = tokio::time::sleep(LINGER) => {}
                _ = interrupted() => {}
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    let stats = node.stats().await;
    if !quiet {
        eprintln!(
            "broadcast over: {} chunks, {} bytes in; {} chunks sent to viewers ({:.2} copies each)",
            stats.cut,
            stats.bytes_in,
            stats.mesh.uploaded,
            stats.mesh.uploaded as f64 / stats.cut.max(1) as f64
        );
    }
    drop(node);
    session.shutdown().await;
    result
}

/// `shoal live watch`.
pub(crate) async fn watch(a: LiveWatchArgs, quiet: bool) -> Result<(), Failure> {
    let link = ChannelLink::parse(&a.link).bad_input()?;
    let peers = resolve_peers(&a.peers).await?;
    if a.output.is_some() && (a.http.is_some() || a.player.is_some()) {
        return Err(Failure::Input(anyhow!("-o and --http/--player both given: choose one place for the stream")));
    }
    let player = match (&a.output, &a.player) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(p.clone()),
        (None, None) if a.http.is_some() => None,
        (None, None) => Some(crate::play::found_player().ok_or_else(|| {
            Failure::Input(anyhow!(
                "no player found on PATH (mpv, vlc, ffplay): give -o FILE, -o - (stdout), --http ADDR or --player CMD"
            ))
        })?),
    };
    let tls = match &link.group {
        Some(authority) => {
            let dir = crate::group::data_folder(a.data_dir.as_deref())?;
            let identity = crate::group::load_identity(&dir, None, quiet)?;
            let groups = shoal_identity::Groups::new(&dir).list().map_err(|e| Failure::Runtime(anyhow!(e)))?;
            let Some(group) = groups.iter().find(|g| &g.authority == authority) else {
                return Err(Failure::Input(anyhow!(
                    "this is a channel of a group this node is not a member of (authority {}…); its members \
                     can ask the group's authority to invite {}",
                    &authority[..16],
                    identity.id()
                )));
            };
            Some(group_tls(&dir, &identity, &group.name)?)
        }
        None => None,
    };
    let session =
        Session::start(a.node.session_config_for(false, a.data_dir.as_deref())).await.map_err(anyhow::Error::from)?;
    let (out_tx, _) = broadcast::channel::<Bytes>(OUTPUT_BACKLOG);
    let (ended_tx, ended) = tokio::sync::watch::channel(false);
    let cfg = mesh::Config { lag_ms: a.lag, seed: rand_seed(), ..mesh::Config::default() };
    let node = start_node(&session, &link, Mesh::viewer(cfg), a.node.upload_limit, &peers, tls, quiet);
    let _ = node.tx.send(Cmd::Output(Outlet { tx: out_tx.clone(), ended: ended_tx })).await;
    if !quiet {
        eprintln!("joining {}", link.name.as_deref().unwrap_or("the channel"));
    }
    let result = async {
        match (&a.output, player) {
            (Some(path), _) => {
                let rx = out_tx.subscribe();
                tokio::select! {
                    r = write_output(path, rx, ended, quiet) => r,
                    _ = interrupted() => Ok(()),
                }
            }
            (None, player) => {
                let addr = a.http.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for HTTP"))
                    .bad_input()?;
                let url = format!("http://{}/live.ts", listener.local_addr().map_err(anyhow::Error::from)?);
                println!("stream: {url}");
                let server = serve_http(listener, out_tx, ended, quiet);
                let mut child = match player {
                    Some(p) => {
                        let mut words = p.split_whitespace();
                        let program = words.next().ok_or_else(|| Failure::Input(anyhow!("--player is empty")))?;
                        Some(
                            tokio::process::Command::new(program)
                                .args(words)
                                .arg(&url)
                                .kill_on_drop(true)
                                .spawn()
                                .with_context(|| format!("cannot start the player {program:?}"))
                                .bad_input()?,
                        )
                    }
                    None => None,
                };
                let player_done = async {
                    match &mut child {
                        Some(c) => {
                            let _ = c.wait().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = server => r,
                    _ = player_done => Ok(()),
                    _ = interrupted() => Ok(()),
                }
            }
        }
    }
    .await;
    let stats = node.stats().await;
    if !quiet {
        let due = stats.mesh.played + stats.mesh.skipped;
        eprintln!(
            "watched {} chunks ({} bytes), {} left out (continuity {:.3}); relayed {} chunks",
            stats.mesh.played,
            stats.bytes_out,
            stats.mesh.skipped,
            if due == 0 { 1.0 } else { stats.mesh.played as f64 / due as f64 },
            stats.mesh.uploaded
        );
    }
    drop(node);
    session.shutdown().await;
    result
}

/// The TLS configurations of a channel of group `name` (this node's member certificate; the
/// group's revocation list in force).
fn group_tls(dir: &std::path::Path, identity: &Identity, name: &str) -> Result<shoal_identity::PeerTls, Failure> {
    let groups = shoal_identity::Groups::new(dir);
    let member = groups.membership(identity, name).map_err(|e| Failure::Input(anyhow!("group {name}: {e}")))?;
    let revocations = shoal_identity::GroupRevocations::new(groups, &member, Arc::default());
    shoal_identity::peer_tls(&member, "shoal-live", revocations.revoked()).map_err(|e| Failure::Runtime(anyhow!(e)))
}

fn rand_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(now_ms())
}
