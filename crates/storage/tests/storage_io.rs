//! Opening, writing, reading, verifying and re-checking real files in temporary folders.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use fixtures::{content, layout_for, pad, spec};
use shoal_proto::{BLOCK_SIZE, PieceIndex};
use shoal_storage::{FileSpec, OpenMode, Storage, StorageError, StorageLayout};

/// Writes every block of every piece from `data`.
fn write_all(storage: &Storage, data: &[u8]) {
    let geometry = storage.layout().geometry();
    for piece in geometry.pieces() {
        for n in 0..geometry.block_count(piece) {
            let block = geometry.block(piece, n).expect("block");
            let at = (geometry.piece_offset(piece) + block.begin as u64) as usize;
            storage.write_block(block, &data[at..at + block.length as usize]).expect("write");
        }
    }
}

fn multi_file_setup() -> (Vec<FileSpec>, Vec<u8>) {
    // Piece length 32 KiB; files of awkward sizes with empty files in between.
    let files = vec![
        spec("t/empty-first", 0),
        spec("t/a.bin", 40_000),
        spec("t/sub/empty", 0),
        spec("t/sub/b.bin", 5),
        spec("t/sub/deeper/c.bin", 70_000),
        spec("t/z-empty-last", 0),
    ];
    let total: u64 = files.iter().map(|f| f.length).sum();
    (files, content(total as usize, 7))
}

#[test]
fn multi_file_write_read_verify_across_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = multi_file_setup();
    let layout = layout_for(dir.path(), &files, &data, 32 * 1024);
    let storage = Storage::open(layout, OpenMode::ReadWrite).expect("open");
    write_all(&storage, &data);
    // Every file exists at its final length, empty ones included.
    for (i, f) in files.iter().enumerate() {
        let meta = std::fs::metadata(storage.layout().file_path(i)).expect("created");
        assert_eq!(meta.len(), f.length, "{:?}", f.path);
    }
    for piece in storage.layout().geometry().pieces() {
        assert!(storage.verify_piece(piece).expect("verify"), "piece {piece}");
    }
    // Bytes landed in the right files.
    assert_eq!(std::fs::read(dir.path().join("t/a.bin")).expect("a"), &data[..40_000]);
    assert_eq!(std::fs::read(dir.path().join("t/sub/b.bin")).expect("b"), &data[40_000..40_005]);
    assert_eq!(std::fs::read(dir.path().join("t/sub/deeper/c.bin")).expect("c"), &data[40_005..]);
    // A read spanning a.bin, b.bin and c.bin.
    let piece = PieceIndex::new_unchecked(1);
    let mut buf = vec![0u8; 20_000];
    storage.read_into(piece, 1_000, &mut buf).expect("read");
    assert_eq!(buf, &data[33_768..53_768]);
    let block = storage.layout().geometry().block(piece, 0).expect("block");
    assert_eq!(storage.read_block(block).expect("read"), &data[32_768..32_768 + 16_384]);
}

#[test]
fn out_of_range_and_wrong_length_writes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = multi_file_setup();
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 32 * 1024), OpenMode::ReadWrite).expect("open");
    let last = PieceIndex::new_unchecked(storage.layout().piece_count() - 1);
    let size = storage.layout().geometry().piece_size(last);
    assert!(matches!(storage.write_at(last, size - 1, &[1, 2]), Err(StorageError::OutOfRange { .. })));
    let beyond = PieceIndex::new_unchecked(storage.layout().piece_count());
    assert!(storage.verify_piece(beyond).is_err());
    let block = storage.layout().geometry().block(last, 0).expect("block");
    assert!(matches!(storage.write_block(block, &[0; 3]), Err(StorageError::DataLength { .. })));
}

#[test]
fn preallocation_is_sparse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 100 << 20;
    let files = vec![spec("big.bin", len)];
    let layout = StorageLayout::new(dir.path().into(), files, 1 << 20, vec![[0; 20]; 100]).expect("layout");
    let storage = Storage::open(layout, OpenMode::ReadWrite).expect("open");
    // The first write creates the file at its full length.
    storage.write_at(PieceIndex::new_unchecked(50), 0, &[1; 4096]).expect("write");
    let meta = std::fs::metadata(storage.layout().file_path(0)).expect("stat");
    assert_eq!(meta.len(), len);
    // st_blocks counts 512-byte units; a written 100 MiB file would have ~204800.
    assert!(meta.blocks() < 128, "{} blocks allocated", meta.blocks());
    // Holes read back as zeros and fail verification without error.
    assert!(!storage.verify_piece(PieceIndex::new_unchecked(3)).expect("verify"));
}

#[test]
fn corrupted_piece_fails_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = multi_file_setup();
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 32 * 1024), OpenMode::ReadWrite).expect("open");
    write_all(&storage, &data);
    let piece = PieceIndex::new_unchecked(1);
    assert!(storage.verify_piece(piece).expect("verify"));
    storage.write_at(piece, 7_000, &[data[32_768 + 7_000] ^ 0xff]).expect("corrupt");
    assert!(!storage.verify_piece(piece).expect("verify"));
    assert!(storage.verify_piece(PieceIndex::new_unchecked(0)).expect("verify"));
}

#[test]
fn check_existing_finds_exactly_the_pieces_present() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = multi_file_setup();
    let piece_length = BLOCK_SIZE;
    {
        let storage =
            Storage::open(layout_for(dir.path(), &files, &data, piece_length), OpenMode::ReadWrite).expect("open");
        // A fresh storage is all holes: nothing to read, nothing present.
        let mut calls = Vec::new();
        let have = storage.check_existing(|n| calls.push(n)).expect("check");
        assert!(have.iter().all(|h| !h));
        assert_eq!(calls.last(), Some(&storage.layout().piece_count()));
        for p in [0u32, 2, 3, 6] {
            let piece = PieceIndex::new_unchecked(p);
            let at = p as usize * piece_length as usize;
            let size = storage.layout().geometry().piece_size(piece) as usize;
            storage.write_at(piece, 0, &data[at..at + size]).expect("write");
        }
        // Half of piece 4: present bytes, but not the whole piece.
        let at = 4 * piece_length as usize;
        storage.write_at(PieceIndex::new_unchecked(4), 0, &data[at..at + 100]).expect("write");
        let have = storage.check_existing(|_| {}).expect("check");
        let present: Vec<u32> = (0..have.len() as u32).filter(|&p| have[p as usize]).collect();
        assert_eq!(present, vec![0, 2, 3, 6]);
    }
    // Reopened: files exist, so everything is read; same answer.
    let storage =
        Storage::open(layout_for(dir.path(), &files, &data, piece_length), OpenMode::ReadWrite).expect("reopen");
    let have = storage.check_existing(|_| {}).expect("check");
    let present: Vec<u32> = (0..have.len() as u32).filter(|&p| have[p as usize]).collect();
    assert_eq!(present, vec![0, 2, 3, 6]);
    let some = storage.check_pieces([1, 2, 6].map(PieceIndex::new_unchecked), |_| {}).expect("check");
    assert_eq!(some, [2, 6].map(PieceIndex::new_unchecked));
}

#[test]
fn existing_data_is_kept_short_files_grow_long_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(50_000, 3);
    let files = vec![spec("d/one", 30_000), spec("d/two", 20_000)];
    std::fs::create_dir(dir.path().join("d")).expect("mkdir");
    std::fs::write(dir.path().join("d/one"), &data[..16_384]).expect("seed");
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 16_384), OpenMode::ReadWrite).expect("open");
    assert_eq!(std::fs::metadata(dir.path().join("d/one")).expect("stat").len(), 30_000);
    assert!(storage.verify_piece(PieceIndex::new_unchecked(0)).expect("verify"));
    drop(storage);

    std::fs::write(dir.path().join("d/two"), vec![1u8; 20_001]).expect("grow");
    let err = Storage::open(layout_for(dir.path(), &files, &data, 16_384), OpenMode::ReadWrite).expect_err("too long");
    assert!(matches!(err, StorageError::FileTooLong { actual: 20_001, expected: 20_000, .. }));
    assert!(err.to_string().contains("is 20001 bytes but the torrent says 20000"), "{err}");
    // The refused open changed nothing.
    assert_eq!(std::fs::metadata(dir.path().join("d/two")).expect("stat").len(), 20_001);
}

#[test]
fn read_only_requires_complete_files_and_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = content(20_000, 4);
    let files = vec![spec("ro/f", 20_000)];
    let err = Storage::open(layout_for(dir.path(), &files, &data, 16_384), OpenMode::ReadOnly).expect_err("missing");
    assert!(matches!(err, StorageError::FileMissing { .. }));
    assert!(!dir.path().join("ro").exists(), "read-only open created something");
    std::fs::create_dir(dir.path().join("ro")).expect("mkdir");
    std::fs::write(dir.path().join("ro/f"), &data).expect("write");
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 16_384), OpenMode::ReadOnly).expect("open");
    assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true, true]);
    assert!(matches!(storage.write_at(PieceIndex::new_unchecked(0), 0, &[0]), Err(StorageError::ReadOnly)));
}

#[test]
fn symlinks_below_the_root_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("outside");
    let root = dir.path().join("dl");
    std::fs::create_dir(&root).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), root.join("t")).expect("link dir");
    let data = content(10, 5);
    let files = vec![spec("t/f", 10)];
    let err = Storage::open(layout_for(&root, &files, &data, 16_384), OpenMode::ReadWrite).expect_err("link followed");
    assert!(matches!(err, StorageError::Symlink { .. }), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);

    // A link as the file itself.
    let target = outside.path().join("victim");
    std::fs::write(&target, b"keep").expect("victim");
    std::os::unix::fs::symlink(&target, root.join("f")).expect("link file");
    let files = vec![spec("f", 10)];
    let err = Storage::open(layout_for(&root, &files, &data, 16_384), OpenMode::ReadWrite).expect_err("link followed");
    assert!(matches!(err, StorageError::Symlink { .. }), "{err}");
    assert_eq!(std::fs::read(&target).expect("victim"), b"keep");
}

#[test]
fn concurrent_writers_and_a_small_handle_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<FileSpec> = (0..40).map(|i| spec(&format!("many/f{i:02}"), 3_000)).collect();
    let data = content(120_000, 9);
    let layout = layout_for(dir.path(), &files, &data, 8_192);
    let storage = Arc::new(Storage::open_with_limit(layout, OpenMode::ReadWrite, 3).expect("open"));
    let count = storage.layout().piece_count();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let storage = Arc::clone(&storage);
            let data = &data;
            s.spawn(move || {
                for p in (t..count).step_by(4) {
                    let piece = PieceIndex::new_unchecked(p);
                    let at = p as usize * 8_192;
                    let size = storage.layout().geometry().piece_size(piece) as usize;
                    storage.write_at(piece, 0, &data[at..at + size]).expect("write");
                }
            });
        }
    });
    assert!(storage.check_existing(|_| {}).expect("check").iter().all(|&ok| ok));
}

/// `t/a.bin` (20,000 bytes), a padding file up to the 32 KiB piece boundary, `t/b.bin`
/// (40,000 bytes); the content holds zeros where the padding is, as BEP 47 requires.
fn padded_setup() -> (Vec<FileSpec>, Vec<u8>) {
    let files = vec![spec("t/a.bin", 20_000), pad("t/.pad/12768", 12_768), spec("t/b.bin", 40_000)];
    let mut data = content(72_768, 11);
    data[20_000..32_768].fill(0);
    (files, data)
}

#[test]
fn r_padding_files_are_never_written_to_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = padded_setup();
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 32 * 1024), OpenMode::ReadWrite).expect("open");
    assert!(!dir.path().join("t/.pad").exists(), "open created the padding folder");
    write_all(&storage, &data);
    storage.flush().expect("flush");
    assert!(!dir.path().join("t/.pad").exists(), "writes created the padding folder");
    assert!(storage.check_existing(|_| {}).expect("check").iter().all(|&ok| ok));
    // A read across a.bin, the padding and b.bin gives the content, zeros included.
    let mut buf = vec![0xaa; 30_000];
    storage.read_into(PieceIndex::new_unchecked(0), 10_000, &mut buf[..22_768]).expect("read");
    assert_eq!(buf[..22_768], data[10_000..32_768]);
    assert_eq!(std::fs::read(dir.path().join("t/a.bin")).expect("a"), &data[..20_000]);
    assert_eq!(std::fs::read(dir.path().join("t/b.bin")).expect("b"), &data[32_768..]);
    let listed: Vec<_> =
        std::fs::read_dir(dir.path().join("t")).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
}

#[test]
fn r_seeding_existing_data_needs_no_padding_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, data) = padded_setup();
    std::fs::create_dir(dir.path().join("t")).expect("mkdir");
    std::fs::write(dir.path().join("t/a.bin"), &data[..20_000]).expect("a");
    std::fs::write(dir.path().join("t/b.bin"), &data[32_768..]).expect("b");
    let layout = layout_for(dir.path(), &files, &data, 32 * 1024);
    let storage = Storage::open(layout.clone(), OpenMode::ReadOnly).expect("read-only open");
    assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true, true, true]);
    let block = storage.layout().geometry().block(PieceIndex::new_unchecked(0), 1).expect("block");
    assert_eq!(storage.read_block(block).expect("read"), &data[16_384..32_768]);
    drop(storage);
    // Opening for writing (what `shoal share` and the engine do) creates nothing either.
    let storage = Storage::open(layout, OpenMode::ReadWrite).expect("read-write open");
    assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true, true, true]);
    assert!(!dir.path().join("t/.pad").exists(), "open created the padding folder");
}

#[test]
fn r_files_not_chosen_are_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    // File 0 fills pieces 0 and 1 exactly; file 1 (in a folder of its own) pieces 2 and 3.
    let files = vec![spec("s/a.bin", 65_536), spec("s/sub/b.bin", 40_000)];
    let data = content(105_536, 12);
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 32 * 1024), OpenMode::ReadWrite).expect("open");
    assert!(!dir.path().join("s").exists(), "open created a folder");
    let geometry = storage.layout().geometry();
    for p in [0, 1] {
        let piece = PieceIndex::new_unchecked(p);
        for n in 0..geometry.block_count(piece) {
            let block = geometry.block(piece, n).expect("block");
            let at = (geometry.piece_offset(piece) + block.begin as u64) as usize;
            storage.write_block(block, &data[at..at + block.length as usize]).expect("write");
        }
    }
    storage.flush().expect("flush");
    assert_eq!(std::fs::metadata(dir.path().join("s/a.bin")).expect("a").len(), 65_536);
    assert!(!dir.path().join("s/sub").exists(), "file 1 was created without being written");
    assert!(storage.file_exists(0) && !storage.file_exists(1));
    // Its pieces are simply missing: no error from verification or checks.
    assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true, true, false, false]);
    let later = [2, 3].map(PieceIndex::new_unchecked);
    assert!(storage.check_pieces(later, |_| {}).expect("check").is_empty());
    assert!(!storage.verify_piece(later[0]).expect("verify"));
    let block = geometry.block(later[0], 0).expect("block");
    assert!(matches!(storage.read_block(block), Err(StorageError::FileMissing { expected: 40_000, .. })));

    // The first write touching file 1 creates it, at its full length.
    storage.write_block(block, &data[65_536..65_536 + 16_384]).expect("write");
    assert_eq!(std::fs::metadata(dir.path().join("s/sub/b.bin")).expect("b").len(), 40_000);
    assert!(storage.file_exists(1));
    assert_eq!(storage.read_block(block).expect("read"), &data[65_536..65_536 + 16_384]);
    assert_eq!(storage.check_existing(|_| {}).expect("check"), vec![true, true, false, false]);
    drop(storage);
    // A read-only open still wants every file complete, and now finds them.
    assert!(Storage::open(layout_for(dir.path(), &files, &data, 32 * 1024), OpenMode::ReadOnly).is_ok());
}

#[test]
fn r_a_link_placed_before_a_files_first_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("outside");
    let files = vec![spec("a", 16_384), spec("t/f", 10)];
    let data = content(16_394, 13);
    let storage = Storage::open(layout_for(dir.path(), &files, &data, 16_384), OpenMode::ReadWrite).expect("open");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("t")).expect("link dir");
    let err = storage.write_at(PieceIndex::new_unchecked(1), 0, &data[16_384..]).expect_err("link followed");
    assert!(matches!(err, StorageError::Symlink { .. }), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
}

/// A hybrid torrent's piece is verified only when both its SHA-1 and its v2 Merkle root match
/// (BEP 52): a piece whose SHA-1 matches but whose root disagrees (a hybrid whose two sides
/// describe different bytes) is not verified.
#[test]
fn a_hybrid_piece_must_match_both_hashes() {
    use shoal_proto::metainfo::v2::{V2Check, piece_root};
    let dir = tempfile::tempdir().expect("tempdir");
    let files = vec![spec("h.bin", 64 * 1024)];
    let data = content(64 * 1024, 9);
    let roots: Vec<V2Check> = data
        .chunks(32 * 1024)
        .map(|p| V2Check { root: piece_root(p, 32 * 1024), data: p.len() as u32, width: 2 })
        .collect();
    let mut wrong = roots.clone();
    wrong[1].root[0] ^= 1;
    // SHA-1 hashes of other bytes in piece 1: the roots match, the SHA-1 does not.
    let mut other = data.clone();
    other[40_000] ^= 0xff;
    for (sha_of, checks, piece1) in [(&data, roots.clone(), true), (&data, wrong, false), (&other, roots, false)] {
        let layout = layout_for(dir.path(), &files, sha_of, 32 * 1024).with_hybrid(checks.into()).expect("hybrid");
        assert!(layout.checks_sha1());
        let storage = Storage::open(layout, OpenMode::ReadWrite).expect("open");
        write_all(&storage, &data);
        assert!(storage.verify_piece(PieceIndex::new_unchecked(0)).expect("verify"));
        assert_eq!(storage.verify_piece(PieceIndex::new_unchecked(1)).expect("verify"), piece1);
        // A changed byte fails both checks.
        storage.write_at(PieceIndex::new_unchecked(0), 5, &[data[5] ^ 0xff]).expect("corrupt");
        assert!(!storage.verify_piece(PieceIndex::new_unchecked(0)).expect("verify"));
    }
}
