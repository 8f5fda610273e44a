//! Measures `shoal create` hashing throughput on a real file (served from the page cache
//! after it is written), next to raw single-core SHA-1 speed.
//!
//! Run: `cargo run --release -p shoal-storage --example hash_speed [MiB] [piece KiB]`
//! (defaults: 512 MiB, 1024 KiB pieces). The file lives in a temporary folder and is removed.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(Ok(512), |a| a.parse())?;
    let piece_kib: u32 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("content.bin");

    // Non-zero pseudo-random content, written in 4 MiB chunks.
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 4 << 20];
    for _ in 0..(mib * (1 << 20)).div_ceil(chunk.len() as u64) {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    file.into_inner()?.sync_all()?;

    let sample = &chunk[..];
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed().as_millis() < 1_000 {
        std::hint::black_box(shoal_storage::hash_piece_data(sample));
        rounds += 1;
    }
    let raw = (rounds * sample.len() as u64) as f64 / start.elapsed().as_secs_f64() / 1e6;
    println!("raw SHA-1, one core, from memory: {raw:.0} MB/s");

    let scanned = shoal_storage::scan_path(&path)?;
    for run in 1..=3 {
        let start = Instant::now();
        let hashes = shoal_storage::hash_pieces(&scanned.parent, &scanned, piece_kib * 1024, |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        let rate = scanned.total_length() as f64 / secs / 1e6;
        println!(
            "run {run}: hash_pieces {} MiB, {} pieces of {piece_kib} KiB: {secs:.3} s, {rate:.0} MB/s",
            mib,
            hashes.len()
        );
    }
    Ok(())
}
