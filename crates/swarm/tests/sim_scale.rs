//! The swarm logic at scale, in virtual time: one seed and a thousand leechers with capped
//! uploads, and two hundred leechers that upload as fast as the seed. Every leecher must
//! complete, and distribution must stay within a floor of the Kumar-Ross bound (each floor is
//! below the figure measured; `cargo run --release -p shoal-swarm --example sim` reports the
//! figures, see the README).

use std::time::{Duration, Instant};

use shoal_swarm::sim::{SimConfig, run};

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn thousand_peers_all_complete_with_bounded_efficiency() {
    // A publisher with a slower uplink than the crowd's: the bound is F / u_s, so every
    // duplicate the seed sends costs time directly.
    let cfg = SimConfig {
        leechers: 1000,
        piece_length: 32 * 1024,
        seed_upload: 0.5 * MIB,
        leecher_upload: 1.0 * MIB,
        max_connections: 30,
        latency: Duration::from_millis(10),
        ..Default::default()
    };
    let started = Instant::now();
    let report = run(&cfg);
    let eta = report.eta().unwrap_or(0.0);
    println!(
        "1000 peers: T = {:?}, T_min = {:?}, eta = {eta:.3}, seed copies {:.2}, leecher upload use {:.2}, \
         {} events in {:?}",
        report.all_done,
        report.t_min,
        report.seed_copies,
        report.leecher_utilization,
        report.events,
        started.elapsed()
    );
    assert_eq!(report.completion.len(), 1000);
    assert!(report.all_done.is_some(), "every leecher completes");
    assert_eq!(report.hash_failures, 0);
    assert!(eta >= 0.6, "eta {eta:.3} fell below the floor");
    assert!(report.seed_copies < 1.5, "initial seeding keeps the seed's duplicates down: {:.2}", report.seed_copies);
}

#[test]
fn two_hundred_peers_that_upload_as_fast_as_the_seed_pass_pieces_on_at_once() {
    // F / u_s equals N·F / (u_s + Σu_i): every second a leecher's upload waits costs the whole
    // swarm, so this checks that leechers keep trading (0.898 when written, 0.924 since a seed
    // unchokes 6 peers instead of 4; 0.77 when spare unchoke slots went to the peers that
    // connected first). The floor is the target for this case.
    let cfg = SimConfig {
        leechers: 200,
        file_size: 32 * 1024 * 1024,
        piece_length: 64 * 1024,
        seed_upload: 2.0 * MIB,
        leecher_upload: 2.0 * MIB,
        max_connections: 40,
        latency: Duration::from_millis(10),
        ..Default::default()
    };
    let report = run(&cfg);
    let eta = report.eta().unwrap_or(0.0);
    println!(
        "200 equal peers: T = {:?}, T_min = {:?}, eta = {eta:.3}, leecher upload use {:.3}, seed copies {:.2}",
        report.all_done, report.t_min, report.leecher_utilization, report.seed_copies
    );
    assert!(report.all_done.is_some(), "every leecher completes");
    assert!(eta >= 0.9, "eta {eta:.3} fell below the floor");
}
