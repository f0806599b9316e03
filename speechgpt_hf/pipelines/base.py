"""What every SpeechGPT pipeline shares: the unit tokenizer and vocoder beside the LM, one prompt in, one answer out.

A SpeechGPT is a causal LM whose vocabulary holds speech units, so a pipeline needs two more models: the unit
tokenizer (speech in) and the vocoder (speech out). They come from the `pipeline(...)` call (`unit_tokenizer=`,
`vocoder=`), or from the repos that the processor (or else the LM's config) names; a task loads only those it uses. Each call builds a SpeechGPT prompt (`preprocess`), runs the
stock `generate` (`_forward`, with the unit-span constraint) and parses the answer (`postprocess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from transformers import GenerationConfig, LogitsProcessorList, Pipeline

from ..audio import AudioInputError
from ..inference.batching import generate_answers, pad_token_id
from ..inference.chat import SpeechGPTChat
from ..models.speechgpt import SpeechGPTForCausalLM, SpeechGPTProcessor, SpeechGPTResponse

if TYPE_CHECKING:
    from ..models.unit_tokenizer.modeling_unit_tokenizer import SpeechUnitTokenizer
    from ..models.vocoder_protocol import UnitVocoder

# The pipeline's names of the models beside the LM -> the processor's.
PROCESSOR_COMPONENTS = {"unit_tokenizer": "audio_tokenizer", "vocoder": "vocoder"}
# A Pipeline's flags saying which preprocessing classes `pipeline(...)` loads for it.
LOAD_FLAGS = (
    "_load_processor",
    "_load_tokenizer",
    "_load_feature_extractor",
    "_load_image_processor",
    "_load_video_processor",
)


class StockTaskDispatch:
    """Mixin of a SpeechGPT pipeline registered under a stock task: for a model that is not a SpeechGPT it builds
    the stock pipeline `stock_pipeline` instead, so every other model runs as before. Subclasses take the stock
    pipeline's load flags, so that `pipeline(...)` loads the preprocessing classes the stock pipeline expects."""

    stock_pipeline: ClassVar[type[Pipeline]]

    def __new__(cls, model: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(model, SpeechGPTForCausalLM):
            return super().__new__(cls)
        return cls.stock_pipeline(model, *args, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag in LOAD_FLAGS:
            setattr(cls, flag, getattr(cls.stock_pipeline, flag))


class SpeechGPTPipeline(Pipeline):
    """Base of the SpeechGPT pipelines: builds the prompt, generates, parses; subclasses say what goes in and out.

    Args (beyond the stock pipeline's):
        unit_tokenizer: a SpeechUnitTokenizer (default: the processor's, else the one the model config's
            `unit_tokenizer_repo` names).
        vocoder: a UnitHiFiGANVocoder (default: the processor's, else the one the model config's `vocoder_repo`
            names).
        speaker_id: the voice of a multi-speaker vocoder, by index or name (the first voice when omitted).
        constrain_units: keep unit tokens inside `<sosp>…<eosp>` spans while decoding (see `UnitSpanLogitsProcessor`).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False
    _pipeline_calls_generate = True
    _default_generation_config = GenerationConfig(max_new_tokens=512)

    # The models beside the LM that a task uses ("unit_tokenizer", "vocoder"), each marked required or not; the
    # config's repos are loaded for these only.
    components: ClassVar[dict[str, bool]] = {}
    # Call parameters that shape the prompt or the output; every other keyword goes to `generate`.
    preprocess_parameters: ClassVar[tuple[str, ...]] = ()
    postprocess_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: SpeechGPTForCausalLM,
        *args: Any,
        unit_tokenizer: SpeechUnitTokenizer | None = None,
        vocoder: UnitVocoder | None = None,
        speaker_id: int | str | None = None,
        constrain_units: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, SpeechGPTForCausalLM):
            raise TypeError(
                f"{type(self).__name__} runs a SpeechGPTForCausalLM, not a {type(model).__name__}: load the model "
                "with AutoModelForCausalLM.from_pretrained(repo) after `import speechgpt_hf`, or pass the repo id."
            )
        super().__init__(model, *args, **kwargs)
        if self.processor is None and self.tokenizer is not None and getattr(model.config, "num_unit_merges", 0):
            raise ValueError(
                f"This model reads a BPE over its units ({model.config.num_unit_merges} merges), which only its "
                "processor holds: pass processor=AutoProcessor.from_pretrained(repo) (after `import speechgpt_hf`)."
            )
        if self.processor is None and self.tokenizer is not None:
            self.processor = SpeechGPTProcessor(self.tokenizer, num_units=model.config.num_units)
        if not isinstance(self.processor, SpeechGPTProcessor):
            raise ValueError(
                f"{type(self).__name__} needs the model's SpeechGPTProcessor: pass processor=AutoProcessor."
                "from_pretrained(repo) (after `import speechgpt_hf`) or save one in the model repo."
            )
        unit_tokenizer = self._component(unit_tokenizer, "unit_tokenizer")
        vocoder = self._component(vocoder, "vocoder")
        self.chat = SpeechGPTChat(
            self.model,
            self.processor,
            unit_tokenizer=unit_tokenizer,
            vocoder=vocoder,
            speaker_id=speaker_id,
            constrain_units=constrain_units,
        )

    def _component(self, given: Any | None, name: str) -> Any | None:
        """`given`, or (if this task uses it) the processor's, else the model the LM's config names, on this
        pipeline's device. A component the task does not use is not loaded."""
        config_key = f"{name}_repo"
        if given is None and name in self.components:
            given = getattr(self.processor, PROCESSOR_COMPONENTS[name])
        if given is None and name in self.components and getattr(self.model.config, config_key, None):
            from transformers import AutoModel

            given = AutoModel.from_pretrained(self.model.config.resolve_component_path(config_key))
        if given is None and self.components.get(name):
            raise ValueError(
                f"The {self.task or type(self).__name__} pipeline needs a {name}: pass {name}=… to pipeline(), or "
                f"set {config_key} in the model's config."
            )
        return None if given is None else given.to(self.device).eval()

    def _sanitize_parameters(
        self, generate_kwargs: dict[str, Any] | None = None, **parameters: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Splits call parameters: the prompt's and the output's by name, everything else for `generate`."""
        preprocess = {k: parameters[k] for k in self.preprocess_parameters if k in parameters}
        postprocess = {k: parameters[k] for k in self.postprocess_parameters if k in parameters}
        parameters = {k: v for k, v in parameters.items() if k not in preprocess and k not in postprocess}
        settings = dict(generate_kwargs or {})
        twice = sorted(settings.keys() & parameters.keys())
        if twice:
            raise ValueError(f"{twice} given twice, in generate_kwargs and as keywords: pass each once.")
        settings.update(parameters)
        return preprocess, ({"generate_kwargs": settings} if settings else {}), postprocess

    def _prompt_inputs(self, instruction: str) -> dict[str, Any]:
        """Model inputs for one `[Human]` turn (the system prompt first)."""
        encoded = self.processor(self.processor.build_prompt(instruction), return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def __call__(self, inputs: Any = None, *args: Any, batch_size: int | None = None, **kwargs: Any) -> Any:
        """One input gives one result. A list of inputs gives a list of results, one per input and in its order,
        generated `batch_size` inputs at a time in one `generate` call (default: the `batch_size` given to
        `pipeline(...)`, else 1, one by one); greedy answers are the ones each input gets alone."""
        if not isinstance(inputs, list):
            return super().__call__(inputs, *args, **kwargs)
        if any(isinstance(item, dict) and "role" in item for item in inputs):
            reject_chat(inputs)  # chat messages, not a list of requests
        if args:
            raise TypeError("Give the inputs as one list; other arguments by name.")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
        preprocess, forward, postprocess = (
            {**defaults, **given}
            for defaults, given in zip(
                (self._preprocess_params, self._forward_params, self._postprocess_params),
                self._sanitize_parameters(**kwargs),
                strict=True,
            )
        )
        size = batch_size or self._batch_size or 1
        results: list[Any] = []
        for start in range(0, len(inputs), size):
            prepared = [self.preprocess(item, **preprocess) for item in inputs[start : start + size]]
            answers = generate_answers(
                self.model,
                [item["input_ids"][0] for item in prepared],
                pad_token_id(self.processor.tokenizer),
                **self._generation_settings(forward.get("generate_kwargs")),
            )
            results += [
                self.postprocess({"answer_ids": ids, "request": item.get("request", {})}, **postprocess)
                for item, ids in zip(prepared, answers, strict=True)
            ]
        return results

    def _generation_settings(self, generate_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The call's `generate` keywords over the pipeline's defaults, with the unit-span constraint."""
        settings = self._prepare_generate_kwargs(dict(generate_kwargs or {}))
        if self.chat.unit_span is not None:
            settings["logits_processor"] = LogitsProcessorList(
                [*(settings.get("logits_processor") or []), self.chat.unit_span]
            )
        return settings

    def _forward(self, model_inputs: dict[str, Any], generate_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Generates the answer; what preprocess put beside the ids (under "request") passes through."""
        request = model_inputs.pop("request", {})
        output = self.model.generate(**model_inputs, **self._generation_settings(generate_kwargs))
        sequences = getattr(output, "sequences", output)
        return {"answer_ids": sequences[0, model_inputs["input_ids"].shape[1] :], "request": request}

    def parse(self, answer_ids: Any) -> SpeechGPTResponse:
        """The generated ids (a tensor or a list) as transcript, text answer and units."""
        return self.processor.parse(answer_ids.tolist() if hasattr(answer_ids, "tolist") else list(answer_ids))

    def speak(self, response: SpeechGPTResponse) -> np.ndarray:
        """The answer's units voiced by the vocoder (1-D float32); empty when the model answered without speech."""
        if not response.units:
            return np.zeros(0, dtype=np.float32)
        speaker = {} if self.chat.speaker_id is None else {"speaker_id": self.chat.speaker_id}
        return self.chat.vocoder.synthesize(response.units, **speaker).numpy()

    @property
    def sampling_rate(self) -> int | None:
        """The rate of the audio this pipeline returns (its vocoder's), or None without a vocoder."""
        return None if self.chat.vocoder is None else int(self.chat.vocoder.config.sampling_rate)


def reject_chat(inputs: Any) -> None:
    """Raises for chat messages: these pipelines answer one request."""
    if isinstance(inputs, (list, tuple)) or hasattr(inputs, "messages"):
        raise TypeError(
            "SpeechGPT pipelines take one request, not chat messages: for a conversation use "
            "speechgpt_hf.SpeechGPTChat, which keeps the turns."
        )


def speech_input(inputs: Any, sampling_rate: int | None, default_rate: int, task: str) -> tuple[Any, int | None]:
    """(audio, its rate) from what the stock audio pipelines take: a file path or its bytes, a waveform array (at
    `sampling_rate`, or `default_rate` when omitted, as the stock pipelines assume), or a dict with "array" (or
    "raw") and "sampling_rate"; anything else raises `AudioInputError`."""
    if isinstance(inputs, (str, Path)):
        if not Path(inputs).is_file():
            raise AudioInputError(
                f"The {task} pipeline takes speech, and {str(inputs)[:80]!r} is not an audio file: pass a recording's "
                "path, a waveform array (with sampling_rate=…), or {'array': …, 'sampling_rate': …}. Text goes to "
                "the 'text-to-audio' or 'any-to-any' task."
            )
        return str(inputs), None
    if isinstance(inputs, dict):
        audio = dict(inputs)
        if "array" not in audio and "raw" in audio:
            audio["array"] = audio.pop("raw")
        if audio.get("array") is not None and audio.get("sampling_rate") is None:
            raise AudioInputError("An audio dict needs its 'sampling_rate' next to its 'array'.")
        return audio, None
    if isinstance(inputs, bytes) or hasattr(inputs, "get_all_samples"):
        return inputs, None
    if isinstance(inputs, np.ndarray) or type(inputs).__name__ == "Tensor":
        return inputs, sampling_rate or default_rate
    raise AudioInputError(
        f"The {task} pipeline takes speech, not {type(inputs).__name__}: pass a recording's path, a waveform array "
        "(with sampling_rate=…), or {'array': …, 'sampling_rate': …}."
    )


__all__ = ["SpeechGPTPipeline", "StockTaskDispatch", "reject_chat", "speech_input"]
