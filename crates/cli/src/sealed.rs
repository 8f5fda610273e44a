//! Sealed shares on the command line ([`shoal_identity::seal`] has the cryptography).
//!
//! `share PATH --group NAME --sealed` seals PATH into ciphertext files under
//! `.shoal-sealed/sealed-XXXXXXXXXXXXXXXX/` beside it and shares those; the .torrent goes beside
//! PATH as usual. A member's `get` downloads the ciphertext into `.shoal-sealed/` of its output
//! folder (what it seeds) and, once every piece verified, opens it into the plaintext files
//! under their real names. Only the plaintext is checked by the AEAD after the torrent's piece
//! hashes checked the ciphertext, so an altered piece fails the piece check and is fetched
//! again; it never reaches decryption.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use shoal_identity::seal::{ContentKey, Manifest, ManifestFile, Sealed, open_file, seal_file, sealed_len};
use shoal_identity::{Groups, Identity};
use shoal_proto::Metainfo;

use crate::{BadInput, Failure, progress};

/// The folder, inside the folder of the plaintext, that holds sealed shares' ciphertext.
pub(crate) const SEALED_DIR: &str = ".shoal-sealed";

/// A path sealed for sharing: the ciphertext's folder and the torrent's `shoal-sealed` header.
pub(crate) struct SealedPath {
    pub(crate) root: PathBuf,
    pub(crate) header: Vec<u8>,
}

/// Seals `path` for `group` (whose key this node must hold) into `.shoal-sealed/` beside it.
pub(crate) async fn seal_path(path: &Path, group: &str, data_dir: &Path, quiet: bool) -> Result<SealedPath, Failure> {
    let key = Groups::new(data_dir).group_key(group).bad_input()?.ok_or_else(|| {
        Failure::Input(anyhow!(
            "this node holds no key of group {group} for sealed shares (it joined with a --seed-only invitation): \
             ask the group's authority for an invitation with the key"
        ))
    })?;
    let scanned = shoal_storage::scan_path(path).bad_input()?;
    let manifest = Manifest {
        name: scanned.name.clone(),
        folder: scanned.is_dir,
        files: scanned.files.iter().map(|f| ManifestFile { path: f.path.clone(), length: f.length }).collect(),
    };
    let (sealed, content) = Sealed::make(&key, &manifest).bad_input()?;
    let root = scanned.parent.join(SEALED_DIR).join(content.share_name());
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let bar = progress::transfer_bar(None, scanned.total_length(), "seal", quiet);
    let (bar2, root2) = (bar.clone(), root.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (i, f) in scanned.files.iter().enumerate() {
            let from = match scanned.is_dir {
                true => f.path.iter().fold(scanned.parent.join(&scanned.name), |p, c| p.join(c)),
                false => scanned.parent.join(&scanned.name),
            };
            let to = root2.join(format!("{i:06}"));
            let mut reader =
                BufReader::new(std::fs::File::open(&from).with_context(|| format!("cannot read {}", from.display()))?);
            let mut writer =
                BufWriter::new(std::fs::File::create(&to).with_context(|| format!("cannot write {}", to.display()))?);
            seal_file(&content, i as u32, f.length, &mut reader, &mut writer, |n| bar2.inc(n))
                .with_context(|| format!("cannot seal {}", from.display()))?;
            writer.flush().with_context(|| format!("cannot write {}", to.display()))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| anyhow!("sealing stopped: {e}"))??;
    bar.finish_and_clear();
    Ok(SealedPath { root, header: sealed.encode() })
}

/// The ciphertext folder of the sealed torrent at `out` for `path`, when it is one and its
/// ciphertext is still there (a share run again).
pub(crate) fn existing_sealed(out: &Path, path: &Path) -> Option<PathBuf> {
    let bytes = std::fs::read(out).ok()?;
    let meta = Metainfo::from_bytes(&bytes).ok()?;
    meta.info.sealed.as_ref()?;
    let root = path.parent()?.join(SEALED_DIR).join(&meta.info.name);
    root.is_dir().then_some(root)
}

/// What a member needs to open a sealed share.
pub(crate) struct Opener {
    content: ContentKey,
    manifest: Manifest,
}

/// A path component a manifest may name: what a torrent's file names may be.
fn safe_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']) && c.len() <= 255
}

impl Opener {
    /// The opener of `meta` when it is a sealed share of `group` (this node's name for it); an
    /// error when this node cannot open it or its header does not match its files.
    pub(crate) fn for_torrent(
        meta: &Metainfo,
        group: Option<&str>,
        data_dir: &Path,
    ) -> Result<Option<Opener>, Failure> {
        let Some(header) = &meta.info.sealed else { return Ok(None) };
        let name = crate::text::printable(&meta.info.name).into_owned();
        let Some(group) = group else {
            return Err(Failure::Input(anyhow!("{name} says it is sealed but is no group share: it cannot be opened")));
        };
        let sealed = Sealed::decode(header).bad_input()?;
        let key = Groups::new(data_dir).group_key(group).bad_input()?.ok_or_else(|| {
            Failure::Input(anyhow!(
                "{name} is sealed for the members of {group}, and this node holds no key for it (it joined with a \
                 --seed-only invitation): it could fetch and seed the ciphertext but not open it"
            ))
        })?;
        let (content, manifest) = sealed.open(&key).map_err(|e| {
            Failure::Input(anyhow!("cannot open the sealed share {name}: {e} (the group's key changed?)"))
        })?;
        let lengths: Vec<u64> = meta.info.files.iter().filter(|f| !f.padding).map(|f| f.length).collect();
        let fits = manifest.files.len() == lengths.len()
            && manifest.files.iter().zip(&lengths).all(|(f, l)| sealed_len(f.length) == *l)
            && safe_component(&manifest.name)
            && manifest.files.iter().all(|f| !f.path.is_empty() && f.path.iter().all(|c| safe_component(c)))
            && (manifest.folder || manifest.files.len() == 1);
        if !fits {
            return Err(Failure::Input(anyhow!("the sealed share {name}: its manifest does not match its files")));
        }
        Ok(Some(Opener { content, manifest }))
    }

    /// The share's real name.
    pub(crate) fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Number of files and plaintext bytes.
    pub(crate) fn size(&self) -> (usize, u64) {
        (self.manifest.files.len(), self.manifest.files.iter().map(|f| f.length).sum())
    }

    /// Opens the verified ciphertext in `root` into `out`; returns where the plaintext is.
    pub(crate) async fn open_into(&self, root: &Path, out: &Path, quiet: bool) -> Result<PathBuf, Failure> {
        let (content, manifest) = (self.content.clone(), self.manifest.clone());
        let target = out.join(&manifest.name);
        let bar = progress::transfer_bar(None, self.size().1, "open", quiet);
        let (bar2, root, target2) = (bar.clone(), root.to_path_buf(), target.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for (i, f) in manifest.files.iter().enumerate() {
                let from = root.join(format!("{i:06}"));
                let to = match manifest.folder {
                    true => f.path.iter().fold(target2.clone(), |p, c| p.join(c)),
                    false => target2.clone(),
                };
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let mut part_name = to.file_name().unwrap_or_default().to_os_string();
                part_name.push(".shoal-part");
                let part = to.with_file_name(part_name);
                let reader = std::fs::File::open(&from).with_context(|| format!("cannot read {}", from.display()))?;
                let mut writer = BufWriter::new(
                    std::fs::File::create(&part).with_context(|| format!("cannot write {}", part.display()))?,
                );
                open_file(&content, i as u32, sealed_len(f.length), &mut BufReader::new(reader), &mut writer, |n| {
                    bar2.inc(n)
                })
                .with_context(|| format!("cannot open {}", from.display()))?;
                writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("cannot write {}", part.display()))?;
                std::fs::rename(&part, &to).with_context(|| format!("cannot write {}", to.display()))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow!("opening stopped: {e}"))??;
        bar.finish_and_clear();
        Ok(target)
    }
}

/// The identity's data folder, made sure to hold an identity (as `ssl_for` does).
pub(crate) fn data_dir_with_identity(given: Option<&Path>, quiet: bool) -> Result<PathBuf, Failure> {
    let dir = crate::group::data_folder(given)?;
    let _: Identity = crate::group::load_identity(&dir, None, quiet)?;
    Ok(dir)
}
