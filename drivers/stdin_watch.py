"""What every driver shares: stop when the parent goes away.

The benchmarks and tests start each driver with a pipe on its stdin and never write to it; the
pipe reaches end of file when the parent closes it or dies, and the driver then stops instead of
living on as an orphan.
"""
import os
import threading


def watch_stdin(stop: threading.Event) -> None:
    """Sets `stop` once stdin reaches end of file (or cannot be read)."""

    def run():
        # os.read on the raw descriptor: a daemon thread blocked inside sys.stdin would
        # hold its buffer lock and abort the interpreter's shutdown.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=run, daemon=True).start()
