#!/usr/bin/env python3
"""Side-by-side loopback transfer benchmark: Shoal and libtorrent on the same data, same run.

For each size (default 1 GiB) it generates a file once (cached under --work), makes one v1
torrent with `shoal create`, and then, for each round:
  - Shoal seed (`shoal share`) -> Shoal leecher (`shoal get --peer`),
  - libtorrent seed -> libtorrent leecher (testkit/lt_client.py, TCP only, uTP off),
timing each leecher from process start to exit (complete and verified) and recording its peak
RSS (from wait4). It prints every run, the medians, and the ratio libtorrent time / Shoal time
(above 1.0 means Shoal is faster). With --rss-sizes it also measures Shoal's leecher peak RSS for
other file sizes, to show memory does not grow with the file.

Everything runs on 127.0.0.1. Downloads are deleted after each run; the generated data and the
page cache are shared by both clients, so neither pays a cold-disk read the other does not.

Usage: bench/compare.py [--size-mib 1024] [--runs 3] [--rss-sizes 1024,4096] [--work DIR]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT = os.path.join(ROOT, "testkit", "lt_client.py")
SHOAL = os.path.join(ROOT, "target", "release", "shoal")


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


def start_and_wait(cmd, pattern, timeout=120):
    """Starts a server process and waits for a stdout line matching pattern; returns (proc, match)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return proc, m
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not print {pattern!r} within {timeout}s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def timed(cmd, timeout=600):
    """Runs cmd; returns (seconds, peak RSS in MiB, cpu seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[0]} timed out")
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {proc.stderr.read().decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def shoal_run(data_dir, torrent, out):
    seed, m = start_and_wait([SHOAL, "share", os.path.join(data_dir, "data.bin"), "-o", torrent + ".seed",
                              "--listen", "127.0.0.1:0"], r"ready: .* on 127\.0\.0\.1:(\d+)")
    try:
        return timed([SHOAL, "get", torrent, "-o", out, "--peer", f"127.0.0.1:{m.group(1)}", "--no-trackers",
                      "--listen", "127.0.0.1:0", "-q"])
    finally:
        stop(seed)


def lt_run(data_dir, torrent, out):
    seed, m = start_and_wait([sys.executable, LT, "seed", "--torrent", torrent, "--save", data_dir, "--listen", "0"],
                             r"READY (\d+)")
    try:
        return timed([sys.executable, LT, "leech", "--torrent", torrent, "--save", out, "--listen", "0",
                      "--peer", f"127.0.0.1:{m.group(1)}"])
    finally:
        stop(seed)


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
    for r in range(args.runs):
        for name, fn in (("shoal", shoal_run), ("libtorrent", lt_run)):
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            t, rss, cpu = fn(data_dir, torrent, out)
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
            t, rss, cpu = shoal_run(d, t_file, out)
            shutil.rmtree(out, ignore_errors=True)
            rss_by[mib] = rss
            log(f"{mib:>6} MiB: peak RSS {rss:6.1f} MiB ({t:.2f} s)")
        lo, hi = min(rss_by.values()), max(rss_by.values())
        log(f"largest/smallest peak RSS: {hi / lo:.2f}")


if __name__ == "__main__":
    main()
