//! `shoal share`: make a torrent for each path, write it next to the data (or `-o`), print the
//! magnet link, and seed until Ctrl-C.
//!
//! An existing `.torrent` at the output path is never overwritten: it is reused when it
//! describes the data being shared (same name, files and lengths, every piece verifies, and
//! the torrent options given on the command line agree with it), and refused otherwise, so a
//! torrent made earlier with `shoal create --tracker ...` keeps its trackers.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use shoal_engine::{AddTorrent, Session, Torrent, TorrentState};
use shoal_proto::Metainfo;

use crate::args::{ShareArgs, TorrentOptions};
use crate::create::make_torrent;
use crate::{BadInput, Failure, interrupted, resolve_peers};

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
    // An SSL listener when a group share is made, or an existing .torrent is one.
    let ssl = a.torrent.group.is_some()
        || !a.torrent.to.is_empty()
        || paths.iter().any(|p| {
            std::fs::read(torrent_path(a.output.as_deref(), p))
                .ok()
                .and_then(|b| Metainfo::from_bytes(&b).ok())
                .is_some_and(|m| m.info.ssl_cert.is_some())
        });
    let session = Session::start(a.node.session_config_for(ssl, a.torrent.data_dir.as_deref()))
        .await
        .map_err(anyhow::Error::from)?;
    if let Some(dht) = session.dht() {
        println!("dht: node on {}", dht.local_addr());
    }
    let mut torrents = Vec::new();
    for path in &paths {
        let out = torrent_path(a.output.as_deref(), path);
        let Seeding { torrent, meta, ssl, .. } = match a.sealed {
            true => seed_sealed(&session, path, &out, &a.torrent, &peers, quiet).await?,
            false => seed_path(&session, path, &out, &a.torrent, &peers, None, quiet).await?,
        };
        let magnet = meta.magnet().to_string();
        let shown = match a.sealed {
            true => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() + " (sealed)",
            false => meta.info.name.clone(),
        };
        let name = crate::text::printable(&shown).into_owned();
        match (&ssl, session.ssl_listen_addr()) {
            // The metadata of an SSL torrent travels only inside member connections, so a
            // magnet link cannot fetch it: members need the .torrent file.
            (Some((_, group)), Some(addr)) => {
                println!("group share of {group}: give members the .torrent file; TLS peers on {addr}")
            }
            _ => println!("magnet: {magnet}"),
        }
        if !quiet {
            match (&ssl, session.ssl_listen_addr()) {
                (Some(_), Some(tls)) => println!("seeding {name} to the group's members on {tls} (TLS)"),
                _ => println!("seeding {name} on {}", session.listen_addr()),
            }
        }
        torrents.push(torrent);
    }
    println!("ready: seeding {} torrent(s) on {}; press Ctrl-C to stop", torrents.len(), session.listen_addr());
    interrupted().await;
    let (mut downloaded, mut uploaded) = (0, 0);
    for t in torrents {
        // The totals as of the stop (the status published while running lags a little).
        let last = t.subscribe();
        t.stop().await;
        let stats = last.borrow().stats.clone();
        downloaded += stats.downloaded;
        uploaded += stats.uploaded;
    }
    session.shutdown().await;
    if !quiet {
        println!("{}", crate::get::transferred(downloaded, uploaded));
    }
    Ok(())
}

/// `--sealed`: seals `path` for the group (or takes the ciphertext a former run left, when the
/// torrent at `out` is its sealed share) and seeds the ciphertext.
pub(crate) async fn seed_sealed(
    session: &Session,
    path: &Path,
    out: &Path,
    opts: &TorrentOptions,
    peers: &[std::net::SocketAddr],
    quiet: bool,
) -> Result<Seeding, Failure> {
    let group = opts.group.as_deref().ok_or_else(|| Failure::Input(anyhow!("--sealed needs --group NAME")))?;
    let dir = crate::sealed::data_dir_with_identity(opts.data_dir.as_deref(), quiet)?;
    if let Some(root) = crate::sealed::existing_sealed(out, path, group, &dir)? {
        return seed_path(session, &root, out, opts, peers, None, quiet).await;
    }
    if out.exists() {
        return Err(Failure::Input(anyhow!(
            "{} already exists and is not a sealed share of {}; remove it or choose another file with -o",
            out.display(),
            path.display()
        )));
    }
    let started = std::time::Instant::now();
    let sealed = crate::sealed::seal_path(path, group, &dir, quiet).await?;
    let took = started.elapsed();
    let seeding = seed_path(session, &sealed.root, out, opts, peers, Some(sealed.header), quiet).await?;
    if !quiet {
        println!(
            "sealed: the pieces are ciphertext in {}; members holding {group}'s key open it with shoal get \
             (sealed in {:.2} s, {})",
            sealed.root.display(),
            took.as_secs_f64(),
            crate::progress::rate(seeding.meta.info.layout.total_length(), took)
        );
    }
    Ok(seeding)
}

/// A path being seeded: its torrent, the .torrent file's bytes, and the group share's TLS.
pub(crate) struct Seeding {
    pub(crate) torrent: Torrent,
    pub(crate) meta: Metainfo,
    /// The .torrent file as written at `out`.
    pub(crate) bytes: Vec<u8>,
    pub(crate) ssl: Option<(shoal_engine::SslTorrent, String)>,
}

/// Seeds `path` in `session`: the torrent at `out` when it describes the data (see
/// [`existing_torrent`]), else a new one made with `opts` and written there once every piece
/// verified; prints `torrent: OUT`.
pub(crate) async fn seed_path(
    session: &Session,
    path: &Path,
    out: &Path,
    opts: &TorrentOptions,
    peers: &[std::net::SocketAddr],
    sealed: Option<Vec<u8>>,
    quiet: bool,
) -> Result<Seeding, Failure> {
    let (made, meta) = match existing_torrent(out, path, opts)? {
        Some(meta) => (None, meta),
        None => {
            let (bytes, meta) = make_torrent(path, opts, sealed, quiet).await?;
            (Some(bytes), meta)
        }
    };
    let ssl = crate::group::ssl_for(&meta, opts.data_dir.as_deref(), quiet)?;
    let dir = path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    let torrent = session
        .add(AddTorrent {
            meta: meta.clone(),
            download_dir: dir,
            peers: peers.to_vec(),
            use_trackers: true,
            file_priorities: None,
            sequential: false,
            resume: None,
            ssl: ssl.as_ref().map(|(tls, _)| tls.clone()),
        })
        .await
        .map_err(anyhow::Error::from)?;
    // `add` has checked the data on disk: every piece verifies, or the data is not what
    // the torrent describes.
    let status = torrent.status();
    if status.state != TorrentState::Seeding {
        torrent.stop().await;
        if made.is_none() {
            return Err(Failure::Input(anyhow!(
                "{} already exists but does not match {}: {} of {} pieces verify; remove it or choose \
                 another file with -o",
                out.display(),
                path.display(),
                status.stats.pieces_have,
                status.stats.pieces_total
            )));
        }
        return Err(Failure::Runtime(anyhow!(
            "{} changed while it was being shared; run the command again",
            path.display()
        )));
    }
    let bytes = match made {
        Some(bytes) => {
            write_new(out, &bytes)?;
            println!("torrent: {}", out.display());
            bytes
        }
        None => {
            println!("torrent: {} (existing, matches the data)", out.display());
            std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?
        }
    };
    Ok(Seeding { torrent, meta, bytes, ssl })
}

/// Where the .torrent of `path` goes: `output` (`-o`), or beside the data.
pub(crate) fn torrent_path(output: Option<&Path>, path: &Path) -> PathBuf {
    output.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".torrent");
        path.with_file_name(name)
    })
}

/// Writes a new .torrent file; never replaces one that appeared meanwhile.
pub(crate) fn write_new(out: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// The torrent already at `out`, if there is one and it describes `path` as shared with
/// `opts`; an error (naming what differs) if something else is there. `Ok(None)`: nothing is
/// at `out`, a new torrent is to be made.
pub(crate) fn existing_torrent(out: &Path, path: &Path, opts: &TorrentOptions) -> Result<Option<Metainfo>, Failure> {
    let refuse = |why: String| {
        Failure::Input(anyhow!("{} already exists and {why}; remove it or choose another file with -o", out.display()))
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::Runtime(anyhow!("cannot read {}: {e}", out.display()))),
        Ok(m) if !m.is_file() => return Err(refuse("is not a regular file".into())),
        Ok(m) if m.len() > crate::get::MAX_TORRENT_FILE => return Err(refuse("is too large for a torrent".into())),
        Ok(_) => {}
    }
    let bytes = std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
    let meta = Metainfo::from_bytes(&bytes).map_err(|e| refuse(format!("is not a valid torrent ({e})")))?;
    // Shared again without the options it was made with: said plainly, not as a mismatch.
    let ciphertext = path.parent().and_then(Path::file_name).is_some_and(|n| n == crate::sealed::SEALED_DIR);
    if meta.info.sealed.is_some() && !ciphertext {
        return Err(refuse("is a sealed share; add --group NAME --sealed to share it again".into()));
    }
    if meta.info.ssl_cert.is_some() && opts.group.is_none() && opts.to.is_empty() {
        return Err(refuse("is a group share; add --group NAME to share it again".into()));
    }
    let scanned = shoal_storage::scan_path(path).bad_input()?;
    if meta.info.name != scanned.name || meta.info.is_multi_file() != scanned.is_dir {
        return Err(refuse(format!("describes {:?}, not {}", meta.info.name, path.display())));
    }
    let theirs: Vec<(&[String], u64)> =
        meta.info.files.iter().filter(|f| !f.padding).map(|f| (f.path.as_slice(), f.length)).collect();
    let ours: Vec<(&[String], u64)> = scanned.files.iter().map(|f| (f.path.as_slice(), f.length)).collect();
    if theirs != ours {
        return Err(refuse(format!("lists other files or lengths than {} holds now", path.display())));
    }
    let trackers = meta.trackers();
    if !opts.trackers.is_empty() && trackers != opts.trackers.iter().map(String::as_str).collect::<Vec<_>>() {
        let listed = if trackers.is_empty() { "none".to_owned() } else { trackers.join(", ") };
        return Err(refuse(format!("has other trackers ({listed})")));
    }
    if opts.piece_size.is_some_and(|p| p != meta.info.piece_length) {
        return Err(refuse(format!("has another piece size ({})", meta.info.piece_length)));
    }
    if opts.private && !meta.info.private {
        return Err(refuse("is not private".into()));
    }
    if opts.comment.as_ref().is_some_and(|c| meta.comment.as_ref() != Some(c)) {
        return Err(refuse("has another comment".into()));
    }
    if !opts.to.is_empty() {
        // The share's own authority was made with the torrent: this node must hold it.
        let dir = crate::group::data_folder(opts.data_dir.as_deref())?;
        let groups = shoal_identity::Groups::new(&dir);
        let (identity, _) = shoal_identity::Identity::load_or_create(&dir, None).bad_input()?;
        let ours = match meta.info.ssl_cert.as_deref().map(|p| shoal_identity::cert_from_pem(p.as_bytes(), "ssl-cert"))
        {
            Some(Ok(ca)) => groups.membership_for(&identity, &ca).bad_input()?.is_some(),
            _ => false,
        };
        if !ours {
            return Err(refuse("is not a share this node made with --to".into()));
        }
    }
    if let Some(group) = &opts.group {
        let dir = crate::group::data_folder(opts.data_dir.as_deref())?;
        let ca = shoal_identity::Groups::new(&dir).ca_pem(group).bad_input()?;
        let same = meta.info.ssl_cert.as_deref().is_some_and(|pem| {
            let der = |p: &str| shoal_identity::cert_from_pem(p.as_bytes(), "ssl-cert").ok();
            der(pem).is_some_and(|d| Some(d) == der(&ca))
        });
        if !same {
            return Err(refuse(format!("is not a share of group {group}")));
        }
    }
    Ok(Some(meta))
}
