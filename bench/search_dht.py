#!/usr/bin/env python3
"""Search through the DHT crawler, measured on loopback: how much of what a small DHT holds a
crawling Shoal daemon has indexed (metadata fetched and checked) after N minutes.

--holders Shoal daemons (default 10) form a DHT on 127.0.0.1 (each bootstrapped from the first;
LSD off) and seed --items small torrents (default 100, 16 KiB each) placed by a Zipf popularity
(rank r on about holders / r^0.8 of them, so most on one or two); each holder announces its
torrents in the DHT as any Shoal daemon does. One more daemon runs with --dht-crawl: every
minute it samples up to 32 DHT nodes (BEP 51), then fetches the metadata of up to 16 new
info-hashes (BEP 9). Every --every seconds (default 60) until --minutes (default 5) the script
asks the crawler (`search.query`, neighbours off) for every item by its name and prints the
recall (items found as verified `dht` results), with the crawler's counters (`search.status`).

Usage: bench/search_dht.py [--holders 10] [--items 100] [--minutes 5] [--every 60] [--work DIR]
"""
import argparse
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, SHOAL, log, start_and_wait, stop  # noqa: E402

WORDS = ["amber", "birch", "coral", "delta", "ember", "fjord", "glade", "heron", "inlet", "jade", "kelp",
         "lotus", "maple", "nectar", "onyx", "pearl", "quartz", "raven", "sable", "tundra", "umber", "violet",
         "willow", "xenon", "yarrow", "zephyr"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def rpc(port, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/jsonrpc", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        reply = json.loads(r.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def start_daemon(home, bootstrap, extra=()):
    port = free_port()
    cmd = [SHOAL, "daemon", "--data-dir", home, "--listen", "127.0.0.1:0", "--rpc-listen", f"127.0.0.1:{port}",
           "--no-lsd", "--dht-port", "0", "--dht-bootstrap", bootstrap, *extra]
    proc, m = start_and_wait(cmd, r"dht: node on (\S+)")
    deadline = time.monotonic() + 60
    while True:
        try:
            rpc(port, "session.get", {})
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return proc, port, m.group(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--holders", type=int, default=10)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--every", type=float, default=60)
    p.add_argument("--work", default=None)
    a = p.parse_args()
    subprocess.run(["cargo", "build", "--release", "-p", "shoal-cli"], cwd=ROOT, check=True)
    work = a.work or tempfile.mkdtemp(prefix="shoal-search-dht-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(7)
    procs = []
    try:
        first, first_rpc, first_dht = start_daemon(os.path.join(work, "holder0"), closed_udp_port())
        holders = [(first, first_rpc)]
        procs.append(first)
        for i in range(1, a.holders):
            proc, port, _ = start_daemon(os.path.join(work, f"holder{i}"), first_dht)
            holders.append((proc, port))
            procs.append(proc)
        items = []
        for rank in range(a.items):
            name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rank:04d}.bin"
            data_dir = os.path.join(work, "data", str(rank))
            os.makedirs(data_dir)
            path = os.path.join(data_dir, name)
            with open(path, "wb") as f:
                f.write(rng.randbytes(16 * 1024))
            torrent = os.path.join(work, "data", f"{rank}.torrent")
            subprocess.run([SHOAL, "create", path, "-o", torrent, "-q"], check=True, capture_output=True)
            b64 = base64.b64encode(open(torrent, "rb").read()).decode()
            copies = max(1, min(a.holders, round(a.holders / (rank + 1) ** 0.8)))
            for h in rng.sample(range(a.holders), copies):
                rpc(holders[h][1], "torrent.add", {"torrent": b64, "download_dir": data_dir})
            items.append(name)
        log(f"{a.items} items on {a.holders} holders; starting the crawler")
        crawler, crawler_rpc, _ = start_daemon(os.path.join(work, "crawler"), first_dht, ["--dht-crawl"])
        procs.append(crawler)
        started = time.monotonic()
        print(f"{'minutes':>8}{'recall':>8}{'sampled nodes':>15}{'new hashes':>12}{'recorded':>10}{'failed':>8}")
        while True:
            time.sleep(max(0.0, a.every - (time.monotonic() - started) % a.every))
            minutes = (time.monotonic() - started) / 60
            found = 0
            for name in items:
                hits = rpc(crawler_rpc, "search.query", {"q": name.replace("-", " ").replace(".bin", ""),
                                                         "limit": 5, "peers": False})
                found += any(h["name"] == name and h["source"] == "dht" and h["verified"] for h in hits)
            crawl = rpc(crawler_rpc, "search.status", {})["crawl"]
            print(f"{minutes:>8.1f}{found / len(items):>8.2f}{crawl['sampled_nodes']:>15}{crawl['new_hashes']:>12}"
                  f"{crawl['recorded']:>10}{crawl['failed']:>8}", flush=True)
            if minutes >= a.minutes:
                break
    finally:
        for proc in procs:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
