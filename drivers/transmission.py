#!/usr/bin/env python3
"""Drive transmission-daemon (Transmission 3.00) for Shoal's interop tests and benchmarks.

`daemon` runs one private transmission-daemon: its own config folder, RPC and peer sockets bound
to 127.0.0.1, no authentication, and DHT, local peer discovery, peer exchange, port mapping and
uTP switched off, so it only talks to peers that connect to it and to the trackers named in its
torrents. The other subcommands talk to a running daemon over its RPC (JSON over HTTP, the
Transmission RPC protocol), using only the Python standard library.

Transmission never dials peers in 127.0.0.0/8 (it treats them as unroutable) but accepts
connections from them: on loopback the other client must dial Transmission's peer port.

Subcommands:
  daemon  start the daemon, print "READY <rpc-port> <peer-port>", run until SIGTERM/SIGINT
          (or until stdin closes, with --watch-stdin), then stop the daemon and exit
  add     add a .torrent; prints "ID <id> HASH <info-hash>"
  wait    wait until a torrent is complete and verified; prints progress lines
  hash    print a torrent's info-hash
  status  print a torrent's state as key: value lines

Exit codes: 0 success, 1 runtime failure (daemon died, RPC error, timeout), 2 bad usage.
"""

import argparse
import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from stdin_watch import watch_stdin

# Transmission's torrent status codes (RPC spec, section 3.3).
STATUS = {0: "stopped", 1: "check-wait", 2: "checking", 3: "download-wait",
          4: "downloading", 5: "seed-wait", 6: "seeding"}
# torrent "error" values; 3 (local error, e.g. a disk failure) is fatal, 1 and 2 are tracker
# trouble, which is normal when a torrent names a tracker that is not running.
LOCAL_ERROR = 3
POLL = 0.2
STOP = threading.Event()


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"ERROR {msg}", flush=True)
    print(f"transmission.py: {msg}", file=sys.stderr, flush=True)
    return 1


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rpc:
    """A Transmission RPC client (handles the X-Transmission-Session-Id handshake)."""

    def __init__(self, port, timeout=10.0):
        self.url = f"http://127.0.0.1:{port}/transmission/rpc"
        self.session_id = ""
        self.timeout = timeout

    def call(self, method, **arguments):
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(2):  # the first request only learns the session id
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                "X-Transmission-Session-Id": self.session_id,
            })
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    reply = json.loads(resp.read())
            except urllib.error.HTTPError as e:
                if e.code == 409 and "X-Transmission-Session-Id" in e.headers:
                    self.session_id = e.headers["X-Transmission-Session-Id"]
                    continue
                raise RuntimeError(f"RPC {method}: HTTP {e.code} {e.reason}") from None
            if reply.get("result") != "success":
                raise RuntimeError(f"RPC {method}: {reply.get('result')}")
            return reply.get("arguments", {})
        raise RuntimeError(f"RPC {method}: no session id after 409")

    def torrent(self, tid, fields):
        found = self.call("torrent-get", ids=[tid], fields=fields).get("torrents", [])
        if not found:
            raise RuntimeError(f"no torrent with id {tid}")
        return found[0]


def settings_for(args, download_dir):
    return {
        "bind-address-ipv4": args.bind,
        "bind-address-ipv6": "::1",
        "rpc-bind-address": "127.0.0.1",
        "rpc-port": args.rpc_port,
        "rpc-authentication-required": False,
        "rpc-whitelist-enabled": True,
        "rpc-whitelist": "127.0.0.1",
        "rpc-host-whitelist-enabled": False,
        "peer-port": args.peer_port,
        "peer-port-random-on-start": False,
        "port-forwarding-enabled": False,
        "dht-enabled": False,
        "lpd-enabled": False,
        "pex-enabled": False,
        "utp-enabled": False,
        "encryption": {"tolerated": 0, "preferred": 1, "required": 2}[args.encryption],
        "download-dir": download_dir,
        "incomplete-dir-enabled": False,
        "watch-dir-enabled": False,
        "start-added-torrents": True,
        "ratio-limit-enabled": False,
        "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False,
        "speed-limit-down-enabled": False,
        "alt-speed-enabled": False,
        "blocklist-enabled": False,
        "queue-stalled-enabled": False,
        "download-queue-enabled": False,
        "seed-queue-enabled": False,
        "cache-size-mb": 64,
        "message-level": 2,
    }


def die_with_parent():
    """Runs in the daemon child: get SIGKILL if this wrapper dies without cleaning up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_daemon(proc):
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def cmd_daemon(args):
    home = os.path.abspath(args.home)
    config = os.path.join(home, "config")
    download_dir = os.path.abspath(args.download_dir or os.path.join(home, "downloads"))
    os.makedirs(config, exist_ok=True)
    os.makedirs(download_dir, exist_ok=True)
    args.rpc_port = args.rpc_port or free_port()
    args.peer_port = args.peer_port or free_port()
    with open(os.path.join(config, "settings.json"), "w") as f:
        json.dump(settings_for(args, download_dir), f, indent=2)
    logfile = os.path.join(home, "transmission.log")
    cmd = ["transmission-daemon", "-f", "--config-dir", config,
           "--port", str(args.rpc_port), "--peerport", str(args.peer_port),
           "--download-dir", download_dir, "-a", "127.0.0.1", "-T",
           "--no-dht", "--no-lpd", "--no-portmap", "--no-utp",
           "--bind-address-ipv4", args.bind, "--rpc-bind-address", "127.0.0.1",
           "--logfile", logfile, "--log-info"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    except FileNotFoundError:
        return fail("transmission-daemon is not installed; run: "
                    "apt-get install -y transmission-daemon transmission-cli")
    try:
        rpc = Rpc(args.rpc_port, timeout=2.0)
        deadline = time.monotonic() + args.start_timeout
        while True:
            if proc.poll() is not None:
                return fail(f"transmission-daemon exited with {proc.returncode} at start; "
                            f"see {logfile}")
            try:
                version = rpc.call("session-get", fields=["version"]).get("version", "?")
                break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                return fail(f"transmission-daemon RPC on 127.0.0.1:{args.rpc_port} did not "
                            f"answer within {args.start_timeout:.0f}s; see {logfile}")
            STOP.wait(POLL)
            if STOP.is_set():
                return 0
        log(f"transmission-daemon {version} pid {proc.pid}: rpc 127.0.0.1:{args.rpc_port}, "
            f"peers {args.bind}:{args.peer_port}, downloads {download_dir}, log {logfile}")
        log(f"READY {args.rpc_port} {args.peer_port}")
        while not STOP.is_set():
            if proc.poll() is not None:
                return fail(f"transmission-daemon exited with {proc.returncode}; see {logfile}")
            STOP.wait(0.5)
        log("stopping transmission-daemon")
        return 0
    finally:
        stop_daemon(proc)


def cmd_add(args):
    with open(args.torrent, "rb") as f:
        metainfo = base64.b64encode(f.read()).decode()
    extra = {"download-dir": os.path.abspath(args.download_dir)} if args.download_dir else {}
    os.makedirs(extra.get("download-dir", "."), exist_ok=True)
    reply = Rpc(args.rpc).call("torrent-add", metainfo=metainfo, paused=args.paused, **extra)
    added = reply.get("torrent-added") or reply.get("torrent-duplicate")
    if not added:
        return fail(f"torrent-add gave no torrent: {reply}")
    log(f"ID {added['id']} HASH {added['hashString']}")
    return 0


FIELDS = ["id", "name", "hashString", "status", "percentDone", "leftUntilDone", "haveValid",
          "sizeWhenDone", "error", "errorString", "rateDownload", "rateUpload",
          "peersConnected", "uploadedEver", "downloadedEver", "recheckProgress"]


def cmd_wait(args):
    rpc = Rpc(args.rpc)
    started = time.monotonic()
    last_report = -1.0
    while not STOP.is_set():
        t = rpc.torrent(args.id, FIELDS)
        elapsed = time.monotonic() - started
        state = STATUS.get(t["status"], str(t["status"]))
        if elapsed - last_report >= 1.0:
            last_report = elapsed
            log(f"progress {t['percentDone'] * 100:6.2f}% state {state} "
                f"down {t['rateDownload'] / 1e6:8.2f} MB/s up {t['rateUpload'] / 1e6:8.2f} MB/s "
                f"peers {t['peersConnected']} t {elapsed:6.1f}s")
        if t["error"] == LOCAL_ERROR:
            return fail(f"torrent {args.id}: {t['errorString']}")
        if (t["leftUntilDone"] == 0 and t["percentDone"] >= 1.0
                and t["status"] not in (1, 2)):
            log(f"DONE {elapsed:.3f} {t['haveValid']}")
            return 0
        if elapsed > args.timeout:
            return fail(f"torrent {args.id} not complete after {args.timeout:.0f}s: "
                        f"{t['percentDone'] * 100:.2f}% {state}, "
                        f"{t['peersConnected']} peers, error {t['error']} {t['errorString']!r}")
        STOP.wait(POLL)
    return 1


def cmd_hash(args):
    print(Rpc(args.rpc).torrent(args.id, ["hashString"])["hashString"])
    return 0


def cmd_status(args):
    t = Rpc(args.rpc).torrent(args.id, FIELDS)
    t["status"] = STATUS.get(t["status"], t["status"])
    for key in FIELDS:
        print(f"{key}: {t[key]}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        description="Run and drive a private transmission-daemon on 127.0.0.1 "
                    "(no DHT, LPD, PEX, uTP or port mapping).",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 bad usage.")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("daemon", help="start a daemon; prints READY <rpc-port> <peer-port>")
    d.add_argument("--home", required=True,
                   help="folder for its config, log and (by default) downloads")
    d.add_argument("--rpc-port", type=int, default=0, help="RPC port (0 = pick a free one)")
    d.add_argument("--peer-port", type=int, default=0, help="peer port (0 = pick a free one)")
    d.add_argument("--download-dir", help="default download folder (default HOME/downloads)")
    d.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="IPv4 address for peer connections (default 127.0.0.1; the RPC stays "
                        "on 127.0.0.1). Transmission only dials peers outside 127.0.0.0/8, so "
                        "two daemons that must find each other need other addresses, e.g. "
                        "10.x addresses on the loopback device of a private network namespace")
    d.add_argument("--encryption", choices=["tolerated", "preferred", "required"],
                   default="preferred",
                   help="peer encryption (Transmission's default: preferred; plaintext "
                        "incoming connections are accepted unless required)")
    d.add_argument("--start-timeout", type=float, default=30.0, metavar="S",
                   help="how long to wait for the RPC to answer (default 30)")
    d.add_argument("--watch-stdin", action="store_true",
                   help="also stop when stdin is closed (lets a parent process that dies "
                        "take the daemon with it)")
    d.set_defaults(func=cmd_daemon)

    def rpc_arg(sp):
        sp.add_argument("--rpc", type=int, required=True, metavar="PORT",
                        help="RPC port of the daemon")

    a = sub.add_parser("add", help="add a .torrent; prints ID <id> HASH <info-hash>")
    rpc_arg(a)
    a.add_argument("--torrent", required=True, help=".torrent file")
    a.add_argument("--download-dir", help="where the data is or goes (default: the daemon's)")
    a.add_argument("--paused", action="store_true", help="add without starting")
    a.set_defaults(func=cmd_add)

    w = sub.add_parser("wait", help="wait until a torrent is complete and verified")
    rpc_arg(w)
    w.add_argument("--id", type=int, default=1, help="torrent id (default 1)")
    w.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="give up (exit 1) after this many seconds (default 300)")
    w.set_defaults(func=cmd_wait)

    h = sub.add_parser("hash", help="print a torrent's info-hash")
    rpc_arg(h)
    h.add_argument("--id", type=int, default=1, help="torrent id (default 1)")
    h.set_defaults(func=cmd_hash)

    s = sub.add_parser("status", help="print a torrent's state as key: value lines")
    rpc_arg(s)
    s.add_argument("--id", type=int, default=1, help="torrent id (default 1)")
    s.set_defaults(func=cmd_status)
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
