"""The stage recipes as data: read a YAML recipe of `recipes/` by name, and the fields that say how a stage trains.

A recipe holds two kinds of fields: sizes (steps, batch, learning rate, sequence length), which a run chooses for
its hardware, and the method (LoRA or every weight, which unit rows train and how far apart they start, which rows
are rehearsed), which is what was learned about training a stage. `stage_method` returns the second kind, so that a
program sizing its own run (the reproduction) trains each stage exactly as the recipe says. Reading a recipe needs
only PyYAML, not TRL.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..stages import RECIPES

RECIPES_DIR = Path(__file__).parent / "recipes"
# Stages 1 and 2 for a pretrained base: a LoRA on q/v with the unit rows trained, instead of every weight (which a
# pretrained base forgets its text by). Stage 3 is the same recipe for every base.
PRETRAINED_LORA = "pretrained_lora"
# The fields of a recipe that say how the stage trains, as opposed to how long and how large.
METHOD_FIELDS = (
    "use_lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "train_unit_embeddings",
    "unit_embedding_learning_rate",
    "unit_row_spread",
    "replay_config",
    "replay_fraction",
)


def recipe_name(stage: str, variant: str | None = None) -> str:
    """A stage's recipe name under `RECIPES_DIR` (no `.yaml`): `stage2_cross_modal`, or
    `pretrained_lora/stage2_cross_modal` for a variant that has a file for that stage."""
    name = RECIPES[stage]
    if variant is not None and (RECIPES_DIR / variant / f"{name}.yaml").exists():
        return f"{variant}/{name}"
    return name


def recipe_path(name: str) -> Path:
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("stage*.yaml"))
        raise FileNotFoundError(f"No recipe {name!r} in {RECIPES_DIR}; known: {', '.join(known)}.")
    return path


def load_recipe(name: str) -> dict[str, Any]:
    """The fields of the recipe `name` (e.g. `stage3_chain_of_modality`), as the YAML file writes them."""
    return copy.deepcopy(_read(recipe_path(name)))


@lru_cache(maxsize=32)
def _read(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def stage_method(name: str) -> dict[str, Any]:
    """The method fields (`METHOD_FIELDS`) the recipe `name` sets, ready for `SpeechGPTTrainingConfig`."""
    recipe = load_recipe(name)
    return {key: value for key, value in recipe.items() if key in METHOD_FIELDS}


def replay_fraction_of(name: str) -> float:
    """How many rehearsed rows the recipe mixes in, as a fraction of the stage's own (0 when it rehearses none)."""
    method = stage_method(name)
    return float(method["replay_fraction"]) if method.get("replay_config") else 0.0


__all__ = [
    "METHOD_FIELDS",
    "PRETRAINED_LORA",
    "RECIPES_DIR",
    "load_recipe",
    "recipe_name",
    "recipe_path",
    "replay_fraction_of",
    "stage_method",
]
