"""The scene's Click-Gaussian settings: click level and thresholds, training inputs and progress."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from . import click_cache, click_session, feature_store, selection_tools
from .backend.for_blender import ATTRIBUTES, DEFAULT_STRENGTH, DEFAULT_THRESHOLDS, DEVICE_DEFAULTS, SETTINGS, Level


def threshold_changed(settings, context):
    """The slider updates the selection live: the click session's clicks are replayed."""
    obj = context.active_object
    if obj is not None and feature_store.has_features(obj) and click_cache.in_session(obj):
        click_session.reapply(obj, settings.click_level, settings.threshold)


def attribute_bound(name: str, description: str, default: float, high: float | None = None) -> dict:
    """A FloatProperty's arguments for one end of a Select by Attribute range (the selection follows it)."""
    bounds = {"min": 0.0} if high is None else {"min": 0.0, "max": high}
    return dict(name=name, description=description, default=default, update=selection_tools.rule_changed, **bounds)


class ClickGaussSettings(bpy.types.PropertyGroup):
    level: EnumProperty(
        name="Level",
        items=[("COARSE", "Coarse", "Select whole objects"), ("FINE", "Fine", "Select parts of objects")],
        default="COARSE",
        update=threshold_changed,
    )
    threshold_coarse: FloatProperty(
        name="Threshold",
        description="Cosine similarity to the clicked feature above which a Gaussian is selected",
        default=DEFAULT_THRESHOLDS["coarse"],
        min=-1.0,
        max=1.0,
        step=1,
        update=threshold_changed,
    )
    threshold_fine: FloatProperty(
        name="Threshold",
        description="Cosine similarity to the clicked feature above which a Gaussian is selected",
        default=DEFAULT_THRESHOLDS["fine"],
        min=-1.0,
        max=1.0,
        step=1,
        update=threshold_changed,
    )
    floater_strength: FloatProperty(
        name="Strength",
        description="How readily Select Floaters takes a Gaussian: 0 takes none, 1 every one; "
        "the selection follows the slider while it is still the one Select Floaters made",
        default=DEFAULT_STRENGTH,
        min=0.0,
        max=1.0,
        step=1,
        update=selection_tools.rule_changed,
    )
    select_attribute: EnumProperty(
        name="Attribute",
        items=[
            (key, key.title().replace("Color", "Colour"), f"Select by {words}") for key, words in ATTRIBUTES.items()
        ],
        update=selection_tools.rule_changed,
    )
    select_mode: EnumProperty(
        name="Mode",
        description="How Select Floaters and Select by Attribute change the selection",
        items=[
            ("SET", "Set", "Replace the selection"),
            ("ADD", "Add", "Add to the selection"),
            ("SUBTRACT", "Subtract", "Take from the selection"),
        ],
        update=selection_tools.rule_changed,
    )
    opacity_low: FloatProperty(**attribute_bound("From", "Opacity, 0 (transparent) to 1", 0.0, 1.0))
    opacity_high: FloatProperty(**attribute_bound("To", "Opacity, 0 (transparent) to 1", 0.1, 1.0))
    size_low: FloatProperty(**attribute_bound("From", "Largest standard deviation, in the splat's units", 0.0))
    size_high: FloatProperty(**attribute_bound("To", "Largest standard deviation, in the splat's units", 1.0))
    select_color: FloatVectorProperty(
        name="Colour",
        description="The base colour to select near (sRGB, as the splat stores it)",
        subtype="COLOR_GAMMA",  # the values as stored, shown as they are
        min=0,
        max=1,
        default=(1, 1, 1),
        update=selection_tools.rule_changed,
    )
    color_distance: FloatProperty(
        name="Distance",
        description="How far from the colour a Gaussian's base colour may be (RGB, 0-1 each)",
        min=0,
        max=2,
        default=0.1,
        update=selection_tools.rule_changed,
    )
    images_dir: StringProperty(
        name="Photos", description="The folder of photos the splat was trained from", subtype="DIR_PATH"
    )
    cameras_path: StringProperty(
        name="Cameras", description="COLMAP model folder, transforms.json or LLFF poses_bounds.npy", subtype="FILE_PATH"
    )
    mask_source: EnumProperty(
        name="Masks",
        items=[
            (
                "AUTO",
                "Automatic",
                "SAM when a checkpoint is set in the preferences, else precomputed masks "
                "when a folder is set, else geometric masks from the splat itself",
            ),
            ("SAM", "SAM", "Segment Anything's automatic masks (checkpoint in the preferences)"),
            ("FOLDER", "Folder", "Precomputed masks: a label PNG or .npz per photo"),
            (
                "GEOMETRIC",
                "Geometric",
                "The splat's ground and its 3D-connected groups, drawn into every photo; no model weights needed",
            ),
            (
                "FELZENSZWALB",
                "Colour Segments",
                "Graph-based segmentation of each photo by colour, no model weights needed (lower quality)",
            ),
        ],
        default="AUTO",
    )
    mask_dir: StringProperty(
        name="Mask Folder", description="Precomputed masks, one file per photo", subtype="DIR_PATH"
    )
    iterations: IntProperty(
        name="Iterations",
        description="Training steps; 0: automatic, the paper's 3000 with masks from photos (SAM, a folder, colour "
        "segments) and none with the geometric masks, whose field is lifted from the splat's 3D groups in seconds "
        "(steps asked for refine it)",
        default=0,
        min=0,
        max=int(SETTINGS["iterations"].high),
    )
    downscale: IntProperty(
        name="Downscale",
        description="Train on photos this many times smaller (faster); 0: the "
        "device's default (" + ", ".join(f"{n} {d.downscale}" for n, d in DEVICE_DEFAULTS.items()) + ")",
        default=0,
        min=0,
        max=int(SETTINGS["downscale"].high),
    )
    checkpoint_every: IntProperty(
        name="Checkpoint Every",
        description="Steps between the intermediate fields that Click uses while training "
        "runs; 0: the device's default ("
        + ", ".join(f"{n} {d.checkpoint_every}" for n, d in DEVICE_DEFAULTS.items())
        + ")",
        default=0,
        min=0,
        max=int(SETTINGS["checkpoint_every"].high),
    )
    view_count: IntProperty(
        name="Views",
        description="How many views Plan Views places around (or inside) the scene",
        default=24,
        min=int(SETTINGS["views"].low),
        max=int(SETTINGS["views"].high),
    )
    view_size: IntProperty(
        name="Resolution",
        description="Width in pixels of each view rendered from the splat "
        "(the height follows the scene's render aspect)",
        default=512,
        min=int(SETTINGS["view_size"].low),
        max=int(SETTINGS["view_size"].high),
    )
    use_viewport: BoolProperty(name="Include Viewport", description="Also render the 3D viewport's current view")
    training: BoolProperty(options={"SKIP_SAVE"})
    progress: FloatProperty(name="Progress", subtype="PERCENTAGE", min=0, max=100, options={"SKIP_SAVE"})
    status: StringProperty(options={"SKIP_SAVE"})
    checkpoint_step: IntProperty(
        default=-1, options={"SKIP_SAVE"}
    )  # the intermediate field's step (0: lifted); -1: none

    def attribute_range(self, attribute: str) -> tuple[float, float]:
        """The range Select by Attribute takes for `attribute`: COLOR's is the distance from the colour."""
        if attribute == "OPACITY":
            return self.opacity_low, self.opacity_high
        if attribute == "SIZE":
            return self.size_low, self.size_high
        return 0.0, self.color_distance

    @property
    def click_level(self) -> Level:
        """The Level enum ("COARSE" / "FINE") as the backend's level."""
        return "fine" if self.level == "FINE" else "coarse"

    @property
    def threshold(self) -> float:
        return self.threshold_of(self.click_level)

    def threshold_of(self, level: Level) -> float:
        return self.threshold_coarse if level == "coarse" else self.threshold_fine


classes = (ClickGaussSettings,)


def register():
    bpy.types.Scene.clickgauss = bpy.props.PointerProperty(type=ClickGaussSettings)


def unregister():
    del bpy.types.Scene.clickgauss
