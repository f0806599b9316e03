"""SpeechGPT under transformers' "any-to-any" task.

The stock `AnyToAnyPipeline` takes only models mapped to `AutoModelForMultimodalLM`, and hands audio to
`processor(text=…, audio=…)` and answers to `processor.post_process_multimodal_output`, which a SpeechGPT's processor
does not have: its speech goes through a unit tokenizer and comes back through a vocoder, both separate repos. So
this class is registered for the task in the stock class's place; for any other model it builds the stock pipeline.
"""

from __future__ import annotations

from typing import Any

from transformers.pipelines.any_to_any import AnyToAnyPipeline

from .base import SpeechGPTPipeline, StockTaskDispatch, reject_chat

GENERATION_MODES = ("text", "audio")


class SpeechGPTAnyToAnyPipeline(StockTaskDispatch, SpeechGPTPipeline):
    """`pipeline("any-to-any", model=repo)` for a SpeechGPT: `text=` and/or `audio=` in, and as the stock pipeline
    `[{"input_text": …, "generated_text": …}]`, or `[{"input_text": …, "generated_audio": array}]` with
    `generation_mode="audio"`.

    One input alone is a chain-of-modality request answered in the wanted modality; text and audio together are
    sent as one free-form request, the speech after the text (e.g. "Transcribe this. This is input:" + a
    recording). `audio` is a path, a waveform array with `sampling_rate=…`, or {"array", "sampling_rate"}.
    """

    stock_pipeline = AnyToAnyPipeline
    components = {"unit_tokenizer": False, "vocoder": False}
    preprocess_parameters = ("sampling_rate", "generation_mode")
    postprocess_parameters = ("generation_mode",)

    def __call__(self, text: Any = None, audio: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        reject_chat(text)
        if kwargs.get("images") is not None or kwargs.get("videos") is not None:
            raise ValueError("A SpeechGPT hears and reads only: pass text= and/or audio=, no images or videos.")
        kwargs = {k: v for k, v in kwargs.items() if k not in ("images", "videos")}
        if text is None and audio is None:
            raise ValueError("Give text=, audio=, or both.")
        return super().__call__({"text": text, "audio": audio}, **kwargs)

    def preprocess(
        self, inputs: dict[str, Any], sampling_rate: int | None = None, generation_mode: str | None = None
    ) -> dict[str, Any]:
        mode = generation_mode or "text"
        if mode not in GENERATION_MODES:
            raise ValueError(f"generation_mode={generation_mode!r}: a SpeechGPT generates one of {GENERATION_MODES}.")
        if mode == "audio" and self.chat.vocoder is None:
            raise ValueError("generation_mode='audio' needs a vocoder: pass vocoder=… to pipeline().")
        text, audio = inputs["text"], inputs["audio"]
        wanted = None if text is not None and audio is not None else ("speech" if mode == "audio" else "text")
        request = self.chat.instruction(text=text, audio=audio, sampling_rate=sampling_rate, output_modality=wanted)
        return {**self._prompt_inputs(request), "request": {"input_text": text}}

    def postprocess(self, model_outputs: dict[str, Any], generation_mode: str | None = None) -> list[dict[str, Any]]:
        response = self.parse(model_outputs["answer_ids"])
        record = {"input_text": model_outputs["request"]["input_text"]}
        if generation_mode == "audio":
            return [{**record, "generated_audio": self.speak(response)}]
        return [{**record, "generated_text": response.text or ""}]


__all__ = ["SpeechGPTAnyToAnyPipeline"]
