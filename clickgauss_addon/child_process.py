"""A child process whose output goes to files that a Blender timer reads, so that it never waits on it.

Training and the backend's install both run one: Blender stays responsive, and cancelling is a terminate.
Files, not pipes read by threads: Blender's Python API is not thread safe, and Python threads running beside
Blender's crashed it (the click caches' builder did, in Blender 4.2 and 5.0). Reading a file another process
is writing works the same on Windows, macOS and Linux.
"""

from __future__ import annotations

import locale
import subprocess
import tempfile
from pathlib import Path


class ChildProcess:
    """`poll()` from a timer for the stdout lines that arrived; `stderr` holds the rest, once it has ended, unless
    merged into stdout."""

    def __init__(self, command: list[str], merge_stderr: bool = False, **popen):
        self.output = tempfile.TemporaryDirectory(prefix="clickgauss-child-", ignore_cleanup_errors=True)
        self.stdout_path, self.stderr_path = Path(self.output.name, "stdout"), Path(self.output.name, "stderr")
        try:
            with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(
                    command, stdout=stdout, stderr=subprocess.STDOUT if merge_stderr else stderr, **popen
                )
        except OSError:
            self.output.cleanup()
            raise
        self.stdout = open(self.stdout_path, "rb")  # open until the process has ended
        self.encoding = locale.getpreferredencoding(False)  # what the child's print writes to a file
        self.unfinished = b""  # the last line read, while its end has not been written yet
        self.lines: list[str] = []  # read, not yet polled
        self.stderr: list[str] = []

    def poll(self) -> list[str]:
        """The stdout lines that arrived since the last call."""
        self.read()
        arrived, self.lines = self.lines, []
        return arrived

    def read(self) -> None:
        if self.stdout.closed:
            return
        *complete, self.unfinished = (self.unfinished + self.stdout.read()).split(b"\n")
        self.lines += [line.decode(self.encoding, "replace") + "\n" for line in complete]

    @property
    def running(self) -> bool:
        """False once the process has ended; all it wrote is then read, so no last line is missed."""
        if self.process.poll() is None:
            return True
        if not self.stdout.closed:
            self.read()
            if self.unfinished:
                self.lines.append(self.unfinished.decode(self.encoding, "replace"))
            self.stderr = self.stderr_path.read_bytes().decode(self.encoding, "replace").splitlines(keepends=True)
            self.stdout.close()
            if self.process.stdin:
                self.process.stdin.close()
            self.output.cleanup()
        return False

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the backend stops between steps and writes nothing
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
