//! `shoal share`: make a torrent for each path, write it next to the data (or `-o`), print the
//! magnet link, and seed until Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use shoal_engine::{AddTorrent, Session, TorrentState};

use crate::args::ShareArgs;
use crate::create::make_torrent;
use crate::{BadInput, Failure, interrupted, progress, resolve_peers};

pub(crate) async fn run(a: ShareArgs, quiet: bool) -> Result<(), Failure> {
    if a.output.is_some() && a.paths.len() > 1 {
        return Err(Failure::Input(anyhow!("-o names one .torrent file, but {} paths were given", a.paths.len())));
    }
    let paths: Vec<PathBuf> = a
        .paths
        .iter()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("cannot share {}", p.display())).bad_input())
        .collect::<Result<_, _>>()?;
    let peers = resolve_peers(&a.peers).await?;
    let session = Session::start(a.node.session_config()).await.map_err(anyhow::Error::from)?;
    if let Some(dht) = session.dht() {
        println!("dht: node on {}", dht.local_addr());
    }
    let mut torrents = Vec::new();
    for path in &paths {
        let (bytes, meta) = make_torrent(path, &a.torrent, quiet).await?;
        let out = a.output.clone().unwrap_or_else(|| {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".torrent");
            path.with_file_name(name)
        });
        std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        let magnet = meta.magnet().to_string();
        let name = meta.info.name.clone();
        let dir = path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let torrent = session
            .add(AddTorrent {
                meta,
                download_dir: dir,
                peers: peers.clone(),
                use_trackers: true,
                only_files: None,
                resume: None,
            })
            .await
            .map_err(anyhow::Error::from)?;
        let bar = progress::transfer_bar(None, torrent.status().total_length, "check", quiet);
        let status = progress::follow(&torrent, &bar).await;
        bar.finish_and_clear();
        if status.state != TorrentState::Seeding {
            return Err(Failure::Runtime(anyhow!(
                "{} changed while it was being shared; run the command again",
                path.display()
            )));
        }
        println!("torrent: {}", out.display());
        println!("magnet: {magnet}");
        if !quiet {
            println!("seeding {name} on {}", session.listen_addr());
        }
        torrents.push(torrent);
    }
    println!("ready: seeding {} torrent(s) on {}; press Ctrl-C to stop", torrents.len(), session.listen_addr());
    interrupted().await;
    for t in torrents {
        t.stop().await;
    }
    session.shutdown().await;
    Ok(())
}
