#!/usr/bin/env python3
"""Many libtorrent leechers in one process: --count sessions, each its own peer of one torrent.

bench/peers.py needs hundreds of distinct peers of the same torrent; one Python process per
libtorrent leecher would cost an interpreter each. Here every session is a separate libtorrent
session (libtorrent 2.1 bindings) with its own peer id, its own listen port on 127.0.0.1 and
its own download folder (--save/<index>), so the seed sees --count unrelated peers.

Each session speaks TCP only (uTP off), runs no DHT, LSD, UPnP or NAT-PMP, and is made
without libtorrent's default plugins, so it has no peer exchange (ut_pex) either: it only ever
dials --peer (again every second while not connected). It may still accept peers that dial it
(other leechers that learned its address from the seed's peer exchange); --upload-limit caps
what it sends them. A session has one disk thread and one hashing thread, so 20 sessions do not
make hundreds of threads.

A session that has every piece verified prints DONE and removes its torrent (it leaves the
swarm, as `shoal get` exits), unless --stay.

Lines on stdout (<i> is the session's index, 0-based):
  LISTEN <i> <port>              session i listens on 127.0.0.1:<port>
  DONE <i> <seconds> <bytes>     session i has the whole torrent, <seconds> after LISTEN ALL
  LISTEN ALL                     every session is listening and dialling (the clock starts)
  ERROR <i> <message>            session i failed; the others go on
  END <done> <count>             every session is done or failed, or --timeout passed
Exit code: 0 if every session finished, 1 otherwise. SIGTERM, SIGINT and the end of stdin
(the parent died) stop it.
"""
import argparse
import os
import signal
import sys
import threading
import time

from stdin_watch import watch_stdin

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the machine
    print("ERROR - the libtorrent Python module is missing; run: pip install libtorrent==2.1.1", flush=True)
    sys.exit(1)

TICK = 0.25  # seconds between two looks at every session
REDIAL_EVERY = 1.0
STOP = threading.Event()


def log(msg):
    print(msg, flush=True)


def make_session(upload_limit):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_ip_notifier": False,
        "allow_multiple_connections_per_ip": True,
        "min_reconnect_time": 1,
        "aio_threads": 1,
        "hashing_threads": 1,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
        "user_agent": "shoal-bench/libtorrent " + lt.__version__,
    }
    if upload_limit:
        settings["upload_rate_limit"] = upload_limit
        # Otherwise libtorrent charges the estimated TCP/IP overhead of what it downloads (its
        # ACKs) to the upload limit: with a small limit and a fast download that starves the
        # requests themselves and the download stalls.
        settings["rate_limit_ip_overhead"] = False
    # flags=0: no default plugins (ut_pex, ut_metadata, smart_ban).
    return lt.session(settings, 0)


class Leecher:
    def __init__(self, index, info, save, peer, upload_limit):
        self.index, self.peer = index, peer
        self.ses = make_session(upload_limit)
        params = lt.add_torrent_params()
        params.ti = info
        params.save_path = os.path.join(save, str(index))
        os.makedirs(params.save_path, exist_ok=True)
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        self.handle = self.ses.add_torrent(params)
        if upload_limit:
            self.handle.set_upload_limit(upload_limit)
        self.port = None
        self.last_dial = 0.0
        self.finished = False  # done or failed
        self.ok = False  # done

    def tick(self, now, start):
        for a in self.ses.pop_alerts():
            if isinstance(a, (lt.file_error_alert, lt.torrent_error_alert, lt.listen_failed_alert)):
                log(f"ERROR {self.index} {a.what()}: {a.message()}")
                self.finished = True
                return
        if self.port is None:
            self.port = self.ses.listen_port() or None
            if self.port:
                log(f"LISTEN {self.index} {self.port}")
        if start is None:
            return
        st = self.handle.status()
        if st.is_seeding:
            log(f"DONE {self.index} {now - start:.3f} {st.total_wanted}")
            self.finished = self.ok = True
            return
        if now - self.last_dial >= REDIAL_EVERY:
            self.last_dial = now
            if st.num_peers == 0 or self.peer not in {(p.ip[0], p.ip[1]) for p in self.handle.get_peer_info()}:
                try:
                    self.handle.connect_peer(self.peer)
                except RuntimeError as e:
                    log(f"connect_peer failed in {self.index}: {e}")

    def leave(self):
        try:
            self.ses.remove_torrent(self.handle)
        except RuntimeError:
            pass


def parse_peer(text):
    host, sep, port = text.rpartition(":")
    if not sep or host != "127.0.0.1" or not port.isdigit():
        raise argparse.ArgumentTypeError(f"peer must be 127.0.0.1:PORT, got {text!r}")
    return (host, int(port))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save", required=True, help="session i downloads into SAVE/i")
    ap.add_argument("--peer", required=True, type=parse_peer, help="the seed, 127.0.0.1:PORT")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--first-index", type=int, default=0, help="index of the first session (for names)")
    ap.add_argument("--upload-limit", type=int, default=0, metavar="BPS", help="per session (0 = none)")
    ap.add_argument("--timeout", type=float, default=600.0, metavar="S")
    ap.add_argument("--stay", action="store_true", help="keep seeding after DONE")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())

    watch_stdin(STOP)

    info = lt.torrent_info(args.torrent)
    leechers = [Leecher(args.first_index + i, info, args.save, args.peer, args.upload_limit)
                for i in range(args.count)]
    # Wait (bounded) until every session listens, then start the clock and dial.
    deadline = time.monotonic() + 30
    while not STOP.is_set() and time.monotonic() < deadline and any(l.port is None and not l.finished for l in leechers):
        for l in leechers:
            l.tick(time.monotonic(), None)
        time.sleep(0.05)
    start = time.monotonic()
    log("LISTEN ALL")
    deadline = start + args.timeout
    while not STOP.is_set() and time.monotonic() < deadline:
        now = time.monotonic()
        pending = 0
        for l in leechers:
            if l.finished:
                continue
            l.tick(now, start)
            if l.finished:
                if l.ok and not args.stay:
                    l.leave()
            else:
                pending += 1
        if pending == 0:
            break
        time.sleep(TICK)
    done = sum(1 for l in leechers if l.ok)
    for l in leechers:
        if not l.finished:
            st = l.handle.status()
            log(f"ERROR {l.index} not complete after {time.monotonic() - start:.0f}s "
                f"({st.progress * 100:.1f}%, {st.num_peers} peers)")
    log(f"END {done} {len(leechers)}")
    if args.stay:
        STOP.wait(timeout=args.timeout)
    return 0 if done == len(leechers) else 1


if __name__ == "__main__":
    sys.exit(main())
