"""Typed ranges for every number a user sets: checked when the command line is parsed, before any work.

A `Range` is both an argparse type (`--iterations 0` is refused at parse time, exit 2, one
`error:` line) and a check for settings that arrive another way (TrainConfig from the add-on or a
script), so a number is validated by one rule wherever it comes from.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Range:
    kind: type  # int or float
    low: float | None = None  # inclusive bounds; None: unbounded (floats must still be finite)
    high: float | None = None
    above_low: bool = False  # the low bound itself is excluded (a learning rate above 0)

    def describe(self) -> str:
        noun = "a whole number" if self.kind is int else "a finite number"
        low, high = (f"{bound:,}" if self.kind is int else f"{bound:g}" for bound in (self.low or 0, self.high or 0))
        if self.low is not None and self.high is not None:
            return f"{noun} from {low} to {high}"
        if self.low is not None:
            return f"{noun} {'above' if self.above_low else 'of at least'} {low}"
        if self.high is not None:
            return f"{noun} of at most {high}"
        return noun

    def problem(self, value) -> str | None:
        """Why `value` is out of this range, or None when it is in it."""
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            return f"must be {self.describe()}"
        if self.kind is float and (
            isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
        ):
            return f"must be {self.describe()}"
        if (self.low is not None and (value < self.low or (self.above_low and value == self.low))) or (
            self.high is not None and value > self.high
        ):
            return f"must be {self.describe()}"
        return None

    def check(self, name: str, value):
        """`value`, or a UserError naming the setting."""
        problem = self.problem(value)
        if problem:
            raise UserError(f"{name} {value}: {problem}")
        return value

    def __call__(self, text: str):
        """The argparse type: the parsed number, or an ArgumentTypeError that argparse turns into exit 2."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: must be {self.describe()}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return value

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.kind.__name__


FRACTION = Range(float, 0.0, 1.0)
COSINE = Range(float, -1.0, 1.0)
FINITE = Range(float)
POSITIVE_FLOAT = Range(float, 0.0, above_low=True)
NON_NEGATIVE_FLOAT = Range(float, 0.0)
STEPS = 10_000_000  # more training steps than any run takes (the paper's 3000)

# The one table: every numeric setting a user gives, on the command line (its argparse type) or from the add-on
# (its property's bounds, and TrainConfig's check). Whole numbers are bounded above: each sizes work or memory,
# so a slip of the keyboard is refused at once instead of planning a billion views. A new flag takes its range
# from here (tests/test_cli.py fails on a numeric flag that has none).
SETTINGS = {
    # the scene: photos and planned views
    "downscale": Range(int, 1, 16),
    "views": Range(int, 1, 500),
    "view_size": Range(int, 16, 8192),
    # clicks (segment, eval)
    "click": FINITE,
    "threshold": COSINE,
    "clicks": Range(int, 1, 1000),
    "negative_clicks": Range(int, 0, 1000),
    "random_clicks": Range(int, 0, 100_000),
    "strength": FRACTION,  # segment --floaters
    # training (TrainConfig)
    "iterations": Range(int, 1, STEPS),
    "checkpoint_every": Range(int, 0, STEPS),
    "learning_rate": POSITIVE_FLOAT,
    "pixels": Range(int, 2, 1 << 22),
    "mask_balance": FRACTION,
    "negative_anchors": Range(int, 1, 1 << 16),
    "tau_coarse": COSINE,
    "tau_fine": COSINE,
    "tau_global": COSINE,
    "gfl_start": Range(int, -1, STEPS),
    "gfl_refresh": Range(int, 1, STEPS),
    "cluster_epsilon_coarse": NON_NEGATIVE_FLOAT,
    "cluster_epsilon_fine": NON_NEGATIVE_FLOAT,
    "lambda_gfl": NON_NEGATIVE_FLOAT,
    "lambda_norm3d": NON_NEGATIVE_FLOAT,
    "lambda_norm2d": NON_NEGATIVE_FLOAT,
    "lambda_spatial": NON_NEGATIVE_FLOAT,
    "spatial_neighbours": Range(int, 1, 256),
    "gaussian_subset": Range(int, 2, 1 << 24),
    "gfl_share": Range(float, 0.0, 1.0, above_low=True),
    "seed": Range(int, 0, (1 << 32) - 1),
}
