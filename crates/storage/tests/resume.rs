//! Resume data: save/load round trips, torn and foreign files, files changed behind Shoal's
//! back, and a simulated crash mid-download.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fixtures::{content, layout_for, pad, spec};
use shoal_proto::PieceIndex;
use shoal_storage::{FileSpec, OpenMode, ResumeRejected, ResumeStore, Storage, StorageError};

const PIECE: u32 = 16_384;

fn files() -> Vec<FileSpec> {
    // Pieces 0..=3 lie in `a`, piece 4 spans `a` and `b`, pieces 5.. lie in `b`.
    vec![spec("r/a", 4 * PIECE as u64 + 1_000), spec("r/empty", 0), spec("r/b", 5 * PIECE as u64 - 1_000)]
}

fn open(root: &Path, data: &[u8]) -> Storage {
    Storage::open(layout_for(root, &files(), data, PIECE), OpenMode::ReadWrite).expect("open")
}

fn write_piece(storage: &Storage, data: &[u8], p: u32) {
    let piece = PieceIndex::new_unchecked(p);
    let at = p as usize * PIECE as usize;
    let size = storage.layout().geometry().piece_size(piece) as usize;
    storage.write_at(piece, 0, &data[at..at + size]).expect("write");
    assert!(storage.verify_piece(piece).expect("verify"));
}

fn total() -> usize {
    files().iter().map(|f| f.length as usize).sum()
}

/// Pushes a file's modification time well away from now, whatever the timestamp granularity.
fn touch_later(path: &Path) {
    let file = File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() + Duration::from_secs(3_600)).expect("set mtime");
}

#[test]
fn save_load_roundtrip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(total(), 1);
    let storage = open(dir.path(), &data);
    let id = "0123456789abcdef0123456789ABCDEF01234567";
    let store = ResumeStore::new(ResumeStore::default_path(dir.path(), id).expect("path"));
    assert!(matches!(store.load_explained(storage.layout()), Err(ResumeRejected::Missing)));
    let mut verified = vec![false; storage.layout().piece_count() as usize];
    for p in [0, 4, 8] {
        write_piece(&storage, &data, p);
        verified[p as usize] = true;
    }
    store.save(&storage, &verified).expect("save");
    assert!(dir.path().join(".shoal").join(format!("{}.resume", id.to_lowercase())).is_file());
    drop(storage);

    let storage = open(dir.path(), &data);
    assert_eq!(store.load(storage.layout()), Some(verified.clone()));
    // Saving again with nothing new written is idempotent.
    store.save(&storage, &verified).expect("save");
    assert_eq!(store.load(storage.layout()), Some(verified));
    assert!(matches!(store.save(&storage, &[true]), Err(StorageError::ResumeLength { expected: 9, actual: 1 })));
}

#[test]
fn torn_corrupt_or_foreign_resume_files_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(total(), 2);
    let storage = open(dir.path(), &data);
    let path = dir.path().join("state").join("t.resume");
    let store = ResumeStore::new(path.clone());
    let mut verified = vec![false; storage.layout().piece_count() as usize];
    write_piece(&storage, &data, 2);
    verified[2] = true;
    store.save(&storage, &verified).expect("save");
    let good = std::fs::read(&path).expect("read");

    for cut in [0, 1, 30, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).expect("tear");
        assert_eq!(store.load(storage.layout()), None, "torn at {cut}");
    }
    for at in [0, 9, 40, good.len() - 25, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).expect("corrupt");
        assert_eq!(store.load(storage.layout()), None, "flipped byte {at}");
    }
    std::fs::write(&path, b"d8:completei1ee").expect("foreign format");
    assert_eq!(store.load(storage.layout()), None);

    // Intact, but for different content (other piece hashes).
    std::fs::write(&path, &good).expect("restore");
    let other = layout_for(dir.path(), &files(), &content(total(), 99), PIECE);
    assert!(matches!(store.load_explained(&other), Err(ResumeRejected::Foreign)));
    assert_eq!(store.load(storage.layout()), Some(verified));
    store.remove().expect("remove");
    assert_eq!(store.load(storage.layout()), None);
}

#[test]
fn resume_invalidated_when_a_file_is_modified_behind_our_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(total(), 3);
    let storage = open(dir.path(), &data);
    let store = ResumeStore::new(dir.path().join("x.resume"));
    let verified = vec![true; storage.layout().piece_count() as usize];
    for p in 0..storage.layout().piece_count() {
        write_piece(&storage, &data, p);
    }
    store.save(&storage, &verified).expect("save");
    drop(storage);

    // Someone edits `b` in place: same length, new bytes, new mtime.
    let b = dir.path().join("r/b");
    let mut bytes = std::fs::read(&b).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&b, &bytes).expect("edit");
    touch_later(&b);

    let storage = open(dir.path(), &data);
    let loaded = store.load_explained(storage.layout()).expect("still intact");
    assert_eq!(loaded.changed_files, vec![2]);
    // Pieces 0..=3 lie wholly in `a` and stay trusted; 4 (spanning into `b`) and 5.. do not.
    let trusted: Vec<usize> = (0..loaded.verified.len()).filter(|&p| loaded.verified[p]).collect();
    assert_eq!(trusted, vec![0, 1, 2, 3]);
    let unrecorded =
        (0..storage.layout().piece_count()).filter(|&p| !loaded.verified[p as usize]).map(PieceIndex::new_unchecked);
    let rechecked = storage.check_pieces(unrecorded, |_| {}).expect("check");
    // Piece 4 holds bytes 65536..81920; the edit at b[100] is in piece 4 (b starts at 66536).
    assert_eq!(rechecked, [5, 6, 7, 8].map(PieceIndex::new_unchecked));
}

#[test]
fn crash_mid_download_resumes_without_refetching_and_ends_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(total(), 4);
    let store = ResumeStore::new(dir.path().join(".shoal/t.resume"));
    let pieces = {
        let storage = open(dir.path(), &data);
        let mut verified = vec![false; storage.layout().piece_count() as usize];
        for p in [0, 1, 2, 5] {
            write_piece(&storage, &data, p);
            verified[p as usize] = true;
        }
        store.save(&storage, &verified).expect("save");
        // Verified after the last save, then the process "dies": no save, no flush.
        write_piece(&storage, &data, 6);
        touch_later(&storage.layout().file_path(2));
        storage.layout().piece_count()
    };

    let storage = open(dir.path(), &data);
    let verified = store.load(storage.layout()).expect("resume accepted");
    // `a` was untouched since the save, so its pieces are trusted without reading them.
    assert!(verified[0] && verified[1] && verified[2]);
    let unrecorded: Vec<PieceIndex> =
        (0..pieces).filter(|&p| !verified[p as usize]).map(PieceIndex::new_unchecked).collect();
    let found = storage.check_pieces(unrecorded.iter().copied(), |_| {}).expect("check");
    assert_eq!(found, [5, 6].map(PieceIndex::new_unchecked));
    let mut have = verified;
    for p in found {
        have[p.idx()] = true;
    }
    // Fetch only what is missing.
    let missing: Vec<u32> = (0..pieces).filter(|&p| !have[p as usize]).collect();
    assert_eq!(missing, vec![3, 4, 7, 8]);
    for p in missing {
        write_piece(&storage, &data, p);
    }
    store.save(&storage, &vec![true; pieces as usize]).expect("save");
    let mut on_disk = std::fs::read(dir.path().join("r/a")).expect("a");
    on_disk.extend(std::fs::read(dir.path().join("r/b")).expect("b"));
    assert!(on_disk == data, "content differs after resume");
}

#[test]
fn r_resume_records_skip_padding_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = vec![spec("p/a", PIECE as u64 - 100), pad("p/.pad/100", 100), spec("p/b", PIECE as u64)];
    let mut data = content(2 * PIECE as usize, 5);
    data[PIECE as usize - 100..PIECE as usize].fill(0);
    let layout = layout_for(dir.path(), &files, &data, PIECE);
    let store = ResumeStore::new(dir.path().join("p.resume"));
    {
        let storage = Storage::open(layout.clone(), OpenMode::ReadWrite).expect("open");
        write_piece(&storage, &data, 0);
        write_piece(&storage, &data, 1);
        store.save(&storage, &[true, true]).expect("save");
    }
    assert!(!dir.path().join("p/.pad").exists());
    let storage = Storage::open(layout, OpenMode::ReadWrite).expect("reopen");
    let loaded = store.load_explained(storage.layout()).expect("accepted");
    assert_eq!(loaded.verified, vec![true, true]);
    assert!(loaded.changed_files.is_empty(), "{:?}", loaded.changed_files);
}

#[test]
fn r_resume_with_a_file_not_created_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(total(), 6);
    let store = ResumeStore::new(dir.path().join("s.resume"));
    let mut verified = vec![false; 9];
    {
        let storage = open(dir.path(), &data);
        // Only pieces lying wholly in `a`: `b` (a skipped file, say) is never created.
        for p in 0..4 {
            write_piece(&storage, &data, p);
            verified[p as usize] = true;
        }
        store.save(&storage, &verified).expect("save with a file not on disk");
    }
    assert!(!dir.path().join("r/b").exists());
    let storage = open(dir.path(), &data);
    let loaded = store.load_explained(storage.layout()).expect("accepted");
    assert_eq!(loaded.verified, verified);
    assert!(loaded.changed_files.is_empty(), "{:?}", loaded.changed_files);

    // `b` created after the save: a change, but nothing trusted is lost.
    write_piece(&storage, &data, 8);
    drop(storage);
    let storage = open(dir.path(), &data);
    let loaded = store.load_explained(storage.layout()).expect("accepted");
    assert_eq!(loaded.changed_files, vec![2]);
    assert_eq!(loaded.verified, verified);
}
