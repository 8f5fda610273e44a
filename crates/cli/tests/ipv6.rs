//! IPv6 on `::1`, against libtorrent 2.1 (bound to `::1` only) and through the built-in
//! tracker listening on `::1` (its compact `peers6` answers, BEP 7):
//!
//! - Shoal downloads from a libtorrent seed, and libtorrent from a Shoal seed, dialling `[::1]`;
//! - a libtorrent leecher and a Shoal leecher told only the tracker find a Shoal seed through it;
//! - peer exchange (BEP 11) passes IPv6 addresses on (`added6`): a leecher told only another
//!   leecher dials the seed it learns of.
//!
//! Every transfer ends with a byte-for-byte comparison against the original data.

#[path = "support/interop.rs"]
mod interop;

use std::path::Path;

use interop::{
    NO_DISCOVERY, START_TIMEOUT, TRANSFER_TIMEOUT, ok, shoal, shoal_create, stop_cleanly, wait_get_complete,
};
use shoal_testkit::{
    Proc, TempDir, assert_same_tree, ensure_tools, lt_create, make_test_file, python_lt, spawn_lt_seed,
};

const MIB: u64 = 1024 * 1024;
const V6_ANY: &str = "[::1]:0";

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-ipv6-").tempdir().expect("temporary folder")
}

fn spawn_lt_leech(torrent: &Path, save: &Path, extra: &[&str]) -> Proc {
    let mut cmd = python_lt(["leech", "--watch-stdin", "--bind", "::1", "--timeout"]);
    cmd.arg(TRANSFER_TIMEOUT.as_secs().to_string()).arg("--torrent").arg(torrent).arg("--save").arg(save).args(extra);
    ok(Proc::spawn("lt leech", cmd))
}

fn spawn_v6(name: &str, args: &[&str]) -> Proc {
    let mut cmd = shoal(args);
    cmd.args(["--listen", V6_ANY]).args(NO_DISCOVERY);
    ok(Proc::spawn(name, cmd))
}

/// A `shoal share` on `[::1]` and its address.
fn share_v6(data: &Path, torrent: &Path) -> (Proc, String) {
    share_v6_with(data, torrent, &[])
}

fn share_v6_with(data: &Path, torrent: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["share".to_string(), data.to_string_lossy().into_owned(), "-o".into()];
    args.push(torrent.to_string_lossy().into_owned());
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = spawn_v6("shoal share", &args);
    let ready = ok(proc.wait_for_line("ready: ", START_TIMEOUT));
    let addr = ready.split(" on ").nth(1).and_then(|r| r.split(';').next()).expect("address").to_string();
    assert!(addr.starts_with("[::1]:"), "{ready}");
    (proc, addr)
}

#[test]
fn shoal_and_libtorrent_move_data_both_ways_over_ipv6() {
    ensure_tools();
    let work = temp_dir();
    let file = work.path().join("src").join("six.bin");
    make_test_file(&file, 9 * MIB + 66, 61);
    let torrent = work.path().join("lt.torrent");
    ok(lt_create(&file, &torrent, &[]));
    let (_seed, port) = ok(spawn_lt_seed(&torrent, file.parent().expect("parent"), &["--bind", "::1"]));
    let out = work.path().join("out");
    let peer = format!("[::1]:{port}");
    let mut get =
        spawn_v6("shoal get", &["get", &torrent.to_string_lossy(), "-o", &out.to_string_lossy(), "--peer", &peer]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("six.bin"));

    let torrent = work.path().join("shoal.torrent");
    let (mut share, addr) = share_v6(&file, &torrent);
    let save = work.path().join("lt-out");
    let mut leech = spawn_lt_leech(&torrent, &save, &["--peer", &addr]);
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(&file, save.join("six.bin"));
    stop_cleanly(&mut share);
}

#[test]
fn leechers_find_a_seed_through_a_tracker_on_ipv6() {
    ensure_tools();
    let work = temp_dir();
    let tracker = ok(Proc::spawn("tracker", shoal(["tracker", "--listen", V6_ANY, "--interval", "1"])));
    let line = ok(tracker.wait_for_line("tracker listening on http://", START_TIMEOUT));
    let url = line.trim_start_matches("tracker listening on ").to_owned();
    assert!(url.starts_with("http://[::1]:"), "{url}");
    let file = work.path().join("src").join("tracked.bin");
    make_test_file(&file, 5 * MIB + 1, 62);
    let torrent = work.path().join("tracked.torrent");
    shoal_create(&file, &torrent, &["--tracker", &url]);
    let (mut share, _) = share_v6(&file, &torrent);
    // Told nothing but the torrent (whose only tracker is on ::1).
    let save = work.path().join("lt-out");
    let mut leech = spawn_lt_leech(&torrent, &save, &[]);
    let out = work.path().join("out");
    let mut get = spawn_v6("shoal get", &["get", &torrent.to_string_lossy(), "-o", &out.to_string_lossy()]);
    wait_get_complete(&mut get);
    assert_same_tree(&file, out.join("tracked.bin"));
    ok(leech.wait_success(TRANSFER_TIMEOUT + START_TIMEOUT));
    assert_same_tree(&file, save.join("tracked.bin"));
    stop_cleanly(&mut share);
}

/// A `shoal get` on `[::1]` with the engine's debug log, and its listen address.
fn get_v6_logged(name: &str, torrent: &Path, out: &Path, extra: &[&str]) -> (Proc, String) {
    let mut cmd = shoal(["get", &torrent.to_string_lossy(), "-o", &out.to_string_lossy(), "--no-trackers"]);
    cmd.args(["--listen", V6_ANY]).args(NO_DISCOVERY).args(extra).env("SHOAL_LOG", "info,shoal_engine=debug");
    let proc = ok(Proc::spawn(name, cmd));
    let line = ok(proc.wait_for_line("downloading ", START_TIMEOUT));
    let addr = line.rsplit("listening on ").next().unwrap_or_default().trim().to_string();
    assert!(addr.starts_with("[::1]:"), "{line}");
    (proc, addr)
}

#[test]
fn peer_exchange_passes_on_ipv6_addresses() {
    let work = temp_dir();
    let file = work.path().join("src").join("pex6.bin");
    make_test_file(&file, 8 * MIB, 63);
    let torrent = work.path().join("pex6.torrent");
    let (mut seed, s_addr) = share_v6_with(&file, &torrent, &["--upload-limit", "1M", "--piece-size", "64k"]);
    // A knows the seed and downloads slowly, so it is still there when D comes.
    let (_a, a_addr) =
        get_v6_logged("A", &torrent, &work.path().join("A"), &["--peer", &s_addr, "--download-limit", "500k"]);
    // D knows only A: A's peer exchange names the seed's IPv6 address.
    let out = work.path().join("D");
    let (mut d, _) = get_v6_logged("D", &torrent, &out, &["--peer", &a_addr]);
    // D dials the seed's address, which only A's peer exchange can have told it (the seed may
    // also dial D first, having heard of D from A the same way: then D's own connection is the
    // duplicate, and closed).
    let dialled_seed =
        |p: &Proc| p.output().lines().any(|l| l.contains("dialling") && l.contains(&format!("addr={s_addr}")));
    ok(shoal_testkit::wait_until(std::time::Duration::from_secs(60), std::time::Duration::from_millis(50), || {
        dialled_seed(&d)
    })
    .map_err(|e| d.explain(&format!("never dialled the seed {s_addr} ({e})"))));
    assert!(d.output().contains("peer exchange"), "{}", d.explain("no peer exchange message"));
    wait_get_complete(&mut d);
    assert_same_tree(&file, out.join("pex6.bin"));
    stop_cleanly(&mut seed);
}
