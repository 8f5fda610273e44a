//! A torrent's files as the daemon handles them: the `.torrent` it stores for a magnet link
//! once the metadata arrived, and deleting a removed torrent's data.

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
    if meta.info.multi_file {
        let top = dir.join(&meta.info.name);
        // Remove the empty folders bottom-up.
        let mut dirs: Vec<PathBuf> = meta
            .info
            .files
            .iter()
            .filter_map(|f| dir.join(meta.info.file_path(f)).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs.iter().chain(std::iter::once(&top)) {
            if d.starts_with(&top) {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(".shoal").join(format!("{}.resume", meta.info_hash.to_hex())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_torrent_file_parses_with_its_trackers() {
        let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let trackers = vec!["http://a.example/announce".to_owned(), "udp://b.example:80".to_owned()];
        let meta = Metainfo::from_bytes(&torrent_file(info, &trackers)).expect("parses");
        assert_eq!(meta.trackers(), vec!["http://a.example/announce", "udp://b.example:80"]);
        assert_eq!(&meta.info_bytes[..], &info[..]);
    }
}
