#!/usr/bin/env python3
"""The project's one entry point: set-up, the extension zip, the demo, the tests and the benchmarks.

    python3 build.py demo            set up, build the zip, run the demo into out/ (in Blender 5.3 where Python 3.13 is)
    python3 build.py test [ARGS]     set up, build the zip, run pytest (ARGS go to pytest)
    python3 build.py matrix [V] [ARGS]  the add-on's tests (tests/test_addon_*.py) in Blender 4.2, 4.5, 5.2, 5.3 (or V)
    python3 build.py bench [NAME [ARGS]]  set up, build the zip, run bench/bench_NAME.py with ARGS (all when no NAME)
    python3 build.py zip             set up and build dist/<id>-<version>.zip, validated by Blender
    python3 build.py setup           create .venv from pyproject.toml's lists (Python 3.11, as bpy 5.0 needs)
    python3 build.py check           ruff (lint, format), mypy and the import rules (.importlinter)

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
DIST = ROOT / "dist"
PYPROJECT = ROOT / "pyproject.toml"
PYTHON_VERSION = (3, 11)  # bpy 5.0.1 is built for CPython 3.11 only
EXTENSION_VALIDATOR = "bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py"
# The other Blender versions the add-on is tested in: bpy from PyPI and the one Python each is built for.
MATRIX = {
    "4.2": ("bpy==4.2.23", (3, 11)),
    "4.5": ("bpy==4.5.15", (3, 11)),
    "5.2": ("bpy==5.2.3", (3, 13)),
    "5.3": ("bpy==5.3.0", (3, 13)),  # the first with native Gaussian splats
}
MATRIX_VENVS = ROOT / ".venvs"
DEMO_BLENDER = "5.3"  # the demo's Blender, where its Python is installed: it draws Gaussian splats natively
NOT_SHIPPED = Path("backend/benchmark")


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def find_python(version: tuple[int, int]) -> str | None:
    """A working interpreter of `version`: this one, pythonX.Y on the PATH, or one of pyenv's; None if none."""
    if sys.version_info[:2] == version:
        return sys.executable
    name = f"python{version[0]}.{version[1]}"
    found = [shutil.which(name)] + sorted(Path.home().glob(f".pyenv/versions/{version[0]}.{version[1]}.*/bin/{name}"))[
        ::-1
    ]
    for candidate in filter(None, found):  # a pyenv shim is on the PATH even where that version is not selected
        if subprocess.run([str(candidate), "-c", "import venv"], capture_output=True).returncode == 0:
            return str(candidate)
    return None


def requirements(*lists: str) -> list[str]:
    """pyproject.toml's `dependencies` (the name "dependencies") or optional lists, joined: the one list of pins."""
    with open(PYPROJECT, "rb") as file:
        project = tomllib.load(file)["project"]
    return [
        p
        for name in lists
        for p in (project["dependencies"] if name == "dependencies" else project["optional-dependencies"][name])
    ]


def install_venv(venv: Path, python_version: tuple[int, int], packages: list[str]) -> Path:
    """Create or update `venv` with `packages`; skipped when they are unchanged since the last set-up."""
    stamp = venv / ".requirements-sha256"
    wanted = hashlib.sha256("\n".join(packages).encode()).hexdigest()
    if venv_python(venv).exists() and stamp.exists() and stamp.read_text() == wanted:
        return venv_python(venv)
    if not venv_python(venv).exists():
        python = find_python(python_version)
        if python is None:
            wanted = ".".join(map(str, python_version))
            sys.exit(f"build.py: Python {wanted} is needed for {venv.name}; install it and run again")
        run(python, "-m", "venv", venv)
    run(venv_python(venv), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages)
    stamp.write_text(wanted)
    return venv_python(venv)


def setup() -> Path:
    """Create or update .venv (Python 3.11: bpy 5.0.1 supports no other)."""
    return install_venv(VENV, PYTHON_VERSION, requirements("dependencies", "dev"))


def matrix(versions: list[str], pytest_args: list[str], environment: dict) -> None:
    """The add-on's tests in each Blender of MATRIX, each in its own venv; the backend trains in .venv's Python.

    A version whose Python is not on this machine is skipped with a message; any failure fails the whole run.
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="clickgauss-matrix-") as scene:
        environment = dict(environment, CLICKGAUSS_BACKEND_PYTHON=str(venv_python()), CLICKGAUSS_TRAINED_SCENE=scene)
        for version in versions:
            bpy_requirement, python_version = MATRIX[version]
            if find_python(python_version) is None:
                wanted = ".".join(map(str, python_version))
                print(
                    f"matrix: Blender {version} SKIPPED: Python {wanted} ({bpy_requirement} needs it) is not installed"
                )
                results.append((version, f"skipped (no Python {wanted})", 0.0, 0.0))
                continue
            started = time.perf_counter()
            venv = install_venv(
                MATRIX_VENVS / f"blender-{version}", python_version, [*requirements("matrix"), bpy_requirement]
            )
            set_up = time.perf_counter() - started
            addon_tests = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_addon_*.py"))
            code = subprocess.run(
                [str(venv), "-m", "pytest", "-m", "blender", *addon_tests, *pytest_args], env=environment, cwd=ROOT
            ).returncode
            results.append(
                (
                    version,
                    "passed" if code == 0 else f"FAILED (pytest exit {code})",
                    set_up,
                    time.perf_counter() - started - set_up,
                )
            )
    print("\nBlender version matrix (the main version, 5.0, runs the whole suite in build.py test):")
    for version, outcome, set_up, tests in results:
        print(f"  Blender {version}: {outcome}; set-up {set_up:.0f} s, tests {tests:.0f} s")
    if any(outcome.startswith("FAILED") for _, outcome, _, _ in results):
        sys.exit(1)


def demo_blender(python: Path) -> Path:
    """The Python whose bpy the demo runs in: Blender 5.3's, which draws the splats as Gaussians, where Python 3.13 is
    on this machine; otherwise .venv's Blender 5.0 (drawn as discs). The backend trains in .venv's Python either way."""
    bpy_requirement, python_version = MATRIX[DEMO_BLENDER]
    if find_python(python_version) is None:
        print(
            f"demo: Blender {DEMO_BLENDER} needs Python {python_version[0]}.{python_version[1]}: the demo runs in 5.0"
        )
        return python
    print(f"demo: in Blender {DEMO_BLENDER} (.venvs/blender-{DEMO_BLENDER}), training in .venv")
    return install_venv(
        MATRIX_VENVS / f"blender-{DEMO_BLENDER}", python_version, [*requirements("matrix"), bpy_requirement]
    )


def manifest() -> dict:
    with open(ROOT / "blender_manifest.toml", "rb") as file:
        return tomllib.load(file)


def zip_path() -> Path:
    info = manifest()
    return DIST / f"{info['id']}-{info['version']}.zip"


def package_files():
    """(path on disk, path in the zip): the add-on at the zip's root, the backend bundled beside it, less the
    benchmark package (scene generator, mask simulator), which no user runs."""
    yield ROOT / "blender_manifest.toml", "blender_manifest.toml"
    yield PYPROJECT, "pyproject.toml"  # the backend installer's list of packages
    for folder, prefix in ((ROOT / "clickgauss_addon", ""), (ROOT / "backend", "backend/")):
        for path in sorted(folder.rglob("*.py")):
            if NOT_SHIPPED not in path.relative_to(ROOT).parents:
                yield path, prefix + path.relative_to(folder).as_posix()


def build_zip(python: Path) -> Path:
    target = zip_path()
    DIST.mkdir(exist_ok=True)
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in package_files():
            archive.write(source, name)
    os.replace(partial, target)
    run(python, site_packages(python) / EXTENSION_VALIDATOR, "validate", target)
    print(f"built {target.relative_to(ROOT)}")
    return target


LINTED = ["backend", "clickgauss_addon", "tests", "bench", "tools", "build.py"]


def check(python: Path) -> None:
    """ruff (lint, format), mypy and the import rules, on the layout Blender loads: the add-on as the package
    `clickgauss` with the backend inside it (staged in a temporary folder), and the backend on its own."""
    run(python, "-m", "ruff", "check", *LINTED, cwd=ROOT)
    run(python, "-m", "ruff", "format", "--check", *LINTED, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="clickgauss-check-") as folder:
        stage = Path(folder)
        shutil.copytree(ROOT / "backend", stage / "backend", ignore=shutil.ignore_patterns("__pycache__"))
        for source, name in package_files():
            if source.suffix == ".py":
                (stage / "clickgauss" / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, stage / "clickgauss" / name)
        run(
            python,
            "-c",
            "import sys, importlinter.cli; sys.exit(importlinter.cli.lint_imports_command())",
            "--config",
            PYPROJECT,
            cwd=stage,
        )
        # the shipped backend is checked as `backend`; its copy inside the add-on only resolves the add-on's imports
        typed = subprocess.run(
            [str(python), "-m", "mypy", "--config-file", str(PYPROJECT), "-p", "backend", "-p", "clickgauss"],
            cwd=stage,
            capture_output=True,
            text=True,
        )
        lines = [
            line.replace("clickgauss/", "clickgauss_addon/", 1)
            for line in typed.stdout.splitlines()
            if not line.startswith("clickgauss/backend/")
        ]
        print("\n".join(lines))
        if typed.returncode != 0:
            sys.exit(typed.returncode)


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command", nargs="?", default="zip", choices=["setup", "zip", "demo", "test", "matrix", "bench", "check"]
    )
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="passed on to pytest (test, matrix); bench takes a benchmark's name, then its own options; matrix takes "
        "versions first",
    )
    options = parser.parse_args(argv)
    benchmarks = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py"))
    if options.command == "bench" and options.args and options.args[0] not in benchmarks:
        parser.error(f"bench: no benchmark {options.args[0]!r}; the benchmarks are {', '.join(benchmarks)}")
    python = setup()
    if options.command == "setup":
        return
    if options.command == "check":
        return check(python)
    package = build_zip(python)
    environment = dict(os.environ, CLICKGAUSS_ZIP=str(package), PYTHONUNBUFFERED="1")
    if options.command == "demo":
        environment["CLICKGAUSS_BACKEND_PYTHON"] = str(python)
        run(demo_blender(python), ROOT / "tools" / "demo.py", *options.args, env=environment, cwd=ROOT)
    elif options.command == "test":
        run(python, "-m", "pytest", *options.args, env=environment, cwd=ROOT)
    elif options.command == "matrix":
        versions = [a for a in options.args if a in MATRIX] or list(MATRIX)
        matrix(versions, [a for a in options.args if a not in MATRIX], environment)
    elif options.command == "bench":
        for name in options.args[:1] or benchmarks:
            run(python, ROOT / "bench" / f"bench_{name}.py", *options.args[1:], env=environment, cwd=ROOT)


if __name__ == "__main__":
    main()
