#!/usr/bin/env python3
"""Many peers: one Shoal seed serving N leechers at once (default 300), Shoal and libtorrent
leechers side by side, the seed's upload capped so that it is the bottleneck.

For each N in --peers the script makes one file of --size-mib MiB (random, made once per run)
and one v1 torrent (`shoal create`, no trackers), starts one Shoal seed on 127.0.0.1 with its
upload capped at --upload-limit R, and then starts every leecher at once:

  Shoal leechers       --shoal-share of N (default half), each its own process:
                       `shoal get T --peer SEED --no-dht --no-lsd --no-trackers
                       --listen 127.0.0.1:0 -o DIR --upload-limit u`; it exits 0 once every
                       piece is verified (the completion time is that exit).
  libtorrent leechers  the rest, --lt-per-process sessions per Python process
                       (drivers/lt_many.py): each session is its own peer (own peer id, own
                       port on 127.0.0.1, own folder) with TCP only, no DHT, LSD, UPnP,
                       NAT-PMP or peer exchange, dialling only the seed; it prints DONE once
                       complete and leaves the swarm, as `shoal get` does.

Each leecher's upload is capped at u (--leecher-upload-limit, default 8 KiB/s) so that what
the leechers trade among themselves (Shoal leechers learn each other from the seed's peer
exchange) stays small next to R: the seed has to send nearly N copies, and the run takes about
N * F / R seconds. Every copy is compared with the original (SHA-1) at the end.

Two seeds (--seed):
  daemon  `shoal daemon --no-dht --no-lsd --listen 127.0.0.1:0 --upload-limit R` with a config
          file that sets [limits] max_connections_per_torrent (--seed-max-peers, default N) and
          max_connections (--seed-max-connections, default 500); the torrent is added over
          JSON-RPC (`torrent.add`) with the data already in place and must be seeding before
          the leechers start. Its `torrent.list` `uploaded` and `peers` are polled as well.
  share   `shoal share FILE --no-dht --no-lsd --listen 127.0.0.1:0 --upload-limit R`. It has no
          flag for its connection limits, so it keeps the engine's defaults (80 per torrent,
          500 in all): beyond 80 leechers some are refused and must come back later.

Measured on the seed, every --sample seconds (0.5): VmRSS and the peak VmHWM from
/proc/PID/status, open file descriptors (entries of /proc/PID/fd), its established TCP
connections and the bytes it has sent on them (bytes_acked from `ss -tinp`, per connection;
bytes sent on a connection that closes between two samples are partly missed, so this is a
lower bound), and its CPU seconds. The seed's upload rate is given three ways: the mean over
the transfer (first byte sent to last leecher done), the "steady" rate between the moments 10 %
and 90 % of its bytes had been sent, and the lowest and highest rate over any 5 s window inside
that stretch; each as a percentage of R (the requirement: within 5 %).

Beyond the limits (unless --no-probe), while the transfer runs and once the seed holds as many
connections as its per-torrent limit allows (or half-way through the expected time):
  handshake probe  --extra (50) more TCP connections that each send a valid BitTorrent
                   handshake for the torrent (their own peer ids) and then listen for 5 s:
                   what the seed does with each (answers the handshake and closes, closes
                   at once, or admits it: handshake, then HaveAll, HaveNone or a bitfield), and how fast. An admitted
                   probe leaves at once: a peer that stays and asks for nothing keeps one of
                   the seed's unchoke slots while it seeds initially (4 such peers stop it);
  silent flood     --flood (1000) TCP connections that connect and send nothing, held for
                   12 s: how many descriptors the seed holds meanwhile, and when it closes
                   them (its handshake timeout).
The seed's log is kept; the report says what it printed about the refusals (by default the
seed runs at its normal verbosity; --seed-args '-vv' shows its debug lines).

Everything runs on 127.0.0.1. Every wait has a bound (--timeout for the transfer, default
max(180 s, 4 x N * F / R)). Every child runs in its own session (a Ctrl-C reaches only this
script) and gets SIGKILL if this script dies; on any exit they get SIGTERM, then SIGKILL after
10 s, and the work folder under /tmp is removed unless --keep.

Usage: bench/peers.py [--peers 300] [--size-mib 8] [--upload-limit 32M] [--seed daemon|share]
                      [--shoal-share 0.5] [--lt-per-process 25] [--leecher-upload-limit 8k]
                      [--extra 50] [--flood 1000] [--no-probe] [--keep] [--json FILE]
"""
import argparse
import base64
import hashlib
import json
import os
import queue
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, SHOAL, proc_cpu  # noqa: E402
from scale import ShoalRpc, die_with_parent, free_port  # noqa: E402
from swarm import fmt_rate, machine_cpu, parse_rate  # noqa: E402

LT_MANY = os.path.join(ROOT, "drivers", "lt_many.py")
MIB = 1 << 20
STOP_TIMEOUT = 10.0
START_TIMEOUT = 60.0
RATE_WINDOW = 5.0  # seconds, for the lowest / highest seed rate
PROBE_LISTEN = 5.0  # seconds each handshake probe listens for the seed's answer
FLOOD_HOLD = 12.0  # seconds the silent connections are held (the seed's handshake timeout is 10 s)


def log(msg=""):
    print(msg, flush=True)


class BenchError(RuntimeError):
    pass


# --- processes ------------------------------------------------------------------------------

CHILDREN = []


def spawn(cmd, logfile, stdin=subprocess.DEVNULL, stdout=None):
    """Starts cmd in its own session, output to logfile (or stdout=PIPE)."""
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout or out, stderr=out, start_new_session=True,
                                preexec_fn=die_with_parent)
    proc.logfile = logfile
    CHILDREN.append(proc)
    return proc


def stop(procs, sig=signal.SIGTERM):
    """Sends sig to every process still running, waits STOP_TIMEOUT in all, then SIGKILL."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=STOP_TIMEOUT)
        if p in CHILDREN:
            CHILDREN.remove(p)


def wait_line(proc, pattern, timeout):
    """Waits until proc's log file has a line matching pattern; returns the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(proc.logfile, errors="replace") as f:
            text = f.read()
        m = re.search(pattern, text, re.M)
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise BenchError(f"{' '.join(proc.args[:2])} did not print /{pattern}/ within {timeout:.0f}s "
                     f"(exit code {proc.poll()}); last lines: {tail(proc.logfile)}")


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip() for line in f.readlines()[-n:]]
    except OSError:
        return []


# --- measurements ---------------------------------------------------------------------------

def proc_status(pid):
    """VmRSS and VmHWM (MiB) and Threads of pid."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                found[key] = int(value.split()[0])
    return found["VmRSS"] / 1024, found["VmHWM"] / 1024, found["Threads"]


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Sockets:
    """Bytes each watched process has sent over its established TCP connections on 127.0.0.1,
    and how many it holds now, from `ss -tinp`."""

    SOCK = re.compile(r"^\S+\s+\S+\s+(\S+)\s+(\S+)\s+users:\(\(\"[^\"]*\",pid=(\d+),")

    def __init__(self, pids):
        self.pids = set(pids)
        self.acked = {}  # (pid, local, peer) -> highest bytes_acked seen
        self.received = {}  # (pid, local, peer) -> highest bytes_received seen
        self.slowest = 0.0

    def sample(self):
        """Returns ({pid: bytes sent so far}, {pid: connections now})."""
        start = time.monotonic()
        try:
            out = subprocess.run(["ss", "-tinpH", "state", "established", "src", "127.0.0.1"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        self.slowest = max(self.slowest, time.monotonic() - start)
        now_conns = {}
        key = None
        for line in out.splitlines():
            if not line.startswith(("\t", " ")):
                m = self.SOCK.match(line)
                key = (int(m.group(3)), m.group(1), m.group(2)) if m and int(m.group(3)) in self.pids else None
                if key:
                    now_conns[key[0]] = now_conns.get(key[0], 0) + 1
            elif key is not None:
                for counter, table in (("bytes_acked", self.acked), ("bytes_received", self.received)):
                    m = re.search(counter + r":(\d+)", line)
                    if m:
                        table[key] = max(table.get(key, 0), int(m.group(1)))
                key = None
        return self.per_pid(self.acked), now_conns

    @staticmethod
    def per_pid(table):
        out = {}
        for (pid, _, _), n in table.items():
            out[pid] = out.get(pid, 0) + n
        return out


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MIB)
            f.write(os.urandom(n))
            left -= n


def info_hash(torrent):
    """SHA-1 of the bencoded info dictionary of a .torrent file (a minimal bdecoder)."""
    data = open(torrent, "rb").read()

    def end(i):  # index just past the value starting at i
        c = data[i:i + 1]
        if c == b"i":
            return data.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while data[i:i + 1] != b"e":
                i = end(i)
            return i + 1
        colon = data.index(b":", i)
        return colon + 1 + int(data[i:colon])

    i = 1
    while data[i:i + 1] != b"e":
        key_end = end(i)
        key = data[data.index(b":", i) + 1:key_end]
        value_end = end(key_end)
        if key == b"info":
            return hashlib.sha1(data[key_end:value_end]).digest()
        i = value_end
    raise BenchError(f"{torrent} has no info dictionary")


# --- probes beyond the limits -----------------------------------------------------------------

def handshake_probe(port, ih, n):
    """n connections that each send a handshake for ih, then listen for PROBE_LISTEN seconds.
    Returns a list of (outcome, seconds until the seed closed it or None)."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(3)
        t = time.monotonic()
        try:
            s.connect(("127.0.0.1", port))
            peer_id = b"-PB0001-" + f"{i:012d}".encode()
            # Fast extension bit (BEP 6) set: an admitted probe then always hears more than the
            # handshake (HaveAll, HaveNone or a bitfield), whatever the seed reveals.
            s.sendall(b"\x13BitTorrent protocol" + bytes(7) + b"\x04" + ih + peer_id)
            s.setblocking(False)
            socks.append([s, t, b"", None])
        except OSError as e:
            s.close()
            socks.append([None, t, b"", f"connect failed: {e.strerror or e}"])
    deadline = time.monotonic() + PROBE_LISTEN
    while time.monotonic() < deadline:
        live = [x[0] for x in socks if x[0] is not None and x[3] is None]
        if not live:
            break
        with selectors.DefaultSelector() as sel:
            for s in live:
                sel.register(s, selectors.EVENT_READ)
            ready = {key.fileobj for key, _ in sel.select(timeout=0.1)}
        for x in socks:
            if x[0] is not None and x[0] in ready:
                try:
                    chunk = x[0].recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    x[2] += chunk
                    if len(x[2]) > 68:
                        # Admitted (a bitfield follows the handshake): leave at once. A peer
                        # that stays without asking for anything keeps an unchoke slot of a
                        # seed in initial seeding, which would disturb the measurement.
                        x[0].close()
                        x[0], x[3] = None, "admitted"
                else:
                    x[3] = time.monotonic() - x[1]  # closed (EOF or reset)
    out = []
    for s, _, got, closed in socks:
        if closed == "admitted":
            out.append(("admitted: handshake and its piece list (the probe left at once)", None))
            continue
        if isinstance(closed, str):
            out.append((closed, None))
            continue
        answered = len(got) >= 68 and got[:20] == b"\x13BitTorrent protocol"
        more = len(got) > 68
        if closed is not None:
            what = ("answered the handshake, then closed" if answered and not more else
                    "answered the handshake, sent messages, then closed" if answered else
                    "closed without answering")
        else:
            what = ("admitted: handshake and messages, still open" if more else
                    "handshake answered, still open, nothing more" if answered else
                    "no answer, still open")
        out.append((what, closed))
        if s is not None:
            s.close()
    return out


def flood_probe(port, n, hold):
    """n connections that send nothing, held for `hold` seconds. Returns (opened, closed by the
    seed within hold, median seconds to that close, error text)."""
    socks, err = [], None
    start = time.monotonic()
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            s.close()
            err = f"connect failed after {len(socks)}: {e.strerror or e}"
            break
        s.setblocking(False)
        socks.append(s)
    closed = {}
    deadline = start + hold
    sel = selectors.DefaultSelector()  # epoll: descriptors past 1024 are fine
    try:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while time.monotonic() < deadline and len(closed) < len(socks):
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    gone = not s.recv(4096)
                except OSError:
                    gone = True
                if gone:
                    closed[s] = time.monotonic() - start
                    sel.unregister(s)
    finally:
        sel.close()
        for s in socks:
            s.close()
    times = sorted(closed.values())
    return len(socks), len(times), (statistics.median(times) if times else None), err


# --- one run ------------------------------------------------------------------------------------

def start_seed(args, n, work, data_dir, torrent, rate):
    """Starts the seed; returns (proc, port, rpc or None, per-torrent limit, session limit)."""
    seed_log = os.path.join(work, "seed.log")
    extra = args.seed_args.split()
    if args.seed == "share":
        cmd = [SHOAL, "share", os.path.join(data_dir, "data.bin"), "-o", torrent, "--no-dht", "--no-lsd",
               "--listen", "127.0.0.1:0", "--upload-limit", str(rate)] + extra
        proc = spawn(cmd, seed_log)
        port = int(wait_line(proc, r"^ready: .* on 127\.0\.0\.1:(\d+)", START_TIMEOUT).group(1))
        return proc, port, None, 80, 500
    per_torrent = args.seed_max_peers or n
    config = os.path.join(work, "seed.toml")
    with open(config, "w") as f:
        f.write(f"[limits]\nmax_connections = {args.seed_max_connections}\n"
                f"max_connections_per_torrent = {per_torrent}\n")
    rpc_port = free_port()
    cmd = [SHOAL, "daemon", "--data-dir", os.path.join(work, "seed-state"), "--config", config, "--no-dht",
           "--no-lsd", "--listen", "127.0.0.1:0", "--rpc-listen", f"127.0.0.1:{rpc_port}",
           "--upload-limit", str(rate)] + extra
    proc = spawn(cmd, seed_log)
    port = int(wait_line(proc, r"^ready: peers on 127\.0\.0\.1:(\d+)", START_TIMEOUT).group(1))
    rpc = ShoalRpc(rpc_port)
    with open(torrent, "rb") as f:
        rpc.call("torrent.add", {"torrent": base64.b64encode(f.read()).decode(), "download_dir": data_dir})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        t = rpc.call("torrent.list", {"fields": ["state", "error"]})
        if t and t[0]["state"] == "seeding":
            break
        if time.monotonic() > deadline or (t and t[0]["state"] == "error"):
            raise BenchError(f"the daemon seed is not seeding after {START_TIMEOUT:.0f}s: {t}")
        time.sleep(0.2)
    return proc, port, rpc, per_torrent, args.seed_max_connections


def run(args, n):
    size = args.size_mib * MIB
    rate = args.upload_limit
    u = args.leecher_upload_limit
    n_shoal = round(n * args.shoal_share)
    n_lt = n - n_shoal
    expected = n * size / rate
    timeout = args.timeout or max(180.0, 4 * expected)
    work = tempfile.mkdtemp(prefix="shoal-peers-", dir="/tmp")
    started = []
    try:
        data_dir = os.path.join(work, "data")
        os.makedirs(data_dir)
        data = os.path.join(data_dir, "data.bin")
        make_file(data, size)
        digest = sha1_file(data)
        torrent = os.path.join(work, "data.torrent")
        subprocess.run([SHOAL, "create", data, "-o", torrent, "-q"], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        ih = info_hash(torrent)
        seed, port, rpc, per_torrent, session_limit = start_seed(args, n, work, data_dir, torrent, rate)
        started.append(seed)
        seed_log = seed.logfile
        seed_log_start = os.path.getsize(seed_log)
        cpu0 = proc_cpu(seed.pid)
        busy0 = machine_cpu()
        fds_idle = fd_count(seed.pid)
        rss_idle = proc_status(seed.pid)[0]

        # Leechers, all at once.
        events = queue.Queue()  # (time, name, kind, detail)
        shoal_procs = {}
        t0 = time.monotonic()
        for i in range(n_shoal):
            out = os.path.join(work, "shoal", str(i))
            os.makedirs(out)
            cmd = [SHOAL, "get", torrent, "--peer", f"127.0.0.1:{port}", "--no-dht", "--no-lsd", "--no-trackers",
                   "--listen", "127.0.0.1:0", "-o", out, "--upload-limit", str(u), "--timeout", str(int(timeout))]
            p = spawn(cmd, os.path.join(work, "shoal", f"{i}.log"))
            p.out = out
            shoal_procs[f"shoal{i}"] = p
            started.append(p)
        lt_procs = []
        for first in range(0, n_lt, args.lt_per_process):
            count = min(args.lt_per_process, n_lt - first)
            cmd = [sys.executable, LT_MANY, "--torrent", torrent, "--save", os.path.join(work, "lt"),
                   "--peer", f"127.0.0.1:{port}", "--count", str(count), "--first-index", str(first),
                   "--upload-limit", str(u), "--timeout", str(int(timeout))]
            p = spawn(cmd, os.path.join(work, f"lt-{first}.log"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            lt_procs.append(p)
            started.append(p)

            def read(p=p):
                with open(p.logfile, "a") as logf:
                    for raw in p.stdout:
                        line = raw.decode(errors="replace")
                        logf.write(line)
                        parts = line.split()
                        if parts[:1] == ["DONE"]:
                            events.put((time.monotonic(), f"lt{parts[1]}", "done", None))
                        elif parts[:1] == ["ERROR"]:
                            events.put((time.monotonic(), f"lt{parts[1]}", "error", line.strip()))
            threading.Thread(target=read, daemon=True).start()
        spawned = time.monotonic() - t0

        sockets = Sockets([seed.pid] + [p.pid for p in shoal_procs.values()] + [p.pid for p in lt_procs])
        done, failed = {}, {}
        samples = []  # (t, seed bytes sent, seed connections, fds, rss, rpc uploaded or None, rpc peers)
        probe = {"state": "waiting"}
        probe_thread = None
        rss_peak = 0.0
        deadline = t0 + timeout
        while len(done) + len(failed) < n:
            now = time.monotonic()
            if now > deadline:
                break
            if seed.poll() is not None:
                raise BenchError(f"the seed exited ({seed.returncode}): {tail(seed_log)}")
            for name, p in shoal_procs.items():
                if name not in done and name not in failed and p.poll() is not None:
                    if p.returncode == 0:
                        done[name] = now - t0
                    else:
                        failed[name] = f"exit {p.returncode}: {tail(p.logfile, 2)}"
            while True:
                try:
                    when, name, kind, detail = events.get_nowait()
                except queue.Empty:
                    break
                if kind == "done":
                    done[name] = when - t0
                elif name not in done:
                    failed[name] = detail
            sent, conns = sockets.sample()
            rss, hwm, threads = proc_status(seed.pid)
            rss_peak = max(rss_peak, hwm)
            uploaded = peers = None
            if rpc:
                try:
                    t = rpc.call("torrent.list", {"fields": ["uploaded", "peers"]})[0]
                    uploaded, peers = t["uploaded"], t["peers"]
                except (BenchError, OSError, ValueError, IndexError):
                    pass
            t = time.monotonic() - t0
            samples.append((t, sent.get(seed.pid, 0), conns.get(seed.pid, 0), fd_count(seed.pid), rss, uploaded,
                            peers, probe["state"] == "running"))
            if (not args.no_probe and probe["state"] == "waiting"
                    and (conns.get(seed.pid, 0) >= min(per_torrent, n) or t >= expected / 2)):
                probe.update(state="running", at=t, seed_conns=conns.get(seed.pid, 0), log_from=os.path.getsize(seed_log))

                def probing():
                    try:
                        probe["handshake"] = handshake_probe(port, ih, args.extra)
                        probe["flood"] = flood_probe(port, args.flood, FLOOD_HOLD)
                        probe["state"] = "done"
                    except OSError as e:
                        probe["state"] = f"failed: {e}"
                    probe["log_to"] = os.path.getsize(seed_log)

                probe_thread = threading.Thread(target=probing, daemon=True)
                probe_thread.start()
            time.sleep(max(0.0, args.sample - (time.monotonic() - now)))
        end = time.monotonic() - t0
        if probe_thread:
            probe_thread.join(timeout=PROBE_LISTEN + FLOOD_HOLD + 60)
        rss, hwm, threads = proc_status(seed.pid)
        rss_peak = max(rss_peak, hwm)
        seed_cpu = proc_cpu(seed.pid) - cpu0
        busy1 = machine_cpu()
        sent, _ = sockets.sample()
        final_uploaded = None
        if rpc:
            final_uploaded = rpc.call("torrent.list", {"fields": ["uploaded"]})[0]["uploaded"]
        stop([p for p in started if p is not seed])
        stop([seed], signal.SIGINT)
        # Every copy compared with the original.
        for name, p in shoal_procs.items():
            if name in done and sha1_file(os.path.join(p.out, "data.bin")) != digest:
                failed[name] = "file differs from the original"
                del done[name]
        for i in range(n_lt):
            name = f"lt{i}"
            path = os.path.join(work, "lt", str(i), "data.bin")
            if name in done and (not os.path.exists(path) or sha1_file(path) != digest):
                failed[name] = "file differs from the original"
                del done[name]
        missing = [name for name in list(shoal_procs) + [f"lt{i}" for i in range(n_lt)]
                   if name not in done and name not in failed]
        for name in missing:
            failed[name] = f"not complete after {timeout:.0f}s"
        with open(seed_log, errors="replace") as f:
            f.seek(seed_log_start)
            seed_lines = f.read().splitlines()
        probe_lines = []
        if "log_from" in probe:
            with open(seed_log, errors="replace") as f:
                f.seek(probe["log_from"])
                probe_lines = f.read(probe.get("log_to", probe["log_from"] + 65536) - probe["log_from"]).splitlines()
        leechers_sent = sum(v for pid, v in sent.items() if pid != seed.pid)
        received = sum(Sockets.per_pid(sockets.received).get(p.pid, 0) for p in
                       list(shoal_procs.values()) + lt_procs)
        return {
            "seed": args.seed, "n": n, "n_shoal": n_shoal, "n_lt": n_lt, "size": size, "rate": rate, "u": u,
            "per_torrent_limit": per_torrent, "session_limit": session_limit,
            "expected": expected, "timeout": timeout, "spawned_s": spawned, "end": end,
            "done": done, "failed": failed, "samples": samples, "probe": {k: v for k, v in probe.items()},
            "rss_idle": rss_idle, "rss_peak": rss_peak, "threads": threads, "fds_idle": fds_idle,
            "seed_cpu": seed_cpu, "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
            "seed_sent": sent.get(seed.pid, 0), "rpc_uploaded": final_uploaded, "leechers_sent": leechers_sent,
            "received": received, "ss_slowest": sockets.slowest,
            "seed_lines": seed_lines, "probe_lines": probe_lines, "work": work,
        }
    finally:
        stop(started)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


# --- report -------------------------------------------------------------------------------------

def rates(r):
    """Seed upload rates: mean over the transfer, steady (10 %..90 % of its bytes), lowest and
    highest over RATE_WINDOW inside the steady stretch. Uses the RPC counter when there is one."""
    pts = [(t, up if up is not None else b) for t, b, _, _, _, up, _, _ in r["samples"]]
    total = pts[-1][1] if pts else 0
    if total <= 0:
        return None
    first = next(t for t, b in pts if b > 0)
    last = max(r["done"].values()) if r["done"] else pts[-1][0]
    mean = total / max(1e-6, last - first)

    def cross(frac):
        return next(t for t, b in pts if b >= frac * total)

    t10, t90 = cross(0.10), cross(0.90)
    steady = 0.8 * total / max(1e-6, t90 - t10)
    lo, hi = None, 0.0
    j = 0
    for i, (t, b) in enumerate(pts):
        if t < t10 + RATE_WINDOW or t > t90:
            continue
        while pts[j + 1][0] <= t - RATE_WINDOW:
            j += 1
        w = (b - pts[j][1]) / (t - pts[j][0])
        lo = w if lo is None else min(lo, w)
        hi = max(hi, w)
    return {"mean": mean, "steady": steady, "low": lo, "high": hi, "t10": t10, "t90": t90, "first": first,
            "last": last, "total": total}


def report(r):
    n, size, rate = r["n"], r["size"], r["rate"]
    samples = r["samples"]
    times = sorted(r["done"].values())
    log(f"  leechers complete: {len(r['done'])} of {n} ({r['n_shoal']} shoal get, {r['n_lt']} libtorrent); "
        f"all started in {r['spawned_s']:.1f} s; completions first {times[0] if times else 0:.1f} / "
        f"median {statistics.median(times) if times else 0:.1f} / last {times[-1] if times else 0:.1f} s "
        f"(N*F/R = {r['expected']:.1f} s)")
    for name, why in sorted(r["failed"].items())[:10]:
        log(f"    FAILED {name}: {why}")
    if len(r["failed"]) > 10:
        log(f"    ... and {len(r['failed']) - 10} more")
    transfer = [s for s in samples if not s[7]]
    fds_transfer = max((s[3] for s in transfer), default=0)
    fds_all = max((s[3] for s in samples), default=0)
    conns_peak = max((s[2] for s in samples), default=0)
    rpc_peers = max((s[6] or 0 for s in samples), default=0)
    log(f"  seed RSS: idle {r['rss_idle']:.1f} MiB, peak (VmHWM) {r['rss_peak']:.1f} MiB "
        f"({'under' if r['rss_peak'] < 64 else 'OVER'} 64 MiB); threads {r['threads']}; CPU {r['seed_cpu']:.1f} s "
        f"({r['seed_cpu'] / max(1e-6, r['end']) * 100:.0f}% of a core over the run); machine "
        f"{r['machine_busy'] * 100:.0f}% busy")
    log(f"  seed fds: idle {r['fds_idle']}, peak while only leechers ran {fds_transfer}, peak with the probes "
        f"{fds_all}; peak established connections {conns_peak} (ss)"
        + (f", peak `peers` {rpc_peers} (RPC)" if r["rpc_uploaded"] is not None else "")
        + f"; limits {r['per_torrent_limit']} per torrent, {r['session_limit']} in all")
    rt = rates(r)
    if rt:
        def pct(x):
            return f"{x / MIB:.2f} MiB/s ({x / rate * 100:.1f}%)" if x is not None else "n/a"
        src = "RPC `uploaded`" if r["rpc_uploaded"] is not None else "ss bytes_acked"
        log(f"  seed upload vs cap {fmt_rate(rate)} ({src}): mean {pct(rt['mean'])} over {rt['first']:.1f}-"
            f"{rt['last']:.1f} s; steady {pct(rt['steady'])} over {rt['t10']:.1f}-{rt['t90']:.1f} s; "
            f"{RATE_WINDOW:g} s windows low {pct(rt['low'])} high {pct(rt['high'])}")
        r["rates"] = rt
    log(f"  bytes: seed sent {r['seed_sent'] / size:.2f} copies (ss)"
        + (f", {r['rpc_uploaded'] / size:.2f} (RPC)" if r["rpc_uploaded"] is not None else "")
        + f"; leechers sent {r['leechers_sent'] / size:.2f} copies to each other; received {r['received'] / size:.2f}"
        f" copies in all (N = {n}); slowest ss sample {r['ss_slowest']:.2f} s")
    p = r["probe"]
    if p.get("state") == "done":
        log(f"  beyond the limits (probes at {p['at']:.1f} s, the seed holding {p['seed_conns']} connections):")
        outcomes = {}
        for what, closed in p["handshake"]:
            outcomes.setdefault(what, []).append(closed)
        for what, closes in sorted(outcomes.items(), key=lambda kv: -len(kv[1])):
            closes = [c for c in closes if c is not None]
            log(f"    {len(outcomes[what]):4d} of {len(p['handshake'])} handshakes: {what}"
                + (f" (median {statistics.median(closes) * 1000:.0f} ms)" if closes else ""))
        opened, closed, median, err = p["flood"]
        log(f"    silent flood: {opened} connections opened" + (f" ({err})" if err else "")
            + f", {closed} closed by the seed within {FLOOD_HOLD:g} s"
            + (f" (median {median:.1f} s)" if median is not None else "")
            + f"; seed fds peaked at {fds_all} (vs {fds_transfer} before)")
        said = [line for line in p["lines"] if re.search(r"refus|full|limit|too many|reject", line, re.I)]
        log(f"    seed log during the probes: {len(p['lines'])} lines, {len(said)} about refusals"
            + (f", e.g. {said[0][:160]!r}" if said else ""))
    elif p.get("state") != "waiting":
        log(f"  probes did not finish (state {p.get('state')})")
    bad = [line for line in r["seed_lines"] if re.search(r"panic|error|warn", line, re.I)]
    if bad:
        log(f"  seed log: {len(bad)} error/warning lines, e.g.:")
        for line in bad[:5]:
            log(f"    {line[:200]}")
    timeline(r)


def timeline(r):
    """About 15 rows: time, leechers done, seed rate, connections, fds, RSS."""
    samples = r["samples"]
    if not samples:
        return
    step = max(1.0, round(samples[-1][0] / 15))
    times = sorted(r["done"].values())
    log("  timeline: t, done, seed upload (ss), connections, fds, RSS")
    prev_t, prev_b, mark = 0.0, 0, step
    for i, (t, b, conns, fds, rss, up, peers, probing) in enumerate(samples):
        if t + 1e-9 < mark and i != len(samples) - 1:
            continue
        k = sum(1 for x in times if x <= t)
        log(f"    {t:6.1f} s {k:4d}/{r['n']:<4d} {(b - prev_b) / max(1e-6, t - prev_t) / MIB:6.2f} MiB/s "
            f"conns {conns:4d} fds {fds:5d} RSS {rss:5.1f} MiB" + ("  (probing)" if probing else ""))
        prev_t, prev_b = t, b
        while mark <= t:
            mark += step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="300", help="comma-separated leecher counts N (default 300)")
    ap.add_argument("--size-mib", type=int, default=8, help="file size F in MiB (default 8)")
    ap.add_argument("--upload-limit", type=parse_rate, default=parse_rate("32M"), metavar="RATE",
                    help="the seed's upload cap R (default 32M)")
    ap.add_argument("--leecher-upload-limit", type=parse_rate, default=parse_rate("8k"), metavar="RATE",
                    help="every leecher's upload cap u (default 8k)")
    ap.add_argument("--seed", choices=["daemon", "share"], default="daemon")
    ap.add_argument("--seed-max-peers", type=int, default=0, metavar="N",
                    help="daemon seed: max_connections_per_torrent (default: the leecher count)")
    ap.add_argument("--seed-max-connections", type=int, default=500, metavar="N",
                    help="daemon seed: max_connections (default 500)")
    ap.add_argument("--seed-args", default="", help="extra arguments for the seed, e.g. '-vv'")
    ap.add_argument("--shoal-share", type=float, default=0.5, help="fraction of leechers that are shoal get")
    ap.add_argument("--lt-per-process", type=int, default=25, help="libtorrent sessions per process (default 25)")
    ap.add_argument("--extra", type=int, default=50, help="handshake probes beyond the limit (default 50)")
    ap.add_argument("--flood", type=int, default=1000, help="silent connections of the flood probe (default 1000)")
    ap.add_argument("--no-probe", action="store_true", help="no probes beyond the limits")
    ap.add_argument("--sample", type=float, default=0.5, metavar="S", help="sampling period (default 0.5 s)")
    ap.add_argument("--timeout", type=float, default=0, metavar="S",
                    help="give up on the transfer after this long (default max(180, 4 N F / R))")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, downloads)")
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    args = ap.parse_args()
    if not os.path.exists(SHOAL):
        ap.error(f"{SHOAL} is missing: cargo build --release --bin shoal")
    if not 0 <= args.shoal_share <= 1:
        ap.error("--shoal-share is a fraction")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        for n in [int(x) for x in args.peers.split(",") if x.strip()]:
            log(f"{args.seed} seed, {n} leechers, {args.size_mib} MiB, seed cap {fmt_rate(args.upload_limit)}, "
                f"leecher cap {fmt_rate(args.leecher_upload_limit)}")
            try:
                r = run(args, n)
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                log(f"  FAILED: {e}")
                continue
            if r["probe"].get("state") == "done":
                r["probe"]["lines"] = r["probe_lines"]
            report(r)
            if args.keep:
                log(f"  logs and downloads kept in {r['work']}")
            results.append(r)
            log()
    finally:
        stop(list(CHILDREN))
    if results:
        log("Many peers: one Shoal seed, N leechers (Shoal and libtorrent), seed upload capped at R")
        log(f"{'seed':>7} {'N':>4} {'F MiB':>5} {'R MiB/s':>7} {'done':>8} {'T s':>6} {'NF/R s':>6} {'RSS MiB':>7} "
            f"{'fds':>5} {'fds probe':>9} {'mean %R':>7} {'steady %R':>9} {'5s low-high %R':>14} {'seed CPU s':>10}")
        for r in results:
            rt = r.get("rates") or {}
            transfer = [s for s in r["samples"] if not s[7]]
            times = sorted(r["done"].values())

            def pct(k):
                return f"{rt[k] / r['rate'] * 100:.1f}" if rt.get(k) is not None else "n/a"

            log(f"{r['seed']:>7} {r['n']:>4} {r['size'] / MIB:>5.0f} {r['rate'] / MIB:>7g} "
                f"{len(r['done']):>4}/{r['n']:<3} {times[-1] if times else 0:>6.1f} {r['expected']:>6.1f} "
                f"{r['rss_peak']:>7.1f} {max((s[3] for s in transfer), default=0):>5} "
                f"{max((s[3] for s in r['samples']), default=0):>9} {pct('mean'):>7} {pct('steady'):>9} "
                f"{pct('low') + '-' + pct('high'):>14} {r['seed_cpu']:>10.1f}")
        log("(RSS: the seed's VmHWM; fds: peak with only the leechers / with the probes beyond the limits;")
        log(" %R: the seed's upload rate as a percentage of its cap, see the module doc)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k not in ("seed_lines", "probe_lines")} for r in results], f,
                      indent=1, default=str)
    if not results or any(r["failed"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
