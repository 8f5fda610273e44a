#!/usr/bin/env python3
"""Loopback benchmark table: Shoal and other BitTorrent clients moving the same file.

For one file (default 1 GiB, generated once and cached under --work) and one v1 torrent made by
`shoal create`, each round runs every pair below, one seed and one leecher each:

  Shoal -> Shoal                  shoal share / shoal get --peer
  libtorrent -> libtorrent        drivers/lt_client.py (libtorrent 2.1, TCP only, uTP off)
  Transmission -> Transmission    two transmission-daemons (3.00), see below
  rqbit -> rqbit                  rqbit 9.1.0 (pinned in RQBIT_VERSION), built once with
                                  `cargo install --locked` into ~/.cache/shoal-bench/rqbit
  Shoal -> libtorrent             Shoal seed, libtorrent leecher
  libtorrent -> Shoal             libtorrent seed, Shoal leecher
  Shoal -> Shoal, RC4             both with --encryption require (MSE/PE, RC4 over the stream)
  libtorrent -> libtorrent, RC4   both pe_forced at the pe_rc4 level
  Shoal -> Shoal, uTP             the leecher dials uTP first (--utp prefer)
  libtorrent -> libtorrent, uTP   both with TCP off (lt_client.py --transport utp)
  Shoal -> libtorrent, uTP        libtorrent leecher uTP only
  libtorrent -> Shoal, uTP        libtorrent seed uTP only, Shoal leecher --utp prefer
  Shoal -> Shoal, v2 (and libtorrent, and both crosses)
                                  a BitTorrent v2-only torrent of the same file (`shoal create
                                  --v2`): every piece checked by its SHA-256 Merkle root

The seed is started and has checked its data before the clock starts. The leecher's wall time
runs from its start to its exit (complete and verified); its CPU seconds and peak RSS come from
wait4. The seed's CPU seconds are what it used during the transfer (utime + stime from
/proc/PID/stat before and after); its peak RSS is VmHWM from /proc/PID/status at the end, so it
includes checking the data at start. Every figure in the table is the median of --runs rounds;
the ratio is each pair's median wall time over Shoal -> Shoal's (above 1 means Shoal is faster).
The script also prints this machine's SHA-1 speed (`openssl speed -bytes 16384 sha1`, one core)
and Shoal -> Shoal's rate as a fraction of it: a v1 leecher hashes every byte it receives.

The other Shoal pairs run at Shoal's default encryption (prefer): an MSE handshake, then plain
bytes. No client uses DHT, local peer discovery, UPnP, NAT-PMP or uTP; every leecher is told whom to
dial (Shoal `--peer`, lt_client.py `--peer`, rqbit `download --initial-peers`); the uTP pairs
are the exception to "no uTP". The rqbit seed is
`rqbit download --overwrite` over the existing data, which checks it and then keeps seeding.

Transmission never dials peers in 127.0.0.0/8 and cannot be told about a peer over its RPC, so two
daemons cannot meet on 127.x addresses. This script therefore runs that pair in a private network
namespace it creates with unshare(2) (root needed): its loopback device gets 10.99.0.1 (a tiny
HTTP tracker that hands out the seed's address), 10.99.0.2 (seed) and 10.99.0.3 (leecher). The
traffic still crosses a loopback device, and the namespace disappears when the script's daemons
exit. Both daemons keep Transmission's default encryption setting ("preferred": their stream is
RC4-encrypted). The leecher is a running daemon, so its wall time runs from adding the torrent
to the moment the RPC reports it complete (polled every 50 ms), and its CPU and peak RSS come
from /proc like the seed's. Transmission re-decides whom it unchokes every 10 s, so a transfer
starts up to ~10 s after the peers connect: the table counts that delay; a note under the table
gives the time from the first received byte to the end as well.

Usage: bench/table.py [--size-mib 1024] [--runs 3] [--work DIR] [--pairs shoal,lt,...]
"""
import argparse
import base64
import collections
import ctypes
import http.server
import importlib.util
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import Sample, log, proc_cpu, proc_peak_rss, run_pair, stop  # noqa: E402

# The driver imports its sibling modules (stdin_watch) by name.
sys.path.insert(0, os.path.join(compare.ROOT, "drivers"))
_spec = importlib.util.spec_from_file_location(
    "transmission_driver", os.path.join(compare.ROOT, "drivers", "transmission.py"))
transmission = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(transmission)

RQBIT_VERSION = "9.1.0"
RQBIT_ROOT = os.path.expanduser("~/.cache/shoal-bench/rqbit")
RQBIT = os.path.join(RQBIT_ROOT, "bin", "rqbit")
# Private addresses used only inside the benchmark's own network namespace.
NS_TRACKER, NS_SEED, NS_LEECH = "10.99.0.1", "10.99.0.2", "10.99.0.3"
TIMEOUT = 600  # seconds; the bound on every wait for a transfer or a seed's check


def poll_until(what, timeout, check, every=0.05):
    """Calls check() until it returns something other than None; bounded by timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout}s")
        time.sleep(every)


# --- Transmission -------------------------------------------------------------------------------

class PrivateNet:
    """Runs a with-block in a new network namespace whose loopback device also carries `addrs`.

    Only the calling thread (and the processes it starts) moves; on exit it moves back. The
    namespace is anonymous: it is gone once the last process inside it has exited."""

    CLONE_NEWNET = 0x40000000

    def __init__(self, addrs):
        self.addrs = addrs
        self.libc = ctypes.CDLL(None, use_errno=True)

    def __enter__(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        if self.libc.unshare(self.CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(self.home)
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)} (needs root)")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
            for a in self.addrs:
                subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], check=True, timeout=10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_):
        if self.libc.setns(self.home, self.CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
        os.close(self.home)


class SeedTracker:
    """A minimal HTTP tracker that answers every announce with a fixed list of seeds (compact
    form), leaving out the announcer itself (matched by its port)."""

    def __init__(self, host):
        seeds = self.seeds = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                port = int(q.get("port", ["0"])[0])
                peers = b"".join(socket.inet_aton(h) + p.to_bytes(2, "big") for h, p in seeds if p != port)
                body = b"d8:intervali60e5:peers%d:%se" % (len(peers), peers)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}/announce"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def tr_daemon(home, bind, download_dir):
    """Starts transmission-daemon via drivers/transmission.py; returns (wrapper, daemon pid, Rpc, peer port)."""
    shutil.rmtree(home, ignore_errors=True)
    proc, m = compare.start_and_wait(
        [sys.executable, os.path.join(compare.ROOT, "drivers", "transmission.py"), "daemon", "--home", home,
         "--bind", bind, "--download-dir", download_dir],
        r"pid (\d+): rpc [\d.]+:(\d+), peers [\d.]+:(\d+)", timeout=60)
    return proc, int(m.group(1)), transmission.Rpc(int(m.group(2))), int(m.group(3))


def tr_add(rpc, torrent, download_dir, tracker_url):
    """Adds torrent with tracker_url as its only tracker and starts it; returns its id."""
    with open(torrent, "rb") as f:
        metainfo = base64.b64encode(f.read()).decode()
    added = rpc.call("torrent-add", metainfo=metainfo, paused=True, **{"download-dir": download_dir})
    tid = added["torrent-added"]["id"]
    rpc.call("torrent-set", ids=[tid], trackerAdd=[tracker_url])
    rpc.call("torrent-start", ids=[tid])
    return tid


def tr_done(rpc, tid):
    t = rpc.torrent(tid, ["leftUntilDone", "percentDone", "status", "error", "errorString", "downloadedEver"])
    if t["error"] == transmission.LOCAL_ERROR:
        raise RuntimeError(f"transmission: {t['errorString']}")
    return t, t["leftUntilDone"] == 0 and t["percentDone"] >= 1.0 and t["status"] not in (1, 2)


def transmission_run(ctx):
    """Transmission -> Transmission in a private network namespace (see the module docstring)."""
    procs = []
    with PrivateNet([NS_TRACKER, NS_SEED, NS_LEECH]):
        tracker = SeedTracker(NS_TRACKER)
        try:
            seed, seed_pid, seed_rpc, seed_port = tr_daemon(os.path.join(ctx.scratch, "tr-seed"), NS_SEED,
                                                             ctx.data_dir)
            procs.append(seed)
            leech, leech_pid, leech_rpc, _ = tr_daemon(os.path.join(ctx.scratch, "tr-leech"), NS_LEECH,
                                                       ctx.out)
            procs.append(leech)
            tracker.seeds.append((NS_SEED, seed_port))
            sid = tr_add(seed_rpc, ctx.torrent, ctx.data_dir, tracker.url)
            poll_until("Transmission seed checking its data", TIMEOUT,
                       lambda: True if tr_done(seed_rpc, sid)[1] else None, every=0.2)
            seed_cpu, leech_cpu = proc_cpu(seed_pid), proc_cpu(leech_pid)
            start = time.monotonic()
            lid = tr_add(leech_rpc, ctx.torrent, ctx.out, tracker.url)
            first = []

            def finished():
                t, done = tr_done(leech_rpc, lid)
                now = time.monotonic() - start
                if not first and t["downloadedEver"] > 0:
                    first.append(now)
                return now if done else None

            wall = poll_until("Transmission leecher", TIMEOUT, finished)
            sample = Sample(wall, proc_peak_rss(leech_pid), proc_cpu(leech_pid) - leech_cpu,
                            proc_cpu(seed_pid) - seed_cpu, proc_peak_rss(seed_pid))
            ctx.notes.setdefault("transmission_first_byte", []).append(first[0] if first else wall)
            ctx.notes.setdefault("transmission_after_first_byte", []).append(wall - (first[0] if first else wall))
            return sample
        finally:
            for p in reversed(procs):
                stop(p)
            tracker.close()


# --- rqbit --------------------------------------------------------------------------------------

# Global options for every rqbit process: peers only from --initial-peers, TCP on 127.0.0.1.
RQBIT_OPTS = ["--disable-dht", "--disable-dht-persistence", "--disable-lsd", "--disable-trackers",
              "--disable-upnp-port-forward", "--listen-ip", "127.0.0.1", "--ipv4-only"]


def ensure_rqbit():
    """Builds rqbit RQBIT_VERSION into RQBIT_ROOT unless that version is already there."""
    try:
        have = subprocess.run([RQBIT, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    except OSError:
        have = []
    if have[-1:] == [RQBIT_VERSION]:
        return
    log(f"building rqbit {RQBIT_VERSION} into {RQBIT_ROOT} (once; takes minutes)")
    start = time.monotonic()
    try:
        done = subprocess.run(["cargo", "install", "rqbit", "--version", RQBIT_VERSION, "--locked",
                               "--root", RQBIT_ROOT], capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise RuntimeError("cargo install rqbit took longer than an hour") from None
    if done.returncode != 0:
        raise RuntimeError(f"cargo install rqbit {RQBIT_VERSION} failed: {done.stderr.strip()[-500:]}")
    log(f"built rqbit {RQBIT_VERSION} in {time.monotonic() - start:.0f} s")


def rqbit_seed(data_dir, torrent):
    """rqbit checks the data already in data_dir and then seeds it (no --exit-on-finish)."""
    port = transmission.free_port()
    seed, _ = compare.start_and_wait([RQBIT, *RQBIT_OPTS, "--listen-port", str(port), "download", "--overwrite",
                                      "--disable-http-api", "-o", data_dir, torrent],
                                     r"Initial check results: have [^,]*, needed 0,", merge_stderr=True)
    return seed, f"127.0.0.1:{port}"


def rqbit_leech_cmd(torrent, out, peer):
    return [RQBIT, *RQBIT_OPTS, "download", "--exit-on-finish", "--disable-http-api", "--initial-peers", peer,
            "-o", out, torrent]


def rqbit_run(ctx):
    ensure_rqbit()
    return run_pair(rqbit_seed, rqbit_leech_cmd, ctx.data_dir, ctx.torrent, ctx.out)


# --- the table ----------------------------------------------------------------------------------

# scratch: this run's own folder (downloads, Transmission homes), so a compare.py run sharing
# --work cannot delete them; notes: per-run extras (Transmission's time to first byte).
Context = collections.namedtuple("Context", "scratch data_dir torrent out notes")
Pair = collections.namedtuple("Pair", "key label run")


def pair_of(seed_fn, leech_cmd):
    return lambda ctx: run_pair(seed_fn, leech_cmd, ctx.data_dir, ctx.torrent, ctx.out)


def shoal_seed_rc4(data_dir, torrent):
    seed, m = compare.start_and_wait([compare.SHOAL, "share", "--no-dht", "--no-lsd", "--encryption", "require",
                                      os.path.join(data_dir, "data.bin"), "-o", torrent + ".seed",
                                      "--listen", "127.0.0.1:0"], r"ready: .* on 127\.0\.0\.1:(\d+)")
    return seed, f"127.0.0.1:{m.group(1)}"


def shoal_leech_cmd_rc4(torrent, out, peer):
    return compare.shoal_leech_cmd(torrent, out, peer) + ["--encryption", "require"]


def lt_seed_with(*extra):
    """A libtorrent seed with extra lt_client.py options (encryption, transport)."""
    def start(data_dir, torrent):
        seed, m = compare.start_and_wait([sys.executable, compare.LT, "seed", "--torrent", torrent, "--save", data_dir,
                                          "--listen", "0", *extra], r"READY (\d+)")
        return seed, f"127.0.0.1:{m.group(1)}"
    return start


lt_seed_rc4 = lt_seed_with("--encryption", "forced")


def lt_leech_cmd_rc4(torrent, out, peer):
    return compare.lt_leech_cmd(torrent, out, peer) + ["--encryption", "forced"]


def shoal_leech_cmd_utp(torrent, out, peer):
    # --utp prefer falls back to TCP when uTP fails: the run fails instead unless the log says
    # the connection was uTP (timed through sh: wait4 covers its reaped child).
    cmd = [a for a in compare.shoal_leech_cmd(torrent, out, peer) if a != "-q"] + ["--utp", "prefer", "-v"]
    log = os.path.join(os.path.dirname(os.path.abspath(out)), "utp-leech.log")
    return ["sh", "-c", 'log="$1"; shift; "$@" 2>"$log" && grep -q "connected over uTP" "$log"', "sh", log] + cmd


lt_seed_utp = lt_seed_with("--transport", "utp")


def lt_leech_cmd_utp(torrent, out, peer):
    return compare.lt_leech_cmd(torrent, out, peer) + ["--transport", "utp"]


def v2_torrent(ctx):
    """A BitTorrent v2-only torrent of the same data (made once with `shoal create --v2`)."""
    path = ctx.torrent[:-len(".torrent")] + "-v2.torrent"
    if not os.path.exists(path):
        subprocess.run([compare.SHOAL, "create", os.path.join(ctx.data_dir, "data.bin"), "-o", path, "--v2", "-q"],
                       check=True)
    return path


def shoal_seed_v2(data_dir, torrent):
    # `share` of the existing v2 torrent: it checks the data against it and seeds it.
    seed, m = compare.start_and_wait([compare.SHOAL, "share", "--no-dht", "--no-lsd",
                                      os.path.join(data_dir, "data.bin"), "-o", torrent, "--listen", "127.0.0.1:0"],
                                     r"ready: .* on 127\.0\.0\.1:(\d+)")
    return seed, f"127.0.0.1:{m.group(1)}"


def v2_pair(seed_fn, leech_cmd):
    return lambda ctx: run_pair(seed_fn, leech_cmd, ctx.data_dir, v2_torrent(ctx), ctx.out)


PAIRS = [
    Pair("shoal", "Shoal -> Shoal", pair_of(compare.shoal_seed, compare.shoal_leech_cmd)),
    Pair("lt", "libtorrent -> libtorrent", pair_of(compare.lt_seed, compare.lt_leech_cmd)),
    Pair("transmission", "Transmission -> Transmission", transmission_run),
    Pair("rqbit", "rqbit -> rqbit", rqbit_run),
    Pair("shoal-lt", "Shoal -> libtorrent", pair_of(compare.shoal_seed, compare.lt_leech_cmd)),
    Pair("lt-shoal", "libtorrent -> Shoal", pair_of(compare.lt_seed, compare.shoal_leech_cmd)),
    # Protocol encryption with RC4 over the whole stream (MSE/PE): Shoal --encryption require,
    # libtorrent pe_forced at the pe_rc4 level.
    Pair("shoal-rc4", "Shoal -> Shoal, RC4", pair_of(shoal_seed_rc4, shoal_leech_cmd_rc4)),
    Pair("lt-rc4", "libtorrent -> libtorrent, RC4", pair_of(lt_seed_rc4, lt_leech_cmd_rc4)),
    # uTP (BEP 29): libtorrent with TCP off; Shoal's leecher dials uTP first.
    Pair("shoal-utp", "Shoal -> Shoal, uTP", pair_of(compare.shoal_seed, shoal_leech_cmd_utp)),
    Pair("lt-utp", "libtorrent -> libtorrent, uTP", pair_of(lt_seed_utp, lt_leech_cmd_utp)),
    Pair("shoal-lt-utp", "Shoal -> libtorrent, uTP", pair_of(compare.shoal_seed, lt_leech_cmd_utp)),
    Pair("lt-shoal-utp", "libtorrent -> Shoal, uTP", pair_of(lt_seed_utp, shoal_leech_cmd_utp)),
    # BitTorrent v2-only (BEP 52): pieces checked by SHA-256 Merkle roots instead of SHA-1.
    Pair("shoal-v2", "Shoal -> Shoal, v2", v2_pair(shoal_seed_v2, compare.shoal_leech_cmd)),
    Pair("lt-v2", "libtorrent -> libtorrent, v2", v2_pair(compare.lt_seed, compare.lt_leech_cmd)),
    Pair("shoal-lt-v2", "Shoal -> libtorrent, v2", v2_pair(shoal_seed_v2, compare.lt_leech_cmd)),
    Pair("lt-shoal-v2", "libtorrent -> Shoal, v2", v2_pair(compare.lt_seed, compare.shoal_leech_cmd)),
]


def sha1_speed():
    """Bytes per second of `openssl speed -bytes 16384 sha1` (one core), or None."""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "16384", "sha1"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^sha1\s+([\d.]+)k", out, re.M)
    return float(m.group(1)) * 1000 if m else None


def run_rounds(pairs, ctx, runs, size):
    """Runs every pair once per round; returns ({key: [Sample]}, {key: error of its failed run})."""
    results = {p.key: [] for p in pairs}
    failed = {}
    for r in range(runs):
        for p in pairs:
            if p.key in failed:
                continue  # not retried: such failures (a build, a missing tool) repeat
            shutil.rmtree(ctx.out, ignore_errors=True)
            os.makedirs(ctx.out)
            try:
                s = p.run(ctx)
            except (OSError, RuntimeError) as e:
                failed[p.key] = str(e)
                log(f"run {r + 1} {p.label}: FAILED: {e}")
                continue
            results[p.key].append(s)
            log(f"run {r + 1} {p.label:>28}: {s.wall:6.2f} s {size / s.wall / 1e6:6.0f} MB/s  CPU leech "
                f"{s.cpu:5.2f} s seed {s.seed_cpu:5.2f} s  RSS leech {s.rss:6.1f} MiB seed {s.seed_rss:6.1f} MiB")
    return results, failed


def versions():
    """One line naming the version of each client, for the table's header."""
    def first_line(cmd):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "?"
    shoal = first_line([compare.SHOAL, "--version"])
    lt = first_line([sys.executable, "-c", "import libtorrent; print(libtorrent.__version__)"])
    tr = first_line(["transmission-daemon", "--version"])
    return f"{shoal}, libtorrent {lt} (Python bindings), {tr}, rqbit {RQBIT_VERSION}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--runs", type=int, default=3, help="rounds; each figure is the median (default 3)")
    ap.add_argument("--work", default="/tmp/shoal-bench",
                    help="cache for the generated data (shared with compare.py; default %(default)s)")
    ap.add_argument("--pairs", default=",".join(p.key for p in PAIRS),
                    help="comma-separated pairs to run (default all: %(default)s)")
    args = ap.parse_args()
    wanted = args.pairs.split(",")
    unknown = set(wanted) - {p.key for p in PAIRS}
    if unknown:
        ap.error(f"unknown pairs {', '.join(sorted(unknown))}; choose from {', '.join(p.key for p in PAIRS)}")
    pairs = [p for p in PAIRS if p.key in wanted]
    if not os.path.exists(compare.SHOAL):
        subprocess.run(["cargo", "build", "--release", "-p", "shoal-cli"], cwd=compare.ROOT, check=True)
    os.makedirs(args.work, exist_ok=True)
    data_dir, torrent = compare.prepare(args.work, args.size_mib)
    scratch = os.path.join(args.work, f"table-{os.getpid()}")
    ctx = Context(scratch, data_dir, torrent, os.path.join(scratch, "out"), {})
    size = args.size_mib << 20
    load_start = os.getloadavg()
    try:
        results, failed = run_rounds(pairs, ctx, args.runs, size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = os.getloadavg()
    sha1 = sha1_speed()

    med = {k: Sample(*(statistics.median(getattr(s, f) for s in v) for f in Sample._fields))
           for k, v in results.items() if v}
    base = med.get("shoal")
    log("")
    log(f"{args.size_mib} MiB over loopback, median of {args.runs} runs; {versions()}")
    log(f"load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load_start)}, "
        f"at end {', '.join(f'{x:.2f}' for x in load_end)}; {os.cpu_count()} CPUs")
    head = (f"{'pair':<29} {'wall s':>7} {'MB/s':>6} {'CPU leech s':>11} {'CPU seed s':>10} "
            f"{'RSS leech MiB':>13} {'RSS seed MiB':>12} {'time/Shoal':>10}")
    log(head)
    log("-" * len(head))
    notes = []
    for p in pairs:
        if p.key not in med:
            log(f"{p.label:<29} n/a: {failed.get(p.key, 'not run')}")
            continue
        if p.key in failed:
            notes.append(f"{p.label}: median of {len(results[p.key])} runs; then it failed: {failed[p.key]}")
        m = med[p.key]
        ratio = f"{m.wall / base.wall:10.2f}" if base else f"{'-':>10}"
        log(f"{p.label:<29} {m.wall:7.2f} {size / m.wall / 1e6:6.0f} {m.cpu:11.2f} {m.seed_cpu:10.2f} "
            f"{m.rss:13.1f} {m.seed_rss:12.1f} {ratio}")
    for n in notes:
        log(n)
    if "transmission" in med:
        fb = statistics.median(ctx.notes["transmission_first_byte"])
        rest = statistics.median(ctx.notes["transmission_after_first_byte"])
        log(f"Transmission: {fb:.2f} s from adding the torrent to the first byte (its 10 s unchoke round), then "
            f"{rest:.2f} s to done: {size / rest / 1e6:.0f} MB/s from the first byte (medians)")
    if sha1:
        log(f"SHA-1 (openssl speed -bytes 16384 sha1, one core): {sha1 / 1e6:.0f} MB/s"
            + (f"; Shoal -> Shoal reaches {size / base.wall / sha1:.0%} of it" if base else ""))


if __name__ == "__main__":
    main()
