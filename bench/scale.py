#!/usr/bin/env python3
"""Many torrents in one daemon: Shoal, transmission-daemon and libtorrent seeding the same N
small torrents, same run, same data.

For each N in --torrents (default 1000) the script makes N small files (16-64 KiB, distinct,
deterministic: file i is always the same bytes) and a v1 torrent for each (16 KiB pieces, no
trackers), built here with hashlib. The files of the largest N are made once; a smaller N uses
the first N. Then, one client after the other:

  Shoal         `shoal daemon --no-dht --no-lsd --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:PORT
                --data-dir D`; torrents added with JSON-RPC `torrent.add` (base64 .torrent and
                `download_dir`), one call after the other on one keep-alive connection.
  Transmission  transmission-daemon 3.00 in the foreground with its own config folder, RPC and
                peers on 127.0.0.1, no DHT, LPD, PEX, uTP or port mapping, no RPC auth
                (whitelist 127.0.0.1); torrents added with `torrent-add` (`metainfo` and
                `download-dir`) the same way. Everything else keeps Transmission's defaults.
  libtorrent    a Python child process running one session (2.1 bindings) on 127.0.0.1:0 with
                DHT, LSD, UPnP, NAT-PMP and uTP off; torrents added with async_add_torrent. Its
                active_seeds and active_limit are raised to N so that, like the two daemons, it
                seeds every torrent at once (its defaults would queue all but 5), and so is
                active_checking (--lt-active-checking): with its default of 1 it starts one
                check per one-second tick, so N torrents take N seconds to reach seeding. The
                figures of this process include the Python interpreter (empty_rss_mib in the
                JSON is its RSS with the session made and nothing added).

Each client finds the data already in place and checks it before it seeds. Measured per client:

  add s             first add call to the last one answered (libtorrent: first
                    async_add_torrent to the last add_torrent_alert, in-process, no RPC)
  seeding s         first add call to every torrent seeding (Shoal `state` "seeding",
                    Transmission status 6, libtorrent torrent_status.seeding), polled
  threads, RSS MiB  /proc/PID/status Threads and VmRSS at the end of the idle window;
  peak MiB          VmHWM at the same moment (the peak includes adding and checking)
  KiB/torrent       (RSS at the end of the idle window - RSS before the first add) / N
  idle CPU %        (utime + stime) over --idle-seconds with no peer and no RPC call, as a
                    percentage of one core; the window starts --settle-seconds after the last
                    torrent reached seeding
  list p50/p99 ms   --list-calls (20) calls listing every torrent after one untimed call, time to
                    the whole reply, each on a new connection: Shoal `torrent.list`, Transmission
                    `torrent-get`, each asking for the same 16 columns a list view shows (see
                    LIST_FIELDS); nearest rank, so with 20 calls p99 is the slowest. The same
                    calls on one kept-alive connection are printed under the table (see Http for
                    why they differ). libtorrent has no RPC: n/a
  restart listed s  after a clean stop (SIGINT; libtorrent: save resume data for every torrent,
                    exit), from starting the process again on the same state to an RPC list of
                    all N (libtorrent: all N add_torrent_alerts after re-adding from its resume
                    files, read_resume_data)
  restart seeding s the same start to all N seeding again
  gets s, RSS gets  Shoal only (--downloads, default 50): with the N torrents seeding after the
                    restart, the daemon downloads 50 more torrents (2 MiB each, 64 KiB pieces)
                    from one libtorrent seed (a child process seeding all 50 on 127.0.0.1, no
                    DHT, LSD, UPnP, NAT-PMP or uTP, no limit on unchoke slots), added over RPC with the seed as `peers`:
                    seconds from the first add to all 50 seeding, and the highest VmRSS
                    sampled every 50 ms meanwhile. Each downloaded file is compared with its
                    original. Transmission cannot be pointed at a peer on 127.0.0.1 and the
                    libtorrent column is a session in a Python process: n/a for both.

Ratios are other client / Shoal for every column (above 1: Shoal is faster or smaller); n/a when
Shoal's figure is 0. Everything runs on 127.0.0.1 and no client looks for peers: no trackers in
the torrents, DHT, local discovery, UPnP and NAT-PMP off. Every wait has a bound (--timeout)
and says what it was waiting for when it runs out. Every child process runs in its own session
(a Ctrl-C reaches only this script) and gets SIGKILL if this script dies; on any exit the script
stops them (SIGTERM, then SIGKILL after 10 s) and removes its folder unless --keep.

Usage: bench/scale.py [--torrents 1000[,10000]] [--idle-seconds 30] [--clients shoal,transmission,libtorrent]
                      [--downloads 50] [--dir /tmp] [--keep] [--json]
"""
import argparse
import base64
import ctypes
import hashlib
import http.client
import json
import math
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SHOAL_BIN runs another build (an older commit, for a before/after comparison).
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")
PIECE = 16 * 1024
MIN_FILE, MAX_FILE = 16 * 1024, 64 * 1024
START_TIMEOUT = 60  # seconds for a freshly started daemon's RPC to answer
STOP_TIMEOUT = 60  # seconds for a clean stop before SIGKILL
# The columns of a list view, asked of both daemons in the latency test.
LIST_FIELDS = {
    "shoal": ["id", "info_hash", "name", "state", "progress", "total_bytes", "have_bytes", "left_bytes",
              "download_rate", "upload_rate", "downloaded", "uploaded", "peers", "eta", "download_dir", "error"],
    "transmission": ["id", "hashString", "name", "status", "percentDone", "totalSize", "haveValid", "leftUntilDone",
                     "rateDownload", "rateUpload", "downloadedEver", "uploadedEver", "peersConnected", "eta",
                     "downloadDir", "error", "errorString"],
}
CLIENTS = ["shoal", "transmission", "libtorrent"]
LABELS = {"shoal": "Shoal", "transmission": "Transmission", "libtorrent": "libtorrent"}
# (key, header, format) of the table's columns; every key is also in the JSON.
COLUMNS = [
    ("add_s", "add s", "{:.2f}"),
    ("seeding_s", "seeding s", "{:.2f}"),
    ("threads", "threads", "{:d}"),
    ("rss_mib", "RSS MiB", "{:.1f}"),
    ("peak_mib", "peak MiB", "{:.1f}"),
    ("kib_per_torrent", "KiB/torrent", "{:.1f}"),
    ("cpu_pct", "idle CPU %", "{:.2f}"),
    ("list_p50_ms", "list p50 ms", "{:.1f}"),
    ("list_p99_ms", "list p99 ms", "{:.1f}"),
    ("restart_listed_s", "restart listed s", "{:.2f}"),
    ("restart_seeding_s", "restart seeding s", "{:.2f}"),
    ("gets_s", "gets s", "{:.2f}"),
    ("gets_rss_mib", "RSS gets MiB", "{:.1f}"),
]
QUIET = False  # with --json, progress goes to stderr so stdout holds only the JSON


def log(msg):
    print(msg, file=sys.stderr if QUIET else sys.stdout, flush=True)


class BenchError(RuntimeError):
    """A client failed or a wait ran out; the message says which and why."""


# --- the data set -------------------------------------------------------------------------------

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(f"cannot bencode {type(v).__name__}")


def make_dataset(root, n):
    """Writes files data/f000000.bin ... and torrents/f000000.torrent ... under root (skipping
    those already there); returns the paths of the n .torrent files."""
    data, torrents = os.path.join(root, "data"), os.path.join(root, "torrents")
    os.makedirs(data, exist_ok=True)
    os.makedirs(torrents, exist_ok=True)
    paths = []
    for i in range(n):
        name = f"f{i:06d}.bin"
        tpath = os.path.join(torrents, f"f{i:06d}.torrent")
        paths.append(tpath)
        if os.path.exists(tpath):
            continue
        rng = random.Random(i)
        size = rng.randrange(MIN_FILE, MAX_FILE + 1)
        write_file_and_torrent(data, tpath, name, i.to_bytes(8, "little") + rng.randbytes(size - 8), PIECE)
    return paths


def write_file_and_torrent(data_dir, torrent_path, name, body, piece):
    """Writes body as data_dir/name and a single-file v1 torrent of it (no trackers)."""
    with open(os.path.join(data_dir, name), "wb") as f:
        f.write(body)
    pieces = b"".join(hashlib.sha1(body[o:o + piece]).digest() for o in range(0, len(body), piece))
    info = {"name": name, "length": len(body), "piece length": piece, "pieces": pieces}
    with open(torrent_path, "wb") as f:
        f.write(bencode({"created by": "shoal bench/scale.py", "info": info}))


DL_SIZE, DL_PIECE = 2 * 1024 * 1024, 64 * 1024


def make_downloads(root, count):
    """Writes count files of DL_SIZE under root/dl-data and their torrents under
    root/dl-torrents; returns the paths of the .torrent files."""
    data, torrents = os.path.join(root, "dl-data"), os.path.join(root, "dl-torrents")
    os.makedirs(data, exist_ok=True)
    os.makedirs(torrents, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(torrents, f"g{i:03d}.torrent")
        write_file_and_torrent(data, path, f"g{i:03d}.bin", random.Random(1_000_000 + i).randbytes(DL_SIZE), DL_PIECE)
        paths.append(path)
    return paths


# --- processes ----------------------------------------------------------------------------------

CHILDREN = []  # every process started and not yet reaped


def die_with_parent():
    """Runs in the child before exec: SIGKILL it if this script dies without cleaning up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(cmd, logfile, **kw):
    """Starts cmd in its own session (a Ctrl-C at the terminal reaches only this script), output
    appended to logfile."""
    with open(logfile, "ab") as out:
        kw.setdefault("stdout", out)
        try:
            proc = subprocess.Popen(cmd, stdin=kw.pop("stdin", subprocess.DEVNULL), stderr=out,
                                    start_new_session=True, preexec_fn=die_with_parent, **kw)
        except FileNotFoundError:
            raise BenchError(f"{cmd[0]} is not installed") from None
    CHILDREN.append(proc)
    return proc


def stop(proc, sig=signal.SIGINT, timeout=STOP_TIMEOUT):
    """Sends sig and waits for the exit (SIGKILL after timeout); returns the seconds it took."""
    start = time.monotonic()
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log(f"  pid {proc.pid} did not stop within {timeout}s of signal {sig}; killed")
    if proc in CHILDREN:
        CHILDREN.remove(proc)
    return time.monotonic() - start


def stop_all():
    for proc in list(CHILDREN):
        stop(proc, signal.SIGTERM, timeout=10)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """CPU seconds (user + system) process pid has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """Threads, VmRSS and VmHWM (MiB) of process pid."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found["Threads"], found["VmRSS"] / 1024, found["VmHWM"] / 1024


def wait_until(what, timeout, check, every):
    """Calls check() until it returns something other than None; BenchError after timeout
    seconds, naming what and the last state check() left in a one-item list, if any."""
    deadline = time.monotonic() + timeout
    last = []
    while True:
        result = check(last)
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done after {timeout:.0f}s" + (f" ({last[-1]})" if last else ""))
        time.sleep(every)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def idle_sample(pid, n, empty_rss, args):
    """Waits --settle-seconds, then measures CPU over --idle-seconds; returns the figures."""
    time.sleep(args.settle_seconds)
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    time.sleep(args.idle_seconds)
    cpu1, t1 = proc_cpu(pid), time.monotonic()
    threads, rss, hwm = proc_status(pid)
    return {"threads": threads, "rss_mib": rss, "peak_mib": hwm, "kib_per_torrent": (rss - empty_rss) * 1024 / n,
            "cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100, "empty_rss_mib": empty_rss}


# --- RPC over HTTP ------------------------------------------------------------------------------

class Http:
    """POSTs to 127.0.0.1:port. With keep=True the connection stays open for the next call (and is
    opened again if the server closed it); otherwise each call has a connection of its own, as
    one run of a command-line tool would. On a connection kept alive for more than a few calls,
    Transmission 3.00's replies of more than one segment wait ~40 ms for the client's delayed
    ACK (its second write is held by Nagle's algorithm), which is TCP, not the work of listing:
    the timed list calls therefore use a fresh connection each and are repeated on a kept one."""

    def __init__(self, port, timeout=60):
        self.port, self.timeout, self.conn = port, timeout, None

    def post(self, path, body, headers, keep=False):
        if not keep:
            self.close()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionResetError,
                    BrokenPipeError):
                self.close()
                if attempt:
                    raise
                continue
            if resp.will_close or not keep:
                self.close()
            return resp.status, resp.headers, data
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ShoalRpc:
    """Shoal's JSON-RPC 2.0 at /jsonrpc."""

    def __init__(self, port):
        self.http, self.next_id = Http(port), 0

    def raw(self, method, params, keep=False):
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode()
        status, _, data = self.http.post("/jsonrpc", body, {"Content-Type": "application/json"}, keep)
        if status != 200:
            raise BenchError(f"shoal {method}: HTTP {status} {data[:200]!r}")
        return data

    def call(self, method, params, keep=False):
        reply = json.loads(self.raw(method, params, keep))
        if "error" in reply:
            raise BenchError(f"shoal {method}: {reply['error']}")
        return reply["result"]


class TransmissionRpc:
    """Transmission's RPC at /transmission/rpc, with its X-Transmission-Session-Id handshake."""

    def __init__(self, port):
        self.http, self.session_id = Http(port), ""

    def raw(self, method, arguments, keep=False):
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(2):  # a 409 only tells the session id
            status, headers, data = self.http.post("/transmission/rpc", body, {
                "Content-Type": "application/json", "X-Transmission-Session-Id": self.session_id}, keep)
            if status == 409 and headers.get("X-Transmission-Session-Id"):
                self.session_id = headers["X-Transmission-Session-Id"]
                continue
            if status != 200:
                raise BenchError(f"transmission {method}: HTTP {status} {data[:200]!r}")
            return data
        raise BenchError(f"transmission {method}: still 409 after sending the session id")

    def call(self, method, keep=False, **arguments):
        reply = json.loads(self.raw(method, arguments, keep))
        if reply.get("result") != "success":
            raise BenchError(f"transmission {method}: {reply.get('result')}")
        return reply.get("arguments", {})


# --- the two daemons ----------------------------------------------------------------------------

class Shoal:
    key = "shoal"

    def __init__(self, home, data_dir, binary):
        self.home, self.data_dir, self.binary = home, data_dir, binary
        self.state = os.path.join(home, "state")
        os.makedirs(self.state, exist_ok=True)

    def start(self):
        port = free_port()
        proc = spawn([self.binary, "daemon", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0",
                      "--rpc-listen", f"127.0.0.1:{port}", "--data-dir", self.state],
                     os.path.join(self.home, "daemon.log"))
        self.rpc = ShoalRpc(port)
        return proc

    def add(self, metainfo_b64):
        self.rpc.call("torrent.add", {"torrent": metainfo_b64, "download_dir": self.data_dir}, keep=True)

    def listed(self):
        return len(self.rpc.call("torrent.list", {"fields": ["id"]}))

    def seeding(self):
        """(torrents seeding, torrents listed, a note on the others)."""
        torrents = self.rpc.call("torrent.list", {"fields": ["id", "state", "error"]})
        errors = [t["error"] for t in torrents if t["state"] == "error"]
        if errors:
            raise BenchError(f"shoal: {len(errors)} torrents in state error, e.g. {errors[0]}")
        states = sorted({t["state"] for t in torrents if t["state"] != "seeding"})
        return sum(t["state"] == "seeding" for t in torrents), len(torrents), f"others: {', '.join(states)}"

    def list_all(self, keep=False):
        return self.rpc.raw("torrent.list", {"fields": LIST_FIELDS["shoal"]}, keep)

    def count_list_reply(self, data):
        return len(json.loads(data)["result"])


class Transmission:
    key = "transmission"

    def __init__(self, home, data_dir):
        self.home, self.data_dir = home, data_dir
        self.config = os.path.join(home, "config")
        os.makedirs(self.config, exist_ok=True)
        # Only what keeps it on 127.0.0.1 and off every discovery mechanism; the rest stays default.
        with open(os.path.join(self.config, "settings.json"), "w") as f:
            json.dump({
                "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1", "rpc-bind-address": "127.0.0.1",
                "rpc-authentication-required": False, "rpc-whitelist-enabled": True, "rpc-whitelist": "127.0.0.1",
                "peer-port-random-on-start": False, "port-forwarding-enabled": False, "dht-enabled": False,
                "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False, "download-dir": data_dir,
                "watch-dir-enabled": False, "incomplete-dir-enabled": False, "start-added-torrents": True,
            }, f, indent=2)

    def start(self):
        port = free_port()
        proc = spawn(["transmission-daemon", "-f", "-g", self.config, "-p", str(port), "-P", str(free_port()),
                      "-T", "-a", "127.0.0.1", "--rpc-bind-address", "127.0.0.1", "--bind-address-ipv4",
                      "127.0.0.1", "--no-dht", "--no-lpd", "--no-portmap", "--no-utp", "--log-error"],
                     os.path.join(self.home, "daemon.log"))
        self.rpc = TransmissionRpc(port)
        return proc

    def add(self, metainfo_b64):
        reply = self.rpc.call("torrent-add", keep=True, metainfo=metainfo_b64, **{"download-dir": self.data_dir})
        if "torrent-added" not in reply and "torrent-duplicate" not in reply:
            raise BenchError(f"transmission torrent-add: no torrent in {reply}")

    def listed(self):
        return len(self.rpc.call("torrent-get", fields=["id"])["torrents"])

    def seeding(self):
        torrents = self.rpc.call("torrent-get", fields=["id", "status", "error", "errorString"])["torrents"]
        errors = [t["errorString"] for t in torrents if t["error"] == 3]  # 3: local error (disk)
        if errors:
            raise BenchError(f"transmission: {len(errors)} torrents with a local error, e.g. {errors[0]}")
        states = sorted({t["status"] for t in torrents if t["status"] != 6})
        return sum(t["status"] == 6 for t in torrents), len(torrents), f"other status codes: {states}"

    def list_all(self, keep=False):
        return self.rpc.raw("torrent-get", {"fields": LIST_FIELDS["transmission"]}, keep)

    def count_list_reply(self, data):
        return len(json.loads(data)["arguments"]["torrents"])


def rpc_up(client, proc, what):
    """Waits until client's RPC answers; returns the seconds since now."""
    start = time.monotonic()

    def check(last):
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; see its log in {client.home}")
        try:
            return client.listed()
        except OSError as e:
            last.append(str(e))
            return None

    wait_until(f"{what}: RPC answering", START_TIMEOUT, check, 0.02)
    return time.monotonic() - start


def all_seeding(client, proc, n, what, timeout):
    def check(last):
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; see its log in {client.home}")
        try:
            seeding, listed, others = client.seeding()
        except OSError as e:
            last.append(str(e))
            return None
        last.append(f"{seeding} of {n} seeding, {listed} listed; {others}")
        return True if seeding == n and listed == n else None

    wait_until(f"{what}: all {n} torrents seeding", timeout, check, 0.1)


def run_daemon(client, torrents, args, timeout):
    """Add, seed, idle, list, restart: the whole measurement of one daemon; returns its figures."""
    n = len(torrents)
    name = f"{LABELS[client.key]} N={n}"
    metainfos = []
    for path in torrents:
        with open(path, "rb") as f:
            metainfos.append(base64.b64encode(f.read()).decode())
    proc = client.start()
    try:
        rpc_up(client, proc, name)
        _, empty_rss, _ = proc_status(proc.pid)
        start = time.monotonic()
        for m in metainfos:
            client.add(m)
        add_s = time.monotonic() - start
        log(f"  {name}: added in {add_s:.2f} s")
        all_seeding(client, proc, n, name, timeout)
        seeding_s = time.monotonic() - start
        log(f"  {name}: all seeding {seeding_s:.2f} s after the first add; idle for "
            f"{args.settle_seconds:g} + {args.idle_seconds:g} s")
        r = {"add_s": add_s, "seeding_s": seeding_s, **idle_sample(proc.pid, n, empty_rss, args)}
        got = client.count_list_reply(client.list_all())  # untimed: the first call may warm caches
        if got != n:
            raise BenchError(f"{name}: the list has {got} torrents, not {n}")
        for keep, key in ((False, "list"), (True, "list_keepalive")):
            times = []
            for _ in range(args.list_calls):
                t0 = time.monotonic()
                client.list_all(keep)
                times.append((time.monotonic() - t0) * 1000)
            r[f"{key}_p50_ms"], r[f"{key}_p99_ms"] = percentile(times, 0.5), percentile(times, 0.99)
        client.rpc.http.close()
        r["stop_s"] = stop(proc)
        if proc.returncode not in (0, -signal.SIGINT):
            log(f"  {name}: exited with {proc.returncode} after SIGINT")
        log(f"  {name}: stopped in {r['stop_s']:.2f} s; restarting")

        start = time.monotonic()
        proc = client.start()

        def listed(last):
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode} at restart; see {client.home}")
            try:
                got = client.listed()
            except OSError as e:
                last.append(str(e))
                return None
            last.append(f"{got} listed")
            return True if got == n else None

        wait_until(f"{name}: restart until all {n} listed", timeout, listed, 0.02)
        r["restart_listed_s"] = time.monotonic() - start
        all_seeding(client, proc, n, f"{name} after restart", timeout)
        r["restart_seeding_s"] = time.monotonic() - start
        log(f"  {name}: restart: all listed after {r['restart_listed_s']:.2f} s, all seeding after "
            f"{r['restart_seeding_s']:.2f} s")
        if client.key == "shoal" and args.downloads:
            r.update(downloads(client, proc, n, args, timeout))
        client.rpc.http.close()
        stop(proc)
        return r
    finally:
        client.rpc.http.close()
        stop(proc)


# The libtorrent seed of the downloads phase. argv: torrents folder, data folder, timeout. Prints
# PORT <port> once every torrent there is seeding, then seeds until its stdin closes.
LT_SEED = r'''
import os, socket, sys, time
import libtorrent as lt
src, save_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False, "enable_ip_notifier": False,
    "active_seeds": 1000, "active_limit": 1000, "active_checking": 1000, "alert_mask": 0,
    # Every downloader unchoked at once: its default of 8 slots for the whole session would
    # serve 8 of the 50 at a time and measure libtorrent's choker.
    "unchoke_slots_limit": -1,
})
names = sorted(x for x in os.listdir(src) if x.endswith(".torrent"))
for x in names:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(os.path.join(src, x))
    atp.save_path = save_path
    ses.add_torrent(atp)
deadline = time.monotonic() + timeout
while len(ses.get_torrent_status(lambda st: st.state == lt.torrent_status.seeding, 0)) < len(names):
    if time.monotonic() > deadline:
        print("ERROR not all seeding", flush=True)
        sys.exit(1)
    time.sleep(0.1)
# A torrent reports seeding up to a second before it takes peers (those that connect in between
# are dropped at the handshake): wait until each answers a handshake on the listening port.
def answers(info_hash):
    try:
        with socket.create_connection(("127.0.0.1", ses.listen_port()), timeout=2) as c:
            c.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + os.urandom(20))
            got = b""
            while len(got) < 68:
                chunk = c.recv(68 - len(got))
                if not chunk:
                    return False
                got += chunk
            return got[28:48] == info_hash
    except OSError:
        return False
for h in ses.get_torrents():
    info_hash = h.info_hashes().v1.to_bytes()
    while not answers(info_hash):
        if time.monotonic() > deadline:
            print("ERROR a torrent takes no peers", flush=True)
            sys.exit(1)
        time.sleep(0.1)
print(f"PORT {ses.listen_port()}", flush=True)
sys.stdin.read()
'''


def downloads(client, proc, n, args, timeout):
    """The downloads phase (see the module doc): returns gets_s and gets_rss_mib."""
    name = f"Shoal N={n}"
    root = os.path.dirname(client.home)
    dl_torrents, dl_data = os.path.join(root, "dl-torrents"), os.path.join(root, "dl-data")
    out = os.path.join(client.home, "gets")
    os.makedirs(out, exist_ok=True)
    seed = LtChild(client.home, [dl_torrents, dl_data, timeout], script=LT_SEED, log_name="lt-seed.log")
    try:
        _, port = seed.expect("PORT", timeout)
        paths = sorted(os.path.join(dl_torrents, x) for x in os.listdir(dl_torrents))[:args.downloads]
        start = time.monotonic()
        for path in paths:
            with open(path, "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            client.rpc.call("torrent.add", {"torrent": b64, "download_dir": out, "peers": [f"127.0.0.1:{port}"]},
                            keep=True)
        total, peak = n + len(paths), 0.0

        def done(last):
            nonlocal peak
            peak = max(peak, proc_status(proc.pid)[1])
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode} while downloading")
            seeding, listed, others = client.seeding()
            last.append(f"{seeding} of {total} seeding, {listed} listed; {others}")
            return True if seeding == total and listed == total else None

        wait_until(f"{name}: {len(paths)} downloads complete", timeout, done, 0.05)
        gets_s = time.monotonic() - start
        for path in paths:
            file = os.path.basename(path).replace(".torrent", ".bin")
            with open(os.path.join(out, file), "rb") as a, open(os.path.join(dl_data, file), "rb") as b:
                if a.read() != b.read():
                    raise BenchError(f"{name}: downloaded {file} differs from the original")
        log(f"  {name}: {len(paths)} downloads from a libtorrent seed complete and equal to the originals "
            f"in {gets_s:.2f} s; highest RSS meanwhile {peak:.1f} MiB")
        return {"gets_s": gets_s, "gets_rss_mib": peak}
    finally:
        if seed.proc.poll() is None:
            seed.proc.stdin.close()
        stop(seed.proc, timeout=10)


# --- libtorrent ---------------------------------------------------------------------------------

# The libtorrent child. argv: mode (fresh | resume), torrents folder or resume folder, save path,
# resume folder, N, timeout, active_checking (0: N). Lines on stdout: BASE <rss KiB> (session
# made, nothing added), ADDED <s>, LISTED, SEEDING <s>, SAVED <count>, ERROR <message>. After
# SEEDING it waits on stdin for "save" (write resume data for every torrent, then exit), "quit"
# or the end of its input.
LT_CHILD = r'''
import os, sys, time
import libtorrent as lt

mode, src, save_path, resume_dir, n, timeout, checking = sys.argv[1:8]
n, timeout, checking = int(n), float(timeout), int(checking) or int(n)

def out(line):
    print(line, flush=True)

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

def drain(ses, counts):
    for a in ses.pop_alerts():
        kind = type(a).__name__
        if kind in ("add_torrent_alert", "save_resume_data_failed_alert") and a.error.value():
            raise RuntimeError(f"{kind}: {a.message()}")
        if kind in ("torrent_error_alert", "file_error_alert"):
            raise RuntimeError(f"{kind}: {a.message()}")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "save_resume_data_alert":
            with open(os.path.join(resume_dir, f"{counts[kind]:06d}.resume"), "wb") as f:
                f.write(lt.write_resume_data_buf(a.params))

def wait(ses, counts, what, done):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f}s")
        ses.wait_for_alert(100)
        drain(ses, counts)

def main():
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False, "enable_ip_notifier": False,
        "active_seeds": n + 10, "active_limit": n + 10, "active_checking": checking,
        "alert_queue_size": 2 * n + 1000,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification,
    })
    out(f"BASE {rss_kib()}")
    counts = {}
    if mode == "fresh":
        names = sorted(x for x in os.listdir(src) if x.endswith(".torrent"))[:n]
        bufs = []
        for x in names:
            with open(os.path.join(src, x), "rb") as f:
                bufs.append(f.read())
        start = time.monotonic()
        for b in bufs:
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(lt.bdecode(b))
            atp.save_path = save_path
            ses.async_add_torrent(atp)
    else:
        names = sorted(os.listdir(src))
        start = time.monotonic()
        for x in names:
            with open(os.path.join(src, x), "rb") as f:
                ses.async_add_torrent(lt.read_resume_data(f.read()))
    wait(ses, counts, f"all {n} added", lambda: counts.get("add_torrent_alert", 0) >= n)
    out(f"ADDED {time.monotonic() - start:.6f}")
    out("LISTED")
    seeding = lt.torrent_status.seeding
    def all_seeding():
        return len(ses.get_torrent_status(lambda st: st.state == seeding, 0)) >= n
    deadline = time.monotonic() + timeout
    while not all_seeding():
        if time.monotonic() > deadline:
            raise RuntimeError(f"all {n} seeding: not done after {timeout:.0f}s")
        drain(ses, counts)
        time.sleep(0.1)
    out(f"SEEDING {time.monotonic() - start:.6f}")
    command = sys.stdin.readline().strip()
    if command == "save":
        os.makedirs(resume_dir, exist_ok=True)
        handles = ses.get_torrents()
        for h in handles:
            h.save_resume_data(lt.torrent_handle.save_info_dict)
        wait(ses, counts, f"resume data of {len(handles)} torrents",
             lambda: counts.get("save_resume_data_alert", 0) >= len(handles))
        out(f"SAVED {counts['save_resume_data_alert']}")

try:
    main()
except Exception as e:
    out(f"ERROR {type(e).__name__}: {e}")
    sys.exit(1)
'''


class LtChild:
    """One libtorrent child process; its stdout lines arrive on a queue with the time each came."""

    def __init__(self, home, argv, script=LT_CHILD, log_name="child.log"):
        self.log = os.path.join(home, log_name)
        self.proc = spawn([sys.executable, "-c", script, *map(str, argv)], self.log,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.decode(errors="replace").strip()))
        self.lines.put((time.monotonic(), None))

    def expect(self, word, timeout):
        """Waits for a line starting with word; returns (time it came, the rest of the line)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                when, line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                with open(self.log, errors="replace") as f:
                    tail = f.read()[-500:]
                raise BenchError(f"libtorrent child exited ({self.proc.wait()}) before {word}: {tail}")
            if line.startswith("ERROR"):
                raise BenchError(f"libtorrent child: {line[6:]}")
            if line.split()[0] == word:
                return when, line[len(word):].strip()
        raise BenchError(f"libtorrent child: no {word} within {timeout:.0f}s")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def run_libtorrent(home, torrents_dir, data_dir, n, args, timeout):
    name = f"libtorrent N={n}"
    resume = os.path.join(home, "resume")
    os.makedirs(resume, exist_ok=True)
    child = LtChild(home, ["fresh", torrents_dir, data_dir, resume, n, timeout, args.lt_active_checking])
    try:
        _, base = child.expect("BASE", START_TIMEOUT)
        _, added = child.expect("ADDED", timeout)
        log(f"  {name}: added in {float(added):.2f} s")
        _, seeding = child.expect("SEEDING", timeout)
        log(f"  {name}: all seeding {float(seeding):.2f} s after the first add; idle for "
            f"{args.settle_seconds:g} + {args.idle_seconds:g} s")
        r = {"add_s": float(added), "seeding_s": float(seeding),
             **idle_sample(child.proc.pid, n, int(base) / 1024, args),
             "list_p50_ms": None, "list_p99_ms": None}
        start = time.monotonic()
        child.send("save")
        _, saved = child.expect("SAVED", timeout)
        child.proc.stdin.close()
        try:
            child.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{name}: the child did not exit within {STOP_TIMEOUT}s of saving") from None
        r["stop_s"] = time.monotonic() - start
        if int(saved) != n:
            raise BenchError(f"{name}: resume data for {saved} torrents, not {n}")
        log(f"  {name}: saved resume data and exited in {r['stop_s']:.2f} s; restarting")
        stop(child.proc)

        start = time.monotonic()
        child = LtChild(home, ["resume", resume, data_dir, resume, n, timeout, args.lt_active_checking])
        when, _ = child.expect("LISTED", timeout)
        r["restart_listed_s"] = when - start
        when, _ = child.expect("SEEDING", timeout)
        r["restart_seeding_s"] = when - start
        log(f"  {name}: restart: all listed after {r['restart_listed_s']:.2f} s, all seeding after "
            f"{r['restart_seeding_s']:.2f} s")
        return r
    finally:
        if child.proc.poll() is None:
            child.proc.stdin.close()  # EOF: the child's readline returns and it exits
            stop(child.proc, timeout=10)
        stop(child.proc)


# --- the report ---------------------------------------------------------------------------------

def versions(shoal):
    def first_line(cmd):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "?"
    return {"shoal": first_line([shoal, "--version"]),
            "transmission": first_line(["transmission-daemon", "--version"]),
            "libtorrent": first_line([sys.executable, "-c", "import libtorrent; print(libtorrent.__version__)"])}


def cell(value, fmt):
    return "n/a" if value is None else fmt.format(value)


def ratios(results, clients):
    """{(n, client): {column: other / Shoal or None}} for every client but Shoal."""
    out = {}
    for (n, c), r in results.items():
        base = results.get((n, "shoal"))
        if c == "shoal" or not base or "error" in base or "error" in r:
            continue
        out[(n, c)] = {k: (r[k] / base[k] if r.get(k) is not None and base.get(k) else None) for k, _, _ in COLUMNS}
    return out


def print_table(results, sizes, clients, meta):
    log("")
    log(f"{meta['versions']['shoal']}, {meta['versions']['transmission']}, libtorrent "
        f"{meta['versions']['libtorrent']} (Python bindings, in a child process)")
    log(f"idle window {meta['idle_seconds']:g} s (after {meta['settle_seconds']:g} s); list latency over "
        f"{meta['list_calls']} calls; {meta['cpus']} CPUs; load average (1, 5, 15 min) at start "
        f"{', '.join(f'{x:.2f}' for x in meta['load_start'])}, "
        f"at end {', '.join(f'{x:.2f}' for x in meta['load_end'])}")
    widths = [max(len(h), 7) for _, h, _ in COLUMNS]
    head = f"{'client':<18} {'N':>6} " + " ".join(f"{h:>{w}}" for (_, h, _), w in zip(COLUMNS, widths))
    log(head)
    log("-" * len(head))
    for n in sizes:
        for c in clients:
            r = results.get((n, c))
            if r is None:
                continue
            if "error" in r:
                log(f"{LABELS[c]:<18} {n:>6} FAILED: {r['error']}")
                continue
            log(f"{LABELS[c]:<18} {n:>6} "
                + " ".join(f"{cell(r.get(k), f):>{w}}" for (k, _, f), w in zip(COLUMNS, widths)))
    kept = [f"{LABELS[c]} N={n} {r['list_keepalive_p50_ms']:.1f}/{r['list_keepalive_p99_ms']:.1f}"
            for n in sizes for c in clients
            if (r := results.get((n, c))) and r.get("list_keepalive_p50_ms") is not None]
    if kept:
        log(f"list p50/p99 ms on one kept-alive connection: {'; '.join(kept)}")
    rat = ratios(results, clients)
    if rat:
        log("")
        log("other / Shoal (above 1: Shoal is faster or smaller)")
        log(head.replace("client", "ratio ", 1))
        log("-" * len(head))
        for n in sizes:
            for c in clients:
                if (n, c) in rat:
                    log(f"{LABELS[c] + '/Shoal':<18} {n:>6} " + " ".join(
                        f"{cell(rat[(n, c)][k], '{:.2f}'):>{w}}" for (k, _, _), w in zip(COLUMNS, widths)))


def main():
    global QUIET
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrents", default="1000", help="comma-separated numbers of torrents (default 1000)")
    ap.add_argument("--idle-seconds", type=float, default=30, help="length of the idle window (default 30)")
    ap.add_argument("--settle-seconds", type=float, default=5,
                    help="wait after the last torrent is seeding before the idle window (default 5)")
    ap.add_argument("--list-calls", type=int, default=20, help="timed list calls per daemon (default 20)")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of %(default)s")
    ap.add_argument("--lt-active-checking", type=int, default=0,
                    help="libtorrent's active_checking (default 0: N; libtorrent's own default is 1)")
    ap.add_argument("--timeout", type=float, default=0,
                    help="bound on each wait for adding, seeding or a restart (default 300 s + 0.3 s per torrent)")
    ap.add_argument("--downloads", type=int, default=50,
                    help="torrents Shoal downloads from a libtorrent seed after its restart (default 50; 0: none)")
    ap.add_argument("--dir", default=None, help="where to make the benchmark's folder (default: /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the folder (data, torrents, state, logs)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout (progress on stderr)")
    args = ap.parse_args()
    QUIET = args.json
    try:
        sizes = [int(x) for x in args.torrents.split(",") if x.strip()]
    except ValueError:
        ap.error("--torrents takes comma-separated whole numbers")
    if not sizes or min(sizes) < 1:
        ap.error("--torrents needs at least one number above 0")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if set(clients) - set(CLIENTS):
        ap.error(f"unknown clients {', '.join(sorted(set(clients) - set(CLIENTS)))}; choose from {', '.join(CLIENTS)}")
    clients = [c for c in CLIENTS if c in clients]
    if "shoal" in clients and not os.path.exists(SHOAL):
        sys.exit(f"{SHOAL} is missing: build it with cargo build --release -p shoal-cli")

    # A SIGTERM unwinds like a Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = tempfile.mkdtemp(prefix="shoal-scale-", dir=args.dir)
    try:
        # The whole run uses one build even if target/release/shoal is rebuilt meanwhile.
        shoal = os.path.join(root, "shoal")
        if "shoal" in clients:
            try:
                os.link(SHOAL, shoal)
            except OSError:
                shutil.copy2(SHOAL, shoal)
        meta = {"versions": versions(shoal if "shoal" in clients else SHOAL), "cpus": os.cpu_count(),
                "idle_seconds": args.idle_seconds, "settle_seconds": args.settle_seconds,
                "list_calls": args.list_calls, "load_start": os.getloadavg(), "dir": root}
        log(f"working in {root}")
        t0 = time.monotonic()
        all_torrents = make_dataset(root, max(sizes))
        log(f"made {max(sizes)} files and torrents in {time.monotonic() - t0:.1f} s")
        if "shoal" in clients and args.downloads:
            make_downloads(root, args.downloads)
        data_dir, torrents_dir = os.path.join(root, "data"), os.path.join(root, "torrents")
        results = {}
        for n in sizes:
            timeout = args.timeout or 300 + 0.3 * n
            for c in clients:
                home = os.path.join(root, f"{c}-{n}")
                os.makedirs(home, exist_ok=True)
                log(f"{LABELS[c]}, {n} torrents")
                try:
                    if c == "shoal":
                        r = run_daemon(Shoal(home, data_dir, shoal), all_torrents[:n], args, timeout)
                    elif c == "transmission":
                        r = run_daemon(Transmission(home, data_dir), all_torrents[:n], args, timeout)
                    else:
                        r = run_libtorrent(home, torrents_dir, data_dir, n, args, timeout)
                except (BenchError, OSError, ValueError, KeyError) as e:
                    r = {"error": f"{type(e).__name__}: {e}" if not isinstance(e, BenchError) else str(e)}
                    log(f"  {LABELS[c]} N={n}: FAILED: {r['error']}")
                results[(n, c)] = r
        meta["load_end"] = os.getloadavg()
        if args.json:
            rat = ratios(results, clients)
            print(json.dumps({
                **meta,
                "results": [{"client": c, "torrents": n, **r} for (n, c), r in results.items()],
                "ratios_to_shoal": [{"client": c, "torrents": n, **v} for (n, c), v in rat.items()],
            }, indent=2))
        else:
            print_table(results, sizes, clients, meta)
    finally:
        stop_all()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted: every client stopped")
        sys.exit(130)
