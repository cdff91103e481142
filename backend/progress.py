"""The training run's progress events: one frozen dataclass per phase, what the run's stages send to their
`progress` callback and what a reader of `--progress json` gets back (backend/cli/protocol.py writes and reads
them as one JSON object a line, `{"phase": <the class's phase>, **its fields}`).

EVENTS lists them in the order a run sends them: planning, planned, rendering (views from the splat alone),
masks, precompute, clustering and iterations (the loop; clustering each time GFL re-clusters), checkpoint
(a clickable field so far), done. Standard library only: the add-on reads them inside Blender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, get_args


@dataclass(frozen=True)
class Planning:
    """Cameras are being planned around a splat trained on its own (no photos)."""

    phase: ClassVar[str] = "planning"
    views: int  # the views asked for


@dataclass(frozen=True)
class Planned:
    phase: ClassVar[str] = "planned"
    views: int  # the views planned
    layout: str  # "object" (looking in at it) or "inside" (looking out from within it)
    dropped: int  # planned cameras left out: their near field stayed full of Gaussians


@dataclass(frozen=True)
class Rendering:
    phase: ClassVar[str] = "rendering"
    view: int  # the view being rendered (or read from the cache), from 1
    of: int  # the views in all


@dataclass(frozen=True)
class Masks:
    phase: ClassVar[str] = "masks"
    source: str  # where the 2D masks come from, in words ("geometric masks ...", "precomputed masks from ...")
    views: int  # the views to draw masks for


@dataclass(frozen=True)
class Precompute:
    """Training's set-up: the views' weights and labels, the Gaussian subsets."""

    phase: ClassVar[str] = "precompute"
    views: int


@dataclass(frozen=True)
class Clustering:
    """GFL's global clusters found again, before this step."""

    phase: ClassVar[str] = "clustering"
    iteration: int  # the step about to run, from 0


@dataclass(frozen=True)
class Iterations:
    """The training loop: sent every 25 steps and after the last."""

    phase: ClassVar[str] = "iterations"
    iteration: int  # steps done, 1 to `of`
    of: int  # the steps in all
    loss: float  # the step's total loss
    losses: dict[str, float]  # each term's loss, by name ("contrastive_coarse", "gfl", ...), unweighted
    elapsed_s: float  # seconds in the loop so far
    remaining_s: float  # seconds left at this pace


@dataclass(frozen=True)
class Checkpoint:
    """A field that clicks, written so far: 0 the field lifted from the 3D groups, else the steps done."""

    phase: ClassVar[str] = "checkpoint"
    iteration: int
    path: str  # the features file (the same path each time, replaced)


@dataclass(frozen=True)
class Done:
    phase: ClassVar[str] = "done"
    out: str  # the features file written
    seconds: dict[str, float]  # by phase ("views", "masks", "precompute", "clustering", "iterations")


ProgressEvent = Planning | Planned | Rendering | Masks | Precompute | Clustering | Iterations | Checkpoint | Done
EVENTS: tuple[type[ProgressEvent], ...] = get_args(ProgressEvent)  # in the order a run sends them
PHASES = tuple(event.phase for event in EVENTS)
Progress = Callable[[ProgressEvent], None]  # a stage's `progress` callback
