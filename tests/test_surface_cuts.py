"""Surfaces cut where they hold together least: objects that touch little and differ in colour, parts at a neck or
a colour edge, and nothing cut where a shape merely goes on (a long stick, a ring)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.field.surface_cuts import OBJECTS, PARTS, cut_apart, link_weights, surface_links

SPACING = 0.01


def sphere(centre, radius: float, rng) -> np.ndarray:
    count = int(4 * np.pi * radius**2 / SPACING**2)
    normal = rng.normal(size=(count, 3))
    return np.asarray(centre) + radius * normal / np.linalg.norm(normal, axis=1, keepdims=True)


def cylinder(centre, radius: float, half_length: float, rng) -> np.ndarray:
    count = int(2 * np.pi * radius * 2 * half_length / SPACING**2)
    angle, along = rng.uniform(0, 2 * np.pi, count), rng.uniform(-half_length, half_length, count)
    return np.asarray(centre) + np.stack([radius * np.cos(angle), along, radius * np.sin(angle)], axis=1)


def segments(pieces: list[np.ndarray], colours: list, rule) -> list[np.ndarray]:
    """The segment ids of each piece's points after cutting the union of `pieces` (one group) by `rule`."""
    points = np.concatenate(pieces)
    rgb = np.concatenate([np.tile(colour, (len(piece), 1)) for piece, colour in zip(pieces, colours)])
    rgb = np.clip(rgb + np.random.default_rng(1).normal(0, 0.01, rgb.shape), 0, 1)  # a splat's colours are noisy
    links = surface_links(points, np.full(len(points), 0.7 * SPACING), 2 * SPACING, SPACING)
    group = np.zeros(len(points), np.int64)
    ids = cut_apart(points, rgb, links, link_weights(rgb, links), group, rule, 3 * SPACING, 20)
    bounds = np.cumsum([0] + [len(piece) for piece in pieces])
    return [ids[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def majority(ids: np.ndarray) -> int:
    values, counts = np.unique(ids, return_counts=True)
    return int(values[counts.argmax()])


BROWN, BLACK, PINK, BEIGE = (0.6, 0.35, 0.15), (0.08, 0.08, 0.09), (0.9, 0.45, 0.75), (0.85, 0.72, 0.5)
BLUE = (0.2, 0.35, 0.8)


def stand_against_ball(rng) -> tuple[np.ndarray, np.ndarray]:
    """A ball and a thin bar whose end touches it: a guitar's body and a leg of its stand, at one pad."""
    ball = sphere((0, 0, 0), 0.5, rng)
    bar = cylinder((0, 0.5 + 1.0, 0), 0.02, 1.0, rng)  # y down: standing under the ball, its top end at the ball
    return ball, bar


def test_a_stand_touching_a_ball_at_its_end_is_an_object_of_its_own():
    ball_ids, bar_ids = segments(list(stand_against_ball(np.random.default_rng(0))), [BROWN, BLACK], OBJECTS)
    assert majority(ball_ids) != majority(bar_ids)
    assert (ball_ids == majority(ball_ids)).mean() > 0.95 and (bar_ids == majority(bar_ids)).mean() > 0.9


def test_touching_things_of_one_colour_stay_one_object_but_are_two_parts():
    pieces = list(stand_against_ball(np.random.default_rng(0)))
    ball_ids, bar_ids = segments(pieces, [BLACK, BLACK], OBJECTS)  # a black leg under a black jacket
    assert len(np.unique(np.concatenate([ball_ids, bar_ids]))) == 1
    ball_ids, bar_ids = segments(pieces, [BLACK, BLACK], PARTS)
    assert majority(ball_ids) != majority(bar_ids)


def test_a_layer_of_another_colour_is_a_part_not_an_object():
    rng = np.random.default_rng(0)
    ball = sphere((0, 0, 0), 0.5, rng)
    top, bottom = ball[ball[:, 1] < -0.1], ball[ball[:, 1] >= -0.1]  # y down: icing on a donut's top
    top_ids, bottom_ids = segments([top, bottom], [PINK, BEIGE], OBJECTS)
    assert len(np.unique(np.concatenate([top_ids, bottom_ids]))) == 1
    top_ids, bottom_ids = segments([top, bottom], [PINK, BEIGE], PARTS)
    assert majority(top_ids) != majority(bottom_ids)
    assert (top_ids == majority(top_ids)).mean() > 0.9 and (bottom_ids == majority(bottom_ids)).mean() > 0.9


def test_bits_scattered_over_a_layer_are_the_layers_part():
    """A donut's sprinkles: short blue bits lying all over the pink icing, each too small to be a part."""
    rng = np.random.default_rng(0)
    ball = sphere((0, 0, 0), 0.5, rng)
    top, bottom = ball[ball[:, 1] < -0.1], ball[ball[:, 1] >= -0.1]
    bits = []
    for seat in top[rng.choice(len(top), 800, replace=False)]:
        normal = seat / np.linalg.norm(seat)
        along = np.cross(normal, rng.normal(size=3))
        along /= np.linalg.norm(along)
        bits.append((0.5 + 0.6 * SPACING) * normal + np.linspace(-2, 2, 5)[:, None] * SPACING * along)
    sprinkles = np.concatenate(bits)
    top_ids, sprinkle_ids, bottom_ids = segments([top, sprinkles, bottom], [PINK, BLUE, BEIGE], PARTS)
    icing = majority(top_ids)
    assert (top_ids == icing).mean() > 0.9 and (sprinkle_ids == icing).mean() > 0.9
    assert (bottom_ids == majority(bottom_ids)).mean() > 0.9 and majority(bottom_ids) != icing


@pytest.mark.parametrize("rule", [OBJECTS, PARTS], ids=["objects", "parts"])
def test_a_shape_that_merely_goes_on_is_not_cut(rule):
    rng = np.random.default_rng(0)
    (stick,) = segments([cylinder((0, 0, 0), 0.05, 0.8, rng)], [BROWN], rule)
    (ball,) = segments([sphere((0, 0, 0), 0.4, rng)], [BROWN], rule)
    assert len(np.unique(stick)) == 1 and len(np.unique(ball)) == 1
