"""A child process whose output arrives through reader threads, so that a Blender timer never waits on it.

Training and the backend's install both run one: Blender stays responsive, and cancelling is a terminate.
"""

from __future__ import annotations

import collections
import subprocess
import threading


class ChildProcess:
    """`poll()` from a timer for the stdout lines that arrived; `stderr` gathers the rest unless merged into stdout."""

    def __init__(self, command: list[str], merge_stderr: bool = False, **popen):
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            text=True,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            **popen,
        )
        self.lines: collections.deque[str] = collections.deque()
        self.stderr: list[str] = []
        pipes = [(self.lines, self.process.stdout)] + ([] if merge_stderr else [(self.stderr, self.process.stderr)])
        self.readers = [threading.Thread(target=sink.extend, args=(pipe,), daemon=True) for sink, pipe in pipes]
        for reader in self.readers:
            reader.start()

    def poll(self) -> list[str]:
        """The stdout lines that arrived since the last call."""
        arrived = []
        while self.lines:
            arrived.append(self.lines.popleft())
        return arrived

    @property
    def running(self) -> bool:
        """False once the process has ended and all it wrote has been read, so no last line is missed."""
        if self.process.poll() is None:
            return True
        for reader in self.readers:
            reader.join(timeout=5)  # a grandchild holding the pipe open must not hang Blender
        if not any(reader.is_alive() for reader in self.readers):
            for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
                if pipe:
                    pipe.close()
        return False

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the backend stops between steps and writes nothing
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
