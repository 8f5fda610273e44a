//! The file list of an info dictionary (BEP 3 `length` / `files`, BEP 47 attributes) and the
//! rules that keep every torrent-supplied name inside the download directory.
//!
//! A name or path component is accepted only if it is one non-empty file name: not `.` or
//! `..`, without `/`, `\` or NUL, and not starting with a drive letter (`C:`). Those rules
//! hold on every platform Shoal runs on, so a torrent that is safe on Linux is safe on Windows.

use std::collections::HashSet;

use shoal_bencode::{Dict, Value};

use super::{MAX_FILES, MAX_TOTAL_LENGTH, MetainfoError, expect_dict, missing, wrong_type};
use crate::metainfo::FileEntry;

/// Why a string is not a safe single file name, or `None` if it is.
pub(crate) fn unsafe_reason(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names the current or parent directory")
    } else if b.contains(&b'/') {
        Some("it contains '/'")
    } else if b.contains(&b'\\') {
        Some("it contains '\\'")
    } else if b.contains(&0) {
        Some("it contains a NUL byte")
    } else if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        Some("it starts with a drive letter")
    } else {
        None
    }
}

/// The torrent name (`name.utf-8` preferred), checked to be a safe single component.
pub(super) fn name(info: &Dict<'_>) -> Result<String, MetainfoError> {
    let preferred = info.get(&b"name.utf-8"[..]).and_then(Value::as_str);
    let name = match preferred {
        Some(s) => s.to_owned(),
        None => {
            let value = info.get(&b"name"[..]).ok_or_else(|| missing("name"))?;
            let raw = value.as_bytes().ok_or_else(|| wrong_type("name", "a byte string", value))?;
            String::from_utf8_lossy(raw).into_owned()
        }
    };
    match unsafe_reason(&name) {
        Some(reason) => Err(MetainfoError::BadName { name, reason }),
        None => Ok(name),
    }
}

/// The single file of a `length` torrent.
pub(super) fn single(name: &str, length: &Value<'_>) -> Result<Vec<FileEntry>, MetainfoError> {
    let length = file_length(length, "length")?;
    let files = vec![FileEntry { path: vec![name.to_owned()], length, offset: 0, padding: false }];
    Ok(files)
}

/// The `files` list of a multi-file torrent, with offsets assigned and paths checked.
pub(super) fn multi(list: &Value<'_>) -> Result<Vec<FileEntry>, MetainfoError> {
    let entries = list.as_list().ok_or_else(|| wrong_type("files", "a list", list))?;
    if entries.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    if entries.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(entries.len()));
    }
    let mut files = Vec::with_capacity(entries.len());
    let mut offset: u64 = 0;
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("files[{i}]");
        let dict = expect_dict(entry, &field)?;
        let attr = dict.get(&b"attr"[..]).and_then(Value::as_bytes).unwrap_or_default();
        let padding = attr.contains(&b'p');
        let length = match dict.get(&b"length"[..]) {
            Some(v) => file_length(v, &format!("{field}.length"))?,
            // BEP 47: a symlink's length may be omitted.
            None if attr.contains(&b'l') => 0,
            None => return Err(missing(&format!("{field}.length"))),
        };
        let path = path(dict, &field)?;
        files.push(FileEntry { path, length, offset, padding });
        offset =
            offset.checked_add(length).filter(|&total| total <= MAX_TOTAL_LENGTH).ok_or(MetainfoError::TooLarge)?;
    }
    check_unique(&files)?;
    Ok(files)
}

fn file_length(value: &Value<'_>, field: &str) -> Result<u64, MetainfoError> {
    let n = value.as_int().ok_or_else(|| wrong_type(field, "an integer", value))?;
    let n = u64::try_from(n).map_err(|_| MetainfoError::NegativeLength { field: field.to_owned(), value: n })?;
    if n > MAX_TOTAL_LENGTH {
        return Err(MetainfoError::TooLarge);
    }
    Ok(n)
}

/// A file's path components, preferring `path.utf-8` when every component is valid UTF-8.
fn path(dict: &Dict<'_>, field: &str) -> Result<Vec<String>, MetainfoError> {
    let utf8: Option<Vec<String>> = dict
        .get(&b"path.utf-8"[..])
        .and_then(Value::as_list)
        .and_then(|parts| parts.iter().map(|p| p.as_str().map(str::to_owned)).collect());
    let key = format!("{field}.path");
    let parts = match utf8 {
        Some(parts) => parts,
        None => {
            let value = dict.get(&b"path"[..]).ok_or_else(|| missing(&key))?;
            let list = value.as_list().ok_or_else(|| wrong_type(&key, "a list", value))?;
            let mut parts = Vec::with_capacity(list.len());
            for part in list {
                let raw = part.as_bytes().ok_or_else(|| wrong_type(&key, "a list of byte strings", part))?;
                parts.push(String::from_utf8_lossy(raw).into_owned());
            }
            parts
        }
    };
    if parts.is_empty() {
        let reason = "the path has no components";
        return Err(MetainfoError::BadPath { field: key, component: String::new(), reason });
    }
    for part in &parts {
        if let Some(reason) = unsafe_reason(part) {
            return Err(MetainfoError::BadPath { field: key, component: part.clone(), reason });
        }
    }
    Ok(parts)
}

/// No two real files share a path, and no file's path is another file's directory. Padding
/// files are exempt: BEP 47 names them `.pad/<size>`, so equal sizes give equal paths, and
/// clients do not create them.
fn check_unique(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let real = || files.iter().filter(|f| !f.padding);
    let mut paths: HashSet<&[String]> = HashSet::with_capacity(files.len());
    for f in real() {
        if !paths.insert(&f.path) {
            return Err(MetainfoError::DuplicatePath(f.path.join("/")));
        }
    }
    for f in real() {
        for end in 1..f.path.len() {
            let dir = &f.path[..end];
            if paths.contains(dir) {
                return Err(MetainfoError::PathConflict(dir.join("/")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        for ok in ["a", "file.txt", "..a", "a..", "...", "é", "ab:c", "C", " spaced "] {
            assert_eq!(unsafe_reason(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "/etc", "a\\b", "\\", "a\0", "C:", "c:evil", "Z:\\x"] {
            assert!(unsafe_reason(bad).is_some(), "{bad:?}");
        }
    }
}
