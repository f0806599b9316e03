"""Resuming a killed training job from its latest complete checkpoint, and saving its final model so that a kill
never leaves half of one.

Both trainers (transformers' for the stages, the vocoder's) write a checkpoint folder's `trainer_state.json` last:
a `checkpoint-N` without a whole one is a save that was cut short, skipped with a warning when the latest is looked
for. One with it whose files do not read whole is corrupt: it is named, with the way out, before a library meets it.

A final model is saved into a staging folder beside the output folder (one name for every process of a run) and
moved in file by file, `config.json` last; the output folder's other contents (checkpoints, samples) stay.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..safe_files import CorruptFileError, unreadable_files

logger = logging.getLogger(__name__)

MARKER = "trainer_state.json"  # written last into a checkpoint folder by both trainers
_LATEST = ("latest", "true")  # resume_from_checkpoint values meaning "the latest complete checkpoint"
_CONFIG = "config.json"  # what makes a folder look like a loadable model: moved in last
_WEIGHTS = ("*.safetensors", "*.bin", "*.index.json")  # a model's weight files, which an older save may leave
_POINTERS = ("unit_tokenizer_repo", "vocoder_repo")  # component pointers that config and processor files hold


def _step(checkpoint: Path) -> int | None:
    """The N of a `checkpoint-N` folder (None for a folder named otherwise)."""
    prefix, _, number = checkpoint.name.rpartition("-")
    return int(number) if prefix == "checkpoint" and number.isdigit() else None


def numbered_checkpoints(folder: str | Path) -> list[Path]:
    """The `checkpoint-N` folders in `folder`, oldest (smallest N) first."""
    found = [p for p in Path(folder).glob("checkpoint-*") if p.is_dir() and _step(p) is not None]
    return sorted(found, key=_step)


def save_finished(checkpoint: Path) -> bool:
    """Whether the save of `checkpoint` got to its end: its trainer_state.json, written last, is there and whole."""
    try:
        json.loads((checkpoint / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return True


def checkpoint_problems(checkpoint: Path) -> list[tuple[Path, str]]:
    """What stops `checkpoint` from being resumed: a missing or broken trainer_state.json, or a file that does not
    read whole (`unreadable_files`); empty when it can be resumed from."""
    marker = checkpoint / MARKER
    missing = [] if marker.is_file() else [(marker, "is missing (the save was cut short)")]
    return missing + unreadable_files(checkpoint)


def _way_out(checkpoint: Path) -> str:
    """What to do about a checkpoint that cannot be resumed: delete it, and resume from the one before if any."""
    step = _step(checkpoint)
    before = [c for c in numbered_checkpoints(checkpoint.parent) if step is not None and _step(c) < step]
    usable = next((c for c in reversed(before) if not checkpoint_problems(c)), None)
    if usable is None:
        return f"delete {checkpoint} and train again from the start (there is no complete checkpoint before it)"
    return f"delete {checkpoint} (resuming from the latest then takes {usable.name}), or resume from {usable}"


def check_checkpoint(checkpoint: str | Path) -> Path:
    """`checkpoint` when it can be resumed from; otherwise `CorruptFileError` naming the first bad file and the way
    out, so that no library meets a truncated file."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint folder to resume from.")
    problems = checkpoint_problems(checkpoint)
    if problems:
        path, problem = problems[0]
        raise CorruptFileError(f"Cannot resume from {checkpoint}: {path} {problem}. Way out: {_way_out(checkpoint)}.")
    return checkpoint


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint in `folder` whose save finished (None when there is none), checked to read whole;
    newer ones whose save was cut short are skipped with a warning naming them."""
    for checkpoint in reversed(numbered_checkpoints(folder)):
        if save_finished(checkpoint):
            return check_checkpoint(checkpoint)
        logger.warning(f"Skipping {checkpoint}: its save was cut short (no whole {MARKER}).")
    return None


def resume_target(value: str | bool | None, output_dir: str | Path) -> str | None:
    """The checkpoint folder a `resume_from_checkpoint` value names, checked: "latest" or True (any case) is the
    latest complete one in `output_dir` (none: start from scratch, with a warning), a path is that folder."""
    if value is None or value is False or value == "":
        return None
    if value is True or str(value).lower() in _LATEST:
        found = latest_checkpoint(output_dir)
        if found is None:
            logger.warning(f"No complete checkpoint in {output_dir}: starting from scratch.")
        return None if found is None else str(found)
    return str(check_checkpoint(value))


def _staging_folder(folder: Path) -> Path:
    """Where `folder`'s new files are written first: beside it, on the same file system, named alike by every
    process of a run."""
    folder = folder.resolve()
    return folder.with_name(f".{folder.name}.saving")


def _nothing() -> None:
    return None


@contextmanager
def staged_model(folder: str | Path, main_process: bool = True, wait: Callable[[], None] = _nothing) -> Iterator[Path]:
    """A staging folder to save a final model (and its processor, metrics, card) into, holding copies of
    `folder`'s other top-level files for writers that add to them; when the block ends the model replaces the one in
    `folder` (see `publish`), so that a kill leaves the old model, no model, or the new one. Under several processes
    only `main_process` prepares and publishes, and `wait` (a barrier) keeps the others in step."""
    folder, staging = Path(folder), _staging_folder(Path(folder))
    if main_process:
        _fresh(staging)
        _carry_files(folder, staging)
    wait()
    yield staging
    wait()
    if main_process:
        publish(staging, folder, replaces_model=True)


@contextmanager
def staged_files(folder: str | Path) -> Iterator[Path]:
    """A staging folder to write some of `folder`'s files in; when the block ends each replaces its old self in
    `folder` at once (`config.json` last), the rest of `folder` untouched."""
    folder, staging = Path(folder), _staging_folder(Path(folder))
    _fresh(staging)
    yield staging
    publish(staging, folder, replaces_model=False)


def _fresh(staging: Path) -> None:
    """An empty `staging`, clearing what a killed run left there."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)


def _is_weights(path: Path) -> bool:
    return any(path.match(pattern) for pattern in _WEIGHTS)


def _carry_files(folder: Path, staging: Path) -> None:
    """Copies `folder`'s top-level files other than weights into `staging`: what a writer in `staging` reads and
    adds to (provenance, all_results.json) is then as it would be in `folder`."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and not _is_weights(path):
            shutil.copy2(path, staging / path.name)


def publish(staging: Path, folder: Path, replaces_model: bool) -> None:
    """Moves every entry of `staging` into `folder` (a subfolder as a whole), `config.json` last, then removes
    `staging`. With `replaces_model`, `folder`'s config.json goes first and its weight files that the new save lacks
    go too, so that no moment shows a loadable mix of two models. Pointers to component folders stored relative to
    `staging` are stored relative to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    _rebase_pointers(staging, folder)
    if replaces_model:
        (folder / _CONFIG).unlink(missing_ok=True)
        for stale in [p for p in folder.iterdir() if p.is_file() and _is_weights(p)]:
            if not (staging / stale.name).exists():
                stale.unlink()
    entries = sorted(staging.iterdir(), key=lambda path: path.name == _CONFIG)
    for entry in entries:
        target = folder / entry.name
        if entry.is_dir() and target.exists():
            os.replace(target, staging / f".{entry.name}.old")  # out of the way at once; removed with `staging`
        os.replace(entry, target)
    shutil.rmtree(staging)


def _rebase_pointers(staging: Path, folder: Path) -> None:
    """Rewrites the relative component pointers of `staging`'s JSON files as `save_pretrained(folder)` would have
    stored them (they differ only for a component inside `folder`)."""
    from ..models.speechgpt.component_paths import is_folder_relative, portable_path

    for path in staging.glob("*.json"):
        text = path.read_text()
        data = json.loads(text) if any(field in text for field in _POINTERS) else None
        if not isinstance(data, dict):
            continue
        relative = {field: data.get(field) for field in _POINTERS if isinstance(data.get(field), str)}
        rebased = {
            field: portable_path(staging / value, folder)
            for field, value in relative.items()
            if is_folder_relative(value) and (staging / value).is_dir()
        }
        if any(data[field] != value for field, value in rebased.items()):
            path.write_text(json.dumps({**data, **rebased}, indent=2, sort_keys=True) + "\n")


__all__ = [
    "MARKER",
    "check_checkpoint",
    "checkpoint_problems",
    "latest_checkpoint",
    "numbered_checkpoints",
    "publish",
    "resume_target",
    "save_finished",
    "staged_files",
    "staged_model",
]
