"""Writes that a kill at any moment cannot leave half-done, and reads that name a broken file and the way out.

A file is written under a temporary name beside its target and renamed into place (`os.replace` is atomic on one
file system), so a reader sees the old file or the new one, never a part. A folder (a `save_pretrained` or
`save_to_disk` output) is built in a staging folder beside its target and renamed into place the same way.
A job killed mid-write leaves only a staging name behind, which the next write of the same target clears.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_STAGING = ".partial"


class CorruptFileError(ValueError):
    """A file this package wrote (or resumes from) that cannot be read: its message names it and the way out."""


def _staging_name(target: Path) -> Path:
    return target.with_name(f".{target.name}{_STAGING}-{os.getpid()}")


def _clear_stale_staging(target: Path) -> None:
    """Removes what killed writers of `target` left behind (staging names of any process id)."""
    for stale in target.parent.glob(f".{target.name}{_STAGING}-*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path to write `target` to; renamed onto `target` when the block ends without an error, removed
    when it raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_staging(target)
    staging = _staging_name(target)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Writes `text` to `target` in UTF-8, all at once (a reader sees the old file or the new one)."""
    with atomic_path(target) as staging:
        staging.write_text(text, encoding="utf-8")
    return Path(target)


def atomic_write_json(target: str | Path, data: Any, **dumps_kwargs: Any) -> Path:
    """Writes `data` as JSON to `target` all at once."""
    return atomic_write_text(target, json.dumps(data, **dumps_kwargs))


@contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """An empty staging folder to build `target` in; when the block ends without an error it replaces `target`
    (an older `target` is removed first, so a kill between the two steps leaves no `target` rather than a mixed
    one), and when it raises it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_staging(target)
    staging = _staging_name(target)
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def read_json_file(path: str | Path, way_out: str) -> Any:
    """The JSON in `path`; a truncated or garbled file raises `CorruptFileError` naming it and `way_out` (what to
    delete or rerun), instead of a bare decoding error that names no file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{path} is truncated or corrupt ({error}): {way_out}") from error


def unreadable_files(folder: str | Path) -> list[tuple[Path, str]]:
    """The files of a saved folder (a checkpoint, a model) that cannot be whole, each with what is wrong: JSON that
    does not parse, safetensors whose header does not cover the file, torch archives (.pt, .pth, .bin, .pkl
    written by torch.save) without their zip directory. Cheap: it reads headers, not tensors."""
    from safetensors import safe_open

    problems = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt"):
                    pass
            elif path.suffix in {".pt", ".pth", ".bin", ".pkl"} and not zipfile.is_zipfile(path):
                problems.append((path, "not a complete torch archive"))
        except Exception as error:  # safetensors raises its own SafetensorError, a bare Exception subclass
            problems.append((path, " ".join(str(error).split()) or type(error).__name__))
    return problems


__all__ = [
    "CorruptFileError",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "read_json_file",
    "staged_folder",
    "unreadable_files",
]
