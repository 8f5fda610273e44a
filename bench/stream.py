#!/usr/bin/env python3
"""Streaming to a real player: mpv plays a test video from Shoal, rqbit, libtorrent and a plain
HTTP server, all fed by the same capped seeds on 127.0.0.1, same run.

Test videos (made once with ffmpeg, cached under --work/videos): 60 s of testsrc2 with a sine
tone, H.264 at a constant bitrate (x264 CBR with filler: -b:v = -minrate = -maxrate = -bufsize,
nal-hrd=cbr) plus 64 kbit/s AAC, 640x360 for 1 Mbit/s and 1280x720 for 4 Mbit/s, each twice:
with the MP4 index (moov) at the start (`-movflags +faststart`) and at the end (ffmpeg's
default). The bitrate used for the caps is the whole file's: size * 8 / duration. One v1
torrent per video, made by `shoal create` (`drivers/lt_client.py create` if Shoal is missing),
is used by every client.

Swarm cases (seeds are `shoal get TORRENT --seed --upload-limit CAP` on a hard link of the
video, no DHT, LSD or trackers; with --seeds libtorrent, drivers/lt_client.py, libtorrent 2.1
on 127.0.0.1, TCP only, no DHT, LSD, UPnP or NAT-PMP, the torrent's upload limit set):
  1x1.5   one seed capped at 1.5x the bitrate
  4x0.5   four seeds each capped at 0.5x (2x in all)
Fresh seeds are started for every session (below), so none inherits another's peer state.

Streamers, each told the seeds' addresses and nothing else (no trackers, DHT or LSD):
  http        drivers/lt_stream.py http: a threaded Python HTTP server (Range, HEAD) reading the
              file from disk, every response together held to the seeds' total upload cap. The
              floor no P2P client can beat: it needs no connection set-up, has no piece
              granularity and sends exactly the bytes asked for, in order.
  libtorrent  drivers/lt_stream.py lt: a libtorrent 2.1 session plus a small HTTP shim that
              gives the pieces of the next 2 MiB after each request's position increasing
              deadlines (set_piece_deadline), waits for them and serves them (read_piece); see
              that file.
  rqbit       rqbit 9.1.0 `download` with its HTTP API on 127.0.0.1 (DHT, LSD, trackers and UPnP
              off, seeds given with --initial-peers), streamed from /torrents/0/stream/0.
              Looked for in --rqbit, then /tmp/rqbit-9.1.0/bin/rqbit and
              ~/.cache/shoal-bench/rqbit/bin/rqbit (bench/table.py's); the script prints how to
              build it when it is missing.
  shoal       `shoal play TORRENT -o DIR --no-player --http 127.0.0.1:0 --peer SEED ... --no-dht
              --no-lsd --no-trackers --listen 127.0.0.1:0`, which prints `stream: URL` once it
              listens. Reported as not available when the binary has no `play` subcommand.
A run of one client is two sessions, each with fresh seeds, a fresh streamer process with an
empty download folder and a fresh player: a playing session (first frame, then --play-seconds
of playback) and a seeking session (first frame, then the seeks). The seeks get a session of
their own because after 30 s at 1.5x a P2P client holds most of the 60 s file and every seek
would find its data already there; in the seeking session they come early, while the swarm
has delivered little beyond the start. The clients take turns in an order that rotates from
run to run.

The player: mpv (`--idle=yes --input-ipc-server=SOCK --vo=null --ao=null --no-config
--cache=yes --demuxer-seekable-cache=no --keep-open=yes`), started and connected before the
streamer, driven over its JSON IPC. mpv keeps its default read-ahead (the whole file fits in its 150 MiB cache, so it
reads as fast as the streamer gives). --demuxer-seekable-cache=no makes mpv drop its cache on a
seek and ask the streamer again, so every seek measures the streamer, not mpv's memory; that
is the one departure from mpv's defaults that changes what is read (--keep-open only keeps the
file loaded at its end, so a --play-seconds of 60 or more still leaves something to seek in).
Measured per run:

  ready s     streamer process start to its URL being usable (Shoal and the shim: the `stream:`
              line; rqbit: GET /torrents/0 answering 200; http: the line)
  first frame loadfile to mpv's first `playback-restart` event (time to first frame); loadfile
              is sent as soon as the streamer is ready
  from start  ready s + first frame s: what a user who starts the client waits
  stalls      `paused-for-cache` turning true during the --play-seconds (30) that follow the
              first frame; stall s: the seconds of that window spent paused for cache
  seek N%     in the seeking session, `seek N absolute-percent` to the next `playback-restart`,
              for each of --seeks (75,25,90) in turn, each after --after-seek (2) seconds of
              playback since the first frame or the previous seek

Each figure in the table is the median of --runs (3) runs; a run that failed or ran out of time
counts as infinitely slow, so a median that is "fail" means most runs failed. Under the table
the script prints the targets with each client's verdict:
  first frame <= 1.5x the http floor's; Shoal's below rqbit's and libtorrent's; zero stalls
  where the seeds give 1.5x the bitrate or more (both cases); every seek < 1.5 s; the index-at-end video's first frame within 1.2x of the
  faststart one's (same bitrate and case).

Everything runs on 127.0.0.1; every wait is bounded (--timeout, 60 s, for a first frame or a
seek); every child runs in its own session, is SIGKILLed if this script dies, and is stopped
(SIGTERM, then SIGKILL after 10 s) on any exit. Child output is kept in --work/logs.

The seeds are Shoal's by default because a seed's first second bounds every client's first
frame, and of the seeds at hand only Shoal's sends at its cap from the start, as the http floor
does (bench/seed_start.py: a plain peer asking for the file's first 100 kB in order from a seed
capped at 202 kB/s has them after 0.47 s from Shoal, 1.38 s from libtorrent, 2.03 s from aria2;
0.41 s from the http floor's bucket). A Shoal seed does not hold the other clients back here:
a peer that comes alone (each session has one streamer) and does not speak shoal_wants is
shown every piece, head first, before it is unchoked; a lone Shoal player is shown a few, the
lowest-numbered first (the head), and names the pieces it waits for. --seeds libtorrent runs the same swarm with libtorrent seeds.
libtorrent hands out upload quota once per tick_interval, 500 ms by default; at that default
every P2P client's figures move in steps of about 0.5 s (even a seed's handshake waits for its
next tick) while the http floor's bucket is smooth, so its seeds here run with tick_interval
100 ms (--seed-tick-ms; libtorrent's documentation: "around 100 means higher resolution
bandwidth quota distribution"); even so a capped libtorrent seed sends its first second at
about 80 kB/s of data, which bounds every client's first frame (about 1.2 s for the ~100 kB
mpv reads before its first frame of the 1 Mbit/s files).

Usage: bench/stream.py                    # 1 Mbit/s, faststart and index-at-end, 1 seed at 1.5x (~25 min)
       bench/stream.py --full             # also 4 Mbit/s and 4 seeds at 0.5x (8 combinations, ~1.7 h)
       bench/stream.py --videos 1000k-faststart --cases 1x1.5 --clients http,libtorrent --runs 1
       bench/stream.py --make-videos      # only make (or check) the test videos and torrents
       bench/stream.py --json             # the same, with one JSON object on stdout
Options: --runs 3 --play-seconds 30 --seeks 75,25,90 --after-seek 2 --timeout 60 --work DIR
         --rqbit PATH --seeds shoal|libtorrent --seed-tick-ms 100 --keep (keep the download folders)

Tools: apt-get install -y --no-install-recommends mpv ffmpeg; pip install libtorrent==2.1.1;
cargo install rqbit --version 9.1.0 --locked --root /tmp/rqbit-9.1.0.
"""
import argparse
import ctypes
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SHOAL_BIN runs another build (an older commit, for a before/after comparison).
SHOAL = os.environ.get("SHOAL_BIN") or os.path.join(ROOT, "target", "release", "shoal")
# SHOAL_PLAY_ARGS adds flags to `shoal play` (e.g. "-vv" to log every stream request and dial).
SHOAL_PLAY_ARGS = os.environ.get("SHOAL_PLAY_ARGS", "").split()
LT_CLIENT = os.path.join(ROOT, "drivers", "lt_client.py")
LT_STREAM = os.path.join(ROOT, "drivers", "lt_stream.py")
RQBIT_VERSION = "9.1.0"
RQBIT_PLACES = ["/tmp/rqbit-9.1.0/bin/rqbit", os.path.expanduser("~/.cache/shoal-bench/rqbit/bin/rqbit")]
RQBIT_INSTALL = f"cargo install rqbit --version {RQBIT_VERSION} --locked --root /tmp/rqbit-9.1.0"
RQBIT_OPTS = ["--disable-dht", "--disable-dht-persistence", "--disable-lsd", "--disable-trackers",
              "--disable-upnp-port-forward", "--listen-ip", "127.0.0.1", "--ipv4-only"]
DURATION = 60  # seconds of every test video
# name -> (video kbit/s, MP4 index at the start, frame size)
VIDEOS = {
    "1000k-faststart": (1000, True, "640x360"),
    "1000k-end": (1000, False, "640x360"),
    "4000k-faststart": (4000, True, "1280x720"),
    "4000k-end": (4000, False, "1280x720"),
}
# name -> (seeds, each seed's cap as a multiple of the bitrate)
CASES = {"1x1.5": (1, 1.5), "4x0.5": (4, 0.5)}
CLIENTS = ["http", "libtorrent", "rqbit", "shoal"]
START_TIMEOUT = 60  # seconds for a seed or a streamer to come up
STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL
FIRST_FRAME_FACTOR = 1.5  # target: first frame within this many times the http floor's
SEEK_TARGET = 1.5  # target: every seek below this many seconds
INDEX_END_FACTOR = 1.2  # target: index-at-end first frame within this many times faststart's
QUIET = False  # with --json, progress goes to stderr so stdout holds only the JSON


def log(msg):
    print(msg, file=sys.stderr if QUIET else sys.stdout, flush=True)


class BenchError(RuntimeError):
    """A tool is missing, a client failed or a wait ran out; the message says which and why."""


class Unavailable(BenchError):
    """A client cannot be run here (not installed, or no streaming command yet)."""


# --- processes ----------------------------------------------------------------------------------

CHILDREN = []  # every process started and not yet stopped


def die_with_parent():
    """Runs in the child before exec: SIGKILL it if this script dies without cleaning up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """A process in its own session whose stdout and stderr go line by line to a log file and
    to a queue that wait_for() reads; stdin is a pipe held open until stop() (drivers started
    with --watch-stdin also stop when it closes)."""

    def __init__(self, cmd, logfile, cwd=None):
        self.cmd, self.logfile = cmd, logfile
        self.lines = queue.Queue()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace", cwd=cwd,
                                         start_new_session=True, preexec_fn=die_with_parent)
        except FileNotFoundError:
            raise Unavailable(f"{cmd[0]} is not installed") from None
        CHILDREN.append(self)
        self.started = time.monotonic()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        with open(self.logfile, "a") as out:
            out.write(f"$ {' '.join(self.cmd)}\n")
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, timeout=START_TIMEOUT):
        """The match of the first output line matching pattern; BenchError if the process exits
        or timeout seconds pass first."""
        deadline = time.monotonic() + timeout
        tail = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise BenchError(f"{os.path.basename(self.cmd[0])} exited (code {self.proc.wait()}) "
                                 f"before printing {pattern!r}; last lines: {tail} (log {self.logfile})")
            tail = (tail + [line.rstrip()])[-5:]
            m = re.search(pattern, line)
            if m:
                return m
        raise BenchError(f"{os.path.basename(self.cmd[0])} did not print {pattern!r} within {timeout:.0f}s; "
                         f"last lines: {tail} (log {self.logfile})")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.terminate()
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in CHILDREN:
            CHILDREN.remove(self)


def stop_all():
    for child in reversed(list(CHILDREN)):
        child.stop()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- videos and torrents ------------------------------------------------------------------------

def need_tool(name, how):
    if not shutil.which(name):
        raise BenchError(f"{name} is missing; install it with: {how}")


def probe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         capture_output=True, text=True, timeout=60)
    return float(out.stdout.strip())


def index_at_start(path):
    """True if the MP4's moov box comes before its mdat box."""
    with open(path, "rb") as f:
        pos = 0
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise BenchError(f"{path}: no moov or mdat box")
            size, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind in (b"moov", b"mdat"):
                return kind == b"moov"
            if size == 1:
                size = int.from_bytes(f.read(8), "big")
            pos += size
            f.seek(pos)


def make_video(work, name):
    """The video's data folder, file, torrent and total bitrate (bytes/s); made once."""
    kbps, faststart, frame = VIDEOS[name]
    folder = os.path.join(work, "videos", name)
    path = os.path.join(folder, f"{name}.mp4")
    torrent = os.path.join(work, "videos", f"{name}.torrent")
    if not os.path.exists(path):
        need_tool("ffmpeg", "apt-get install -y --no-install-recommends ffmpeg")
        os.makedirs(folder, exist_ok=True)
        log(f"making {path} ({kbps} kbit/s H.264 CBR, {DURATION} s, index at the {'start' if faststart else 'end'})")
        part = path + ".part.mp4"
        cmd = ["nice", "-n", "10", "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"testsrc2=size={frame}:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
               "-t", str(DURATION), "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
               "-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
               "-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-b:a", "64k"]
        cmd += ["-movflags", "+faststart"] if faststart else []
        done = subprocess.run(cmd + [part], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise BenchError(f"ffmpeg failed: {done.stderr.strip()[-500:]}")
        os.rename(part, path)
    if index_at_start(path) != faststart:
        raise BenchError(f"{path}: the MP4 index is not where its name says")
    if not os.path.exists(torrent):
        if os.path.exists(SHOAL):
            cmd = [SHOAL, "create", path, "-o", torrent, "-q"]
        else:
            cmd = [sys.executable, LT_CLIENT, "create", "--path", path, "--out", torrent]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    size = os.path.getsize(path)
    duration = probe_duration(path)
    return {"name": name, "folder": folder, "path": path, "torrent": torrent, "size": size,
            "duration": duration, "rate": size / duration, "faststart": faststart, "kbps": kbps,
            "piece": torrent_piece_length(torrent)}


def torrent_piece_length(torrent):
    with open(torrent, "rb") as f:
        m = re.search(rb"12:piece lengthi(\d+)e", f.read())
    return int(m.group(1)) if m else 0


# --- the swarm ----------------------------------------------------------------------------------

def start_seeds(ctx, video, n, cap, logs):
    """n seeds of the video (--seeds: libtorrent, or Shoal), each uploading at most cap bytes/s;
    their children and addresses. logs(name) is the log file for a name."""
    if ctx.args.seeds == "shoal":
        seeds = []
        for i in range(n):
            # A folder of its own per seed (Shoal keeps its resume state next to the data),
            # holding a hard link to the one copy of the video.
            folder = tempfile.mkdtemp(prefix="seed-", dir=ctx.scratch)
            os.link(video["path"], os.path.join(folder, os.path.basename(video["path"])))
            seeds.append(Child([SHOAL, "get", video["torrent"], "-o", folder, "--seed", "--upload-limit",
                                str(int(cap)), "--no-dht", "--no-lsd", "--no-trackers", "--listen", "127.0.0.1:0"],
                               logs(f"seed{i}")))
        return seeds, ["127.0.0.1:" + s.wait_for(r"seeding on 127\.0\.0\.1:(\d+)").group(1) for s in seeds]
    tick = ["--tick-ms", str(ctx.args.seed_tick_ms)]
    seeds = [Child([sys.executable, LT_CLIENT, "seed", "--torrent", video["torrent"], "--save", video["folder"],
                    "--listen", "0", "--upload-limit", str(int(cap)), *tick, "--watch-stdin"],
                   logs(f"seed{i}")) for i in range(n)]
    return seeds, ["127.0.0.1:" + s.wait_for(r"READY (\d+)").group(1) for s in seeds]


# --- streamers: each starts a process and returns (child, url) ----------------------------------

def shoal_available():
    if not os.path.exists(SHOAL):
        return f"{SHOAL} is not built"
    try:
        done = subprocess.run([SHOAL, "play", "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{SHOAL} play --help failed: {e}"
    return None if done.returncode == 0 else "this build of shoal has no `play` subcommand yet"


def find_rqbit(path):
    for candidate in ([path] if path else RQBIT_PLACES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_http(ctx, video, peers, total_rate, out):
    child = Child([sys.executable, LT_STREAM, "http", "--file", video["path"], "--rate", str(int(total_rate)),
                   "--watch-stdin"], ctx.logfile("http"))
    return child, child.wait_for(r"stream: (http://\S+)").group(1)


def start_libtorrent(ctx, video, peers, total_rate, out):
    cmd = [sys.executable, LT_STREAM, "lt", "--torrent", video["torrent"], "--save", out, "--watch-stdin"]
    for p in peers:
        cmd += ["--peer", p]
    child = Child(cmd, ctx.logfile("libtorrent"))
    return child, child.wait_for(r"stream: (http://\S+)").group(1)


def start_rqbit(ctx, video, peers, total_rate, out):
    if not ctx.rqbit:
        raise Unavailable(f"rqbit {RQBIT_VERSION} not found (--rqbit PATH, or build it: {RQBIT_INSTALL})")
    port = free_port()
    child = Child([ctx.rqbit, *RQBIT_OPTS, "--listen-port", str(free_port()), "--http-api-listen-addr",
                   f"127.0.0.1:{port}", "download", "--initial-peers", ",".join(peers), "-o", out,
                   video["torrent"]], ctx.logfile("rqbit"))
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(f"rqbit exited (code {child.proc.returncode}); log {child.logfile}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/torrents/0")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return child, f"http://127.0.0.1:{port}/torrents/0/stream/0"
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.02)
    raise BenchError(f"rqbit's API did not list torrent 0 within {START_TIMEOUT}s ({last}); log {child.logfile}")


def start_shoal(ctx, video, peers, total_rate, out):
    if ctx.shoal_missing:
        raise Unavailable(ctx.shoal_missing)
    cmd = [SHOAL, "play", video["torrent"], "-o", out, "--no-player", "--http", "127.0.0.1:0", "--no-dht",
           "--no-lsd", "--no-trackers", "--listen", "127.0.0.1:0", *SHOAL_PLAY_ARGS]
    for p in peers:
        cmd += ["--peer", p]
    child = Child(cmd, ctx.logfile("shoal"))
    return child, child.wait_for(r"stream: (http://\S+)").group(1)


STARTERS = {"http": start_http, "libtorrent": start_libtorrent, "rqbit": start_rqbit, "shoal": start_shoal}


# --- the player ---------------------------------------------------------------------------------

class Mpv:
    """A headless mpv driven over its JSON IPC socket. Every event is stamped on arrival by a
    reader thread; paused-for-cache changes are kept as (time, value) in self.cache_pauses."""

    def __init__(self, logfile, sock):
        self.sock = sock
        need_tool("mpv", "apt-get install -y --no-install-recommends mpv")
        self.child = Child(["mpv", "--idle=yes", f"--input-ipc-server={self.sock}", "--vo=null", "--ao=null",
                            "--no-config", "--cache=yes", "--demuxer-seekable-cache=no", "--keep-open=yes",
                            "--no-terminal", "--msg-level=all=warn"], logfile)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.conn.connect(self.sock)
                break
            except OSError:
                self.conn.close()
                if time.monotonic() > deadline or self.child.proc.poll() is not None:
                    raise BenchError(f"mpv's IPC socket {self.sock} did not open; log {logfile}")
                time.sleep(0.05)
        self.events = queue.Queue()
        self.cache_pauses = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.command("observe_property", 1, "paused-for-cache")

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.events.put((time.monotonic(), {"event": "ipc-closed"}))
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                now = time.monotonic()
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "property-change" and msg.get("name") == "paused-for-cache":
                    self.cache_pauses.append((now, bool(msg.get("data"))))
                self.events.put((now, msg))

    def command(self, *args):
        self.next_id += 1
        self.conn.sendall(json.dumps({"command": list(args), "request_id": self.next_id}).encode() + b"\n")
        return time.monotonic()

    def wait_event(self, name, timeout):
        """The arrival time of the next event `name`; None if timeout seconds pass first.
        BenchError if the file ends with an error or mpv goes away."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, msg = self.events.get(timeout=left)
            except queue.Empty:
                return None
            event = msg.get("event")
            if event == name:
                return at
            if event == "ipc-closed":
                raise BenchError("mpv closed its IPC socket")
            if event == "end-file" and msg.get("reason") == "error":
                raise BenchError(f"mpv could not play the stream: {msg.get('file_error', msg)}")
            if msg.get("error") not in (None, "success"):
                raise BenchError(f"mpv rejected a command: {msg}")
        return None

    def settle(self, seconds):
        """Lets the player run for seconds, still watching for errors."""
        self.wait_event("never-sent", seconds)

    def stalls(self, start, end):
        """(count, seconds, starts) of paused-for-cache periods within [start, end]; starts are
        seconds after start."""
        count, seconds, since, starts = 0, 0.0, None, []
        for at, paused in self.cache_pauses:
            if paused and since is None:
                since = at
                if start <= at <= end:
                    count += 1
                    starts.append(at - start)
            elif not paused and since is not None:
                seconds += max(0.0, min(at, end) - max(since, start))
                since = None
        if since is not None:
            seconds += max(0.0, end - max(since, start))
        return count, seconds, starts

    def close(self):
        try:
            self.command("quit")
        except OSError:
            pass
        try:
            self.child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()
        self.child.stop()


# --- one run ------------------------------------------------------------------------------------

class Context:
    def __init__(self, args, scratch):
        self.args, self.scratch = args, scratch
        self.logs = os.path.join(args.work, "logs")
        shutil.rmtree(self.logs, ignore_errors=True)  # the logs of the last invocation only
        os.makedirs(self.logs)
        self.rqbit = find_rqbit(args.rqbit)
        self.shoal_missing = shoal_available()
        self.tag = ""

    def logfile(self, what):
        return os.path.join(self.logs, f"{self.tag}{what}.log")


def session(ctx, video, case, client, what, rec, body):
    """Fresh seeds, player and streamer (empty download folder); loads the stream, records
    ready_s and first_frame_s in rec, then calls body(mpv, first_frame_time); stops them all."""
    args = ctx.args
    nseeds, factor = CASES[case]
    cap = factor * video["rate"]
    out = tempfile.mkdtemp(prefix=f"{client}-{what}-", dir=ctx.scratch)
    started = []
    try:
        peers = []
        if client != "http":
            seeds, peers = start_seeds(ctx, video, nseeds, cap, lambda n: ctx.logfile(f"{client}-{what}-{n}"))
            started += seeds
        sock = os.path.join(ctx.scratch, "mpv.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        mpv = Mpv(ctx.logfile(f"{client}-{what}-mpv"), sock)
        started.append(mpv.child)
        try:
            t0 = time.monotonic()
            streamer, url = STARTERS[client](ctx, video, peers, nseeds * cap, out)
            started.append(streamer)
            rec["ready_s"] = time.monotonic() - t0
            loaded = mpv.command("loadfile", url)
            first = mpv.wait_event("playback-restart", args.timeout)
            if first is None:
                raise BenchError(f"no first frame within {args.timeout:.0f}s")
            rec["first_frame_s"] = first - loaded
            body(mpv, first)
        finally:
            mpv.close()
    finally:
        for child in reversed(started):
            child.stop()
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


def run_once(ctx, video, case, client):
    """One client, one video, one case: a playing session, then a seeking session."""
    args = ctx.args
    result = {"ready_s": None, "first_frame_s": None, "stalls": None, "stall_s": None, "stalls_at": [],
              "seeks_s": [None] * len(args.seeks), "seek_session": {}, "error": None}
    errors = []

    def watch(mpv, first):
        mpv.settle(args.play_seconds)
        result["stalls"], result["stall_s"], result["stalls_at"] = mpv.stalls(first, first + args.play_seconds)

    def seek(mpv, first):
        for i, pct in enumerate(args.seeks):
            mpv.settle(args.after_seek)
            asked = mpv.command("seek", pct, "absolute-percent")
            done = mpv.wait_event("playback-restart", args.timeout)
            if done is None:
                raise BenchError(f"seek to {pct:g}% not done within {args.timeout:.0f}s")
            result["seeks_s"][i] = done - asked

    for what, rec, body in (("play", result, watch), ("seek", result["seek_session"], seek)):
        if what == "seek" and not args.seeks:
            continue
        try:
            session(ctx, video, case, client, what, rec, body)
        except BenchError as e:
            errors.append(f"{what} session: {e}")
    result["error"] = "; ".join(errors) or None
    return result


# --- figures ------------------------------------------------------------------------------------

INF = float("inf")


def median(values):
    """Median with a missing value (failed run) counted as infinitely slow; None if no runs."""
    vals = [INF if v is None else v for v in values]
    return statistics.median(vals) if vals else None


def fmt(v, spec="{:.2f}"):
    if v is None:
        return "-"
    if v == INF:
        return "fail"
    return spec.format(v)


def summarize(samples, nseeks):
    """Median of each figure over the runs of one client."""
    return {
        "ready_s": median([s["ready_s"] for s in samples]),
        "first_frame_s": median([s["first_frame_s"] for s in samples]),
        "from_start_s": median([s["ready_s"] + s["first_frame_s"] if s["first_frame_s"] is not None else None
                                for s in samples]),
        "stalls": median([s["stalls"] for s in samples]),
        "stall_s": median([s["stall_s"] for s in samples]),
        "seeks_s": [median([s["seeks_s"][i] for s in samples]) for i in range(nseeks)],
        "failed_runs": sum(1 for s in samples if s["error"]),
    }


def print_table(video, case, meds, unavailable, args):
    nseeds, factor = CASES[case]
    log("")
    log(f"{video['name']}: {video['size'] / 1e6:.2f} MB, {video['duration']:.1f} s, "
        f"{video['rate'] * 8 / 1e6:.2f} Mbit/s, pieces of {video['piece'] // 1024} KiB; "
        f"{nseeds} seed(s) at {factor}x = {nseeds * factor * video['rate'] / 1e3:.0f} kB/s in all, "
        + ("Shoal seeds; " if args.seeds == "shoal"
           else f"libtorrent seeds handing out quota every {args.seed_tick_ms} ms; ")
        + f"median of {args.runs}")
    seek_heads = [f"seek {p:g}%" for p in args.seeks]
    heads = ["client", "ready s", "first frame s", "vs http", "from start s", "stalls", "stall s", *seek_heads,
             "failed"]
    rows = []
    floor = meds.get("http", {}).get("first_frame_s")
    for client in args.clients:
        if client in unavailable:
            rows.append([client, "not available: " + unavailable[client]])
            continue
        m = meds.get(client)
        if m is None:
            continue
        ratio = m["first_frame_s"] / floor if floor and floor != INF and m["first_frame_s"] not in (None, INF) else None
        rows.append([client, fmt(m["ready_s"]), fmt(m["first_frame_s"]), fmt(ratio), fmt(m["from_start_s"]),
                     fmt(m["stalls"], "{:g}"),
                     fmt(m["stall_s"], "{:.1f}"), *[fmt(s) for s in m["seeks_s"]], f"{m['failed_runs']}/{args.runs}"])
    widths = [max(len(heads[i]), *(len(r[i]) for r in rows if len(r) > 2)) if any(len(r) > 2 for r in rows)
              else len(heads[i]) for i in range(len(heads))]
    log("  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for r in rows:
        if len(r) == 2:
            log(f"{r[0].rjust(widths[0])}  {r[1]}")
        else:
            log("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def targets(results, args):
    """[(target, client, verdict, detail)] for every P2P client that ran."""
    out = []
    for key, meds in results.items():
        vname, case = key
        floor = meds.get("http", {}).get("first_frame_s")
        for client in ("shoal", "libtorrent", "rqbit"):
            m = meds.get(client)
            if not m:
                continue
            ff = m["first_frame_s"]
            ok = None if floor in (None, INF) or ff is None else ff <= FIRST_FRAME_FACTOR * floor
            out.append((f"first frame <= {FIRST_FRAME_FACTOR}x http", f"{vname} {case}", client, verdict(ok),
                        f"{fmt(ff)} s vs http {fmt(floor)} s"))
            if client == "shoal":
                others = [meds[c]["first_frame_s"] for c in ("rqbit", "libtorrent") if c in meds]
                ok = None if not others or ff is None else all(ff < o for o in others)
                vs = ", ".join(f"{c} {fmt(meds[c]['first_frame_s'])} s" for c in ("rqbit", "libtorrent") if c in meds)
                out.append(("first frame below rqbit and libtorrent", f"{vname} {case}", client, verdict(ok),
                            f"{fmt(ff)} s vs {vs or 'neither ran'}"))
            seeds, each = CASES[case]
            if seeds * each >= 1.5:
                ok = None if m["stalls"] is None else m["stalls"] == 0
                out.append(("zero stalls at >= 1.5x", f"{vname} {case}", client, verdict(ok),
                            f"{fmt(m['stalls'], '{:g}')} stalls, {fmt(m['stall_s'], '{:.1f}')} s"))
            seeks = m["seeks_s"]
            ok = None if not seeks else all(s is not None and s < SEEK_TARGET for s in seeks)
            out.append((f"every seek < {SEEK_TARGET} s", f"{vname} {case}", client, verdict(ok),
                        ", ".join(fmt(s) for s in seeks) + " s"))
            if vname.endswith("-end"):
                fs = results.get((vname[:-len("-end")] + "-faststart", case), {}).get(client)
                if fs:
                    a, b = ff, fs["first_frame_s"]
                    ok = None if a in (None, INF) or b in (None, INF) else a <= INDEX_END_FACTOR * b
                    out.append((f"index-at-end first frame <= {INDEX_END_FACTOR}x faststart", f"{vname} {case}",
                                client, verdict(ok), f"{fmt(a)} s vs {fmt(b)} s"))
    return out


def print_targets(rows, unavailable):
    log("")
    log("Targets (Shoal's are the ones that count; the others are shown for comparison)")
    if "shoal" in unavailable:
        log(f"  shoal: not measured ({unavailable['shoal']})")
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    for r in rows:
        log("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])


# --- main ---------------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", default=None, help=f"comma-separated, of {','.join(VIDEOS)}")
    ap.add_argument("--cases", default=None, help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--full", action="store_true", help="every video and every case")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--play-seconds", type=float, default=30.0)
    ap.add_argument("--seeks", default="75,25,90", help="seek targets, percent of the video")
    ap.add_argument("--after-seek", type=float, default=2.0, help="seconds played after each seek")
    ap.add_argument("--timeout", type=float, default=60.0, help="bound on a first frame or a seek")
    ap.add_argument("--work", default="/tmp/shoal-stream-bench")
    ap.add_argument("--rqbit", default=None, metavar="PATH")
    ap.add_argument("--seeds", choices=["shoal", "libtorrent"], default="shoal",
                    help="the seeds' client (shoal: `shoal get --seed` of the same torrent; libtorrent)")
    ap.add_argument("--seed-tick-ms", type=int, default=100, metavar="MS",
                    help="the seeds' tick_interval: how often they hand out upload quota (100; "
                         "libtorrent's default is 500)")
    ap.add_argument("--keep", action="store_true", help="keep download folders")
    ap.add_argument("--make-videos", action="store_true", help="only make the test videos and torrents")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout, progress on stderr")
    args = ap.parse_args()
    args.videos = args.videos.split(",") if args.videos else (
        list(VIDEOS) if args.full else ["1000k-faststart", "1000k-end"])
    args.cases = args.cases.split(",") if args.cases else (list(CASES) if args.full else ["1x1.5"])
    args.clients = args.clients.split(",")
    args.seeks = [float(s) for s in args.seeks.split(",") if s.strip()]
    for what, given, known in (("video", args.videos, VIDEOS), ("case", args.cases, CASES),
                               ("client", args.clients, CLIENTS)):
        bad = [g for g in given if g not in known]
        if bad:
            ap.error(f"unknown {what} {bad}; known: {', '.join(known)}")
    return args


def main():
    global QUIET
    args = parse_args()
    QUIET = args.json
    os.makedirs(args.work, exist_ok=True)
    videos = {name: make_video(args.work, name) for name in args.videos}
    if args.make_videos:
        for v in videos.values():
            log(f"{v['path']}: {v['size']} bytes, {v['duration']:.2f} s, {v['rate'] * 8 / 1e6:.3f} Mbit/s, "
                f"index at the {'start' if v['faststart'] else 'end'}, torrent {v['torrent']} "
                f"(pieces of {v['piece'] // 1024} KiB)")
        return 0
    need_tool("mpv", "apt-get install -y --no-install-recommends mpv")
    scratch = tempfile.mkdtemp(prefix="run-", dir=args.work)
    ctx = Context(args, scratch)
    unavailable = {}
    if "shoal" in args.clients and ctx.shoal_missing:
        unavailable["shoal"] = ctx.shoal_missing
    if "rqbit" in args.clients and not ctx.rqbit:
        unavailable["rqbit"] = f"rqbit {RQBIT_VERSION} not found; build it with: {RQBIT_INSTALL}"
    for client, why in unavailable.items():
        log(f"{client}: not available ({why})")
    clients = [c for c in args.clients if c not in unavailable]
    results, samples = {}, {}
    try:
        for vname in args.videos:
            video = videos[vname]
            for case in args.cases:
                runs = {c: [] for c in clients}
                for r in range(args.runs):
                    order = clients[r % len(clients):] + clients[:r % len(clients)] if clients else []
                    for client in order:
                        ctx.tag = f"{vname}-{case}-run{r + 1}-"
                        s = run_once(ctx, video, case, client)
                        runs[client].append(s)
                        seeks = " ".join(f"{p:g}%={fmt(x)}" for p, x in zip(args.seeks, s["seeks_s"]))
                        log(f"{vname} {case} run {r + 1} {client:>10}: ready {fmt(s['ready_s'])} s, first frame "
                            f"{fmt(s['first_frame_s'])} s, stalls {fmt(s['stalls'], '{:g}')} "
                            f"({fmt(s['stall_s'], '{:.1f}')} s"
                            + "".join(f", one {x:.1f} s after the first frame" for x in s["stalls_at"])
                            + f"), seeks {seeks}"
                            + (f"  ERROR {s['error']}" if s["error"] else ""))
                meds = {c: summarize(v, len(args.seeks)) for c, v in runs.items()}
                results[(vname, case)] = meds
                samples[(vname, case)] = runs
                print_table(video, case, meds, unavailable, args)
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = targets(results, args)
    print_targets(rows, unavailable)
    if args.json:
        def clean(v):
            return None if v == INF else v

        def clean_meds(m):
            return {k: ([clean(x) for x in v] if isinstance(v, list) else clean(v)) for k, v in m.items()}

        print(json.dumps({
            "settings": {"runs": args.runs, "play_seconds": args.play_seconds, "seeks_percent": args.seeks,
                         "after_seek_s": args.after_seek, "timeout_s": args.timeout,
                         "seeds": args.seeds, "seed_tick_ms": args.seed_tick_ms, "rqbit": ctx.rqbit,
                         "shoal": SHOAL},
            "videos": {n: {k: v[k] for k in ("size", "duration", "rate", "faststart", "kbps", "piece")}
                       for n, v in videos.items()},
            "unavailable": unavailable,
            "results": [{"video": vn, "case": cs, "client": c, "median": clean_meds(m), "runs": samples[(vn, cs)][c]}
                        for (vn, cs), meds in results.items() for c, m in meds.items()],
            "targets": [{"target": t, "where": w, "client": c, "verdict": v, "detail": d} for t, w, c, v, d in rows],
        }, indent=1))
    return 0


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    except BenchError as e:
        stop_all()
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
