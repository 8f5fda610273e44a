#!/usr/bin/env python3
"""Drive rTorrent 0.9.8 (headless) for Shoal's interop tests, using only the Python standard
library.

`daemon` runs one private rtorrent: `rtorrent -n -o import=HOME/rtorrent.rc` in daemon mode (no
terminal UI, ~/.rtorrent.rc ignored), its peer socket bound to 127.0.0.1 on one fixed port, its
XML-RPC on a unix socket (HOME/rpc.sock, SCGI), and DHT and peer exchange switched off (rtorrent
has no UPnP, LSD or uTP), so it only talks to the peers it is told about (`add-peer`), to peers
that dial it, and to trackers that are left enabled. The other subcommands talk to a running
daemon over that socket.

rtorrent 0.9.8 refuses a torrent that has no tracker while its DHT is off, so tests make their
torrents with a tracker on a closed loopback port (http://127.0.0.1:9/announce) and switch it
off with `disable-trackers` before `start`.

Subcommands:
  daemon            start rtorrent, print "READY <rpc-socket> <peer-port>", run until
                    SIGTERM/SIGINT (or until stdin closes, with --watch-stdin), then stop it
  add               load a .torrent (not started); waits until rtorrent lists it
  disable-trackers  switch off every tracker of a torrent
  start             start a torrent; waits until it is open, active and not hashing
  add-peer          dial HOST:PORT for a torrent
  wait              poll until a torrent is complete (with --peer: dial that peer first and
                    count from there); prints progress, then a final result
  status            print a torrent's state and peers

Output: every subcommand but `daemon` prints JSON objects, one a line. `add` prints
{"hash": HEX, "name": ..., "size_bytes": N}; `wait` prints {"t": S, "completed_bytes": N,
"size_bytes": N, "peers": N} progress lines (t counted from the start of `wait`, or from its
add_peer call with --peer), then {"done": true|false, "seconds": S, "completed_bytes": N,
"size_bytes": N, "longest_flat": S}, where longest_flat is the longest time completed_bytes
stood still before completion (a stalled download shows here).

Exit codes: 0 success, 1 runtime failure (rtorrent missing or died, RPC error, timeout),
2 bad usage.
"""

import argparse
import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client

from stdin_watch import watch_stdin

# The encryption rtorrent uses by default here: accept encrypted and plaintext connections,
# try encryption first when dialling and retry in plaintext when that fails. A common rtorrent
# setting, and the one under which rtorrent 0.9.8 stalled ~29 s on Shoal's initial seeding.
DEFAULT_ENCRYPTION = "allow_incoming,try_outgoing,enable_retry"
# How long one XML-RPC call may take (seconds).
RPC_TIMEOUT = 5.0
# How often `wait` and the other waits poll (seconds).
POLL = 0.1
# How often `wait` prints a progress line while nothing changes (seconds); it also prints one
# whenever completed_bytes changes.
REPORT_EVERY = 1.0
STOP = threading.Event()

CONFIG = """\
# Written by drivers/rtorrent_client.py for one test run.
directory.default.set = {downloads}
session.path.set = {session}
network.bind_address.set = 127.0.0.1
network.local_address.set = 127.0.0.1
network.port_range.set = "{port}-{port}"
network.port_random.set = no
network.scgi.open_local = {socket}
dht.mode.set = disable
protocol.pex.set = no
protocol.encryption.set = {encryption}
system.daemon.set = true
log.open_file = "testlog", {log}
log.add_output = "info", "testlog"
{extra_log}"""

# Per-peer and per-piece events, for --debug-log (large: a line per block).
DEBUG_LOG = """\
log.add_output = "connection_debug", "testlog"
log.add_output = "peer_debug", "testlog"
log.add_output = "protocol_piece_events", "testlog"
log.add_output = "protocol_network_errors", "testlog"
log.add_output = "peer_list_events", "testlog"
log.add_output = "torrent_debug", "testlog"
"""


def emit(obj):
    print(json.dumps(obj), flush=True)


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"ERROR {msg}", flush=True)
    print(f"rtorrent_client.py: {msg}", file=sys.stderr, flush=True)
    return 1


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rpc:
    """An XML-RPC client speaking SCGI over rtorrent's unix socket; every call is bounded."""

    def __init__(self, path, timeout=RPC_TIMEOUT):
        self.path = path
        self.timeout = timeout

    def call(self, method, *params):
        body = xmlrpc.client.dumps(tuple(params), method, allow_none=False).encode()
        headers = [("CONTENT_LENGTH", str(len(body))), ("SCGI", "1"),
                   ("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/RPC2")]
        netstring = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in headers)
        request = str(len(netstring)).encode() + b":" + netstring + b"," + body
        chunks = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(self.path)
            s.sendall(request)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        reply = b"".join(chunks)
        # The reply is CGI-style: headers, a blank line, the XML body.
        for sep in (b"\r\n\r\n", b"\n\n"):
            i = reply.find(sep)
            if i >= 0:
                reply = reply[i + len(sep):]
                break
        try:
            return xmlrpc.client.loads(reply)[0][0]
        except xmlrpc.client.Fault as e:
            raise RuntimeError(f"{method}: rtorrent answered fault {e.faultCode}: "
                               f"{e.faultString}") from None
        except Exception as e:  # a truncated or empty reply (rtorrent died mid-call)
            raise RuntimeError(f"{method}: unreadable reply ({e}): {reply[:200]!r}") from None


def wait_for(what, timeout, check):
    """Polls `check` every POLL seconds until it returns a true value, which is returned;
    raises RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, RuntimeError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise RuntimeError(f"{what} not within {timeout:.0f}s{extra}")
        time.sleep(POLL)


def bdecode_info_span(data):
    """The byte range of the top-level `info` value in a bencoded .torrent."""

    def skip(i):
        c = data[i:i + 1]
        if c == b"i":
            return data.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while data[i:i + 1] != b"e":
                i = skip(i)
            return i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            return colon + 1 + int(data[i:colon])
        raise ValueError(f"bad bencode at byte {i}")

    if data[:1] != b"d":
        raise ValueError("not a bencoded dictionary")
    i = 1
    while data[i:i + 1] != b"e":
        key_end = skip(i)
        colon = data.index(b":", i)
        key = data[colon + 1:key_end]
        value_end = skip(key_end)
        if key == b"info":
            return key_end, value_end
        i = value_end
    raise ValueError("no info dictionary")


def info_hash(torrent_path):
    """The v1 info-hash of a .torrent file, 40 uppercase hex digits (as rtorrent prints it)."""
    with open(torrent_path, "rb") as f:
        data = f.read()
    start, end = bdecode_info_span(data)
    return hashlib.sha1(data[start:end]).hexdigest().upper()


def die_with_parent():
    """Runs in the rtorrent child: get SIGKILL if this wrapper dies without cleaning up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_rtorrent(proc):
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        # Well inside the callers' grace (tests allow 15 s): an rtorrent whose shutdown hangs
        # (seen once on a loaded machine) is killed rather than outliving its driver's stop.
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def cmd_daemon(args):
    home = os.path.abspath(args.home)
    downloads = os.path.join(home, "downloads")
    session = os.path.join(home, "session")
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(session, exist_ok=True)
    sock = os.path.join(home, "rpc.sock")
    if len(sock.encode()) >= 100:
        return fail(f"{sock} is too long for a unix socket path; use a shorter --home")
    if os.path.exists(sock):
        os.unlink(sock)
    port = args.port or free_port()
    logfile = os.path.join(home, "rtorrent.log")
    rc = os.path.join(home, "rtorrent.rc")
    with open(rc, "w") as f:
        f.write(CONFIG.format(downloads=downloads, session=session, port=port, socket=sock,
                              encryption=args.encryption, log=logfile,
                              extra_log=DEBUG_LOG if args.debug_log else ""))
    try:
        with open(os.path.join(home, "rtorrent.err"), "w") as err:
            proc = subprocess.Popen(["rtorrent", "-n", "-o", f"import={rc}"], cwd=home,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, preexec_fn=die_with_parent)
    except FileNotFoundError:
        return fail("rtorrent is not installed; run: apt-get install -y rtorrent")
    try:
        rpc = Rpc(sock, timeout=2.0)
        deadline = time.monotonic() + args.start_timeout
        while True:
            if proc.poll() is not None:
                return fail(f"rtorrent exited with {proc.returncode} at start; see {logfile} "
                            f"and {home}/rtorrent.err")
            try:
                version = rpc.call("system.client_version")
                listening = rpc.call("network.listen.port")
                if listening == port:
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                return fail(f"rtorrent's XML-RPC on {sock} did not answer (or it did not listen "
                            f"on port {port}) within {args.start_timeout:.0f}s; see {logfile}")
            STOP.wait(POLL)
            if STOP.is_set():
                return 0
        log(f"rtorrent {version} pid {proc.pid}: rpc {sock}, peers 127.0.0.1:{port}, "
            f"encryption {args.encryption}, downloads {downloads}, log {logfile}")
        log(f"READY {sock} {port}")
        while not STOP.is_set():
            if proc.poll() is not None:
                return fail(f"rtorrent exited with {proc.returncode}; see {logfile}")
            STOP.wait(0.5)
        log("stopping rtorrent")
        return 0
    finally:
        stop_rtorrent(proc)


def download_list(rpc):
    return [h.upper() for h in rpc.call("download_list")]


def cmd_add(args):
    rpc = Rpc(args.rpc)
    path = os.path.abspath(args.torrent)
    try:
        ih = info_hash(path)
    except (OSError, ValueError) as e:
        return fail(f"cannot read torrent {args.torrent}: {e}")
    commands = []
    if args.directory:
        # For a multi-file torrent rtorrent appends the torrent's name, as it does to
        # directory.default.
        directory = os.path.abspath(args.directory)
        os.makedirs(directory, exist_ok=True)
        commands.append(f"d.directory.set={directory}")
    rpc.call("load.normal", "", path, *commands)
    wait_for(f"torrent {ih} in rtorrent's download list", args.timeout,
             lambda: ih in download_list(rpc))
    emit({"hash": ih, "name": rpc.call("d.name", ih), "size_bytes": rpc.call("d.size_bytes", ih),
          "directory": rpc.call("d.directory", ih)})
    return 0


def cmd_disable_trackers(args):
    rpc = Rpc(args.rpc)
    count = rpc.call("d.tracker_size", args.hash)
    for i in range(count):
        rpc.call("t.disable", f"{args.hash}:t{i}")
    enabled = [i for i in range(count) if rpc.call("t.is_enabled", f"{args.hash}:t{i}")]
    if enabled:
        return fail(f"trackers {enabled} of {args.hash} are still enabled")
    emit({"hash": args.hash, "trackers_disabled": count})
    return 0


def cmd_start(args):
    rpc = Rpc(args.rpc)
    rpc.call("d.start", args.hash)
    # A new torrent whose files exist is hashed first; one without data opens at once.
    wait_for(f"torrent {args.hash} active and not hashing", args.timeout,
             lambda: rpc.call("d.is_active", args.hash) == 1 and rpc.call("d.hashing", args.hash) == 0)
    emit({"hash": args.hash, "started": True, "complete": rpc.call("d.complete", args.hash) == 1,
          "completed_bytes": rpc.call("d.completed_bytes", args.hash)})
    return 0


def cmd_add_peer(args):
    rpc = Rpc(args.rpc)
    # rtorrent 0.9.8 names it add_peer (later versions d.add_peer).
    rpc.call("add_peer", args.hash, args.peer)
    emit({"hash": args.hash, "peer": args.peer})
    return 0


def cmd_wait(args):
    rpc = Rpc(args.rpc)
    size = rpc.call("d.size_bytes", args.hash)
    started = time.monotonic()
    if args.peer:
        rpc.call("add_peer", args.hash, args.peer)
    last_report = started
    last_value, last_change = None, started
    longest_flat = 0.0
    while True:
        now = time.monotonic()
        done = rpc.call("d.completed_bytes", args.hash)
        changed = done != last_value
        if changed:
            last_value, last_change = done, now
        longest_flat = max(longest_flat, now - last_change)
        complete = done == size and rpc.call("d.complete", args.hash) == 1
        if changed or complete or now - last_report >= REPORT_EVERY:
            last_report = now
            emit({"t": round(now - started, 3), "completed_bytes": done, "size_bytes": size,
                  "peers": rpc.call("d.peers_connected", args.hash)})
        if complete:
            emit({"done": True, "seconds": round(now - started, 3), "completed_bytes": done,
                  "size_bytes": size, "longest_flat": round(longest_flat, 3)})
            return 0
        if now - started > args.timeout or STOP.is_set():
            emit({"done": False, "seconds": round(now - started, 3), "completed_bytes": done,
                  "size_bytes": size, "longest_flat": round(longest_flat, 3)})
            return fail(f"torrent {args.hash} not complete after {args.timeout:.0f}s: "
                        f"{done} of {size} bytes")
        time.sleep(POLL)


PEER_FIELDS = ["p.address=", "p.port=", "p.client_version=", "p.is_encrypted=",
               "p.is_incoming=", "p.is_snubbed=", "p.completed_percent=", "p.down_rate=",
               "p.up_rate=", "p.down_total=", "p.up_total="]


def cmd_status(args):
    rpc = Rpc(args.rpc)
    h = args.hash
    state = {key: rpc.call(f"d.{key}", h) for key in (
        "name", "state", "is_open", "is_active", "complete", "hashing", "completed_bytes",
        "size_bytes", "chunk_size", "completed_chunks", "size_chunks", "peers_connected",
        "down.rate", "up.rate", "message", "directory")}
    state["hash"] = h
    peers = rpc.call("p.multicall", h, "", *PEER_FIELDS)
    state["peers"] = [dict(zip((f[2:-1] for f in PEER_FIELDS), p)) for p in peers]
    emit(state)
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        description="Run and drive a private, headless rtorrent on 127.0.0.1 "
                    "(no DHT or PEX), over XML-RPC on a unix socket.",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 bad usage.")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("daemon", help="start rtorrent; prints READY <rpc-socket> <peer-port>")
    d.add_argument("--home", required=True,
                   help="folder for its config, session, log, socket and downloads (keep the "
                        "path short: the socket path must fit in 100 bytes)")
    d.add_argument("--port", type=int, default=0,
                   help="peer port on 127.0.0.1 (0 = pick a free one)")
    d.add_argument("--encryption", default=DEFAULT_ENCRYPTION, metavar="OPTIONS",
                   help=f"protocol.encryption.set options (default {DEFAULT_ENCRYPTION}; "
                        "`none` for plaintext only)")
    d.add_argument("--debug-log", action="store_true",
                   help="also log connections, peers and every piece event")
    d.add_argument("--start-timeout", type=float, default=30.0, metavar="S",
                   help="how long to wait for the XML-RPC to answer (default 30)")
    d.add_argument("--watch-stdin", action="store_true",
                   help="also stop when stdin is closed (lets a parent process that dies "
                        "take rtorrent with it)")
    d.set_defaults(func=cmd_daemon)

    def rpc_arg(sp, with_hash=True):
        sp.add_argument("--rpc", required=True, metavar="SOCKET",
                        help="rtorrent's XML-RPC unix socket (from the READY line)")
        if with_hash:
            sp.add_argument("--hash", required=True, type=str.upper, metavar="HEX",
                            help="the torrent's info-hash")

    a = sub.add_parser("add", help="load a .torrent without starting it")
    rpc_arg(a, with_hash=False)
    a.add_argument("--torrent", required=True, help=".torrent file")
    a.add_argument("--directory", help="where the data is or goes (default: the daemon's "
                                       "downloads folder)")
    a.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="how long rtorrent may take to list it (default 10)")
    a.set_defaults(func=cmd_add)

    t = sub.add_parser("disable-trackers", help="switch off every tracker of a torrent")
    rpc_arg(t)
    t.set_defaults(func=cmd_disable_trackers)

    s = sub.add_parser("start", help="start a torrent and wait until it is active")
    rpc_arg(s)
    s.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="how long opening and hashing may take (default 60)")
    s.set_defaults(func=cmd_start)

    ap = sub.add_parser("add-peer", help="dial a peer for a torrent")
    rpc_arg(ap)
    ap.add_argument("--peer", required=True, metavar="HOST:PORT")
    ap.set_defaults(func=cmd_add_peer)

    w = sub.add_parser("wait", help="wait until a torrent is complete")
    rpc_arg(w)
    w.add_argument("--peer", metavar="HOST:PORT",
                   help="dial this peer first (as add-peer does); times are then counted from "
                        "that call, so `seconds` is the download's time from add_peer")
    w.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="give up (exit 1) after this many seconds (default 300)")
    w.set_defaults(func=cmd_wait)

    st = sub.add_parser("status", help="print a torrent's state and peers as one JSON object")
    rpc_arg(st)
    st.set_defaults(func=cmd_status)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    if getattr(args, "watch_stdin", False):
        watch_stdin(STOP)
    try:
        return args.func(args)
    except (OSError, RuntimeError) as e:
        return fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
