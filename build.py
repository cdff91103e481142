#!/usr/bin/env python3
"""The project's one entry point: set-up, the extension zip, the demo, the tests and the benchmarks.

    python3 build.py demo            set up, build the zip, run the demo into out/
    python3 build.py test [ARGS]     set up, build the zip, run pytest (ARGS go to pytest)
    python3 build.py bench [NAME]    set up, build the zip, run bench/NAME.py (all when no NAME)
    python3 build.py zip             set up and build dist/<id>-<version>.zip, validated by Blender
    python3 build.py setup           create .venv from requirements.txt (Python 3.11, as bpy 5.0 needs)

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
DIST = ROOT / "dist"
REQUIREMENTS = ROOT / "requirements.txt"
PYTHON_VERSION = (3, 11)  # bpy 5.0.1 is built for CPython 3.11 only
EXTENSION_VALIDATOR = "bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def find_python311() -> str:
    if sys.version_info[:2] == PYTHON_VERSION:
        return sys.executable
    found = shutil.which("python3.11")
    if not found:
        sys.exit("build.py: Python 3.11 is needed (bpy 5.0.1 supports no other); install it and run again")
    return found


def setup() -> Path:
    """Create or update .venv; skipped when requirements.txt is unchanged since the last set-up."""
    stamp = VENV / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if venv_python().exists() and stamp.exists() and stamp.read_text() == wanted:
        return venv_python()
    if not venv_python().exists():
        run(find_python311(), "-m", "venv", VENV)
    run(venv_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS)
    stamp.write_text(wanted)
    return venv_python()


def manifest() -> dict:
    with open(ROOT / "blender_manifest.toml", "rb") as file:
        return tomllib.load(file)


def zip_path() -> Path:
    info = manifest()
    return DIST / f"{info['id']}-{info['version']}.zip"


def package_files():
    """(path on disk, path in the zip): the add-on at the zip's root, the backend bundled beside it."""
    yield ROOT / "blender_manifest.toml", "blender_manifest.toml"
    for folder, prefix in ((ROOT / "clickgauss_addon", ""), (ROOT / "backend", "backend/")):
        for path in sorted(folder.rglob("*.py")):
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


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="zip", choices=["setup", "zip", "demo", "test", "bench"])
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed on to pytest (test) or the benchmark name (bench)")
    options = parser.parse_args(argv)
    python = setup()
    if options.command == "setup":
        return
    package = build_zip(python)
    environment = dict(os.environ, CLICKGAUSS_ZIP=str(package), PYTHONUNBUFFERED="1")
    if options.command == "demo":
        run(python, ROOT / "tools" / "demo.py", *options.args, env=environment, cwd=ROOT)
    elif options.command == "test":
        run(python, "-m", "pytest", *options.args, env=environment, cwd=ROOT)
    elif options.command == "bench":
        names = options.args or sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
        for name in names:
            script = ROOT / "bench" / (name if name.endswith(".py") else f"{name}.py")
            if not script.exists():
                script = ROOT / "bench" / f"bench_{name}.py"
            run(python, script, env=environment, cwd=ROOT)


if __name__ == "__main__":
    main()
