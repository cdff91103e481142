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
        if self.low is not None and self.high is not None:
            return f"{noun} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{noun} {'above' if self.above_low else 'of at least'} {self.low:g}"
        if self.high is not None:
            return f"{noun} of at most {self.high:g}"
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


POSITIVE = Range(int, 1)
NON_NEGATIVE = Range(int, 0)
FRACTION = Range(float, 0.0, 1.0)
COSINE = Range(float, -1.0, 1.0)
FINITE = Range(float)
POSITIVE_FLOAT = Range(float, 0.0, above_low=True)
NON_NEGATIVE_FLOAT = Range(float, 0.0)
