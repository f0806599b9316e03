"""Where the other repos of a SpeechGPT system live: stored relative to the folder that names them when close by.

The model config (`unit_tokenizer_repo`, `vocoder_repo`) and the processor (its unit tokenizer and vocoder) both
point to other repos. A local folder inside or near the pointing folder is stored as `./units` or `../vocoder`, so
a saved system can be moved or copied as a whole; a Hub id or a far-away folder is stored as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# How far above the pointing folder a component may sit and still be stored relative to it.
_LEVELS_UP = 2


def is_folder_relative(value: str) -> bool:
    """Whether a stored pointer is a path relative to the folder that stores it (`./…` or `../…`)."""
    return value.startswith(("./", "../"))


def local_folder(name_or_path: str, marker_file: str, **hub_kwargs: Any) -> Path | None:
    """The local folder of a repo: the path itself, or the cached snapshot that holds its `marker_file` (found with
    `hub_kwargs`: revision, subfolder, cache_dir, token, …)."""
    if not name_or_path:
        return None
    if os.path.isdir(name_or_path):
        return Path(name_or_path, hub_kwargs.get("subfolder") or "")
    from transformers.utils import cached_file

    found = cached_file(name_or_path, marker_file, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    return None if found is None else Path(found).parent


def portable_path(path: Path, folder: Path) -> str:
    """`path` as a pointer stored in `folder`: relative when inside it or at most two folders above it (beside it,
    or beside its parent, as in one folder holding a whole system), absolute otherwise."""
    relative = Path(os.path.relpath(path.resolve(), folder.resolve()))
    ups = relative.parts.count("..")
    if ups == 0:
        return f"./{relative.as_posix()}"
    if ups <= _LEVELS_UP and relative.parts[:ups] == ("..",) * ups:
        return relative.as_posix()
    return str(path.resolve())


def resolve_pointer(name: str, value: str | None, folder: Path | None) -> str | None:
    """The repo id or folder a stored pointer `value` (the field `name`) names, a relative path resolved against
    `folder`, the folder that stores it. Hub ids and absolute paths are returned as they are."""
    if not value or not is_folder_relative(value):
        return value
    if folder is None:
        raise ValueError(
            f"`{name}` is {value!r}, a path relative to the model folder, but this config does not know its "
            "folder: load the model with from_pretrained(folder) or pass model_dir=."
        )
    path = (folder / value).resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"`{name}` is {value!r} relative to the model folder {folder}, but {path} does not exist: move the "
            f"component along with the model, or set `{name}` to its repo id or folder."
        )
    return str(path)


__all__ = ["is_folder_relative", "local_folder", "portable_path", "resolve_pointer"]
