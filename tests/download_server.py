"""A real HTTP server on 127.0.0.1 serving a SAM checkpoint stand-in, for the download tests in and out of Blender."""

from __future__ import annotations

import hashlib
import http.server
import threading

import numpy as np

from backend.scene.downloads import Checkpoint

PAYLOAD = np.random.default_rng(0).bytes(3 * (1 << 20) + 12345)  # a few chunks


class Server(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at any path, honouring Range requests; `cut_at` bytes: it hangs up after sending that many;
    `hold_at`: it waits there until `released` is set."""

    cut_at: int | None = None
    hold_at: int | None = None
    ranges: list

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ranges, self.released = [], threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def checkpoint(self, sha256: str = hashlib.sha256(PAYLOAD).hexdigest()) -> Checkpoint:
        return Checkpoint(f"http://127.0.0.1:{self.server_address[1]}/sam_vit_b_test.pth", sha256, len(PAYLOAD))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-"))
        self.server.ranges.append(start)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        end = len(PAYLOAD) if self.server.cut_at is None else self.server.cut_at
        hold = self.server.hold_at
        if hold is not None and start < hold < end:
            self.wfile.write(PAYLOAD[start:hold])
            self.wfile.flush()
            self.server.released.wait(30)
            start = hold
        try:
            self.wfile.write(PAYLOAD[start:end])
        except OSError:  # the client is gone (a cancelled download)
            pass
        self.close_connection = True

    def log_message(self, *args):
        pass
