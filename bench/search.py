#!/usr/bin/env python3
"""Search on loopback: search with no server (flooding among search neighbours with routing
tables, hop limits 2, 3 and 4) and the index server, over the same items, same run.

The work is done by the Rust example `search_bench` (crates/search/examples/search_bench.rs),
built here in release mode: 50 Shoal search nodes in one process, each with its own identity,
SQLite index and loopback TCP listener, joined in a random graph of degree 4 to 8 over the real
`shoal_search` wire (BitTorrent handshake + BEP 10 extension); 2,000 items spread by a Zipf
popularity (rank r on about 50 / r^0.8 nodes: most items on one or two nodes); 200 queries for
existing items, chosen uniformly (rare ones as often as popular ones), each from a random node
that does not hold the item, each given 1 s. Recall is the fraction of queries whose item was
among the results; times run from the query to the first result and to the 10th (the 10th
also from 20 one-word queries that many items match); messages are the query and result
messages sent by all nodes for the item queries. Then the same 2,000 records in one index server
(the routes `shoal index` serves), the same 200 queries over HTTP at 100 per second.

Targets (issue 13): recall >= 0.95 with hop limit <= 4 at <= 60 messages per query, first result
p50 < 100 ms; index server recall 1.0 and p50 < 10 ms at 100 queries/s.

Published anchors printed with the table: Gnutella, 44 % of queries found nothing; Kad lookups
reach ~18 % of an item's replicas; Tribler's remote search median 325 ms.

Usage: bench/search.py [--nodes 50] [--items 2000] [--queries 200] [--hops 2,3,4] [--rate 100]
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    subprocess.run(["cargo", "build", "--release", "-p", "shoal-search", "--example", "search_bench"],
                   cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "search_bench")
    out = subprocess.run([exe, *args], cwd=ROOT, check=True, capture_output=True, text=True, timeout=1800)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    setup = next(r for r in rows if r["case"] == "setup")
    print(f"{setup['nodes']} nodes (mean degree {setup['mean_degree']}), {setup['items']} items "
          f"({setup['copies']} copies; {setup['items_on_one_or_two_nodes']} items on 1-2 nodes), "
          f"set up in {setup['setup_s']} s")
    head = f"{'case':<22}{'recall':>7}{'1st p50':>9}{'1st p90':>9}{'10th p50':>10}{'10th p90':>10}{'msgs/q':>8}"
    print(head)
    print("-" * len(head))

    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    for r in rows:
        if r["case"] == "setup":
            continue
        print(f"{r['case']:<22}{r['recall']:>7.3f}{ms(r.get('first_p50_ms')):>9}{ms(r.get('first_p90_ms')):>9}"
              f"{ms(r.get('tenth_p50_ms')):>10}{ms(r.get('tenth_p90_ms')):>10}{r['msgs_per_query']:>8}")
    for r in rows:
        if "common_word_msgs_per_query" in r:
            print(f"  {r['case']}: one-word queries matching many items cost {r['common_word_msgs_per_query']} "
                  f"messages each")
    index = next((r for r in rows if r["case"] == "index server"), None)
    if index:
        print(f"  index server: {index['rate_per_s']} queries/s achieved")
    print("times in ms; anchors: Gnutella 44 % of queries found nothing (recall ~0.56); Kad lookups "
          "reach ~18 % of replicas; Tribler remote search median 325 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
