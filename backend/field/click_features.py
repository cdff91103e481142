"""A click's features, numpy only: each level's unit features as int16 fixed point, their similarities with a
click's feature, and the forms a click compares with (plain, as stored, grouped by direction).

The clicks' passes read the features whole, so their bytes are the clicks' cost: hence the fixed point, and the
groups that let a click skip most of them (METHOD.md, docs/accuracy.md).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..formats.features import COARSE_DIM, LEVEL_DIMS, Level
from .build_steps import BLOCK, finished, gather_steps, stable_order_steps

UNIT_SCALE = 32767  # unit features are held as int16 fixed point, component x UNIT_SCALE: half float32's bytes
QUANTUM = 2e-4  # bounds |similarity - cosine| that the rounding allows (under 8e-5 at 24 channels), doubled
CHUNK = 1 << 14  # rows per step of a pass over features: their float32 copy stays in cache


def level_columns(features: np.ndarray, level: Level, granularity_prior: bool = True) -> np.ndarray:
    """(N, D) the columns of features (N, 24) that make `level`'s feature (a view): a field trained without the
    granularity prior has its fine level in channels 12-23 alone."""
    fine_alone = level == "fine" and not granularity_prior
    return features[:, COARSE_DIM:] if fine_alone else features[:, : LEVEL_DIMS[level]]


def unit_features(features: np.ndarray, level: Level, granularity_prior: bool = True) -> np.ndarray:
    """(N, D) int16 unit features at `level` in fixed point (UNIT_SCALE), computed once per level and kept.

    Each click's pass reads them whole, so their bytes are its cost: int16 halves float32's, and
    moves a similarity by under 1e-4 (docs/accuracy.md).
    """
    return unit_of(level_columns(features, level, granularity_prior))


def unit_of(source: np.ndarray) -> np.ndarray:
    """(N, D) int16 the unit rows of features `source` (N, D) in fixed point (UNIT_SCALE)."""
    return finished(unit_steps(source))


def unit_steps(source: np.ndarray) -> Generator[None, None, np.ndarray]:
    """`unit_of` in steps (ClickIndex.build), a chunk each.

    Channel by channel, elementwise: a row's values do not depend on the rows beside it or on the
    layout, so any slice or gather of the rows gives the same values (RawFeatures relies on it), and
    features held channel-major (as Blender's attributes are read: a transposed view) take one
    contiguous pass per channel (0.1 s at 6 million, where a row-major pass over them took 0.5).
    """
    count, dims = source.shape
    unit = np.empty((count, dims), np.int16)
    block = np.empty((dims, min(CHUNK, count)), np.float32)  # (D, C) a chunk channel-major, in cache
    norms, term = np.empty((2, block.shape[1]), np.float32)
    for start in range(0, count, CHUNK):
        yield
        rows = block[:, : min(CHUNK, count - start)]
        rows[...] = source[start : start + rows.shape[1]].T
        norm, squared = norms[: rows.shape[1]], term[: rows.shape[1]]
        np.multiply(rows[0], rows[0], out=norm)
        for channel in rows[1:]:
            norm += np.multiply(channel, channel, out=squared)
        np.sqrt(norm, out=norm)
        np.divide(np.float32(UNIT_SCALE), np.maximum(norm, np.float32(1e-30), out=norm), out=norm)
        rows *= norm  # |values| <= 32767.01
        unit[start : start + rows.shape[1]] = np.rint(rows, out=rows).T
    return unit


def unit_rows(unit: np.ndarray) -> np.ndarray:
    """(K, D) float32 the unit features that rows of `unit_features` hold."""
    return unit.astype(np.float32) * np.float32(1 / UNIT_SCALE)


def click_feature(unit: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The (D,) float32 unit feature rendered at a pixel from its (ids, weights), or None where nothing is drawn."""
    if len(ids) == 0:
        return None
    rendered = weights @ unit_rows(unit[ids])
    norm = np.linalg.norm(rendered)
    return rendered / norm if norm > 0 else None


def similarities(unit: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(N,) float32 cosine similarities (within QUANTUM) of (N, D) int16 unit features with a (D,) unit query.

    Chunk by chunk through a float32 copy that stays in cache, and einsum, not BLAS: each row's value
    is the same whatever slice of rows it is computed in (BLAS's differs in the last bit with the
    slice's alignment), so FeatureGroups reproduces `select` exactly; and it stays on one core, where
    a threaded BLAS call of a few thousand rows stalls for milliseconds whenever the other core is
    busy (Blender's drawing, another program).
    """
    scaled = (query / UNIT_SCALE).astype(np.float32)
    result = np.empty(len(unit), np.float32)
    buffer = np.empty((min(CHUNK, len(unit)), unit.shape[1]), np.float32)
    for start in range(0, len(unit), CHUNK):
        rows = buffer[: min(CHUNK, len(unit) - start)]
        rows[...] = unit[start : start + len(rows)]
        np.einsum("nd,d->n", rows, scaled, out=result[start : start + len(rows)])
    return result


def cosines(unit: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(N, K) float32 cosine similarities of (N, D) int16 unit features with (K, D) unit directions."""
    result = np.empty((len(unit), len(directions)), np.float32)
    scaled = (directions.T / UNIT_SCALE).astype(np.float32)
    for start in range(0, len(unit), CHUNK):
        np.matmul(unit[start : start + CHUNK].astype(np.float32), scaled, out=result[start : start + CHUNK])
    return result


def select(unit: np.ndarray, query: np.ndarray, threshold: float | np.floating | np.ndarray) -> np.ndarray:
    """(N,) bool: the Gaussians whose unit feature has cosine similarity above `threshold` with `query`; (T, N)
    for a (T, 1) array of thresholds."""
    return similarities(unit, query) > threshold


@dataclass
class FeatureGroups:
    """One level's unit features sorted into groups of similar direction, built once per splat and level.

    A click's similarity pass then reads only the groups that straddle its threshold: a group whose
    members all lie, by its centre's angle and its angular radius, too far from the click's feature
    is skipped, one whose members all lie close enough is selected whole. Within a group that
    straddles it, members are sorted by their angle to the centre, so the inner ones that the same
    bound settles are skipped or selected without being read (a click on an object whose feature
    lies just outside a large object's threshold read most of that object before). Decisions keep a
    margin over float32 rounding (MARGIN) and over the fixed point's (QUANTUM), so the selection is
    `select`'s. Whole groups are united as packed bitmaps (N / 8 bytes each), as a scatter of
    millions of ids costs more than the similarity pass.
    """

    order: np.ndarray  # (N,) int32 Gaussian ids, group by group
    rows: np.ndarray  # (N,) int32 each Gaussian's row in `unit` (the inverse of `order`)
    unit: np.ndarray  # (N, D) int16 unit features (unit_features) in `order`
    starts: np.ndarray  # (G + 1,) int64 where each group begins
    centres: np.ndarray  # (G, D) float64 unit directions
    radii: np.ndarray  # (G,) float64 radians from the centre to the group's farthest member (pi: a zero feature)
    spreads: np.ndarray  # (N,) uint16 in `order`: each member's angle to its centre in steps of STEP, rounded down
    bitmaps: np.ndarray  # (G, ceil(N / 8)) uint8 each group's members in Gaussian order, packed

    CENTRES = 64  # spherical k-means on a sample; each centre has a core group and a rim group
    CORE = np.cos(np.radians(25.0))  # members closer than this (cosine) to their centre form its core
    SAMPLE, ITERATIONS = 20_000, 10
    MARGIN = 2e-3  # radians: above the float32 rounding of any angle here (worst near 0 rad: sqrt(2 * 3e-7))
    STEP = np.pi / 65535  # radians per step of `spreads`

    @classmethod
    def of(cls, unit: np.ndarray, seed: int = 0) -> FeatureGroups:
        """Groups of `unit` (N, D) int16 unit features, in Gaussian order."""
        return finished(cls.steps(unit, seed))

    @classmethod
    def steps(cls, unit: np.ndarray, seed: int = 0) -> Generator[None, None, FeatureGroups]:
        """`of` in steps (ClickIndex.build), a block of Gaussians each."""
        centres = yield from spherical_kmeans_steps(unit, cls.CENTRES, cls.SAMPLE, cls.ITERATIONS, seed)
        keys = np.empty(len(unit), np.uint8)  # each Gaussian's group: 2 x its nearest centre, + 1 in the rim
        spreads = np.empty(len(unit), np.uint16)
        for start in range(0, len(unit), CHUNK):  # (chunk, K) similarities stay in cache
            yield
            rows = unit_rows(unit[start : start + CHUNK])
            norms = np.linalg.norm(rows, axis=1)
            similarity = (rows @ centres.T.astype(np.float32)) / np.maximum(norms, np.float32(1e-30))[:, None]
            nearest = similarity.argmax(axis=1)
            # a zero feature (no direction: its similarity is 0 with any click) gives its group a radius of pi
            cosine = np.where(norms > 0, similarity[np.arange(len(rows)), nearest], np.float32(-1.0))
            keys[start : start + len(rows)] = nearest * 2 + (cosine < cls.CORE)
            angles = np.arccos(np.clip(cosine, -1.0, 1.0)) / np.float32(cls.STEP)
            spreads[start : start + len(rows)] = np.minimum(angles, 65535)
        by_spread = yield from stable_order_steps(spreads, 65536)  # by group, then angle: two counting sorts
        by_group = yield from stable_order_steps((yield from gather_steps(keys, by_spread)), 2 * len(centres))
        order = yield from gather_steps(by_spread, by_group)
        sorted_spreads = yield from gather_steps(spreads, order)
        counts = np.bincount(keys, minlength=2 * len(centres))
        filled = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[filled])])
        rows = np.empty_like(order)
        for begin in range(0, len(order), BLOCK):
            yield
            block = order[begin : begin + BLOCK]
            rows[block] = np.arange(begin, begin + len(block), dtype=np.int32)
        group_of = np.zeros(len(counts), np.uint8)  # (2K,) -> (N,): each Gaussian's group (2K <= 256)
        group_of[filled] = np.arange(len(filled))
        group_of = group_of[keys]
        bitmaps = np.zeros((len(filled), (len(unit) + 7) // 8), np.uint8)
        for g in range(len(filled)):
            yield
            bitmaps[g] = np.packbits(group_of == g)
        sorted_unit = yield from gather_steps(unit, order)
        return cls(
            order,
            rows,
            sorted_unit,
            starts,
            centres[filled // 2],
            (sorted_spreads[starts[1:] - 1] + 1.0) * cls.STEP,
            sorted_spreads,
            bitmaps,
        )

    def settled(self, begin: int, end: int, angle: float) -> int:
        """How many of the members begin:end lie surely nearer their centre than `angle` (radians)."""
        steps = int(np.floor(angle / self.STEP)) - 2  # a member with spread s lies within (s + 1) steps
        return 0 if steps < 0 else int(np.searchsorted(self.spreads[begin:end], np.uint16(min(steps, 65535)), "right"))

    def features(self, ids: np.ndarray) -> np.ndarray:
        """(K, D) int16 unit features of Gaussians `ids`."""
        return self.unit[self.rows[ids]]

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities of every Gaussian, in Gaussian order, with (K, D) unit directions."""
        result = np.empty((len(self.order), len(directions)), np.float32)
        result[self.order] = cosines(self.unit, directions)
        return result

    def select(self, query: np.ndarray, threshold) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds: exactly `select(unit, query, threshold)`."""
        thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
        count = len(self.order)
        selection = np.zeros((len(thresholds), count), bool)
        angles = np.arccos(np.clip(self.centres @ query.astype(np.float64), -1.0, 1.0))  # (G,)
        highest = np.cos(np.maximum(angles - self.radii - self.MARGIN, 0.0)) + QUANTUM  # (G,) over any member's
        lowest = np.cos(np.minimum(angles + self.radii + self.MARGIN, np.pi)) - QUANTUM  # under any member's
        for index, value in enumerate(thresholds):
            whole = lowest > value
            partial = ~whole & (highest > value)
            if whole.sum() * 2 > len(whole):  # most groups whole: unite the others and take the complement
                packed = ~united(self.bitmaps, np.flatnonzero(~whole))
                selection[index] = np.unpackbits(packed, count=count).view(bool)
            elif whole.any():
                selection[index] = np.unpackbits(united(self.bitmaps, np.flatnonzero(whole)), count=count).view(bool)
            # within a straddling group, members nearer its centre than these (radians) are settled unread
            skipped = angles - self.MARGIN - np.arccos(np.clip(value - QUANTUM, -1.0, 1.0))  # (G,) are not selected
            chosen = np.arccos(np.clip(value + QUANTUM, -1.0, 1.0)) - angles - self.MARGIN  # (G,) are selected
            for g in np.flatnonzero(partial):
                begin, end = self.starts[g], self.starts[g + 1]
                selected = self.settled(begin, end, chosen[g])
                selection[index, self.order[begin : begin + selected]] = True
                first = begin + max(selected, self.settled(begin, end, skipped[g]))
                selection[index, self.order[first:end][select(self.unit[first:end], query, np.float32(value))]] = True
        return selection if np.ndim(threshold) else selection[0]


def united(bitmaps: np.ndarray, groups: np.ndarray) -> npt.NDArray[np.uint8]:
    """(B,) uint8 the union of packed bitmaps `groups` of (G, B), zeros for none."""
    packed = np.zeros(bitmaps.shape[1], np.uint8)
    for g in groups:
        np.bitwise_or(packed, bitmaps[g], out=packed)
    return packed


def spherical_kmeans_steps(
    unit: np.ndarray, count: int, sample: int, iterations: int, seed: int
) -> Generator[None, None, np.ndarray]:
    """(K <= count, D) float64 unit centres of a seeded sample of `unit` (N, D) int16, by spherical k-means; an
    iteration a step (ClickIndex.build)."""
    rng = np.random.default_rng(seed)
    points = unit[np.sort(rng.choice(len(unit), min(sample, len(unit)), replace=False))].astype(np.float64)  # (S, D)
    points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    centres = points[rng.choice(len(points), min(count, len(points)), replace=False)]
    for _ in range(iterations):
        yield
        labels = (points @ centres.T).argmax(axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centres = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centres)  # an empty cluster keeps its centre
    return centres


@dataclass
class PlainFeatures:
    """One level's unit features in Gaussian order, read whole by each click: for a few clicks on a splat
    (`segment`), where building FeatureGroups costs more than it saves, for the clicks before the groups are
    built, and the reference the groups match."""

    unit: np.ndarray  # (N, D) int16 (unit_features)

    def features(self, ids: np.ndarray) -> np.ndarray:
        return self.unit[ids]

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities with (K, D) unit directions."""
        return cosines(self.unit, directions)

    def select(self, query: np.ndarray, threshold) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds."""
        return select(
            self.unit, query, np.asarray(threshold, np.float32)[..., None] if np.ndim(threshold) else threshold
        )


RAW_MARGIN = QUANTUM + 1e-5  # bounds |similarity - float32 cosine of the features as stored|: fixed point + rounding


@dataclass
class RawFeatures:
    """One level's features as stored, for the clicks before their unit features are made (unit_of: 0.1 s to
    0.5 s at 6 million Gaussians, where one float32 pass over the stored features takes 30 ms).

    That pass decides every Gaussian whose cosine lies farther than RAW_MARGIN from the threshold; the
    few within it are decided by their own unit rows, so the selection is exactly PlainFeatures'.
    """

    source: np.ndarray  # (N, D) float32 features as stored; fastest as a transposed view of (D, N)

    def features(self, ids: np.ndarray) -> np.ndarray:
        """(K, D) int16 unit features of Gaussians `ids`: unit_features' rows."""
        return unit_of(self.source[ids])

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities with (K, D) unit directions: PlainFeatures' (a one-off, Segment
        Everything: the unit features are made for it)."""
        return cosines(unit_of(self.source), directions)

    def select(self, query: np.ndarray, threshold, chunk: int = 1 << 16) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds: exactly PlainFeatures.select. Chunk by chunk: no temporary
        of N values (fresh memory costs page faults, the pass's own cost again)."""
        values = np.asarray(threshold, np.float32)[..., None]  # (1,) or (T, 1)
        low, high = values - np.float32(RAW_MARGIN), values + np.float32(RAW_MARGIN)
        count = len(self.source)
        selection = np.empty((count,) if values.ndim == 1 else (len(values), count), bool)
        query32, near_threshold = np.asarray(query, np.float32), [np.zeros(0, np.int64)]
        for start in range(0, count, chunk):
            rows = self.source[start : start + chunk].T  # (D, C)
            cosine = np.sqrt(np.einsum("dn,dn->n", rows, rows))
            np.divide(query32 @ rows, np.maximum(cosine, np.float32(1e-30), out=cosine), out=cosine)  # within 1e-5
            np.greater(cosine, high, out=selection[..., start : start + len(cosine)])
            near = (cosine >= low) & (cosine <= high)
            near_threshold.append(np.flatnonzero(near.any(axis=0) if near.ndim == 2 else near) + start)
        unsure = np.concatenate(near_threshold)
        if len(unsure):  # within RAW_MARGIN of a threshold: as their unit rows decide
            selection[..., unsure] = PlainFeatures(unit_of(self.source[unsure])).select(query, threshold)
        return selection
