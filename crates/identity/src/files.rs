//! Files of the identity store: written whole (a temporary file renamed over the old one) and,
//! for keys, readable by the owner only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

/// Creates `dir` (and its parents) with mode 0700 for the last component.
pub(crate) fn private_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

/// A temporary name next to `path`, unique to this write (two processes, or two threads,
/// writing the same file never share one).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.{:016x}.tmp", std::process::id(), rand::random::<u64>()));
    path.with_file_name(name)
}

/// An exclusive lock on a folder's `.lock` file, held until dropped: changes that read,
/// modify and write the store's files run one at a time, across threads and processes.
#[derive(Debug)]
pub(crate) struct FolderLock(#[allow(dead_code)] fs::File);

/// Takes the lock of `dir` (created if needed), waiting for whoever holds it.
pub(crate) fn lock_folder(dir: &Path) -> Result<FolderLock, Error> {
    private_dir(dir)?;
    let path = dir.join(".lock");
    let file =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(FolderLock(file))
}

/// Reads a file the store wrote; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Reads a text file the store wrote; `None` when it does not exist.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>, Error> {
    read_optional(path)?
        .map(|b| String::from_utf8(b).map_err(|_| Error::Corrupt(path.to_path_buf(), "not UTF-8 text".into())))
        .transpose()
}
