//! Live channels end to end, on 127.0.0.1 with the DHT and local discovery off: a broadcaster
//! fed on stdin by the test, viewers writing the stream to files.
//!
//! - the bytes viewers write equal the bytes the broadcaster read, when every viewer was there
//!   from the start (and a viewer relayed chunks to another);
//! - a neighbour that sends a chunk the channel's key did not sign is dropped and banned (its
//!   next connection is closed before a hello), and a replayed old chunk, validly signed, is
//!   not written twice;
//! - viewers that reached the channel through a relay that is killed go on to the end;
//! - viewers given only the link find the broadcaster through the tracker it names;
//! - a group channel: a member watches it, a non-member is told it is not one, and a plain
//!   connection to the broadcaster gets nothing;
//! - bad input: a malformed link, a folder as input, an input with no data, two outputs.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/people.rs"]
mod people;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use interop::{LISTEN_ANY, NO_DISCOVERY, START_TIMEOUT, ok, shoal};
use people::{invite_and_join, run, run_ok};
use shoal_live::wire::{Frame, swarm_of};
use shoal_live::{ChannelLink, Chunk};
use shoal_proto::{Handshake, InfoHash, PeerId};
use shoal_testkit::{Proc, TempDir, run_captured, test_bytes};

const END_TIMEOUT: Duration = Duration::from_secs(60);

fn temp_dir() -> TempDir {
    shoal_testkit::tempfile::Builder::new().prefix("shoal-live-").tempdir().expect("temporary folder")
}

/// A broadcaster reading stdin, waiting for `viewers`; its channel link and peer address.
fn broadcaster(home: &Path, viewers: usize, extra: &[&str]) -> (Proc, String, SocketAddr) {
    let mut cmd = shoal(["live", "broadcast", "--input", "-", "--name", "test", "--listen", LISTEN_ANY]);
    cmd.args(NO_DISCOVERY).arg("--data-dir").arg(home.join("broadcaster"));
    cmd.args(["--wait-for-viewers", &viewers.to_string()]).args(extra);
    let proc = ok(Proc::spawn("broadcaster", cmd));
    let link = ok(proc.wait_for_line("channel: ", START_TIMEOUT))["channel: ".len()..].to_string();
    let addr = ok(proc.wait_for_line("listening: ", START_TIMEOUT))["listening: ".len()..].parse().expect("address");
    (proc, link, addr)
}

/// A viewer of `link` writing to `out`, dialling `peer`, listening on `port` (0: any).
fn viewer(home: &Path, name: &str, link: &str, peer: SocketAddr, port: u16, out: &Path) -> Proc {
    let mut cmd = shoal(["live", "watch", link, "--listen", &format!("127.0.0.1:{port}")]);
    cmd.args(NO_DISCOVERY).arg("--data-dir").arg(home.join(name)).arg("-o").arg(out);
    cmd.args(["--peer", &peer.to_string()]);
    ok(Proc::spawn(name, cmd))
}

/// Feeds `data` to the broadcaster at about `rate` bytes per second, then ends its input.
fn feed(broadcaster: &mut Proc, data: &[u8], rate: usize, mut between: impl FnMut(usize)) {
    let block = rate / 10;
    for (i, part) in data.chunks(block).enumerate() {
        ok(broadcaster.write_stdin(part));
        between(i);
        std::thread::sleep(Duration::from_millis(100)); // pacing the input, not waiting on a condition
    }
    broadcaster.close_stdin();
}

fn wait_neighbours(proc: &Proc, n: usize) {
    ok(shoal_testkit::wait_until(START_TIMEOUT, Duration::from_millis(50), || {
        proc.output().matches("live neighbour connected").count() >= n
    }));
}

/// The number in `… N chunks left out …` of a viewer's summary.
fn left_out(proc: &Proc) -> u64 {
    let out = proc.output();
    let line = out.lines().find(|l| l.contains("watched ")).unwrap_or_else(|| panic!("no summary:\n{out}"));
    let before = &line[..line.find(" left out").expect("left out")];
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn every_viewer_writes_the_bytes_the_broadcaster_read() {
    let work = temp_dir();
    let (mut b, link, addr) = broadcaster(work.path(), 3, &["--upload-limit", "300k"]);
    let outs: Vec<_> = (0..3).map(|i| work.path().join(format!("v{i}.ts"))).collect();
    let mut viewers: Vec<Proc> =
        (0..3).map(|i| viewer(work.path(), &format!("v{i}"), &link, addr, 0, &outs[i])).collect();
    // Three viewers take part from the first byte; the broadcaster may send about 2.4 copies
    // of the stream (300 kB/s for 125 kB/s), so viewers must relay to one another.
    let data = test_bytes(2_500_000, 11);
    feed(&mut b, &data, 125_000, |_| {});
    for v in &mut viewers {
        ok(v.wait_success(END_TIMEOUT));
        assert!(v.output().contains("the broadcast ended"), "{}", v.output());
    }
    ok(b.wait_success(END_TIMEOUT));
    for out in &outs {
        let got = std::fs::read(out).expect("output");
        assert!(got == data, "{} holds {} bytes, the input {}", out.display(), got.len(), data.len());
    }
    let relayed: u64 = viewers
        .iter()
        .map(|v| {
            let out = v.output();
            let n = out.split("relayed ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
            n.unwrap_or_else(|| panic!("no relay count:\n{out}"))
        })
        .sum();
    assert!(relayed > 0, "viewers relayed nothing");
    let summary = b.output();
    let copies: f64 = summary
        .split(" copies each)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no copies in:\n{summary}"));
    assert!(copies <= 2.2, "the broadcaster sent {copies} copies of each chunk");
}

/// A hand-made node of the channel: handshake, hello, then frames.
struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    fn connect(addr: SocketAddr, link: &ChannelLink, id: PeerId) -> RawPeer {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let swarm = InfoHash(swarm_of(&link.key.0));
        stream.write_all(&Handshake::new(swarm, id).encode()).expect("handshake");
        let mut hs = [0u8; Handshake::LEN];
        stream.read_exact(&mut hs).expect("their handshake");
        // (A node that closes at once makes this write fail; reading then says so.)
        let _ = stream.write_all(&Frame::Hello { source: false, port: 0 }.encode());
        RawPeer { stream }
    }

    /// The next frame; None when the connection closed.
    fn read(&mut self) -> Option<Frame> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Frame::decode(&body).ok()
    }

    fn send(&mut self, frame: &Frame) {
        let _ = self.stream.write_all(&frame.encode());
    }

    /// Reads until the connection closes (true) or `limit` passes (false).
    fn closed_within(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.read().is_none() {
                return true;
            }
        }
        false
    }
}

#[test]
fn a_forged_chunk_bans_its_sender_and_a_replayed_one_is_not_written_twice() {
    let work = temp_dir();
    let (mut b, link_text, addr) = broadcaster(work.path(), 1, &[]);
    let link = ChannelLink::parse(&link_text).expect("link");
    let out = work.path().join("v.ts");
    let port = shoal_testkit::free_port();
    let mut v = viewer(work.path(), "v", &link_text, addr, port, &out);
    wait_neighbours(&v, 1);
    let v_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let data = test_bytes(1_500_000, 12);
    let mut recorder = None;
    let mut replayed = false;
    feed(&mut b, &data, 125_000, |i| {
        match i {
            // A node that records a real chunk from the broadcaster...
            2 => recorder = Some(RawPeer::connect(addr, &link, PeerId::generate([1; 12]))),
            // ...and, later, offers it to the viewer again, unasked.
            40 if !replayed => {
                let mut r = recorder.take().expect("recorder");
                let old = std::iter::from_fn(|| r.read())
                    .find_map(|f| if let Frame::Chunk(c) = f { Some(c) } else { None })
                    .expect("a chunk from the broadcaster");
                assert!(old.verify(&link.key));
                let mut replayer = RawPeer::connect(v_addr, &link, PeerId::generate([2; 12]));
                replayer.send(&Frame::Chunk(old));
                replayed = true;
            }
            // A node that sends a chunk signed by another key: dropped, then refused.
            20 => {
                let dir = work.path().join("forger");
                let (forger_key, _) = shoal_identity::Identity::load_or_create(&dir, None).expect("identity");
                let forged = Chunk::sign(&forger_key, 1_000, 0, b"not the broadcaster's".to_vec()).expect("sign");
                let id = PeerId::generate([3; 12]);
                let mut forger = RawPeer::connect(v_addr, &link, id);
                forger.send(&Frame::Chunk(forged));
                assert!(forger.closed_within(Duration::from_secs(10)), "the viewer kept the forger's connection");
                let mut again = RawPeer::connect(v_addr, &link, id);
                assert!(!matches!(again.read(), Some(Frame::Hello { .. })), "a banned peer was greeted again");
            }
            _ => {}
        }
    });
    assert!(replayed, "the replay step did not run");
    ok(v.wait_success(END_TIMEOUT));
    ok(b.wait_success(END_TIMEOUT));
    let output = v.output();
    assert!(output.contains("did not sign (banned)"), "{output}");
    let got = std::fs::read(&out).expect("output");
    assert!(got == data, "the viewer wrote {} bytes for {} read", got.len(), data.len());
}

#[test]
fn viewers_behind_a_killed_relay_go_on_to_the_end() {
    let work = temp_dir();
    let (mut b, link, addr) = broadcaster(work.path(), 1, &[]);
    let relay_port = shoal_testkit::free_port();
    let relay_addr: SocketAddr = format!("127.0.0.1:{relay_port}").parse().expect("address");
    let mut relay = viewer(work.path(), "relay", &link, addr, relay_port, &work.path().join("relay.ts"));
    wait_neighbours(&relay, 1);
    // These two know only the relay; it tells them of the broadcaster and of each other.
    let outs = [work.path().join("a.ts"), work.path().join("b.ts")];
    let mut behind: Vec<Proc> =
        ["a", "b"].iter().zip(&outs).map(|(n, o)| viewer(work.path(), n, &link, relay_addr, 0, o)).collect();
    let data = test_bytes(3_000_000, 13);
    let mut killed = false;
    feed(&mut b, &data, 125_000, |i| {
        if i == 100 {
            // 10 s in: the relay dies without a word.
            let _ = std::process::Command::new("sh").args(["-c", &format!("kill -9 {}", relay.id())]).status();
            killed = true;
        }
    });
    assert!(killed);
    let status = ok(relay.wait_exit(Duration::from_secs(10)));
    assert!(!status.success(), "the relay was not killed: {status}");
    for v in &behind {
        assert!(v.output().contains("live neighbour gone"), "{}", v.output());
    }
    for v in &mut behind {
        ok(v.wait_success(END_TIMEOUT));
        assert!(v.output().contains("the broadcast ended"), "{}", v.output());
        assert!(left_out(v) <= 8, "more than a second left out:\n{}", v.output());
    }
    ok(b.wait_success(END_TIMEOUT));
    // What came after the kill arrived whole: the last megabyte of each output is the input's.
    for out in &outs {
        let got = std::fs::read(out).expect("output");
        let tail = 1_000_000;
        assert!(got.len() >= tail && got[got.len() - tail..] == data[data.len() - tail..], "{}", out.display());
    }
}

#[test]
fn viewers_find_the_channel_through_the_tracker_its_link_names() {
    let work = temp_dir();
    let tracker = ok(Proc::spawn("tracker", shoal(["tracker", "--listen", "127.0.0.1:0", "--interval", "1"])));
    let line = ok(tracker.wait_for_line("tracker listening on http://", START_TIMEOUT));
    let url = line.trim_start_matches("tracker listening on ").to_owned();
    let (mut b, link, _) = broadcaster(work.path(), 2, &["--tracker", &url]);
    assert!(link.contains("&tr=http"), "{link}");
    // Told nothing but the link: the tracker gives them the broadcaster and each other.
    let outs = [work.path().join("a.ts"), work.path().join("b.ts")];
    let mut viewers: Vec<Proc> = ["a", "b"]
        .iter()
        .zip(&outs)
        .map(|(name, out)| {
            let mut cmd = shoal(["live", "watch", &link, "--listen", LISTEN_ANY]);
            cmd.args(NO_DISCOVERY).arg("--data-dir").arg(work.path().join(name)).arg("-o").arg(out);
            ok(Proc::spawn(*name, cmd))
        })
        .collect();
    let data = test_bytes(400_000, 15);
    feed(&mut b, &data, 125_000, |_| {});
    for (v, out) in viewers.iter_mut().zip(&outs) {
        ok(v.wait_success(END_TIMEOUT));
        assert!(std::fs::read(out).expect("output") == data, "{}", v.output());
    }
    ok(b.wait_success(END_TIMEOUT));
}

#[test]
fn a_group_channel_is_for_its_members_only() {
    let work = temp_dir();
    let authority = work.path().join("broadcaster");
    run_ok(&authority, &["group", "create", "lab"]);
    invite_and_join(&authority, "lab", &work.path().join("member"));
    let (mut b, link, addr) = broadcaster(work.path(), 1, &["--group", "lab"]);
    assert!(link.contains("&x.group="), "{link}");
    let args = ["live", "watch", &link, "-o", "x.ts", "--no-dht", "--no-lsd", "--listen", LISTEN_ANY];
    let (code, _, err) = run(&work.path().join("outsider"), &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a member"), "{err}");
    let channel = ChannelLink::parse(&link).expect("link");
    let mut plain = RawPeer::connect(addr, &channel, PeerId::generate([4; 12]));
    assert!(!matches!(plain.read(), Some(Frame::Hello { .. })), "a plain connection was greeted");
    let out = work.path().join("member.ts");
    let mut member = viewer(work.path(), "member", &link, addr, 0, &out);
    let data = test_bytes(600_000, 14);
    feed(&mut b, &data, 125_000, |_| {});
    ok(member.wait_success(END_TIMEOUT));
    ok(b.wait_success(END_TIMEOUT));
    assert!(std::fs::read(&out).expect("output") == data, "the member's copy differs");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let work = temp_dir();
    let run = |args: &[&str]| {
        let mut cmd = shoal(args);
        cmd.args(NO_DISCOVERY).arg("--data-dir").arg(work.path());
        ok(run_captured(cmd, Duration::from_secs(30)))
    };
    let watch = |link: &str, extra: &[&str]| {
        let mut args = vec!["live", "watch", link, "--listen", LISTEN_ANY];
        args.extend(extra);
        run(&args)
    };
    let out = watch("magnet:?xt=urn:btih:0123", &["-o", "x.ts"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("not a channel link"), "{}", out.stderr);
    let key = "ab".repeat(31);
    let out = watch(&format!("magnet:?xs=urn:btpk:{key}"), &["-o", "x.ts"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("not 64 hex digits"), "{}", out.stderr);
    let good = format!("magnet:?xs=urn:btpk:{}", "ab".repeat(32));
    let out = watch(&good, &["-o", "x.ts", "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("choose one place"), "{}", out.stderr);
    let folder = work.path().to_string_lossy().into_owned();
    let out = run(&["live", "broadcast", "--input", &folder, "--listen", LISTEN_ANY]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("is a folder, not a stream"), "{}", out.stderr);
    let empty = work.path().join("empty.ts");
    std::fs::write(&empty, b"").expect("empty file");
    let out = run(&["live", "broadcast", "--input", &empty.to_string_lossy(), "--listen", LISTEN_ANY]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("ended before any data"), "{}", out.stderr);
}
