"""Registers the SpeechGPT pipelines with transformers, once, on package import (from `speechgpt_hf._auto`).

"speech-to-text" and "speech-to-speech" are new tasks. "text-to-audio" and "any-to-any" get SpeechGPT classes in the stock classes' place, which build the stock pipeline for every other model;
SpeechGPT configs are mapped to the Auto classes those tasks load with, so `pipeline(task, model=repo)` loads a
SpeechGPT from a repo id.
"""

from __future__ import annotations

import logging

import transformers
from transformers import AutoModelForCausalLM
from transformers.pipelines import PIPELINE_REGISTRY

from ..models.speechgpt import SpeechGPTConfig, SpeechGPTForCausalLM
from .any_to_any import SpeechGPTAnyToAnyPipeline
from .speech_in import SpeechToSpeechPipeline, SpeechToTextPipeline
from .text_to_audio import SpeechGPTTextToAudioPipeline

# The stock task, the Auto class it loads a repo with, and the SpeechGPT class registered for it.
STOCK_TASKS = (
    ("text-to-audio", "AutoModelForTextToWaveform", SpeechGPTTextToAudioPipeline),
    ("any-to-any", "AutoModelForMultimodalLM", SpeechGPTAnyToAnyPipeline),
)


def register_pipelines() -> None:
    """Adds the speech-to-text and speech-to-speech tasks and puts SpeechGPT classes under the stock tasks."""
    for task, pipeline_class in (
        ("speech-to-text", SpeechToTextPipeline),
        ("speech-to-speech", SpeechToSpeechPipeline),
    ):
        PIPELINE_REGISTRY.register_pipeline(
            task, pipeline_class=pipeline_class, pt_model=AutoModelForCausalLM, type="multimodal"
        )
    for task, auto_name, pipeline_class in STOCK_TASKS:
        auto_class = getattr(transformers, auto_name, None)
        if task not in PIPELINE_REGISTRY.supported_tasks or auto_class is None:
            continue  # this transformers has no such task
        auto_class.register(SpeechGPTConfig, SpeechGPTForCausalLM, exist_ok=True)
        _replace_stock_task(task, pipeline_class)


def _replace_stock_task(task: str, pipeline_class: type) -> None:
    """Registers `pipeline_class` for a stock task, keeping the task's model classes, default model and type.
    transformers warns on every overwrite; this one is intended (the class defers to the stock one), so it is quiet."""
    stock = PIPELINE_REGISTRY.supported_tasks[task]
    registry_logger = logging.getLogger("transformers.pipelines.base")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        PIPELINE_REGISTRY.register_pipeline(
            task,
            pipeline_class=pipeline_class,
            pt_model=stock.get("pt"),
            default=stock.get("default"),
            type=stock.get("type"),
        )
    finally:
        registry_logger.setLevel(level)


__all__ = ["register_pipelines"]
