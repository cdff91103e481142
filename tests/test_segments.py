"""Segments out: `segment --everything` writes one file per segment, Export writes Segment IDs columns, and Export
Segments writes a folder of files in real Blender; each time the files together are the splat."""

from __future__ import annotations

import numpy as np
import pytest
from test_addon_io import import_splat
from test_cli import assert_user_error, backend

from backend.formats import read_splat
from backend.formats.ply import read_ply


def same_gaussians(parts, whole) -> bool:
    """The parts' rows together are the whole's, bit for bit, in any order."""
    rows = np.concatenate([part.stack(whole.columns) for part in parts])
    return len(rows) == whole.count and np.array_equal(
        np.unique(rows, axis=0), np.unique(whole.stack(whole.columns), axis=0)
    )


def test_everything_writes_one_file_per_object_and_together_they_are_the_splat(trained_scene, tmp_path):
    folder, scene = trained_scene["folder"], trained_scene["scene"]
    done = backend(
        "segment",
        "--splat",
        folder / "splat.ply",
        "--features",
        folder / "features.npz",
        "--everything",
        "--out-dir",
        tmp_path / "segments",
    )
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "segments").iterdir())
    parts = [read_ply(path) for path in files]
    assert same_gaussians(parts, scene.splat)
    segments = [p for path, p in zip(files, parts) if path.name.startswith("segment_")]
    assert len(segments) >= len(scene.object_names) - 1  # the objects found: each one file
    row_of = {row.tobytes(): i for i, row in enumerate(scene.splat.stack(scene.splat.columns))}
    for part in segments:  # each file is mostly one object
        ids = scene.object_ids[[row_of[row.tobytes()] for row in part.stack(scene.splat.columns)]]
        assert np.bincount(ids).max() / len(ids) >= 0.9


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--everything", "--out-dir", "out"], "--features is needed with --everything"),
        (["--everything", "--features", "f.npz", "--out", "x.ply"], "--out does not go with --everything"),
        (["--floaters", "--everything", "--out", "x.ply"], "--floaters and --everything are two ways of selecting"),
    ],
)
def test_everything_refuses_what_it_cannot_do_with_one_message(trained_scene, tmp_path, arguments, message):
    folder = trained_scene["folder"]
    arguments = [
        str(folder / "features.npz") if a == "f.npz" else str(tmp_path / a) if a in ("out", "x.ply") else a
        for a in arguments
    ]
    assert_user_error(backend("segment", "--splat", folder / "splat.ply", *arguments), message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.ply").exists()


@pytest.mark.blender
def test_segment_ids_are_the_clusters_and_survive_a_round_trip(bpy, addon, splat_with_features, tmp_path):
    obj = splat_with_features
    settings = bpy.context.scene.clickgauss
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "ids.ply"), segment_ids=True) == {"FINISHED"}
    written = read_ply(tmp_path / "ids.ply")
    for level, threshold in (("coarse", settings.threshold_coarse), ("fine", settings.threshold_fine)):
        labels = addon.edit_operators.cluster_labels(obj, threshold, level)
        assert np.array_equal(written.columns[f"segment_{level}"], labels) and len(np.unique(labels)) > 2
        assert written.columns[f"segment_{level}"].dtype == np.int32
    again = import_splat(bpy, tmp_path / "ids.ply")
    bpy.context.view_layer.objects.active = again
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "again.ply")) == {"FINISHED"}
    assert (tmp_path / "again.ply").read_bytes() == (tmp_path / "ids.ply").read_bytes()


@pytest.mark.blender
def test_export_segments_writes_a_folder_whose_files_together_are_the_export(bpy, splat_with_features, tmp_path):
    obj = splat_with_features
    obj.location = (1.0, 2.0, 3.0)  # placed as it stands
    bpy.context.view_layer.update()
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "whole.ply")) == {"FINISHED"}
    (tmp_path / "segments").mkdir()
    done = bpy.ops.clickgauss.export_segments(directory=str(tmp_path / "segments"), file_format=".ply")
    assert done == {"FINISHED"}
    files = sorted((tmp_path / "segments").iterdir())
    assert len(files) > 2 and any(path.name == "segment_00.ply" for path in files)
    assert same_gaussians([read_splat(path) for path in files], read_ply(tmp_path / "whole.ply"))
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.clickgauss.export_segments(directory=str(tmp_path / "missing"))
