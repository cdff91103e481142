"""SAM-like masks made from exact label maps, with SAM's flaws behind knobs.

SAM's automatic masks of one object disagree between views: here the mug and the table are one
mask, there the handle is missing, elsewhere a shadow is a mask of its own. Click-Gaussian's
global feature-guided learning exists to reconcile such views, so a benchmark with perfect masks
could not show what it is worth. Every view is simulated on its own, from its own seed, as SAM
sees every image on its own. With every knob at 0 the masks are the exact objects and parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskFlaws:
    """How inconsistent the views' masks are; probabilities apply per mask and view, independently."""

    merge_objects: float = 0.0  # an object's mask also covers a touching object (SAM groups things)
    merge_parts: float = 0.0  # a part's mask also covers a touching part of its object (no part mask)
    split: float = 0.0  # a mask is cut in two along a random line through its centre
    drop: float = 0.0  # a mask is missing
    roughen: float = 0.0  # boundaries move by a smooth random offset of this many pixels (standard deviation)
    spurious: float = 0.0  # mean number of masks per view that follow no object (random blobs over the scene)
    unlabelled_ground: bool = False  # no mask covers the ground (SAM often leaves textured floors, lawns uncovered)

    def __post_init__(self):
        from ..errors import UserError

        for name in ("merge_objects", "merge_parts", "split", "drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"mask flaw {name} = {getattr(self, name)} is a probability: it must lie in [0, 1]")
        for name in ("roughen", "spurious"):
            if getattr(self, name) < 0:
                raise UserError(f"mask flaw {name} = {getattr(self, name)} must not be negative")


PERFECT = MaskFlaws()
# Roughly what SAM's automatic masks do on LERF-like scenes: most masks right, a few in every view wrong.
REALISTIC = MaskFlaws(merge_objects=0.15, merge_parts=0.25, split=0.1, drop=0.1, roughen=1.0, spurious=1.0)
# The same, and the ground (object 0) left to no mask, as SAM's automatic masks leave 10-30 % of a photo.
GROUND_UNLABELLED = MaskFlaws(**{**vars(REALISTIC), "unlabelled_ground": True})
ROUGHNESS_SCALE = 3.0  # px: the smoothing length of the boundary noise, so boundaries wiggle rather than fray


def simulate_masks(
    objects: np.ndarray, parts: np.ndarray, part_objects: np.ndarray, flaws: MaskFlaws, rng: np.random.Generator
) -> np.ndarray:
    """(M, H, W) bool overlapping masks, as SAM returns them, of one view.

    objects, parts: (H, W) int32 exact label maps (-1 = nothing); part_objects: (P,) the object of
    each part id. One mask per visible object and one per visible part (a one-part object's part
    mask equals its object mask), each then damaged as `flaws` says. With `unlabelled_ground` the
    ground (object 0) and its parts get no mask and merge with nothing.
    """
    drawn = objects >= 0  # where the scene is drawn
    if flaws.unlabelled_ground:
        ground_parts = np.flatnonzero(part_objects == 0)
        objects = np.where(objects == 0, -1, objects)
        parts = np.where(np.isin(parts, ground_parts), -1, parts)
    object_groups = merged_groups(objects, flaws.merge_objects, rng, lambda a, b: True)
    part_groups = merged_groups(parts, flaws.merge_parts, rng, lambda a, b: part_objects[a] == part_objects[b])
    masks = [np.isin(objects, group) for group in object_groups] + [np.isin(parts, group) for group in part_groups]
    masks = [piece for mask in masks for piece in (split_mask(mask, rng) if rng.random() < flaws.split else [mask])]
    masks = [mask for mask in masks if rng.random() >= flaws.drop]
    masks += [random_blob(drawn, rng) for _ in range(rng.poisson(flaws.spurious))]
    if flaws.roughen > 0:  # kept to where the scene is drawn: SAM masks things, not the void around a synthetic scene
        masks = [roughen_mask(mask, flaws.roughen, rng) & drawn for mask in masks]
    masks = [mask for mask in masks if mask.any()]
    return np.stack(masks) if masks else np.zeros((0, *objects.shape), bool)


def merged_groups(labels: np.ndarray, probability: float, rng, allowed) -> list[list[int]]:
    """The visible labels in groups: each label, with `probability`, joins a touching label's group.

    The partner is drawn in proportion to the length of the shared boundary, so big contacts
    (an object on a table) merge more often than corners.
    """
    visible = np.unique(labels[labels >= 0])
    group = {int(label): int(label) for label in visible}
    if probability > 0 and len(visible) > 1:
        contacts = touching_pairs(labels)
        for label in rng.permutation(visible):
            if rng.random() >= probability:
                continue
            partners = [(b, n) for (a, b), n in contacts.items() if a == label and allowed(a, b)]
            if not partners:
                continue
            counts = np.array([n for _, n in partners], np.float64)
            partner = partners[rng.choice(len(partners), p=counts / counts.sum())][0]
            old, new = group[int(label)], group[partner]
            group = {key: new if value == old else value for key, value in group.items()}
    members: dict[int, list[int]] = {}
    for label, root in group.items():
        members.setdefault(root, []).append(label)
    return list(members.values())


def touching_pairs(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """{(a, b): number of 4-neighbour pixel pairs where label a touches label b}, both directions."""
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),  # horizontal neighbours
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),  # vertical neighbours
        ]
    )
    pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs >= 0).all(1)]
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    found, counts = np.unique(pairs, axis=0, return_counts=True)
    return {(int(a), int(b)): int(n) for (a, b), n in zip(found, counts)}


def split_mask(mask: np.ndarray, rng) -> list[np.ndarray]:
    """The mask cut in two by a line through its centroid at a random angle (the pieces that are not empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [mask]
    angle = rng.uniform(0, np.pi)
    yy, xx = np.indices(mask.shape)
    side = (xx - xs.mean()) * np.cos(angle) + (yy - ys.mean()) * np.sin(angle) > 0
    return [piece for piece in (mask & side, mask & ~side) if piece.any()]


def random_blob(scene: np.ndarray, rng) -> np.ndarray:
    """An ellipse of random place, size and angle, clipped to where the scene is drawn: a mask of nothing."""
    h, w = scene.shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ay, ax = rng.uniform(0.05, 0.25, 2) * (h, w)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.indices(scene.shape)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    return ((u / ax) ** 2 + (v / ay) ** 2 <= 1) & scene


def roughen_mask(mask: np.ndarray, pixels: float, rng) -> np.ndarray:
    """The mask with its boundary moved in or out by smooth noise of standard deviation `pixels`."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    signed = distance_transform_edt(mask) - distance_transform_edt(~mask)  # >= 1 inside, <= -1 outside
    noise = gaussian_filter(rng.normal(size=mask.shape), ROUGHNESS_SCALE)
    return signed + noise * (pixels / max(noise.std(), 1e-12)) > 0
