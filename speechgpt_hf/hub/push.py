"""Uploads a model, unit tokenizer, vocoder, dataset folder or Space to the Hub with `HfApi.upload_folder`.

Before anything is sent the folder is checked: it must carry a card (README.md with metadata; a Space's must
name its `sdk`), and a SpeechGPT's config must name its unit tokenizer and vocoder by Hub id, not by a local
path that would not exist on another machine. Training leftovers (checkpoints, the pickled training arguments,
build records) stay behind.
"""

from __future__ import annotations

from pathlib import Path

from ..models.speechgpt.configuration_speechgpt import COMPONENT_FIELDS
from .cards import is_hub_id, read_json

REPO_TYPES = ("model", "dataset", "space")
IGNORE_PATTERNS = [
    "checkpoint-*",
    "checkpoint-*/**",
    "training_args.bin",
    "*.partial",
    ".speechinstruct/**",
    "__pycache__/**",
    ".git/**",
    "runs/**",
]


def detect_repo_type(folder: str | Path) -> str:
    """ "space" for a folder with app.py, "model" for one with a config.json, "dataset" for parquet data."""
    folder = Path(folder)
    if (folder / "app.py").is_file():
        return "space"
    if (folder / "config.json").is_file():
        return "model"
    if any(folder.glob("**/*.parquet")):
        return "dataset"
    raise ValueError(
        f"{folder} is not a model (no config.json), dataset (no parquet files) or Space (no app.py): "
        "pass --repo-type if it is one of them."
    )


def _check_card(folder: Path, repo_type: str) -> None:
    from huggingface_hub import RepoCard

    readme = folder / "README.md"
    if not readme.is_file():
        way_out = {
            "model": f"speechgpt-hf card {folder}",
            "dataset": "speechgpt-hf build-speechinstruct (it writes one)",
            "space": "speechgpt-hf space",
        }[repo_type]
        raise ValueError(f"{folder} has no README.md card; write one first ({way_out}).")
    metadata = RepoCard.load(readme).data.to_dict()
    if not metadata:
        raise ValueError(f"{readme} has no YAML metadata block (---); a Hub card needs one (licence, tags, ...).")
    if repo_type == "space" and "sdk" not in metadata:
        raise ValueError(f"{readme} does not name the Space's `sdk` (gradio) in its metadata.")


# The files of a SpeechGPT folder whose component fields must name Hub repos in a pushed repo.
POINTING_FILES = ("config.json", "processor_config.json")


def local_paths(folder: str | Path) -> dict[str, dict[str, str]]:
    """Per file of the folder (config.json, processor_config.json), the component fields that name a local path
    instead of a Hub repo id."""
    found = {}
    for name in POINTING_FILES:
        stored = read_json(Path(folder) / name)
        local = {field: stored[field] for field in COMPONENT_FIELDS if stored.get(field)}
        local = {field: value for field, value in local.items() if not is_hub_id(value)}
        if local:
            found[name] = local
    return found


def check_folder(folder: str | Path, repo_type: str) -> None:
    """Raises a ValueError naming what a push of `folder` as `repo_type` would get wrong, and the way out."""
    folder = Path(folder)
    if repo_type not in REPO_TYPES:
        raise ValueError(f"Unknown repo type {repo_type!r}: choose one of {', '.join(REPO_TYPES)}.")
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder.")
    _check_card(folder, repo_type)
    local = local_paths(folder)
    if local:
        named = "; ".join(f"{name}: " + ", ".join(f"{k}={v!r}" for k, v in kv.items()) for name, kv in local.items())
        raise ValueError(
            f"{folder} names local folders ({named}) that will not exist for anyone loading the repo: push each "
            "component first and set these fields to their repo ids (config.save_pretrained, and "
            "processor.use_components_of(config) then processor.save_pretrained), then push."
        )


def push(
    folder: str | Path,
    repo_id: str,
    repo_type: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Checks `folder` (see `check_folder`), creates the repo if needed and uploads the folder; returns the
    commit's URL. The repo type is detected from the folder when not given."""
    from huggingface_hub import HfApi

    repo_type = repo_type or detect_repo_type(folder)
    check_folder(folder, repo_type)
    api = HfApi(token=token)
    extra = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        ignore_patterns=IGNORE_PATTERNS,
        commit_message=commit_message or f"Upload {Path(folder).resolve().name} with speechgpt-hf",
    )
    return str(getattr(commit, "commit_url", commit))


__all__ = ["IGNORE_PATTERNS", "REPO_TYPES", "check_folder", "detect_repo_type", "local_paths", "push"]
