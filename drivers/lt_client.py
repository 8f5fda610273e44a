#!/usr/bin/env python3
"""Drive libtorrent (Python bindings, 2.1) as a seeder, a leecher or a torrent tool.

Shoal's interop tests and benchmarks use this script to run a real, independent BitTorrent
client on loopback. Every session it starts is bound to 127.0.0.1 (or another loopback address
given with --bind), speaks TCP only (uTP off), and has DHT, local service discovery, UPnP and
NAT-PMP switched off, so it only ever talks to the peers it is told about (--peer) and to the
trackers named in the torrent.

With --dht-bootstrap HOST:PORT (seed and leech), the session also runs a DHT node bootstrapped
only from that node, with libtorrent's checks that make no sense on one machine switched off
(dht_restrict_routing_ips, dht_restrict_search_ips, dht_enforce_node_id,
dht_ignore_dark_internet), and announces its torrent there. DHT alerts are printed as
"alert dht_...: ..." lines.

Subcommands:
  seed    check the data in --save, print "READY <port>" once seeding, serve until killed
  leech   download into --save (a --torrent, or a --magnet link whose metadata is fetched
          from peers first), print progress, exit 0 once complete and verified
  create  write a .torrent for a file or folder (v1 by default)
  info    print the info-hash of a .torrent as libtorrent computes it
  dht-get-peers  look an info-hash up in a DHT reached through --dht-bootstrap; exit 0 once
          --want is among the peers found
  dht-node  run a DHT node only (no torrent), bootstrapped from --dht-bootstrap, that answers
          BEP 51 sample_infohashes with a fresh sample every time; prints DHT alerts
  dht-sample  ask one node for its info-hash sample (BEP 51) until --want is in it

Machine-readable lines on stdout (everything else is for people):
  READY <port>          seed: listening on <bind>:<port> with every piece verified
  LISTEN <port>         leech: listening on <bind>:<port>
  SSL <port>            seed/leech with --ssl-cert: the SSL torrent's TLS socket listens on <port>
  METADATA <seconds>    leech --magnet: the metadata arrived this long after LISTEN
  DONE <seconds> <bytes> leech: all pieces downloaded and verified
  PEERS <addr>...       dht-get-peers: one lookup's answer (HOST:PORT each)
  FOUND <addr>          dht-get-peers: the --want peer was found
  DHT <port>            dht-node: the DHT node's UDP port
  SAMPLES <num> <hex>...  dht-sample: one answer (info-hashes the node stores, and a sample)
  SAMPLED <hex>         dht-sample: the --want info-hash was in a sample
  ERROR <message>       something failed; the exit code is 1

Exit codes: 0 success, 1 runtime failure (timeout, bad data, libtorrent error),
2 bad usage. SIGTERM and SIGINT stop a running seed or leech cleanly (exit 0).
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
    print("ERROR the libtorrent Python module is missing; run: pip install libtorrent==2.1.1",
          file=sys.stderr)
    sys.exit(1)

# How often the main loop wakes up when no alert arrives (seconds).
TICK = 0.25
# How often progress lines are printed (seconds).
REPORT_EVERY = 1.0
# How long to wait before dialling a --peer again that is not connected (seconds).
REDIAL_EVERY = 1.0
# How long a seed may spend checking its data before giving up (seconds).
CHECK_TIMEOUT = 600.0
# How often dht-get-peers starts a new lookup while the peer is not found, and how often a
# leech of a magnet link looks its torrent up on the DHT while it has no peers (seconds).
LOOKUP_EVERY = 1.0

STOP = threading.Event()


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"ERROR {msg}", flush=True)
    print(f"lt_client: {msg}", file=sys.stderr, flush=True)
    return 1


def on_signal(_signum, _frame):
    STOP.set()


def loopback(text):
    if text == "::1":
        return text
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256
                                                        for p in parts):
        raise argparse.ArgumentTypeError(f"must be ::1 or an address in 127.0.0.0/8, got {text!r}")
    return text


def parse_peer(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"peer must be HOST:PORT, got {text!r}")
    return (host.strip("[]"), int(port))


def dht_node(text):
    host, port = parse_peer(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_session(bind, listen_port, encryption, dht_bootstrap=None, lsd=False, ssl=False, transport="tcp"):
    """A session on loopback address `bind` that speaks TCP only (or, with `transport` "utp",
    uTP only: TCP off both ways) and finds no peers on its own,
    unless `dht_bootstrap` ("HOST:PORT") is given: then it runs a DHT node bootstrapped only
    from that node. With `ssl` it also listens for SSL torrents' TLS connections (a second
    socket on any free port, libtorrent's "s" suffix)."""
    host = f"[{bind}]" if ":" in bind else bind  # an IPv6 address is written in brackets
    policy = {
        "enabled": lt.enc_policy.enabled,
        "disabled": lt.enc_policy.disabled,
        "forced": lt.enc_policy.forced,
    }[encryption]
    settings = {
        "listen_interfaces": f"{host}:{listen_port}" + (f",{host}:0s" if ssl else ""),
        "outgoing_interfaces": bind,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": transport == "utp",
        "enable_incoming_utp": transport == "utp",
        "enable_outgoing_tcp": transport == "tcp",
        "enable_incoming_tcp": transport == "tcp",
        "enable_ip_notifier": False,
        # Test peers share 127.0.0.1 and differ only by port.
        "allow_multiple_connections_per_ip": True,
        # A peer that refused a connection (not listening yet) is dialled again soon.
        "min_reconnect_time": 1,
        "out_enc_policy": policy,
        "in_enc_policy": policy,
        # Forced means RC4 here: the payload encrypted, not only the handshake.
        "allowed_enc_level": lt.enc_level.rc4 if encryption == "forced" else lt.enc_level.both,
        "prefer_rc4": encryption == "forced",
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.tracker_notification,
        "user_agent": "shoal-testkit/libtorrent " + lt.__version__,
    }
    if dht_bootstrap:
        settings.update({
            "enable_dht": True,
            "dht_bootstrap_nodes": dht_bootstrap,
            # Every node of a one-machine DHT shares 127.0.0.1 and has an id unrelated to it.
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_ignore_dark_internet": False,
        })
        settings["alert_mask"] |= lt.alert.category_t.dht_notification
    if lsd:
        # Local service discovery: only ever inside a network namespace a test created.
        settings["enable_lsd"] = True
        settings["alert_mask"] |= lt.alert.category_t.peer_notification
    return lt.session(settings)


def add_torrent(ses, torrent_path, save_dir):
    try:
        info = lt.torrent_info(torrent_path)
    except RuntimeError as e:
        raise SystemExit(fail(f"cannot read torrent {torrent_path}: {e}"))
    os.makedirs(save_dir, exist_ok=True)
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = save_dir
    # Not auto-managed: the queue must never pause the only torrent of the session.
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(params), info


class Alerts:
    """Pops libtorrent alerts, prints the interesting ones and remembers what happened."""

    def __init__(self, ses):
        self.ses = ses
        self.checked = False
        self.fatal = None

    def drain(self):
        """Handle every pending alert; return the first fatal error message seen so far."""
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                self.checked = True
            elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert,
                                lt.listen_failed_alert)):
                log(f"alert {a.what()}: {a.message()}")
                self.fatal = self.fatal or a.message()
            elif a.what() == "lsd_peer":
                log(f"LSD PEER {a.message()}")
            elif (a.category() & lt.alert.category_t.error_notification
                  or isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert,
                                    lt.dht_bootstrap_alert, lt.dht_reply_alert,
                                    lt.dht_announce_alert))):
                log(f"alert {a.what()}: {a.message()}")
        return self.fatal


class Dialer:
    """Dials each --peer, and dials it again while it is not connected."""

    def __init__(self, handle, peers):
        self.handle = handle
        self.peers = peers
        self.last = 0.0

    def tick(self, now):
        if not self.peers or now - self.last < REDIAL_EVERY:
            return
        self.last = now
        connected = {(p.ip[0], p.ip[1]) for p in self.handle.get_peer_info()}
        for peer in self.peers:
            if peer not in connected:
                try:
                    self.handle.connect_peer(peer)
                except RuntimeError as e:
                    log(f"connect_peer {peer[0]}:{peer[1]} failed: {e}")


def status_line(st, elapsed):
    return (f"progress {st.progress * 100:6.2f}% state {str(st.state).split('.')[-1]} "
            f"down {st.download_payload_rate / 1e6:8.2f} MB/s "
            f"up {st.upload_payload_rate / 1e6:8.2f} MB/s peers {st.num_peers} "
            f"t {elapsed:6.1f}s")


def wait_listening(ses, alerts, timeout=10.0):
    """The TCP port the session listens on, once the socket is open; None on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not STOP.is_set():
        if alerts.drain():
            return None
        port = ses.listen_port()
        if port:
            return port
        ses.wait_for_alert(int(TICK * 1000))
    return None


def set_ssl(ses, handle, args):
    """Gives an SSL torrent this peer's member certificate (--ssl-cert, --ssl-key, --ssl-dh)
    and prints "SSL <port>" once the SSL socket listens. Returns False on failure."""
    if not args.ssl_cert:
        return True
    handle.set_ssl_certificate(args.ssl_cert, args.ssl_key, args.ssl_dh)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        port = ses.ssl_listen_port()
        if port:
            log(f"SSL {port}")
            return True
        time.sleep(0.05)
    return False


def cmd_seed(args):
    ses = make_session(args.bind, args.listen, args.encryption, args.dht_bootstrap, args.lsd_in_netns,
                       bool(args.ssl_cert), args.transport)
    if args.tick_ms:
        ses.apply_settings({"tick_interval": args.tick_ms})
    handle, info = add_torrent(ses, args.torrent, args.save)
    if not set_ssl(ses, handle, args):
        return fail("the SSL socket did not open")
    if args.upload_limit:
        handle.set_upload_limit(args.upload_limit)
    started = time.monotonic()
    alerts = Alerts(ses)
    # Check the data; a seed whose data is incomplete is an error, not a leech.
    while not handle.status().is_seeding:
        if STOP.is_set():
            return 0
        if alerts.drain():
            return fail(alerts.fatal)
        if alerts.checked:
            st = handle.status()
            if not st.is_seeding:
                return fail(f"data in {args.save} does not match {args.torrent}: "
                            f"{st.progress * 100:.2f}% verified")
        if time.monotonic() - started > CHECK_TIMEOUT:
            return fail(f"checking {args.save} took longer than {CHECK_TIMEOUT:.0f}s")
        ses.wait_for_alert(int(TICK * 1000))
    port = wait_listening(ses, alerts)
    if port is None:
        return fail(alerts.fatal or f"could not listen on {args.bind}:{args.listen}")
    log(f"seeding {info.name()} ({info.total_size()} bytes, {info.num_pieces()} pieces) "
        f"info-hash {info_hash_hex(info)}")
    log(f"READY {port}")
    dialer = Dialer(handle, args.peer)
    last_report = 0.0
    while not STOP.is_set():
        now = time.monotonic()
        dialer.tick(now)
        if alerts.drain():
            return fail(alerts.fatal)
        if args.verbose and now - last_report >= REPORT_EVERY:
            last_report = now
            log(status_line(handle.status(), now - started))
        ses.wait_for_alert(int(TICK * 1000))
    st = handle.status()
    log(f"stopped; uploaded {st.total_payload_upload} bytes")
    return 0


def add_magnet(ses, uri, save_dir):
    """Adds a magnet link; its metadata comes from peers (BEP 9)."""
    try:
        params = lt.parse_magnet_uri(uri)
    except RuntimeError as e:
        raise SystemExit(fail(f"cannot read magnet link {uri}: {e}"))
    os.makedirs(save_dir, exist_ok=True)
    params.save_path = save_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(params)


def wait_metadata(ses, handle, alerts, dialer, timeout, dht):
    """The torrent_info of a magnet link's torrent once its metadata has arrived, after printing
    "METADATA <seconds>"; None (after printing an error, unless stopped) otherwise.

    With `dht`, the torrent is looked up on the DHT every LOOKUP_EVERY seconds while it has no
    peers: libtorrent announces a torrent added while its DHT is still starting only at the
    next dht_announce_interval (15 minutes)."""
    started = time.monotonic()
    last_lookup = None
    while not STOP.is_set():
        now = time.monotonic()
        if alerts.drain():
            fail(alerts.fatal)
            return None
        st = handle.status()
        if st.has_metadata:
            log(f"METADATA {now - started:.3f}")
            return handle.torrent_file()
        if now - started > timeout:
            fail(f"no metadata after {timeout:.0f}s ({st.num_peers} peers)")
            return None
        if dht and st.num_peers == 0 and (last_lookup is None or now - last_lookup >= LOOKUP_EVERY):
            last_lookup = now
            handle.force_dht_announce()
        dialer.tick(now)
        ses.wait_for_alert(int(TICK * 1000))
    return None


def cmd_leech(args):
    ses = make_session(args.bind, args.listen, args.encryption, args.dht_bootstrap, args.lsd_in_netns,
                       bool(args.ssl_cert), args.transport)
    if args.tick_ms:
        ses.apply_settings({"tick_interval": args.tick_ms})
    if args.magnet:
        handle, info = add_magnet(ses, args.magnet, args.save), None
    else:
        handle, info = add_torrent(ses, args.torrent, args.save)
    if not set_ssl(ses, handle, args):
        return fail("the SSL socket did not open")
    if args.download_limit:
        handle.set_download_limit(args.download_limit)
    if args.upload_limit:
        handle.set_upload_limit(args.upload_limit)
    alerts = Alerts(ses)
    port = wait_listening(ses, alerts)
    if port is None:
        return fail(alerts.fatal or f"could not listen on {args.bind}:{args.listen}")
    dialer = Dialer(handle, args.peer)
    if info is None:
        # A magnet link: LISTEN first, the name and size only once the metadata is here.
        log(f"LISTEN {port}")
        info = wait_metadata(ses, handle, alerts, dialer, args.timeout, bool(args.dht_bootstrap))
        if info is None:
            return 0 if STOP.is_set() else 1
    log(f"leeching {info.name()} ({info.total_size()} bytes, {info.num_pieces()} pieces) "
        f"info-hash {info_hash_hex(info)}")
    if not args.magnet:
        log(f"LISTEN {port}")
    started = time.monotonic()
    last_report = 0.0
    done = False
    while not STOP.is_set():
        now = time.monotonic()
        elapsed = now - started
        if alerts.drain():
            return fail(alerts.fatal)
        st = handle.status()
        if not done and st.is_seeding:
            done = True
            handle.flush_cache()
            log(status_line(st, elapsed))
            log(f"DONE {elapsed:.3f} {info.total_size()}")
            if not args.then_seed:
                return 0
        if not done:
            dialer.tick(now)
            if now - last_report >= REPORT_EVERY:
                last_report = now
                log(status_line(st, elapsed))
            if elapsed > args.timeout:
                return fail(f"download not complete after {args.timeout:.0f}s "
                            f"({st.progress * 100:.2f}%, {st.num_peers} peers)")
        ses.wait_for_alert(int(TICK * 1000))
    return 0


def cmd_dht_get_peers(args):
    ses = make_session(args.bind, args.listen, "enabled", args.dht_bootstrap)
    mask = ses.get_settings()["alert_mask"] | lt.alert.category_t.dht_operation_notification
    ses.apply_settings({"alert_mask": mask})
    try:
        target = lt.sha1_hash(bytes.fromhex(args.info_hash))
    except ValueError:
        return fail(f"not a hex info-hash: {args.info_hash!r}")
    want = f"{args.want[0]}:{args.want[1]}"
    started = time.monotonic()
    last_lookup = None
    while not STOP.is_set():
        now = time.monotonic()
        if now - started > args.timeout:
            return fail(f"{want} not found for {args.info_hash} within {args.timeout:.0f}s")
        # A lookup started before the DHT has bootstrapped finds nothing: start one every
        # LOOKUP_EVERY seconds until the peer turns up.
        if last_lookup is None or now - last_lookup >= LOOKUP_EVERY:
            last_lookup = now
            ses.dht_get_peers(target)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_get_peers_reply_alert):
                peers = [f"{ip}:{port}" for ip, port in a.peers()]
                log(f"PEERS {' '.join(peers)}")
                if want in peers:
                    log(f"FOUND {want}")
                    return 0
            elif (a.category() & lt.alert.category_t.error_notification
                  or isinstance(a, lt.dht_bootstrap_alert)):
                log(f"alert {a.what()}: {a.message()}")
        ses.wait_for_alert(int(TICK * 1000))
    return 0


def cmd_dht_node(args):
    ses = make_session(args.bind, args.listen, "enabled", args.dht_bootstrap)
    # A new sample for every request, so that what was announced a moment ago is in it.
    ses.apply_settings({"dht_sample_infohashes_interval": 0})
    alerts = Alerts(ses)
    port = None
    started = time.monotonic()
    while port is None:
        if time.monotonic() - started > 10:
            return fail("the DHT socket did not open")
        alerts.drain()
        port = ses.listen_port() if ses.is_dht_running() else None
        ses.wait_for_alert(int(TICK * 1000))
    log(f"DHT {port}")
    while not STOP.is_set():
        if alerts.drain():
            return fail(alerts.fatal)
        ses.wait_for_alert(int(TICK * 1000))
    return 0


def cmd_dht_sample(args):
    ses = make_session(args.bind, args.listen, "enabled", f"{args.node[0]}:{args.node[1]}")
    mask = ses.get_settings()["alert_mask"] | lt.alert.category_t.dht_operation_notification
    ses.apply_settings({"alert_mask": mask})
    host, port = args.node
    started = time.monotonic()
    last_ask = None
    while not STOP.is_set():
        now = time.monotonic()
        if now - started > args.timeout:
            return fail(f"{args.want} not sampled from {host}:{port} within {args.timeout:.0f}s")
        if last_ask is None or now - last_ask >= LOOKUP_EVERY:
            last_ask = now
            ses.dht_sample_infohashes((host, port), lt.sha1_hash(os.urandom(20)))
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_sample_infohashes_alert):
                hexes = [str(h) for h in a.samples]
                log(f"SAMPLES {a.num_infohashes} {' '.join(hexes)}")
                if args.want in hexes:
                    log(f"SAMPLED {args.want}")
                    return 0
            elif a.category() & lt.alert.category_t.error_notification:
                log(f"alert {a.what()}: {a.message()}")
        ses.wait_for_alert(int(TICK * 1000))
    return 0


def info_hash_hex(info):
    hashes = info.info_hashes()
    if hashes.has_v1():
        return str(hashes.v1)
    return str(hashes.v2)


def cmd_create(args):
    path = os.path.abspath(args.path)
    if not os.path.exists(path):
        return fail(f"{args.path} does not exist")
    files = lt.list_files(path)
    if not files:
        return fail(f"{args.path} holds no files")
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only,
             "hybrid": 0}[args.format]
    t = lt.create_torrent(files, args.piece_size, flags)
    for url in args.tracker:
        t.add_tracker(url)
    if args.private:
        t.set_priv(True)
    if args.root_cert:
        with open(args.root_cert) as f:
            t.set_root_cert(f.read())
    t.set_creator("shoal-testkit/libtorrent " + lt.__version__)
    lt.set_piece_hashes(t, os.path.dirname(path))
    data = lt.bencode(t.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    info = lt.torrent_info(args.out)
    log(f"wrote {args.out}: {info.num_files()} file(s), {info.total_size()} bytes, "
        f"{info.num_pieces()} pieces of {info.piece_length()} bytes, "
        f"info-hash {info_hash_hex(info)}")
    return 0


def cmd_info(args):
    try:
        info = lt.torrent_info(args.torrent)
    except RuntimeError as e:
        return fail(f"cannot read torrent {args.torrent}: {e}")
    hashes = info.info_hashes()
    if not args.verbose:
        print(info_hash_hex(info))
        return 0
    print(f"name: {info.name()}")
    print(f"v1: {hashes.v1 if hashes.has_v1() else '-'}")
    print(f"v2: {hashes.v2 if hashes.has_v2() else '-'}")
    print(f"total_size: {info.total_size()}")
    print(f"piece_length: {info.piece_length()}")
    print(f"num_pieces: {info.num_pieces()}")
    print(f"num_files: {info.num_files()}")
    print(f"private: {info.priv()}")
    with open(args.torrent, "rb") as f:
        meta = lt.bdecode(f.read()) or {}
    tiers = meta.get(b"announce-list") or ([[meta[b"announce"]]] if b"announce" in meta else [])
    for tier in tiers:
        for url in tier:
            print(f"tracker: {url.decode(errors='replace')}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        description="Run libtorrent on loopback (TCP only; no LSD, UPnP or NAT-PMP; no DHT "
                    "unless --dht-bootstrap) "
                    "as a seeder or leecher, or create and inspect .torrent files.",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 bad usage.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def session_args(sp, listen_help, torrent=True):
        if torrent:
            sp.add_argument("--torrent", required=True, help=".torrent file")
        sp.add_argument("--save", required=True, help="folder that holds (or receives) the data")
        sp.add_argument("--listen", type=int, default=0, help=listen_help)
        sp.add_argument("--lsd-in-netns", action="store_true",
                        help="run local service discovery (BEP 14) and allow any --bind address; "
                             "only inside a network namespace the test created")
        sp.add_argument("--bind", type=str, default="127.0.0.1", metavar="ADDR",
                        help="loopback address to listen on and dial from (default 127.0.0.1; "
                             "another 127.x.y.z gives this client its own IP, which matters to "
                             "peers that allow one connection per IP, such as Transmission)")
        sp.add_argument("--peer", type=parse_peer, action="append", default=[],
                        metavar="HOST:PORT",
                        help="dial this peer, and dial it again while not connected "
                             "(repeatable)")
        sp.add_argument("--upload-limit", type=int, default=0, metavar="BPS",
                        help="upload limit for this torrent in bytes per second (0 = none)")
        sp.add_argument("--tick-ms", type=int, default=0, metavar="MS",
                        help="libtorrent's tick_interval: how often bandwidth quota is handed "
                             "out (default: libtorrent's own, 500 ms; about 100 gives a smoother "
                             "rate limit, as libtorrent's documentation says)")
        sp.add_argument("--dht-bootstrap", type=dht_node, default=None, metavar="HOST:PORT",
                        help="run a DHT node bootstrapped only from this node and announce the "
                             "torrent there (default: no DHT)")
        sp.add_argument("--encryption", choices=["enabled", "disabled", "forced"],
                        default="enabled",
                        help="peer connection encryption policy, in and out "
                             "(libtorrent's default is enabled)")
        sp.add_argument("--transport", choices=["tcp", "utp"], default="tcp",
                        help="the one transport peer connections use, in and out (default tcp)")
        sp.add_argument("--watch-stdin", action="store_true",
                        help="stop when stdin is closed (lets a parent process that dies "
                             "take this one with it)")
        sp.add_argument("-v", "--verbose", action="store_true", help="print progress lines")
        sp.add_argument("--ssl-cert", metavar="PEM", help="SSL torrents: this peer's member certificate "
                        "(also opens an SSL socket and prints \"SSL <port>\")")
        sp.add_argument("--ssl-key", metavar="PEM", help="SSL torrents: the certificate's private key")
        sp.add_argument("--ssl-dh", metavar="PEM", help="SSL torrents: Diffie-Hellman parameters")

    s = sub.add_parser("seed", help="seed existing data; prints READY <port>; runs until killed")
    session_args(s, "port to listen on (0 = any; the READY line says which)")
    s.set_defaults(func=cmd_seed)

    le = sub.add_parser("leech", help="download; exits 0 once complete and verified")
    what = le.add_mutually_exclusive_group(required=True)
    what.add_argument("--torrent", help=".torrent file")
    what.add_argument("--magnet", metavar="URI",
                      help="magnet link: the metadata comes from peers first (its x.pe and tr, "
                           "--peer, or the DHT with --dht-bootstrap); prints METADATA <seconds> "
                           "once it has arrived")
    session_args(le, "port to listen on (0 = any; the LISTEN line says which)", torrent=False)
    le.add_argument("--timeout", type=float, default=300.0, metavar="S",
                    help="give up (exit 1) after this many seconds (default 300)")
    le.add_argument("--download-limit", type=int, default=0, metavar="BPS",
                    help="download limit in bytes per second (0 = none)")
    le.add_argument("--then-seed", action="store_true",
                    help="keep seeding after DONE until killed")
    le.set_defaults(func=cmd_leech, verbose=True)

    c = sub.add_parser("create", help="create a .torrent with libtorrent")
    c.add_argument("--path", required=True, help="file or folder to describe")
    c.add_argument("--out", required=True, help="where to write the .torrent")
    c.add_argument("--tracker", action="append", default=[], metavar="URL",
                   help="announce URL (repeatable; each becomes its own tier)")
    c.add_argument("--piece-size", type=int, default=0, metavar="N",
                   help="piece size in bytes, a power of two >= 16384 (0 = libtorrent picks)")
    c.add_argument("--format", choices=["v1", "v2", "hybrid"], default="v1",
                   help="torrent format (default v1)")
    c.add_argument("--private", action="store_true", help="set the private flag")
    c.add_argument("--root-cert", metavar="PEM", help="make an SSL torrent: the authority certificate "
                   "whose member certificates admit peers (ssl-cert)")
    c.set_defaults(func=cmd_create)

    i = sub.add_parser("info", help="print the info-hash (v1, or v2 for v2-only torrents)")
    i.add_argument("--torrent", required=True, help=".torrent file")
    i.add_argument("-v", "--verbose", action="store_true",
                   help="print name, both hashes, sizes and trackers as key: value lines")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("dht-get-peers",
                       help="look an info-hash up in the DHT; exits 0 once --want is found")
    d.add_argument("--info-hash", required=True, metavar="HEX", help="40 hex digits")
    d.add_argument("--dht-bootstrap", type=dht_node, required=True, metavar="HOST:PORT",
                   help="the only node the DHT is bootstrapped from")
    d.add_argument("--want", type=parse_peer, required=True, metavar="HOST:PORT",
                   help="the peer to find")
    d.add_argument("--bind", type=loopback, default="127.0.0.1", metavar="ADDR",
                   help="loopback address to use (default 127.0.0.1)")
    d.add_argument("--listen", type=int, default=0, help="port to listen on (0 = any)")
    d.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up (exit 1) after this many seconds (default 60)")
    d.add_argument("--watch-stdin", action="store_true",
                   help="stop when stdin is closed")
    d.set_defaults(func=cmd_dht_get_peers)

    n = sub.add_parser("dht-node", help="run a DHT node only; prints DHT <port>; runs until killed")
    n.add_argument("--dht-bootstrap", type=dht_node, required=True, metavar="HOST:PORT",
                   help="the only node the DHT is bootstrapped from")
    n.add_argument("--bind", type=loopback, default="127.0.0.1", metavar="ADDR",
                   help="loopback address to use (default 127.0.0.1)")
    n.add_argument("--listen", type=int, default=0, help="port to listen on (0 = any)")
    n.add_argument("--watch-stdin", action="store_true", help="stop when stdin is closed")
    n.set_defaults(func=cmd_dht_node)

    m = sub.add_parser("dht-sample",
                       help="ask --node for its info-hash sample (BEP 51) until --want is in it")
    m.add_argument("--node", type=parse_peer, required=True, metavar="HOST:PORT",
                   help="the DHT node to ask")
    m.add_argument("--want", required=True, metavar="HEX", help="the info-hash to wait for")
    m.add_argument("--bind", type=loopback, default="127.0.0.1", metavar="ADDR",
                   help="loopback address to use (default 127.0.0.1)")
    m.add_argument("--listen", type=int, default=0, help="port to listen on (0 = any)")
    m.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up (exit 1) after this many seconds (default 60)")
    m.add_argument("--watch-stdin", action="store_true", help="stop when stdin is closed")
    m.set_defaults(func=cmd_dht_sample)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if hasattr(args, "lsd_in_netns") and not args.lsd_in_netns:
        try:
            loopback(args.bind)
        except argparse.ArgumentTypeError as e:
            raise SystemExit(fail(f"--bind: {e}"))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if getattr(args, "watch_stdin", False):
        watch_stdin(STOP)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
