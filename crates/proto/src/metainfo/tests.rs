//! Tests of `.torrent` parsing and creation, on small hand-built torrents shaped like real
//! ones, and regression tests for every unsafe input the validator refuses.

use std::path::Path;

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use shoal_bencode::{decode, encode};

use super::*;

// Raw bencode writers that keep keys in the order given, so tests can build non-canonical
// and malformed torrents.
fn s(b: impl AsRef<[u8]>) -> Vec<u8> {
    let b = b.as_ref();
    [format!("{}:", b.len()).as_bytes(), b].concat()
}
fn i(n: i64) -> Vec<u8> {
    format!("i{n}e").into_bytes()
}
fn l(items: &[Vec<u8>]) -> Vec<u8> {
    [b"l".to_vec(), items.concat(), b"e".to_vec()].concat()
}
fn d(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|(k, v)| [s(k), v.clone()].concat()).collect();
    [b"d".to_vec(), body, b"e".to_vec()].concat()
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|n| (n % 251) as u8).collect()
}

fn piece_hashes(data: &[u8], piece_length: usize) -> Vec<[u8; 20]> {
    data.chunks(piece_length).map(|c| Sha1::digest(c).into()).collect()
}

fn sha1(b: &[u8]) -> [u8; 20] {
    Sha1::digest(b).into()
}

const PL: usize = 16384;

/// A single-file torrent as a typical client writes it (40,000 bytes, 3 pieces).
fn single_info() -> Vec<u8> {
    d(&[
        ("length", i(40_000)),
        ("name", s("hello.txt")),
        ("piece length", i(PL as i64)),
        ("pieces", s(piece_hashes(&content(40_000), PL).concat())),
    ])
}

fn single_torrent() -> Vec<u8> {
    d(&[
        ("announce", s("http://tracker.example/announce")),
        (
            "announce-list",
            l(&[
                l(&[s("http://tracker.example/announce")]),
                l(&[s("udp://backup.example:6969"), s("udp://backup2.example:6969")]),
            ]),
        ),
        ("comment", s("a test torrent")),
        ("created by", s("mktorrent 1.1")),
        ("creation date", i(1_700_000_000)),
        ("info", single_info()),
    ])
}

fn file(path: &[&str], length: i64) -> Vec<u8> {
    d(&[("length", i(length)), ("path", l(&path.iter().map(s).collect::<Vec<_>>()))])
}

/// A multi-file torrent with a BEP 47 padding file: 10 + 20000 + 12758 (pad) + 5 bytes.
fn multi_info_with(files: Vec<Vec<u8>>, total: usize) -> Vec<u8> {
    d(&[
        ("files", l(&files)),
        ("name", s("album")),
        ("piece length", i(PL as i64)),
        ("pieces", s(piece_hashes(&content(total), PL).concat())),
        ("private", i(1)),
    ])
}

fn multi_info() -> Vec<u8> {
    let pad = d(&[("attr", s("p")), ("length", i(12_758)), ("path", l(&[s(".pad"), s("12758")]))]);
    let files = vec![file(&["docs", "readme.txt"], 10), file(&["data.bin"], 20_000), pad, file(&["z"], 5)];
    multi_info_with(files, 32_773)
}

fn torrent_with_info(info: Vec<u8>) -> Vec<u8> {
    d(&[("info", info)])
}

fn parse_info(info: Vec<u8>) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_bytes(&torrent_with_info(info))
}

fn err_of(info: Vec<u8>) -> String {
    parse_info(info).expect_err("should be refused").to_string()
}

fn multi_with_paths(paths: &[&[&str]]) -> Vec<u8> {
    let files = paths.iter().map(|p| file(p, 100)).collect();
    multi_info_with(files, 100 * paths.len())
}

#[test]
fn single_file_fixture_parses() {
    let bytes = single_torrent();
    let m = Metainfo::from_bytes(&bytes).expect("valid");
    assert_eq!(m.info_bytes, single_info());
    assert_eq!(m.info_hash, InfoHash(sha1(&single_info())));
    assert_eq!(m.announce.as_deref(), Some("http://tracker.example/announce"));
    assert_eq!(m.announce_list.len(), 2);
    assert_eq!(m.announce_list[1], ["udp://backup.example:6969", "udp://backup2.example:6969"]);
    assert_eq!(m.comment.as_deref(), Some("a test torrent"));
    assert_eq!(m.created_by.as_deref(), Some("mktorrent 1.1"));
    assert_eq!(m.creation_date, Some(1_700_000_000));

    let info = &m.info;
    assert_eq!(info.name, "hello.txt");
    assert!(!info.is_multi_file() && !info.private);
    assert_eq!(info.piece_length, 16384);
    assert_eq!(info.layout.piece_count(), 3);
    assert_eq!(info.total_length(), 40_000);
    assert_eq!(
        info.files,
        vec![FileEntry { path: vec!["hello.txt".into()], length: 40_000, offset: 0, padding: false }]
    );
    assert_eq!(info.file_path(&info.files[0]), Path::new("hello.txt"));
    let last = info.layout.piece(2).expect("piece 2");
    assert_eq!(info.piece_hash(last), Some(&sha1(&content(40_000)[2 * PL..])));

    let magnet = m.magnet();
    assert_eq!(magnet.info_hash, m.info_hash);
    assert_eq!(magnet.display_name.as_deref(), Some("hello.txt"));
    assert_eq!(magnet.trackers.len(), 3);
}

#[test]
fn multi_file_fixture_parses() {
    let m = parse_info(multi_info()).expect("valid");
    let info = &m.info;
    assert!(info.is_multi_file() && info.private);
    assert_eq!(info.total_length(), 32_773);
    assert_eq!(info.layout.piece_count(), 3);
    let offsets: Vec<u64> = info.files.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 10, 20_010, 32_768]);
    let padding: Vec<bool> = info.files.iter().map(|f| f.padding).collect();
    assert_eq!(padding, [false, false, true, false]);
    assert_eq!(info.file_path(&info.files[0]), Path::new("album/docs/readme.txt"));
    assert_eq!(info.files[0].path, ["docs", "readme.txt"]);
    assert!(m.announce_list.is_empty() && m.announce.is_none());
}

#[test]
fn info_hash_covers_raw_unsorted_bytes() {
    let info = d(&[("piece length", i(PL as i64)), ("name", s("x")), ("pieces", s(sha1(b"abc"))), ("length", i(3))]);
    let m = parse_info(info.clone()).expect("unsorted keys are accepted");
    assert_eq!(m.info_hash, InfoHash(sha1(&info)));
    let canonical = encode(&decode(&info).expect("valid"));
    assert_ne!(canonical, info);
    assert_ne!(m.info_hash, InfoHash(sha1(&canonical)));
}

#[test]
fn info_bytes_alone_give_the_same_hash() {
    let m = Metainfo::from_bytes(&single_torrent()).expect("valid");
    let from_info = Metainfo::from_info_bytes(&m.info_bytes).expect("valid");
    assert_eq!(from_info.info_hash, m.info_hash);
    assert_eq!(from_info.info, m.info);
    assert!(from_info.announce_list.is_empty());
    assert_eq!(Info::from_bytes(&single_info()).expect("valid"), m.info);
}

#[test]
fn trackers_are_read_tolerantly() {
    let only_announce = d(&[("announce", s("http://a/ann")), ("info", single_info())]);
    let m = Metainfo::from_bytes(&only_announce).expect("valid");
    assert_eq!(m.announce_list, vec![vec!["http://a/ann".to_string()]]);

    let messy = d(&[
        ("announce", s("http://a/ann")),
        ("announce-list", l(&[s("http://b/ann"), l(&[]), l(&[i(5), s("  "), s("http://c/ann ")])])),
        ("info", single_info()),
    ]);
    let m = Metainfo::from_bytes(&messy).expect("valid");
    assert_eq!(m.announce_list, vec![vec!["http://b/ann".to_string()], vec!["http://c/ann".to_string()]]);
    assert_eq!(m.trackers(), ["http://b/ann", "http://c/ann"]);

    let wrong = d(&[("announce", i(1)), ("announce-list", i(2)), ("comment", i(3)), ("info", single_info())]);
    let m = Metainfo::from_bytes(&wrong).expect("optional junk is ignored");
    assert!(m.announce.is_none() && m.announce_list.is_empty() && m.comment.is_none());
}

#[test]
fn utf8_variants_are_preferred() {
    let info = d(&[
        ("files", l(&[d(&[("length", i(3)), ("path", l(&[s(b"\xe9t\xe9")])), ("path.utf-8", l(&[s("été")]))])])),
        ("name", s(b"caf\xe9")),
        ("name.utf-8", s("café")),
        ("piece length", i(PL as i64)),
        ("pieces", s(sha1(b"abc"))),
    ]);
    let m = parse_info(info).expect("valid");
    assert_eq!(m.info.name, "café");
    assert_eq!(m.info.files[0].path, ["été"]);
}

#[test]
fn invalid_utf8_is_replaced_deterministically() {
    let info =
        d(&[("length", i(3)), ("name", s(b"caf\xe9")), ("piece length", i(PL as i64)), ("pieces", s(sha1(b"abc")))]);
    let a = parse_info(info.clone()).expect("valid");
    let b = parse_info(info).expect("valid");
    assert_eq!(a.info.name, "caf\u{fffd}");
    assert_eq!(a, b);
}

#[test]
fn created_torrents_roundtrip() {
    let data = content(50_000);
    let hashes = piece_hashes(&data, PL);
    let spec = CreateSpec {
        name: "set".into(),
        piece_length: PL as u32,
        content: CreateContent::MultiFile(vec![
            CreateFile { path: vec!["a".into(), "b.txt".into()], length: 30_000 },
            CreateFile { path: vec!["c.bin".into()], length: 20_000 },
        ]),
        trackers: vec!["http://one/announce".into(), "udp://two:80".into()],
        comment: Some("made by a test".into()),
        creation_date: Some(1_234),
        private: true,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    assert_eq!(spec.total_length(), 50_000);
    let bytes = build_torrent(&spec, &hashes);
    assert_eq!(encode(&decode(&bytes).expect("valid")), bytes, "output is canonical");
    let m = Metainfo::from_bytes(&bytes).expect("valid");
    assert_eq!(m.announce.as_deref(), Some("http://one/announce"));
    assert_eq!(m.announce_list, vec![vec!["http://one/announce".to_string()], vec!["udp://two:80".to_string()]]);
    assert_eq!(m.created_by.as_deref(), Some(CREATED_BY));
    assert_eq!(m.creation_date, Some(1_234));
    assert_eq!(m.comment.as_deref(), Some("made by a test"));
    assert!(m.info.private && m.info.multi_file);
    assert_eq!(m.info.pieces, hashes);
    assert_eq!(m.info.files[1].path, ["c.bin"]);
    assert_eq!(m.info.files[1].offset, 30_000);

    let single = CreateSpec {
        name: "one.iso".into(),
        content: CreateContent::SingleFile { length: 50_000 },
        trackers: vec!["http://one/announce".into()],
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
        ..spec
    };
    let bytes = build_torrent(&single, &hashes);
    let m = Metainfo::from_bytes(&bytes).expect("valid");
    assert!(!m.info.multi_file && !m.info.private);
    assert!(!bytes.windows(13).any(|w| w == b"announce-list"));
    assert!(!bytes.windows(7).any(|w| w == b"private"));
    assert_eq!(m.announce_list, vec![vec!["http://one/announce".to_string()]]);
    assert_eq!(m.info.files[0].path, ["one.iso"]);
}

#[test]
fn r_path_traversal_in_multifile_torrent() {
    let e = parse_info(multi_with_paths(&[&["ok"], &["..", "..", "etc", "passwd"]])).expect_err("unsafe");
    assert!(matches!(e, MetainfoError::BadPath { ref field, ref component, .. }
        if field == "files[1].path" && component == ".."));
    assert_eq!(
        e.to_string(),
        "field `files[1].path` has an unsafe component \"..\": it names the current or parent directory"
    );
}

#[test]
fn r_absolute_path_in_multifile_torrent() {
    let e = err_of(multi_with_paths(&[&["/etc/passwd"]]));
    assert!(e.contains("contains '/'"), "{e}");
}

#[test]
fn r_backslash_traversal_in_path_component() {
    let e = err_of(multi_with_paths(&[&["..\\..\\windows", "x"]]));
    assert!(e.contains("contains '\\'"), "{e}");
}

#[test]
fn r_windows_drive_letter_in_path() {
    let e = err_of(multi_with_paths(&[&["C:", "Windows"]]));
    assert!(e.contains("drive letter"), "{e}");
    let e = err_of(multi_with_paths(&[&["d:evil.exe"]]));
    assert!(e.contains("drive letter"), "{e}");
}

#[test]
fn r_nul_byte_in_path() {
    let e = err_of(multi_with_paths(&[&["a\0b"]]));
    assert!(e.contains("NUL"), "{e}");
}

#[test]
fn r_empty_and_dot_components() {
    assert!(err_of(multi_with_paths(&[&["a", ""]])).contains("it is empty"));
    assert!(err_of(multi_with_paths(&[&[".", "a"]])).contains("current or parent"));
    let e = err_of(multi_with_paths(&[&[]]));
    assert_eq!(e, "field `files[0].path` has an unsafe component \"\": the path has no components");
}

#[test]
fn r_unsafe_torrent_name() {
    for (name, why) in [("..", "current or parent"), ("a/b", "'/'"), ("", "empty"), ("C:\\x", "'\\'")] {
        let info =
            d(&[("length", i(3)), ("name", s(name)), ("piece length", i(PL as i64)), ("pieces", s(sha1(b"abc")))]);
        let e = err_of(info);
        assert!(e.starts_with("field `name`") && e.contains(why), "{name}: {e}");
    }
}

#[test]
fn r_unsafe_utf8_path_variant_is_checked_too() {
    let info = d(&[
        ("files", l(&[d(&[("length", i(3)), ("path", l(&[s("ok")])), ("path.utf-8", l(&[s("..")]))])])),
        ("name", s("n")),
        ("name.utf-8", s("n")),
        ("piece length", i(PL as i64)),
        ("pieces", s(sha1(b"abc"))),
    ]);
    assert!(err_of(info).contains("current or parent"));
}

#[test]
fn r_duplicate_and_conflicting_paths() {
    assert_eq!(err_of(multi_with_paths(&[&["a", "b"], &["a", "b"]])), "file path \"a/b\" appears more than once");
    assert_eq!(
        err_of(multi_with_paths(&[&["a"], &["a", "b"]])),
        "file path \"a\" is used both as a file and as a directory"
    );
    assert_eq!(
        err_of(multi_with_paths(&[&["a", "b", "c"], &["a", "b"]])),
        "file path \"a/b\" is used both as a file and as a directory"
    );
    // BEP 47 padding files of equal size share a path; that is fine.
    let pad = |n| d(&[("attr", s("p")), ("length", i(n)), ("path", l(&[s(".pad"), s(n.to_string())]))]);
    let files = vec![file(&["a"], 100), pad(100), file(&["b"], 100), pad(100), file(&["c"], 1)];
    assert!(parse_info(multi_info_with(files, 401)).is_ok());
}

#[test]
fn missing_and_wrong_typed_fields() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (d(&[("announce", s("x"))]), "missing field `info`"),
        (d(&[("info", i(1))]), "field `info` is an integer, expected a dictionary"),
        (torrent_with_info(d(&[("length", i(1))])), "missing field `name`"),
        (torrent_with_info(d(&[("name", i(1))])), "field `name` is an integer, expected a byte string"),
        (torrent_with_info(d(&[("name", s("n"))])), "missing field `piece length`"),
        (
            torrent_with_info(d(&[("name", s("n")), ("piece length", s("big"))])),
            "field `piece length` is a byte string, expected an integer",
        ),
        (torrent_with_info(d(&[("name", s("n")), ("piece length", i(16))])), "missing field `pieces`"),
        (
            torrent_with_info(d(&[("name", s("n")), ("piece length", i(16)), ("pieces", s(""))])),
            "missing field `length` or `files`",
        ),
        (
            torrent_with_info(d(&[("files", d(&[])), ("name", s("n")), ("piece length", i(16)), ("pieces", s(""))])),
            "field `files` is a dictionary, expected a list",
        ),
        (
            torrent_with_info(d(&[
                ("files", l(&[d(&[("path", l(&[s("a")]))])])),
                ("name", s("n")),
                ("piece length", i(16)),
                ("pieces", s("")),
            ])),
            "missing field `files[0].length`",
        ),
        (
            torrent_with_info(d(&[
                ("files", l(&[d(&[("length", i(1)), ("path", s("a"))])])),
                ("name", s("n")),
                ("piece length", i(16)),
                ("pieces", s("")),
            ])),
            "field `files[0].path` is a byte string, expected a list",
        ),
        (
            torrent_with_info(d(&[
                ("files", l(&[d(&[("length", i(1)), ("path", l(&[i(1)]))])])),
                ("name", s("n")),
                ("piece length", i(16)),
                ("pieces", s("")),
            ])),
            "field `files[0].path` is an integer, expected a list of byte strings",
        ),
        (b"li1ee".to_vec(), "the top level is a list, not a dictionary"),
        (b"d4:info".to_vec(), "not bencode: unexpected end of input at byte 7"),
    ];
    for (bytes, expected) in cases {
        let e = Metainfo::from_bytes(&bytes).expect_err("invalid").to_string();
        assert_eq!(e, expected);
    }
}

/// The v2 `file tree` of a single 40,000-byte file `hello.txt` (BEP 52).
fn v2_file_tree() -> Vec<u8> {
    d(&[("hello.txt", d(&[("", d(&[("length", i(40_000)), ("pieces root", s([9u8; 32]))]))]))])
}

#[test]
fn r_v2_only_torrent_with_layers_that_do_not_add_up_or_without_them_is_refused() {
    let info = d(&[
        ("file tree", v2_file_tree()),
        ("meta version", i(2)),
        ("name", s("hello.txt")),
        ("piece length", i(PL as i64)),
    ]);
    let torrent = d(&[
        ("announce", s("http://tracker.example/announce")),
        ("info", info.clone()),
        ("piece layers", d(&[("\t".repeat(32).as_str(), s([7u8; 96]))])),
    ]);
    // The file's layer (three made-up hashes) does not add up to its root: refused, naming it.
    let err = Metainfo::from_bytes(&torrent).expect_err("a v2 torrent with a forged layer accepted");
    assert_eq!(err.to_string(), "field `piece layers[hello.txt]`: the hashes do not add up to the file's pieces root");
    // The same from a bare info dictionary (a magnet's metadata from peers).
    assert_eq!(Metainfo::from_info_bytes(&info), Err(MetainfoError::V2Only));
    // A `file tree` alone, without `meta version`, is read as v2 and refused for the field it lacks.
    let no_version = d(&[("file tree", v2_file_tree()), ("name", s("hello.txt")), ("piece length", i(PL as i64))]);
    assert_eq!(parse_info(no_version), Err(MetainfoError::MissingField("meta version".into())));
}

#[test]
fn hybrid_torrent_is_read_as_v1() {
    let info = d(&[
        ("file tree", v2_file_tree()),
        ("length", i(40_000)),
        ("meta version", i(2)),
        ("name", s("hello.txt")),
        ("piece length", i(PL as i64)),
        ("pieces", s(piece_hashes(&content(40_000), PL).concat())),
    ]);
    let meta = parse_info(info.clone()).expect("hybrid parses");
    assert_eq!(meta.info_hash, InfoHash(sha1(&info)));
    assert_eq!(meta.info.pieces, piece_hashes(&content(40_000), PL));
    assert_eq!(
        meta.info.files,
        vec![FileEntry { path: vec!["hello.txt".into()], length: 40_000, offset: 0, padding: false }]
    );
}

fn sized_info(length: i64, piece_length: i64, hashes: usize) -> Vec<u8> {
    d(&[
        ("length", i(length)),
        ("name", s("n")),
        ("piece length", i(piece_length)),
        ("pieces", s(vec![7u8; hashes * 20])),
    ])
}

#[test]
fn size_checks() {
    assert!(parse_info(sized_info(100, 16, 7)).is_ok());
    assert_eq!(err_of(sized_info(100, 0, 7)), "field `piece length` is 0, expected 1 byte to 256 MiB");
    assert!(err_of(sized_info(100, -16, 7)).contains("is -16"));
    assert!(err_of(sized_info(100, (1 << 28) + 1, 1)).contains("expected 1 byte to 256 MiB"));
    assert!(parse_info(sized_info(100, 1 << 28, 1)).is_ok());
    assert!(err_of(sized_info(100, 1 << 33, 1)).contains("256 MiB"));
    assert_eq!(
        err_of(sized_info(100, 16, 6)),
        "field `pieces` holds 6 hashes, but 100 bytes in pieces of 16 bytes need 7"
    );
    assert_eq!(err_of(sized_info(0, 16, 0)), "the torrent's total length is 0 bytes");
    assert_eq!(err_of(sized_info(-1, 16, 0)), "field `length` is negative (-1)");
    assert_eq!(err_of(sized_info((1 << 50) + 1, 1 << 28, 1)), "the torrent's total length is more than 2^50 bytes");
    // Needs more pieces than fit in u32: refused as a count mismatch, not a panic.
    assert!(err_of(sized_info(1 << 50, 1, 1)).contains("need 1125899906842624"));
    let mut odd = sized_info(100, 16, 7);
    let at = odd.len() - 2;
    odd.insert(at, 0);
    assert!(parse_info(odd).is_err());
    let info = d(&[("length", i(3)), ("name", s("n")), ("piece length", i(16)), ("pieces", s([1u8; 21]))]);
    assert_eq!(err_of(info), "field `pieces` is 21 bytes long, not a multiple of 20");
}

#[test]
fn multi_file_size_checks() {
    let both = d(&[
        ("files", l(&[file(&["a"], 1)])),
        ("length", i(1)),
        ("name", s("n")),
        ("piece length", i(16)),
        ("pieces", s([0u8; 20])),
    ]);
    assert_eq!(err_of(both), "the info dictionary has both `length` and `files`");
    assert_eq!(err_of(multi_info_with(vec![], 0)), "field `files` is an empty list");
    assert_eq!(err_of(multi_info_with(vec![file(&["a"], 0)], 0)), "the torrent's total length is 0 bytes");
    let e = err_of(multi_info_with(vec![file(&["a"], 1 << 49), file(&["b"], 1 << 49), file(&["c"], 1)], 0));
    assert_eq!(e, "the torrent's total length is more than 2^50 bytes");
    assert_eq!(err_of(multi_info_with(vec![file(&["a"], -3)], 0)), "field `files[0].length` is negative (-3)");
    // Zero-length files are fine; a symlink (BEP 47 `l`) may omit its length.
    let link = d(&[("attr", s("l")), ("path", l(&[s("link")])), ("symlink path", l(&[s("a")]))]);
    let m = parse_info(multi_info_with(vec![file(&["a"], 5), file(&["empty"], 0), link], 5)).expect("valid");
    assert_eq!(m.info.files[2].length, 0);
}

#[test]
fn r_too_many_files() {
    // One more empty dictionary than allowed: refused by count before any entry is parsed.
    let entries = b"de".repeat(MAX_FILES + 1);
    let files = [b"l".as_slice(), &entries, b"e"].concat();
    let info = d(&[("files", files), ("name", s("n")), ("piece length", i(16)), ("pieces", s(""))]);
    assert_eq!(err_of(info), "field `files` lists 1000001 files, more than the limit of 1000000");
}

proptest! {
    #[test]
    fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Metainfo::from_bytes(&bytes);
        let _ = Metainfo::from_info_bytes(&bytes);
    }

    #[test]
    fn never_panics_on_mutated_fixture(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = if pos.index(2) == 0 { single_torrent() } else { torrent_with_info(multi_info()) };
        let at = pos.index(bytes.len());
        bytes[at] = byte;
        let _ = Metainfo::from_bytes(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = Metainfo::from_bytes(&bytes);
    }
}
