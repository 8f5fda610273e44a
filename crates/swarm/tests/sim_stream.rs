//! Streaming in virtual time: a player on one leecher reads the file at a fixed bitrate while
//! it downloads, and the swarm's deadlines must keep it fed: with a seed that uploads 1.25
//! times the bitrate it starts within the time its startup buffer takes and never stalls.

use std::time::Duration;

use shoal_swarm::sim::{SimConfig, StreamConfig, run};

const MIB: f64 = 1024.0 * 1024.0;

fn case(
    leechers: usize,
    seed_upload: f64,
    leecher_upload: f64,
    initial_seeding: bool,
) -> shoal_swarm::sim::StreamReport {
    let bitrate = 0.5 * MIB;
    let cfg = SimConfig {
        file_size: 32 << 20,
        piece_length: 256 * 1024,
        leechers,
        seed_upload: seed_upload * bitrate,
        leecher_upload: leecher_upload * bitrate,
        latency: Duration::from_millis(20),
        max_connections: 30,
        stream: Some(StreamConfig { bitrate, startup: Duration::from_secs(2) }),
        swarm: shoal_swarm::Config { initial_seeding, ..Default::default() },
        ..Default::default()
    };
    let report = run(&cfg);
    let stream = report.stream.clone().expect("a player ran");
    println!(
        "{leechers} leechers, seed {seed_upload} x bitrate, peers {leecher_upload} x: first frame {:?}, {} stalls \
         ({:?}), all done {:?}",
        stream.first_frame, stream.stalls, stream.stalled, report.all_done
    );
    assert!(report.all_done.is_some(), "every leecher completes");
    stream
}

#[test]
fn a_player_alone_with_a_seed_at_one_and_a_quarter_times_its_bitrate_never_stalls() {
    // Initial seeding shows a lone peer everything, so it changes nothing here.
    let s = case(1, 1.25, 1.0, true);
    assert_eq!((s.stalls, s.stalled), (0, Duration::ZERO), "{s:?}");
    // The startup buffer (1 MiB) at 0.625 MiB/s takes 1.6 s, plus round trips.
    assert!(s.first_frame.is_some_and(|t| t < Duration::from_secs(3)), "{s:?}");
}
