//! The swarm logic at scale: one seed and a thousand leechers with capped uploads, in virtual
//! time. Every leecher must complete, and distribution must stay within a floor of the
//! Kumar-Ross bound (the floor is well below the target; the benchmark reports the figure).

use std::time::Instant;

use shoal_swarm::sim::{SimConfig, run};

#[test]
fn thousand_peers_all_complete_with_bounded_efficiency() {
    let cfg = SimConfig { leechers: 1000, ..Default::default() };
    let started = Instant::now();
    let report = run(&cfg);
    let eta = report.eta().unwrap_or(0.0);
    println!(
        "1000 peers: T = {:?}, T_min = {:?}, eta = {eta:.3}, leecher upload use {:.2}, {} events in {:?}",
        report.all_done,
        report.t_min,
        report.leecher_utilization,
        report.events,
        started.elapsed()
    );
    assert_eq!(report.completion.len(), 1000);
    assert!(report.all_done.is_some(), "every leecher completes");
    assert_eq!(report.hash_failures, 0);
    assert!(eta >= 0.3, "eta {eta:.3} fell below the floor");
}
