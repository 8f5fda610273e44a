//! `shoal demo`: a whole swarm inside one process on loopback. It generates data, starts the
//! built-in tracker, a seed and several downloading peers (each its own node with its own port
//! and folder, discovering the others through the tracker), shows their progress, and ends with
//! the time, the throughput, and a byte-for-byte check of every copy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use indicatif::{HumanBytes, MultiProgress};
use sha1::{Digest, Sha1};
use shoal_engine::tracker::{TrackerConfig, TrackerServer};
use shoal_engine::{AddTorrent, Session, SessionConfig, TorrentState};

use crate::args::{DemoArgs, TorrentOptions};
use crate::create::make_torrent;
use crate::{Failure, progress};

const FILE_NAME: &str = "shoal-demo.bin";

pub(crate) async fn run(a: DemoArgs, quiet: bool) -> Result<(), Failure> {
    if a.size == 0 || a.peers == 0 {
        return Err(Failure::Input(anyhow!("--size and --peers must be at least 1")));
    }
    let temp;
    let root: PathBuf = match &a.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    let size = a.size * 1024 * 1024;
    println!(
        "Shoal demo: 1 seed and {} downloading peers on 127.0.0.1, {} of generated data in {}",
        a.peers,
        HumanBytes(size),
        root.display()
    );

    let seed_dir = root.join("seed");
    std::fs::create_dir_all(&seed_dir).with_context(|| format!("cannot create {}", seed_dir.display()))?;
    let data = seed_dir.join(FILE_NAME);
    let original = tokio::task::spawn_blocking({
        let data = data.clone();
        move || generate(&data, size)
    })
    .await
    .map_err(|e| anyhow!("data generation stopped: {e}"))??;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot start the tracker")?;
    let tracker =
        TrackerServer::start(listener, TrackerConfig { interval: Duration::from_secs(2), ..Default::default() })
            .context("cannot start the tracker")?;
    println!("tracker:  {}", tracker.announce_url());

    let opts = TorrentOptions {
        trackers: vec![tracker.announce_url()],
        piece_size: None,
        private: false,
        comment: None,
        web_seeds: Vec::new(),
        v2: false,
        hybrid: false,
        group: None,
        to: Vec::new(),
        data_dir: None,
    };
    let (_, meta) = make_torrent(&data, &opts, None, quiet).await?;
    println!(
        "torrent:  {} ({} pieces of {})",
        meta.info_hash,
        meta.info.layout.piece_count(),
        HumanBytes(meta.info.piece_length as u64)
    );

    let local = SessionConfig { listen: "127.0.0.1:0".parse().map_err(|e| anyhow!("{e}"))?, ..Default::default() };
    let seed = Session::start(local.clone()).await.map_err(anyhow::Error::from)?;
    let seed_torrent = seed
        .add(AddTorrent {
            ssl: None,
            meta: meta.clone(),
            download_dir: seed_dir.clone(),
            peers: vec![],
            use_trackers: true,
            file_priorities: None,
            sequential: false,
            resume: None,
        })
        .await
        .map_err(anyhow::Error::from)?;
    let seeded = progress::follow(&seed_torrent, &indicatif::ProgressBar::hidden()).await;
    if seeded.state != TorrentState::Seeding {
        return Err(Failure::Runtime(anyhow!("the seed could not verify its own data: {:?}", seeded.state)));
    }
    println!("seed:     listening on {}", seed.listen_addr());

    let multi = MultiProgress::new();
    if quiet {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let mut peers = Vec::new();
    for i in 1..=a.peers {
        let dir = root.join(format!("peer{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let session = Session::start(local.clone()).await.map_err(anyhow::Error::from)?;
        let torrent = session
            .add(AddTorrent {
                ssl: None,
                meta: meta.clone(),
                download_dir: dir.clone(),
                peers: vec![],
                use_trackers: true,
                file_priorities: None,
                sequential: false,
                resume: None,
            })
            .await
            .map_err(anyhow::Error::from)?;
        let bar = progress::transfer_bar(Some(&multi), size, &format!("peer {i}"), quiet);
        peers.push((session, torrent, bar, dir));
    }
    let followers: Vec<_> = peers
        .iter()
        .map(|(_, t, bar, _)| {
            let (rx, bar) = (t.subscribe(), bar.clone());
            tokio::spawn(async move { progress::follow_status(rx, &bar).await })
        })
        .collect();
    let mut results = Vec::new();
    for f in followers {
        results.push(f.await.map_err(|e| anyhow!("progress display stopped: {e}"))?);
    }
    let elapsed = start.elapsed();
    for (_, _, bar, _) in &peers {
        bar.finish();
    }
    for (i, status) in results.iter().enumerate() {
        if status.state != TorrentState::Seeding {
            return Err(Failure::Runtime(anyhow!("peer {} did not complete: {:?}", i + 1, status.state)));
        }
    }
    let seed_up = seed_torrent.status().stats.uploaded;
    println!();
    println!(
        "done: {} peers each downloaded {} in {:.2} s ({} aggregate); the seed uploaded {}, the peers shared the rest among themselves",
        a.peers,
        HumanBytes(size),
        elapsed.as_secs_f64(),
        progress::rate(size * a.peers as u64, elapsed),
        HumanBytes(seed_up),
    );
    let mut all_match = true;
    for (i, (_, _, _, dir)) in peers.iter().enumerate() {
        let path = dir.join(FILE_NAME);
        let digest = tokio::task::spawn_blocking(move || sha1_file(&path)).await.map_err(|e| anyhow!("{e}"))??;
        let ok = digest == original;
        all_match &= ok;
        println!(
            "peer {}: {} {}",
            i + 1,
            hex(&digest),
            if ok { "matches the original" } else { "DIFFERS from the original" }
        );
    }
    for (_, torrent, _, _) in peers {
        torrent.stop().await;
    }
    seed_torrent.stop().await;
    if !all_match {
        return Err(Failure::Runtime(anyhow!("some copies differ from the original")));
    }
    println!("every copy matched the original ({}).", hex(&original));
    Ok(())
}

/// Writes `size` bytes of deterministic pseudo-random data; returns their SHA-1.
fn generate(path: &Path, size: u64) -> Result<[u8; 20], Failure> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha1::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n]).with_context(|| format!("cannot write {}", path.display()))?;
        left -= n as u64;
    }
    out.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hasher.finalize().into())
}

fn sha1_file(path: &Path) -> Result<[u8; 20], Failure> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
