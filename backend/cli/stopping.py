"""How a run stops: Ctrl+C and SIGTERM between training steps, or with an exception elsewhere, and when the
parent program (the add-on) ends. Nothing is written by a stopped run."""

from __future__ import annotations

import signal
import sys
from pathlib import Path


class StopRequested:
    """Ctrl+C and SIGTERM set a flag that training polls, so it stops between steps and writes nothing."""

    def __init__(self):
        self.signal = None
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self.request)

    def request(self, number, frame):
        self.signal = number

    def __call__(self) -> bool:
        return self.signal is not None


def parent_gone(scratch: Path):
    """The parent that ran this process (the add-on) has ended: remove its scratch folder and end at once, as
    SIGTERM would; nothing is left to report to."""
    import os
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    os._exit(128 + 15)


def follow_parent(scratch: Path) -> None:
    """End this process, and remove its scratch folder, when standard input closes.

    The parent holds the other end of the pipe; whichever way it ends (quit, crash, kill) its
    operating system closes it, so this works wherever pipes do (Linux, macOS, Windows).
    """
    import os
    import threading

    stdin = sys.stdin.fileno()

    def watch():  # os.read, not sys.stdin: a daemon thread holding the buffered reader's lock aborts the exit
        while os.read(stdin, 1 << 16):
            pass
        parent_gone(scratch)

    threading.Thread(target=watch, daemon=True, name="parent-link").start()


def cancelled(stop) -> int:
    print("\ncancelled: nothing was written", file=sys.stderr)
    return 128 + stop.signal


class Stopped(BaseException):
    """SIGTERM as an exception, like Ctrl+C's KeyboardInterrupt, so staged outputs are removed on the way out."""

    def __init__(self, number: int):
        super().__init__(number)
        self.number = number


def raise_stopped(number, frame):
    raise Stopped(number)
