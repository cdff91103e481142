import os
import signal
import sys


def stopped_before_any_work(number, frame):
    """Ctrl+C or SIGTERM while Python still imports the backend: nothing is written yet, so end as stopped."""
    sys.stderr.write("\ncancelled: nothing was written\n")
    os._exit(128 + number)


for stop in ("SIGINT", "SIGTERM"):  # before the imports (seconds with torch): main() takes them over
    if hasattr(signal, stop):
        signal.signal(getattr(signal, stop), stopped_before_any_work)

from .cli.main import main  # noqa: E402

sys.exit(main())
