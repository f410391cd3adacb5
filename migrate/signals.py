"""Stopping a long run cleanly on SIGINT or SIGTERM.

The first signal asks the run to stop (it finishes or releases what is in flight and leaves
the store consistent); a second one ends the process at once, which is safe too, since a
commit resumes whatever a killed run left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set `stop` on the first SIGINT/SIGTERM while inside; only in the main thread (where
    Python delivers signals), elsewhere the caller's event is left to the caller."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(number: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            sys.stderr.write(f"\nsecond {signal.Signals(number).name}: stopping now\n")
            sys.stderr.flush()
            os._exit(128 + number)
        sys.stderr.write(
            f"\n{signal.Signals(number).name}: stopping after the requests in flight "
            "(again to stop at once; a rerun resumes)\n"
        )
        sys.stderr.flush()
        stop.set()

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
