#!/usr/bin/env python3
"""LEDBAT yielding: a uTP transfer and a TCP bulk transfer share one rate-limited path.

Two network namespaces made by this script (shoal-ledbat-a, shoal-ledbat-b; needs root) joined
by a veth pair, 10.77.0.1 <-> 10.77.0.2. The a -> b direction goes through netem: --rate (default
40 Mbit/s), --delay (10 ms) and a queue of --limit packets (default 2000: a deep, bloated buffer,
which is what LEDBAT is for). In namespace a: a Shoal seed; in b: a Shoal leecher dialling it
over uTP (`--utp prefer`; its log must say "connected over uTP"). A Python TCP sender in a
pushes bytes to a receiver in b through the same queue.

Phases, each --phase seconds: uTP alone, uTP + TCP, then TCP alone. Rates come from the
receiving side: the veth's received bytes in b (everything) and the TCP receiver's count (TCP);
uTP is the difference. Printed: each flow's rate in each phase, the uTP share of the link while
both run, and the path's delay seen by pings during each phase (queueing).

LEDBAT's aim: close to the link alone, a small share (it backs off once the queue passes its
100 ms target) when TCP fills the queue, and not adding much delay on its own.

Usage: sudo bench/ledbat.py [--rate 40mbit] [--delay 10ms] [--limit 2000] [--phase 8]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")
A, B = "shoal-ledbat-a", "shoal-ledbat-b"
IP_A, IP_B = "10.77.0.1", "10.77.0.2"

TCP_SENDER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"x" * 65536
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendall(buf)
"""

TCP_RECEIVER = """
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2]))); l.listen(1)
print("LISTENING", flush=True)
c, _ = l.accept()
total = 0
with open(sys.argv[3], "w") as f:
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        total += len(d)
        f.seek(0); f.write(str(total)); f.flush()
"""


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def ns(name, *cmd):
    return ["ip", "netns", "exec", name, *cmd]


def setup(rate, delay, limit):
    teardown()
    sh("ip", "netns", "add", A)
    sh("ip", "netns", "add", B)
    sh("ip", "link", "add", "vla", "netns", A, "type", "veth", "peer", "name", "vlb", "netns", B)
    sh(*ns(A, "ip", "addr", "add", f"{IP_A}/24", "dev", "vla"))
    sh(*ns(B, "ip", "addr", "add", f"{IP_B}/24", "dev", "vlb"))
    for n, dev in ((A, "vla"), (B, "vlb")):
        sh(*ns(n, "ip", "link", "set", dev, "up"))
        sh(*ns(n, "ip", "link", "set", "lo", "up"))
    sh(*ns(A, "tc", "qdisc", "add", "dev", "vla", "root", "netem", "rate", rate, "delay", delay, "limit", str(limit)))


def teardown():
    for n in (A, B):
        sh("ip", "netns", "del", n, check=False)


def rx_bytes():
    out = sh(*ns(B, "cat", "/sys/class/net/vlb/statistics/rx_bytes")).stdout
    return int(out.strip())


def read_count(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def ping_ms(seconds):
    """Median round trip a -> b -> a over `seconds` (pings every 0.2 s)."""
    out = sh(*ns(B, "ping", "-i", "0.2", "-w", str(seconds), IP_A), check=False).stdout
    times = sorted(float(t) for t in re.findall(r"time=([\d.]+)", out))
    return times[len(times) // 2] if times else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", default="40mbit")
    ap.add_argument("--delay", default="10ms")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--phase", type=float, default=8.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    work = tempfile.mkdtemp(prefix="shoal-ledbat-")
    data = os.path.join(work, "data.bin")
    with open(data, "wb") as f:
        for _ in range(512):
            f.write(os.urandom(1 << 20))
    torrent = os.path.join(work, "data.torrent")
    setup(args.rate, args.delay, args.limit)
    procs = []
    try:
        seed = subprocess.Popen(ns(A, SHOAL, "share", data, "-o", torrent, "--listen", f"{IP_A}:6881", "--no-dht",
                                   "--no-lsd", "-q"), stdout=subprocess.PIPE, text=True)
        procs.append(seed)
        for line in seed.stdout:
            if line.startswith("ready:"):
                break
        count = os.path.join(work, "tcp.count")
        recv = subprocess.Popen(ns(B, sys.executable, "-c", TCP_RECEIVER, IP_B, "5001", count),
                                stdout=subprocess.PIPE, text=True)
        procs.append(recv)
        recv.stdout.readline()
        leech_log = open(os.path.join(work, "leech.log"), "w")
        leech = subprocess.Popen(ns(B, SHOAL, "get", torrent, "-o", os.path.join(work, "out"), "--peer",
                                    f"{IP_A}:6881", "--listen", f"{IP_B}:6881", "--no-dht", "--no-lsd",
                                    "--no-trackers", "--utp", "prefer", "-v"), stdout=subprocess.DEVNULL,
                                 stderr=leech_log)
        procs.append(leech)
        time.sleep(2)  # connect and leave slow start
        phase = args.phase

        def measure(label):
            r0, t0, c0 = rx_bytes(), time.monotonic(), read_count(count)
            rtt = ping_ms(int(phase))
            r1, t1, c1 = rx_bytes(), time.monotonic(), read_count(count)
            total = (r1 - r0) / (t1 - t0)
            tcp = (c1 - c0) / (t1 - t0)
            utp = max(total - tcp, 0)
            print(f"{label:<16} uTP {utp / 1e6:6.2f} MB/s   TCP {tcp / 1e6:6.2f} MB/s   "
                  f"link {total / 1e6:6.2f} MB/s   ping {rtt:6.1f} ms", flush=True)
            return utp, tcp

        alone, _ = measure("uTP alone")
        sender = subprocess.Popen(ns(A, sys.executable, "-c", TCP_SENDER, IP_B, "5001", str(3 * phase + 4)))
        procs.append(sender)
        time.sleep(2)
        utp_both, tcp_both = measure("uTP + TCP")
        leech.terminate()
        leech.wait()
        time.sleep(1)
        _, tcp_alone = measure("TCP alone")
        share = utp_both / (utp_both + tcp_both) if utp_both + tcp_both else float("nan")
        print(f"uTP share while both run: {share:.1%} (uTP alone {alone / 1e6:.2f} MB/s, TCP alone "
              f"{tcp_alone / 1e6:.2f} MB/s)")
        with open(os.path.join(work, "leech.log")) as f:
            if "connected over uTP" not in f.read():
                sys.exit("the leecher's connection was not uTP")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        teardown()


if __name__ == "__main__":
    main()
