//! `shoal get`: download a torrent with a progress bar; exit 0 once every piece is verified,
//! then optionally keep seeding.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, anyhow};
use indicatif::{HumanBytes, HumanDuration};
use shoal_engine::{AddTorrent, Session, TorrentState};
use shoal_proto::Metainfo;

use crate::args::GetArgs;
use crate::{BadInput, Failure, interrupted, progress, resolve_peers};

/// Largest .torrent file read.
const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

pub(crate) async fn run(a: GetArgs, quiet: bool) -> Result<(), Failure> {
    let meta = load_source(&a.source)?;
    let peers = resolve_peers(&a.peers).await?;
    let session = Session::start(a.node.session_config()).await.map_err(anyhow::Error::from)?;
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    let name = meta.info.name.clone();
    let hash = meta.info_hash;
    let torrent = session
        .add(AddTorrent { meta, download_dir: a.output.clone(), peers, use_trackers: !a.no_trackers })
        .await
        .map_err(anyhow::Error::from)?;
    if !quiet {
        println!("downloading {name} ({hash}) into {}; listening on {}", a.output.display(), session.listen_addr());
    }
    let initial = torrent.status();
    if !quiet && initial.stats.pieces_have > 0 {
        println!("resuming: {} of {} pieces already verified", initial.stats.pieces_have, initial.stats.pieces_total);
    }
    let bar = progress::transfer_bar(None, initial.total_length, "get", quiet);
    let start = Instant::now();
    let before = initial.stats.bytes_have;
    let status = tokio::select! {
        s = progress::follow(&torrent, &bar) => s,
        _ = interrupted() => {
            bar.abandon();
            let s = torrent.status();
            torrent.stop().await;
            return Err(Failure::Runtime(anyhow!(
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
    let fetched = status.stats.bytes_have - before;
    if !quiet {
        // Blocks that arrived twice (endgame, late copies) or failed verification.
        let wasted = status.stats.downloaded.saturating_sub(fetched);
        let wasted = if wasted > 0 { format!("; {} wasted", HumanBytes(wasted)) } else { String::new() };
        println!(
            "complete: {name}, {} verified ({} fetched in {}, {}{wasted})",
            HumanBytes(status.total_length),
            HumanBytes(fetched),
            HumanDuration(elapsed),
            progress::rate(fetched, elapsed)
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
    }
    torrent.stop().await;
    Ok(())
}

/// Reads and parses SOURCE; every problem with it is bad input (exit code 2).
pub(crate) fn load_source(source: &str) -> Result<Metainfo, Failure> {
    if source.starts_with("magnet:") {
        let magnet = shoal_proto::magnet::Magnet::parse(source).bad_input()?;
        return Err(Failure::Input(anyhow!(
            "cannot download {} from a magnet link yet: metadata exchange is not available in this version; use its .torrent file",
            magnet.info_hash
        )));
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        return Err(Failure::Input(anyhow!("cannot fetch {source}: download the .torrent file and pass its path")));
    }
    load_torrent_file(Path::new(source))
}

fn load_torrent_file(path: &Path) -> Result<Metainfo, Failure> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display())).bad_input()?.len();
    if len > MAX_TORRENT_FILE {
        return Err(Failure::Input(anyhow!("{} is {len} bytes, too large for a .torrent file", path.display())));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display())).bad_input()?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{} is not a valid torrent", path.display())).bad_input()
}
