//! `shoal get` given bad input: broken or hostile .torrent files (malformed, truncated, wrong
//! value types, impossible piece geometry, absurd lengths, paths that would leave the download
//! folder), a missing file, a folder, and unusable `--peer` / `--listen` values.
//!
//! What bad input must produce: exit code 2, exactly one line on stderr that starts with
//! `shoal: ` and names the file (and the field, for torrent contents), no panic, nothing on
//! stdout, and nothing on disk: the `-o` folder is not created, an existing one stays empty,
//! and nothing appears next to the torrent or in the working folder.
//!
//! The torrents are written with the small bencode writer below, starting from a valid
//! torrent that `shoal get` accepts ([`the_valid_torrents_used_as_a_base_are_accepted`]) and
//! changing one thing.

#[path = "support/shoal.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use sha1::{Digest, Sha1};
use shoal_testkit::{TempDir, test_bytes};
use support::{QUICK, assert_input_error, get_cmd, list_tree, run, shoal};

/// A bencode value, for writing test torrents.
#[derive(Clone, Debug)]
enum B {
    Int(i64),
    Str(Vec<u8>),
    List(Vec<B>),
    Dict(BTreeMap<Vec<u8>, B>),
}

impl B {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            B::Str(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            B::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode(out));
                out.push(b'e');
            }
            B::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    B::Str(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Sets (`Some`) or removes (`None`) a key of a dictionary.
    fn with(mut self, key: &str, value: Option<B>) -> B {
        let B::Dict(map) = &mut self else { panic!("not a dictionary: {self:?}") };
        match value {
            Some(v) => map.insert(key.as_bytes().to_vec(), v),
            None => map.remove(key.as_bytes()),
        };
        self
    }
}

fn s(text: &str) -> B {
    B::Str(text.as_bytes().to_vec())
}

fn dict(pairs: Vec<(&str, B)>) -> B {
    B::Dict(pairs.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
}

const PIECE: usize = 16_384;
/// Content of the base torrents: 40,000 bytes, three pieces.
const LEN: usize = 40_000;

fn piece_hashes(content: &[u8]) -> Vec<u8> {
    content.chunks(PIECE).flat_map(|c| <[u8; 20]>::from(Sha1::digest(c))).collect()
}

/// The info dictionary of a valid single-file torrent named `base.bin`.
fn single_info() -> B {
    dict(vec![
        ("name", s("base.bin")),
        ("piece length", B::Int(PIECE as i64)),
        ("length", B::Int(LEN as i64)),
        ("pieces", B::Str(piece_hashes(&test_bytes(LEN, 1)))),
    ])
}

/// The info dictionary of a valid multi-file torrent `set` with `files` (valid: two files,
/// `a.bin` of 30,000 bytes and `sub/b.bin` of 10,000).
fn multi_info(files: Option<B>) -> B {
    let files = files.unwrap_or_else(|| B::List(vec![file(30_000, &["a.bin"]), file(10_000, &["sub", "b.bin"])]));
    dict(vec![
        ("name", s("set")),
        ("piece length", B::Int(PIECE as i64)),
        ("files", files),
        ("pieces", B::Str(piece_hashes(&test_bytes(LEN, 1)))),
    ])
}

/// One file entry of a `files` list.
fn file_entry(len: i64, path: B) -> B {
    dict(vec![("length", B::Int(len)), ("path", path)])
}

/// A list of path components.
fn path(parts: &[&str]) -> B {
    B::List(parts.iter().map(|p| s(p)).collect())
}

/// A file entry with path components `parts`.
fn file(len: i64, parts: &[&str]) -> B {
    file_entry(len, path(parts))
}

/// A multi-file torrent with this `files` list.
fn files(entries: Vec<B>) -> Vec<u8> {
    torrent(multi_info(Some(B::List(entries))))
}

/// The single-file torrent with `key` set to `value`.
fn single_with(key: &str, value: B) -> Vec<u8> {
    torrent(single_info().with(key, Some(value)))
}

/// The single-file torrent with its `pieces` string changed by `edit`.
fn with_hashes(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut hashes = piece_hashes(&test_bytes(LEN, 1));
    edit(&mut hashes);
    single_with("pieces", B::Str(hashes))
}

/// A whole torrent around `info`.
fn torrent(info: B) -> Vec<u8> {
    dict(vec![("info", info), ("created by", s("a Shoal test"))]).bytes()
}

/// A scratch folder holding only the torrent file `name` with `bytes`.
struct Case {
    dir: TempDir,
    torrent: PathBuf,
}

impl Case {
    fn new(name: &str, bytes: &[u8]) -> Case {
        let dir = TempDir::new().expect("temp dir");
        let torrent = dir.path().join(name);
        fs::write(&torrent, bytes).expect("write torrent");
        Case { dir, torrent }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Runs `shoal get` with `extra` arguments (in the scratch folder) and checks the
    /// outcome of bad input: see the module documentation.
    fn assert_rejected(&self, extra: &[&str], mentions: &[&str]) {
        let mut cmd = get_cmd(&self.torrent, &self.out(), &[], extra);
        cmd.current_dir(self.dir.path());
        let out = run(cmd, QUICK);
        let before: Vec<PathBuf> = list_tree(self.dir.path());
        assert!(!self.out().exists(), "the -o folder was created: {out:?}\nfiles now: {before:?}");
        let name = self.torrent.file_name().map(PathBuf::from).into_iter().collect::<Vec<_>>();
        assert_eq!(before, name, "only the torrent file may exist in the scratch folder: {out:?}");
        assert_input_error(&out, mentions);
    }

    /// [`Case::assert_rejected`], with the torrent's path among the mentions.
    fn assert_torrent_rejected(&self, mentions: &[&str]) {
        let path = self.torrent.display().to_string();
        let mut all = vec![path.as_str()];
        all.extend_from_slice(mentions);
        self.assert_rejected(&[], &all);
    }
}

/// One test per torrent: `$bytes` must be rejected with a message naming every `$mention`
/// (the torrent's path is always required).
macro_rules! rejected {
    ($($name:ident: $bytes:expr, [$($mention:expr),*];)*) => {$(
        #[test]
        fn $name() {
            let bytes: Vec<u8> = $bytes;
            Case::new(concat!(stringify!($name), ".torrent"), &bytes).assert_torrent_rejected(&[$($mention),*]);
        }
    )*};
}

rejected! {
    // Not bencode, or not whole.
    empty_file: Vec::<u8>::new(), [];
    not_bencode: b"this is not a torrent file\n".to_vec(), [];
    truncated_in_the_middle: { let t = torrent(single_info()); t[..t.len() / 2].to_vec() }, [];
    truncated_by_one_byte: { let t = torrent(single_info()); t[..t.len() - 1].to_vec() }, [];
    trailing_garbage: { let mut t = torrent(single_info()); t.extend_from_slice(b"junk"); t }, [];
    string_length_past_the_end: b"d4:infod4:name999999:abcee".to_vec(), [];
    deeply_nested_lists: { let mut t = vec![b'l'; 100_000]; t.extend(vec![b'e'; 100_000]); t }, [];
    // The wrong shape or types.
    top_level_is_a_list: B::List(vec![single_info()]).bytes(), ["list"];
    missing_info: dict(vec![("announce", s("http://127.0.0.1:1/a"))]).bytes(), ["info"];
    info_is_a_list: dict(vec![("info", B::List(vec![]))]).bytes(), ["info"];
    name_is_an_integer: single_with("name", B::Int(7)), ["name"];
    piece_length_is_a_string: single_with("piece length", s("16384")), ["piece length"];
    length_is_a_string: single_with("length", s("40000")), ["length"];
    pieces_is_an_integer: single_with("pieces", B::Int(3)), ["pieces"];
    missing_pieces: torrent(single_info().with("pieces", None)), ["pieces"];
    missing_length_and_files: torrent(single_info().with("length", None)), ["length", "files"];
    both_length_and_files: torrent(multi_info(None).with("length", Some(B::Int(1)))), ["length", "files"];
    files_is_a_dictionary: torrent(multi_info(Some(dict(vec![("a", s("b"))])))), ["files"];
    files_is_empty: files(vec![]), ["files"];
    file_entry_is_a_string: files(vec![s("a.bin")]), ["files[0]"];
    file_path_component_is_an_integer: files(vec![file_entry(1, B::List(vec![B::Int(1)]))]), ["files[0].path"];
    file_length_is_a_string: files(vec![dict(vec![("length", s("9")), ("path", path(&["a"]))])]), ["files[0].length"];
    // Impossible or absurd geometry.
    piece_length_zero: single_with("piece length", B::Int(0)), ["piece length"];
    piece_length_negative: single_with("piece length", B::Int(-16_384)), ["piece length"];
    piece_length_2_pow_40: single_with("piece length", B::Int(1 << 40)), ["piece length"];
    pieces_not_a_multiple_of_20: with_hashes(|h| { h.pop(); }), ["pieces"];
    one_hash_too_many: with_hashes(|h| h.extend([0u8; 20])), ["pieces"];
    one_hash_too_few: with_hashes(|h| h.truncate(40)), ["pieces"];
    no_hashes: with_hashes(Vec::clear), ["pieces"];
    total_length_2_pow_60: single_with("length", B::Int(1 << 60)), ["length"];
    file_lengths_add_up_past_2_pow_50:
        files(vec![file(1 << 49, &["a"]), file(1 << 49, &["b"]), file(1, &["c"])]), ["length"];
    negative_file_length: single_with("length", B::Int(-1)), ["length"];
    zero_total_length: torrent(single_info().with("length", Some(B::Int(0))).with("pieces", Some(s("")))), ["length"];
    // Names and paths that would leave the download folder or cannot be files.
    path_with_dot_dot: files(vec![file(40_000, &["..", "escape.bin"])]), ["files[0].path", ".."];
    path_with_dot_dot_deeper:
        files(vec![file(30_000, &["a.bin"]), file(10_000, &["sub", "..", "..", "..", "x"])]), ["files[1].path", ".."];
    absolute_path_component: files(vec![file(40_000, &["/tmp/escape.bin"])]), ["files[0].path", "/tmp/escape.bin"];
    absolute_path_as_empty_first_component: files(vec![file(40_000, &["", "tmp", "escape.bin"])]), ["files[0].path"];
    empty_component_in_the_middle: files(vec![file(40_000, &["sub", "", "x.bin"])]), ["files[0].path"];
    empty_path: files(vec![file(40_000, &[])]), ["files[0].path"];
    backslash_in_component: files(vec![file(40_000, &["..\\escape.bin"])]), ["files[0].path"];
    dot_component: files(vec![file(40_000, &[".", "x.bin"])]), ["files[0].path"];
    name_is_dot_dot: single_with("name", s("..")), ["name"];
    name_is_absolute: single_with("name", s("/tmp/escape.bin")), ["name"];
    name_is_empty: single_with("name", s("")), ["name"];
    duplicate_paths: files(vec![file(20_000, &["a.bin"]), file(20_000, &["a.bin"])]), ["a.bin"];
    file_used_as_a_folder: files(vec![file(20_000, &["a"]), file(20_000, &["a", "b.bin"])]), ["a"];
}

#[test]
fn the_valid_torrents_used_as_a_base_are_accepted() {
    // The same writer and the same content, unchanged, make torrents that `shoal get`
    // accepts and completes from data already in place: the rejections above are caused by
    // the one thing each case changes.
    for (name, bytes, place) in [
        ("single", torrent(single_info()), vec![("base.bin", 0..LEN)]),
        ("multi", torrent(multi_info(None)), vec![("set/a.bin", 0..30_000), ("set/sub/b.bin", 30_000..LEN)]),
    ] {
        let case = Case::new(&format!("{name}.torrent"), &bytes);
        let content = test_bytes(LEN, 1);
        for (rel, range) in place {
            let path = case.out().join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, &content[range]).expect("write data");
        }
        let out = run(get_cmd(&case.torrent, &case.out(), &[], &[]), QUICK);
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.contains("resuming: 3 of 3 pieces already verified"), "{out:?}");
    }
}

#[test]
fn missing_torrent_file() {
    let dir = TempDir::new().expect("temp dir");
    let case = Case { torrent: dir.path().join("no-such.torrent"), dir };
    let out = run(get_cmd(&case.torrent, &case.out(), &[], &[]), QUICK);
    assert!(!case.out().exists(), "the -o folder was created");
    assert_input_error(&out, &[&case.torrent.display().to_string()]);
}

#[test]
fn folder_given_as_torrent() {
    let dir = TempDir::new().expect("temp dir");
    let folder = dir.path().join("a-folder.torrent");
    fs::create_dir(&folder).expect("mkdir");
    let out_dir = dir.path().join("out");
    let out = run(get_cmd(&folder, &out_dir, &[], &[]), QUICK);
    assert!(!out_dir.exists(), "the -o folder was created");
    assert_input_error(&out, &[&folder.display().to_string()]);
}

#[test]
fn existing_output_folder_stays_empty() {
    let case = Case::new("bad.torrent", &torrent(single_info().with("piece length", Some(B::Int(0)))));
    fs::create_dir(case.out()).expect("mkdir");
    let out = run(get_cmd(&case.torrent, &case.out(), &[], &[]), QUICK);
    assert_input_error(&out, &["bad.torrent", "piece length"]);
    assert_eq!(list_tree(&case.out()), Vec::<PathBuf>::new(), "nothing (not even .shoal) is created in -o");
}

#[test]
fn bad_peer_addresses() {
    let case = Case::new("ok.torrent", &torrent(single_info()));
    for peer in ["no-port-here", "127.0.0.1:99999", "127.0.0.1:", ":6881", "127.0.0.1:http", "[::1"] {
        case.assert_rejected(&["--peer", peer], &["--peer", peer]);
    }
}

/// `shoal get` with `--listen ADDR` instead of the usual `--listen 127.0.0.1:0`.
fn get_with_listen(case: &Case, listen: &str) -> std::process::Command {
    let mut cmd = shoal(["get"]);
    cmd.arg(&case.torrent).arg("-o").arg(case.out()).args(["--listen", listen]).current_dir(case.dir.path());
    cmd
}

#[test]
fn unparsable_listen_address() {
    let case = Case::new("ok.torrent", &torrent(single_info()));
    for listen in ["127.0.0.1", "127.0.0.1:99999", "localhost:x"] {
        let out = run(get_with_listen(&case, listen), QUICK);
        assert!(!case.out().exists(), "the -o folder was created: {out:?}");
        // clap's own error: what is wrong, and where to read more.
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: ") && first.contains("--listen") && first.contains(listen), "{out:?}");
        assert!(out.stderr.contains("--help"), "points to the help: {out:?}");
        assert!(!out.stderr.contains("panicked") && out.stdout.is_empty(), "{out:?}");
    }
}

#[test]
fn listen_port_in_use_fails_before_touching_the_output_folder() {
    let case = Case::new("ok.torrent", &torrent(single_info()));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(get_with_listen(&case, &addr), QUICK);
    // The address is well formed but cannot be used right now: a runtime failure (exit 1)
    // or bad input (exit 2) are both fair; what matters is a plain message naming the
    // address, and that nothing was written before the failure.
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() == 1 && lines[0].starts_with("shoal: ") && lines[0].contains(&addr), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(!case.out().exists(), "the -o folder was created although nothing could be downloaded: {out:?}");
}

#[test]
fn error_messages_do_not_repeat_their_cause() {
    // One case per kind of underlying error: a bencode error, an I/O error while scanning
    // for `create`, and a socket error.
    let case = Case::new("junk.torrent", b"junk");
    let not_bencode = run(get_cmd(&case.torrent, &case.out(), &[], &[]), QUICK);
    let mut create = shoal(["create"]);
    create.arg(case.dir.path().join("missing")).arg("-o").arg(case.dir.path().join("x.torrent"));
    let missing = run(create, QUICK);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let in_use = run(get_with_listen(&case, &taken.local_addr().expect("addr").to_string()), QUICK);
    let mut repeated = Vec::new();
    for out in [&not_bencode, &missing, &in_use] {
        assert!(!out.status.success(), "{out:?}");
        let line = out.stderr.lines().next().unwrap_or_default().to_owned();
        if let Some(clause) = support::repeated_clause(&line) {
            repeated.push(format!("{line}\n    (repeats {clause:?})"));
        }
    }
    assert!(repeated.is_empty(), "messages that print their cause twice:\n{}", repeated.join("\n"));
}

#[test]
fn malformed_magnet_links_name_what_is_wrong() {
    let dir = TempDir::new().expect("temp dir");
    let out_dir = dir.path().join("out");
    for (source, mention) in [
        ("magnet:?xt=urn:btih:0123456789abcdef", "hash"),
        ("magnet:?dn=no-hash", "xt"),
        ("magnet:?xt=urn:btih:zz23456789abcdef0123456789abcdef01234567", "hash"),
    ] {
        let mut cmd = shoal(["get", source, "-o"]);
        cmd.arg(&out_dir).args(["--listen", "127.0.0.1:0"]);
        let out = run(cmd, QUICK);
        assert_input_error(&out, &[mention]);
        assert!(!out_dir.exists(), "the -o folder was created");
    }
}

#[test]
fn unreachable_sources_fail_plainly_and_create_nothing() {
    let dir = TempDir::new().expect("temp dir");
    let out_dir = dir.path().join("out");
    // A URL nobody answers, and a magnet link whose only peer refuses connections.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/x.torrent");
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let magnet = format!("magnet:?xt=urn:btih:{hash}&x.pe=127.0.0.1:{port}");
    // A magnet's peers are retried until --timeout, as a .torrent's are.
    for (source, mention) in [(url.as_str(), url.as_str()), (magnet.as_str(), hash)] {
        let mut cmd = shoal(["get", source, "-o"]);
        cmd.arg(&out_dir).args(["--listen", "127.0.0.1:0", "--timeout", "3", "-q"]);
        let out = run(cmd, QUICK);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert!(lines.len() == 1 && lines[0].starts_with("shoal: ") && lines[0].contains(mention), "{out:?}");
        assert!(!out_dir.exists(), "the -o folder was created");
    }
}
