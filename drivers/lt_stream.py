#!/usr/bin/env python3
"""Serve one file over HTTP (Range requests, HEAD) for a media player: from disk at a capped
rate, or from a libtorrent session downloading it while it is played.

bench/stream.py uses this driver for two of the streamers it measures with mpv:

  http  The floor no P2P client can beat: a threaded HTTP server reading --file from disk,
        every response together held to --rate bytes per second by one token bucket (bursts of
        at most BURST bytes), the same total rate the benchmark's seeds may upload.
  lt    libtorrent 2.1 (Python bindings) streaming a single-file torrent the way libtorrent's
        documentation suggests: the session (127.0.0.1, TCP only, no DHT, LSD, UPnP or NAT-PMP;
        lt_client.make_session) downloads the torrent from the --peer seeds as usual; a request
        for bytes starting at offset X gives the pieces of the next --readahead bytes from X
        increasing deadlines with set_piece_deadline (the piece under X at 0 ms, then
        --deadline-step-ms more for each next piece), waits for each piece (have_piece, woken by
        piece_finished_alert), reads it with read_piece once it is verified (a verified piece
        may still sit in libtorrent 2's store buffer, not yet in the file) and sends it. Every
        piece the response reaches moves its window on. When a response ends or its connection
        closes (a player that seeks drops the old connection) the deadlines it set on pieces
        that have not arrived are withdrawn (reset_piece_deadline), unless another response
        still wants them. Outside the windows the torrent downloads in libtorrent's normal
        order (rarest first), as it would in any libtorrent-based player.

Both print one line `stream: http://127.0.0.1:PORT/NAME` on stdout once they listen (the same
line `shoal play --no-player` prints) and serve until SIGTERM, SIGINT or, with --watch-stdin,
the end of stdin. Any path is answered with the one file. Everything binds to 127.0.0.1.

Usage: drivers/lt_stream.py http --file PATH --rate BPS [--port 0]
       drivers/lt_stream.py lt --torrent T --save DIR --peer 127.0.0.1:P [--peer ...]
                            [--readahead 2097152] [--deadline-step-ms 50] [--port 0]
"""

import argparse
import http.server
import os
import re
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

from stdin_watch import watch_stdin

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 16 * 1024  # bytes per write of the plain server
BURST = 32 * 1024  # the most the plain server's token bucket lets out at once
PIECE_WAIT = 600.0  # seconds a response waits for one piece before it gives up
READ_CACHE = 32 << 20  # bytes of pieces the libtorrent shim keeps after reading them (shared)
STOP = threading.Event()


def log(msg):
    print(msg, flush=True)


class TokenBucket:
    """rate bytes per second shared by every caller of take(), at most BURST ahead."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.tokens = float(BURST)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n):
        """Blocks until n bytes may go out (n <= BURST)."""
        with self.lock:  # one waiter at a time: the bucket serves callers in turn
            while True:
                now = time.monotonic()
                self.tokens = min(BURST, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= n:
                    self.tokens -= n
                    return
                time.sleep((n - self.tokens) / self.rate)


def parse_range(header, size):
    """(start, end inclusive) of a `Range: bytes=a-b` header, None for no header or one this
    server does not handle (several ranges), "bad" for one outside the file."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            return "bad"
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class Handler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the server's one file; the body comes from server.source.send(...)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the benchmark reads stdout
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        source = self.server.source
        size = source.size
        rng = parse_range(self.headers.get("Range"), size)
        if rng == "bad":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = rng if rng else (0, size - 1)
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            try:
                source.send(self.wfile, start, end)
            except (OSError, TimeoutError) as e:  # the player went away, or a piece never came
                if not isinstance(e, (BrokenPipeError, ConnectionResetError)):
                    log(f"response {start}-{end} failed: {e}")
                self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FileSource:
    """The plain server's body: the file on disk, held to the shared rate."""

    def __init__(self, path, rate):
        self.path, self.size = path, os.path.getsize(path)
        self.name = os.path.basename(path)
        self.bucket = TokenBucket(rate)

    def send(self, out, start, end):
        with open(self.path, "rb") as f:
            f.seek(start)
            pos = start
            while pos <= end and not STOP.is_set():
                n = min(CHUNK, end + 1 - pos)
                self.bucket.take(n)
                data = f.read(n)
                if not data:
                    raise BrokenPipeError("file shorter than announced")
                out.write(data)
                pos += len(data)


class TorrentSource:
    """The libtorrent shim's body: pieces waited for with deadlines, then read from disk."""

    def __init__(self, args):
        sys.path.insert(0, HERE)
        import lt_client  # noqa: E402  (the shared session recipe: loopback, TCP only, no DHT)
        global lt
        lt = lt_client.lt
        self.ses = lt_client.make_session("127.0.0.1", 0, "enabled")
        mask = self.ses.get_settings()["alert_mask"] | lt.alert.category_t.piece_progress_notification
        self.ses.apply_settings({"alert_mask": mask})
        self.handle, info = lt_client.add_torrent(self.ses, args.torrent, args.save)
        if info.num_files() != 1:
            raise SystemExit("lt_stream: only single-file torrents are streamed")
        self.info = info
        self.size = info.total_size()
        self.plen = info.piece_length()
        self.npieces = info.num_pieces()
        self.name = info.name()
        self.readahead = max(1, args.readahead // self.plen)
        self.step = args.deadline_step_ms
        self.dialer = lt_client.Dialer(self.handle, args.peer)
        self.cond = threading.Condition()
        self.wanted = {}  # piece -> number of responses whose window holds it (under cond)
        self.reads = {}  # piece -> its bytes (None: the read failed), the last ones read
        self.reading = set()  # pieces asked of read_piece whose alert has not come yet
        self.keep = max(4, READ_CACHE // self.plen)  # how many pieces self.reads holds
        self.fatal = None
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        """Pops alerts, wakes waiters when a piece is verified, keeps dialling the seeds."""
        while not STOP.is_set():
            self.dialer.tick(time.monotonic())
            self.ses.wait_for_alert(100)
            woke = False
            for a in self.ses.pop_alerts():
                if isinstance(a, lt.piece_finished_alert):
                    woke = True
                elif isinstance(a, lt.read_piece_alert):
                    with self.cond:
                        self.reading.discard(a.piece)
                        self.reads[a.piece] = None if a.error.value() else bytes(a.buffer)
                        while len(self.reads) > self.keep:
                            self.reads.pop(next(iter(self.reads)))
                    woke = True
                elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                    log(f"alert {a.what()}: {a.message()}")
                    self.fatal = a.message()
                    woke = True
            if woke:
                with self.cond:
                    self.cond.notify_all()

    def want(self, window, pieces):
        """Gives the pieces from `pieces` on increasing deadlines; `window` is the set this
        response holds (updated)."""
        with self.cond:
            for k, p in enumerate(pieces):
                if p not in window:
                    window.add(p)
                    self.wanted[p] = self.wanted.get(p, 0) + 1
                if not self.handle.have_piece(p):
                    self.handle.set_piece_deadline(p, k * self.step)

    def release(self, window, keep_from=None):
        """Withdraws this response's claim on the pieces of window (those below keep_from, or
        all); deadlines nobody else wants are reset."""
        with self.cond:
            for p in [p for p in window if keep_from is None or p < keep_from]:
                window.discard(p)
                self.wanted[p] -= 1
                if not self.wanted[p]:
                    del self.wanted[p]
                    if not self.handle.have_piece(p):
                        self.handle.reset_piece_deadline(p)

    def piece(self, p):
        """The bytes of piece p once it is verified: read_piece through libtorrent's disk
        subsystem (a verified piece may still sit in its store buffer, not yet in the file)."""
        deadline = time.monotonic() + PIECE_WAIT
        with self.cond:
            while True:
                if p in self.reads:
                    data = self.reads[p]
                    if data is None:
                        raise BrokenPipeError(f"reading piece {p} failed")
                    return data
                if STOP.is_set() or self.fatal:
                    raise BrokenPipeError(self.fatal or "stopping")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"piece {p} did not arrive within {PIECE_WAIT:.0f}s")
                if p not in self.reading and self.handle.have_piece(p):
                    self.handle.read_piece(p)
                    self.reading.add(p)
                self.cond.wait(0.1)

    def send(self, out, start, end):
        window = set()
        try:
            pos = start
            while pos <= end and not STOP.is_set():
                p = pos // self.plen
                self.release(window, keep_from=p)
                self.want(window, range(p, min(self.npieces, p + self.readahead)))
                data = self.piece(p)
                stop = min(end + 1, (p + 1) * self.plen)
                out.write(data[pos - p * self.plen:stop - p * self.plen])
                pos = stop
        finally:
            self.release(window)


def peer(text):
    host, sep, port = text.rpartition(":")
    if host != "127.0.0.1" or not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"peer must be 127.0.0.1:PORT, got {text!r}")
    return (host, int(port))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("http", help="plain HTTP server at a capped rate")
    h.add_argument("--file", required=True)
    h.add_argument("--rate", type=int, required=True, metavar="BPS", help="total bytes per second")
    t = sub.add_parser("lt", help="libtorrent streaming shim")
    t.add_argument("--torrent", required=True)
    t.add_argument("--save", required=True, help="download folder")
    t.add_argument("--peer", type=peer, action="append", default=[], metavar="127.0.0.1:PORT")
    t.add_argument("--readahead", type=int, default=2 << 20, metavar="BYTES",
                   help="bytes past a response's position whose pieces get deadlines (default 2 MiB)")
    t.add_argument("--deadline-step-ms", type=int, default=50,
                   help="deadline added for each next piece of the window (default 50)")
    for p in (h, t):
        p.add_argument("--port", type=int, default=0, help="HTTP port on 127.0.0.1 (0 = any)")
        p.add_argument("--watch-stdin", action="store_true", help="stop when stdin is closed")
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: STOP.set())
    if args.watch_stdin:
        watch_stdin(STOP)
    source = FileSource(args.file, args.rate) if args.cmd == "http" else TorrentSource(args)
    server = Server(("127.0.0.1", args.port), Handler)
    server.source = source
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    log(f"stream: http://127.0.0.1:{server.server_address[1]}/{urllib.parse.quote(source.name)}")
    while not STOP.wait(0.2):
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
