//! Resuming downloads: `shoal get` killed with SIGKILL in the middle of a download continues
//! from the pieces it had verified, and a finished download run again completes at once
//! from local data, without any peer.

#[path = "support/shoal.rs"]
mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_testkit::{TempDir, assert_same_tree, make_test_file, wait_until};
use support::{DOWNLOAD, MIB, QUICK, Seed, complete_line, info_hash_hex, resuming, spawn_get};

/// The pieces a Shoal resume file records as verified, and the torrent's piece count; `None`
/// while the file is missing or not (yet) a complete resume file.
///
/// Format version 1 (see `shoal_storage::resume`): magic `SHOALRES`, version u32, fingerprint
/// 20 bytes, piece length u32, piece count u32, file count u64 (all little-endian), 20 bytes
/// per file, then the bitfield (piece 0 in the high bit of byte 0) and a 20-byte checksum.
fn resume_progress(path: &Path) -> Option<(u32, u32)> {
    let bytes = std::fs::read(path).ok()?;
    assert!(bytes.len() < 48 || &bytes[..8] == b"SHOALRES", "{} is not a resume file", path.display());
    let version = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    assert_eq!(version, 1, "this test reads version 1 resume files; {} has version {version}", path.display());
    let pieces = u32::from_le_bytes(bytes.get(36..40)?.try_into().ok()?);
    let files = u64::from_le_bytes(bytes.get(40..48)?.try_into().ok()?);
    let start = 48 + 20 * files as usize;
    let bits = bytes.get(start..start + pieces.div_ceil(8) as usize)?;
    Some((bits.iter().map(|b| b.count_ones()).sum(), pieces))
}

#[test]
fn kill_9_in_the_middle_then_resume() {
    let started = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/big.bin");
    let size = 64 * MIB;
    make_test_file(&data, size, 21);
    let torrent = dir.path().join("big.torrent");
    // 8 MiB/s: the download takes about 8 s, long enough to interrupt it half way.
    let seed = Seed::start("seed", &data, &torrent, &["--upload-limit", "8M"]);

    let out = dir.path().join("leech");
    let mut first = spawn_get("first-run", &torrent, &out, &[seed.addr], &[]);
    let resume_file = out.join(".shoal").join(format!("{}.resume", info_hash_hex(&first)));
    // Wait until the resume data vouches for at least a quarter of the pieces, then kill.
    let mut recorded = (0, 0);
    wait_until(DOWNLOAD, Duration::from_millis(20), || {
        if let Some((have, total)) = resume_progress(&resume_file) {
            recorded = (have, total);
            return have * 4 >= total;
        }
        false
    })
    .unwrap_or_else(|e| panic!("{}", first.explain(&format!("resume data never reached a quarter: {e}"))));
    let (recorded_have, pieces) = recorded;
    assert!(recorded_have < pieces, "the download finished before it could be interrupted");
    let killed = Command::new("sh").args(["-c", &format!("kill -KILL {}", first.id())]).status().expect("run kill");
    assert!(killed.success());
    let status = first.wait_exit(QUICK).expect("the first run dies");
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
    assert!(first.stdout_lines().iter().all(|l| !l.starts_with("complete: ")), "it was killed before completing");
    eprintln!("killed with {recorded_have} of {pieces} pieces recorded after {:.2?}", started.elapsed());

    // The same command again.
    let mut second = spawn_get("second-run", &torrent, &out, &[seed.addr], &[]);
    let done = complete_line(&second, DOWNLOAD);
    second.wait_success(QUICK).expect("the second run exits 0");
    let (have, of) = resuming(&second).expect("the second run says what it reused");
    assert_eq!(of, pieces);
    assert!(
        have >= recorded_have,
        "{have} pieces reused, but the resume file vouched for {recorded_have} before the kill"
    );
    assert!(done.fetched < size as f64, "fetched {} bytes again, the whole torrent is {size}", done.fetched);
    let reused = size as f64 - done.fetched;
    assert!(reused >= 0.9 * recorded_have as f64 * (size as f64 / pieces as f64), "{done:?}");
    assert_same_tree(&data, out.join("big.bin"));
    eprintln!(
        "resumed with {have} of {pieces} pieces, fetched {} MiB; {:.2?} in all",
        done.fetched / MIB as f64,
        started.elapsed()
    );
}

#[test]
fn finished_download_run_again_completes_without_any_peer() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/done.bin");
    let size = 8 * MIB + 5;
    make_test_file(&data, size, 22);
    let torrent = dir.path().join("done.torrent");
    let mut seed = Seed::start("seed", &data, &torrent, &[]);
    let out = dir.path().join("leech");
    let mut first = spawn_get("first-run", &torrent, &out, &[seed.addr], &[]);
    first.wait_success(DOWNLOAD).expect("the first run completes");
    let hex = info_hash_hex(&first);
    assert!(out.join(".shoal").join(format!("{hex}.resume")).is_file(), "resume data is saved");
    assert!(seed.stop().success());

    // No seed, no --peer, no trackers: only local data.
    let started = Instant::now();
    let mut again = spawn_get("again", &torrent, &out, &[], &[]);
    let done = complete_line(&again, QUICK);
    again.wait_success(QUICK).expect("exits 0");
    let took = started.elapsed();
    let (have, of) = resuming(&again).expect("it says it reused the data");
    assert_eq!(have, of, "every piece is verified");
    assert_eq!(done.fetched, 0.0, "{done:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_same_tree(&data, out.join("done.bin"));
    eprintln!("second run of a finished download: {took:.2?}");
}
