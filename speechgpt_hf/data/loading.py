"""Loading a SpeechInstruct configuration from a local folder or a Hub repo.

datasets 5.2 keys its cache for a local folder on the folder's name and the configuration alone, not on the
files: a second folder of the same name (or a rebuilt one) silently loads the first one's rows. A local
folder is therefore read straight from its parquet files, whose cache key does follow the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_speechinstruct(path_or_repo: str | Path, config: str, split: str = "train", **kwargs: Any) -> Any:
    """The `split` of `config` as a datasets Dataset, from a folder written by `build-speechinstruct` or a Hub id."""
    from datasets import load_dataset

    folder = Path(path_or_repo)
    if not folder.is_dir():
        return load_dataset(str(path_or_repo), config, split=split, **kwargs)
    files = sorted((folder / config).glob(f"{split}-*.parquet"))
    if not files:
        available = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise ValueError(
            f"{folder} has no {config}/{split}-*.parquet files (configurations there: {available}); "
            "build them with `speechgpt-hf build-speechinstruct`."
        )
    return load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split, **kwargs)


__all__ = ["load_speechinstruct"]
