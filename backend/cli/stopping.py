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


class ParentLink:
    """End this process, and remove its scratch folder, when standard input closes.

    The parent (the add-on) holds the other end of the pipe; whichever way it ends (quit, crash,
    kill) its operating system closes it, so this works wherever pipes do (Linux, macOS, Windows).
    The watcher thread and the main thread can both find the parent gone (EOF, or a broken pipe on
    stdout): one lock makes the first of them remove the folder and end the process, and the main
    thread may not end the process on its own while the watcher is at it, which would stop the
    removal half-way (an empty folder left behind).
    """

    def __init__(self, scratch: Path):
        import threading

        self.scratch = scratch
        self.closed = threading.Event()
        self.ending = threading.Lock()
        threading.Thread(target=self.watch, daemon=True, name="parent-link").start()

    def watch(self) -> None:
        """Until standard input closes; os.read, not sys.stdin: a daemon thread holding the buffered reader's lock
        aborts the exit."""
        import os

        stdin = sys.stdin.fileno()
        while os.read(stdin, 1 << 16):
            pass
        self.closed.set()
        self.end()

    def end(self) -> None:
        """The parent is gone: remove the scratch folder and end at once, as SIGTERM would; nothing is left to
        report to. A second caller waits here until the first has ended the process."""
        import os
        import shutil
        import time

        with self.ending:
            for _ in range(50):  # again while a file the main thread was writing there (a checkpoint) appears
                shutil.rmtree(self.scratch, ignore_errors=True)
                if not self.scratch.exists():
                    break
                time.sleep(0.02)
            os._exit(128 + 15)

    def end_if_gone(self, error: BaseException | None) -> None:
        """Called as the main thread ends the process, `error` being what ends it (None: a return). A broken pipe
        means the parent is gone; after another error the watcher gets a second to say so, since the parent's
        end is the likeliest cause (its scratch folder vanishing under the run, its pipes closing)."""
        if isinstance(error, BrokenPipeError) or self.closed.wait(1.0 if error is not None else 0.0):
            self.end()


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
