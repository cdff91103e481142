"""Fill a folder with a Python environment for the backend: a venv, then pip installs the backend's pinned packages.

No bpy here: the preferences' Install operator drives an InstallJob from a timer, and the tests drive it directly
with a tiny local wheel in place of torch. A failed or cancelled install puts the folder back as it was, and only
a finished one is marked usable.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .backend.for_blender import UserError
from .child_process import ChildProcess

# No gsplat (the `cuda` list is the developers'): training never rasterizes inside its loop (each view's weights
# are computed once, by the torch rasterizer on the same device), and gsplat's PyPI package compiles its CUDA
# kernels on first use, which needs NVIDIA's CUDA toolkit (nvcc) that most users with a GPU driver lack.
PYPROJECT = Path(__file__).parent / "pyproject.toml"  # the project's one list of packages, carried in the zip
TORCH_INDEX = "https://download.pytorch.org/whl/"
MARKER = "clickgauss-backend.json"  # written first, completed last: the folder is ours, and usable once complete
STEPS = ("creating the environment", "installing the packages", "checking the packages import")
# What an install must import, together in one process, before it is called done: project name -> module. A build
# of torchvision that does not match the torch beside it installs fine and fails on import ("operator
# torchvision::nms does not exist"), and segment-anything with it.
IMPORTED = {
    "torch": "torch",
    "hdbscan": "hdbscan",
    "torchvision": "torchvision",
    "segment-anything": "segment_anything",
}
NEEDED = ("torch", "hdbscan")  # without these nothing trains: the install fails; without the rest SAM cannot run
IMPORT_CHECK = """
import importlib, json, sys
report = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        report[name] = {"version": str(getattr(module, "__version__", "yes"))}
    except Exception as error:
        report[name] = {"error": (str(error).strip().splitlines() or [type(error).__name__])[-1]}
print(json.dumps(report))
"""


@dataclass
class Progress:
    phase: str
    line: str  # the last line the step wrote
    percent: float


def torch_build(choice: str, platform: str = sys.platform) -> str:
    """'cu128' or 'cpu' for the preferences' choice; AUTO means CUDA where an NVIDIA driver (its nvidia-smi) is."""
    if choice == "AUTO":
        choice = "CUDA" if shutil.which("nvidia-smi") else "CPU"
    if choice == "CUDA" and platform == "darwin":
        raise UserError("CUDA builds of torch exist for Linux and Windows only; choose CPU (it uses Apple's MPS)")
    return "cu128" if choice == "CUDA" else "cpu"


def backend_requirements(build: str, platform: str = sys.platform) -> tuple[list[str], list[str]]:
    """The packages and pip's index options for torch built for `build` ('cu128' or 'cpu').

    PyPI's Linux torch carries gigabytes of CUDA libraries and its Windows torch none, so both take torch from
    PyTorch's own index for the build chosen; macOS has only PyPI's (CPU and MPS).
    """
    with open(PYPROJECT, "rb") as file:
        project = tomllib.load(file)["project"]
    packages = [*project["dependencies"], *project["optional-dependencies"]["sam"]]
    return packages, [] if platform == "darwin" else ["--extra-index-url", TORCH_INDEX + build]


def env_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_commands(base_python: str, folder: Path, requirements, pip_options=()) -> list[list[str]]:
    """The steps: a venv made by `base_python` (Blender's own, inside Blender), pip into it, then (where any of
    IMPORTED is asked for) importing those together in the new Python."""
    modules = [IMPORTED[name] for name in map(package_name, requirements) if name in IMPORTED]
    check = [[str(env_python(folder)), "-c", IMPORT_CHECK, *modules]] if modules else []
    return [
        [str(base_python), "-m", "venv", str(folder)],
        [
            str(env_python(folder)),
            "-m",
            "pip",
            "install",
            "--progress-bar",
            "off",
            "--disable-pip-version-check",
            *pip_options,
            *requirements,
        ],
        *check,
    ]


def import_problems(report: dict) -> tuple[str, str]:
    """(why the backend cannot run, why SAM cannot run) from an IMPORT_CHECK report; '' where nothing is wrong."""
    failed = {name: entry["error"] for name, entry in report.items() if "error" in entry}
    needed = "; ".join(f"{name} does not import: {why}" for name, why in failed.items() if name in NEEDED)
    sam = "; ".join(f"{name} does not import: {why}" for name, why in failed.items() if name not in NEEDED)
    return needed, sam


def sam_problem(folder: Path) -> str:
    """Why SAM cannot run in the install in `folder`, as its last import check found; '' if it can or is unknown."""
    try:
        report = json.loads((folder / MARKER).read_text()).get("imports", {})
    except (OSError, ValueError):
        return ""
    return import_problems(report)[1]


def installed(folder: Path) -> bool:
    """Whether `folder` holds an install of ours that ran to its end."""
    try:
        return json.loads((folder / MARKER).read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


def package_name(requirement: str) -> str:
    """The normalised project name of a requirement: 'Segment_Anything==1.0 (from x)' -> 'segment-anything'."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s=<>!~;\[(]", requirement)[0]).lower()


def claim(folder: Path) -> Path | None:
    """Make `folder` ready to install into; returns where a previous install of ours was moved aside, if any.

    A folder with anything else in it is refused: the add-on never deletes what it did not make.
    """
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file: choose a folder for the backend's environment")
    if not folder.exists() or not any(folder.iterdir()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {folder} for the install: {error.strerror or error}") from None
        return None
    if not (folder / MARKER).is_file():
        raise UserError(
            f"{folder} is not empty and holds no environment this add-on installed: choose an empty or new folder"
        )
    aside = folder.with_name(folder.name + ".previous")
    if aside.exists():
        raise UserError(f"{aside} is left from an interrupted install: remove it, or choose another folder")
    try:
        folder.rename(aside)  # kept until the new install ends well, put back if it does not
        folder.mkdir()
    except OSError as error:
        if aside.exists() and not folder.exists():
            aside.rename(folder)
        raise UserError(f"cannot prepare {folder} for the install: {error.strerror or error}") from None
    return aside


class InstallJob:
    """One install into `folder`, a child process per step; `poll()` from a timer while `state` is 'running',
    then 'done', 'failed' or 'cancelled', with `message` saying how it ended."""

    def __init__(self, folder: Path, base_python: str, requirements, pip_options=()):
        self.folder, self.python = folder, env_python(folder)
        self.names = {package_name(requirement) for requirement in requirements}
        self.steps = install_commands(base_python, folder, requirements, pip_options)
        self.existed = folder.is_dir()
        self.aside = claim(folder)
        self.record: dict = {"complete": False, "requirements": list(requirements), "pip_options": list(pip_options)}
        self.imports: dict = {}  # the import check's report: module -> {"version": ...} or {"error": ...}
        try:
            self.write_marker()
        except OSError as error:
            self.end("failed", "")
            raise UserError(f"cannot write into {folder}: {error.strerror or error}") from None
        self.step, self.state, self.message = 0, "running", ""
        self.reached: set[str] = set()
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self.progress = Progress(STEPS[0], "", 0.0)
        self.start_step()
        if self.state == "failed":
            raise UserError(self.message)

    def start_step(self) -> None:
        command = self.steps[self.step]
        try:
            self.child = ChildProcess(command, merge_stderr=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except OSError as error:
            self.end("failed", f"{STEPS[self.step]} failed: {command[0]} cannot run ({error.strerror})")

    def poll(self) -> list[Progress]:
        """The progress since the last call; a step that has ended starts the next, or ends the install."""
        if self.state != "running":
            return []
        ended = not self.child.running  # first: once it has ended, every line it wrote is in
        arrived = [self.note(line) for line in map(str.rstrip, self.child.poll()) if line]
        if ended:
            arrived.append(self.end_step())
        return arrived

    def note(self, line: str) -> Progress:
        """Milestones: each of our packages collected (or processed from a local file), then pip installing them."""
        self.output.append(line)
        verb, _, rest = line.partition(" ")
        if verb == "Processing":  # a local file: its name spells the project's with underscores, then -version
            rest = re.split(r"[/\\]", rest)[-1].split("-")[0]
        if verb in ("Collecting", "Processing") and package_name(rest) in self.names:
            self.reached.add(package_name(rest))
        elif line.startswith("Installing collected packages"):
            self.reached.add("installing")
        return self.update(line)

    def update(self, line: str) -> Progress:
        phase = STEPS[self.step] if self.state == "running" else self.state
        self.progress = Progress(phase, line, 100.0 * len(self.reached) / (len(self.steps) + len(self.names) + 1))
        return self.progress

    def end_step(self) -> Progress:
        code = self.child.process.returncode
        if code != 0:
            self.end("failed", f"{STEPS[self.step]} failed (exit code {code}): {self.last_error()}")
        elif self.step != 2 or self.read_imports():  # a failed import check ends the install itself
            self.reached.add(f"step {self.step}")
            if self.step + 1 < len(self.steps):
                self.step += 1
                self.start_step()
            else:
                self.finish()
        return self.update(self.output[-1] if self.output else "")

    def read_imports(self) -> bool:
        """The import check's report kept in the marker; an install whose torch or hdbscan does not import fails."""
        try:
            self.imports = self.record["imports"] = json.loads(self.output[-1])
        except (IndexError, ValueError):
            self.end("failed", f"{STEPS[2]} failed: {self.last_error()}")
            return False
        needed, _ = import_problems(self.imports)
        if needed:
            self.end("failed", f"installed, but {needed}")
            return False
        return True

    def finish(self) -> None:
        self.record["complete"] = True
        self.write_marker()
        if self.aside:
            shutil.rmtree(self.aside, ignore_errors=True)
        _, sam = import_problems(self.imports)
        why = f"; SAM cannot run ({sam}): Automatic masks will be geometric" if sam else ""
        self.state, self.message = "done", f"installed into {self.folder}{why}"

    def last_error(self) -> str:
        """pip's (or venv's) last ERROR line, else the last line the step wrote."""
        errors = [match[1] for line in self.output if (match := re.match(r"error:\s*(.+)", line, re.IGNORECASE))]
        return (errors or list(self.output) or ["no message"])[-1]

    def cancel(self) -> None:
        if self.state == "running":
            self.child.cancel()
            self.end("cancelled", f"cancelled: {self.folder} is as it was")

    def end(self, state: str, message: str) -> None:
        """A failed or cancelled install puts the folder back as it was."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            if self.aside:
                self.aside.rename(self.folder)
            elif self.existed:
                self.folder.mkdir()
        except OSError as error:
            where = f"; the previous install is in {self.aside}" if self.aside else ""
            message += f" ({self.folder} could not be restored: {error.strerror or error}{where})"
        self.state, self.message = state, message

    def write_marker(self) -> None:
        (self.folder / MARKER).write_text(json.dumps(self.record, indent=1))
