//! Streaming in virtual time: a player on one leecher reads the file at a fixed bitrate while
//! it downloads, and the swarm's deadlines must keep it fed: with a seed that uploads 1.25
//! times the bitrate it starts within the time its startup buffer takes and never stalls; among
//! ten leechers it uploads about as much as they do.

use std::time::Duration;

use shoal_swarm::sim::{SimConfig, StreamConfig, run};

const MIB: f64 = 1024.0 * 1024.0;

/// A 32 MiB file played at 0.5 MiB/s by leecher 1 among `leechers`; uploads as multiples of
/// the bitrate.
fn config(leechers: usize, seed_upload: f64, leecher_upload: f64, initial_seeding: bool) -> SimConfig {
    let bitrate = 0.5 * MIB;
    SimConfig {
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
    }
}

fn case(
    leechers: usize,
    seed_upload: f64,
    leecher_upload: f64,
    initial_seeding: bool,
) -> shoal_swarm::sim::StreamReport {
    let report = run(&config(leechers, seed_upload, leecher_upload, initial_seeding));
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

#[test]
fn a_player_among_ten_leechers_uploads_about_as_much_as_they_do() {
    // The streaming peer still fetches rarest-first outside its windows, so it has pieces the
    // others want and serves them like any leecher.
    let bitrate = 0.5 * MIB;
    let cfg = SimConfig {
        file_size: 16 << 20,
        piece_length: 256 * 1024,
        leechers: 10,
        seed_upload: 3.0 * bitrate,
        leecher_upload: bitrate,
        latency: Duration::from_millis(20),
        max_connections: 30,
        stream: Some(StreamConfig { bitrate, startup: Duration::from_secs(2) }),
        ..Default::default()
    };
    let report = run(&cfg);
    assert!(report.all_done.is_some(), "every leecher completes: {:?}", report.completion);
    let player = report.uploaded[0];
    let others = report.uploaded[1..].iter().sum::<f64>() / (report.uploaded.len() - 1) as f64;
    let ratio = player / others;
    println!("player uploaded {player:.0} bytes, the other leechers {others:.0} on average: {ratio:.2}");
    assert!((0.8..=1.25).contains(&ratio), "the player's upload is {ratio:.2} of the others'");
}

#[test]
fn a_player_among_ten_leechers_of_an_initial_seed_starts_within_seconds() {
    // The initial seed shows each peer a few rare pieces at a time, not the head of the file a
    // player waits for; the player names the pieces it needs (`shoal_wants`), is shown them
    // and unchoked first, and passes them on like any other pieces.
    let s = case(10, 3.0, 1.0, true);
    assert!(s.first_frame.is_some_and(|t| t < Duration::from_secs(5)), "{s:?}");
    assert!(s.stalled < Duration::from_secs(2), "{s:?}");
    // Without the extension the same player waits most of the download for its first frame.
    let without = run(&SimConfig { wants: false, ..config(10, 3.0, 1.0, true) });
    let late = without.stream.and_then(|s| s.first_frame).expect("a first frame");
    println!("without shoal_wants: first frame {late:?}");
    assert!(late > 4 * s.first_frame.unwrap_or_default(), "{late:?}");
}
