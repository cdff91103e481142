"""Downloading a model checkpoint: resumable, verified by SHA-256, never mistaken for whole when it is not.

The bytes go to `<name>.part` beside the destination; only when the server has sent them all and their
SHA-256 is the published one is the file renamed to its name. A cancelled or broken download leaves the
.part, and the next try asks the server for the rest (an HTTP Range request). Standard library only:
the add-on runs it as a child process of Blender's own Python (`python -m backend.scene.downloads`, `main`),
whose progress lines a Blender timer reads, and cancels it by ending that process; the tests run it against a
server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    url: str
    sha256: str
    size: int  # bytes

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Meta's official URLs (github.com/facebookresearch/segment-anything, README "Model Checkpoints"). Meta lists no
# checksums; these SHA-256 and sizes are the ones other projects pin for those files (micro-sam, 3D Slicer's
# SegmentWithSAM), and agree with one another.
SAM_CHECKPOINTS = {
    "vit_b": Checkpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
    ),
    "vit_l": Checkpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
    ),
    "vit_h": Checkpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
    ),
}


def download(
    checkpoint: Checkpoint,
    destination: Path,
    progress=lambda done, total: None,
    timeout: float = 30.0,
) -> Path:
    """`checkpoint` saved as `destination`, resuming a `.part` left by an earlier try; returns `destination`.

    progress(bytes done, bytes in all) after every chunk.
    """
    destination = Path(destination)
    if destination.is_file() and destination.stat().st_size == checkpoint.size:
        return destination  # the rename below happens only after the check, so a whole file is a checked one
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    try:
        if have < checkpoint.size:
            _fetch(checkpoint, part, have, progress, timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        got = part.stat().st_size if part.is_file() else 0
        raise UserError(
            f"download of {checkpoint.name} from {checkpoint.url} stopped at {got:,} of "
            f"{checkpoint.size:,} bytes ({reason}); try again, it resumes"
        ) from None
    got = part.stat().st_size
    if got != checkpoint.size:
        raise UserError(
            f"download of {checkpoint.name} ended at {got:,} of {checkpoint.size:,} bytes "
            "(the server closed the connection); try again, it resumes"
        )
    digest = file_sha256(part)
    if digest != checkpoint.sha256:
        part.unlink()
        raise UserError(
            f"download of {checkpoint.name}: its SHA-256 {digest[:12]}... is not the published "
            f"{checkpoint.sha256[:12]}...; the damaged file was deleted, try again"
        )
    os.replace(part, destination)
    return destination


def _fetch(checkpoint: Checkpoint, part: Path, have: int, progress, timeout: float) -> None:
    """The bytes from `have` on appended to `part` (all of them again where the server ignores the Range)."""
    request = urllib.request.Request(checkpoint.url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:
            have = 0
        with open(part, "ab" if have else "wb") as out:
            done = have
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                progress(done, checkpoint.size)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """`python -m backend.scene.downloads URL SHA256 SIZE DESTINATION`: a line `done total` (bytes) after each
    chunk on stdout; a UserError's message on stderr with exit code 1. Ended by a signal, it leaves the .part."""
    url, sha256, size, destination = sys.argv[1:] if argv is None else argv
    try:
        download(
            Checkpoint(url, sha256, int(size)), Path(destination), lambda done, total: print(done, total, flush=True)
        )
    except UserError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
