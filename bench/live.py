#!/usr/bin/env python3
"""Live broadcasts relayed by the audience: one `shoal live broadcast` fed by a live ffmpeg
source, N `shoal live watch` viewers on 127.0.0.1, churn, and a plain baseline, same run.

The source: ffmpeg's testsrc2 pattern with a clock overlay (drawtext, when ffmpeg has it),
H.264 at a constant ~1 Mbit/s (x264 CBR, one keyframe a second, zerolatency) in MPEG-TS, paced
in real time (-re). This script reads ffmpeg's output, notes when each video frame's PTS
passed through it (the source's wall-clock time of that frame), and writes it to the
broadcaster's stdin. The broadcaster's upload is capped at 2x the bitrate, each viewer's at
1.5x; no DHT, no LSD: every viewer is told the broadcaster's address only (the others come
from the mesh's peer exchange).

Viewers: 3/4 of N join between 5 and 15 s (the channel is on air: a viewer there before its
first seconds exist can only wait for them, the playout delay), the rest 60 s in; from 60 s on, viewers leave at
random (SIGTERM) and are replaced by new ones at --churn of N per minute. Each viewer writes
the stream to stdout (`-o -`), read here packet by packet as a player's demuxer would:

  start-up s   join (process start) to the first keyframe received
  lag s        a frame's arrival here minus its passing the source: median and max per viewer
  stalls       a player model with a 1 s start buffer: a frame that arrives after its playout
               time stalls playback until it arrives (count and seconds, after start-up)
  continuity   the viewer's own count: chunks played on time / chunks due (its summary line)

--mpv K of the viewers (those joining first) are played by headless mpv over `--http`
instead (`--vo=null --ao=null`, JSON IPC, `--rebase-start-time=no` so time-pos is the stream's
PTS): start-up to the first `playback-restart`, lag = wall clock minus the source time of the
frame at time-pos (so mpv's own buffer counts), stalls from `paused-for-cache`. The baseline in
the same run: the source served straight over HTTP by this script to one mpv (what a player
adds on its own).

The broadcaster's copies per chunk come from its summary line. Numbers, not pass/fail: the
targets (start-up < 3 s, lag < 5 s median and < 8 s max, continuity >= 0.99, copies <= 2.2)
are printed beside them.
"""

import argparse
import http.server
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stream import SHOAL, BenchError, Child, Mpv, die_with_parent, need_tool, stop_all  # noqa: E402

TS = 188
PLAYER_BUFFER = 1.0


def pes_pts(packet):
    """(pts in 90 kHz, keyframe?) of a TS packet starting a video PES, else None."""
    if packet[0] != 0x47 or not packet[1] & 0x40:
        return None
    afc = (packet[3] >> 4) & 3
    at = 4
    key = False
    if afc & 2:
        alen = packet[4]
        if alen > 0:
            key = bool(packet[5] & 0x40)  # random_access_indicator
        at = 5 + alen
    if not afc & 1 or at + 14 > TS:
        return None
    p = packet[at:]
    if p[0:3] != b"\x00\x00\x01" or not 0xE0 <= p[3] <= 0xEF or not p[7] & 0x80:
        return None
    b = p[9:14]
    pts = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return pts, key


def read_frames(pipe):
    """Yields (arrival time, data read, [(pts, keyframe?) of the video PES starting in it]) for
    each read from pipe, until it ends."""
    buf = b""
    while data := pipe.read1(65536):
        now = time.monotonic()
        buf += data
        whole = len(buf) - len(buf) % TS
        frames = [r for i in range(0, whole, TS) if (r := pes_pts(buf[i:i + TS]))]
        buf = buf[whole:]
        yield now, data, frames


class Source:
    """ffmpeg's live stream: notes each frame's time and passes the bytes on to sinks."""

    def __init__(self, seconds, bitrate, work):
        need_tool("ffmpeg", "apt-get install -y --no-install-recommends ffmpeg")
        has_text = "drawtext" in subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True,
                                                text=True).stdout
        vf = ["-vf", "drawtext=text='%{localtime\\:%T}':fontsize=48:fontcolor=white:x=20:y=20"] if has_text else []
        kb = bitrate // 1000
        self.cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=25", "-t", str(seconds), *vf, "-c:v", "libx264", "-preset",
                    "veryfast", "-tune", "zerolatency", "-b:v", f"{kb}k", "-minrate", f"{kb}k", "-maxrate",
                    f"{kb}k", "-bufsize", f"{kb}k", "-x264-params", "nal-hrd=cbr", "-g", "25", "-f", "mpegts", "-"]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "ffmpeg.log"), "w"),
                                     start_new_session=True, preexec_fn=die_with_parent)
        self.times = {}  # pts -> monotonic time it passed here
        self.sinks = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for now, data, frames in read_frames(self.proc.stdout):
            for pts, _ in frames:
                self.times[pts] = now
            with self.lock:
                for sink in list(self.sinks):
                    try:
                        sink(data)
                    except OSError:
                        self.sinks.remove(sink)
        with self.lock:
            for sink in self.sinks:
                try:
                    sink(None)
                except OSError:
                    pass
        self.done.set()

    def source_time(self, pts):
        t = self.times.get(pts)
        if t is None and self.times:
            # The nearest frame (mpv's time-pos is a frame's PTS, within rounding).
            near = min(self.times, key=lambda p: abs(p - pts))
            if abs(near - pts) <= 9000:
                t = self.times[near] + (pts - near) / 90000
        return t


class Viewer:
    """A `shoal live watch -o -` whose output is read here like a player's demuxer."""

    def __init__(self, args, link, peer, work, name, source):
        self.name, self.source = name, source
        self.log = os.path.join(work, f"{name}.log")
        cmd = [SHOAL, "live", "watch", link, "-o", "-", "--peer", peer, "--listen", "127.0.0.1:0", "--no-dht",
               "--no-lsd", "--upload-limit", str(int(args.bitrate / 8 * 1.5)), "--data-dir",
               os.path.join(work, name)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(self.log, "w"), start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.first = None
        self.lags = []
        self.stalls, self.stall_s = 0, 0.0
        self.left = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        base = None  # (pts, playout time)
        for now, _, frames in read_frames(self.proc.stdout):
            for pts, key in frames:
                if self.first is None:
                    if not key:
                        continue
                    self.first = now
                    base = (pts, now + PLAYER_BUFFER)
                src = self.source.source_time(pts)
                if src is not None:
                    self.lags.append(now - src)
                due = base[1] + (pts - base[0]) / 90000
                if now > due + 0.04:
                    self.stalls += 1
                    self.stall_s += now - due
                    base = (pts, now)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.left = time.monotonic()

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def summary(self):
        text = open(self.log).read()
        m = re.search(r"continuity ([0-9.]+)", text)
        return {
            "name": self.name,
            "startup": None if self.first is None else self.first - self.started,
            "lag_median": statistics.median(self.lags) if self.lags else None,
            "lag_max": max(self.lags) if self.lags else None,
            "stalls": self.stalls,
            "stall_s": self.stall_s,
            "continuity": float(m.group(1)) if m else None,
            "mpv": False,
        }


class MpvViewer:
    """A viewer serving `--http`, played by headless mpv."""

    def __init__(self, args, link, peer, work, name, source, url=None):
        self.name, self.source = name, source
        self.started = time.monotonic()
        self.child = None
        if url is None:
            cmd = [SHOAL, "live", "watch", link, "--http", "127.0.0.1:0", "--peer", peer, "--listen", "127.0.0.1:0",
                   "--no-dht", "--no-lsd", "--upload-limit", str(int(args.bitrate / 8 * 1.5)), "--data-dir",
                   os.path.join(work, name)]
            self.child = Child(cmd, os.path.join(work, f"{name}.log"))
            url = self.child.wait_for(r"stream: (http://\S+)").group(1)
        self.mpv = Mpv(os.path.join(work, f"{name}-mpv.log"), os.path.join(work, f"{name}.sock"))
        self.mpv.command("set_property", "options/rebase-start-time", "no")
        self.mpv.command("observe_property", 2, "time-pos")
        self.mpv.command("loadfile", url)
        self.first = None
        self.lags = []
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        while True:
            try:
                at, msg = self.mpv.events.get(timeout=1)
            except Exception:  # noqa: BLE001 - queue.Empty: keep watching until the socket closes
                continue
            if msg.get("event") == "ipc-closed":
                return
            if msg.get("event") == "playback-restart" and self.first is None:
                self.first = at
            if msg.get("event") == "property-change" and msg.get("name") == "time-pos" and msg.get("data"):
                src = self.source.source_time(int(msg["data"] * 90000) % (1 << 33))
                if src is not None and self.first is not None:
                    self.lags.append(at - src)

    def stop(self):
        self.mpv.child.stop()
        if self.child:
            self.child.stop()

    def wait(self, timeout):
        if self.child:
            try:
                self.child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.stop()

    def summary(self):
        end = time.monotonic()
        stalls = [(t, v) for t, v in self.mpv.cache_pauses if self.first and t > self.first]
        n, secs, since = 0, 0.0, None
        for t, v in stalls:
            if v and since is None:
                n, since = n + 1, t
            elif not v and since is not None:
                secs, since = secs + t - since, None
        if since is not None:
            secs += end - since
        cont = None
        if self.child:
            m = re.search(r"continuity ([0-9.]+)", open(self.child.logfile).read())
            cont = float(m.group(1)) if m else None
        return {
            "name": self.name,
            "startup": None if self.first is None else self.first - self.started,
            "lag_median": statistics.median(self.lags) if self.lags else None,
            "lag_max": max(self.lags) if self.lags else None,
            "stalls": n,
            "stall_s": secs,
            "continuity": cont,
            "mpv": True,
        }


def serve_source(source):
    """The source straight over HTTP (the baseline): each reader gets the stream from now on."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            import queue
            q = queue.Queue()
            with source.lock:
                source.sinks.append(q.put)
            while (data := q.get()) is not None:
                try:
                    self.wfile.write(data)
                except OSError:
                    return

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/source.ts"


def run(args, n, work):
    print(f"\n== {n} viewers, {args.seconds} s, churn {args.churn:.0%}/min ==", flush=True)
    source = Source(args.seconds, args.bitrate, work)
    b_log = open(os.path.join(work, "broadcaster.log"), "w")
    bcast = subprocess.Popen([SHOAL, "live", "broadcast", "--input", "-", "--name", "bench", "--listen",
                              "127.0.0.1:0", "--no-dht", "--no-lsd", "--upload-limit",
                              str(int(args.bitrate / 8 * 2)), "--data-dir", os.path.join(work, "broadcaster")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=b_log, start_new_session=True,
                             preexec_fn=die_with_parent)
    link = bcast.stdout.readline().decode().split()[1]
    peer = bcast.stdout.readline().decode().split()[1]

    def feed(data):
        if data is None:
            bcast.stdin.close()
        else:
            bcast.stdin.write(data)
            bcast.stdin.flush()

    with source.lock:
        source.sinks.append(feed)
    baseline = MpvViewer(args, None, None, work, "baseline", source, url=serve_source(source))
    t0 = time.monotonic()
    viewers, gone = [], []
    first = max(1, n * 3 // 4)
    join_at = [5 + 10 * i / first for i in range(first)] + [60.0] * (n - first)
    rng = random.Random(args.seed)
    churn_every = 60 / (args.churn * n) if args.churn > 0 else None
    next_churn = 60 + (churn_every or 0)
    count = 0
    while not source.done.is_set():
        now = time.monotonic() - t0
        while join_at and join_at[0] <= now:
            join_at.pop(0)
            kind = MpvViewer if count < args.mpv else Viewer
            viewers.append(kind(args, link, peer, work, f"v{count}", source))
            count += 1
        if churn_every and now >= next_churn and now < args.seconds - 15 and viewers:
            v = viewers.pop(rng.randrange(len(viewers)))
            v.stop()
            gone.append(v)
            viewers.append(Viewer(args, link, peer, work, f"v{count}", source))
            count += 1
            next_churn += churn_every
        time.sleep(0.05)
    for v in viewers:
        v.wait(60)
    try:
        bcast.wait(timeout=60)
    except subprocess.TimeoutExpired:
        bcast.kill()
    for v in gone:
        v.wait(10)
    baseline.stop()
    b_text = open(os.path.join(work, "broadcaster.log")).read()
    m = re.search(r"\(([0-9.]+) copies each\)", b_text)
    copies = float(m.group(1)) if m else None
    rows = [v.summary() for v in viewers + gone]
    return {"viewers": n, "rows": rows, "stayed": [r["name"] for r in (v.summary() for v in viewers)],
            "copies": copies, "baseline": baseline.summary()}


def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def report(res):
    rows = res["rows"]
    print(f"{'viewer':<9}{'player':<8}{'start-up s':>11}{'lag med s':>10}{'lag max s':>10}{'stalls':>7}"
          f"{'stall s':>8}{'continuity':>11}")
    for r in rows + [dict(res["baseline"], name="baseline")]:
        print(f"{r['name']:<9}{'mpv' if r['mpv'] else 'reader':<8}{fmt(r['startup']):>11}{fmt(r['lag_median']):>10}"
              f"{fmt(r['lag_max']):>10}{r['stalls']:>7}{fmt(r['stall_s'], '{:.1f}'):>8}"
              f"{fmt(r['continuity'], '{:.3f}'):>11}")

    def med(key):
        vals = [r[key] for r in rows if r[key] is not None]
        return statistics.median(vals) if vals else None

    def worst(key, f=max):
        vals = [r[key] for r in rows if r[key] is not None]
        return f(vals) if vals else None

    stayed = [r for r in rows if r["name"] in res["stayed"]]
    cont = [r["continuity"] for r in stayed if r["continuity"] is not None]
    print(f"summary: start-up median {fmt(med('startup'))} s (max {fmt(worst('startup'))}), lag median "
          f"{fmt(med('lag_median'))} s (max {fmt(worst('lag_max'))}), stalls {sum(r['stalls'] for r in rows)} "
          f"({sum(r['stall_s'] for r in rows):.1f} s), continuity of those who stayed: min "
          f"{fmt(min(cont) if cont else None, '{:.3f}')} median {fmt(statistics.median(cont) if cont else None, '{:.3f}')}, "
          f"broadcaster copies per chunk {fmt(res['copies'])}; baseline mpv lag {fmt(res['baseline']['lag_median'])} s")
    print("targets: start-up < 3 s, lag < 5 s median and < 8 s max, continuity >= 0.99, copies <= 2.2")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", default="8,32", help="comma-separated viewer counts (default 8,32)")
    p.add_argument("--seconds", type=int, default=150, help="length of the broadcast (default 150)")
    p.add_argument("--churn", type=float, default=0.2, help="fraction of viewers replaced per minute (0.2)")
    p.add_argument("--bitrate", type=int, default=1_000_000, help="bits per second (1000000)")
    p.add_argument("--mpv", type=int, default=2, help="viewers played by mpv (default 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", help="folder for logs (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = p.parse_args()
    if not os.path.exists(SHOAL):
        raise BenchError(f"{SHOAL} is missing: cargo build --release")
    need_tool("mpv", "apt-get install -y --no-install-recommends mpv")
    results = []
    base = args.work or tempfile.mkdtemp(prefix="shoal-bench-live-")
    try:
        for n in [int(x) for x in args.viewers.split(",")]:
            work = os.path.join(base, f"n{n}")
            os.makedirs(work, exist_ok=True)
            res = run(args, n, work)
            report(res)
            results.append(res)
    finally:
        stop_all()
    if args.json:
        print(json.dumps(results, indent=1))
    print(f"logs: {base}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        stop_all()
        sys.exit(f"live bench: {e}")
