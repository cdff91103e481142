"""Cameras: every format lands in the same OpenCV convention, and bad inputs say what is wrong."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.errors import UserError
from backend.scene.camera import Camera
from backend.scene.cameras import load_cameras
from backend.scene.images import load_images

STATUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "statue"


def axis_angle(axis, degrees):
    """(3, 3) rotation by Rodrigues' formula and its w x y z quaternion, computed independently."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    theta = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    quaternion = (np.cos(theta / 2), *(np.sin(theta / 2) * axis))
    return rotation, quaternion


# Two images with known world-to-camera poses and one shared camera.
POSES = {
    "a.png": (axis_angle([0, 0, 1], 90), np.array([1.0, 2.0, 3.0])),
    "sub/b.png": (axis_angle([1, 2, 3], 40), np.array([-0.5, 0.25, 4.0])),
}
WIDTH, HEIGHT, FX, FY, CX, CY = 40, 30, 50.0, 52.0, 19.5, 15.5


def expected_world_to_camera(name):
    (rotation, _), translation = POSES[name]
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, translation
    return matrix


def write_colmap_text(folder: Path, model="PINHOLE", params=(FX, FY, CX, CY)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(f"# Camera list\n7 {model} {WIDTH} {HEIGHT} {' '.join(map(str, params))}\n")
    lines = ["# Image list with two lines of data per image:"]
    for image_id, (name, ((_, q), t)) in enumerate(POSES.items(), 1):
        lines.append(f"{image_id} {' '.join(repr(float(v)) for v in (*q, *t))} 7 {name}")
        lines.append("" if image_id == 1 else "1.0 2.0 -1 3.0 4.0 5")  # a blank points line is legal
    (folder / "images.txt").write_text("\n".join(lines) + "\n")


def write_colmap_binary(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.bin").write_bytes(
        struct.pack("<Q", 1) + struct.pack("<iiQQ4d", 7, 1, WIDTH, HEIGHT, FX, FY, CX, CY)
    )
    data = struct.pack("<Q", len(POSES))
    for image_id, (name, ((_, q), t)) in enumerate(POSES.items(), 1):
        data += struct.pack("<i7di", image_id, *q, *t, 7) + name.encode() + b"\0"
        data += struct.pack("<Q", 2) + struct.pack("<ddq", 1.0, 2.0, -1) * 2
    (folder / "images.bin").write_bytes(data)


def write_image(path: Path, width=WIDTH, height=HEIGHT, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path)


def check_colmap_cameras(cameras):
    assert [c.name for c in cameras] == ["a.png", "sub/b.png"]
    for camera in cameras:
        assert (camera.width, camera.height) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(camera.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
        np.testing.assert_allclose(camera.world_to_camera, expected_world_to_camera(camera.name), atol=1e-12)


def test_colmap_text_model_gives_the_written_poses_and_intrinsics(tmp_path):
    write_colmap_text(tmp_path / "model")
    check_colmap_cameras(load_cameras(tmp_path / "model"))
    check_colmap_cameras(load_cameras(tmp_path / "model" / "images.txt"))


def test_colmap_binary_model_in_a_sparse_0_layout(tmp_path):
    write_colmap_binary(tmp_path / "scene" / "sparse" / "0")
    check_colmap_cameras(load_cameras(tmp_path / "scene"))


def test_colmap_simple_pinhole_and_radial_models(tmp_path):
    write_colmap_text(tmp_path / "simple", "SIMPLE_PINHOLE", (FX, CX, CY))
    camera = load_cameras(tmp_path / "simple")[0]
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (FX, FX, CX, CY)

    write_colmap_text(tmp_path / "radial", "OPENCV", (FX, FY, CX, CY, 0.1, 0.01, 0.0, 0.0))
    with pytest.warns(UserWarning, match="distortion"):
        camera = load_cameras(tmp_path / "radial")[0]
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (FX, FY, CX, CY)


def test_colmap_fisheye_is_refused(tmp_path):
    write_colmap_text(tmp_path, "OPENCV_FISHEYE", (FX, FY, CX, CY, 0.1, 0, 0, 0))
    with pytest.raises(UserError, match="OPENCV_FISHEYE.*undistort"):
        load_cameras(tmp_path)


def test_blender_camera_in_transforms_json(tmp_path):
    # A Blender camera at (0, -5, 0) rotated 90 degrees about x: it looks along +y, up is +z.
    camera_to_world_gl = [[1, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 0], [0, 0, 0, 1]]
    angle = 0.6
    meta = {"camera_angle_x": angle, "frames": [{"file_path": "./train/r_0", "transform_matrix": camera_to_world_gl}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    write_image(tmp_path / "train" / "r_0.png", 80, 60)  # no w/h in the file: the image says

    (camera,) = load_cameras(tmp_path)
    assert camera.name == "train/r_0.png"
    assert (camera.width, camera.height, camera.cx, camera.cy) == (80, 60, 40.0, 30.0)
    assert camera.fx == pytest.approx(40 / np.tan(angle / 2)) and camera.fy == camera.fx
    np.testing.assert_allclose(camera.center, [0, -5, 0], atol=1e-12)
    pixels, depth = camera.project(np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1]]))
    assert depth == pytest.approx([5, 5, 5])  # in front of the camera
    np.testing.assert_allclose(pixels[0], [40, 30], atol=1e-9)  # the origin: image centre
    assert pixels[1][0] > 40 and pixels[2][1] < 30  # world +x is to the right, world +z (up) is up


def test_transforms_json_with_per_frame_intrinsics(tmp_path):
    meta = {
        "w": 100,
        "h": 50,
        "frames": [
            {
                "file_path": "images/x.jpg",
                "fl_x": 70,
                "fl_y": 71,
                "cx": 48,
                "cy": 26,
                "w": 96,
                "h": 52,
                "transform_matrix": np.eye(4).tolist(),
            }
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(meta))
    (camera,) = load_cameras(tmp_path / "t.json")
    assert (camera.name, camera.width, camera.height) == ("images/x.jpg", 96, 52)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (70, 71, 48, 26)
    np.testing.assert_allclose(camera.world_to_camera, np.diag([1.0, -1.0, -1.0, 1.0]))


def test_llff_poses_from_a_known_opencv_pose(tmp_path):
    rotation, _ = axis_angle([0.3, -1, 0.2], 25)
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3], camera_to_world[:3, 3] = rotation, [0.5, -1.5, 2.0]
    # LLFF columns are (down, right, backwards) = OpenCV (y, x, -z).
    llff = np.stack([rotation[:, 1], rotation[:, 0], -rotation[:, 2], camera_to_world[:3, 3], [30, 40, 45]], axis=1)
    row = np.concatenate([llff.ravel(), [0.1, 10]])
    rows = np.stack([row, row])  # a second camera (b.png): every camera needs a real size and focal length
    np.save(tmp_path / "poses_bounds.npy", rows)
    write_image(tmp_path / "images" / "b.png")
    write_image(tmp_path / "images" / "a.png")

    cameras = load_cameras(tmp_path / "poses_bounds.npy")  # images/ beside the file by default
    assert [c.name for c in cameras] == ["a.png", "b.png"]
    first = cameras[0]
    assert (first.width, first.height, first.fx, first.fy, first.cx, first.cy) == (40, 30, 45, 45, 20, 15)
    np.testing.assert_allclose(first.camera_to_world, camera_to_world, atol=1e-12)


def test_ray_passes_through_the_projected_point_and_scaling_keeps_pixels_consistent():
    camera = Camera("x.png", WIDTH, HEIGHT, FX, FY, CX, CY, expected_world_to_camera("sub/b.png"))
    point = np.array([0.3, -0.2, 1.0])
    (pixel,), _ = camera.project(point[None])
    origin, direction = camera.ray(*pixel)
    assert np.linalg.norm(direction) == pytest.approx(1)
    np.testing.assert_allclose(origin, camera.center)
    np.testing.assert_allclose(np.cross(point - origin, direction), 0, atol=1e-12)  # the point is on the ray
    assert np.dot(point - origin, direction) > 0

    half = camera.scaled(0.5)
    assert (half.width, half.height) == (20, 15)
    (half_pixel,), _ = half.project(point[None])
    np.testing.assert_allclose(half_pixel, pixel / 2)
    np.testing.assert_allclose(camera.scaled(1 / 3).project(point[None])[0][0], pixel * [13 / 40, 10 / 30])


def test_load_images_matches_names_and_subfolders(tmp_path):
    write_colmap_text(tmp_path / "model")
    write_image(tmp_path / "images" / "A.PNG")  # extension and case tolerated
    write_image(tmp_path / "images" / "sub" / "b.png")
    (tmp_path / "images" / "masks").mkdir()
    write_image(tmp_path / "images" / "masks" / "a.png")  # a folder no camera names is not searched
    cameras, images = load_images(tmp_path / "images", load_cameras(tmp_path / "model"))
    assert [image.shape for image in images] == [(HEIGHT, WIDTH, 3)] * 2
    assert images[0].dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.asarray(Image.open(tmp_path / "images" / "A.PNG")))


def test_load_images_downscale_and_smaller_image_folders(tmp_path):
    camera = Camera("a.png", WIDTH, HEIGHT, FX, FY, CX, CY, np.eye(4))
    write_image(tmp_path / "full" / "a.png", mode="RGBA")
    (small,), (image,) = load_images(tmp_path / "full", [camera], downscale=2)
    assert image.shape == (15, 20, 3) and (small.width, small.height, small.fx) == (20, 15, FX / 2)

    write_image(tmp_path / "images_2" / "a.png", 20, 15)  # already half size: the camera follows
    (small,), (image,) = load_images(tmp_path / "images_2", [camera])
    assert image.shape == (15, 20, 3) and (small.width, small.height, small.cx) == (20, 15, CX / 2)


def test_missing_path_and_unknown_format_name_the_path(tmp_path):
    with pytest.raises(UserError, match="nothing_here.*no such file"):
        load_cameras(tmp_path / "nothing_here")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt.*not a known camera file"):
        load_cameras(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="no cameras found"):
        load_cameras(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="broken.json"):
        load_cameras(tmp_path / "broken.json")


def test_truncated_colmap_binary_is_a_user_error(tmp_path):
    write_colmap_binary(tmp_path)
    data = (tmp_path / "images.bin").read_bytes()
    (tmp_path / "images.bin").write_bytes(data[:40])
    with pytest.raises(UserError, match="images.bin.*ends"):
        load_cameras(tmp_path)


def test_name_mismatch_lists_both_sides(tmp_path):
    cameras = [Camera(n, WIDTH, HEIGHT, FX, FY, CX, CY, np.eye(4)) for n in ("a.png", "b.png")]
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "c.png")
    with pytest.raises(UserError, match=r"1 camera has no image \(b.png\); 1 image has no camera \(c.png\)"):
        load_images(tmp_path, cameras)


def test_wrong_size_and_unreadable_images_name_the_file(tmp_path):
    camera = Camera("a.png", WIDTH, HEIGHT, FX, FY, CX, CY, np.eye(4))
    write_image(tmp_path / "a.png", WIDTH + 1, HEIGHT)
    with pytest.raises(UserError, match=r"a.png: the image is 41x30 but its camera is 40x30"):
        load_images(tmp_path, [camera])
    (tmp_path / "a.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match=r"a.png: cannot read the image"):
        load_images(tmp_path, [camera])


def test_llff_needs_as_many_images_as_poses(tmp_path):
    np.save(tmp_path / "poses_bounds.npy", np.zeros((3, 17)))
    write_image(tmp_path / "images" / "a.png")
    with pytest.raises(UserError, match="3 poses but 1 images"):
        load_cameras(tmp_path / "poses_bounds.npy")


@pytest.mark.skipif(not STATUE.is_dir(), reason="../shared/data/statue is absent")
def test_statue_cameras_see_the_colmap_points():
    cameras = load_cameras(STATUE / "poses_bounds.npy", images_dir=STATUE / "images")
    assert len(cameras) == 29
    assert all((c.width, c.height) == (1008, 756) for c in cameras)
    points, seen_by = [], []
    for line in (STATUE / "points3D.txt").read_text().splitlines():
        if not line.startswith("#"):
            values = line.split()
            points.append([float(v) for v in values[1:4]])
            seen_by.append({int(i) for i in values[8::2]})  # COLMAP image ids: 1.. in name order
    points = np.array(points)  # (N, 3)
    for index, camera in enumerate(cameras):
        pixels, depth = camera.project(points)
        inside = (depth > 0) & np.all((pixels >= 0) & (pixels < [camera.width, camera.height]), axis=1)
        observed = np.array([index + 1 in ids for ids in seen_by])
        assert np.all(depth > 0), camera.name  # the whole cloud is in front of every camera
        assert inside[observed].mean() > 0.99, camera.name  # what this photo saw lands in it
        assert inside.mean() > 0.5, camera.name  # and most of the scene is in view

    fitted, images = load_images(STATUE / "images", cameras, downscale=4)  # the photos fit their cameras
    assert [image.shape for image in images] == [(189, 252, 3)] * 29 and fitted[0].fx == cameras[0].fx / 4
