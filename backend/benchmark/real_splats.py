"""Ground truth for the real splats in ../shared/data/splats: each Gaussian's object and part, by written rules.

Nobody segmented these captures for us, so the labels are rules on positions and colours, in each file's own
frame (y down, as the files store them), each checked by eye on renders of the planned views (docs/accuracy.md
shows them). They are approximate where a rule meets a boundary it cannot see: the stand's cradle, where it holds the
guitar's bottom edge inside the body's slab, counts as guitar, the helmet is a ball around it (the
gloves holding it count as helmet), the neck's boundary is a height.

  guitar.ply  objects: guitar, stand (below the top of the stand, y > -1.6, and outside the guitar's body: the
              slab -0.26 < s < 0.16 along the body's normal (0.96, -0.201, 0.196) from (0.304, -1.165, 0.311), up
              to its bottom end, t < 1.65). Parts of the guitar along its long axis (0.204, 0.977, 0.069) from
              (0.147, -1.769, 0.220), where its width changes: headstock (t < -2.0), neck (t < -0.35), body.
  biker.ply   objects: the person (helmet included: it is held). Parts: helmet (within 0.27 of (-0.38, -1.38,
              0.33)), head (y < -2.68), the two legs (y > -1.45, split at z = -0.08), torso and arms (the rest).
  donut.ply   objects: the donut. Parts: icing with its sprinkles (pink: r - g > 0.12, or blue: b > r + 0.05),
              dough (the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RealLabels:
    coarse: np.ndarray  # (N,) int64 object id
    fine: np.ndarray  # (N,) int64 part id
    names: dict  # level -> {id: name}


def guitar(positions: np.ndarray, colours: np.ndarray) -> RealLabels:
    across = (positions - np.array([0.304, -1.165, 0.311])) @ np.array([0.96, -0.201, 0.196])
    along = (positions - np.array([0.147, -1.769, 0.220])) @ np.array([0.204, 0.977, 0.069])
    in_body = (across > -0.26) & (across < 0.16) & (along < 1.65)
    stand = (positions[:, 1] > -1.6) & ~in_body
    part = np.select([stand, along < -2.0, along < -0.35], [1, 3, 2], 0).astype(np.int64)
    return RealLabels(
        stand.astype(np.int64),
        part,
        {"coarse": {0: "guitar", 1: "stand"}, "fine": {0: "body", 1: "stand", 2: "neck", 3: "headstock"}},
    )


def biker(positions: np.ndarray, colours: np.ndarray) -> RealLabels:
    y, z = positions[:, 1], positions[:, 2]
    helmet = np.linalg.norm(positions - np.array([-0.38, -1.38, 0.33]), axis=1) < 0.27
    part = np.select([helmet, y < -2.68, (y > -1.45) & (z < -0.08), y > -1.45], [1, 2, 3, 4], 0).astype(np.int64)
    return RealLabels(
        np.zeros(len(positions), np.int64),
        part,
        {"coarse": {0: "person"}, "fine": {0: "torso", 1: "helmet", 2: "head", 3: "left leg", 4: "right leg"}},
    )


def donut(positions: np.ndarray, colours: np.ndarray) -> RealLabels:
    red, green, blue = colours.T
    icing = (red - green > 0.12) | (blue > red + 0.05)
    return RealLabels(
        np.zeros(len(positions), np.int64),
        icing.astype(np.int64),
        {"coarse": {0: "donut"}, "fine": {0: "dough", 1: "icing"}},
    )


RULES = {"guitar.ply": guitar, "biker.ply": biker, "donut.ply": donut}


def real_splats(folder: Path) -> list[Path]:
    """The labelled splats present in `folder` (../shared/data/splats), in RULES' order."""
    return [folder / name for name in RULES if (folder / name).is_file()]


def labels_of(path: Path, splat) -> RealLabels:
    """The labels of a real splat's file in any format (biker.spz is biker.ply's capture)."""
    return RULES[Path(path).name.split(".")[0] + ".ply"](splat.positions.astype(np.float64), splat.colors)


def ground_truth(splat, cameras, labels: RealLabels, weights=None):
    """`evaluate.GroundTruth` of `cameras`: each view's label maps by the majority rule the clicks are scored by."""
    import torch

    from ..field.evaluate import GroundTruth
    from ..field.views import camera_weights, majority_labels, splat_tensors

    tensors = splat_tensors(splat) if weights is None else None
    maps: dict = {"coarse": [], "fine": []}
    for index, camera in enumerate(cameras):
        view = weights[index] if weights is not None else camera_weights(splat, camera, tensors=tensors)
        for level, ids in (("coarse", labels.coarse), ("fine", labels.fine)):
            drawn = majority_labels(view, torch.from_numpy(ids))
            maps[level].append(drawn.reshape(camera.height, camera.width).numpy().astype(np.int32))
    return GroundTruth(maps, labels.names, set())
