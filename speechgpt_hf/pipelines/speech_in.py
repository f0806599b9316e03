"""The registered "speech-to-text" and "speech-to-speech" tasks: a recording in, a transcript, a text answer or a
spoken answer out.

transformers' own "automatic-speech-recognition" pipeline loads only CTC, TDT and speech-seq2seq models and feeds
them features from a feature extractor; a SpeechGPT is a causal LM that hears through a unit tokenizer, so these
tasks are registered for it instead.
"""

from __future__ import annotations

from typing import Any

from ..models.speechgpt.prompt_format import INPUT_MARKER
from ..models.speechgpt.task_descriptions import default_task_description
from .base import SpeechGPTPipeline, speech_input

MODES = ("transcribe", "answer")


class SpeechGPTSpeechInPipeline(SpeechGPTPipeline):
    """A recording in (a path, a waveform array with `sampling_rate`, or {"array", "sampling_rate"}); subclasses
    say what the model is asked and what comes out."""

    components = {"unit_tokenizer": True}

    def _speech(self, inputs: Any, sampling_rate: int | None) -> tuple[Any, int | None]:
        default_rate = int(self.chat.unit_tokenizer.config.sampling_rate)
        return speech_input(inputs, sampling_rate, default_rate, self.task or "speech")


class SpeechToTextPipeline(SpeechGPTSpeechInPipeline):
    """`pipeline("speech-to-text", model=repo)`: speech in, `{"text": …}` out.

    `mode="transcribe"` (the default) asks for a transcript with the cross-modal ASR prompt (`instruction` replaces
    its task description); `mode="answer"` asks the model to answer the spoken instruction in text (chain of
    modality) and also returns what it heard as "transcript". Other keywords (e.g. `max_new_tokens`, or
    `generate_kwargs={...}`) go to `generate`.
    """

    preprocess_parameters = ("sampling_rate", "mode", "instruction")

    def preprocess(
        self, inputs: Any, sampling_rate: int | None = None, mode: str = "transcribe", instruction: str | None = None
    ) -> dict[str, Any]:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}.")
        audio, rate = self._speech(inputs, sampling_rate)
        if mode == "answer":
            if instruction is not None:
                raise ValueError("mode='answer' answers the spoken instruction itself: leave `instruction` unset.")
            request = self.chat.instruction(audio=audio, sampling_rate=rate, output_modality="text")
        else:
            request = self.chat.instruction(text=_transcription_request(instruction), audio=audio, sampling_rate=rate)
        return {**self._prompt_inputs(request), "request": {"mode": mode}}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        response = self.parse(model_outputs["answer_ids"])
        if model_outputs["request"]["mode"] == "answer":
            return {"text": response.text or "", "transcript": response.transcript or ""}
        return {"text": response.text or ""}


class SpeechToSpeechPipeline(SpeechGPTSpeechInPipeline):
    """`pipeline("speech-to-speech", model=repo)`: a spoken instruction in, the spoken answer out as
    `{"audio": float32 array, "sampling_rate": int, "text": …, "transcript": …}` (chain of modality: what the model
    heard, its text answer, then its speech; "audio" is empty if it answered without speech units)."""

    components = {"unit_tokenizer": True, "vocoder": True}
    preprocess_parameters = ("sampling_rate",)

    def preprocess(self, inputs: Any, sampling_rate: int | None = None) -> dict[str, Any]:
        audio, rate = self._speech(inputs, sampling_rate)
        return self._prompt_inputs(self.chat.instruction(audio=audio, sampling_rate=rate, output_modality="speech"))

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        response = self.parse(model_outputs["answer_ids"])
        return {
            "audio": self.speak(response),
            "sampling_rate": self.sampling_rate,
            "text": response.text or "",
            "transcript": response.transcript or "",
        }


def _transcription_request(description: str | None) -> str:
    """The ASR request the units follow: `description` (default: the first shipped one) then "This is input:"."""
    description = (description or default_task_description("asr")).strip()
    return description if description.endswith(INPUT_MARKER) else f"{description} {INPUT_MARKER}"


__all__ = ["SpeechToSpeechPipeline", "SpeechToTextPipeline"]
