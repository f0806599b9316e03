"""SpeechGPT under transformers' "text-to-audio" task (alias "text-to-speech").

The stock `TextToAudioPipeline` cannot drive a SpeechGPT cleanly: it tokenises the bare text (a SpeechGPT needs it
inside a `[Human]: … This is input: …` prompt), expects `generate` or `processor.decode` to give a waveform (a
SpeechGPT generates unit tokens, which a separate vocoder repo voices), and reads the sampling rate from the LM's
config (it is the vocoder's). So this class is registered for the task in the stock class's place; for any other
model it builds the stock pipeline.
"""

from __future__ import annotations

from typing import Any

from transformers.pipelines.text_to_audio import TextToAudioPipeline

from ..models.speechgpt.prompt_format import format_cross_modal_instruction
from ..models.speechgpt.task_descriptions import default_task_description
from .base import SpeechGPTPipeline, StockTaskDispatch, reject_chat

MODES = ("read", "answer")


class SpeechGPTTextToAudioPipeline(StockTaskDispatch, SpeechGPTPipeline):
    """`pipeline("text-to-audio", model=repo)` for a SpeechGPT: text in, `{"audio", "sampling_rate"}` out.

    `mode="read"` (the default) asks the model to speak the text with the cross-modal TTS prompt (`instruction`
    replaces its task description); `mode="answer"` asks it to answer the text instruction in speech (chain of
    modality). Other keywords go to `generate`. "audio" is empty if the model answered without speech units.
    """

    stock_pipeline = TextToAudioPipeline
    components = {"vocoder": True}
    preprocess_parameters = ("mode", "instruction")

    def preprocess(self, text: Any, mode: str = "read", instruction: str | None = None) -> dict[str, Any]:
        reject_chat(text)
        if not isinstance(text, str) or not text.strip():
            raise TypeError(f"The text-to-audio pipeline takes a non-empty string, not {type(text).__name__} {text!r}.")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}.")
        if mode == "answer":
            if instruction is not None:
                raise ValueError("mode='answer' answers the text itself: leave `instruction` unset.")
            return self._prompt_inputs(self.chat.instruction(text=text, output_modality="speech"))
        description = instruction or default_task_description("tts")
        return self._prompt_inputs(format_cross_modal_instruction(description, text.strip()))

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        return {"audio": self.speak(self.parse(model_outputs["answer_ids"])), "sampling_rate": self.sampling_rate}


__all__ = ["SpeechGPTTextToAudioPipeline"]
