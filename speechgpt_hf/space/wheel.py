"""This package as a wheel file, so that a Space folder can carry (unpacked beside its app) the exact code that
assembled it.

From a source checkout the wheel is built with `pip wheel` (in a scratch copy, so the checkout gets no build
folders); from an installed wheel the installed files are packed back into one (its RECORD lists them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "speechgpt-hf"
# What a wheel is built from, relative to the checkout (setup.py maps hub_cards/ into the package).
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "hub_cards", "speechgpt_hf", "speechgpt_hf_cli")
# Files an installer adds to a .dist-info folder; they are not part of the wheel.
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def source_checkout() -> Path | None:
    """The checkout that the imported `speechgpt_hf` comes from, or None when it runs from an installed wheel."""
    import speechgpt_hf

    root = Path(speechgpt_hf.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', pyproject.read_text(), re.MULTILINE):
        return root
    return None


def package_wheel(dest: str | Path) -> Path:
    """Writes this package's wheel into `dest` and returns its path (built from the checkout, or repacked)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    checkout = source_checkout()
    if checkout is not None:
        return build_wheel(checkout, dest)
    return repack_installed(metadata.distribution(DISTRIBUTION), dest)


def build_wheel(checkout: Path, dest: Path) -> Path:
    """Runs `pip wheel --no-deps` on a scratch copy of `checkout`'s WHEEL_SOURCES; returns the wheel in `dest`."""
    with tempfile.TemporaryDirectory(prefix="speechgpt-hf-wheel-") as scratch:
        project = Path(scratch) / "project"
        project.mkdir()
        for name in WHEEL_SOURCES:
            source = checkout / name
            if source.is_dir():
                shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, project / name)
        built = Path(scratch) / "wheel"
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(built)]
        result = subprocess.run([*command, str(project)], capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(
                f"Building the speechgpt-hf wheel from {checkout} failed (pip wheel exit status {result.returncode}): "
                f"{result.stderr.strip()[-2000:]} -- it needs pip and setuptools>=77 in this environment."
            )
        (wheel,) = built.glob("*.whl")
        return Path(shutil.copy2(wheel, dest / wheel.name))


def repack_installed(dist: metadata.Distribution, dest: Path) -> Path:
    """Packs an installed (non-editable) distribution's files back into a wheel in `dest`, with a fresh RECORD."""
    files = [f for f in dist.files or [] if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info is None or not any(f.suffix == ".py" and not f.parts[0].endswith(".dist-info") for f in files):
        raise ValueError(
            f"The installed {dist.metadata['Name']} holds no package files to pack (an editable install whose "
            "checkout cannot be found?): run this from the checkout, or pip install the package from a wheel."
        )
    tag = next(
        line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag:")
    )
    name = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(dest / name, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for file in files:
            if file.parts[0] == info and file.name in _INSTALLER_FILES:
                continue
            data = Path(dist.locate_file(file)).read_bytes()
            wheel.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return dest / name


__all__ = ["DISTRIBUTION", "WHEEL_SOURCES", "build_wheel", "package_wheel", "repack_installed", "source_checkout"]
