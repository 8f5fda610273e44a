#!/usr/bin/env python3
"""Drives qBittorrent-nox (Debian's 4.5, libtorrent 2.0 inside) over its Web API for interop
tests: one private profile folder per run, the Web UI and the peer port on 127.0.0.1, DHT,
local discovery, peer exchange and UPnP/NAT-PMP off, everything else at qBittorrent's
out-of-the-box settings (TCP and uTP, encryption allowed) unless --encryption require.

  qbt.py seed  --torrent T --save DIR [--encryption default|require] [--watch-stdin]
      adds T over the data in DIR, waits for the check, prints "READY <peer port>" and seeds
      until stdin closes (or it is killed).
  qbt.py leech --torrent T --save DIR --peer HOST:PORT [--encryption ...] [--timeout S]
      adds T, hands it the peer, and exits 0 with "DONE <seconds> <bytes>" once complete;
      exit 1 on timeout (with qBittorrent's view of the torrent and its peers).

Only the standard library: the Web API is plain HTTP with form or multipart bodies.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(profile, peer_port, webui_port, encryption):
    conf_dir = os.path.join(profile, "qBittorrent", "config")
    os.makedirs(conf_dir, exist_ok=True)
    # Session\Encryption: 0 = allow (prefer), 1 = require, 2 = disable.
    enc = {"default": 0, "require": 1}[encryption]
    with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
        f.write(f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port={peer_port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\Encryption={enc}
Session\\AnonymousModeEnabled=false
Session\\AddTorrentPaused=false

[Preferences]
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
General\\Locale=en
WebUI\\Address=127.0.0.1
WebUI\\Port={webui_port}
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\ClickjackingProtection=false
""")


class Qbt:
    def __init__(self, encryption):
        self.profile = tempfile.mkdtemp(prefix="shoal-qbt-")
        self.peer_port = free_port()
        self.webui_port = free_port()
        write_config(self.profile, self.peer_port, self.webui_port, encryption)
        self.base = f"http://127.0.0.1:{self.webui_port}/api/v2/"
        self.proc = subprocess.Popen(
            ["qbittorrent-nox", f"--profile={self.profile}", f"--webui-port={self.webui_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._echo, daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.version = self.get("app/version")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"qbittorrent-nox did not start its Web UI (exit {self.proc.poll()})")
                time.sleep(0.1)

    def _echo(self):
        for line in self.proc.stdout:
            sys.stderr.write(f"[qbittorrent-nox] {line}")

    def get(self, path, **query):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def post(self, path, fields):
        data = urllib.parse.urlencode(fields).encode()
        with urllib.request.urlopen(urllib.request.Request(self.base + path, data=data), timeout=10) as r:
            return r.read().decode()

    def add(self, torrent, save):
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in [("savepath", os.path.abspath(save)), ("paused", "false"), ("root_folder", "false"),
                            ("contentLayout", "Original")]:
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
        with open(torrent, "rb") as f:
            body = f.read()
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"t.torrent\"\r\n"
                     "Content-Type: application/x-bittorrent\r\n\r\n".encode() + body + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        req = urllib.request.Request(self.base + "torrents/add", data=b"".join(parts),
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            said = r.read().decode()
        if said.strip() != "Ok.":
            raise SystemExit(f"qBittorrent refused the torrent: {said!r}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            torrents = json.loads(self.get("torrents/info"))
            if torrents:
                return torrents[0]["hash"]
            time.sleep(0.1)
        raise SystemExit("the torrent never showed up in qBittorrent's list")

    def info(self, h):
        return json.loads(self.get("torrents/info", hashes=h))[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def watch_stdin(qbt):
    def run():
        try:
            while sys.stdin.read(4096):
                pass
        except OSError:
            pass
        qbt.stop()
        os._exit(0)
    threading.Thread(target=run, daemon=True).start()


def cmd_seed(args):
    qbt = Qbt(args.encryption)
    try:
        if args.watch_stdin:
            watch_stdin(qbt)
        h = qbt.add(args.torrent, args.save)
        deadline = time.monotonic() + 60
        while True:
            t = qbt.info(h)
            if t["progress"] >= 1.0 and t["state"] in ("uploading", "stalledUP", "forcedUP", "queuedUP"):
                break
            if t["state"] in ("error", "missingFiles") or time.monotonic() > deadline:
                raise SystemExit(f"qBittorrent does not seed: {t['state']} at {t['progress']:.2%}")
            time.sleep(0.1)
        print(f"qBittorrent {qbt.version} seeding {t['name']} on 127.0.0.1:{qbt.peer_port}", flush=True)
        print(f"READY {qbt.peer_port}", flush=True)
        while True:
            time.sleep(3600)
    finally:
        qbt.stop()


def cmd_leech(args):
    qbt = Qbt(args.encryption)
    try:
        if args.watch_stdin:
            watch_stdin(qbt)
        start = time.monotonic()
        h = qbt.add(args.torrent, args.save)
        for peer in args.peer:
            qbt.post("torrents/addPeers", {"hashes": h, "peers": peer})
        deadline = start + args.timeout
        next_peers = time.monotonic() + 2
        while time.monotonic() < deadline:
            t = qbt.info(h)
            if t["progress"] >= 1.0:
                print(f"DONE {time.monotonic() - start:.3f} {t['size']}", flush=True)
                return 0
            if time.monotonic() > next_peers:
                # A peer dropped early (a failed first attempt) is handed over again.
                for peer in args.peer:
                    qbt.post("torrents/addPeers", {"hashes": h, "peers": peer})
                next_peers = time.monotonic() + 2
            time.sleep(0.05)
        peers = qbt.get("sync/torrentPeers", hash=h)
        print(f"timed out: {json.dumps(qbt.info(h))}\npeers: {peers}", file=sys.stderr, flush=True)
        return 1
    finally:
        qbt.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("seed", "leech"):
        sp = sub.add_parser(name)
        sp.add_argument("--torrent", required=True)
        sp.add_argument("--save", required=True)
        sp.add_argument("--encryption", choices=["default", "require"], default="default")
        sp.add_argument("--watch-stdin", action="store_true")
        if name == "leech":
            sp.add_argument("--peer", action="append", default=[], required=True, metavar="HOST:PORT")
            sp.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    return cmd_seed(args) if args.cmd == "seed" else cmd_leech(args)


if __name__ == "__main__":
    sys.exit(main())
