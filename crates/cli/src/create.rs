//! `shoal create`: scan a file or folder, hash it with a progress bar, write a .torrent: v1 by
//! default, BitTorrent v2 with `--v2`, both in one with `--hybrid` (BEP 52).

use std::path::Path;

use anyhow::{Context, anyhow};
use indicatif::HumanBytes;
use shoal_proto::Metainfo;
use shoal_proto::metainfo::{
    CreateContent, CreateFile, CreateSpec, build_torrent, build_torrent_v2, default_piece_length,
};

use crate::args::{CreateArgs, TorrentOptions};
use crate::{BadInput, Failure, progress};

/// Smallest and largest piece sizes accepted with `--piece-size`.
const PIECE_SIZES: std::ops::RangeInclusive<u32> = (16 * 1024)..=(64 * 1024 * 1024);

pub(crate) async fn run(a: CreateArgs, quiet: bool) -> Result<(), Failure> {
    let (bytes, meta) = make_torrent(&a.path, &a.torrent, None, quiet).await?;
    std::fs::write(&a.output, &bytes).with_context(|| format!("cannot write {}", a.output.display()))?;
    if !quiet {
        println!(
            "created {}: {} in {} pieces of {}, {}",
            a.output.display(),
            HumanBytes(meta.info.layout.total_length()),
            meta.info.layout.piece_count(),
            HumanBytes(meta.info.piece_length as u64),
            match meta.v2_hash {
                Some(h) => format!("v2 info-hash {}", h.iter().map(|b| format!("{b:02x}")).collect::<String>()),
                None => format!("info-hash {}", meta.info_hash),
            }
        );
    }
    Ok(())
}

/// Builds a torrent for `path`; returns the bencoded file and its parsed form.
pub(crate) async fn make_torrent(
    path: &Path,
    opts: &TorrentOptions,
    sealed: Option<Vec<u8>>,
    quiet: bool,
) -> Result<(Vec<u8>, Metainfo), Failure> {
    if let Some(size) = opts.piece_size
        && (!size.is_power_of_two() || !PIECE_SIZES.contains(&size))
    {
        return Err(Failure::Input(anyhow!("--piece-size {size} must be a power of two from 16384 to 67108864")));
    }
    for url in &opts.trackers {
        if !["http://", "https://", "udp://"].iter().any(|s| url.starts_with(s)) {
            return Err(Failure::Input(anyhow!("--tracker {url:?} is not an http://, https:// or udp:// URL")));
        }
    }
    for url in &opts.web_seeds {
        if !["http://", "https://"].iter().any(|s| url.starts_with(s)) || url.len() > 2048 {
            return Err(Failure::Input(anyhow!("--web-seed {url:?} is not an http:// or https:// URL")));
        }
    }
    let to: Vec<shoal_identity::IdentityId> = opts
        .to
        .iter()
        .map(|id| id.parse().map_err(|e| Failure::Input(anyhow!("--to {id:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let v2 = opts.v2 || opts.hybrid;
    if v2 && (opts.group.is_some() || !opts.to.is_empty() || sealed.is_some()) {
        return Err(Failure::Input(anyhow!(
            "--v2 and --hybrid torrents cannot be group shares (--group, --to, --sealed) yet"
        )));
    }
    let scanned = shoal_storage::scan_path(path).bad_input()?;
    let ssl_cert = match (&opts.group, to.is_empty()) {
        (Some(group), _) => {
            let dir = crate::group::data_folder(opts.data_dir.as_deref())?;
            Some(shoal_identity::Groups::new(&dir).ca_pem(group).bad_input()?)
        }
        (None, false) => Some(authority_for(&to, opts, quiet)?),
        (None, true) => None,
    };
    for skipped in &scanned.skipped {
        eprintln!("shoal: skipping {} (a link or special file)", skipped.display());
    }
    let total = scanned.total_length();
    let piece_length = opts.piece_size.unwrap_or_else(|| default_piece_length(total));
    let passes = if opts.hybrid { 2 } else { 1 };
    let bar = progress::hashing_bar(total * passes, quiet);
    let (bar2, scanned2) = (bar.clone(), scanned.clone());
    let (hybrid, v2_only) = (opts.hybrid, opts.v2);
    let (hashes, trees) = tokio::task::spawn_blocking(move || -> Result<_, shoal_storage::StorageError> {
        // A hybrid's v1 part hashes the content with padding between files, as v2 lays it out.
        let v1 = if v2_only {
            Vec::new()
        } else if hybrid && scanned2.is_dir {
            let padded = scanned2.padded(piece_length);
            shoal_storage::hash_pieces(&padded.parent, &padded, piece_length, |n| bar2.inc(n))?
        } else {
            shoal_storage::hash_pieces(&scanned2.parent, &scanned2, piece_length, |n| bar2.inc(n))?
        };
        let trees = if hybrid || v2_only {
            Some(shoal_storage::hash_v2_files(&scanned2.parent, &scanned2, piece_length, |n| bar2.inc(n))?)
        } else {
            None
        };
        Ok((v1, trees))
    })
    .await
    .map_err(|e| anyhow!("hashing stopped: {e}"))?
    .with_context(|| format!("cannot hash {}", path.display()))?;
    bar.finish_and_clear();
    let spec = CreateSpec {
        name: scanned.name.clone(),
        content: if scanned.is_dir {
            CreateContent::MultiFile(
                scanned.files.iter().map(|f| CreateFile { path: f.path.clone(), length: f.length }).collect(),
            )
        } else {
            CreateContent::SingleFile { length: total }
        },
        piece_length,
        trackers: opts.trackers.clone(),
        private: opts.private,
        web_seeds: opts.web_seeds.clone(),
        ssl_cert,
        sealed,
        comment: opts.comment.clone(),
        creation_date: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .ok(),
    };
    let bytes = match &trees {
        Some(trees) => build_torrent_v2(&spec, (!opts.v2).then_some(&hashes[..]), trees),
        None => build_torrent(&spec, &hashes),
    };
    let meta = Metainfo::from_bytes(&bytes).map_err(|e| anyhow!("the torrent just built does not parse: {e}"))?;
    Ok((bytes, meta))
}

/// `--to`: an authority of this share's own, with an invitation for each person printed
/// (`invite ID: TEXT`) so they can join it and open the share. Returns its certificate.
fn authority_for(to: &[shoal_identity::IdentityId], opts: &TorrentOptions, quiet: bool) -> Result<String, Failure> {
    let dir = crate::group::data_folder(opts.data_dir.as_deref())?;
    let identity = crate::group::load_identity(&dir, None, quiet)?;
    let groups = shoal_identity::Groups::new(&dir);
    let (name, invitations) =
        groups.create_for(&identity, to, shoal_identity::INVITATION_DAYS).map_err(|e| Failure::Input(anyhow!(e)))?;
    if !quiet {
        eprintln!(
            "made group {name} for this share: {} member(s) besides this node; each joins with `shoal group join INVITATION` \
             (invitations valid {} days)",
            invitations.len(),
            shoal_identity::INVITATION_DAYS
        );
    }
    for (id, invitation) in invitations {
        println!("invite {id}: {}", invitation.encode());
    }
    groups.ca_pem(&name).map_err(|e| Failure::Runtime(anyhow!(e)))
}
