"""`python -m backend` run as a user runs it, its one-line errors checked, and the pixel to click in a label image."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from conftest import ROOT
from scipy.ndimage import distance_transform_edt


def backend(*args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "backend", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]  # after any progress lines
    assert message.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in message


def inner_pixel(labels: np.ndarray, value: int):
    """The pixel deepest inside the region `labels == value`, as (x, y)."""
    depth = distance_transform_edt(labels == value)
    y, x = np.unravel_index(np.argmax(depth), labels.shape)
    return int(x), int(y)
