"""Masks per view: two-level label maps, the three sources, their errors, and the disk cache."""

import time

import numpy as np
import pytest
from PIL import Image

from backend.errors import UserError
from backend.scene import masks as M

H, W = 24, 32


def box(y0, y1, x0, x1, h=H, w=W):
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def two_rectangles(h=96, w=128):
    """A grey background with a red and a blue flat rectangle: the fallback must tell them apart."""
    image = np.full((h, w, 3), 128, np.uint8)
    image[10:50, 10:50] = (220, 30, 30)
    image[40:90, 70:120] = (30, 30, 220)
    return image


# --- two_level_labels ------------------------------------------------------------------------


def test_nested_masks_coarse_takes_larger_fine_takes_smaller():
    part = box(4, 8, 4, 8)
    whole = box(2, 12, 2, 20)
    for masks, whole_index, part_index in (([whole, part], 0, 1), ([part, whole], 1, 0)):
        coarse, fine = M.two_level_labels(np.array(masks))
        assert coarse.dtype == np.int32 and fine.dtype == np.int32
        assert coarse.shape == fine.shape == (H, W)
        assert (coarse[whole] == whole_index).all()
        assert (fine[part] == part_index).all()
        assert (fine[whole & ~part] == whole_index).all()
        assert (coarse[~whole] == M.NO_MASK).all() and (fine[~whole] == M.NO_MASK).all()


def test_disjoint_masks_and_uncovered_pixels():
    a, b = box(0, 5, 0, 5), box(10, 20, 10, 30)
    coarse, fine = M.two_level_labels(np.array([a, b]))
    np.testing.assert_array_equal(coarse, fine)
    assert (coarse[a] == 0).all() and (coarse[b] == 1).all()
    assert (coarse[~(a | b)] == -1).all()


def test_partial_overlap_and_equal_areas():
    a, b = box(0, 10, 0, 10), box(5, 15, 5, 15)  # same area: the lower index wins at both levels
    c = box(0, 24, 0, 5)  # larger than a (120 > 100), overlapping a's left columns
    coarse, fine = M.two_level_labels(np.array([a, b, c]))
    assert coarse[7, 7] == 0 and fine[7, 7] == 0
    assert coarse[2, 2] == 2 and fine[2, 2] == 0
    assert coarse[12, 12] == 1 and fine[12, 12] == 1


def test_no_masks_gives_all_ignored():
    coarse, fine = M.two_level_labels(np.zeros((0, H, W), bool))
    assert (coarse == -1).all() and (fine == -1).all() and coarse.shape == (H, W)


def test_two_level_labels_is_fast():
    rng = np.random.default_rng(0)
    masks = np.zeros((100, 378, 504), bool)
    for mask in masks:
        y, x = rng.integers(0, 300), rng.integers(0, 400)
        mask[y : y + rng.integers(5, 200), x : x + rng.integers(5, 200)] = True
    M.two_level_labels(masks)
    start = time.perf_counter()
    coarse, fine = M.two_level_labels(masks)
    assert time.perf_counter() - start < 0.2
    areas = masks.sum(axis=(1, 2))
    covered = masks.any(axis=0)
    # every covered pixel: coarse label is a largest covering mask, fine a smallest
    cover_areas = np.where(masks, areas[:, None, None], 0)
    assert (areas[coarse[covered]] == cover_areas.max(axis=0)[covered]).all()
    cover_areas = np.where(masks, areas[:, None, None], np.iinfo(np.int64).max)
    assert (areas[fine[covered]] == cover_areas.min(axis=0)[covered]).all()


# --- source (b): precomputed masks ---------------------------------------------------------------


@pytest.mark.parametrize("dtype, values", [(np.uint8, (7, 200)), (np.uint16, (3, 40000))])
def test_label_png_round_trip(tmp_path, dtype, values):
    labels = np.zeros((H, W), dtype)
    labels[2:10, 2:10] = values[0]
    labels[12:20, 5:30] = values[1]
    Image.fromarray(labels).save(tmp_path / "frame_001.png")
    image = np.zeros((H, W, 3), np.uint8)
    found = M.view_masks(image, "frame_001.jpg", "folder", mask_dir=tmp_path)
    assert found.masks.shape == (2, H, W) and found.scores is None
    np.testing.assert_array_equal(found.masks[0], labels == values[0])
    np.testing.assert_array_equal(found.masks[1], labels == values[1])
    coarse, fine = M.view_labels(image, "frame_001.jpg", "folder", mask_dir=tmp_path)
    np.testing.assert_array_equal(coarse, np.where(labels == 0, -1, (labels == values[1]).astype(int)))
    np.testing.assert_array_equal(coarse, fine)


def test_npz_round_trip(tmp_path):
    masks = np.array([box(0, 20, 0, 30), box(2, 6, 2, 6)])
    np.savez_compressed(tmp_path / "view.npz", masks=masks, scores=np.array([0.9, 0.95]))
    found = M.view_masks(np.zeros((H, W, 3), np.uint8), "view.png", "folder", mask_dir=str(tmp_path))
    np.testing.assert_array_equal(found.masks, masks)
    np.testing.assert_allclose(found.scores, [0.9, 0.95])
    coarse, fine = M.view_labels(np.zeros((H, W, 3), np.uint8), "view.png", "folder", mask_dir=tmp_path)
    assert coarse[3, 3] == 0 and fine[3, 3] == 1 and coarse[21, 0] == -1


def write_bad(path, kind):
    if kind == "corrupt png":
        path.write_bytes(b"\x89PNG not really")
    elif kind == "rgb png":
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    elif kind == "wrong size png":
        Image.fromarray(np.ones((H + 1, W), np.uint8)).save(path)
    elif kind == "corrupt npz":
        path.write_bytes(b"PK\x03\x04 truncated")
    elif kind == "npz without masks":
        np.savez(path, labels=np.zeros((H, W)))
    elif kind == "npz 2-d masks":
        np.savez(path, masks=np.zeros((H, W), bool))
    elif kind == "npz non-binary masks":
        np.savez(path, masks=np.full((1, H, W), 2, np.uint8))
    elif kind == "npz wrong size":
        np.savez(path, masks=np.zeros((1, H, W + 3), bool))
    elif kind == "npz bad scores":
        np.savez(path, masks=np.zeros((2, H, W), bool), scores=np.zeros(3))


@pytest.mark.parametrize(
    "kind, suffix, words",
    [
        ("corrupt png", ".png", "cannot be read"),
        ("rgb png", ".png", "single-channel"),
        ("wrong size png", ".png", f"{W}x{H + 1}"),
        ("corrupt npz", ".npz", "cannot be read"),
        ("npz without masks", ".npz", "'masks'"),
        ("npz 2-d masks", ".npz", "(M, H, W)"),
        ("npz non-binary masks", ".npz", "boolean"),
        ("npz wrong size", ".npz", f"{W + 3}x{H}"),
        ("npz bad scores", ".npz", "'scores'"),
    ],
)
def test_bad_mask_files_name_the_file(tmp_path, kind, suffix, words):
    path = tmp_path / f"img{suffix}"
    write_bad(path, kind)
    with pytest.raises(UserError) as error:
        M.view_labels(np.zeros((H, W, 3), np.uint8), "img.jpg", "folder", mask_dir=tmp_path)
    assert str(path) in str(error.value) and words in str(error.value)
    if "wrong size" in kind:
        assert f"{W}x{H}" in str(error.value)  # both sizes


def test_missing_ambiguous_and_folder_errors(tmp_path):
    image = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(UserError, match="no mask file for image a.jpg"):
        M.view_labels(image, "a.jpg", "folder", mask_dir=tmp_path)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "a.png")
    np.savez(tmp_path / "a.npz", masks=np.zeros((1, H, W), bool))
    with pytest.raises(UserError, match="both a.png and a.npz"):
        M.view_labels(image, "a.jpg", "folder", mask_dir=tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        M.view_labels(image, "a.jpg", "folder", mask_dir=tmp_path / "nowhere")


def test_empty_label_png_means_every_pixel_ignored(tmp_path):
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "a.png")
    coarse, fine = M.view_labels(np.zeros((H, W, 3), np.uint8), "a", "folder", mask_dir=tmp_path)
    assert (coarse == -1).all() and (fine == -1).all()


# --- source (c): the felzenszwalb fallback -----------------------------------------------------


def test_felzenszwalb_separates_two_rectangles():
    image = two_rectangles()
    found = M.view_masks(image, "synthetic.png", "felzenszwalb")
    assert found.source == M.FELZENSZWALB_SOURCE and "lower quality" in found.source
    coarse, fine = M.two_level_labels(found.masks)
    red, blue = coarse[15:45, 15:45], coarse[45:85, 75:115]  # interiors, away from the edges
    background = coarse[92:, :60]
    for region in (red, blue, background):
        assert len(np.unique(region)) == 1 and region[0, 0] != -1
    assert len({red[0, 0], blue[0, 0], background[0, 0]}) == 3
    assert fine[30, 30] != fine[60, 100]
    assert M.mask_source_description("felzenszwalb") == M.FELZENSZWALB_SOURCE


def test_felzenszwalb_bad_scales():
    with pytest.raises(UserError, match="fine_scale"):
        M.view_labels(two_rectangles(), "x", "felzenszwalb", coarse_scale=10, fine_scale=50)


# --- the disk cache ------------------------------------------------------------------------------


def test_cache_computes_once_per_image(tmp_path, monkeypatch):
    calls = []
    original = M._felzenszwalb_masks

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(M, "_felzenszwalb_masks", counting)
    image = two_rectangles()
    first = M.view_labels(image, "a.png", "felzenszwalb", cache_dir=tmp_path)
    second = M.view_labels(image.copy(), "renamed.png", "felzenszwalb", cache_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind

    M.view_labels(image[::-1].copy(), "b.png", "felzenszwalb", cache_dir=tmp_path)  # new content
    M.view_labels(image, "a.png", "felzenszwalb", cache_dir=tmp_path, fine_scale=50)  # new setting
    assert len(calls) == 3 and len(list(tmp_path.iterdir())) == 3

    files[0].write_bytes(b"garbage")  # a broken cache file is recomputed and rewritten
    again = M.view_labels(image, "a.png", "felzenszwalb", cache_dir=tmp_path)
    assert len(calls) == 4
    np.testing.assert_array_equal(again[0], first[0])
    M.view_labels(image, "a.png", "felzenszwalb", cache_dir=tmp_path)
    assert len(calls) == 4


def test_cached_masks_keeps_scores_and_source(tmp_path):
    masks = M.MaskSet(np.array([box(0, 3, 0, 3), box(1, 24, 0, 32)]), np.array([0.5, 0.75], np.float32), "made by hand")
    image = np.zeros((H, W, 3), np.uint8)
    M.cached_masks(tmp_path, image, "test", {"a": 1}, lambda: masks)
    back = M.cached_masks(tmp_path, image, "test", {"a": 1}, lambda: pytest.fail("recomputed"))
    np.testing.assert_array_equal(back.masks, masks.masks)
    np.testing.assert_array_equal(back.scores, masks.scores)
    assert back.source == "made by hand"


def test_label_maps_are_kept_per_settings_and_a_broken_file_is_recomputed(tmp_path):
    labels = [(np.full((H, W), view, np.int32), np.arange(H * W, dtype=np.int32).reshape(H, W)) for view in range(3)]
    M.store_label_maps(tmp_path, "geometric", {"cameras": ["a", "b", "c"]}, labels)
    back = M.stored_label_maps(tmp_path, "geometric", {"cameras": ["a", "b", "c"]})
    assert len(back) == 3
    for (coarse, fine), (kept_coarse, kept_fine) in zip(labels, back):
        np.testing.assert_array_equal(kept_coarse, coarse)
        np.testing.assert_array_equal(kept_fine, fine)
    assert M.stored_label_maps(tmp_path, "geometric", {"cameras": ["a", "b", "moved"]}) is None
    (path,) = tmp_path.iterdir()  # no temporary file left behind
    path.write_bytes(b"garbage")
    assert M.stored_label_maps(tmp_path, "geometric", {"cameras": ["a", "b", "c"]}) is None


# --- source (a): SAM, as far as it runs without weights ---------------------------------------


def test_sam_missing_checkpoint(tmp_path):
    missing = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(UserError, match="SAM checkpoint .*sam_vit_h_4b8939.pth: no such file"):
        M.view_labels(two_rectangles(), "a.png", "sam", checkpoint=missing)
    with pytest.raises(UserError, match="needs the setting 'checkpoint'"):
        M.view_labels(two_rectangles(), "a.png", "sam")


def test_sam_bad_settings(tmp_path):
    checkpoint = tmp_path / "sam.pth"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="model type 'vit_x' is unknown"):
        M.view_labels(two_rectangles(), "a.png", "sam", checkpoint=checkpoint, model_type="vit_x")
    with pytest.raises(UserError, match="pred_iou_thresh"):
        M.view_labels(two_rectangles(), "a.png", "sam", checkpoint=checkpoint, pred_iou_thresh=1.5)


def test_sam_unloadable_checkpoint_or_missing_package_is_a_user_error(tmp_path):
    """Here segment_anything cannot import (no torchvision); elsewhere the file fails to load."""
    checkpoint = tmp_path / "sam.pth"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as error:
        M.view_labels(two_rectangles(), "a.png", "sam", checkpoint=checkpoint, device="cpu")
    message = str(error.value)
    assert "needs the Python package" in message or ("sam.pth" in message and "cannot be loaded" in message)


def test_sam_plumbing_with_a_fake_generator(tmp_path, monkeypatch):
    """Everything around SAM, with a stand-in for segment_anything: settings, scores, cache."""
    built = []

    class FakeModel:
        def to(self, device):
            return self

        def eval(self):
            return self

    class FakeGenerator:
        def __init__(self, model, **settings):
            built.append(settings)

        def generate(self, image):
            h, w = image.shape[:2]
            return [
                {"segmentation": box(0, h, 0, w // 2, h, w), "predicted_iou": 0.9},
                {"segmentation": box(0, h // 2, 0, w // 4, h, w), "predicted_iou": 0.95},
            ]

    monkeypatch.setattr(
        M, "_import_segment_anything", lambda: ({"vit_b": lambda checkpoint: FakeModel()}, FakeGenerator)
    )
    monkeypatch.setattr(M, "_SAM_CACHE", {})
    checkpoint = tmp_path / "sam_vit_b.pth"
    checkpoint.write_bytes(b"weights")
    options = dict(
        checkpoint=checkpoint,
        model_type="vit_b",
        stability_score_thresh=0.9,
        device="cpu",
        cache_dir=tmp_path / "cache",
    )
    image = two_rectangles()
    found = M.view_masks(image, "a.png", "sam", **options)
    assert built == [
        {"points_per_side": 32, "pred_iou_thresh": 0.88, "stability_score_thresh": 0.9, "output_mode": "binary_mask"}
    ]
    np.testing.assert_allclose(found.scores, [0.9, 0.95])
    coarse, fine = M.view_labels(image, "b.png", "sam", **options)  # from the cache
    assert coarse[0, 0] == 0 and fine[0, 0] == 1 and coarse[0, -1] == -1
    assert len(built) == 1
    description = M.mask_source_description("sam", **options)
    assert "vit_b" in description and "sam_vit_b.pth" in description and "0.9" in description


# --- choosing a source ---------------------------------------------------------------------------


def test_unknown_source_and_setting():
    with pytest.raises(UserError, match="mask source 'clip' is unknown"):
        M.view_labels(two_rectangles(), "a", "clip")
    with pytest.raises(UserError, match="'checkpoint' does not apply to mask source 'felzenszwalb'"):
        M.view_labels(two_rectangles(), "a", "felzenszwalb", checkpoint="x.pth")
    with pytest.raises(UserError, match="needs the setting 'mask_dir'"):
        M.view_labels(two_rectangles(), "a", "folder")


def test_grey_and_rgba_images_are_accepted_and_others_refused(tmp_path):
    Image.fromarray(np.ones((H, W), np.uint8)).save(tmp_path / "a.png")
    for image in (np.zeros((H, W), np.uint8), np.zeros((H, W, 4), np.uint8)):
        coarse, _ = M.view_labels(image, "a", "folder", mask_dir=tmp_path)
        assert (coarse == 0).all()
    with pytest.raises(UserError, match="a: expected an 8-bit"):
        M.view_labels(np.zeros((H, W, 3), np.float32), "a", "folder", mask_dir=tmp_path)


def test_sam_runs_for_real_with_a_random_vit_b(tmp_path):
    """The whole SAM path (checkpoint file, model, automatic mask generator, labels) where torchvision loads: on a
    lent GPU machine, not on the CI machine. Random weights: the point is that it runs, not what it finds."""
    pytest.importorskip("torchvision")
    segment_anything = pytest.importorskip("segment_anything")
    import torch

    from backend.device import resolve_device, sam_device

    torch.manual_seed(0)
    torch.save(segment_anything.sam_model_registry["vit_b"]().state_dict(), tmp_path / "random_vit_b.pth")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    coarse, fine = M.view_labels(
        image,
        "random.png",
        "sam",
        checkpoint=tmp_path / "random_vit_b.pth",
        model_type="vit_b",
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        device=sam_device(resolve_device()),
    )
    assert coarse.shape == fine.shape == (48, 64) and coarse.dtype == fine.dtype


def test_masks_of_the_full_photo_serve_a_downscaled_one(tmp_path):
    labels = np.zeros((120, 160), np.uint8)
    labels[20:60, 40:100] = 1  # one mask, at full resolution
    Image.fromarray(labels).save(tmp_path / "view.png")
    (mask,) = M.read_mask_file(tmp_path / "view.png", (60, 80)).masks  # training at --downscale 2
    assert mask.shape == (60, 80) and mask.sum() == 20 * 30 and mask[10:30, 20:50].all()
    with pytest.raises(UserError, match=r"view\.png: the masks are 160x120 \(width x height\) but the image is 70x60"):
        M.read_mask_file(tmp_path / "view.png", (60, 70))
