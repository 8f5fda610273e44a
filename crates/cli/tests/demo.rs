//! `shoal demo` runs a whole local swarm and checks every copy itself; this test runs a small
//! one and holds it to its word: exit 0, every peer's digest printed and equal to the original.

use std::process::Command;
use std::time::Duration;

use shoal_testkit::{TempDir, run_captured};

#[test]
fn demo_swarm_completes_and_every_copy_matches() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(["demo", "--size", "8", "--peers", "3", "--dir"]).arg(dir.path());
    let out = run_captured(cmd, Duration::from_secs(120)).expect("demo runs").ok().expect("demo exits 0");
    let original = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("every copy matched the original ("))
        .and_then(|rest| rest.strip_suffix(")."))
        .expect("demo reports the original digest")
        .to_string();
    let digests: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("peer ") && l.ends_with("matches the original"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(digests.len(), 3, "one line per peer:\n{}", out.stdout);
    assert!(digests.iter().all(|d| *d == original), "{}", out.stdout);
    // The copies are really on disk and identical to the seed's data.
    let seed = std::fs::read(dir.path().join("seed/shoal-demo.bin")).expect("seed data");
    assert_eq!(seed.len(), 8 << 20);
    for i in 1..=3 {
        let copy = std::fs::read(dir.path().join(format!("peer{i}/shoal-demo.bin"))).expect("peer copy");
        assert!(copy == seed, "peer {i}'s copy differs");
    }
}
