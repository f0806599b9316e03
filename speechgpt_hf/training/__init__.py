"""Training: the three SpeechGPT stages on TRL's SFTTrainer (`sft`), their recipes, and the vocoder loop (`vocoder`).

`SpeechGPTTrainingConfig`, `train_stage`, `RECIPES_DIR` and `ACCELERATE_CONFIGS_DIR` are importable from here; TRL is
imported only when one of them is first used.
"""

from __future__ import annotations

from typing import Any

_FROM_SFT = ("ACCELERATE_CONFIGS_DIR", "RECIPES_DIR", "SpeechGPTTrainingConfig", "train_stage")


def __getattr__(name: str) -> Any:
    if name in _FROM_SFT:
        from . import sft

        return getattr(sft, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_FROM_SFT)
