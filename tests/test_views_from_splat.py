"""Training from a .ply alone: planned views see every object, renders look like the splat, a click selects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from command_line import assert_user_error, backend, inner_pixel
from reference_rasterizer import reference_render

from backend.benchmark.synthetic import Part, make_scene, random_layout, render_views
from backend.cli.protocol import read_progress
from backend.field.rendered_views import render_rgb
from backend.formats.ply import read_ply, write_ply
from backend.formats.splat import Splat
from backend.progress import Planning, Rendering
from backend.scene.camera import look_at
from backend.scene.cameras import load_cameras
from backend.scene.view_planning import NEAR_COVER_LIMIT, near_cover, plan_splat_views

MIN_VIEWS, MIN_PIXELS = 4, 150  # every object seen in at least this many views at this many pixels or more


def test_planned_views_see_every_object_from_several_sides():
    scene = make_scene(12_000, seed=7, parts=random_layout(6, seed=7))
    plan = plan_splat_views(scene.splat, count=20, long_side=256)
    assert plan.extent.layout == "object" and len(plan.cameras) == 20
    views = render_views(scene, plan.cameras)
    for index, name in enumerate(scene.object_names[1:], start=1):  # 0 is the ground
        seen = [
            camera for camera, (_, objects, _) in zip(plan.cameras, views) if (objects == index).sum() >= MIN_PIXELS
        ]
        assert len(seen) >= MIN_VIEWS, (name, len(seen))
        centre = scene.splat.positions[scene.object_ids == index].mean(axis=0)
        sides = {int(np.degrees(np.arctan2(*(camera.center - centre)[[2, 0]])) // 90) for camera in seen}
        assert len(sides) >= 3, (name, sides)  # seen from at least three of the four quarters around it


def test_views_are_never_planned_inside_a_cloud_of_floaters():
    scene = make_scene(6000, seed=2)
    plan = plan_splat_views(scene.splat, count=12, long_side=128)
    eye = plan.cameras[0].center
    rng = np.random.default_rng(0)
    floaters = eye + rng.normal(0, 0.3, (300, 3))  # a cloud of floaters where the first view would stand
    cloud = Splat.from_arrays(
        floaters,
        np.zeros((300, 3)),
        np.full(300, 3.0),
        np.full((300, 3), np.log(0.05)),
        np.tile([1.0, 0, 0, 0], (300, 1)),
    )
    both = Splat({k: np.concatenate([scene.splat.columns[k], cloud.columns[k]]) for k in scene.splat.columns})
    again = plan_splat_views(both, count=12, long_side=128)
    # no view looks through them: a camera moved past the cloud, with the floaters behind it, sees a clear frame
    for camera in again.cameras:
        assert np.linalg.norm(camera.center - eye) > 0.3
        covered = near_cover(camera, floaters, np.full(300, 0.95), np.full(300, 0.05), depth_limit=10.0)
        assert covered <= NEAR_COVER_LIMIT, (camera.name, covered)


def scanned_alone(parts: list[Part], z_up: bool) -> Splat:
    """An object scanned with no floor (a turntable, a studio), in a y-down file frame (COLMAP, 3DGS) or z-up."""
    splat = make_scene(4000, seed=3, parts=parts).splat
    if z_up:  # (x, y, z) -> (x, z, -y): the object's up, -y, becomes +z
        x, y, z = (splat.columns[name].copy() for name in ("x", "y", "z"))
        splat.columns["y"], splat.columns["z"] = z, -y
    return splat


STANDING = [  # a person-like column: a head over a body, taller than wide
    Part("figure", "body", "cylinder", (0.0, -0.5, 0.0), (0.18, 0.5, 0), (0.1, 0.3, 0.85)),
    Part("figure", "head", "sphere", (0.0, -1.2, 0.0), (0.16, 0, 0), (0.95, 0.8, 0.65)),
]
LYING = [  # a flat round thing with its top a colour of its own: a cake, a donut, a plate
    Part("cake", "base", "cylinder", (0.0, -0.1, 0.0), (0.5, 0.1, 0), (0.8, 0.7, 0.5)),
    Part("cake", "icing", "cylinder", (0.0, -0.24, 0.0), (0.45, 0.04, 0), (0.9, 0.5, 0.75)),
]


@pytest.mark.parametrize("z_up", [False, True], ids=["y-down file", "z-up file"])
@pytest.mark.parametrize("parts", [STANDING, LYING], ids=["standing", "lying"])
def test_an_object_scanned_without_a_floor_stands_upright_in_every_planned_view(parts, z_up):
    """No floor to say where up is: a tall thing stands on its end, a flat one lies, in the file's own convention."""
    splat = scanned_alone(parts, z_up)
    plan = plan_splat_views(splat, count=12, long_side=128)
    assert not plan.extent.floor
    part_ids = make_scene(4000, seed=3, parts=parts).part_ids
    top, bottom = (splat.positions[part_ids == part].mean(axis=0) for part in (1, 0))  # part 1 sits on part 0
    for camera in plan.cameras:
        (top_pixel, bottom_pixel), _ = camera.project(np.stack([top, bottom]))
        assert top_pixel[1] < bottom_pixel[1], camera.name  # the head, the icing, above the rest in the picture
        assert (0 <= top_pixel).all() and top_pixel[0] < camera.width and top_pixel[1] < camera.height


# The 3DGS code's eval_sh, written out per Gaussian: the reference for the colours of a view.
C0, C1 = 0.28209479177387814, 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
C3 = [
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
]


def eval_sh_degree3(sh, d):
    """sh (16, 3) coefficients of one Gaussian, d (3,) unit direction -> (3,) colour, as 3DGS computes it."""
    x, y, z = d
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    result = C0 * sh[0]
    result = result - C1 * y * sh[1] + C1 * z * sh[2] - C1 * x * sh[3]
    result = (
        result
        + C2[0] * xy * sh[4]
        + C2[1] * yz * sh[5]
        + C2[2] * (2.0 * zz - xx - yy) * sh[6]
        + C2[3] * xz * sh[7]
        + C2[4] * (xx - yy) * sh[8]
    )
    result = (
        result
        + C3[0] * y * (3 * xx - yy) * sh[9]
        + C3[1] * xy * z * sh[10]
        + C3[2] * y * (4 * zz - xx - yy) * sh[11]
        + C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[12]
        + C3[4] * x * (4 * zz - xx - yy) * sh[13]
        + C3[5] * z * (xx - yy) * sh[14]
        + C3[6] * x * (xx - 3 * yy) * sh[15]
    )
    return np.maximum(result + 0.5, 0.0)


def test_a_render_with_sh_degree_3_matches_the_per_pixel_reference():
    rng = np.random.default_rng(4)
    n = 12
    positions = rng.uniform([-1, -1, 2], [1, 1, 4], (n, 3))
    sh = rng.normal(0, 0.6, (n, 16, 3))
    splat = Splat.from_arrays(
        positions,
        sh[:, 0],
        rng.uniform(-1, 3, n),
        np.log(rng.uniform(0.1, 0.5, (n, 3))),
        rng.normal(size=(n, 4)),
        sh_rest=sh[:, 1:],
    )
    assert splat.sh_degree == 3
    for eye in ([0.3, -0.2, -1.0], [2.5, 0.5, 0.0]):  # two views: the colours must follow the direction
        camera = look_at("v.png", eye, [0, 0, 3], 40, 30, 36.0)
        stored = splat.positions.astype(np.float64)
        directions = stored - camera.center
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        stored_sh = np.concatenate([splat.sh_dc[:, None], splat.sh_rest], axis=1).astype(np.float64)
        colors = np.stack([eval_sh_degree3(stored_sh[i], directions[i]) for i in range(n)])
        _, reference, _ = reference_render(
            torch.from_numpy(splat.positions),
            torch.from_numpy(splat.rotations),
            torch.from_numpy(np.exp(splat.scales)),
            torch.from_numpy(splat.alphas),
            torch.from_numpy(colors).float(),
            torch.tensor(camera.world_to_camera, dtype=torch.float32),
            torch.tensor(camera.K, dtype=torch.float32),
            40,
            30,
        )
        expected = (reference.clamp(0, 1) * 255).numpy()
        rendered = render_rgb(splat, camera).astype(np.float64)
        assert np.abs(rendered - expected).max() <= 1.0
        assert (expected.max(axis=2) > 50).mean() > 0.2  # the Gaussians fill a good part of the view


@pytest.fixture(scope="module")
def trained_from_ply(tmp_path_factory):
    """A generated scene's .ply alone, trained by `python -m backend train` with no photos and no cameras; the
    masks are the exact objects and parts of the planned views (what SAM would give), by file name."""
    from backend.benchmark.mask_simulator import PERFECT, simulate_masks

    folder = tmp_path_factory.mktemp("from-ply")
    scene = make_scene(6000, sh_degree=1, seed=3)
    write_ply(folder / "splat.ply", scene.splat)
    views, size = 12, 160
    cameras = plan_splat_views(read_ply(folder / "splat.ply"), views, size).cameras  # as train will plan them
    part_objects = np.array([scene.object_names.index(p.object_name) for p in scene.parts])
    (folder / "masks").mkdir()
    truth = render_views(scene, cameras)
    for index, (camera, (_, objects, parts)) in enumerate(zip(cameras, truth)):
        masks = simulate_masks(objects, parts, part_objects, PERFECT, np.random.default_rng(index))
        np.savez_compressed(folder / "masks" / camera.name.replace(".png", ".npz"), masks=masks)
    result = backend(
        "train",
        "--splat",
        folder / "splat.ply",
        "--out",
        folder / "features.npz",
        "--views",
        views,
        "--view-size",
        size,
        "--mask-dir",
        folder / "masks",
        "--iterations",
        400,
        "--pixels",
        2000,
        "--gfl-start",
        260,
        "--gfl-refresh",
        70,
        "--progress",
        "json",
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr
    write_cameras = folder / "sparse"
    from backend.scene.colmap import write_colmap_text

    write_colmap_text(write_cameras, cameras)
    return {"folder": folder, "scene": scene, "cameras": cameras, "truth": truth, "stdout": result.stdout}


def test_training_from_the_ply_alone_renders_and_caches_its_views(trained_from_ply):
    folder = trained_from_ply["folder"]
    events = [event for event in map(read_progress, trained_from_ply["stdout"].splitlines()) if event is not None]
    assert isinstance(events[0], Planning) and any(isinstance(event, Rendering) for event in events)
    renders = sorted((folder / "features.npz.views").glob("view_*.png"))
    assert len(renders) == len(trained_from_ply["cameras"])
    cached = load_cameras(folder / "features.npz.views" / "sparse" / "0")
    planned = trained_from_ply["cameras"]
    assert [c.name for c in cached] == [c.name for c in planned]
    for got, expected in zip(cached, planned):  # the same views: poses and intrinsics, as written in text
        np.testing.assert_allclose(got.world_to_camera, expected.world_to_camera, atol=1e-6)
        assert (got.width, got.height) == (expected.width, expected.height)
        np.testing.assert_allclose(
            [got.fx, got.fy, got.cx, got.cy], [expected.fx, expected.fy, expected.cx, expected.cy]
        )


def clicked(trained_from_ply, folder_out, level: str, target: str) -> tuple[float, float]:
    """Precision and recall of one click on `target` at `level`, through `segment`, in the view it fills most."""
    folder, scene, truth = trained_from_ply["folder"], trained_from_ply["scene"], trained_from_ply["truth"]
    if level == "coarse":
        index, maps, ids = scene.object_names.index(target), [t[1] for t in truth], scene.object_ids
    else:
        index, maps, ids = [p.part_name for p in scene.parts].index(target), [t[2] for t in truth], scene.part_ids
    view = int(np.argmax([(labels == index).sum() for labels in maps]))
    x, y = inner_pixel(maps[view], index)
    result = backend(
        "segment",
        "--splat",
        folder / "splat.ply",
        "--cameras",
        folder / "sparse",
        "--features",
        folder / "features.npz",
        "--view",
        trained_from_ply["cameras"][view].name,
        "--click",
        x,
        y,
        "--level",
        level,
        "--out",
        folder_out / "sel.ply",
    )
    assert result.returncode == 0, result.stderr
    selected = read_ply(folder_out / "sel.ply")
    rows = lambda positions: np.ascontiguousarray(positions).view(np.dtype((np.void, 12))).ravel()  # noqa: E731
    chosen = np.isin(rows(scene.splat.positions), rows(selected.positions))
    return float(np.mean(ids[chosen] == index)), float(np.mean(chosen[ids == index]))


@pytest.fixture(scope="module")
def handle_click(trained_from_ply, tmp_path_factory):
    return clicked(trained_from_ply, tmp_path_factory.mktemp("handle"), "fine", "handle")


def test_a_click_selects_the_object_after_training_from_the_ply_alone(trained_from_ply, tmp_path):
    precision, recall = clicked(trained_from_ply, tmp_path, "coarse", "mug")
    assert precision > 0.9 and recall > 0.9, (precision, recall)


def test_a_click_on_a_part_reaches_what_it_did_after_training_from_the_ply_alone(handle_click):
    precision, recall = handle_click
    assert precision > 0.75 and recall > 0.9, (precision, recall)  # the level reached (the target: strict xfail)


@pytest.mark.xfail(
    strict=True,
    reason="trained from 12 planned views of 160 px, the handle's click also takes body Gaussians (precision 0.81)",
)
def test_a_click_selects_the_part_after_training_from_the_ply_alone(handle_click):
    precision, recall = handle_click
    assert precision > 0.9 and recall > 0.9, (precision, recall)


def test_render_without_cameras_writes_the_planned_views_and_their_cameras(tmp_path):
    write_ply(tmp_path / "splat.ply", make_scene(3000, seed=1).splat)
    result = backend(
        "render", "--splat", tmp_path / "splat.ply", "--views", 6, "--view-size", 96, "--out", tmp_path / "v"
    )
    assert result.returncode == 0, result.stderr
    cameras = load_cameras(tmp_path / "v" / "sparse" / "0")
    assert len(cameras) == 6 and all((tmp_path / "v" / c.name).is_file() for c in cameras)


def flat_or_tiny(kind: str) -> Splat:
    rng = np.random.default_rng(0)
    count = 10 if kind == "tiny" else 2000
    positions = rng.uniform(-1, 1, (count, 3))
    if kind == "plane":
        positions[:, 1] = 0.5
    return Splat.from_arrays(
        positions,
        np.zeros((count, 3)),
        np.full(count, 2.0),
        np.full((count, 3), -3.0),
        np.tile([1.0, 0, 0, 0], (count, 1)),
    )


@pytest.mark.parametrize("kind, message", [("tiny", "too few to plan views"), ("plane", "lie in one plane")])
def test_a_splat_too_small_or_flat_to_plan_views_for_is_refused(tmp_path, kind, message):
    write_ply(tmp_path / "splat.ply", flat_or_tiny(kind))
    result = backend("train", "--splat", tmp_path / "splat.ply", "--out", tmp_path / "f.npz")
    assert_user_error(result, str(tmp_path / "splat.ply"), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splat.ply"]


def test_views_too_large_for_memory_are_refused_before_anything_is_written(tmp_path):
    from backend.errors import UserError
    from backend.field.rendered_views import render_views as render_planned

    splat = make_scene(3000, seed=1).splat
    cameras = plan_splat_views(splat, 8, 128).cameras
    with pytest.raises(UserError, match=r"8 rendered views at 128x96 would need .* use fewer views \(--views\)"):
        render_planned(splat, cameras, tmp_path / "cache", available=100_000)
    assert not (tmp_path / "cache").exists()
