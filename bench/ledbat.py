#!/usr/bin/env python3
"""LEDBAT yielding: a uTP transfer and a TCP bulk transfer share one rate-limited path.

Three network namespaces made by this script (shoal-ledbat-a, -r, -b; needs root): a and b joined
through a router r (10.77.1.1 - r - 10.77.2.2). r's interface towards b is the bottleneck: a
token bucket (tc tbf; this machine's kernel has no netem) of --rate (default 40 Mbit/s) with a
queue holding up to --queue-ms of it (default 500 ms: a deep, bloated buffer, which is what
LEDBAT is for). The queue is on a router, not on the senders' own interface, where Linux's TCP
small queues would keep TCP from ever filling it. In namespace a: a Shoal seed; in b: a Shoal leecher dialling it
over uTP (`--utp prefer`; its log must say "connected over uTP"). A Python TCP sender in a
pushes bytes to a receiver in b through the same queue, with --tcp-cc congestion control
(default cubic, the loss-based TCP LEDBAT is meant to yield to; this machine's default is bbr).

Phases, each --phase seconds: uTP alone, uTP + TCP, then TCP alone. Rates come from the
receiving side: the veth's received bytes in b (everything) and the TCP receiver's count (TCP);
uTP is the difference. Printed: each flow's rate in each phase, the uTP share of the link while
both run, and the path's delay seen by pings during each phase (queueing).

LEDBAT's aim: close to the link alone, a small share (it backs off once the queue passes its
100 ms target) when TCP fills the queue, and not adding much delay on its own.

Usage: sudo bench/ledbat.py [--rate 40mbit] [--queue-ms 500] [--phase 8] [--tcp-cc cubic|bbr|reno]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")
A, R, B = "shoal-ledbat-a", "shoal-ledbat-r", "shoal-ledbat-b"
IP_A, IP_B = "10.77.1.1", "10.77.2.2"

TCP_SENDER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, sys.argv[4].encode())
s.connect((sys.argv[1], int(sys.argv[2])))
buf = b"x" * 65536
end = time.monotonic() + float(sys.argv[3])
try:
    while time.monotonic() < end:
        s.sendall(buf)
except OSError:
    pass  # the receiver went first
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


# Round trips of small UDP probes b -> a -> b (the answer crosses the queue): the path's delay.
ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 7007))
while True:
    d, a = s.recvfrom(64); s.sendto(d, a)
"""

ECHO_CLIENT = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.05)
end = time.monotonic() + float(sys.argv[2]); times = []
while time.monotonic() < end:
    s.sendto(struct.pack("d", time.monotonic()), (sys.argv[1], 7007))
    stop = time.monotonic() + 0.2
    while time.monotonic() < stop:
        try:
            d, _ = s.recvfrom(64)
            times.append((time.monotonic() - struct.unpack("d", d)[0]) * 1000)
        except socket.timeout:
            pass
times.sort()
print(times[len(times) // 2] if times else float("nan"))
"""


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def ns(name, *cmd):
    return ["ip", "netns", "exec", name, *cmd]


def setup(rate, queue_ms):
    teardown()
    for n in (A, R, B):
        sh("ip", "netns", "add", n)
        sh(*ns(n, "ip", "link", "set", "lo", "up"))
    sh("ip", "link", "add", "vla", "netns", A, "type", "veth", "peer", "name", "vra", "netns", R)
    sh("ip", "link", "add", "vrb", "netns", R, "type", "veth", "peer", "name", "vlb", "netns", B)
    for n, dev, addr in ((A, "vla", f"{IP_A}/24"), (R, "vra", "10.77.1.254/24"), (R, "vrb", "10.77.2.254/24"),
                         (B, "vlb", f"{IP_B}/24")):
        sh(*ns(n, "ip", "addr", "add", addr, "dev", dev))
        sh(*ns(n, "ip", "link", "set", dev, "up"))
    sh(*ns(A, "ip", "route", "add", "default", "via", "10.77.1.254"))
    sh(*ns(B, "ip", "route", "add", "default", "via", "10.77.2.254"))
    sh(*ns(R, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
    sh(*ns(R, "tc", "qdisc", "add", "dev", "vrb", "root", "tbf", "rate", rate, "burst", "32k", "latency",
           f"{queue_ms}ms"))


def teardown():
    for n in (A, R, B):
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
    """Median round trip of UDP probes b -> a -> b over `seconds` (one every 0.2 s)."""
    out = sh(*ns(B, sys.executable, "-c", ECHO_CLIENT, IP_A, str(seconds))).stdout
    return float(out.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", default="40mbit")
    ap.add_argument("--queue-ms", type=int, default=500)
    ap.add_argument("--phase", type=float, default=8.0)
    ap.add_argument("--tcp-cc", default="cubic", help="the TCP flow's congestion control (cubic: loss-based, "
                    "what LEDBAT is meant to yield to; bbr: this machine's default)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    work = tempfile.mkdtemp(prefix="shoal-ledbat-")
    data = os.path.join(work, "data.bin")
    with open(data, "wb") as f:
        for _ in range(512):
            f.write(os.urandom(1 << 20))
    torrent = os.path.join(work, "data.torrent")
    setup(args.rate, args.queue_ms)
    procs = []
    try:
        seed = subprocess.Popen(ns(A, SHOAL, "share", data, "-o", torrent, "--listen", f"{IP_A}:6881", "--no-dht",
                                   "--no-lsd", "-q"), stdout=subprocess.PIPE, text=True)
        procs.append(seed)
        for line in seed.stdout:
            if line.startswith("ready:"):
                break
        procs.append(subprocess.Popen(ns(A, sys.executable, "-c", ECHO_SERVER, IP_A)))
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
            rtt = ping_ms(phase)
            r1, t1, c1 = rx_bytes(), time.monotonic(), read_count(count)
            total = (r1 - r0) / (t1 - t0)
            tcp = (c1 - c0) / (t1 - t0)
            utp = max(total - tcp, 0)
            print(f"{label:<16} uTP {utp / 1e6:6.2f} MB/s   TCP {tcp / 1e6:6.2f} MB/s   "
                  f"link {total / 1e6:6.2f} MB/s   ping {rtt:6.1f} ms", flush=True)
            return utp, tcp

        alone, _ = measure("uTP alone")
        sender = subprocess.Popen(ns(A, sys.executable, "-c", TCP_SENDER, IP_B, "5001", str(3 * phase + 4),
                                     args.tcp_cc))
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
