//! Sealed shares on the command line ([`shoal_identity::seal`] has the cryptography).
//!
//! `share PATH --group NAME --sealed` seals PATH into ciphertext files under
//! `.shoal-sealed/sealed-XXXXXXXXXXXXXXXX/` beside it and shares those; the .torrent goes beside
//! PATH as usual. A member's `get` downloads the ciphertext into `.shoal-sealed/` of its output
//! folder (what it seeds) and opens it into the plaintext files under their real names while
//! it downloads ([`Opening`]): each 64 KiB chunk is decrypted as soon as the pieces holding it
//! are verified, in whatever order they come, and written at its place in a `.shoal-part`
//! file; the files take their real names together once the last chunk is in (a download that
//! stops leaves no plaintext behind, and the next `get` opens the verified ciphertext again).
//! Decryption only ever sees
//! ciphertext the torrent's piece hashes checked, so an altered piece fails the piece check
//! and is fetched again; it never reaches decryption.

use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, anyhow};
use shoal_identity::seal::{
    CHUNK, ContentKey, Manifest, ManifestFile, Sealed, TAG, chunk_count, open_chunk, seal_file, sealed_len,
};
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

/// The ciphertext folder of the sealed torrent at `out` for `path` (a share run again), when
/// it is one, its ciphertext is still there and its manifest lists the files `path` holds now
/// (names and lengths); an error when `path` changed since it was sealed.
pub(crate) fn existing_sealed(
    out: &Path,
    path: &Path,
    group: &str,
    data_dir: &Path,
) -> Result<Option<PathBuf>, Failure> {
    let Some(meta) = std::fs::read(out).ok().and_then(|b| Metainfo::from_bytes(&b).ok()) else { return Ok(None) };
    let Some(header) = &meta.info.sealed else { return Ok(None) };
    let Some(root) = path.parent().map(|p| p.join(SEALED_DIR).join(&meta.info.name)).filter(|r| r.is_dir()) else {
        return Ok(None);
    };
    let stale = || {
        Failure::Input(anyhow!(
            "{} is a sealed share of an earlier {}, which changed since; remove it (and {}) to seal it again",
            out.display(),
            path.display(),
            root.display()
        ))
    };
    let Some(key) = Groups::new(data_dir).group_key(group).bad_input()? else { return Err(stale()) };
    let (_, manifest) = Sealed::decode(header).and_then(|s| s.open(&key)).map_err(|_| stale())?;
    let scanned = shoal_storage::scan_path(path).bad_input()?;
    let now: Vec<(&[String], u64)> = scanned.files.iter().map(|f| (f.path.as_slice(), f.length)).collect();
    let then: Vec<(&[String], u64)> = manifest.files.iter().map(|f| (f.path.as_slice(), f.length)).collect();
    if manifest.name != scanned.name || now != then {
        return Err(stale());
    }
    Ok(Some(root))
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
        // Distinct paths, none inside another (a file `a` and a file `a/b` cannot both be).
        let mut paths: Vec<&[String]> = manifest.files.iter().map(|f| f.path.as_slice()).collect();
        paths.sort();
        let distinct = paths.windows(2).all(|w| !w[1].starts_with(w[0]));
        let fits = meta.info.multi_file
            && manifest.files.len() == lengths.len()
            && manifest.files.iter().zip(&lengths).all(|(f, l)| sealed_len(f.length) == *l)
            && safe_component(&manifest.name)
            && manifest.name != SEALED_DIR
            && manifest.files.iter().all(|f| !f.path.is_empty() && f.path.iter().all(|c| safe_component(c)))
            && distinct
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

    /// The share's files as its members see them.
    pub(crate) fn files(&self) -> &[ManifestFile] {
        &self.manifest.files
    }

    /// A file's path with the share's name first.
    pub(crate) fn full_path(&self, f: &ManifestFile) -> Vec<String> {
        match self.manifest.folder {
            true => std::iter::once(self.manifest.name.clone()).chain(f.path.iter().cloned()).collect(),
            false => vec![self.manifest.name.clone()],
        }
    }

    /// File `index` read as plaintext from `stream`, the reader of its ciphertext (for players).
    pub(crate) fn plaintext(&self, index: usize, stream: shoal_engine::FileStream) -> PlainStream {
        PlainStream {
            inner: stream,
            content: self.content.clone(),
            index: index as u32,
            plain: self.manifest.files.get(index).map_or(0, |f| f.length),
            chunk: None,
        }
    }

    /// Number of files and plaintext bytes.
    pub(crate) fn size(&self) -> (usize, u64) {
        (self.manifest.files.len(), self.manifest.files.iter().map(|f| f.length).sum())
    }

    /// Starts opening the share into `out` while its ciphertext downloads into `root`:
    /// `verified` tells which pieces of `meta` are verified.
    pub(crate) fn start(
        &self,
        meta: &Metainfo,
        verified: impl Fn(u32) -> bool + Send + 'static,
        root: &Path,
        out: &Path,
    ) -> Opening {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let piece_length = u64::from(meta.info.piece_length);
        let cipher: Vec<(PathBuf, u64)> = meta
            .info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| (f.path.iter().fold(root.to_path_buf(), |p, c| p.join(c)), f.offset))
            .collect();
        let job = Job {
            content: self.content.clone(),
            manifest: self.manifest.clone(),
            cipher,
            piece_length,
            target: out.join(&self.manifest.name),
        };
        let st = state.clone();
        let task = tokio::task::spawn_blocking(move || job.run(&verified, &st));
        Opening { state, task: Some(task) }
    }
}

const RUNNING: u8 = 0;
const COMPLETE: u8 = 1;
const CANCELLED: u8 = 2;

/// A sealed share being opened while it downloads; dropping it before [`Opening::finish`]
/// stops the work and removes the partial plaintext.
pub(crate) struct Opening {
    state: Arc<AtomicU8>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<(PathBuf, std::time::Duration)>>>,
}

impl Opening {
    /// Tells the opening every piece is verified and waits for the last chunks; returns where
    /// the plaintext is and how long the opening waited after the download ended.
    pub(crate) async fn finish(mut self) -> Result<(PathBuf, std::time::Duration), Failure> {
        self.state.store(COMPLETE, Ordering::SeqCst);
        let task = self.task.take().ok_or_else(|| anyhow!("the opening was already awaited"))?;
        Ok(task.await.map_err(|e| anyhow!("opening stopped: {e}"))??)
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let _ = self.state.compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// The work of an [`Opening`], on a blocking thread.
struct Job {
    content: ContentKey,
    manifest: Manifest,
    /// Each ciphertext file and its offset in the torrent.
    cipher: Vec<(PathBuf, u64)>,
    piece_length: u64,
    target: PathBuf,
}

/// How often an opening looks for newly verified pieces.
const OPEN_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl Job {
    fn plain_path(&self, i: usize) -> PathBuf {
        match self.manifest.folder {
            true => self.manifest.files[i].path.iter().fold(self.target.clone(), |p, c| p.join(c)),
            false => self.target.clone(),
        }
    }

    fn part_path(&self, i: usize) -> PathBuf {
        let to = self.plain_path(i);
        let mut name = to.file_name().unwrap_or_default().to_os_string();
        name.push(".shoal-part");
        to.with_file_name(name)
    }

    fn run(self, verified: &dyn Fn(u32) -> bool, state: &AtomicU8) -> anyhow::Result<(PathBuf, std::time::Duration)> {
        let result = self.open_all(verified, state);
        if result.is_err() || state.load(Ordering::SeqCst) == CANCELLED {
            // The partial plaintext goes, and the folders made for it when they are empty.
            for i in 0..self.manifest.files.len() {
                let part = self.part_path(i);
                let _ = std::fs::remove_file(&part);
                let mut dir = part.parent();
                while let Some(d) = dir.filter(|d| d.starts_with(&self.target) && self.manifest.folder) {
                    if std::fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
            }
        }
        result.map(|waited| (self.target.clone(), waited))
    }

    fn open_all(&self, verified: &dyn Fn(u32) -> bool, state: &AtomicU8) -> anyhow::Result<std::time::Duration> {
        let files = &self.manifest.files;
        // Every chunk, with the pieces it lies in; each piece lists its chunks, and a chunk is
        // ready when the last of its pieces verifies. Looking costs one check per piece not
        // yet seen, not one per chunk.
        let mut chunks: Vec<(u32, u64)> = Vec::new();
        let pieces = self
            .cipher
            .iter()
            .zip(files)
            .fold(0u64, |n, ((_, offset), f)| n.max((offset + sealed_len(f.length)).div_ceil(self.piece_length)));
        let mut touching: Vec<Vec<u32>> = vec![Vec::new(); pieces as usize];
        let mut missing: Vec<u32> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let offset = self.cipher[i].1;
            for c in 0..chunk_count(f.length) {
                let (at, len) = chunk_span(f.length, c);
                let (first, last) = ((offset + at) / self.piece_length, (offset + at + len - 1) / self.piece_length);
                let id = chunks.len() as u32;
                chunks.push((i as u32, c));
                missing.push((last - first + 1) as u32);
                for p in first..=last {
                    touching[p as usize].push(id);
                }
            }
        }
        let mut seen = vec![false; pieces as usize];
        let mut handles = Handles::default();
        let mut buf = vec![0u8; CHUNK + TAG];
        let mut opened = 0usize;
        let mut completed_at: Option<std::time::Instant> = None;
        loop {
            let mut ready = Vec::new();
            for p in 0..pieces as usize {
                if !seen[p] && verified(p as u32) {
                    seen[p] = true;
                    for &id in &touching[p] {
                        missing[id as usize] -= 1;
                        if missing[id as usize] == 0 {
                            ready.push(id);
                        }
                    }
                }
            }
            for id in ready {
                if state.load(Ordering::SeqCst) == CANCELLED {
                    return Err(anyhow!("the download stopped"));
                }
                let (i, c) = chunks[id as usize];
                self.open_one(i as usize, c, &mut handles, &mut buf)?;
                opened += 1;
            }
            if opened == chunks.len() {
                // Every file is whole: they take their real names together.
                handles.clear();
                for i in 0..files.len() {
                    std::fs::rename(self.part_path(i), self.plain_path(i))
                        .with_context(|| format!("cannot write {}", self.plain_path(i).display()))?;
                }
                return Ok(completed_at.map(|t| t.elapsed()).unwrap_or_default());
            }
            match state.load(Ordering::SeqCst) {
                CANCELLED => return Err(anyhow!("the download stopped")),
                // Every piece was verified before this look: what is left cannot be opened.
                COMPLETE if completed_at.is_some() => {
                    return Err(anyhow!(
                        "{} chunks of the sealed share lie outside its verified pieces",
                        chunks.len() - opened
                    ));
                }
                COMPLETE => {
                    completed_at = Some(std::time::Instant::now());
                    continue;
                }
                _ => {}
            }
            std::thread::sleep(OPEN_POLL);
        }
    }

    /// Decrypts chunk `c` of file `i` into its place in the file's `.shoal-part`.
    fn open_one(&self, i: usize, c: u64, handles: &mut Handles, buf: &mut [u8]) -> anyhow::Result<()> {
        let plain = self.manifest.files[i].length;
        let (at, len) = chunk_span(plain, c);
        let len = len as usize;
        let path = &self.cipher[i].0;
        let input = handles.input(i, path)?;
        input.read_exact_at(&mut buf[..len], at).with_context(|| format!("cannot read {}", path.display()))?;
        let text = open_chunk(&self.content, i as u32, c, chunk_count(plain), &mut buf[..len])
            .with_context(|| format!("cannot open {}", path.display()))?;
        let part = self.part_path(i);
        handles
            .output(i, &part, plain)?
            .write_all_at(text, c * CHUNK as u64)
            .with_context(|| format!("cannot write {}", part.display()))
    }
}

/// Where chunk `c` of a file of `plain` bytes lies in its ciphertext: offset and length.
fn chunk_span(plain: u64, c: u64) -> (u64, u64) {
    let at = c * (CHUNK + TAG) as u64;
    (at, (plain - c * CHUNK as u64).min(CHUNK as u64) + TAG as u64)
}

/// Most files an opening keeps open at once (inputs and outputs together).
const MAX_HANDLES: usize = 64;

/// The files an opening reads and writes, at most [`MAX_HANDLES`] open at once (when full,
/// all are closed: chunks mostly come file after file).
#[derive(Default)]
struct Handles {
    inputs: std::collections::HashMap<usize, std::fs::File>,
    outputs: std::collections::HashMap<usize, std::fs::File>,
    /// Output files made (and sized) already.
    made: std::collections::HashSet<usize>,
}

impl Handles {
    fn room(&mut self) {
        if self.inputs.len() + self.outputs.len() >= MAX_HANDLES {
            self.inputs.clear();
            self.outputs.clear();
        }
    }

    fn clear(&mut self) {
        self.inputs.clear();
        self.outputs.clear();
    }

    fn input(&mut self, i: usize, path: &Path) -> anyhow::Result<&std::fs::File> {
        if !self.inputs.contains_key(&i) {
            self.room();
            let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            self.inputs.insert(i, f);
        }
        self.inputs.get(&i).ok_or_else(|| anyhow!("no input"))
    }

    fn output(&mut self, i: usize, part: &Path, len: u64) -> anyhow::Result<&std::fs::File> {
        if !self.outputs.contains_key(&i) {
            self.room();
            let f = if self.made.insert(i) {
                if let Some(dir) = part.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let f = std::fs::File::create(part).with_context(|| format!("cannot write {}", part.display()))?;
                f.set_len(len).with_context(|| format!("cannot write {}", part.display()))?;
                f
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(part)
                    .with_context(|| format!("cannot write {}", part.display()))?
            };
            self.outputs.insert(i, f);
        }
        self.outputs.get(&i).ok_or_else(|| anyhow!("no output"))
    }
}

/// A file of a sealed share read as plaintext while its ciphertext downloads: each read waits
/// for the verified ciphertext of the 64 KiB chunk it falls in (the torrent's stream puts the
/// deadlines there) and decrypts it; the last chunk is kept for the reads that follow.
pub(crate) struct PlainStream {
    inner: shoal_engine::FileStream,
    content: ContentKey,
    index: u32,
    plain: u64,
    chunk: Option<(u64, bytes::Bytes)>,
}

impl shoal_engine::stream::http::Readable for PlainStream {
    fn len(&self) -> u64 {
        self.plain
    }

    async fn read(&mut self, offset: u64, max: usize) -> Result<bytes::Bytes, shoal_engine::StreamError> {
        if offset >= self.plain || max == 0 {
            return Ok(bytes::Bytes::new());
        }
        let c = offset / CHUNK as u64;
        if self.chunk.as_ref().is_none_or(|(at, _)| *at != c) {
            let (at, len) = chunk_span(self.plain, c);
            let mut sealed = Vec::with_capacity(len as usize);
            while (sealed.len() as u64) < len {
                let got = self.inner.read(at + sealed.len() as u64, (len - sealed.len() as u64) as usize).await?;
                if got.is_empty() {
                    return Err(shoal_engine::StreamError::Read("the sealed file ends early".into()));
                }
                sealed.extend_from_slice(&got);
            }
            let text = open_chunk(&self.content, self.index, c, chunk_count(self.plain), &mut sealed)
                .map_err(|e| shoal_engine::StreamError::Read(e.to_string()))?;
            self.chunk = Some((c, bytes::Bytes::copy_from_slice(text)));
        }
        let Some((_, text)) = &self.chunk else { return Ok(bytes::Bytes::new()) };
        let from = (offset - c * CHUNK as u64) as usize;
        let n = (text.len() - from).min(max);
        Ok(text.slice(from..from + n))
    }
}

/// The identity's data folder, made sure to hold an identity (as `ssl_for` does).
pub(crate) fn data_dir_with_identity(given: Option<&Path>, quiet: bool) -> Result<PathBuf, Failure> {
    let dir = crate::group::data_folder(given)?;
    let _: Identity = crate::group::load_identity(&dir, None, quiet)?;
    Ok(dir)
}
