"""Masks from the splat's own geometry: 3D groups of Gaussians rendered into every view.

The weight-free mask source (`train --masks geometric`, what Auto uses without a SAM checkpoint).
A photo's colour segments are not objects, and they differ from view to view; the splat knows
where things are in 3D. So the Gaussians are grouped once, in 3D, and every group's mask in every
view is what the rasterizer draws of it: the masks agree across views by construction.

  1. Solid Gaussians (opacity >= SOLID_OPACITY) carry the structure; space is contracted around
     the cameras' focus (mip-NeRF 360's contraction), so the far background counts as close-knit.
  2. The ground: the plane, roughly perpendicular to the cameras' up direction, that holds the
     most solid Gaussians near the splat's dense core (RANSAC; found from the splat alone, so photos and
     views rendered from the splat give the same ground); it and everything under it is one group, set
     apart, so that the things standing on it are no longer connected through it.
  3. Coarse groups (objects): candidates are the connected components of the voxels that the other solid
     Gaussians occupy (26-neighbours, voxels of 2 VOXEL_SPACINGS); each is cut into pieces of Gaussians within
     reach of each other, and pieces are joined back where one reaches into the other's convex hull
     (`separate_objects`): a ball beside a figure is apart, a lamp's pole inside its shade is not. Objects whose
     Gaussians overlap are joined where they are alike in colour or one lies over the other (`join_overlapping`:
     a person's legs and jacket, a donut's icing and dough), and every object is then cut where it touches the
     rest little and differs in colour (`surface_cuts.OBJECTS`: a guitar's stand). Fine groups (parts): each object
     cut at its necks and colour edges (`surface_cuts.PARTS`: a leg, a helmet held against a jacket, the icing),
     then each part's limbs cut off where its filled volume narrows (`limb_cuts`: a guitar's neck, which along the
     surface holds to the body better than the body's front to its back), so a part lies inside one object (the
     granularity prior). Faint Gaussians join the nearest group.
  4. Each view's label maps: a pixel takes the group holding more than half of its compositing
     weight (`views.majority_labels`, the ground truth's rule), -1 where none does; drawn from the
     weights training computes for every view anyway (`train.view_weights`), at its resolution.

numpy and scipy for the grouping; torch for rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limb_cuts import cut_limbs
from .surface_cuts import (
    CUT_VOXEL,
    OBJECTS,
    PARTS,
    SIGMA_CAP,
    cut_apart,
    link_weights,
    means,
    opponent,
    surface_links,
)

SOLID_OPACITY = 0.3  # Gaussians at least this opaque define the surfaces; fainter ones join the nearest group
VOXEL_SPACINGS = 2.0  # voxel edge: solid Gaussians in touching voxels (26-neighbours) are linked; the spacing
# is the median distance from a solid Gaussian to its 3rd nearest (in the contracted space)
GROUND_TOLERANCE = 1.0  # spacings: the widest band around the ground plane that is ground (everything under it is)
GROUND_TOP_PERCENTILE = 95  # the ground's top: this percentile of the heights of the plane's inliers...
GROUND_MIN_TOLERANCE = 0.1  # ...plus this share of the band
GROUND_MAX_TILT = np.radians(25)  # the ground's normal is within this angle of the cameras' up direction
NEIGHBOUR_OFFSETS = np.array(
    [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) > (0, 0, 0)]
)  # (13, 3): each of the 26 neighbours once per pair
RANSAC_TRIALS = 400
AXIS_CONE = np.radians(5)  # a forward-facing capture looks at the first surfaces within this angle of its axes
MIN_GROUP_SHARE = 2e-4  # a group of fewer solid Gaussians than this share (and MIN_GROUP_GAUSSIANS) is no mask
MIN_GROUP_GAUSSIANS = 20
NEAREST_REACH = 2.0  # spacings: how far a faint or ungrouped Gaussian looks for a group to join
QUICK_SAMPLE = 200_000  # solid Gaussians grouped for the first (lifted) field: `sampled_groups`
QUICK_REACH = 4.0  # typical distances to the nearest drawn Gaussian: how far one reaches for its group
TIGHT_SPACINGS = 2.0  # a group's own spacings: Gaussians closer are one piece; a candidate group is cut between...
HULL_CONTACT = 0.05  # ...pieces unless this share of one lies within that reach of the other's convex hull
SPACING_RANGE = (
    1.0,
    3.0,
)  # a group's own spacing (median distance to the 3rd nearest), in typical ones, is clipped to this
HULL_PIECE = MIN_GROUP_GAUSSIANS  # pieces at least this large have a hull; smaller ones join the nearest
HULL_SAMPLE = 4000  # Gaussians of a piece that its convex hull is built from
JOIN_LINKS = 5  # overlapping Gaussians that join two objects (`join_overlapping`) ...
JOIN_COLOUR_GAP = 0.06  # ... whose mean opponent colours are closer than this ...
WIDE_CONTACT = 0.05  # ... or where this share of the smaller one's Gaussians overlap the other ...
JOIN_SHARE = 0.05  # ... and the smaller holds at least this share of the two
ALONG_SHARE = 0.1  # an object this share of whose Gaussians overlap another lies along it (`join_overlapping`)
SLIVER_ALONG = 0.25  # a sliver lies in an object this share of its Gaussians overlap (the donut's dough 0.51-0.55)
BALL_DIRECTIONS = 32  # directions that approximate a ball when a hull is widened by the reach


@dataclass
class GaussianGroups:
    """Per Gaussian, its group at each level; -1: in no group (floaters, faint haze, far sky)."""

    coarse: np.ndarray  # (N,) int32 object id
    fine: np.ndarray  # (N,) int32 part id; equals the object id where the object is one part
    ground: int  # the ground's id at both levels, -1 where no ground plane was found


def geometric_labels(
    splat, cameras, should_stop=lambda: False, groups: GaussianGroups | None = None, weights=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coarse and fine (H, W) int32 label maps of every camera (-1 = no mask), as `masks.view_labels` gives.

    `should_stop()` is polled per view: True returns the views done so far (the caller cancels).
    `groups`: from `gaussian_groups`, when the caller has them already. `weights`: the views'
    `view_weights.ViewWeights`, which training needs anyway: the maps are drawn from them, at the resolution
    training uses, for the price of the majority alone; without them every view is rendered here.
    """
    import torch

    from .views import camera_weights, majority_labels, splat_tensors

    groups = groups or gaussian_groups(splat, cameras)
    columns = weights.order if weights is not None else np.arange(splat.count)  # the Gaussian of each column
    per_level = [torch.from_numpy(ids[columns].astype(np.int64)) for ids in (groups.coarse, groups.fine)]
    tensors = splat_tensors(splat) if weights is None else None
    labels = []
    for index, camera in enumerate(cameras):
        if should_stop():
            break
        view = weights.views[index] if weights is not None else camera_weights(splat, camera, tensors=tensors)
        coarse, fine = (
            majority_labels(view, ids).reshape(camera.height, camera.width).numpy().astype(np.int32)
            for ids in per_level
        )
        labels.append((coarse, fine))
    return labels


def gaussian_groups(splat, cameras, parts: bool = True) -> GaussianGroups:
    """Ground, objects and parts of `splat` (module docstring); `cameras` give the up direction and the focus.
    `parts` False: objects only, each its own one part (a third less time)."""
    from scipy.spatial import cKDTree

    count = splat.count
    none = GaussianGroups(np.full(count, -1, np.int32), np.full(count, -1, np.int32), -1)
    solid = np.flatnonzero(splat.alphas >= SOLID_OPACITY)  # (S,)
    if len(solid) < MIN_GROUP_GAUSSIANS:
        return none
    centre, radius, up = camera_frame(cameras, splat.positions[solid[:: max(1, len(solid) // 100_000)]])
    points = contract((splat.positions - centre) / radius)  # (N, 3) in the ball of radius 2
    inner = solid[np.linalg.norm(points[solid], axis=1) < 1.0]
    sample = inner if len(inner) >= MIN_GROUP_GAUSSIANS else solid
    sample = sample[np.random.default_rng(0).permutation(len(sample))[:20_000]]
    spacing = float(np.median(cKDTree(points[solid]).query(points[sample], k=4)[0][:, 3]))

    frame = ground_frame(splat, solid, up)
    ground = np.zeros(count, bool) if frame is None else ground_gaussians(splat.positions, splat.alphas, solid, *frame)
    objects = solid[~ground[solid]]  # (O,)
    if len(objects) < MIN_GROUP_GAUSSIANS:
        return none
    voxel = VOXEL_SPACINGS * spacing
    min_size = max(MIN_GROUP_GAUSSIANS, int(MIN_GROUP_SHARE * len(solid)))
    wide, wide_of = np.unique(np.floor(points[objects] / (2 * voxel)).astype(np.int64), axis=0, return_inverse=True)
    wide_of = wide_of.reshape(-1)  # (O,) index into wide (W, 3), voxels twice as wide
    candidates = components(voxel_links(wide), np.bincount(wide_of), min_size)[wide_of]  # (O,)
    coarse = separate_objects(points[objects], candidates, spacing, min_size)  # (O,)
    # Surfaces: the Gaussians that overlap; objects joined along them, then cut apart where they touch little or
    # change colour (objects), and where they narrow or change colour (parts).
    overlaps = surface_links(points[objects], contracted_sigmas(splat, objects, centre, radius), voxel, spacing)
    colours = splat.colors[objects]
    weights = link_weights(colours, overlaps)
    coarse = join_overlapping(coarse, overlaps, colours)
    node = CUT_VOXEL * spacing
    coarse = cut_apart(points[objects], colours, overlaps, weights, coarse, OBJECTS, node, min_size)  # (O,)
    if parts:
        fine = cut_apart(points[objects], colours, overlaps, weights, coarse, PARTS, node, min_size)
        fine = cut_limbs(points[objects], fine, node, min_size)
    else:
        fine = coarse

    # Ids: objects 0..C-1, the ground C, then the parts of objects with more than one part.
    n_objects = int(coarse.max()) + 1
    ground_id = n_objects if ground.any() else -1
    coarse_ids, fine_ids = np.full(count, -1, np.int32), np.full(count, -1, np.int32)
    coarse_ids[objects], fine_ids[objects] = coarse, nested_ids(coarse, fine, n_objects + 1)
    coarse_ids[ground] = fine_ids[ground] = ground_id
    # Faint Gaussians, and solid ones of groups too small, take the group of the nearest grouped solid one within
    # NEAREST_REACH spacings or their own size (faint skins of objects: a guitar's lacquered top); the rest stay in
    # no group.
    anchors = objects[coarse >= 0]
    loose = np.flatnonzero((coarse_ids < 0) & ~ground)
    if len(anchors) and len(loose):
        own = np.minimum(contracted_sigmas(splat, loose, centre, radius), SIGMA_CAP * spacing)  # (L,) their sizes
        reach = NEAREST_REACH * spacing + own
        distance, nearest = cKDTree(points[anchors]).query(points[loose], distance_upper_bound=float(reach.max()))
        near = distance <= reach
        coarse_ids[loose[near]] = coarse_ids[anchors[nearest[near]]]
        fine_ids[loose[near]] = fine_ids[anchors[nearest[near]]]
    return GaussianGroups(coarse_ids, fine_ids, ground_id)


def sampled_groups(splat, cameras, sample: int = QUICK_SAMPLE) -> GaussianGroups:
    """The objects (`gaussian_groups`, no parts) of `sample` solid Gaussians drawn at random, each other Gaussian in
    the group of its nearest drawn one within QUICK_REACH of their typical distance: seconds where all of them
    take a minute, for the first field a user clicks. The statue from 200,000 of its 418,000 solid Gaussians
    (800,000 in all): 9 s on the 2-core CPU, IoU 0.976-0.978 with its group of all of them, whatever the draw.
    Uniform draws of all the Gaussians left the statue's white pedestal half joined to it."""
    from scipy.spatial import cKDTree

    solid = np.flatnonzero(splat.alphas >= SOLID_OPACITY)
    if len(solid) <= sample:
        return gaussian_groups(splat, cameras, parts=False)
    drawn = np.sort(np.random.default_rng(0).choice(solid, sample, replace=False))
    groups = gaussian_groups(splat.subset(drawn), cameras, parts=False)
    distance, nearest = cKDTree(splat.positions[drawn]).query(splat.positions, k=1)
    undrawn = np.ones(splat.count, bool)
    undrawn[drawn] = False
    near = distance <= QUICK_REACH * np.median(distance[undrawn])
    coarse, fine = (np.where(near, ids[nearest], -1).astype(np.int32) for ids in (groups.coarse, groups.fine))
    return GaussianGroups(coarse, fine, groups.ground)


def contracted_sigmas(splat, members: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """(M,) the largest standard deviation of each of `members` in the contracted space of `contract`: scaled by
    the radius, and shrunk as the contraction shrinks space outside the unit ball (about 1 / |x|^2)."""
    distance = np.linalg.norm(splat.positions[members] - centre, axis=1) / radius
    return np.exp(splat.scales[members].max(axis=1).astype(np.float64)) / radius / np.maximum(distance, 1.0) ** 2


def join_overlapping(objects: np.ndarray, overlaps: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """`objects` (O,) with objects made one (ids by size) where their Gaussians overlap, in three rounds
    (`join_pairs`): pairs of which neither is a sliver of the two (JOIN_SHARE), overlapping at JOIN_LINKS `overlaps`
    (L, 2) or more, join where they are alike in colour (a person's black legs hang from the black jacket through
    the belt's large Gaussians) or one lies over the other (WIDE_CONTACT: a donut's icing on its dough); then each
    sliver joins the one object it overlaps most, if they are alike (pieces of a person's hip, cut off by gaps), or
    if it lies in it (SLIVER_ALONG of its Gaussians overlap it) alike to the Gaussians it overlaps (a donut's
    bottom rim, cut off in patches of dough, not alike to the donut's pink mean): one each, so slivers never chain
    two large objects into one, and a patch lying on another object of another colour (the shadowed rim of a
    statue's pedestal, alike to the bronze statue; a coin on a table) stays apart; last, an object that the
    rounds before made whole joins one that ALONG_SHARE of its Gaussians overlap, whatever its colour (a guitar's
    darker rim, cut off its body by a gap in pieces, lies along the body's edge). A joined pair that is two objects
    (a guitar on its stand) is cut apart again by `surface_cuts.OBJECTS`. `colours` (O, 3) RGB."""
    for rule in ("whole", "slivers", "along"):
        objects = join_pairs(objects, overlaps, colours, rule)
    return objects


def join_pairs(objects: np.ndarray, overlaps: np.ndarray, colours: np.ndarray, rule: str) -> np.ndarray:
    """One round of `join_overlapping` ("whole", "slivers" or "along")."""
    ends = objects[overlaps]  # (L, 2)
    across = (ends[:, 0] != ends[:, 1]) & (ends >= 0).all(axis=1)
    ends, linked = ends[across], overlaps[across]
    count = int(objects.max(initial=-1)) + 1
    if not len(ends):
        return objects
    pairs, of_pair, links = np.unique(np.sort(ends, axis=1), axis=0, return_inverse=True, return_counts=True)
    of_pair = of_pair.reshape(-1)  # (L,) index into pairs (P, 2); links (P,)
    kept = objects >= 0
    size = np.bincount(objects[kept], minlength=count)
    mean = means(objects[kept], opponent(colours[kept]), count)  # (count, 3) mean opponent colour
    smaller = np.minimum(size[pairs[:, 0]], size[pairs[:, 1]])
    alike = np.linalg.norm(mean[pairs[:, 0]] - mean[pairs[:, 1]], axis=1) < JOIN_COLOUR_GAP
    whole = smaller >= JOIN_SHARE * (size[pairs[:, 0]] + size[pairs[:, 1]])
    small = np.where(size[pairs[:, 0]] < size[pairs[:, 1]], pairs[:, 0], pairs[:, 1])  # (P,) the smaller's id
    own = np.where(objects[linked[:, 0]] == small[of_pair], linked[:, 0], linked[:, 1])  # (L,) its end of each link
    touching = np.bincount(np.unique(np.stack([of_pair, own], axis=1), axis=0)[:, 0], minlength=len(pairs))  # (P,)
    if rule == "whole":
        joined = whole & (alike | (links >= WIDE_CONTACT * smaller))
    elif rule == "slivers":  # each object's most overlapped larger neighbour (sorted by links, the last one wins)
        order = np.argsort(links, kind="stable")
        best = np.full(count, -1)
        best[small[order]] = order
        chosen = np.zeros(len(pairs), bool)
        chosen[best[best >= 0]] = True
        there = means(of_pair, opponent(colours[linked.sum(axis=1) - own]), len(pairs))  # (P, 3) the other's, where
        alike_there = np.linalg.norm(mean[small] - there, axis=1) < JOIN_COLOUR_GAP
        joined = chosen & ~whole & (alike | ((touching >= SLIVER_ALONG * smaller) & alike_there))
    else:  # "along": the smaller's Gaussians that overlap the other, each counted once
        joined = whole & (touching >= ALONG_SHARE * smaller)
    merged = components(pairs[(links >= JOIN_LINKS) & joined], size, 0)  # ids by size, largest 0
    return np.where(objects >= 0, merged[np.maximum(objects, 0)], -1).astype(objects.dtype)


def separate_objects(points: np.ndarray, groups: np.ndarray, spacing: float, min_size: int) -> np.ndarray:
    """(O,) object id per Gaussian (largest 0, -1 where `groups` is): each candidate group of `groups` (O,) cut
    into pieces, Gaussians within reach of each other, and pieces joined back where one reaches into the other's
    convex hull.

    Touching voxels link Gaussians up to ~14 spacings apart: two objects a hand's width apart are one candidate.
    Links within a reach of TIGHT_SPACINGS of the group's own spacing keep them apart, but cut an object whose
    pieces do not touch: a splat holds surfaces, not solids, and a lamp's pole stands inside its open base and
    reaches into its hollow shade, 4 spacings from both. A solid object is its surface filled in, so a piece joins
    another when at least HULL_CONTACT of either lies within the reach of the other's convex hull; a ball beside a
    figure does not. `spacing`: the typical one; `min_size`: the fewest Gaussians of an object.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    count = len(points)
    tree = cKDTree(points)
    # A group's reach follows its own spacing (foliage is sparser than a statue), within SPACING_RANGE.
    own = tree.query(points, k=4)[0][:, 3]  # (O,) distance to the 3rd nearest
    found = np.unique(groups[groups >= 0])
    scale = np.ones(len(found) and int(found[-1]) + 1)
    scale[found] = [np.median(own[groups == group]) / spacing for group in found]
    reaches = TIGHT_SPACINGS * spacing * np.clip(scale, *SPACING_RANGE)  # per group
    pairs = tree.query_pairs(TIGHT_SPACINGS * spacing * SPACING_RANGE[1], output_type="ndarray")  # (P, 2)
    first, second = groups[pairs[:, 0]], groups[pairs[:, 1]]
    gap = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    pairs = pairs[(first == second) & (first >= 0) & (gap <= reaches[np.maximum(first, 0)])]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    piece = connected_components(graph, directed=False)[1]  # (O,)
    objects = np.full(count, -1, np.int64)
    for group in found:
        members = np.flatnonzero(groups == group)
        members = members[np.argsort(piece[members], kind="stable")]
        ids, starts, sizes = np.unique(piece[members], return_index=True, return_counts=True)
        big = np.flatnonzero(sizes >= HULL_PIECE)
        root = np.zeros(len(ids), np.int64)
        if len(big) >= 2:
            root = np.arange(len(ids))
            spans = [points[members[starts[b] : starts[b] + sizes[b]]] for b in big]
            low = np.array([span.min(axis=0) for span in spans]) - reaches[group]  # (B, 3) boxes around the pieces
            high = np.array([span.max(axis=0) for span in spans]) + reaches[group]
            near = np.triu((low[:, None] <= high[None]).all(2) & (low[None] <= high[:, None]).all(2), 1)
            hulls: dict[int, np.ndarray | None] = {}
            for i, j in zip(*np.nonzero(near)):
                for a, b in ((i, j), (j, i)):
                    if root[big[i]] != root[big[j]]:
                        if a not in hulls:
                            hulls[a] = widened_hull(spans[a], reaches[group])
                        if touching(spans[b], hulls[a]):
                            root[root == root[big[j]]] = root[big[i]]
        # Pieces too small for a hull, then objects too small to be a mask, join the nearest object large enough.
        label = join_nearest(
            points[members], np.repeat(root, sizes), np.repeat(np.isin(np.arange(len(ids)), big), sizes)
        )
        large = np.bincount(label)[label] >= min_size
        label = join_nearest(points[members], label, large) if large.any() else np.zeros_like(label)
        objects[members] = label + count * group  # unique across groups
    kept = objects >= 0
    found, inverse = np.unique(objects[kept], return_inverse=True)
    rank = np.empty(len(found), np.int64)
    rank[np.argsort(-np.bincount(inverse), kind="stable")] = np.arange(len(found))
    out = np.full(count, -1, np.int32)
    out[kept] = rank[inverse]
    return out


def join_nearest(points: np.ndarray, label: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """`label` (M,) with each Gaussian not an `owner` (M,) bool taking the label of the nearest owner (none: as is)."""
    from scipy.spatial import cKDTree

    if not owner.any() or owner.all():
        return label
    label = label.copy()
    label[~owner] = label[owner][cKDTree(points[owner]).query(points[~owner])[1]]
    return label


def widened_hull(points: np.ndarray, reach: float) -> np.ndarray | None:
    """(F, 4) facet planes (inside: normal . x + offset <= 0) of the convex hull of `points` (n, 3) widened by
    `reach` in every direction (the hull of its vertices moved by `reach` along BALL_DIRECTIONS); None if flat."""
    from scipy.spatial import ConvexHull, QhullError

    sample = points[:: max(1, len(points) // HULL_SAMPLE)]
    index = np.arange(BALL_DIRECTIONS) + 0.5  # a Fibonacci sphere of unit directions
    polar, azimuth = np.arccos(1 - 2 * index / BALL_DIRECTIONS), np.pi * (1 + 5**0.5) * index
    ball = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], 1)
    try:
        vertices = sample[ConvexHull(sample).vertices]
    except QhullError:  # fewer than 4 points off one plane: the widened sample itself
        vertices = sample
    try:
        return ConvexHull((vertices[:, None, :] + reach * ball[None]).reshape(-1, 3)).equations
    except QhullError:
        return None


def touching(points: np.ndarray, hull: np.ndarray | None) -> bool:
    """At least HULL_CONTACT of `points` (n, 3) lie inside `hull` (F, 4 facet planes)."""
    if hull is None:
        return False
    inside = (points @ hull[:, :3].T + hull[:, 3] <= 0).all(axis=1)
    return bool(inside.mean() >= HULL_CONTACT)


def camera_frame(cameras, positions: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The point the cameras look at, their largest distance from it, and the up direction.

    The point: the least-squares meeting point of the cameras' axes where it lies in front of
    every camera (a capture around an object); else (a forward-facing capture, whose axes meet
    behind the cameras or nowhere) the median over cameras of the first surfaces along each axis:
    the quarter-depth of the solid `positions` (S, 3) within AXIS_CONE of it. Up is minus the
    cameras' mean down axis (OpenCV: y points down in the image).
    """
    to_world = np.array([np.linalg.inv(c.world_to_camera) for c in cameras])  # (C, 4, 4)
    origins, forwards = to_world[:, :3, 3], to_world[:, :3, 2]  # (C, 3)
    up = -to_world[:, :3, 1].mean(axis=0)
    up /= max(np.linalg.norm(up), 1e-12)
    projectors = np.eye(3)[None] - forwards[:, :, None] * forwards[:, None, :]  # (C, 3, 3)
    system, target = projectors.sum(axis=0), np.einsum("cij,cj->i", projectors, origins)
    centre = np.linalg.lstsq(system, target, rcond=None)[0]
    if not (np.einsum("ci,ci->c", centre - origins, forwards) > 0).all():
        points = []
        for origin, forward in zip(origins, forwards):
            offsets = positions - origin
            depth = offsets @ forward
            on_axis = (depth > 0) & (depth**2 > np.cos(AXIS_CONE) ** 2 * (offsets**2).sum(axis=1))
            if on_axis.any():
                points.append(origin + forward * np.percentile(depth[on_axis], 25))
        centre = np.median(points, axis=0) if points else origins.mean(axis=0) + forwards.mean(axis=0)
    radius = max(float(np.linalg.norm(origins - centre, axis=1).max()), 1e-6)
    return centre, radius, up


def ground_frame(splat, solid: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float] | None:
    """Where the ground is looked for, from the splat alone: (centre (3,), radius, up (3,), tolerance); None where
    the splat has no floor (an object scanned on its own: its flattest side is no ground to set apart).

    Not from the cameras: views planned around the whole scene stand farther out than the photos did, look at
    another point and tilt otherwise, and the ground must be the same for both. From the splat's dense core
    (`view_planning.scene_extent`): its median at the height of what stands on its floor (a floor lies below it),
    the distance holding 80 % of its opacity off the floor, and its own up direction unless that is more than
    GROUND_MAX_TILT from the cameras' `up` (then theirs). The tolerance: GROUND_TOLERANCE typical spacings (the
    median distance from a solid Gaussian within that radius to its 3rd nearest), in the splat's units.
    """
    from scipy.spatial import cKDTree

    from ..scene.view_planning import scene_extent

    extent = scene_extent(splat.positions, splat.alphas)
    if extent.up @ up < np.cos(GROUND_MAX_TILT):
        extent = scene_extent(splat.positions, splat.alphas, up=up)
    if not extent.floor:
        return None
    positions = splat.positions[solid].astype(np.float64)  # (S, 3)
    near = np.flatnonzero(np.linalg.norm(positions - extent.target, axis=1) < extent.radius)
    sample = near[np.random.default_rng(0).permutation(len(near))[:20_000]] if len(near) >= 4 else np.arange(len(solid))
    spacing = float(np.median(cKDTree(positions).query(positions[sample], k=4)[0][:, 3]))
    return extent.target, extent.radius, extent.up, GROUND_TOLERANCE * spacing


def contract(points: np.ndarray) -> np.ndarray:
    """mip-NeRF 360's contraction: the unit ball kept, the outside squeezed into the shell 1 < |x| < 2."""
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return np.where(norms <= 1.0, points, (2.0 - 1.0 / np.maximum(norms, 1.0)) * points / np.maximum(norms, 1e-12))


def ground_gaussians(positions, alphas, solid, centre, radius, up, tolerance) -> np.ndarray:
    """(N,) bool: near or under the plane of most opacity among the solid Gaussians near the focus.

    Candidate planes come from random triples (RANSAC); only planes whose normal lies within
    GROUND_MAX_TILT of `up` and which pass below the focus count. The tolerance grows with the
    distance from the focus, as the splat's own precision falls.
    """
    rng = np.random.default_rng(0)
    near = solid[np.linalg.norm(positions[solid] - centre, axis=1) < 2 * radius]
    if len(near) < 3:
        return np.zeros(len(positions), bool)
    sample = near[rng.permutation(len(near))[:50_000]]
    xyz, weight = positions[sample], alphas[sample]
    best, best_score = None, 0.0
    for _ in range(RANSAC_TRIALS):
        a, b, c = xyz[rng.choice(len(xyz), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        if np.linalg.norm(normal) < 1e-12:
            continue
        normal /= np.linalg.norm(normal)
        if normal @ up < 0:
            normal = -normal
        if np.arccos(np.clip(normal @ up, -1, 1)) > GROUND_MAX_TILT or (centre - a) @ normal <= 0:
            continue
        score = weight[np.abs((xyz - a) @ normal) < tolerance].sum()
        if score > best_score:
            best, best_score = (a, normal), score
    if best is None:
        return np.zeros(len(positions), bool)
    point, normal = best
    inliers = xyz[np.abs((xyz - point) @ normal) < tolerance]
    point = inliers.mean(axis=0)  # refit: the plane of least squares through the inliers
    normal = np.linalg.svd(inliers - point, full_matrices=False)[2][2]
    normal = normal if normal @ up >= 0 else -normal
    # The ground's top: a thin band over a flat floor, a thicker one over a lawn (its tallest inliers).
    top = np.percentile((inliers - point) @ normal, GROUND_TOP_PERCENTILE) + GROUND_MIN_TOLERANCE * tolerance
    height = (positions - point) @ normal  # (N,) above the ground > 0
    distance = np.linalg.norm(positions - centre, axis=1) / radius
    return height < top * np.maximum(distance, 1.0)


def voxel_links(keys: np.ndarray) -> np.ndarray:
    """(E, 2) pairs of indices into `keys` (V, 3, sorted) of occupied voxels that touch (26-neighbourhood)."""
    low = keys.min(axis=0) - 1
    span = keys.max(axis=0) - low + 2
    codes = ((keys[:, 0] - low[0]) * span[1] + (keys[:, 1] - low[1])) * span[2] + (keys[:, 2] - low[2])  # sorted
    pairs = []
    for offset in NEIGHBOUR_OFFSETS:
        other = codes + (offset[0] * span[1] + offset[1]) * span[2] + offset[2]
        at = np.minimum(np.searchsorted(codes, other), len(codes) - 1)
        hit = codes[at] == other
        pairs.append(np.stack([np.flatnonzero(hit), at[hit]], axis=1))
    return np.concatenate(pairs)


def components(links: np.ndarray, size: np.ndarray, min_size: int) -> np.ndarray:
    """(V,) component id per voxel, numbered by size (largest 0); -1 for components of < min_size Gaussians."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(size)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(count, count))
    _, label = connected_components(graph, directed=False)
    sizes = np.bincount(label, weights=size)  # solid Gaussians per component
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return np.where(sizes[label] >= min_size, rank[label], -1)


def nested_ids(coarse: np.ndarray, fine: np.ndarray, first: int) -> np.ndarray:
    """Fine ids where a part is its whole object are the object's id; other parts count up from `first`.

    Pieces are cut only inside objects, but a piece may be -1 where its object is too small: it
    then has no part either.
    """
    out = np.where(coarse >= 0, coarse, -1)
    pieces = np.unique(fine[(fine >= 0) & (coarse >= 0)])
    owners = np.zeros(len(pieces), np.int64)
    np.maximum.at(
        owners, np.searchsorted(pieces, fine[(fine >= 0) & (coarse >= 0)]), coarse[(fine >= 0) & (coarse >= 0)]
    )
    split = np.bincount(owners, minlength=int(coarse.max()) + 1) > 1  # objects of more than one part
    new_id = np.full(len(pieces), -1)
    new_id[split[owners]] = first + np.arange(int(split[owners].sum()))
    mine = (fine >= 0) & (coarse >= 0)
    ids = new_id[np.searchsorted(pieces, fine[mine])]
    out[mine] = np.where(ids >= 0, ids, coarse[mine])
    return out
