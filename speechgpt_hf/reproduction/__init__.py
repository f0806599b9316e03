"""A small-scale SpeechGPT reproduction with held-out numbers (`speechgpt-hf reproduce`)."""

from .pipeline import run_reproduction
from .settings import PRESETS, ReproductionSettings

__all__ = ["PRESETS", "ReproductionSettings", "run_reproduction"]
