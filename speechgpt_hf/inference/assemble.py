"""One SpeechGPT system from its three models: an LM, the unit tokenizer whose units it reads, and a vocoder.

The LM's config and processor name the other two (`unit_tokenizer_repo`, `vocoder_repo`), so loading the LM's repo
loads the system. A component folder inside or near the LM folder is stored relative to it, so the system can move.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..safe_files import staged_folder
from ..training.checkpoints import staged_files

# The kinds of model each component may be (their registered model types).
COMPONENT_TYPES = {
    "unit_tokenizer_repo": ("speechgpt_unit_tokenizer",),
    "vocoder_repo": ("speechgpt_unit_mel", "speechgpt_unit_hifigan"),
}
# Files a copied LM folder leaves behind: training state that a system does not need.
_NOT_COPIED = ("checkpoint-*", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state*.pth")


def _checked_component(field: str, repo: str | Path, num_units: int, **hub_kwargs: Any) -> str:
    """`repo` as it will be stored, after checking that its config is a component of this kind with K units."""
    from transformers import AutoConfig

    location = str(Path(repo).resolve()) if Path(repo).is_dir() else str(repo)
    config = AutoConfig.from_pretrained(location, **hub_kwargs)
    kinds = COMPONENT_TYPES[field]
    if config.model_type not in kinds:
        raise ValueError(f"{repo} is a {config.model_type} model, not one of {', '.join(kinds)}.")
    if getattr(config, "num_units", num_units) != num_units:
        raise ValueError(
            f"{repo} has {config.num_units} units but the LM has {num_units}: give the one the LM was trained with."
        )
    return location


def assemble_system(
    lm: str | Path,
    unit_tokenizer: str | Path | None = None,
    vocoder: str | Path | None = None,
    output_dir: str | Path | None = None,
    **hub_kwargs: Any,
) -> Path:
    """Makes the SpeechGPT folder `lm` name its unit tokenizer and vocoder, and returns the folder of the system.

    `unit_tokenizer` and `vocoder` are repo ids or folders (one left out keeps what the LM names already); each is
    checked to be a model of its kind with the LM's number of units. The LM's config and processor are written
    into `output_dir`, a copy of the LM folder without its training checkpoints (default: the LM folder itself).
    `hub_kwargs` (`token`, `revision`, …) apply to reading the components' configs from the Hub. Load the result
    with `SpeechGPTChat.from_pretrained(folder)` or any `from_pretrained`.
    """
    from transformers import AutoConfig, AutoProcessor

    source = Path(lm)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{lm} has no config.json: give the folder of a saved SpeechGPT (a training stage's).")
    config = AutoConfig.from_pretrained(source)
    if config.model_type != "speechgpt":
        raise ValueError(f"{lm} holds a {config.model_type} model, not a SpeechGPT: expand it with add_speech_units.")
    given = {"unit_tokenizer_repo": unit_tokenizer, "vocoder_repo": vocoder}
    pointers = {
        field: _checked_component(field, repo, config.num_units, **hub_kwargs)
        for field, repo in given.items()
        if repo is not None
    }
    processor = AutoProcessor.from_pretrained(source)
    output = Path(output_dir) if output_dir is not None else source
    for field in COMPONENT_TYPES:  # kept pointers resolved from where the LM was, so a copy still finds them
        location = pointers.get(field) or config.resolve_component_path(field, model_dir=source)
        setattr(config, field, location)
    if output.resolve() == source.resolve():
        with staged_files(output) as staging:  # each file replaced at once: a kill leaves it old or new, never half
            _save_pointers(config, processor, staging)
        return output
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} is not empty: choose a new folder for the system.")
    with staged_folder(output) as staging:  # the copy appears whole or not at all
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns(*_NOT_COPIED), dirs_exist_ok=True)
        _save_pointers(config, processor, staging)
    return output


def _save_pointers(config: Any, processor: Any, folder: Path) -> None:
    """Writes the LM config and the processor into `folder`, both naming the components `config` names (local
    folders near `folder` stored relative to it)."""
    from transformers import AutoConfig

    config.save_pretrained(folder)
    processor.use_components_of(AutoConfig.from_pretrained(folder))
    processor.save_pretrained(folder)


__all__ = ["COMPONENT_TYPES", "assemble_system"]
