"""Cutting a splat's surfaces where they hold together least: objects that touch, and the parts of one object.

Gaussians whose ellipsoids overlap belong to one surface: a person's legs hang from the jacket through the large
Gaussians of the belt, and a guitar leaning on its stand touches it. Along a connected surface, an object ends, or a
part begins, where few links hold much together on either side (a neck, a contact) or where the colour changes (a
donut's icing). So the Gaussians are linked where they overlap (`surface_links`), each link weighted by how alike the
colours at its ends are, the links summed between voxels into a graph, and the graph cut along the smallest
normalized cut (Shi and Malik, 2000) of each of its first eigenvectors that a `CutRule` takes: objects where they
touch little and differ in colour (`OBJECTS`), parts at necks and colour edges (`PARTS`). Each side is cut again
until no rule takes a cut (`cut_apart`).

numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LINK_SIGMAS = 1.0  # Gaussians closer than this many of their largest standard deviations added together overlap
SIGMA_CAP = 3.0  # typical spacings: the most a Gaussian's size reaches (large background Gaussians)
COLOUR_SIGMA = 0.05  # opponent-colour distance at which a link's weight falls to exp(-1/2)
LIGHTNESS_WEIGHT = 0.3  # shading changes the lightness of one surface more than its hue: lightness counts less
CUT_VOXEL = 3.0  # typical spacings: the edge of the voxels that are the graph's nodes ...
CHROMA_BIN = 0.1  # ... one node per this much of red-green and yellow-blue in it (colour edges stay sharp)
EIGENVECTORS = 4  # the cuts along this many eigenvectors are weighed
MAX_NODES = 20000  # a group of more nodes is cut on wider voxels (the eigenvectors' cost)
DENSE_NODES = 600  # a group of at most this many nodes has its eigenvectors from a dense solver
PIECES_APART = 3 * COLOUR_SIGMA  # pieces of a group that do not touch are cut apart only this far apart in colour
DOMINANT_PIECE = 0.75  # ...else where one holds this share, it is cut further and the others ride along with it
SIDE_SHARE = 0.05  # each side of a cut holds at least this share of what is cut (and the caller's fewest Gaussians)
THIN_NECK_WIDER = 2.0  # a neck a tenth as thin as a rule's contact may be this much wider than its narrowing: the
# biker's waist, contact 0.0003 and narrowing 0.13 from its .ply, is 0.0006 and 0.23 from its .spz
SPRINKLED_CONTACT = 0.15  # parts: a donut's sprinkles touch the icing 0.16-0.21 (its parts < 0.09) ...
SCATTERED_PIECES = 10  # ... in 34-105 pieces each (`join_sprinkled`); a small part of a sparse splat is one piece


def surface_links(points: np.ndarray, sigmas: np.ndarray, reach: float, spacing: float) -> np.ndarray:
    """(L, 2) pairs i < j of `points` (n, 3) closer than `reach` or than LINK_SIGMAS times their largest standard
    deviations `sigmas` (n,) added together (at most SIGMA_CAP `spacing`s each)."""
    from scipy.spatial import cKDTree

    sizes = LINK_SIGMAS * np.minimum(sigmas, SIGMA_CAP * spacing)
    tree = cKDTree(points)
    found = tree.query_ball_point(points, 2 * sizes + reach)
    first = np.repeat(np.arange(len(points)), [len(f) for f in found])
    second = np.concatenate(found).astype(np.int64) if len(first) else np.zeros(0, np.int64)
    # each pair once, from the end whose own query is sure to reach the other (the larger, whose radius is wider)
    keep = (sizes[first] > sizes[second]) | ((sizes[first] == sizes[second]) & (first < second))
    first, second = first[keep], second[keep]
    gap = np.linalg.norm(points[first] - points[second], axis=1)
    keep = (gap <= reach) | (gap <= sizes[first] + sizes[second])
    return np.stack([first[keep], second[keep]], axis=1)


def opponent(colours: np.ndarray) -> np.ndarray:
    """(n, 3) lightness (weighted by LIGHTNESS_WEIGHT), red-green and yellow-blue of RGB `colours` (n, 3) in [0, 1]."""
    red, green, blue = colours[:, 0], colours[:, 1], colours[:, 2]
    return np.stack([LIGHTNESS_WEIGHT * colours.mean(axis=1), red - green, (red + green) / 2 - blue], axis=1)


def link_weights(colours: np.ndarray, links: np.ndarray) -> np.ndarray:
    """(L,) weight of each link (L, 2): 1 between the same colour, falling with the opponent-colour distance."""
    ends = opponent(colours)
    distance = np.sum((ends[links[:, 0]] - ends[links[:, 1]]) ** 2, axis=1)
    return np.exp(-distance / (2 * COLOUR_SIGMA**2))


@dataclass(frozen=True)
class CutRule:
    """When a cut of a group is taken (the measures are `Cut`'s): at a neck, where the smaller side touches the
    other little (the less, the wider the neck may be: THIN_NECK_WIDER), or at a colour edge. A group in pieces that
    do not touch is cut between them where their mean colours are `pieces_apart` apart."""

    neck_contact: float  # a neck: the smaller side touches the other less than this ...
    neck_narrowing: float  # ... and the cut is narrower than this share of the sweep's others
    edge_drop: float  # a colour edge: the colour-weighted links across drop to this share ...
    edge_contact: float  # ... the smaller side touching the other less than this ...
    edge_narrowing: float  # ... the cut narrower than this share of the sweep's others ...
    edge_gap: float  # ... and the two sides' mean opponent colours this far apart
    colour_gap: float  # either way, the two sides' mean opponent colours at least this far apart
    pieces_apart: float
    sprinkled: float  # a segment touching another this much (links across / its link ends) lies scattered over it

    def takes(self, cut: Cut, gap: float) -> bool:
        neck = cut.narrowing < self.neck_narrowing * (THIN_NECK_WIDER if cut.contact < self.neck_contact / 10 else 1)
        neck = neck and cut.contact < self.neck_contact
        edge = (
            cut.colour_drop < self.edge_drop
            and cut.contact < self.edge_contact
            and cut.narrowing < self.edge_narrowing
            and gap >= self.edge_gap
        )
        return gap >= self.colour_gap and (neck or edge)


# Objects: touching little (a neck of the sweep) and of another colour: a stand holding a guitar at a few pads.
# A colour edge alone is a part's (a figure's head on its body touches it as little as a ball resting on another).
OBJECTS = CutRule(
    neck_contact=0.005,
    neck_narrowing=0.05,
    edge_drop=0.0,
    edge_contact=0.0,
    edge_narrowing=0.0,
    edge_gap=np.inf,
    colour_gap=0.12,
    pieces_apart=np.inf,
    sprinkled=np.inf,
)
# Parts: a leg, a helmet held against a jacket (necks), a donut's icing (a colour edge); a table's legs are one; the
# sprinkles on the icing are the icing's.
PARTS = CutRule(
    neck_contact=0.01,
    neck_narrowing=0.15,
    edge_drop=0.15,
    edge_contact=np.inf,
    edge_narrowing=np.inf,
    edge_gap=0.1,
    colour_gap=0.0,
    pieces_apart=PIECES_APART,
    sprinkled=SPRINKLED_CONTACT,
)


def means(ids: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """(count, k) the mean of `values` (n, k) over each id of `ids` (n,) in 0..count-1; 0 where an id has none."""
    size = np.maximum(np.bincount(ids, minlength=count), 1)
    return np.stack([np.bincount(ids, weights=column, minlength=count) / size for column in values.T], axis=1)


def cut_apart(
    points: np.ndarray,
    colours: np.ndarray,
    links: np.ndarray,
    weights: np.ndarray,
    groups: np.ndarray,
    rule: CutRule,
    voxel: float,
    min_size: int,
) -> np.ndarray:
    """(n,) segment ids (-1 where `groups` is): each group of `groups` (n,) cut again and again where `rule` takes
    the best cut, each side keeping SIDE_SHARE of the group and `min_size` Gaussians.

    `points` (n, 3), `colours` (n, 3) RGB; `links` (L, 2) and `weights` (L,) from `surface_links` and
    `link_weights`; `voxel`: the nodes' edge.
    """
    segments = np.full(len(points), -1, np.int64)
    inside = (groups[links[:, 0]] == groups[links[:, 1]]) & (groups[links[:, 0]] >= 0)
    links, weights = links[inside], weights[inside]
    by_group = np.argsort(groups[links[:, 0]], kind="stable")
    starts = np.searchsorted(groups[links[by_group, 0]], np.arange(int(groups.max(initial=-1)) + 2))
    ends = opponent(colours)
    next_id = 0
    for group in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == group)
        least = max(min_size, int(SIDE_SHARE * len(members)))
        if len(members) < 2 * least:  # too small to cut in two
            segments[members] = next_id
            next_id += 1
            continue
        own = by_group[starts[group] : starts[group + 1]]
        graph = VoxelGraph(points[members], ends[members], np.searchsorted(members, links[own]), weights[own], voxel)
        for piece in graph.pieces(rule, least):
            segments[members[piece]] = next_id
            next_id += 1
    return join_sprinkled(segments, links, rule.sprinkled)


def join_sprinkled(segments: np.ndarray, links: np.ndarray, contact: float) -> np.ndarray:
    """(n,) `segments` (n,), each in SCATTERED_PIECES pieces or more joined with one that `contact` of its link ends
    cross to: bits scattered over a surface in another colour (a donut's sprinkles, cut from its icing at every
    colour edge) are that surface's, where a small part in one piece touches as much (a knob on a box). `links`
    (L, 2) within the segments' groups; `contact` inf: none is (objects)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not np.isfinite(contact):
        return segments
    count = int(segments.max(initial=-1)) + 1
    ends = segments[links]  # (L, 2)
    inside = (ends >= 0).all(axis=1)
    links, ends = links[inside], ends[inside]
    held = np.bincount(ends.reshape(-1), minlength=count)  # (S,) link ends in each segment
    across = ends[:, 0] != ends[:, 1]
    pairs, links_across = np.unique(np.sort(ends[across], axis=1), axis=0, return_counts=True)
    if not len(pairs):
        return segments
    own = links[~across]
    _, piece = connected_components(coo_matrix((np.ones(len(own)), tuple(own.T)), shape=(len(segments),) * 2))
    grouped = segments >= 0
    pieces = np.bincount(np.unique(np.stack([segments[grouped], piece[grouped]]), axis=1)[0], minlength=count)
    smaller = np.where(held[pairs[:, 0]] <= held[pairs[:, 1]], pairs[:, 0], pairs[:, 1])
    scattered = (links_across >= contact * held[smaller]) & (pieces[smaller] >= SCATTERED_PIECES)
    joined = coo_matrix((np.ones(int(scattered.sum())), tuple(pairs[scattered].T)), shape=(count, count))
    _, label = connected_components(joined, directed=False)
    return np.where(grouped, label[segments], -1)


class VoxelGraph:
    """The links of one group summed between voxels: colour-weighted (`graph`) and counted (`linked`)."""

    def __init__(self, points: np.ndarray, ends: np.ndarray, links: np.ndarray, weights: np.ndarray, voxel: float):
        from scipy.sparse import coo_matrix

        while True:  # wider voxels until the eigenvectors' graph is small enough (a surface: nodes ~ 1 / edge^2)
            cells = np.concatenate([np.floor(points / voxel), np.floor(ends[:, 1:] / CHROMA_BIN)], axis=1)
            keys, node = np.unique(cells.astype(np.int64), axis=0, return_inverse=True)
            if len(keys) <= MAX_NODES:
                break
            voxel *= max(1.1, np.sqrt(len(keys) / MAX_NODES))
        self.node = node.reshape(-1)  # (n,) the voxel of each point
        count = len(keys)
        ends_of = self.node[links]
        apart = ends_of[:, 0] != ends_of[:, 1]

        def summed(values: np.ndarray):
            graph = coo_matrix((values, (ends_of[apart, 0], ends_of[apart, 1])), shape=(count, count)).tocsr()
            return (graph + graph.T).tocsr()

        self.graph, self.linked = summed(weights[apart]), summed(np.ones(int(apart.sum())))
        self.size = np.bincount(self.node, minlength=count).astype(np.float64)  # (V,) points per voxel
        inside = np.bincount(ends_of[~apart, 0], minlength=count)  # (V,) links within each voxel
        self.ends = 2 * inside + np.asarray(self.linked.sum(axis=1)).reshape(-1)  # (V,) link ends in each voxel
        self.colour = means(self.node, ends, count)  # (V, 3) mean opponent colour
        self.centre = means(self.node, points, count)  # (V, 3)

    def mean_colour(self, nodes: np.ndarray) -> np.ndarray:
        return (self.colour[nodes] * self.size[nodes, None]).sum(axis=0) / self.size[nodes].sum()

    def pieces(self, rule: CutRule, least: int) -> list[np.ndarray]:
        """Index arrays into the points: the group cut where `rule` takes a cut, each side holding `least` points.

        Pieces that do not touch are cut apart only where `rule` and PIECES_APART say their colours differ (a
        table's four legs are one part); where one of them holds DOMINANT_PIECE, it is cut further and the rest
        join the piece nearest to them."""
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        pending, done, riders = [np.arange(len(self.size))], [], []
        while pending:
            nodes = pending.pop()
            cuts = candidate_cuts(
                self.graph[nodes][:, nodes], self.linked[nodes][:, nodes], self.ends[nodes], self.size[nodes], least
            )
            taken = None
            for cut in cuts:
                first, second = nodes[cut.side], nodes[~cut.side]
                gap = float(np.linalg.norm(self.mean_colour(first) - self.mean_colour(second)))
                if rule.takes(cut, gap) if cut.contact > 0 else gap >= rule.pieces_apart:
                    taken = first, second
                    break
            if taken is not None:
                pending += list(taken)
                continue
            if cuts and cuts[0].contact == 0:  # pieces that do not touch, alike: the main one is cut further
                count, piece = connected_components(self.linked[nodes][:, nodes], directed=False)
                held = np.bincount(piece, weights=self.size[nodes])
                if count > 1 and held.max() >= DOMINANT_PIECE * held.sum():
                    pending.append(nodes[piece == held.argmax()])
                    riders.append(nodes[piece != held.argmax()])
                    continue
            done.append(nodes)
        segment = np.zeros(len(self.size), np.int64)
        for index, nodes in enumerate(done):
            segment[nodes] = index
        if riders:
            placed, aboard = np.concatenate(done), np.concatenate(riders)
            segment[aboard] = segment[placed[cKDTree(self.centre[placed]).query(self.centre[aboard])[1]]]
        return [np.flatnonzero(segment[self.node] == index) for index in range(len(done))]


@dataclass
class Cut:
    value: float  # the normalized cut of the colour-weighted links
    side: np.ndarray  # (V,) bool: the nodes on one side
    contact: float  # links across / the links of the smaller side: how much of it touches the other
    narrowing: float  # links across here / the median across the other cuts of the sweep: low at a neck
    colour_drop: float  # colour_share / the colour-weighted share of all the links: low where the colour changes


def candidate_cuts(graph, linked, ends: np.ndarray, size: np.ndarray, least: int) -> list[Cut]:
    """The smallest normalized cut of `graph` (V, V symmetric sparse colour-weighted links) along each of its first
    EIGENVECTORS nontrivial eigenvectors, each side holding at least `least` of `size` (V,) Gaussians, the smallest
    first. `linked` (V, V): the count of links, for the cuts' measures. A guitar's stand is not always the cheapest
    cut (its neck may be), but it is among the first few."""
    import scipy.linalg
    from scipy.sparse import diags
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

    count = graph.shape[0]
    if size.sum() < 2 * least or count < 2 or linked.nnz == 0:  # nothing, or pieces with no link at all
        return []
    degree = np.asarray(graph.sum(axis=1)).reshape(-1)
    degree = degree + 1e-9 * max(float(degree.mean()), 1e-12)
    scaling = diags(1 / np.sqrt(degree))
    normalized = scaling @ graph @ scaling
    wanted = min(EIGENVECTORS + 1, count - 1)
    if count <= max(DENSE_NODES, 2 * wanted + 1):  # the largest `wanted` only: 5x faster than all of them
        values, vectors = scipy.linalg.eigh(normalized.toarray(), subset_by_index=[count - wanted, count - 1])
    else:
        try:
            values, vectors = eigsh(
                normalized,
                k=wanted,
                which="LA",
                tol=1e-4,
                maxiter=5000,
                v0=np.random.default_rng(0).uniform(0.5, 1.5, count),
            )
        except ArpackNoConvergence as error:
            values, vectors = error.eigenvalues, error.eigenvectors
        except ArpackError:  # a graph ARPACK cannot work on is left uncut
            return []
    volume_all = degree.sum()
    cuts = []
    for index in np.argsort(values)[::-1][1:wanted]:  # the largest is the trivial one
        order = np.argsort(vectors[:, index] / np.sqrt(degree), kind="stable")
        rank = np.empty(count, np.int64)
        rank[order] = np.arange(count)
        crossing, links_across = (sweep_crossing(matrix, rank) for matrix in (graph, linked))
        volume = np.cumsum(degree[order])
        with np.errstate(divide="ignore", invalid="ignore"):
            ncut = crossing / volume + crossing / (volume_all - volume)
        held = np.cumsum(size[order])
        allowed = (held >= least) & (held[-1] - held >= least) & np.isfinite(ncut)
        if not allowed.any():
            continue
        ncut[~allowed] = np.inf
        best = int(np.argmin(ncut))
        side = np.zeros(count, bool)
        side[order[: best + 1]] = True
        across = links_across[best]
        cuts.append(
            Cut(
                float(ncut[best]),
                side,
                float(across / max(min(ends[side].sum(), ends[~side].sum()), 1e-12)),
                float(across / max(np.median(links_across[allowed]), 1e-12)),
                float(crossing[best] / max(across, 1e-12) / max(graph.sum() / max(linked.sum(), 1e-12), 1e-12)),
            )
        )
    return sorted(cuts, key=lambda cut: cut.value)


def sweep_crossing(graph, rank: np.ndarray) -> np.ndarray:
    """(V,) the weight of `graph`'s (V, V symmetric) edges between the first k + 1 nodes in `rank` order and the
    rest."""
    edges = graph.tocoo()
    low, high = np.minimum(rank[edges.row], rank[edges.col]), np.maximum(rank[edges.row], rank[edges.col])
    change = np.zeros(graph.shape[0] + 1)
    np.add.at(change, low, edges.data / 2)  # each edge is stored both ways
    np.add.at(change, high, -edges.data / 2)
    return np.cumsum(change)[:-1]
