#!/usr/bin/env python3
"""Swarm efficiency on loopback against the Kumar & Ross lower bound, Shoal beside libtorrent.

One seed and N peers share one file of F bytes through a tracker on 127.0.0.1. Every node's
upload is capped at U bytes/s by its own limiter (Shoal: `--upload-limit`, its token bucket;
libtorrent: the torrent's upload limit, drivers/lt_client.py --upload-limit). The peers are
started together once the seed is ready and keep serving after they complete, until every
peer has the file. T is the time from the moment all peers were started until the last one
reported completion (Shoal: the `complete:` line; libtorrent: `DONE`). The lower bound is

    T_min = max(F / u_s, F / d_min, N * F / (u_s + sum of u_i))

(u_s: seed upload, u_i: peer uploads, d_min: smallest peer download cap, infinite unless
--download-limit is given). With u_s = u_i = U and no download cap, T_min = F / U: the seed must
send at least one whole copy. eta = T_min / T (1.0 = the bound is reached).

For each N it runs a Shoal swarm (`shoal tracker`, `shoal share`, N x `shoal get --seed`) and
the same swarm of libtorrent sessions (same file, same torrent, same tracker binary), then
checks that every peer's file equals the original (SHA-1 of the bytes) and prints a table:
T_min, T, eta, first/median/last completion, the seed's peak RSS (VmHWM read from /proc before
it is stopped), the CPU all swarm processes used and how busy the whole machine was.

While a swarm runs, `ss -tinp` is sampled every --sample seconds to count the bytes each
process has sent on its TCP connections (bytes_acked). That gives how many copies of the file
the seed sent, how much of the swarm's upload capacity (N+1)*U was used, and each process's
peak upload rate over a sliding window (the cap check; it should not exceed U). Bytes sent on
a connection that closes between two samples are partly missed, so these counts are lower
bounds. A timeline of completions and upload use is printed per run, and every node's output
is kept in WORK/logs/<swarm>-n<N>/ (--shoal-args -v adds Shoal's own log lines).

Everything runs on 127.0.0.1; every process is stopped with SIGTERM (SIGKILL after 10 s); all
waits are bounded. N=1 is a quick check that the caps are applied (T should be about F/U).

Usage: bench/swarm.py [--peers 1,8,32] [--size-mib 16,32,16] [--upload-limit 2M,2M,512k] [--runs 1]
                      [--swarms shoal,libtorrent] [--download-limit RATE] [--piece-size BYTES]
                      [--shoal-args ARGS] [--work DIR] [--json FILE]
--size-mib and --upload-limit take one value for every N or one per N. The defaults keep the
N=32 swarms (65 processes) well under the two cores of the development VM.
"""
import argparse
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LT, ROOT, SHOAL, generate, proc_cpu, proc_peak_rss  # noqa: E402

MIB = 1 << 20
STOP_TIMEOUT = 10.0
# Window over which a process's upload rate is measured for the cap check (seconds).
RATE_WINDOW = 5.0


def log(msg=""):
    print(msg, flush=True)


def parse_rate(text):
    """Bytes per second from '2M', '512k', '1048576' (binary multiples, as shoal takes them)."""
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(?:i?[bB])?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a rate like 2M or 512k: {text!r}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def fmt_rate(bps):
    return f"{bps / MIB:g} MiB/s" if bps % (MIB // 16) == 0 else f"{bps / 1024:g} KiB/s"


class Child:
    """A process whose stdout lines are read on a thread and time-stamped as they arrive."""

    def __init__(self, name, cmd, events, patterns, log_path=None):
        self.name = name
        self.log = open(log_path, "w", buffering=1) if log_path else None
        self.cmd = cmd
        self.events = events  # queue of (time, child, kind, match)
        self.patterns = patterns  # kind -> regex
        self.tail = []
        self.times = {}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, errors="replace")
        self.pid = self.proc.pid
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            if self.log:
                self.log.write(f"{now:.3f} {line}")
            self.tail = (self.tail + [line.rstrip()])[-8:]
            for kind, pattern in self.patterns.items():
                if kind not in self.times:
                    m = re.search(pattern, line)
                    if m:
                        self.times[kind] = now
                        self.events.put((now, self, kind, m))
        if self.log:
            self.log.close()
        self.events.put((time.monotonic(), self, "exit", None))

    def alive(self):
        return self.proc.poll() is None


def wait_for(child, kind, timeout):
    """Waits until child printed its `kind` line; returns the regex match."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            _, c, k, m = child.events.get(timeout=left)
        except queue.Empty:
            break
        if c is child and k == kind:
            return m
        if c is child and k == "exit":
            break
    raise RuntimeError(f"{child.name} did not print its {kind} line within {timeout:.0f}s "
                       f"(exit code {child.proc.poll()}); last lines: {child.tail}")


def stop_all(children):
    """SIGTERM to every child, then SIGKILL to those still running after STOP_TIMEOUT."""
    for c in children:
        if c.alive():
            try:
                c.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for c in children:
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait(timeout=STOP_TIMEOUT)


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


class SocketSampler:
    """Bytes each process has sent over its established TCP connections, from `ss -tinp`."""

    SOCK = re.compile(r"^\S+\s+\S+\s+(\S+)\s+(\S+)\s+users:\(\(\"[^\"]*\",pid=(\d+),")

    def __init__(self, pids):
        self.pids = set(pids)
        self.acked = {}  # (pid, local, peer) -> highest bytes_acked seen (bytes pid sent)
        self.received = {}  # (pid, local, peer) -> highest bytes_received seen
        self.samples = []  # (time, {pid: cumulative bytes sent})
        self.slowest = 0.0  # longest time one `ss` call took

    def sample(self):
        """Takes a sample; returns {pid: bytes sent so far}."""
        start = time.monotonic()
        try:
            out = subprocess.run(["ss", "-tinpH", "state", "established", "src", "127.0.0.1"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""  # keep the counts of the last sample
        end = time.monotonic()
        self.slowest = max(self.slowest, end - start)
        now = (start + end) / 2  # the counters were read somewhere in between
        key = None
        for line in out.splitlines():
            if not line.startswith(("\t", " ")):
                m = self.SOCK.match(line)
                key = (int(m.group(3)), m.group(1), m.group(2)) if m and int(m.group(3)) in self.pids else None
            elif key is not None:
                for counter, table in (("bytes_acked", self.acked), ("bytes_received", self.received)):
                    m = re.search(counter + r":(\d+)", line)
                    if m:
                        table[key] = max(table.get(key, 0), int(m.group(1)))
                key = None
        per_pid = self.per_pid(self.acked)
        self.samples.append((now, per_pid))
        return per_pid

    @staticmethod
    def per_pid(table):
        out = {}
        for (pid, _, _), n in table.items():
            out[pid] = out.get(pid, 0) + n
        return out

    def sent(self, pid, index=-1):
        return self.samples[index][1].get(pid, 0) if self.samples else 0

    def peak_rate(self, pid):
        """Highest upload rate of pid over any RATE_WINDOW-long stretch between samples."""
        best, j = 0.0, 0
        for i, (t, per) in enumerate(self.samples):
            while j < i and t - self.samples[j][0] > RATE_WINDOW:
                j += 1
            k = j - 1 if j > 0 else j  # the last sample at least RATE_WINDOW before t
            t0, per0 = self.samples[k]
            if t - t0 >= RATE_WINDOW * 0.9:
                best = max(best, (per.get(pid, 0) - per0.get(pid, 0)) / (t - t0))
        return best


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def shoal_nodes(data, torrent, tracker_url, u_seed, u, d, piece_size):
    """Command lines of a Shoal seed (writes the torrent itself) and of peer i."""
    seed = [SHOAL, "share", "--no-dht", "--no-lsd", data, "-o", torrent, "--tracker", tracker_url, "--listen", "127.0.0.1:0",
            "--upload-limit", str(u_seed)]
    if piece_size:
        seed += ["--piece-size", str(piece_size)]

    def peer(out):
        cmd = [SHOAL, "get", "--no-dht", "--no-lsd", torrent, "-o", out, "--listen", "127.0.0.1:0", "--upload-limit", str(u), "--seed"]
        return cmd + (["--download-limit", str(d)] if d else [])

    return seed, r"ready: .* on 127\.0\.0\.1:(\d+)", peer, {"ready": r"^downloading ", "done": r"^complete: "}


def lt_nodes(data, torrent, tracker_url, u_seed, u, d, piece_size, timeout):
    """Command lines of a libtorrent seed and peer i; the torrent is made by `shoal create`."""
    cmd = [SHOAL, "create", data, "-o", torrent, "--tracker", tracker_url, "-q"]
    subprocess.run(cmd + (["--piece-size", str(piece_size)] if piece_size else []), check=True, timeout=120)
    seed = [sys.executable, LT, "seed", "--torrent", torrent, "--save", os.path.dirname(data), "--listen", "0",
            "--upload-limit", str(u_seed)]

    def peer(out):
        cmd = [sys.executable, LT, "leech", "--torrent", torrent, "--save", out, "--listen", "0",
               "--upload-limit", str(u), "--then-seed", "--timeout", str(int(timeout))]
        return cmd + (["--download-limit", str(d)] if d else [])

    return seed, r"READY (\d+)", peer, {"ready": r"^LISTEN ", "done": r"^DONE "}


def run_swarm(kind, n, data, digest, work, u_seed, u, d, piece_size, sample_every, timeout, shoal_args):
    """Runs one swarm to completion; returns a dict of results."""
    size = os.path.getsize(data)
    run_dir = os.path.join(work, f"{kind}-n{n}")
    log_dir = os.path.join(work, "logs", f"{kind}-n{n}")
    for path in (run_dir, log_dir):
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    torrent = os.path.join(run_dir, "data.torrent")
    events = queue.Queue()
    children = []
    try:
        tracker = Child("tracker", [SHOAL, "tracker", "--listen", "127.0.0.1:0", "--interval", "2"], queue.Queue(),
                        {"ready": r"tracker listening on (http://127\.0\.0\.1:\d+/announce)"},
                        os.path.join(log_dir, "tracker.log"))
        children.append(tracker)
        url = wait_for(tracker, "ready", 30).group(1)
        if kind == "shoal":
            seed_cmd, seed_ready, peer_cmd, patterns = shoal_nodes(data, torrent, url, u_seed, u, d, piece_size)
        else:
            seed_cmd, seed_ready, peer_cmd, patterns = lt_nodes(data, torrent, url, u_seed, u, d, piece_size, timeout)
        if kind == "shoal":
            seed_cmd += shoal_args
        seed = Child("seed", seed_cmd, queue.Queue(), {"ready": seed_ready}, os.path.join(log_dir, "seed.log"))
        children.append(seed)
        wait_for(seed, "ready", 120)
        seed_cpu0 = proc_cpu(seed.pid)
        busy0, total0 = machine_cpu()
        spawn = time.monotonic()
        peers = []
        for i in range(n):
            out = os.path.join(run_dir, f"peer{i}")
            os.makedirs(out)
            cmd = peer_cmd(out) + (shoal_args if kind == "shoal" else [])
            p = Child(f"peer{i}", cmd, events, patterns, os.path.join(log_dir, f"peer{i}.log"))
            p.out = out
            peers.append(p)
            children.append(p)
        t0 = time.monotonic()
        sampler = SocketSampler([seed.pid] + [p.pid for p in peers])
        sampler.sample()
        # (t, peers done, machine busy fraction since the last point, bytes sent by seed, by peers)
        timeline = []
        done = {}
        last_sample, last_busy = t0, (busy0, total0)
        deadline = t0 + timeout
        while len(done) < n:
            now = time.monotonic()
            if now > deadline:
                stop_all(peers)
                time.sleep(0.5)  # let the readers take the last lines
                stuck = [f"{c.name} ({c.tail[-1] if c.tail else 'no output'})" for c in peers if c.name not in done]
                times = sorted(done.values())
                raise RuntimeError(f"{kind} N={n}: only {len(done)} of {n} peers complete after {timeout:.0f} s"
                                   + (f" (the last of them at {times[-1]:.1f} s)" if times else "")
                                   + "; still incomplete: " + "; ".join(stuck))
            if not seed.alive():
                raise RuntimeError(f"{kind} seed exited ({seed.proc.returncode}): {seed.tail}")
            try:
                when, c, k, _ = events.get(timeout=max(0.01, min(sample_every, last_sample + sample_every - now)))
                if k == "done":
                    done[c.name] = when - t0
                elif k == "exit" and c.name not in done:
                    c.proc.wait(timeout=STOP_TIMEOUT)
                    raise RuntimeError(f"{kind} {c.name} exited ({c.proc.returncode}) before completing: {c.tail}")
            except queue.Empty:
                pass
            if time.monotonic() - last_sample >= sample_every or len(done) == n:
                last_sample = time.monotonic()
                per_pid = sampler.sample()
                b, t = machine_cpu()
                seed_b = per_pid.get(seed.pid, 0)
                timeline.append((last_sample - t0, len(done), (b - last_busy[0]) / max(1, t - last_busy[1]),
                                 seed_b, sum(per_pid.values()) - seed_b))
                last_busy = (b, t)
        end = time.monotonic()
        busy1, total1 = machine_cpu()
        seed_rss = proc_peak_rss(seed.pid)
        seed_cpu = proc_cpu(seed.pid) - seed_cpu0
        peer_cpu = sum(proc_cpu(p.pid) for p in peers)
        peer_rss = [proc_peak_rss(p.pid) for p in peers]
        tracker_cpu = proc_cpu(tracker.pid)
        stop_all(peers + [seed])
        bad = [p.name for p in peers if not os.path.exists(os.path.join(p.out, "data.bin"))
               or sha1_file(os.path.join(p.out, "data.bin")) != digest]
        if bad:
            raise RuntimeError(f"{kind} N={n}: files differ from the original at {bad}")
        times = sorted(done.values())
        sent = {p.pid: sampler.sent(p.pid) for p in [seed] + peers}
        received = SocketSampler.per_pid(sampler.received)
        got = [received.get(p.pid, 0) / size for p in peers]
        # Distinct connections each peer was seen holding (a full mesh is N); many more means churn.
        conns = statistics.mean(sum(1 for key in sampler.acked if key[0] == p.pid) for p in peers)
        ready_lag = max(p.times.get("ready", end) for p in peers) - spawn
        return {
            "swarm": kind, "n": n, "size": size, "u": u, "u_seed": u_seed, "d": d,
            "T": times[-1], "first": times[0], "median": statistics.median(times), "last": times[-1],
            "times": times, "start_lag": ready_lag,
            "seed_rss_mib": seed_rss, "peer_rss_max_mib": max(peer_rss),
            "seed_cpu": seed_cpu, "peer_cpu": peer_cpu, "tracker_cpu": tracker_cpu,
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
            "seed_sent": sent[seed.pid], "peers_sent": sum(v for k, v in sent.items() if k != seed.pid),
            "peer_connections": conns, "peer_received_mean": statistics.mean(got), "peer_received_max": max(got),
            "seed_peak_rate": sampler.peak_rate(seed.pid),
            "peer_peak_rate": max(sampler.peak_rate(p.pid) for p in peers),
            "timeline": timeline, "ss_slowest": sampler.slowest,
            "wall": end - t0,
        }
    finally:
        stop_all(children)
        shutil.rmtree(run_dir, ignore_errors=True)


def t_min(n, size, u_seed, u, d):
    bound = max(size / u_seed, n * size / (u_seed + n * u))
    return max(bound, size / d) if d else bound


def print_timeline(r):
    """Completions and upload use over time, in about 15 rows."""
    tl = r["timeline"]
    if not tl:
        return
    step = max(1.0, round(r["T"] / 15))
    cap = r["u_seed"] + r["n"] * r["u"]
    log(f"  {r['swarm']} N={r['n']} timeline: t, peers done, seed upload, all upload as % of (N+1)U, machine CPU busy")
    prev_t, prev_seed, prev_all, mark = 0.0, 0, 0, step
    busy_acc, busy_n = 0.0, 0
    for i, (t, k, busy, seed_b, peers_b) in enumerate(tl):
        busy_acc, busy_n = busy_acc + busy, busy_n + 1
        if t + 1e-9 < mark and i != len(tl) - 1:
            continue
        dt = max(1e-6, t - prev_t)
        seed_rate = (seed_b - prev_seed) / dt
        all_rate = (seed_b + peers_b - prev_all) / dt
        log(f"    {t:6.1f} s  {k:3d}/{r['n']:<3d} seed {seed_rate / MIB:5.2f} MiB/s  "
            f"swarm {all_rate / MIB:6.2f} MiB/s ({all_rate / cap * 100:5.1f}%)  CPU {busy_acc / busy_n * 100:5.1f}%")
        prev_t, prev_seed, prev_all = t, seed_b, seed_b + peers_b
        busy_acc, busy_n = 0.0, 0
        while mark <= t:
            mark += step


def per_n(ap, text, ns, parse, name):
    """One value for every N, or one per N."""
    try:
        values = [parse(x) for x in text.split(",") if x.strip()]
    except (ValueError, argparse.ArgumentTypeError) as e:
        ap.error(f"{name}: {e}")
    if len(values) == 1:
        values *= len(ns)
    if len(values) != len(ns):
        ap.error(f"{name} takes one value, or one per --peers value")
    return values


def report(r, n_cores):
    n, size, u, u_seed = r["n"], r["size"], r["u"], r["u_seed"]
    cpu = r["seed_cpu"] + r["peer_cpu"] + r["tracker_cpu"]
    sent = r["seed_sent"] + r["peers_sent"]
    log(f"  T {r['T']:.2f} s, eta {r['eta']:.3f}; completions first {r['first']:.1f} / median "
        f"{r['median']:.1f} / last {r['last']:.1f} s; all peers running after {r['start_lag']:.2f} s")
    log(f"  every copy matches the original; seed peak RSS {r['seed_rss_mib']:.1f} MiB, "
        f"peers' largest {r['peer_rss_max_mib']:.1f} MiB")
    log(f"  seed sent {r['seed_sent'] / size:.2f} copies (1.00 at the bound), busy "
        f"{r['seed_sent'] / (u_seed * r['T']) * 100:.0f}% of T; peers sent {r['peers_sent'] / size:.2f} copies; "
        f"the swarm used {sent / ((u_seed + n * u) * r['T']) * 100:.0f}% of its upload capacity over T "
        f"({n * size / ((u_seed + n * u) * r['T_min']) * 100:.0f}% at the bound)")
    log(f"  each peer received {r['peer_received_mean']:.2f} copies on average, at most "
        f"{r['peer_received_max']:.2f} (1.00 = nothing fetched twice); each held {r['peer_connections']:.1f} "
        f"connections over the run ({n} = a full mesh, more = reconnections)")
    log(f"  cap check, highest upload rate over {RATE_WINDOW:g} s: seed {r['seed_peak_rate'] / MIB:.2f} MiB/s, "
        f"busiest peer {r['peer_peak_rate'] / MIB:.2f} MiB/s (caps {u_seed / MIB:g} / {u / MIB:g}; "
        f"slowest ss sample {r['ss_slowest']:.2f} s)")
    log(f"  CPU: swarm {cpu:.1f} s ({cpu / r['T'] / n_cores * 100:.0f}% of {n_cores} cores over T; seed "
        f"{r['seed_cpu']:.1f} s; {cpu * 1000 / max(1, sent / MIB):.0f} ms per MiB sent), whole machine "
        f"{r['machine_busy'] * 100:.0f}% busy")
    if r["T"] < 0.95 * r["T_min"]:
        log("  WARNING: faster than the bound: a cap was not applied")
    if r["seed_peak_rate"] > 1.15 * u_seed or r["peer_peak_rate"] > 1.15 * u:
        log("  WARNING: a process uploaded faster than its cap")
    if r["machine_busy"] > 0.9:
        log("  WARNING: the machine was over 90% busy: CPU may have limited this run; lower U")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="1,8,32",
                    help="comma-separated swarm sizes N (default 1,8,32; N=1 checks that the caps hold)")
    ap.add_argument("--size-mib", default="16,32,16", metavar="MIB",
                    help="file size F in MiB: one value for every N, or one per N (default 16,32,16)")
    ap.add_argument("--upload-limit", default="2M,2M,512k", metavar="RATE",
                    help="upload cap U of every node in bytes/s, k/M suffixes binary: one value for every N, "
                         "or one per N (default 2M,2M,512k)")
    ap.add_argument("--runs", type=int, default=1, help="repeat each swarm this many times (default 1)")
    ap.add_argument("--seed-upload-limit", type=parse_rate, default=None, metavar="RATE",
                    help="the seed's upload cap u_s (default: U)")
    ap.add_argument("--download-limit", type=parse_rate, default=0, metavar="RATE",
                    help="download cap of every peer (enters T_min as F/d_min; default none)")
    ap.add_argument("--piece-size", type=int, default=0, metavar="BYTES", help="piece size (default: shoal's choice)")
    ap.add_argument("--swarms", default="shoal,libtorrent", help="which swarms to run (shoal, libtorrent)")
    ap.add_argument("--sample", type=float, default=0.5, metavar="S", help="ss sampling period (default 0.5 s)")
    ap.add_argument("--timeout", type=float, default=0, metavar="S",
                    help="give up on a swarm after this long (default: max(120 s, 6 x T_min))")
    ap.add_argument("--shoal-args", default="", metavar="ARGS",
                    help="extra arguments for every Shoal node, e.g. '-v' (logs are kept in WORK/logs/)")
    ap.add_argument("--work", default="/tmp/shoal-swarm", help="data, downloads and logs (default /tmp/shoal-swarm)")
    ap.add_argument("--json", metavar="FILE", help="also write every result here")
    args = ap.parse_args()

    ns = [int(x) for x in args.peers.split(",") if x.strip()]
    sizes = per_n(ap, args.size_mib, ns, int, "--size-mib")
    uploads = per_n(ap, args.upload_limit, ns, parse_rate, "--upload-limit")
    swarms = [s.strip() for s in args.swarms.split(",") if s.strip()]
    if any(s not in ("shoal", "libtorrent") for s in swarms):
        ap.error("--swarms takes shoal and/or libtorrent")
    d = args.download_limit
    if not os.path.exists(SHOAL):
        subprocess.run(["cargo", "build", "--release", "-p", "shoal-cli"], cwd=ROOT, check=True)
    os.makedirs(args.work, exist_ok=True)
    n_cores = os.cpu_count() or 1

    results, failed = [], []
    for n, mib, u in zip(ns, sizes, uploads):
        u_seed = args.seed_upload_limit or u
        data_dir = os.path.join(args.work, f"data-{mib}")
        os.makedirs(data_dir, exist_ok=True)
        data = os.path.join(data_dir, "data.bin")
        generate(data, mib * MIB)
        digest = sha1_file(data)
        bound = t_min(n, mib * MIB, u_seed, u, d)
        timeout = args.timeout or max(120.0, 6 * bound)
        for run in range(1, args.runs + 1):
            for kind in swarms:
                log(f"{kind}: seed + {n} peers, {mib} MiB, upload cap {fmt_rate(u)} each"
                    + (f" (seed {fmt_rate(u_seed)})" if u_seed != u else "")
                    + (f", download cap {fmt_rate(d)}" if d else "") + f", T_min {bound:.1f} s"
                    + (f", run {run} of {args.runs}" if args.runs > 1 else ""))
                try:
                    r = run_swarm(kind, n, data, digest, args.work, u_seed, u, d, args.piece_size, args.sample,
                                  timeout, args.shoal_args.split())
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"  FAILED: {e}")
                    log()
                    failed.append((kind, n, run, str(e)))
                    continue
                r["T_min"], r["eta"], r["run"] = bound, bound / r["T"], run
                results.append(r)
                report(r, n_cores)
                print_timeline(r)
                log()

    log("Swarm efficiency on loopback (eta = T_min / T; every node's upload capped at U)")
    log(f"{'swarm':>10} {'N':>3} {'F MiB':>6} {'U MiB/s':>8} {'T_min s':>8} {'T s':>7} {'eta':>6} "
        f"{'first':>6} {'median':>7} {'last':>6} {'seed RSS MiB':>13} {'seed copies':>12} {'recv copies':>12} "
        f"{'CPU s':>6} {'busy':>5}")
    for r in results:
        cpu = r["seed_cpu"] + r["peer_cpu"] + r["tracker_cpu"]
        log(f"{r['swarm']:>10} {r['n']:>3} {r['size'] / MIB:>6.0f} {r['u'] / MIB:>8g} {r['T_min']:>8.1f} "
            f"{r['T']:>7.2f} {r['eta']:>6.3f} {r['first']:>6.1f} {r['median']:>7.1f} {r['last']:>6.1f} "
            f"{r['seed_rss_mib']:>13.1f} {r['seed_sent'] / r['size']:>12.2f} {r['peer_received_mean']:>12.2f} "
            f"{cpu:>6.1f} {r['machine_busy'] * 100:>4.0f}%")
    for kind, n, run, _ in failed:
        log(f"{kind:>10} {n:>3}  run {run}: did not finish (see above)")
    log("(seed copies: bytes the seed sent / F, 1.00 at the bound; recv copies: bytes each peer received / F,")
    log(" 1.00 = nothing fetched twice; both from TCP counters. CPU s: all swarm processes; busy: the whole")
    log(" machine over T, other work included.)")
    if args.runs > 1:
        for kind in swarms:
            for n in ns:
                etas = [r["eta"] for r in results if r["swarm"] == kind and r["n"] == n]
                etas += [0.0 for f in failed if f[0] == kind and f[1] == n]  # a run that never finished
                if etas:
                    log(f"{kind} N={n}: median eta {statistics.median(etas):.3f} over {len(etas)} runs "
                        f"(range {min(etas):.3f}-{max(etas):.3f}; a run that did not finish counts as 0)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
