//! Finding peers with nothing but an info-hash, end to end on 127.0.0.1: the DHT (BEP 5) across
//! Shoal and libtorrent in both directions, and peer exchange (BEP 11) among Shoal nodes.
//!
//! - `libtorrent_finds_a_shoal_seed_through_shoal_dht_only`: libtorrent, whose DHT knows only a
//!   Shoal node, turns a bare magnet link into the data a Shoal seed announced there.
//! - `shoal_finds_a_libtorrent_seed_by_magnet_through_libtorrent_dht`: the other way round;
//!   prints how long `shoal get` took to the metadata and to completion.
//! - `pex_teaches_a_peer_the_rest_of_a_five_peer_swarm`: a peer that knows one leecher of a
//!   five-peer swarm learns the seed and the other leechers from that leecher's peer exchange.
//! - `private_torrent_does_not_exchange_peers`: the same shape with a private torrent (BEP 27):
//!   the newcomer stays with the one peer it was given.
//!
//! Every node with a DHT gets `--dht-bootstrap` pointing at local nodes only and a data folder
//! (`XDG_DATA_HOME`, `HOME`) of its own, so no test touches the public DHT or another test's
//! routing table. Waits are bounded and poll a condition; the only negative wait (nothing
//! happens within a few seconds) is in the private-torrent test and is short.

#[path = "support/shoal.rs"]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_proto::magnet::Magnet;
use shoal_testkit::{
    Proc, TempDir, assert_same_tree, ensure_tools, free_port, lt_create, lt_info_hash, make_test_file, python_lt,
    wait_until,
};
use support::{DOWNLOAD, MIB, QUICK, SEED_READY, STOP_GRACE, Seed, complete_line, get_cmd, listen_addr, log_lines};

/// Engine logs at debug (peer connections, peer exchange, DHT lookups), the rest at info.
const DEBUG_LOG: &str = "info,shoal_engine=debug";
/// How often log conditions are polled.
const POLL: Duration = Duration::from_millis(50);
/// How long a DHT announce or lookup on loopback may take (every node answers at once).
const DHT_STEP: Duration = Duration::from_secs(60);
/// How long after connecting a peer exchange message may take to arrive: the first one is sent
/// 5 s after a connection opens; the rest is slack for a busy machine.
const PEX_WAIT: Duration = Duration::from_secs(30);
/// How long the private-torrent test watches for connections that must not happen: twice the
/// 5 s delay of a first peer exchange message.
const PRIVATE_WATCH: Duration = Duration::from_secs(10);

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `shoal ARGS...` with its DHT node on (LSD off), data folder `home` and debug engine logs.
fn shoal_dht_cmd(args: &[&str], home: &Path) -> Command {
    let mut cmd = support::shoal_with_dht(args);
    cmd.env("HOME", home).env("XDG_DATA_HOME", home.join("data")).env("SHOAL_LOG", DEBUG_LOG);
    cmd
}

/// The address in the `dht: node on IP:PORT` line; the node must be on 127.0.0.1, the IP of
/// `--listen`.
fn dht_addr(proc: &Proc) -> SocketAddr {
    let line = ok(proc.wait_for_line("dht: node on ", QUICK));
    let addr: SocketAddr = line["dht: node on ".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", proc.explain(&format!("no address in {line:?}"))));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "the DHT node must bind the IP of --listen: {line}");
    assert_ne!(addr.port(), 0, "{line}");
    addr
}

/// `shoal share DATA -o TORRENT --listen 127.0.0.1:0 --dht-port 0 --dht-bootstrap BOOTSTRAP`,
/// ready; returns the node, its peer address, its DHT address and the torrent's info-hash.
fn share_with_dht(name: &str, data: &Path, torrent: &Path, bootstrap: SocketAddr, home: &Path) -> DhtSeed {
    let mut cmd = shoal_dht_cmd(&["share"], home);
    cmd.arg(data).arg("-o").arg(torrent);
    cmd.args(["--listen", "127.0.0.1:0", "--dht-port", "0", "--dht-bootstrap", &bootstrap.to_string()]);
    let proc = ok(Proc::spawn(name, cmd));
    let dht = dht_addr(&proc);
    let ready = ok(proc.wait_for_line("ready: ", SEED_READY));
    let addr = ready
        .split_once(" on ")
        .and_then(|(_, rest)| rest.split(';').next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", proc.explain(&format!("no address in {ready:?}"))));
    let magnet = ok(proc.wait_for_line("magnet: ", QUICK));
    let info_hash = Magnet::parse(&magnet["magnet: ".len()..])
        .unwrap_or_else(|e| panic!("shoal share printed a magnet link that does not parse ({e}): {magnet}"))
        .info_hash
        .to_hex()
        .to_ascii_lowercase();
    DhtSeed { proc, addr, dht, info_hash }
}

/// A `shoal share` node with its DHT on.
struct DhtSeed {
    proc: Proc,
    /// Where it accepts peers.
    addr: SocketAddr,
    /// Its DHT node's UDP address.
    dht: SocketAddr,
    /// The info-hash of what it shares, lowercase hex.
    info_hash: String,
}

/// The largest `announced: N` among the `lookup done` lines the node logged: how many nodes its
/// `get_peers` lookups sent `announce_peer` to.
fn announced(proc: &Proc) -> usize {
    log_lines(proc)
        .iter()
        .filter(|l| l.contains("lookup done"))
        .filter_map(|l| l.split_once("announced: ")?.1.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// A `peer connected` line: the address of the connection and whether we dialled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Connection {
    addr: SocketAddr,
    outgoing: bool,
}

/// Every connection the node logged as `peer connected addr=A outgoing=B`.
fn connections(proc: &Proc) -> Vec<Connection> {
    let field = |line: &str, key: &str| -> Option<String> {
        let rest = &line[line.find(key)? + key.len()..];
        Some(rest.split_whitespace().next()?.to_owned())
    };
    log_lines(proc)
        .iter()
        .filter_map(|l| l.split_once("peer connected").map(|(_, rest)| rest.to_owned()))
        .filter_map(|rest| {
            let addr = field(&rest, "addr=")?.parse().ok()?;
            let outgoing = field(&rest, "outgoing=")? == "true";
            Some(Connection { addr, outgoing })
        })
        .collect()
}

/// Whether the node dialled `addr` and completed the handshakes.
fn dialled(proc: &Proc, addr: SocketAddr) -> bool {
    connections(proc).contains(&Connection { addr, outgoing: true })
}

/// How many peer exchange messages the node received.
fn pex_received(proc: &Proc) -> usize {
    log_lines(proc).iter().filter(|l| l.contains("peer exchange")).count()
}

/// Starts `shoal get TORRENT --peer P...` (no DHT, no LSD, no trackers in the torrent) with
/// debug engine logs and returns it with its peer address.
fn spawn_logged_get(
    name: &str,
    torrent: &Path,
    out: &Path,
    peers: &[SocketAddr],
    extra: &[&str],
) -> (Proc, SocketAddr) {
    let mut cmd = get_cmd(torrent, out, peers, extra);
    cmd.env("SHOAL_LOG", DEBUG_LOG);
    let proc = ok(Proc::spawn(name, cmd));
    let addr = listen_addr(&proc);
    (proc, addr)
}

#[test]
fn libtorrent_finds_a_shoal_seed_through_shoal_dht_only() {
    ensure_tools();
    let dir = TempDir::new().expect("temp dir");
    // The bootstrap node B: a Shoal node sharing something else. Its own bootstrap address is
    // a local socket that never answers, so B only ever learns the nodes that contact it.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind a silent UDP socket");
    let silent_addr = silent.local_addr().expect("address");
    let other = dir.path().join("b/other.bin");
    make_test_file(&other, 40_000, 90);
    let b = share_with_dht(
        "B (DHT bootstrap)",
        &other,
        &dir.path().join("other.torrent"),
        silent_addr,
        &dir.path().join("home-b"),
    );

    // The seed S announces its torrent through B.
    let data = dir.path().join("seed/dht-film.bin");
    make_test_file(&data, 6 * MIB + 4_321, 91);
    let seed = share_with_dht("S (seed)", &data, &dir.path().join("film.torrent"), b.dht, &dir.path().join("home-s"));
    assert_ne!(seed.info_hash, b.info_hash);
    ok(wait_until(DHT_STEP, POLL, || announced(&seed.proc) >= 1)
        .map_err(|e| seed.proc.explain(&format!("the seed never announced its torrent on the DHT ({e})"))));

    // libtorrent knows nothing but the info-hash and B.
    let started = Instant::now();
    let save = dir.path().join("lt-out");
    let magnet = format!("magnet:?xt=urn:btih:{}", seed.info_hash);
    let mut cmd = python_lt(["leech", "--watch-stdin", "--timeout", &DOWNLOAD.as_secs().to_string()]);
    cmd.args(["--magnet", &magnet, "--dht-bootstrap", &b.dht.to_string()]).arg("--save").arg(&save);
    let mut leech = ok(Proc::spawn("lt leech", cmd));
    let meta = ok(leech.wait_for_line("METADATA ", DOWNLOAD));
    let meta_at = started.elapsed();
    let leeching = ok(leech.wait_for_line("leeching ", QUICK));
    assert!(leeching.ends_with(&format!("info-hash {}", seed.info_hash)), "{leeching}");
    ok(leech.wait_for_line("DONE ", DOWNLOAD));
    let done_at = started.elapsed();
    ok(leech.wait_success(QUICK));
    assert_same_tree(&data, save.join("dht-film.bin"));
    // The peer came from a DHT reply (libtorrent had no other source).
    let from_dht = leech.stdout_lines().iter().any(|l| l.starts_with("alert dht_reply: ") && !l.ends_with("peers: 0"));
    assert!(from_dht, "{}", leech.explain("libtorrent reported no peers from the DHT"));
    // The data came from S: libtorrent dialled it (an incoming connection on S's side).
    assert!(
        connections(&seed.proc).iter().any(|c| !c.outgoing),
        "{}",
        seed.proc.explain("libtorrent never connected to the seed")
    );
    println!(
        "libtorrent via Shoal's DHT found the seed on {}: metadata after {meta_at:.2?} ({meta}), download done \
         after {done_at:.2?} (process start included)",
        seed.addr
    );
    for mut node in [seed.proc, b.proc] {
        ok(node.terminate(STOP_GRACE));
    }
}

#[test]
fn shoal_finds_a_libtorrent_seed_by_magnet_through_libtorrent_dht() {
    ensure_tools();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/lt-film.bin");
    make_test_file(&data, 8 * MIB + 1_234, 92);
    let torrent = dir.path().join("lt.torrent");
    ok(lt_create(&data, &torrent, &[]));
    let hash = ok(lt_info_hash(&torrent));

    // libtorrent's DHT runs on its listen port; bootstrapped from itself it stores its own
    // announce, so it is a one-node DHT that knows the seed.
    let port = free_port();
    let lt_node = format!("127.0.0.1:{port}");
    let mut cmd = python_lt(["seed", "--watch-stdin", "--listen", &port.to_string(), "--dht-bootstrap", &lt_node]);
    cmd.arg("--torrent").arg(&torrent).arg("--save").arg(data.parent().expect("parent"));
    let mut lt_seed = ok(Proc::spawn("lt seed", cmd));
    let ready = ok(lt_seed.wait_for_line("READY ", SEED_READY));
    assert_eq!(ready, format!("READY {port}"), "libtorrent listens on another port than asked");
    let stored = format!("alert dht_announce: incoming dht announce: {lt_node} ({hash})");
    ok(lt_seed.wait_for_line(&stored, DHT_STEP));

    let home = dir.path().join("home");
    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let mut cmd = shoal_dht_cmd(&["get", &magnet], &home);
    cmd.arg("-o").arg(&out);
    cmd.args(["--listen", "127.0.0.1:0", "--dht-port", "0", "--dht-bootstrap", &lt_node]);
    let started = Instant::now();
    let mut get = ok(Proc::spawn("shoal get", cmd));
    dht_addr(&get);
    let meta = ok(get.wait_for_line("metadata: ", DOWNLOAD));
    let meta_at = started.elapsed();
    assert!(meta.starts_with("metadata: lt-film.bin ("), "{meta}");
    complete_line(&get, DOWNLOAD);
    let done_at = started.elapsed();
    ok(get.wait_success(QUICK));
    assert_same_tree(&data, out.join("lt-film.bin"));
    println!(
        "shoal get magnet (DHT only, libtorrent's node): metadata line after {meta_at:.2?}, complete line after \
         {done_at:.2?} (8 MiB; process start included)"
    );
    ok(lt_seed.terminate(STOP_GRACE));
}

/// The same over IPv6 (BEP 32): libtorrent bound to `::1` runs its DHT there, and Shoal listening
/// on `[::1]` runs an IPv6 DHT node that finds the seed through it.
#[test]
fn shoal_finds_a_libtorrent_seed_through_libtorrent_dht_over_ipv6() {
    ensure_tools();
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/six-film.bin");
    make_test_file(&data, 3 * MIB + 6, 96);
    let torrent = dir.path().join("lt.torrent");
    ok(lt_create(&data, &torrent, &[]));
    let hash = ok(lt_info_hash(&torrent));
    let port = free_port();
    let lt_node = format!("[::1]:{port}");
    let mut cmd = python_lt(["seed", "--watch-stdin", "--bind", "::1", "--listen", &port.to_string()]);
    cmd.args(["--dht-bootstrap", &lt_node]).arg("--torrent").arg(&torrent).arg("--save");
    cmd.arg(data.parent().expect("parent"));
    let mut lt_seed = ok(Proc::spawn("lt seed", cmd));
    ok(lt_seed.wait_for_line("READY ", SEED_READY));
    ok(lt_seed.wait_for_line(&format!("alert dht_announce: incoming dht announce: ::1:{port} ({hash})"), DHT_STEP));

    let home = dir.path().join("home");
    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let mut cmd = shoal_dht_cmd(&["get", &magnet], &home);
    cmd.arg("-o").arg(&out);
    cmd.args(["--listen", "[::1]:0", "--dht-port", "0", "--dht-bootstrap", &lt_node]);
    let mut get = ok(Proc::spawn("shoal get", cmd));
    let line = ok(get.wait_for_line("dht: node on ", QUICK));
    assert!(line.starts_with("dht: node on [::1]:"), "the DHT node must bind ::1: {line}");
    ok(get.wait_for_line("metadata: ", DOWNLOAD));
    complete_line(&get, DOWNLOAD);
    ok(get.wait_success(QUICK));
    assert_same_tree(&data, out.join("six-film.bin"));
    ok(lt_seed.terminate(STOP_GRACE));
}

/// Seed S and leechers A, B and C of a rate-capped download (so the leechers are still
/// downloading, and connected to each other, when the test looks), with debug logs on the
/// leechers. The leechers are given S; in the private swarm A is also given B and C.
struct Swarm {
    dir: TempDir,
    data: std::path::PathBuf,
    torrent: std::path::PathBuf,
    seed: Seed,
    /// A, B, C with their peer addresses.
    leechers: Vec<(Proc, SocketAddr)>,
}

/// Size of the swarm's file. With the leechers' download cap it takes them over 100 s to
/// finish, far longer than the tests need them mid-download.
const SWARM_SIZE: u64 = 28 * MIB + 5_555;
/// The leechers' download cap.
const LEECHER_CAP: &str = "256k";

fn start_swarm(private: bool) -> Swarm {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("seed/swarm.bin");
    make_test_file(&data, SWARM_SIZE, if private { 94 } else { 93 });
    let torrent = dir.path().join("swarm.torrent");
    let mut extra = vec!["--piece-size", "65536"];
    if private {
        extra.push("--private");
    }
    let seed = Seed::start("S", &data, &torrent, &extra);
    let cap = ["--download-limit", LEECHER_CAP];
    let mut leechers = Vec::new();
    if private {
        // No peer exchange: A is told about everyone, so a leak would have something to leak.
        for name in ["B", "C"] {
            let out = dir.path().join(name);
            leechers.push(spawn_logged_get(name, &torrent, &out, &[seed.addr], &cap));
        }
        let peers = [seed.addr, leechers[0].1, leechers[1].1];
        let a = spawn_logged_get("A", &torrent, &dir.path().join("A"), &peers, &cap);
        leechers.insert(0, a);
    } else {
        // A little apart, so two leechers that learn each other from S's peer exchange do not
        // dial each other at the same instant.
        for name in ["A", "B", "C"] {
            let out = dir.path().join(name);
            let (proc, addr) = spawn_logged_get(name, &torrent, &out, &[seed.addr], &cap);
            let connected = wait_until(QUICK, POLL, || dialled(&proc, seed.addr));
            ok(connected.map_err(|e| proc.explain(&format!("never connected to the seed ({e})"))));
            leechers.push((proc, addr));
        }
    }
    Swarm { dir, data, torrent, seed, leechers }
}

impl Swarm {
    fn stop(self) {
        for (mut proc, _) in self.leechers {
            ok(proc.terminate(STOP_GRACE));
        }
        let mut seed = self.seed;
        seed.stop();
        drop(self.dir);
    }
}

#[test]
fn pex_teaches_a_peer_the_rest_of_a_five_peer_swarm() {
    let swarm = start_swarm(false);
    let [(a, a_addr), (b, b_addr), (c, c_addr)] = &swarm.leechers[..] else { unreachable!() };
    let s_addr = swarm.seed.addr;
    // S tells each leecher about the others, and the leechers then tell each other: three first
    // messages each (the next come a minute later). Waiting for all of them means no leecher
    // hears about D, and dials it, before D has dialled it.
    for leecher in [a, b, c] {
        let all = wait_until(PEX_WAIT * 2, POLL, || pex_received(leecher) >= 3);
        ok(all.map_err(|e| leecher.explain(&format!("did not hear from S and the other two leechers ({e})"))));
    }

    // D knows only A; no tracker, DHT or LSD.
    let out = swarm.dir.path().join("D");
    let started = Instant::now();
    let (mut d, d_addr) = spawn_logged_get("D", &swarm.torrent, &out, &[*a_addr], &[]);
    ok(wait_until(QUICK, POLL, || dialled(&d, *a_addr)).map_err(|e| d.explain(&format!("never reached A ({e})"))));
    let met_a = started.elapsed();
    let others = [("S", s_addr), ("B", *b_addr), ("C", *c_addr)];
    let learned = wait_until(PEX_WAIT, POLL, || others.iter().all(|(_, addr)| dialled(&d, *addr)));
    let missing: Vec<&str> = others.iter().filter(|(_, addr)| !dialled(&d, *addr)).map(|(n, _)| *n).collect();
    ok(learned.map_err(|e| {
        d.explain(&format!("never dialled {missing:?} (S {s_addr}, B {b_addr}, C {c_addr}; D is {d_addr}) ({e})"))
    }));
    let met_all = started.elapsed();
    assert!(pex_received(&d) >= 1, "{}", d.explain("D dialled the swarm without a peer exchange message"));
    println!("pex: D reached A after {met_a:.2?}, and S, B and C (learned from A) after {met_all:.2?}");

    complete_line(&d, DOWNLOAD);
    ok(d.wait_success(QUICK));
    assert_same_tree(&swarm.data, out.join("swarm.bin"));
    swarm.stop();
}

#[test]
fn private_torrent_does_not_exchange_peers() {
    let swarm = start_swarm(true);
    let [(a, a_addr), (b, b_addr), (c, c_addr)] = &swarm.leechers[..] else { unreachable!() };
    let s_addr = swarm.seed.addr;
    // A is connected to everyone, so a peer exchange message from it would name S, B and C.
    for addr in [s_addr, *b_addr, *c_addr] {
        let reached = wait_until(QUICK, POLL, || dialled(a, addr));
        ok(reached.map_err(|e| a.explain(&format!("A never reached {addr} ({e})"))));
    }

    let out = swarm.dir.path().join("D");
    let (mut d, _) = spawn_logged_get("D", &swarm.torrent, &out, &[*a_addr], &[]);
    ok(wait_until(QUICK, POLL, || dialled(&d, *a_addr)).map_err(|e| d.explain(&format!("never reached A ({e})"))));
    // A public torrent's first peer exchange message would arrive 5 s after this connection.
    let leaked = wait_until(PRIVATE_WATCH, POLL, || {
        pex_received(&d) > 0 || [s_addr, *b_addr, *c_addr].iter().any(|addr| dialled(&d, *addr))
    });
    assert!(leaked.is_err(), "{}", d.explain("D learned peers of a private torrent through peer exchange"));
    assert_eq!(connections(&d).len(), 1, "{}", d.explain("D must be connected to A only"));
    for (name, proc) in [("A", a), ("B", b), ("C", c)] {
        assert_eq!(pex_received(proc), 0, "{}", proc.explain(&format!("{name} received peer exchange")));
    }
    ok(d.terminate(STOP_GRACE));
    swarm.stop();
}
