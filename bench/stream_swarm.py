#!/usr/bin/env python3
"""Does a streaming peer still upload? A Shoal swarm on loopback with one player among leechers.

One `shoal share` seed capped at --seed-x times the bitrate, --leechers `shoal get --seed`
leechers and one `shoal play --no-player` whose stream a reader reads from start to end at the bitrate (a
player without a buffer: it waits whenever the next bytes are not there), every peer's upload capped at the bitrate. When
every `get` has completed and the reader has read the whole file, all are stopped with SIGTERM
and each prints its payload totals (`transferred: downloaded N bytes, uploaded M bytes`). The
script prints each peer's upload/download ratio, the player's against the leechers' mean
(target: within 20 %), and how long the reader waited in all beyond the file's play time.

Everything runs on 127.0.0.1 with DHT and LSD off; every wait is bounded (--timeout).

Usage: bench/stream_swarm.py [--leechers 9] [--size-mib 32] [--bitrate-kib 512] [--seed-x 3] [--runs 1]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import SHOAL, generate, log, stop  # noqa: E402

NODE = ["--listen", "127.0.0.1:0", "--no-dht", "--no-lsd"]
TOTALS = re.compile(r"transferred: downloaded .*?\((\d+) bytes\), uploaded .*?\((\d+) bytes\)")


def totals(log_path, what):
    with open(log_path, errors="replace") as f:
        out = f.read()
    m = TOTALS.search(out)
    if not m:
        raise RuntimeError(f"{what} printed no totals: {out[-400:]!r}")
    return int(m.group(1)), int(m.group(2))


def wait_line(log_path, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        time.sleep(0.05)
    raise RuntimeError(f"{log_path}: no {pattern!r} within {timeout}s")


def read_at(url, rate, timeout):
    """Reads the stream from start to end no faster than `rate` bytes/s, as a player without
    a buffer would; returns the seconds it took (playback time plus every wait)."""
    chunk = 64 * 1024
    started = time.monotonic()
    got = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        while True:
            due = started + got / rate
            if (ahead := due - time.monotonic()) > 0:
                time.sleep(ahead)
            data = r.read(chunk)
            if not data:
                break
            got += len(data)
            if time.monotonic() - started > timeout:
                raise RuntimeError("the reader ran out of time")
    return time.monotonic() - started


def spawn(cmd, log_path):
    log_file = open(log_path, "w")
    return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, text=True)


def run_once(args, work, data, torrent):
    """Returns each leecher's (downloaded, uploaded), the player's, and how long the reader
    took to read the whole file."""
    rate = args.bitrate_kib * 1024
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    seed_log = os.path.join(logs, "seed.log")
    seed = spawn([SHOAL, "share", data, "-o", torrent, *NODE, "--upload-limit", str(int(rate * args.seed_x))], seed_log)
    procs = []
    try:
        peer = wait_line(seed_log, r"ready: .* on (127\.0\.0\.1:\d+)", 120).group(1)
        for i in range(args.leechers):
            out = os.path.join(work, f"leech{i}")
            subprocess.run(["rm", "-rf", out])
            procs.append(spawn([SHOAL, "get", torrent, "-o", out, "--peer", peer, "--seed", "--no-trackers", *NODE,
                                "--upload-limit", str(rate)], os.path.join(logs, f"leech{i}.log")))
        pout = os.path.join(work, "player")
        subprocess.run(["rm", "-rf", pout])
        player_log = os.path.join(logs, "player.log")
        player = spawn([SHOAL, "play", torrent, "-o", pout, "--no-player", "--peer", peer, "--no-trackers", *NODE,
                        "--upload-limit", str(rate)], player_log)
        url = wait_line(player_log, r"stream: (http://\S+)", 60).group(1)
        read_for = read_at(url, rate, args.timeout)
        for i in range(args.leechers):
            wait_line(os.path.join(logs, f"leech{i}.log"), r"complete: ", args.timeout)
        for proc in procs + [player]:
            proc.terminate()
        for proc in procs + [player]:
            proc.wait(timeout=30)
        leechers = [totals(os.path.join(logs, f"leech{i}.log"), f"leecher {i}") for i in range(args.leechers)]
        return leechers, totals(player_log, "the player"), read_for
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        stop(seed)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leechers", type=int, default=9)
    p.add_argument("--size-mib", type=int, default=32)
    p.add_argument("--bitrate-kib", type=int, default=512)
    p.add_argument("--seed-x", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--work", default="/tmp/shoal-stream-swarm")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = os.path.join(args.work, "film.bin")
    generate(data, args.size_mib << 20)
    torrent = os.path.join(args.work, "film.torrent")
    if os.path.exists(torrent):
        os.remove(torrent)
    play_time = (args.size_mib << 20) / (args.bitrate_kib * 1024)
    ratios = []
    for r in range(args.runs):
        leechers, player, read_for = run_once(args, args.work, data, torrent)
        lr = [up / down for down, up in leechers if down]
        pr = player[1] / player[0] if player[0] else 0.0
        mean = statistics.mean(lr)
        ratios.append(pr / mean)
        log(f"run {r + 1}: player uploaded/downloaded {pr:.2f} ({player[1] >> 20} of {player[0] >> 20} MiB); leechers "
            f"{min(lr):.2f}-{max(lr):.2f}, mean {mean:.2f}; player / leechers {pr / mean:.2f}; the reader took "
            f"{read_for:.1f} s for {play_time:.1f} s of playback ({read_for - play_time:.1f} s waiting)")
    log(f"player's ratio / leechers' mean, median of {args.runs}: {statistics.median(ratios):.2f} (target 0.8-1.2)")


if __name__ == "__main__":
    main()
