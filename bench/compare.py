#!/usr/bin/env python3
"""Side-by-side loopback transfer benchmark: Shoal and libtorrent on the same data, same run.

For each size (default 1 GiB) it generates a file once (cached under --work), makes one v1
torrent with `shoal create`, and then, for each round:
  - Shoal seed (`shoal share`) -> Shoal leecher (`shoal get --peer`),
  - libtorrent seed -> libtorrent leecher (drivers/lt_client.py, TCP only, uTP off),
timing each leecher from process start to exit (complete and verified) and recording its peak
RSS (from wait4). It prints every run, the medians, and the ratio libtorrent time / Shoal time
(above 1.0 means Shoal is faster). With --rss-sizes it also measures Shoal's leecher peak RSS for
other file sizes, to show memory does not grow with the file.

Everything runs on 127.0.0.1. Downloads are deleted after each run; the generated data and the
page cache are shared by both clients, so neither pays a cold-disk read the other does not.

Usage: bench/compare.py [--size-mib 1024] [--runs 3] [--rss-sizes 1024,4096] [--work DIR]
"""
import argparse
import collections
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT = os.path.join(ROOT, "drivers", "lt_client.py")
# SHOAL_BIN runs another build (an older commit, for a before/after comparison).
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")


def log(msg):
    print(msg, flush=True)


def generate(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    log(f"generating {size >> 20} MiB in {path}")
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(len(chunk), size - written)
            # Vary each MiB so no two pieces are identical.
            f.write(written.to_bytes(8, "little") + chunk[8:n] if n > 8 else chunk[:n])
            written += n


def start_and_wait(cmd, pattern, timeout=120, merge_stderr=False):
    """Starts a server process and waits for an output line matching pattern; returns (proc, match).

    Reads stdout (and stderr with merge_stderr) on a thread that keeps draining it afterwards, so
    the wait is bounded even if the process goes quiet and a chatty server never blocks on a
    full pipe."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace",
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL)
    lines = queue.Queue()

    def drain():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + timeout
    tail = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        tail = (tail + [line.rstrip()])[-5:]
        m = re.search(pattern, line)
        if m:
            return proc, m
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not print {pattern!r} within {timeout}s; last lines: {tail}")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def timed(cmd, timeout=600):
    """Runs cmd; returns (seconds, peak RSS in MiB, cpu seconds)."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty client cannot block on it
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{cmd[0]} timed out after {timeout}s")
            time.sleep(0.005)
        elapsed = time.monotonic() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err.read().decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


# Seeds start a server and return (process, "host:port" to dial); leech commands build the
# argv of a download that exits 0 once complete and verified. bench/table.py combines them.

def shoal_seed(data_dir, torrent):
    seed, m = start_and_wait([SHOAL, "share", "--no-dht", "--no-lsd", os.path.join(data_dir, "data.bin"), "-o", torrent + ".seed",
                              "--listen", "127.0.0.1:0"], r"ready: .* on 127\.0\.0\.1:(\d+)")
    return seed, f"127.0.0.1:{m.group(1)}"


def shoal_leech_cmd(torrent, out, peer):
    return [SHOAL, "get", "--no-dht", "--no-lsd", torrent, "-o", out, "--peer", peer, "--no-trackers", "--listen", "127.0.0.1:0", "-q"]


def lt_seed(data_dir, torrent):
    seed, m = start_and_wait([sys.executable, LT, "seed", "--torrent", torrent, "--save", data_dir, "--listen", "0"],
                             r"READY (\d+)")
    return seed, f"127.0.0.1:{m.group(1)}"


def lt_leech_cmd(torrent, out, peer):
    return [sys.executable, LT, "leech", "--torrent", torrent, "--save", out, "--listen", "0", "--peer", peer]


def proc_cpu(pid):
    """CPU seconds (user + system) process pid has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def proc_peak_rss(pid):
    """Peak RSS of process pid in MiB (VmHWM in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


# One transfer: leecher wall time, peak RSS and CPU (from wait4), and the seed's CPU during the
# transfer and its peak RSS (from /proc, since the seed is still running).
Sample = collections.namedtuple("Sample", "wall rss cpu seed_cpu seed_rss")


def run_pair(seed_fn, leech_cmd, data_dir, torrent, out):
    seed, peer = seed_fn(data_dir, torrent)
    try:
        seed_cpu = proc_cpu(seed.pid)
        wall, rss, cpu = timed(leech_cmd(torrent, out, peer))
        return Sample(wall, rss, cpu, proc_cpu(seed.pid) - seed_cpu, proc_peak_rss(seed.pid))
    finally:
        stop(seed)


def shoal_run(data_dir, torrent, out):
    return run_pair(shoal_seed, shoal_leech_cmd, data_dir, torrent, out)


def lt_run(data_dir, torrent, out):
    return run_pair(lt_seed, lt_leech_cmd, data_dir, torrent, out)


def prepare(work, size_mib):
    data_dir = os.path.join(work, f"data-{size_mib}")
    os.makedirs(data_dir, exist_ok=True)
    generate(os.path.join(data_dir, "data.bin"), size_mib << 20)
    torrent = os.path.join(work, f"data-{size_mib}.torrent")
    if not os.path.exists(torrent):
        subprocess.run([SHOAL, "create", os.path.join(data_dir, "data.bin"), "-o", torrent, "-q"], check=True)
    return data_dir, torrent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-sizes", default="1024,4096", help="comma-separated MiB sizes for the RSS check ('' to skip)")
    ap.add_argument("--work", default="/tmp/shoal-bench")
    args = ap.parse_args()
    if not os.path.exists(SHOAL):
        subprocess.run(["cargo", "build", "--release", "-p", "shoal-cli"], cwd=ROOT, check=True)
    os.makedirs(args.work, exist_ok=True)
    data_dir, torrent = prepare(args.work, args.size_mib)
    out = os.path.join(args.work, "out")
    results = {"shoal": [], "libtorrent": []}
    clients = [("shoal", shoal_run), ("libtorrent", lt_run)]
    for r in range(args.runs):
        # Alternate who goes first: the first run of a round pays for reclaiming the page
        # cache the previous round filled.
        for name, fn in clients if r % 2 == 0 else clients[::-1]:
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            t, rss, cpu = fn(data_dir, torrent, out)[:3]
            results[name].append((t, rss, cpu))
            mbps = (args.size_mib << 20) / t / 1e6
            log(f"run {r + 1} {name:>10}: {t:6.2f} s  {mbps:7.0f} MB/s  leecher CPU {cpu:5.2f} s  peak RSS {rss:6.1f} MiB")
    shutil.rmtree(out, ignore_errors=True)
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v), statistics.median(x[2] for x in v))
           for k, v in results.items()}
    size = args.size_mib << 20
    log("")
    log(f"{args.size_mib} MiB over loopback, median of {args.runs} runs")
    log(f"{'client':>12} {'time s':>8} {'MB/s':>8} {'CPU s':>7} {'peak RSS MiB':>13}")
    for k, (t, rss, cpu) in med.items():
        log(f"{k:>12} {t:8.2f} {size / t / 1e6:8.0f} {cpu:7.2f} {rss:13.1f}")
    log(f"ratio libtorrent/shoal time: {med['libtorrent'][0] / med['shoal'][0]:.2f} (above 1 = Shoal faster)")
    sizes = [int(s) for s in args.rss_sizes.split(",") if s.strip()]
    if sizes:
        log("")
        log("Shoal leecher peak RSS by file size")
        rss_by = {}
        for mib in sizes:
            d, t_file = prepare(args.work, mib)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            t, rss, cpu = shoal_run(d, t_file, out)[:3]
            shutil.rmtree(out, ignore_errors=True)
            rss_by[mib] = rss
            log(f"{mib:>6} MiB: peak RSS {rss:6.1f} MiB ({t:.2f} s)")
        lo, hi = min(rss_by.values()), max(rss_by.values())
        log(f"largest/smallest peak RSS: {hi / lo:.2f}")


if __name__ == "__main__":
    main()
