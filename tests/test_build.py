"""The project's entry point refuses what it cannot run before it sets anything up."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_unknown_benchmark_is_named_with_the_ones_there_are():
    done = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "bench", "--skip-tuning"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert "'--skip-tuning'" in error and "accuracy" in error and "train" in error
    assert "Traceback" not in done.stderr and "+ " not in done.stdout  # nothing was set up or run
