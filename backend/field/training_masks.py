"""The masks a run learns from, whatever their source: the one entry that owns the sources and both caches.

Masks from images (SAM, a folder, colour segments) are made per picture by scene/masks.py, which caches each
picture's. The geometric masks are the splat's 3D groups (geometric_masks.py), cached per splat geometry and
cameras, drawn into the views as label maps cached under the same key; the groups are also a field at once
(lifted.py). A run asks this for its first field, its groups' field and its label maps, and never for a cache.
"""

from __future__ import annotations

from pathlib import Path

from ..formats.features import FeatureField, geometry_fingerprint
from ..scene.masks import (
    mask_source_description,
    store_groups,
    store_label_maps,
    stored_groups,
    stored_label_maps,
    view_labels,
)
from .geometric_masks import GaussianGroups, gaussian_groups, geometric_labels, sampled_groups
from .lifted import lifted_field
from .view_weights import ViewWeights


class TrainingMasks:
    """The masks of one source ("sam", "folder", "felzenszwalb", "geometric") with its `settings`, cached in
    `cache` (a folder) for the one splat and cameras a run has."""

    def __init__(self, source: str, settings: dict, cache: Path):
        self.source, self.settings, self.cache = source, settings, cache
        self.description = mask_source_description(source, **settings)
        self._key: dict | None = None  # the groups' key (the splat's geometry, the cameras), hashed once
        self._groups: GaussianGroups | None = None

    @property
    def geometric(self) -> bool:
        return self.source == "geometric"

    def key(self, splat, cameras) -> dict:
        if self._key is None:
            self._key = {"splat": geometry_fingerprint(splat), "cameras": [camera.digest() for camera in cameras]}
        return self._key

    def quick_field(self, splat, cameras) -> FeatureField | None:
        """The field of the objects of a sample of the Gaussians (seconds, before any view is rendered), where the
        groups of all of them are not cached; None there, and for masks from images."""
        if not self.geometric or stored_groups(self.cache, self.key(splat, cameras)) is not None:
            return None
        quick = sampled_groups(splat, cameras)
        return lifted_field(quick.coarse, quick.fine, self.key(splat, cameras)["splat"], self.description)

    def groups(self, splat, cameras) -> GaussianGroups:
        """The 3D groups of all the Gaussians: from the cache, else made and cached."""
        if self._groups is None:
            key = self.key(splat, cameras)
            stored = stored_groups(self.cache, key)
            self._groups = GaussianGroups(*stored) if stored is not None else gaussian_groups(splat, cameras)
            if stored is None:
                store_groups(self.cache, key, self._groups.coarse, self._groups.fine, self._groups.ground)
        return self._groups

    def groups_field(self, splat, cameras, final: bool) -> FeatureField:
        """The field of the groups of all the Gaussians: step 0 where training follows, None where it is final."""
        groups = self.groups(splat, cameras)
        key = self.key(splat, cameras)
        return lifted_field(groups.coarse, groups.fine, key["splat"], self.description, None if final else 0)

    def label_maps(self, splat, cameras, images, weights: ViewWeights | None, should_stop=lambda: False) -> list:
        """(coarse (H, W), fine (H, W)) int32 label maps, one per camera (fewer when stopped): the images' masks,
        or the groups drawn with the views' `weights`."""
        if not self.geometric:
            labels = []
            for camera, image in zip(cameras, images):
                if should_stop():
                    break
                labels.append(view_labels(image, camera.name, self.source, **self.settings))
            return labels
        key = self.key(splat, cameras)
        stored = stored_label_maps(self.cache, self.source, key)
        if stored is not None:
            return stored
        drawn = geometric_labels(splat, cameras, should_stop, groups=self.groups(splat, cameras), weights=weights)
        if not should_stop():
            store_label_maps(self.cache, self.source, key, drawn)
        return drawn
