"""`python -m backend`: train a feature field, segment by clicks, render views and features, evaluate.

Exit codes: 0 done; 2 a mistake in the input or the settings (one message on stderr, no
traceback); 130 / 143 stopped by Ctrl+C / SIGTERM, nothing written; 1 an internal error.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import UserError
from . import eval as eval_command
from . import render, segment, train
from .arguments import Parser, check_paths
from .protocol import EXIT_USER_ERROR, error_line
from .stopping import ParentLink, Stopped, raise_stopped

SUBCOMMANDS = {"train": train, "segment": segment, "render": render, "eval": eval_command}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m backend", description="Click-Gaussian backend.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv=None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt (__main__ set an early handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, raise_stopped)  # `train` polls a flag instead (StopRequested)
    options = build_parser().parse_args(argv)
    if getattr(options, "parent_link", None) is None:
        return run_command(options)
    link = ParentLink(options.parent_link)  # before the slow imports, so a parent gone meanwhile is seen at once
    try:
        code = run_command(options)
    except BaseException as error:  # printing the error to a parent that is gone raises too
        link.end_if_gone(error)
        raise
    link.end_if_gone(None)
    return code


def run_command(options) -> int:
    try:
        check_paths(options)  # before any work: no output may destroy an input or fail to be written at the end
        return SUBCOMMANDS[options.command].run(options)
    except UserError as error:
        print(error_line(str(error)), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ncancelled: nothing was written", file=sys.stderr)
        return 130
    except Stopped as stop:
        print("\ncancelled: nothing was written", file=sys.stderr)
        return 128 + stop.number
