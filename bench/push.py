#!/usr/bin/env python3
"""The server peer and sealed shares, measured on loopback against a plain download, same data
(default 1 GiB, generated once under --work), same run:

  get          `shoal share` seed -> `shoal get`: the plain download (leecher process time)
  push         `shoal push DATA.torrent -o DIR` to a fresh server daemon: process start to exit
               (the pusher checks its own data first, then the server fetches it and verifies
               every piece; "held")
  push-xfer    the same push from "pushed" to "held" (the pusher's own data check left out)
  get-ssl      the same content as a group share, `shoal get` by a member (TLS)
  get-sealed   a sealed group share (`share --sealed`), `shoal get` by a member: the ciphertext
               transfer, opened into the plaintext files while it downloads
  open         of get-sealed, how long the opening went on after the download ended

Targets: push / get <= 1.10; decryption keeps up with the transfer (get-sealed / get-ssl close
to 1, open close to 0). Sealing speed at share time is printed once.

Usage: bench/push.py [--size-mib 1024] [--runs 3] [--work DIR]
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import SHOAL, log, run_pair, start_and_wait, stop  # noqa: E402
from tls import bench_args, group_data, shoal_cmd  # noqa: E402

NO_DISCOVERY = ["--no-dht", "--no-lsd"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_push(work, data_dir, torrent, pusher_home):
    """One push to a fresh server daemon; returns (whole seconds, transfer seconds)."""
    pusher = subprocess.run(shoal_cmd(pusher_home, "identity"), check=True, capture_output=True, text=True).stdout.strip()
    home = os.path.join(work, "push-server")
    shutil.rmtree(home, ignore_errors=True)
    server, m = start_and_wait([SHOAL, "daemon", "--data-dir", home, "--listen", "127.0.0.1:0", "--rpc-listen",
                                f"127.0.0.1:{free_port()}", *NO_DISCOVERY, "--server-listen", "127.0.0.1:0",
                                "--allow", pusher], r"--to (\S+)")
    target = m.group(1)
    try:
        start = time.monotonic()
        out = subprocess.run(shoal_cmd(pusher_home, "push", torrent, "-o", data_dir, "--to", target, "-q",
                                       "--listen", "127.0.0.1:0", *NO_DISCOVERY),
                             capture_output=True, text=True, timeout=900)
        whole = time.monotonic() - start
        if out.returncode != 0:
            raise SystemExit(f"push failed: {out.stderr}")
        held = re.search(r"held: .* in ([0-9.]+) s", out.stdout)
        return whole, float(held.group(1)) if held else float("nan")
    finally:
        stop(server)
        shutil.rmtree(home, ignore_errors=True)


def main():
    args = bench_args(__doc__)
    data_dir, torrent, data, seed_home, leech_home, _, _, ssl_torrent = group_data(args)
    sealed_torrent = os.path.join(args.work, f"data-{args.size_mib}-sealed.torrent")
    pusher_home = os.path.join(args.work, "ids", "pusher")

    def group_seed(extra, t):
        def seed(d, _t):
            proc, m = start_and_wait(shoal_cmd(seed_home, "share", *NO_DISCOVERY, data, "-o", t, "--group", "bench",
                                               "--listen", "127.0.0.1:0", *extra),
                                     r"TLS peers on 127\.0\.0\.1:(\d+)", timeout=900)
            return proc, f"127.0.0.1:{m.group(1)}"
        return seed

    def member_leech(t, out, peer):
        return compare.shoal_leech_cmd(t, out, peer) + ["--data-dir", leech_home]

    # Sealing speed, once (later runs reuse the ciphertext).
    if not os.path.exists(sealed_torrent):
        proc, m = start_and_wait(shoal_cmd(seed_home, "share", *NO_DISCOVERY, data, "-o", sealed_torrent, "--group",
                                           "bench", "--sealed", "--listen", "127.0.0.1:0"),
                                 r"sealed in ([0-9.]+) s, (.*)\)", timeout=900)
        log(f"sealing {args.size_mib} MiB: {m.group(1)} s ({m.group(2)})")
        stop(proc)

    cases = ["get", "push", "push-xfer", "get-ssl", "get-sealed", "open"]
    times = {c: [] for c in cases}
    out = os.path.join(args.work, "push-out")
    def settle():
        # The previous case's written gigabyte is flushed before the next one is timed, so no
        # case pays for another's writeback.
        shutil.rmtree(out, ignore_errors=True)
        os.sync()

    def get():
        times["get"].append(compare.shoal_run(data_dir, torrent, out).wall)

    def push():
        whole, xfer = run_push(args.work, data_dir, torrent, pusher_home)
        times["push"].append(whole)
        times["push-xfer"].append(xfer)

    for r in range(args.runs):
        # Alternate which of the two goes first.
        for case in ([get, push] if r % 2 == 0 else [push, get]):
            settle()
            case()
        settle()
        times["get-ssl"].append(run_pair(group_seed([], ssl_torrent + ".seed"), member_leech, data_dir,
                                         ssl_torrent, out).wall)
        settle()
        # The sealed run's leecher prints how long the opening took.
        seed, peer = group_seed(["--sealed"], sealed_torrent)(data_dir, sealed_torrent)
        try:
            start = time.monotonic()
            got = subprocess.run(member_leech(sealed_torrent, out, peer), capture_output=True, text=True, timeout=900)
            times["get-sealed"].append(time.monotonic() - start)
            opened = re.search(r"opened: .*\(([0-9.]+) s after", got.stdout)
            times["open"].append(float(opened.group(1)) if opened else float("nan"))
        finally:
            stop(seed)
        shutil.rmtree(out, ignore_errors=True)
        log(f"run {r + 1}: " + "  ".join(f"{c} {times[c][-1]:.2f} s" for c in cases))
    med = {c: statistics.median(v) for c, v in times.items()}
    log(f"\nmedians of {args.runs} runs, {args.size_mib} MiB:")
    for c in cases:
        rate = "" if c == "open" else f"  {args.size_mib / med[c]:7.1f} MiB/s"
        log(f"  {c:11} {med[c]:6.2f} s{rate}")
    log(f"push / get = {med['push'] / med['get']:.2f} (target <= 1.10); "
        f"push-xfer / get = {med['push-xfer'] / med['get']:.2f}")
    log(f"sealing's cost: get-sealed / get-ssl = {med['get-sealed'] / med['get-ssl']:.2f}, the opening ending "
        f"{med['open']:.2f} s after the download (0 when decryption keeps up)")


if __name__ == "__main__":
    main()
