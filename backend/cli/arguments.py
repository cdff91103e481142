"""The command line's parser: the product's error line on a mistake, and path options that declare their role
(input, output, output folder) so outputs are checked against inputs before any work."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..files import check_outputs
from .protocol import EXIT_USER_ERROR, error_line


class Parser(argparse.ArgumentParser):
    """argparse with the product's error protocol: one `error:` line on stderr, exit 2."""

    def error(self, message: str):
        named = re.match(r"argument ([^:]+): (.*)", message, re.DOTALL)  # "argument --x: 0: ..." -> "--x 0: ..."
        print(error_line(f"{named[1]} {named[2]}" if named else f"{self.prog}: {message}"), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


ROLES = ("input", "output", "output folder")


def path_argument(parser: argparse.ArgumentParser, flag: str, role: str, **kwargs) -> None:
    """A path option whose role the command declares: outputs are checked against inputs before any work."""
    assert role in ROLES, role
    action = parser.add_argument(flag, type=Path, **kwargs)
    roles = dict(parser.get_default("path_roles") or {})
    roles[action.dest] = (flag, role)
    parser.set_defaults(path_roles=roles)


def check_paths(options: argparse.Namespace) -> None:
    """check_outputs over the paths the chosen subcommand declared with path_argument, and the folders it will write
    without being told (caches beside its output, declared with cache_folders): all of them before any work."""
    roles = getattr(options, "path_roles", None) or {}
    given = {
        role: {flag: getattr(options, dest) for dest, (flag, kind) in roles.items() if kind == role} for role in ROLES
    }
    outputs = {**given["output"], **given["output folder"]}
    check_outputs(given["input"], outputs, folders=given["output folder"])
    caches = options.cache_folders(options) if getattr(options, "cache_folders", None) else {}
    check_outputs({}, caches, folders=caches)  # new folders of their own: writable, wherever they lie


def cache_folders(parser: argparse.ArgumentParser, folders) -> None:
    """Declare the folders a command writes that no option names: `folders(options)` gives {what: path}."""
    parser.set_defaults(cache_folders=folders)
