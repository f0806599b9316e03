"""Writes a Space folder that installs and runs as it is: app.py, a card with the Space metadata, this package's
source beside the app with pinned requirements, and (optionally) a copy of the whole talking system so that it runs
offline.

The package travels as source, not as a wheel named in requirements.txt: the Hub installs requirements.txt on its
own, before the Space's other files are in place, so a relative path to a wheel in the folder would not be found.
"""

from __future__ import annotations

import email
import json
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from ..hub.cards import is_hub_id, template_path
from ..hub.push import IGNORE_PATTERNS
from .wheel import package_wheel

# Where --copy-model puts the system inside the Space: the LM beside its unit tokenizer and vocoder.
SYSTEM_FOLDER = "system"
COMPONENT_FOLDERS = {"unit_tokenizer_repo": "unit-tokenizer", "vocoder_repo": "vocoder"}
REQUIREMENT_EXTRAS = ("demo",)
DEFAULT_MAX_SECONDS = 30.0
# Debian packages a Space installs (packages.txt): torchcodec decodes audio through FFmpeg's libraries.
SYSTEM_PACKAGES = ("ffmpeg",)

APP = '''"""SpeechGPT Space, written by `speechgpt-hf space`: the app itself is `speechgpt_hf.space.app`."""

import os
from pathlib import Path

from speechgpt_hf.space.app import launch

# The SpeechGPT repo id or folder (relative to this file) that answers; SPEECHGPT_REPO overrides it.
MODEL = {model!r}
MAX_SECONDS = {max_seconds!r}

if __name__ == "__main__":
    model = os.environ.get("SPEECHGPT_REPO") or MODEL
    local = Path(__file__).resolve().parent / model
    max_seconds = float(os.environ.get("SPEECHGPT_MAX_SECONDS", MAX_SECONDS))
    launch(str(local) if local.is_dir() else model, max_seconds=max_seconds)
'''


def assemble_space(
    output: str | Path,
    model: str,
    copy_model: bool = False,
    title: str = "SpeechGPT",
    max_seconds: float = DEFAULT_MAX_SECONDS,
    overwrite: bool = False,
) -> Path:
    """Writes the Space for `model` (a Hub repo id, or a local SpeechGPT folder with `copy_model`) into `output`."""
    output = Path(output)
    local = Path(model).is_dir()
    if local and not copy_model:
        raise ValueError(
            f"--model {model} is a local folder, which a deployed Space cannot reach: pass --copy-model to put the "
            "system inside the Space, or push it (speechgpt-hf push) and pass its repo id."
        )
    if not local and not is_hub_id(model):
        raise ValueError(f"--model {model}: no such folder, and not a Hub repo id like org/name.")
    if copy_model and not local:
        raise ValueError(f"--copy-model needs --model to be a local folder; {model} is not one.")
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{output} is not empty: choose a new folder or pass --overwrite to replace it.")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    pins, version = vendor_package(output)
    app_model = f"{SYSTEM_FOLDER}/lm" if copy_model else model
    if copy_model:
        copy_system(Path(model), output / SYSTEM_FOLDER)
    (output / "app.py").write_text(APP.format(model=app_model, max_seconds=max_seconds))
    (output / "requirements.txt").write_text("\n".join(pins) + "\n")
    (output / "packages.txt").write_text("\n".join(SYSTEM_PACKAGES) + "\n")
    write_space_card(output, title, model if not local else None, version, max_seconds)
    return output


def vendor_package(output: Path) -> tuple[list[str], str]:
    """Unpacks this package's wheel (its import packages, no install metadata) into `output`, where `python app.py`
    imports it first; returns the pinned requirements of the wheel and its version."""
    with tempfile.TemporaryDirectory(prefix="speechgpt-hf-space-") as scratch:
        wheel = package_wheel(scratch)
        with zipfile.ZipFile(wheel) as archive:
            members = [name for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")]
            archive.extractall(output, members)
        return pinned_requirements(wheel), wheel.name.split("-")[1]


def copy_system(model_dir: Path, dest: Path) -> Path:
    """Copies the SpeechGPT folder to `dest/lm` and the local unit tokenizer and vocoder it names beside it, and
    points its config and processor at the copies (paths relative to the LM folder); returns `dest/lm`."""
    from ..models.speechgpt.configuration_speechgpt import SpeechGPTConfig

    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: --model must be a saved SpeechGPT folder.")
    config = SpeechGPTConfig.from_pretrained(model_dir)
    ignore = shutil.ignore_patterns(*{pattern.removesuffix("/**") for pattern in IGNORE_PATTERNS})
    lm = dest / "lm"
    shutil.copytree(model_dir, lm, ignore=ignore)
    copied = {}
    for field, folder in COMPONENT_FOLDERS.items():
        source = config.resolve_component_path(field, model_dir=model_dir)
        if not source or not Path(source).is_dir() or Path(source).resolve().is_relative_to(model_dir.resolve()):
            continue  # a Hub id (downloaded by the Space), or already inside the copied LM folder
        shutil.copytree(source, dest / folder, ignore=ignore)
        copied[field] = f"../{folder}"
    for name in ("config.json", "processor_config.json"):  # the processor names the components as its config does
        if (lm / name).is_file():
            stored = json.loads((lm / name).read_text())
            stored.update({field: value for field, value in copied.items() if name == "config.json" or field in stored})
            (lm / name).write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return lm


def pinned_requirements(wheel: Path, extras: tuple[str, ...] = REQUIREMENT_EXTRAS) -> list[str]:
    """`name==version` for each runtime requirement of `wheel` (plus `extras`), at the version installed here."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = email.message_from_bytes(archive.read(name)).get_all("Requires-Dist") or []
    pins: dict[str, str] = {}
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        try:
            installed = Version(metadata.version(requirement.name)).public
        except metadata.PackageNotFoundError as error:
            raise ImportError(
                f"{requirement.name} is not installed here, so its tested version is unknown: "
                "pip install 'speechgpt-hf[demo]' first."
            ) from error
        pins.setdefault(requirement.name, f"{requirement.name}=={installed}")
    return list(pins.values())


def write_space_card(output: Path, title: str, hub_model: str | None, version: str, max_seconds: float) -> None:
    """README.md with the Space metadata (gradio SDK at the installed version, app.py) and what the Space runs."""
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=metadata.version("gradio"),
        python_version="3.11",
        app_file="app.py",
        license="apache-2.0",
        models=[hub_model] if hub_model and is_hub_id(hub_model) else None,
        tags=["speech", "speech-to-speech", "speechgpt"],
        emoji="🗣️",
        colorFrom="indigo",
        colorTo="pink",
        pinned=False,
    )
    card = SpaceCard.from_template(
        data,
        template_path=str(template_path("space_card.md")),
        title=title,
        model=f"[{hub_model}](https://huggingface.co/{hub_model})" if hub_model else f"bundled in `{SYSTEM_FOLDER}/`",
        version=version,
        max_seconds=f"{max_seconds:g}",
    )
    card.save(output / "README.md")


__all__ = ["assemble_space", "copy_system", "pinned_requirements", "vendor_package", "write_space_card"]
