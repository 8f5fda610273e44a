//! Scanning and hashing content for `shoal create`, then seeding it from the same folder.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::{content, piece_hashes};
use shoal_storage::{OpenMode, Storage, StorageError, StorageLayout, hash_pieces, scan_path};

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

#[test]
fn single_file_scan_and_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(100_000, 1);
    write(&dir.path().join("movie.mkv"), &data);
    let scanned = scan_path(&dir.path().join("movie.mkv")).expect("scan");
    assert_eq!(scanned.name, "movie.mkv");
    assert!(!scanned.is_dir);
    assert_eq!(scanned.files.len(), 1);
    assert_eq!(scanned.files[0].path, vec!["movie.mkv".to_string()]);
    assert_eq!(scanned.storage_files(), scanned.files);
    let mut last = 0;
    let hashes = hash_pieces(&scanned.parent, &scanned, 32_768, |n| last = n).expect("hash");
    assert_eq!(hashes, piece_hashes(&data, 32_768));
    assert_eq!(last, 100_000);
}

#[test]
fn directory_scan_order_skips_links_and_hashes_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = dir.path().join("album");
    let a = content(3_000_000, 2);
    let b = content(7_000_001, 3);
    let c = content(12_345, 4);
    // Created out of order; the scan sorts by name bytes, depth first.
    write(&top.join("z.txt"), &c);
    write(&top.join("B/inner.bin"), &b);
    write(&top.join("a.bin"), &a);
    write(&top.join("empty"), b"");
    std::fs::create_dir_all(top.join("nothing-here")).expect("empty dir");
    std::os::unix::fs::symlink("/etc/passwd", top.join("link")).expect("symlink");

    let scanned = scan_path(&top).expect("scan");
    assert!(scanned.is_dir);
    assert_eq!(scanned.name, "album");
    let paths: Vec<String> = scanned.files.iter().map(|f| f.path.join("/")).collect();
    assert_eq!(paths, ["B/inner.bin", "a.bin", "empty", "z.txt"]);
    assert_eq!(scanned.skipped, vec![top.join("link")]);
    let stored: Vec<String> = scanned.storage_files().iter().map(|f| f.path.join("/")).collect();
    assert_eq!(stored[0], "album/B/inner.bin");

    let mut all = b.clone();
    all.extend(&a);
    all.extend(&c);
    for piece_length in [16_384u32, 1 << 20, 16 << 20] {
        let hashes = hash_pieces(&scanned.parent, &scanned, piece_length, |_| {}).expect("hash");
        assert_eq!(hashes, piece_hashes(&all, piece_length), "piece length {piece_length}");
    }

    // The result seeds straight from the same folder.
    let hashes = hash_pieces(&scanned.parent, &scanned, 65_536, |_| {}).expect("hash");
    let layout = StorageLayout::new(scanned.parent.clone(), scanned.storage_files(), 65_536, hashes).expect("layout");
    let storage = Storage::open(layout, OpenMode::ReadOnly).expect("open");
    assert!(storage.check_existing(|_| {}).expect("check").iter().all(|&ok| ok));
}

#[test]
fn nothing_to_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = dir.path().join("void");
    std::fs::create_dir_all(top.join("sub")).expect("mkdir");
    let err = scan_path(&top).expect_err("empty dir");
    assert!(matches!(err, StorageError::NothingToShare { .. }));
    assert!(err.to_string().starts_with("nothing to share in "), "{err}");
    write(&top.join("sub/zero"), b"");
    assert!(matches!(scan_path(&top), Err(StorageError::NothingToShare { .. })));
    assert!(matches!(scan_path(&dir.path().join("absent")), Err(StorageError::Io { .. })));
}

#[test]
fn file_changed_since_scan_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    write(&path, &content(50_000, 5));
    let scanned = scan_path(&path).expect("scan");
    write(&path, &content(40_000, 5));
    assert!(matches!(hash_pieces(&scanned.parent, &scanned, 16_384, |_| {}), Err(StorageError::Truncated { .. })));
}
