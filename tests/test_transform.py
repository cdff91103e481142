"""backend.formats.transform: a transformed splat looks, from a transformed camera, as the original did."""

from __future__ import annotations

import numpy as np
import pytest
from splat_checks import covariances
from splat_files import random_splat

from backend.benchmark.synthetic import look_at, make_scene
from backend.formats.sh import sh_basis, sh_colors
from backend.formats.splat import Splat
from backend.formats.transform import is_identity, polar_rotation, quaternions_to_matrices, sh_rotation, transform_splat


def rotation(axis, angle) -> np.ndarray:  # (3, 3), Rodrigues
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def affine(linear, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = linear, offset
    return matrix


def rich_scene(count=3000, degree=3, seed=4) -> Splat:
    """A generated scene with strong view-dependent colour, so a wrong SH rotation shows."""
    splat = make_scene(count, sh_degree=degree, seed=seed).splat
    rng = np.random.default_rng(seed)
    for name in splat.columns:
        if name.startswith("f_rest_"):
            splat.columns[name] = rng.normal(0, 0.35, count).astype(np.float32)
    return splat


def render_image(splat: Splat, world_to_camera: np.ndarray, K: np.ndarray, width=96, height=72) -> np.ndarray:
    """(H, W, 3): the splat seen from the camera, each Gaussian's colour from its SH along the view ray."""
    import torch

    from backend.field.render import render

    centre = -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]
    means = splat.positions.astype(np.float64)
    directions = means - centre
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rest = splat.sh_rest if splat.sh_degree else None
    colours = sh_colors(splat.sh_dc.astype(np.float64), None if rest is None else rest.astype(np.float64), directions)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    image, _ = render(
        t(means),
        t(splat.rotations),
        t(np.exp(splat.scales)),
        t(splat.alphas),
        t(colours),
        t(world_to_camera),
        t(K),
        width,
        height,
        backend="torch",
    )
    return image.numpy()


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("mirror", [False, True])
def test_sh_rotation_matches_the_basis_at_rotated_directions(degree, mirror):
    turn = rotation([0.3, -0.8, 0.5], 1.1) @ (np.diag([1.0, -1.0, 1.0]) if mirror else np.eye(3))
    rng = np.random.default_rng(degree)
    coefficients = rng.normal(size=(degree + 1) ** 2)
    directions = rng.normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    turned = coefficients.copy()
    for band, matrix in enumerate(sh_rotation(turn, degree), start=1):
        turned[band * band : (band + 1) ** 2] = matrix @ coefficients[band * band : (band + 1) ** 2]
    before = np.stack(sh_basis(directions, degree), axis=1) @ coefficients  # the colour along d
    after = np.stack(sh_basis(directions @ turn.T, degree), axis=1) @ turned  # along Q d after turning
    np.testing.assert_allclose(after, before, atol=1e-10)


def test_an_identity_transform_gives_the_same_splat_back():
    splat = rich_scene(200)
    assert transform_splat(splat, np.eye(4)) is splat
    assert is_identity(np.eye(4) + 1e-8) and not is_identity(affine(np.eye(3), (0, 0, 1e-4)))


@pytest.mark.parametrize("scale", [1.0, 0.6, 2.5])
def test_a_transformed_splat_renders_as_the_original_from_the_transformed_camera(scale):
    """Export under T, view from C; the original viewed from C after T^-1 is the same image, SH-3 colours included."""
    splat = rich_scene()
    transform = affine(scale * rotation([1.0, 2.0, -0.5], 0.9), (0.4, -1.2, 2.0))
    moved = transform_splat(splat, transform)
    camera = look_at(
        "c",
        transform[:3, :3] @ [4.0, -2.5, 3.0] + transform[:3, 3],
        transform[:3, 3] + transform[:3, :3] @ [0.0, -0.4, 0.0],
        96,
        72,
        focal=80.0,
    )
    seen = render_image(moved, camera.world_to_camera, camera.K)
    # The original through C o T: a rigid camera times `scale`; dividing it out leaves the same pixels.
    original_camera = camera.world_to_camera @ transform
    original_camera[:3] /= scale
    expected = render_image(splat, original_camera, camera.K)
    assert expected.mean() > 0.05  # the scene is in view
    difference = np.abs(seen - expected)
    assert difference.mean() < 1e-5 and difference.max() < 1e-3
    # and a wrong SH turn would show: the same render with the SH left unturned differs
    unturned = Splat({**moved.columns, **{n: v for n, v in splat.columns.items() if n.startswith("f_rest_")}})
    assert np.abs(render_image(unturned, camera.world_to_camera, camera.K) - expected).mean() > 10 * difference.mean()


def test_non_uniform_scale_and_shear_map_every_covariance_and_centre_exactly():
    splat = rich_scene(2000)
    linear = np.array([[2.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.1, 0.0, 1.3]]) @ rotation([0, 0, 1], 0.4)
    moved = transform_splat(splat, affine(linear, (1.0, 2.0, 3.0)))
    np.testing.assert_allclose(moved.positions, splat.positions @ linear.T + [1.0, 2.0, 3.0], rtol=1e-5, atol=1e-5)
    expected = linear @ covariances(splat) @ linear.T
    np.testing.assert_allclose(covariances(moved), expected, rtol=2e-4, atol=1e-9)
    rotations = quaternions_to_matrices(moved.rotations.astype(np.float64))
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-5)  # proper rotations, as viewers expect
    np.testing.assert_array_equal(moved.columns["opacity"], splat.columns["opacity"])
    np.testing.assert_array_equal(moved.sh_dc, splat.sh_dc)
    # the SH turn by the polar rotation: colours seen along Q d are the old colours along d
    turn = polar_rotation(linear)
    directions = np.random.default_rng(0).normal(size=(splat.count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    np.testing.assert_allclose(
        sh_colors(moved.sh_dc, moved.sh_rest, directions @ turn.T),
        sh_colors(splat.sh_dc, splat.sh_rest, directions),
        atol=1e-5,
    )


def test_normals_turn_with_the_surface_and_keep_their_length_and_types_are_kept():
    splat = make_scene(300, sh_degree=1).splat
    normals = np.tile([0.0, 0.0, 1.0], (300, 1))
    columns = {
        "x": splat.columns["x"],
        "y": splat.columns["y"],
        "z": splat.columns["z"],
        "nx": normals[:, 0].astype(np.float32),
        "ny": normals[:, 1].astype(np.float32),
        "nz": normals[:, 2].astype(np.float32),
    }
    columns.update({n: v for n, v in splat.columns.items() if n not in columns})
    columns["x"] = columns["x"].astype(np.float64)
    columns["segment"] = np.arange(300, dtype=np.int32)
    moved = transform_splat(Splat(columns), affine(np.diag([1.0, 1.0, 3.0]) @ rotation([1, 0, 0], np.pi / 2)))
    assert list(moved.columns) == list(columns) and moved.columns["x"].dtype == np.float64
    np.testing.assert_allclose(
        np.stack([moved.columns[n] for n in ("nx", "ny", "nz")], axis=1), np.tile([0.0, -1.0, 0.0], (300, 1)), atol=1e-6
    )
    np.testing.assert_array_equal(moved.columns["segment"], columns["segment"])


def test_a_splat_read_from_a_file_transforms_as_the_splat_written(tmp_path):
    """A read splat's columns are views of the file's rows; the transform gives what it gives the splat written."""
    from backend.formats.ply import read_ply, write_ply

    original = rich_scene(count=5000)
    write_ply(tmp_path / "a.ply", original)
    matrix = affine(np.diag([1.0, 2.0, 0.5]) @ rotation([1, 2, 3], 0.8), (1.0, -2.0, 0.5))
    expected, moved = transform_splat(original, matrix), transform_splat(read_ply(tmp_path / "a.ply"), matrix)
    assert list(moved.columns) == list(expected.columns)
    for name, values in expected.columns.items():
        np.testing.assert_array_equal(moved.columns[name], values, err_msg=name)


def test_a_degree_4_splat_is_drawn_from_bands_1_to_3_and_turning_it_is_one_message():
    from backend.errors import UserError

    splat = random_splat(50, 4)
    directions = np.tile([0.0, 0.0, 1.0], (50, 1))
    first_bands = sh_colors(splat.sh_dc, splat.sh_rest[:, :15], directions)
    np.testing.assert_allclose(sh_colors(splat.sh_dc, splat.sh_rest, directions), first_bands)
    turn = np.eye(4)
    turn[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    with pytest.raises(UserError, match="SH degree 4"):
        transform_splat(splat, turn)
