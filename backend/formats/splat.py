"""The one container every part of the product passes a splat scene around in.

A splat is kept as the file stores it: one 1-D array per column, in file order, raw values
(opacity as a logit, scales as logs, rotations as unnormalised w x y z quaternions). Keeping the
raw columns, not derived quantities, is what lets an unedited import export byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sh import SH_C0  # colour = 0.5 + SH_C0 * f_dc

POSITION_COLUMNS = ("x", "y", "z")
NORMAL_COLUMNS = ("nx", "ny", "nz")
DC_COLUMNS = ("f_dc_0", "f_dc_1", "f_dc_2")
SCALE_COLUMNS = ("scale_0", "scale_1", "scale_2")
ROTATION_COLUMNS = ("rot_0", "rot_1", "rot_2", "rot_3")
REQUIRED_COLUMNS = POSITION_COLUMNS + DC_COLUMNS + ("opacity",) + SCALE_COLUMNS + ROTATION_COLUMNS


def rest_columns(sh_degree: int) -> tuple[str, ...]:
    return tuple(f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1)))


def sh_degree_for_rest_count(count: int) -> int | None:
    """The SH degree whose f_rest column count is `count`, or None if no degree has it."""
    for degree in range(5):
        if 3 * ((degree + 1) ** 2 - 1) == count:
            return degree
    return None


def alphas_of(opacities: np.ndarray) -> np.ndarray:
    """(N,) opacity in [0, 1] of stored opacities (N,), which are logits; in their own float type."""
    return 1.0 / (1.0 + np.exp(-opacities))


@dataclass
class Splat:
    columns: dict[str, np.ndarray]  # name -> (N,) raw stored values, in file order
    comments: list[str] = field(default_factory=list)  # PLY header comments, written back as read

    @property
    def count(self) -> int:
        return len(self.columns["x"])

    @property
    def sh_degree(self) -> int:
        degree = sh_degree_for_rest_count(sum(1 for name in self.columns if name.startswith("f_rest_")))
        assert degree is not None  # every reader, and from_arrays, make 0, 9, 24, 45 or 72 f_rest columns
        return degree

    def stack(self, names) -> np.ndarray:
        """(N, len(names)) float32 array of the named columns."""
        return np.stack([self.columns[name] for name in names], axis=1).astype(np.float32, copy=False)

    @property
    def positions(self) -> np.ndarray:  # (N, 3)
        return self.stack(POSITION_COLUMNS)

    @property
    def sh_dc(self) -> np.ndarray:  # (N, 3)
        return self.stack(DC_COLUMNS)

    @property
    def sh_rest(self) -> np.ndarray:  # (N, (degree+1)^2 - 1, 3); the file is channel-major
        if not self.sh_degree:
            return np.zeros((self.count, 0, 3), dtype=np.float32)
        rest = self.stack(rest_columns(self.sh_degree))
        return rest.reshape(self.count, 3, -1).transpose(0, 2, 1)

    @property
    def opacities(self) -> np.ndarray:  # (N,) logits
        return self.columns["opacity"].astype(np.float32, copy=False)

    @property
    def scales(self) -> np.ndarray:  # (N, 3) log scales
        return self.stack(SCALE_COLUMNS)

    @property
    def rotations(self) -> np.ndarray:  # (N, 4) w x y z, as stored (not always unit length)
        return self.stack(ROTATION_COLUMNS)

    @property
    def colors(self) -> np.ndarray:  # (N, 3) base colour in [0, 1] from the SH DC term
        return np.clip(0.5 + SH_C0 * self.sh_dc, 0.0, 1.0)

    @property
    def alphas(self) -> np.ndarray:  # (N,) opacity in [0, 1]
        return alphas_of(self.opacities)

    def subset(self, keep: np.ndarray) -> Splat:
        """The Gaussians where `keep` (a bool mask or an index array) selects, every column carried."""
        return Splat({name: values[keep] for name, values in self.columns.items()}, list(self.comments))

    @classmethod
    def from_arrays(
        cls,
        positions: np.ndarray,  # (N, 3)
        sh_dc: np.ndarray,  # (N, 3)
        opacities: np.ndarray,  # (N,) logits
        scales: np.ndarray,  # (N, 3) log scales
        rotations: np.ndarray,  # (N, 4) w x y z
        sh_rest: np.ndarray | None = None,  # (N, (degree+1)^2 - 1, 3)
        normals: np.ndarray | None = None,  # (N, 3)
        extra: dict[str, np.ndarray] | None = None,  # more (N,) columns, written after the rest
    ) -> Splat:
        """A splat in the canonical column order of the original 3DGS code."""
        columns: dict[str, np.ndarray] = {}

        def put(names, values):
            values = np.asarray(values, dtype=np.float32).reshape(len(positions), len(names))
            for i, name in enumerate(names):
                columns[name] = np.ascontiguousarray(values[:, i])

        put(POSITION_COLUMNS, positions)
        if normals is not None:
            put(NORMAL_COLUMNS, normals)
        put(DC_COLUMNS, sh_dc)
        if sh_rest is not None and sh_rest.shape[1] > 0:
            degree = sh_degree_for_rest_count(3 * sh_rest.shape[1])
            if degree is None:
                raise ValueError(f"sh_rest holds {sh_rest.shape[1]} coefficients per channel: no SH degree has that")
            put(rest_columns(degree), np.asarray(sh_rest).transpose(0, 2, 1).reshape(len(positions), -1))
        put(("opacity",), opacities)
        put(SCALE_COLUMNS, scales)
        put(ROTATION_COLUMNS, rotations)
        for name, values in (extra or {}).items():
            columns[name] = np.ascontiguousarray(values)
        return cls(columns)


def join_splats(splats: list[Splat]) -> tuple[Splat, list[str]]:
    """One splat of several, in the first one's column order, and the names of the columns dropped.

    SH are padded with zeros to the highest degree among the parts; any other column that not
    every part has is dropped (a viewer cannot read half a column). Each column keeps the first
    part's type.
    """
    if len(splats) == 1:
        return splats[0], []
    first, degree = splats[0], max(splat.sh_degree for splat in splats)
    names = [name for name in first.columns if not name.startswith("f_rest_")]
    kept = [name for name in names if all(name in splat.columns for splat in splats)]
    dropped = sorted({n for s in splats for n in s.columns if not n.startswith("f_rest_")} - set(kept))
    columns = {}
    for name in kept:
        columns[name] = np.concatenate([splat.columns[name].astype(first.columns[name].dtype) for splat in splats])
        if name == DC_COLUMNS[-1] and degree:  # the SH rest follows the DC term, channel-major
            slots = (degree + 1) ** 2 - 1
            rest = (
                np.concatenate(
                    [np.pad(splat.sh_rest, ((0, 0), (0, slots - splat.sh_rest.shape[1]), (0, 0))) for splat in splats]
                )
                .transpose(0, 2, 1)
                .reshape(-1, 3 * slots)
            )
            columns.update((column, np.ascontiguousarray(rest[:, i])) for i, column in enumerate(rest_columns(degree)))
    return Splat(columns, list(first.comments)), dropped
