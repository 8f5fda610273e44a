#!/usr/bin/env python3
"""How promptly a capped seed delivers its first bytes: the swarm bench/stream.py measures
players against is only as fast as its seeds' first second.

Each seed (Shoal, libtorrent 2.1, aria2 when installed) seeds one file on 127.0.0.1 with its
upload capped at --rate; a plain BitTorrent client in this script (a raw socket: handshake,
`interested`, then 16 KiB blocks in file order, --pipeline of them outstanding, no extensions)
connects to it once it listens and records when the handshake, the unchoke and the first
100, 200, 400 and 800 kB arrive. The same is done over HTTP against the plain server
bench/stream.py uses as its floor (drivers/lt_stream.py http, one token bucket at --rate).
Every seed is fresh for each of --runs runs; each figure is the median.

A seed held to R bytes/s cannot send 100 kB much before 100 kB / R (0.49 s at 202 kB/s, less
its burst); a seed far behind that bounds every client's first frame, whatever the client does.

Usage: bench/seed_start.py [--file PATH] [--rate 202000] [--runs 3] [--pipeline 16]
       (default file: bench/stream.py's 1 Mbit/s faststart video, made if missing)
Needs: libtorrent==2.1.1 (pip); aria2c is measured when on PATH. Loopback only; every wait is
bounded (--timeout per run).
"""
import argparse
import hashlib
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")
DRIVERS = os.path.join(ROOT, "drivers")
MARKS = (100_000, 200_000, 400_000, 800_000)
BLOCK = 16384


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bdecode_end(b, j):
    """Index just past the bencoded value starting at b[j]."""
    c = b[j:j + 1]
    if c in (b"d", b"l"):
        j += 1
        while b[j:j + 1] != b"e":
            j = bdecode_end(b, j)
        return j + 1
    if c == b"i":
        return b.index(b"e", j) + 1
    n = b.index(b":", j)
    return n + 1 + int(b[j:n])


def torrent_facts(path):
    raw = open(path, "rb").read()
    start = raw.index(b"4:info") + 6
    info_hash = hashlib.sha1(raw[start:bdecode_end(raw, start)]).digest()
    piece = int(re.search(rb"12:piece lengthi(\d+)e", raw).group(1))
    return info_hash, piece


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Reader:
    def __init__(self, sock, deadline):
        self.sock, self.buf, self.deadline = sock, b"", deadline

    def read(self, n):
        while len(self.buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the seed closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def probe_bt(port, info_hash, piece_len, size, pipeline, timeout):
    """Times (s after connect) of the handshake, the unchoke and each mark, from a raw peer."""
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-SB0001-" + os.urandom(12))
        r = Reader(sock, deadline)
        r.read(68)
        out = {"handshake": time.monotonic() - t0}
        sock.sendall(struct.pack(">IB", 1, 2))  # interested
        blocks = [(o // piece_len, o % piece_len, min(BLOCK, size - o))
                  for o in range(0, min(size, MARKS[-1] + BLOCK), BLOCK)]
        sent = got = 0
        while got < min(size, MARKS[-1]):
            length = struct.unpack(">I", r.read(4))[0]
            if length == 0:
                continue
            msg = r.read(length)
            if msg[0] == 1 and "unchoke" not in out:  # unchoke
                out["unchoke"] = time.monotonic() - t0
            if msg[0] == 7:  # piece
                got += length - 9
                for mark in MARKS:
                    if got >= mark and mark not in out:
                        out[mark] = time.monotonic() - t0
            if "unchoke" in out:
                limit = pipeline if msg[0] == 1 else sent + (1 if msg[0] == 7 else 0)
                while sent < min(len(blocks), limit):
                    p, begin, n = blocks[sent]
                    sock.sendall(struct.pack(">IBIII", 13, 6, p, begin, n))
                    sent += 1
        return out
    finally:
        sock.close()


def probe_http(port, name, timeout):
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(f"GET /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-{MARKS[-1] - 1}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        r = Reader(sock, deadline)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += r.read(1)
        out = {"handshake": time.monotonic() - t0, "unchoke": time.monotonic() - t0}
        got = 0
        while got < MARKS[-1]:
            got += len(r.read(min(BLOCK, MARKS[-1] - got)))
            for mark in MARKS:
                if got >= mark and mark not in out:
                    out[mark] = time.monotonic() - t0
        return out
    finally:
        sock.close()


def start(cmd, log, cwd=None):
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                            start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# What each seed prints once it takes peers (lines in its log).
READY = {"shoal": r"seeding on 127\.0\.0\.1:\d+", "libtorrent": r"READY \d+", "http": r"stream: http://"}


def run_seed(kind, args, scratch, info_hash, piece_len, size):
    port = free_port()
    folder = tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch)
    name = os.path.basename(args.file)
    os.link(args.file, os.path.join(folder, name))
    log = open(os.path.join(scratch, f"{kind}-{time.monotonic_ns()}.log"), "wb")
    if kind == "shoal":
        cmd = [SHOAL, "get", args.torrent, "-o", folder, "--seed", "--upload-limit", str(args.rate), "--no-dht",
               "--no-lsd", "--no-trackers", "--listen", f"127.0.0.1:{port}"]
    elif kind == "libtorrent":
        cmd = [sys.executable, os.path.join(DRIVERS, "lt_client.py"), "seed", "--torrent", args.torrent, "--save",
               folder, "--listen", str(port), "--upload-limit", str(args.rate), "--tick-ms", "100", "--watch-stdin"]
    elif kind == "aria2":
        cmd = ["aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
               "--enable-peer-exchange=false", "--seed-ratio=0.0", "--bt-seed-unverified=true",
               "--check-integrity=false", f"--max-upload-limit={args.rate}", f"--listen-port={port}",
               "--disable-ipv6=true", "-d", folder, args.torrent]
    else:
        cmd = [sys.executable, os.path.join(DRIVERS, "lt_stream.py"), "http", "--file", args.file, "--rate",
               str(args.rate), "--port", str(port), "--watch-stdin"]
    proc = start(cmd, log)
    try:
        deadline = time.monotonic() + 30
        ready = READY.get(kind)
        while ready and not re.search(ready, open(log.name, "rb").read().decode(errors="replace")):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{kind} did not say it was ready within 30 s (log {log.name})")
            time.sleep(0.02)
        if not ready and not wait_port(port, deadline):
            raise RuntimeError(f"{kind} did not listen on {port} within 30 s (log {log.name})")
        if kind == "http":
            return probe_http(port, name, args.timeout)
        # aria2 says nothing when it is ready: it closes a connection until it has checked
        # its data, so the probe tries again (the time counts from the connection that stayed).
        while True:
            try:
                return probe_bt(port, info_hash, piece_len, size, args.pipeline, args.timeout)
            except ConnectionError:
                if ready or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default=None)
    ap.add_argument("--torrent", default=None, help="the file's torrent (default: made with `shoal create`)")
    ap.add_argument("--rate", type=int, default=202000, help="every seed's upload cap, bytes/s")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pipeline", type=int, default=16, help="blocks the raw peer keeps asked for")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--seeds", default="http,shoal,libtorrent,aria2")
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="seed-start-")
    try:
        if args.file is None:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "stream.py"), "--make-videos",
                            "--videos", "1000k-faststart"], check=True, stdout=subprocess.DEVNULL)
            args.file = "/tmp/shoal-stream-bench/videos/1000k-faststart/1000k-faststart.mp4"
            args.torrent = args.torrent or "/tmp/shoal-stream-bench/videos/1000k-faststart.torrent"
        if args.torrent is None:
            args.torrent = os.path.join(scratch, "file.torrent")
            subprocess.run([SHOAL, "create", args.file, "-o", args.torrent, "-q"], check=True)
        info_hash, piece_len = torrent_facts(args.torrent)
        size = os.path.getsize(args.file)
        kinds = [k for k in args.seeds.split(",") if k != "aria2" or shutil.which("aria2c")]
        print(f"{args.file}: {size} bytes, pieces of {piece_len // 1024} KiB; every seed capped at "
              f"{args.rate} B/s; raw peer with {args.pipeline} blocks outstanding; median of {args.runs}")
        print(f"{'seed':>10} {'handshake':>9} {'unchoke':>8} " + " ".join(f"{m // 1000:>5}kB" for m in MARKS)
              + f" {'100kB at cap':>12}")
        for kind in kinds:
            runs = [run_seed(kind, args, scratch, info_hash, piece_len, size) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in ["handshake", "unchoke", *MARKS]}
            print(f"{kind:>10} {med['handshake']:>9.2f} {med['unchoke']:>8.2f} "
                  + " ".join(f"{med[m]:>7.2f}" for m in MARKS) + f" {MARKS[0] / args.rate:>12.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
