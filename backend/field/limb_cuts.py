"""Cutting an object's limbs off its body in its filled volume: a guitar's neck, a leg, a stand's foot.

A splat holds surfaces, and along a surface the cheapest cut of a flat thing is between its faces: a guitar's
front and back meet only at its thin rim, so `surface_cuts` finds them long before the neck. A body and its limbs
are volumes: filled in, the front and back are one slab, and the neck is where the volume narrows. So each part's
Gaussians are voxelized, gaps between its surfaces up to LIMB_CLOSING voxels closed and the enclosed space
filled, and the voxels cut along the smallest normalized cut (`surface_cuts.candidate_cuts`) where the cut is a
neck (the smaller side touches the other little, where the sweep is narrow) and what it cuts off is long and thin
(a limb, not a donut's half or a cap). Each side is cut again until none is.

numpy and scipy.
"""

from __future__ import annotations

import numpy as np

from .surface_cuts import SIDE_SHARE, candidate_cuts

LIMB_VOXELS = 60  # voxels along a part's longest side (at least the surface graph's voxel) ...
MAX_VOXELS = 20_000  # ... or fewer, so that its filled volume holds at most this many
LIMB_CLOSING = 3  # voxels: gaps this wide between a part's surfaces are closed (a guitar body's front and back)
LIMB_CONTACT = 0.01  # a limb's voxels touch the body's in fewer than this share of its voxel links ...
LIMB_NARROWING = 0.3  # ... through a cut narrower than this share of the sweep's others ...
LIMB_ELONGATION = 2.0  # ... and it is this many times as long as it is wide (its spread along its main axes)


def cut_limbs(points: np.ndarray, parts: np.ndarray, least_voxel: float, min_size: int) -> np.ndarray:
    """(n,) segment ids (-1 where `parts` is): each part of `parts` (n,) with its limbs cut off, again and again,
    each side keeping SIDE_SHARE of the part and `min_size` Gaussians. `points` (n, 3); `least_voxel`: the
    narrowest voxel edge (the surface graph's)."""
    segments = np.full(len(points), -1, np.int64)
    next_id = 0
    for part in np.unique(parts[parts >= 0]):
        members = np.flatnonzero(parts == part)
        least = max(min_size, int(SIDE_SHARE * len(members)))
        piece = limbs(points[members], least, least_voxel) if len(members) >= 2 * least else np.zeros(len(members))
        segments[members] = next_id + piece
        next_id += int(piece.max()) + 1
    return segments


def limbs(points: np.ndarray, least: int, least_voxel: float) -> np.ndarray:
    """(m,) piece id of each of `points` (m, 3) of one part: its body and limbs (0 where it has none)."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    graph, node, centres = volume_graph(points, least_voxel)
    count = graph.shape[0]
    size = np.bincount(node, minlength=count).astype(np.float64)  # (V,) Gaussians per voxel
    _, component = connected_components(graph, directed=False)
    held = np.bincount(component, weights=size)
    main = np.flatnonzero(component == held.argmax())
    if held.max() < 0.5 * size.sum():  # no body: pieces the closing did not join
        return np.zeros(len(points), np.int64)
    ends = np.asarray(graph.sum(axis=1)).reshape(-1)
    pending, done = [main], []
    while pending:
        nodes = pending.pop()
        sub = graph[nodes][:, nodes]
        for cut in candidate_cuts(sub, sub, ends[nodes], size[nodes], least):
            smaller = cut.side if size[nodes[cut.side]].sum() <= size[nodes[~cut.side]].sum() else ~cut.side
            if 0 < cut.contact < LIMB_CONTACT and cut.narrowing < LIMB_NARROWING:
                if elongation(points[np.isin(node, nodes[smaller])]) >= LIMB_ELONGATION:
                    pending += [nodes[cut.side], nodes[~cut.side]]
                    break
        else:
            done.append(nodes)
    piece = np.full(count, -1, np.int64)
    for index, nodes in enumerate(done):
        piece[nodes] = index
    loose = piece < 0  # voxels apart from the body ride with the nearest piece
    if loose.any():
        piece[loose] = piece[~loose][cKDTree(centres[~loose]).query(centres[loose])[1]]
    return piece[node]


def volume_graph(points: np.ndarray, least_voxel: float):
    """The filled volume of `points` (m, 3) as a graph of voxels (V, V sparse, 6-neighbours), each point's voxel
    (m,), and the voxels' centres (V, 3). The voxel: LIMB_VOXELS along the longest side, at least `least_voxel`,
    wider until the filled volume holds at most MAX_VOXELS."""
    from scipy import ndimage
    from scipy.sparse import coo_matrix

    voxel = max(float(np.ptp(points, axis=0).max()) / LIMB_VOXELS, least_voxel)
    while True:
        low = points.min(axis=0) - (LIMB_CLOSING + 1) * voxel
        cell = np.floor((points - low) / voxel).astype(np.int64)  # (m, 3)
        occupied = np.zeros(cell.max(axis=0) + LIMB_CLOSING + 2, bool)
        occupied[tuple(cell.T)] = True
        cross = ndimage.generate_binary_structure(3, 1)
        closed = ndimage.binary_closing(occupied, cross, iterations=LIMB_CLOSING)
        filled = ndimage.binary_fill_holes(closed) | occupied
        if filled.sum() <= MAX_VOXELS:
            break
        voxel *= max(1.1, (filled.sum() / MAX_VOXELS) ** (1 / 3))
    cells = np.argwhere(filled)  # (V, 3)
    index = np.full(filled.shape, -1, np.int64)
    index[tuple(cells.T)] = np.arange(len(cells))
    rows, columns = [], []
    for step in np.eye(3, dtype=np.int64):
        neighbour = cells + step
        inside = (neighbour < filled.shape).all(axis=1)
        other = np.full(len(cells), -1, np.int64)
        other[inside] = index[tuple(neighbour[inside].T)]
        rows.append(np.flatnonzero(other >= 0))
        columns.append(other[other >= 0])
    row, column = np.concatenate(rows), np.concatenate(columns)
    graph = coo_matrix((np.ones(len(row)), (row, column)), shape=(len(cells), len(cells))).tocsr()
    return (graph + graph.T).tocsr(), index[tuple(cell.T)], low + (cells + 0.5) * voxel


def elongation(points: np.ndarray) -> float:
    """How many times as long as it is wide `points` (k, 3) are: the ratio of their two largest spreads."""
    if len(points) < 3:
        return 0.0
    spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    return float(spread[0] / max(spread[1], 1e-12))
