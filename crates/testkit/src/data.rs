//! Deterministic test data and byte-for-byte comparison of files and folder trees.
//!
//! Test content is a xorshift64 stream of little-endian `u64` words whose state is derived from
//! a seed, so the same `(size, seed)` always gives the same bytes, a shorter file is a prefix of
//! a longer one with the same seed, and different seeds give unrelated data. Generating it runs
//! at several GB/s, so tests can make files of hundreds of MiB without noticing.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Size of the buffers used to write and compare files.
const CHUNK: usize = 1 << 20;

/// The xorshift64 generator behind [`make_test_file`] and [`test_bytes`].
struct Xorshift {
    /// Never zero (a zero state would stay zero forever).
    state: u64,
}

impl Xorshift {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed spreads nearby seeds apart; `| 1` keeps the state non-zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Xorshift { state: (z ^ (z >> 31)) | 1 }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// Fills `buf` with the next bytes of the stream. Only the last call for a stream may pass a
    /// length that is not a multiple of 8 (the unused bytes of its last word are dropped).
    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let last = self.next().to_le_bytes();
            tail.copy_from_slice(&last[..tail.len()]);
        }
    }
}

/// Writes `size` bytes of deterministic pseudo-random data for `seed` to `path`, creating the
/// parent folders. The content equals [`test_bytes`]`(size, seed)`.
///
/// # Panics
/// When the file cannot be written (the message names the path).
pub fn make_test_file(path: impl AsRef<Path>, size: u64, seed: u64) {
    let path = path.as_ref();
    let write = || -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = File::create(path)?;
        let mut rng = Xorshift::new(seed);
        let mut buf = vec![0u8; CHUNK];
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            rng.fill(&mut buf[..n]);
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    };
    if let Err(e) = write() {
        panic!("cannot write test file {}: {e}", path.display());
    }
}

/// The first `len` bytes of the test data for `seed`, in memory.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Xorshift::new(seed).fill(&mut buf);
    buf
}

/// Reads until `buf` is full or the reader is at its end; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compares two files byte for byte, streaming. The error says why they differ: a file that
/// cannot be read, different sizes, or the offset of the first differing byte.
pub fn compare_files(a: impl AsRef<Path>, b: impl AsRef<Path>) -> Result<(), String> {
    let (a, b) = (a.as_ref(), b.as_ref());
    let open = |p: &Path| File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let len =
        |f: &File, p: &Path| f.metadata().map(|m| m.len()).map_err(|e| format!("cannot stat {}: {e}", p.display()));
    let (la, lb) = (len(&fa, a)?, len(&fb, b)?);
    if la != lb {
        return Err(format!("{} is {la} bytes but {} is {lb} bytes", a.display(), b.display()));
    }
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("reading {}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("reading {}: {e}", b.display()))?;
        if na != nb {
            return Err(format!(
                "{} and {} changed size while being compared (at offset {offset})",
                a.display(),
                b.display()
            ));
        }
        if let Some(i) = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y) {
            let at = offset + i as u64;
            return Err(format!(
                "{} and {} differ at byte {at} (in 16 KiB block {})",
                a.display(),
                b.display(),
                at / 16384
            ));
        }
        if na == 0 {
            return Ok(());
        }
        offset += na as u64;
    }
}

/// True when both files can be read and hold the same bytes.
pub fn files_equal(a: impl AsRef<Path>, b: impl AsRef<Path>) -> bool {
    compare_files(a, b).is_ok()
}

/// Every regular file under `root`, as paths relative to it, sorted.
fn tree_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let kind = entry.file_type().map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            let child = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Asserts that `b` holds exactly the same files as `a` with the same bytes. Both may be single
/// files or folders; for folders, every file under `a` must exist under `b` at the same relative
/// path and no other file may exist under `b`.
///
/// # Panics
/// With a message naming the first missing, extra or differing file (and the differing offset).
pub fn assert_same_tree(a: impl AsRef<Path>, b: impl AsRef<Path>) {
    let (a, b) = (a.as_ref(), b.as_ref());
    if let Err(e) = same_tree(a, b) {
        panic!("{} and {} are not the same: {e}", a.display(), b.display());
    }
}

fn same_tree(a: &Path, b: &Path) -> Result<(), String> {
    if !a.is_dir() {
        return compare_files(a, b);
    }
    let (fa, fb) = (tree_files(a)?, tree_files(b)?);
    let missing: Vec<_> = fa.iter().filter(|p| !fb.contains(p)).collect();
    let extra: Vec<_> = fb.iter().filter(|p| !fa.contains(p)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!("missing from the second: {missing:?}; only in the second: {extra:?}"));
    }
    for rel in &fa {
        compare_files(a.join(rel), b.join(rel))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_data_is_deterministic_and_prefix_stable() {
        let dir = TempDir::new().expect("temp dir");
        let (p1, p2, p3) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        let size = 3 * CHUNK as u64 + 12_345; // spans chunks and ends inside a word
        make_test_file(&p1, size, 7);
        make_test_file(&p2, size, 7);
        make_test_file(&p3, size, 8);
        assert!(files_equal(&p1, &p2));
        assert!(!files_equal(&p1, &p3));
        let bytes = fs::read(&p1).expect("read");
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(bytes, test_bytes(size as usize, 7));
        assert_eq!(test_bytes(1000, 7), bytes[..1000]);
        // Not trivially repetitive: the bytes are spread over all values.
        let distinct: std::collections::HashSet<u8> = bytes[..4096].iter().copied().collect();
        assert!(distinct.len() > 200);
    }

    #[test]
    fn seed_zero_and_empty_files_work() {
        assert!(test_bytes(64, 0).iter().any(|&b| b != 0));
        let dir = TempDir::new().expect("temp dir");
        let p = dir.path().join("sub/empty");
        make_test_file(&p, 0, 1);
        assert_eq!(fs::metadata(&p).expect("stat").len(), 0);
    }

    #[test]
    fn compare_reports_size_and_first_difference() {
        let dir = TempDir::new().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut data = test_bytes(2 * CHUNK + 10, 3);
        fs::write(&a, &data).expect("write");
        data[CHUNK + 5] ^= 1;
        fs::write(&b, &data).expect("write");
        let err = compare_files(&a, &b).expect_err("they differ");
        assert!(err.contains(&format!("differ at byte {}", CHUNK + 5)), "{err}");
        fs::write(&b, &data[..10]).expect("write");
        let err = compare_files(&a, &b).expect_err("sizes differ");
        assert!(err.contains("bytes but"), "{err}");
        assert!(!files_equal(&a, dir.path().join("missing")));
    }

    #[test]
    fn same_tree_accepts_copies_and_names_differences() {
        let dir = TempDir::new().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for root in [&a, &b] {
            make_test_file(root.join("x"), 1000, 1);
            make_test_file(root.join("d/y"), 5000, 2);
        }
        assert_same_tree(&a, &b);
        assert_same_tree(a.join("x"), b.join("x"));
        make_test_file(b.join("d/z"), 1, 3);
        let err = same_tree(&a, &b).expect_err("extra file");
        assert!(err.contains("z"), "{err}");
        fs::remove_file(b.join("d/z")).expect("rm");
        make_test_file(b.join("d/y"), 5000, 9);
        let err = same_tree(&a, &b).expect_err("different content");
        assert!(err.contains("differ at byte"), "{err}");
    }

    use tempfile::TempDir;
}
