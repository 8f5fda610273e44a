#!/usr/bin/env python3
"""The cost of TLS on a loopback transfer: SSL torrents (group shares) against plain ones.

Same data (default 1 GiB, generated once under --work), same run, each pair on 127.0.0.1:
  shoal        Shoal seed -> Shoal leecher, plain torrent
  shoal-ssl    the same content as a group share (`shoal create --group`): every byte over TLS
               with both peers' member certificates checked
  lt-ssl       libtorrent seed -> libtorrent leecher of a libtorrent-made SSL torrent whose
               authority is the same Shoal group (certificates from `shoal group issue`)
  lt           libtorrent plain, for reference
Each figure is the median leecher time (process start to exit, complete and verified) of
--runs runs. It prints the table, TLS's cost for Shoal (shoal-ssl / shoal; target <= 1.15) and
Shoal's SSL speed against libtorrent's (lt-ssl / shoal-ssl; above 1.0 Shoal is faster).

Usage: bench/tls.py [--size-mib 1024] [--runs 3] [--work DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (shares its data, timing and process helpers)
from compare import LT, SHOAL, log, prepare, run_pair, start_and_wait  # noqa: E402

DH = os.path.join(compare.ROOT, "crates", "cli", "tests", "fixtures", "dh2048.pem")


def shoal_cmd(home, *args):
    return [SHOAL, *args, "--data-dir", home]


def setup_group(work):
    """A group 'bench' whose authority seeds, a Shoal member that leeches, and member
    certificates for two libtorrent peers. Made once under work/ids."""
    ids = os.path.join(work, "ids")
    seed_home, leech_home = os.path.join(ids, "seed"), os.path.join(ids, "leech")
    if not os.path.exists(os.path.join(seed_home, "groups", "bench", "ca.pem")):
        subprocess.run(shoal_cmd(seed_home, "group", "create", "bench"), check=True, capture_output=True)
        member = subprocess.run(shoal_cmd(leech_home, "identity"), check=True, capture_output=True, text=True)
        invite = subprocess.run(shoal_cmd(seed_home, "group", "invite", "bench", member.stdout.strip()),
                                check=True, capture_output=True, text=True)
        subprocess.run(shoal_cmd(leech_home, "group", "join", invite.stdout.strip()), check=True, capture_output=True)
    certs = {}
    for who in ("lt-seed", "lt-leech"):
        home = os.path.join(ids, who)
        cert = os.path.join(home, "cert.pem")
        if not os.path.exists(cert):
            subprocess.run(shoal_cmd(home, "identity"), check=True, capture_output=True)
            subprocess.run(shoal_cmd(seed_home, "group", "issue", "bench", "--public-key",
                                     os.path.join(home, "identity", "key.pem"), "-o", cert), check=True,
                           capture_output=True)
        certs[who] = ["--ssl-cert", cert, "--ssl-key", os.path.join(home, "identity", "key.pem"), "--ssl-dh", DH]
    return seed_home, leech_home, os.path.join(seed_home, "groups", "bench", "ca.pem"), certs


def bench_args(doc):
    """The command line of the group benchmarks: --size-mib, --runs, --work."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default="/tmp/shoal-bench")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    return args


def group_data(args):
    """The data, its plain torrent, the group 'bench' and the same data as its group share:
    (data_dir, torrent, data, seed_home, leech_home, ca, certs, ssl_torrent)."""
    data_dir, torrent = prepare(args.work, args.size_mib)
    data = os.path.join(data_dir, "data.bin")
    seed_home, leech_home, ca, certs = setup_group(args.work)
    ssl_torrent = os.path.join(args.work, f"data-{args.size_mib}-ssl.torrent")
    if not os.path.exists(ssl_torrent):
        subprocess.run(shoal_cmd(seed_home, "create", data, "-o", ssl_torrent, "--group", "bench", "-q"), check=True)
    return data_dir, torrent, data, seed_home, leech_home, ca, certs, ssl_torrent


def main():
    args = bench_args(__doc__)
    data_dir, torrent, data, seed_home, leech_home, ca, certs, ssl_torrent = group_data(args)
    lt_ssl_torrent = os.path.join(args.work, f"data-{args.size_mib}-lt-ssl.torrent")
    if not os.path.exists(lt_ssl_torrent):
        subprocess.run([sys.executable, LT, "create", "--path", data, "--out", lt_ssl_torrent, "--root-cert", ca],
                       check=True, capture_output=True)

    def shoal_ssl_seed(d, t):
        seed, m = start_and_wait(shoal_cmd(seed_home, "share", "--no-dht", "--no-lsd", data, "-o", t + ".seed",
                                           "--group", "bench", "--listen", "127.0.0.1:0"),
                                 r"TLS peers on 127\.0\.0\.1:(\d+)")
        return seed, f"127.0.0.1:{m.group(1)}"

    def shoal_ssl_leech(t, out, peer):
        return compare.shoal_leech_cmd(t, out, peer) + ["--data-dir", leech_home]

    def lt_ssl_seed(d, t):
        seed, m = start_and_wait([sys.executable, LT, "seed", "--torrent", t, "--save", d, "--listen", "0",
                                  *certs["lt-seed"]], r"SSL (\d+)")
        return seed, f"127.0.0.1:{m.group(1)}"

    def lt_ssl_leech(t, out, peer):
        return compare.lt_leech_cmd(t, out, peer) + certs["lt-leech"]

    cases = [
        ("shoal", lambda out: compare.shoal_run(data_dir, torrent, out)),
        ("shoal-ssl", lambda out: run_pair(shoal_ssl_seed, shoal_ssl_leech, data_dir, ssl_torrent, out)),
        ("lt-ssl", lambda out: run_pair(lt_ssl_seed, lt_ssl_leech, data_dir, lt_ssl_torrent, out)),
        ("lt", lambda out: compare.lt_run(data_dir, torrent, out)),
    ]
    times = {name: [] for name, _ in cases}
    out = os.path.join(args.work, "tls-out")
    for r in range(args.runs):
        for name, fn in cases:
            subprocess.run(["rm", "-rf", out])
            s = fn(out)
            times[name].append(s.wall)
            log(f"run {r + 1} {name:10} {s.wall:6.2f} s  {args.size_mib / s.wall:7.1f} MiB/s  leecher RSS {s.rss:5.1f} MiB "
                f"cpu {s.cpu:5.2f} s  seed cpu {s.seed_cpu:5.2f} s")
    subprocess.run(["rm", "-rf", out])
    med = {k: statistics.median(v) for k, v in times.items()}
    log(f"\nmedians of {args.runs} runs, {args.size_mib} MiB:")
    for name, _ in cases:
        log(f"  {name:10} {med[name]:6.2f} s  {args.size_mib / med[name]:7.1f} MiB/s")
    log(f"TLS cost for Shoal: shoal-ssl / shoal = {med['shoal-ssl'] / med['shoal']:.2f} (target <= 1.15)")
    log(f"Shoal SSL vs libtorrent SSL: lt-ssl / shoal-ssl = {med['lt-ssl'] / med['shoal-ssl']:.2f} (above 1: Shoal faster)")


if __name__ == "__main__":
    main()
