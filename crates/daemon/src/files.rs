//! A torrent's files as the daemon handles them: the `.torrent` it stores for a magnet link
//! once the metadata arrived, moving a torrent's data to another folder, and deleting a removed
//! torrent's data.

use std::io;
use std::path::{Path, PathBuf};

use shoal_proto::Metainfo;

/// A .torrent file made of an info dictionary (as received) and its trackers, one tier each.
pub(crate) fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
    }
    if trackers.len() > 1 {
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Deletes a torrent's files (and the folders it created, when empty), never anything outside
/// `dir`.
pub(crate) fn delete_data(dir: &Path, meta: &Metainfo) {
    for f in &meta.info.files {
        let path = dir.join(meta.info.file_path(f));
        if path.starts_with(dir) {
            let _ = std::fs::remove_file(&path);
        }
    }
    remove_empty_folders(dir, meta);
    let _ = std::fs::remove_file(dir.join(".shoal").join(format!("{}.resume", meta.info_hash.to_hex())));
}

/// Removes the folders a multi-file torrent has in `dir` that are empty, bottom-up.
fn remove_empty_folders(dir: &Path, meta: &Metainfo) {
    if !meta.info.multi_file {
        return;
    }
    let top = dir.join(&meta.info.name);
    let mut dirs: Vec<PathBuf> = meta
        .info
        .files
        .iter()
        .filter_map(|f| dir.join(meta.info.file_path(f)).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs.iter().chain(std::iter::once(&top)) {
        if d.starts_with(&top) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Moves a torrent's files from folder `from` to folder `to`, each to the same path relative
/// to its folder, keeping modification times (so the resume record stays valid and nothing
/// is checked again). A rename where possible; across file systems a copy, synced, whose
/// originals are deleted only once every file is copied.
///
/// All or nothing: nothing is moved when a destination file already exists, and a failure
/// part-way moves the files already moved back, so the torrent's files are either all in
/// `from` or all in `to`. Files the torrent never created (skipped, or not yet downloaded) are
/// left alone; pad files (BEP 47) are never on disk.
pub(crate) fn move_data(from: &Path, to: &Path, meta: &Metainfo) -> Result<(), String> {
    let present: Vec<PathBuf> = meta
        .info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| meta.info.file_path(f))
        .filter(|rel| from.join(rel).symlink_metadata().is_ok())
        .collect();
    if let Some(taken) = present.iter().map(|rel| to.join(rel)).find(|dst| dst.symlink_metadata().is_ok()) {
        return Err(format!("{} already exists; nothing was moved", taken.display()));
    }
    let mut moved: Vec<(&PathBuf, bool)> = Vec::new();
    for rel in &present {
        let (src, dst) = (from.join(rel), to.join(rel));
        match move_file(&src, &dst) {
            Ok(copied) => moved.push((rel, copied)),
            Err(e) => {
                for (rel, copied) in moved.iter().rev() {
                    let (src, dst) = (from.join(rel), to.join(rel));
                    let _ = if *copied { std::fs::remove_file(&dst) } else { std::fs::rename(&dst, &src) };
                }
                remove_empty_folders(to, meta);
                return Err(format!(
                    "cannot move {} to {}: {e}; the files stay in {}",
                    src.display(),
                    dst.display(),
                    from.display()
                ));
            }
        }
    }
    for (rel, copied) in &moved {
        if *copied {
            let _ = std::fs::remove_file(from.join(rel));
        }
    }
    remove_empty_folders(from, meta);
    Ok(())
}

/// Renames `src` to `dst` (creating `dst`'s folder), or copies it when they are on different
/// file systems; `Ok(true)` when it was copied (the original is still there).
fn move_file(src: &Path, dst: &Path) -> io::Result<bool> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => copy_keeping_mtime(src, dst).map(|()| true),
        Err(e) => Err(e),
    }
}

/// Copies `src` to a new file `dst` with the same modification time, synced to disk.
fn copy_keeping_mtime(src: &Path, dst: &Path) -> io::Result<()> {
    let modified = std::fs::metadata(src)?.modified()?;
    let copied = (|| {
        std::fs::copy(src, dst)?;
        let file = std::fs::OpenOptions::new().write(true).open(dst)?;
        file.set_modified(modified)?;
        file.sync_all()
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-file torrent `t/a.bin`, `t/sub/b.bin` whose files are written in `dir`.
    fn two_files(dir: &Path) -> Metainfo {
        let src = dir.join("t");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("a.bin"), vec![1u8; 40_000]).expect("write");
        std::fs::write(src.join("sub/b.bin"), vec![2u8; 30_000]).expect("write");
        use shoal_proto::metainfo::{CreateContent, CreateFile, CreateSpec, build_torrent};
        let file = |path: &[&str], length| CreateFile { path: path.iter().map(|p| p.to_string()).collect(), length };
        let spec = CreateSpec {
            name: "t".into(),
            piece_length: 16_384,
            content: CreateContent::MultiFile(vec![file(&["a.bin"], 40_000), file(&["sub", "b.bin"], 30_000)]),
            trackers: vec![],
            comment: None,
            creation_date: None,
            private: false,
            web_seeds: Vec::new(),
            ssl_cert: None,
            sealed: None,
        };
        // Moving looks at paths only; the piece hashes need not match.
        Metainfo::from_bytes(&build_torrent(&spec, &[[0; 20]; 5])).expect("parses")
    }

    fn mtime(p: &Path) -> std::time::SystemTime {
        std::fs::metadata(p).expect("stat").modified().expect("mtime")
    }

    #[test]
    fn moving_keeps_paths_and_times_and_leaves_no_empty_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("old"), dir.path().join("new"));
        let meta = two_files(&from);
        let before = mtime(&from.join("t/sub/b.bin"));
        std::fs::write(from.join("mine.txt"), b"not the torrent's").expect("write");
        move_data(&from, &to, &meta).expect("moves");
        assert_eq!(std::fs::read(to.join("t/a.bin")).expect("read"), vec![1u8; 40_000]);
        assert_eq!(std::fs::read(to.join("t/sub/b.bin")).expect("read"), vec![2u8; 30_000]);
        assert_eq!(mtime(&to.join("t/sub/b.bin")), before);
        assert!(!from.join("t").exists(), "the torrent's emptied folders are gone");
        assert!(from.join("mine.txt").exists(), "other files stay");
    }

    #[test]
    fn a_move_that_fails_part_way_puts_everything_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("old"), dir.path().join("new"));
        let meta = two_files(&from);
        // `new/t/sub` is a file: the second file cannot be moved after the first was.
        std::fs::create_dir_all(to.join("t")).expect("mkdir");
        std::fs::write(to.join("t/sub"), b"in the way").expect("write");
        let err = move_data(&from, &to, &meta).expect_err("fails");
        assert!(err.contains("the files stay in"), "{err}");
        assert_eq!(std::fs::read(from.join("t/a.bin")).expect("back"), vec![1u8; 40_000]);
        assert!(from.join("t/sub/b.bin").exists());
        assert!(!to.join("t/a.bin").exists());

        // An existing destination file: refused before anything moves.
        std::fs::remove_file(to.join("t/sub")).expect("rm");
        std::fs::write(to.join("t/a.bin"), b"someone else's").expect("write");
        let err = move_data(&from, &to, &meta).expect_err("refused");
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(to.join("t/a.bin")).expect("kept"), b"someone else's");
        assert!(from.join("t/sub/b.bin").exists());
    }

    #[test]
    fn a_copy_keeps_the_modification_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("a");
        std::fs::write(&src, b"data").expect("write");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::options().write(true).open(&src).expect("open").set_modified(old).expect("set mtime");
        copy_keeping_mtime(&src, &dir.path().join("b")).expect("copies");
        assert_eq!(mtime(&dir.path().join("b")), old);
        assert_eq!(std::fs::read(dir.path().join("b")).expect("read"), b"data");
    }

    #[test]
    fn a_stored_torrent_file_parses_with_its_trackers() {
        let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let trackers = vec!["http://a.example/announce".to_owned(), "udp://b.example:80".to_owned()];
        let meta = Metainfo::from_bytes(&torrent_file(info, &trackers)).expect("parses");
        assert_eq!(meta.trackers(), vec!["http://a.example/announce", "udp://b.example:80"]);
        assert_eq!(&meta.info_bytes[..], &info[..]);
    }
}
