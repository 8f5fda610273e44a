#!/usr/bin/env python3
"""A web seed for tests: Python's http.server serving a folder on 127.0.0.1 (no Range support:
it answers 200 with whole files, as the plain module does), optionally waiting before each
answer. Prints "READY <port>" once it listens and "GET <path>" for each request; stops when
its stdin closes (--watch-stdin) or on SIGTERM."""

import argparse
import functools
import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stdin_watch import watch_stdin  # noqa: E402


class Handler(http.server.SimpleHTTPRequestHandler):
    delay = 0.0

    def do_GET(self):  # noqa: N802 - http.server's name
        print(f"GET {self.path}", flush=True)
        if self.delay:
            time.sleep(self.delay)
        try:
            super().do_GET()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client had what it wanted

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True, help="folder to serve")
    p.add_argument("--delay-ms", type=int, default=0, help="wait this long before each answer")
    p.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    args = p.parse_args()
    Handler.delay = args.delay_ms / 1000
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=args.dir))
    server.daemon_threads = True
    if args.watch_stdin:
        stop = threading.Event()
        watch_stdin(stop)
        threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
