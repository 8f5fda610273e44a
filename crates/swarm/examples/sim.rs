//! Runs the swarm simulator once and prints its report.
//!
//! `cargo run --release -p shoal-swarm --example sim -- [--peers N] [--size MIB] [--piece KIB]
//! [--seed-up MIB/S] [--peer-up MIB/S] [--latency MS] [--connections N]
//! [--initial-seeding 0|1] [--capped 0|1] [--slots N] [--seed-slots N] [--min-queue N] [--queue-time S]
//! [--rechoke S] [--optimistic S] [--seed N] [--timeline 1]` (`--seed N` varies every random
//! choice, for a mean over several runs; `--timeline 1` also prints the upload used in each
//! second; `--capped 1` sets every node's upload cap to its link, as a user who set
//! `--upload-limit` to the line's speed)
//!
//! Two regimes worth running (release build):
//! - the seed is the bottleneck (its uplink is slower than each peer's), as in the suite's
//!   thousand-peer test: `--peers 1000 --seed-up 0.5 --peer-up 1 --piece 32 --connections 30`;
//! - every node uploads as fast as the seed, so the leechers must upload nearly all the time:
//!   `--peers 200 --size 32 --piece 64 --seed-up 2 --peer-up 2 --connections 40` (in the suite)
//!   and `--peers 1000` with the same flags (about 70 s, so not in the suite).

use std::time::{Duration, Instant};

use shoal_swarm::sim::{SimConfig, run};

fn main() {
    let mut cfg = SimConfig::default();
    let mut timeline = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            eprintln!("sim: {} needs a value", pair[0]);
            std::process::exit(2);
        };
        let Ok(v) = value.parse::<f64>() else {
            eprintln!("sim: {flag}: not a number: {value}");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--peers" => cfg.leechers = v as usize,
            "--size" => cfg.file_size = (v * 1048576.0) as u64,
            "--piece" => cfg.piece_length = (v * 1024.0) as u32,
            "--seed-up" => cfg.seed_upload = v * 1048576.0,
            "--peer-up" => cfg.leecher_upload = v * 1048576.0,
            "--latency" => cfg.latency = Duration::from_secs_f64(v / 1000.0),
            "--connections" => cfg.max_connections = v as usize,
            "--initial-seeding" => cfg.swarm.initial_seeding = v != 0.0,
            "--slots" => cfg.swarm.unchoke_slots = v as usize,
            "--seed-slots" => cfg.swarm.seed_unchoke_slots = v as usize,
            "--min-queue" => cfg.swarm.min_queue = v as usize,
            "--queue-time" => cfg.swarm.queue_time = Duration::from_secs_f64(v),
            "--rechoke" => cfg.swarm.rechoke_interval = Duration::from_secs_f64(v),
            "--timeline" => timeline = v != 0.0,
            "--optimistic" => cfg.swarm.optimistic_interval = Duration::from_secs_f64(v),
            "--capped" => cfg.capped = v != 0.0,
            "--seed" => cfg.swarm.seed = v as u64,
            _ => {
                eprintln!("sim: unknown flag {flag}");
                std::process::exit(2);
            }
        }
    }
    let started = Instant::now();
    let r = run(&cfg);
    if let Some(t) = r.all_done {
        let peers_sent = r.leecher_utilization * cfg.leecher_upload * t.as_secs_f64() * cfg.leechers as f64;
        let total = peers_sent + r.seed_copies * cfg.file_size as f64;
        println!("copies received per peer {:.3}", total / (cfg.leechers as f64 * cfg.file_size as f64));
    }
    let mut done: Vec<f64> = r.completion.iter().flatten().map(|d| d.as_secs_f64()).collect();
    done.sort_by(f64::total_cmp);
    let q = |f: f64| done.get(((done.len() as f64 - 1.0) * f) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "peers {} size {} MiB piece {} KiB: T_min {:.2}s T {:?} eta {:.3}",
        cfg.leechers,
        cfg.file_size >> 20,
        cfg.piece_length >> 10,
        r.t_min.as_secs_f64(),
        r.all_done.map(|d| d.as_secs_f64()),
        r.eta().unwrap_or(0.0)
    );
    println!(
        "completion first {:.2}s median {:.2}s p90 {:.2}s last {:.2}s; leecher upload use {:.3}; seed copies {:.2}; \
         {} events in {:.1?}",
        q(0.0),
        q(0.5),
        q(0.9),
        q(1.0),
        r.leecher_utilization,
        r.seed_copies,
        r.events,
        started.elapsed()
    );
    println!("seed sent every block once by {:?}", r.seed_first_copy.map(|d| d.as_secs_f64()));
    if timeline {
        for (s, (seed, peers)) in r.timeline.iter().enumerate() {
            println!("{s:>4}s seed {seed:.2} peers {peers:.2}");
        }
    }
}
