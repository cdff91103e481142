"""The SAM checkpoint download against a real HTTP server on 127.0.0.1: success, a wrong checksum, cancel (the
child process the add-on runs it in, ended), the server gone mid-way; a partial file is never taken for a whole
one, and the next try resumes it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from download_server import PAYLOAD, Server

from backend.errors import UserError
from backend.scene.downloads import CHUNK, download, main


@pytest.fixture
def server():
    server = Server()
    yield server
    server.shutdown()


def test_a_download_is_checked_and_renamed_only_when_whole(server, tmp_path):
    seen = []
    path = download(server.checkpoint(), tmp_path / "sam.pth", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "sam.pth.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 1


def test_a_wrong_checksum_leaves_no_file(server, tmp_path):
    with pytest.raises(UserError, match=r"sam_vit_b_test\.pth: its SHA-256 .* is not the published 000000000000"):
        download(server.checkpoint("0" * 64), tmp_path / "sam.pth")
    assert list(tmp_path.iterdir()) == []


def test_cancel_keeps_the_part_which_the_next_try_resumes(server, tmp_path):
    """Cancel ends the download's child process (as the add-on does) while the server is mid-way."""
    server.hold_at = CHUNK + 1000
    checkpoint = server.checkpoint()
    child = subprocess.Popen(
        [sys.executable, "-m", "backend.scene.downloads", checkpoint.url, checkpoint.sha256, str(checkpoint.size)]
        + [str(tmp_path / "sam.pth")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().split() == [str(CHUNK), str(len(PAYLOAD))]  # a chunk in: the server holds
    child.terminate()
    child.wait(30)
    server.released.set()
    assert not (tmp_path / "sam.pth").exists() and (tmp_path / "sam.pth.part").stat().st_size == CHUNK
    kept = CHUNK
    server.hold_at = None
    assert download(server.checkpoint(), tmp_path / "sam.pth").read_bytes() == PAYLOAD
    assert server.ranges == [0, kept]


def test_the_server_gone_mid_way_is_a_clear_error_and_never_a_whole_file(server, tmp_path, capsys):
    server.cut_at = len(PAYLOAD) // 2
    with pytest.raises(UserError, match=r"sam_vit_b_test\.pth .*(stopped|ended) at .* try again, it resumes"):
        download(server.checkpoint(), tmp_path / "sam.pth")
    assert not (tmp_path / "sam.pth").exists()
    server.cut_at = None
    checkpoint = server.checkpoint()
    assert main([checkpoint.url, checkpoint.sha256, str(checkpoint.size), str(tmp_path / "sam.pth")]) == 0
    assert (tmp_path / "sam.pth").read_bytes() == PAYLOAD and server.ranges == [0, len(PAYLOAD) // 2]
    assert capsys.readouterr().out.splitlines()[-1] == f"{len(PAYLOAD)} {len(PAYLOAD)}"  # what the add-on follows


def test_a_server_that_is_not_there(tmp_path):
    gone = Server()
    checkpoint = gone.checkpoint()
    gone.shutdown()
    gone.server_close()
    with pytest.raises(UserError, match=r"stopped at 0 of"):
        download(checkpoint, tmp_path / "sam.pth", timeout=5)
