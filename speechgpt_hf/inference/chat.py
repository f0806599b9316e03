"""SpeechGPTChat: the whole talking system (unit tokenizer -> LM -> vocoder) behind one multi-turn object.

`SpeechGPTChat.from_pretrained(repo)` loads the LM and its processor, which brings the unit tokenizer and vocoder
that the repo names, each loaded when first needed, on the LM's device. `respond()` answers one turn (text and/or
speech in, parsed answer and speech out); `respond_batch()` answers many independent requests in batches; `stream()` yields text and audio while the answer is generated. Earlier
turns are kept and the oldest dropped when the prompt would outgrow the model's context.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLING_RATE
from ..models.speechgpt.chat_template import history_messages
from ..models.speechgpt.prompt_format import (
    EOA,
    INPUT_MARKER,
    Modality,
    SpeechGPTResponse,
    units_to_string,
)
from ..models.speechgpt.speech_components import placed
from .batching import generate_answers, pad_token_id
from .constrained_decoding import unit_span_logits_processor
from .speech_streamer import SpeechUnitStreamer, StreamEvent

if TYPE_CHECKING:
    from ..models.speechgpt.modeling_speechgpt import SpeechGPTForCausalLM
    from ..models.speechgpt.processing_speechgpt import SpeechGPTProcessor
    from ..models.unit_tokenizer.modeling_unit_tokenizer import SpeechUnitTokenizer
    from ..models.vocoder_protocol import UnitVocoder

# The `from_pretrained` options that say where and how to fetch files, for the processor as for the LM.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "subfolder")
# Name of the thread that runs `generate` while `SpeechGPTChat.stream` reads its events.
GENERATION_THREAD = "speechgpt-chat-generate"


@dataclass
class SpeechGPTReply:
    """One answered turn: the parsed answer, its speech (if it has units and a vocoder is loaded), and the raw text."""

    response: SpeechGPTResponse
    waveform: np.ndarray | None = None
    sampling_rate: int = SAMPLING_RATE
    generated_text: str = ""
    prompt: str = field(default="", repr=False)


class SpeechGPTChat:
    """A SpeechGPT conversation.

    Args:
        model: a SpeechGPTForCausalLM.
        processor: its SpeechGPTProcessor.
        unit_tokenizer: a SpeechUnitTokenizer, needed for speech input (the processor's `audio_tokenizer` when omitted).
        vocoder: a UnitHiFiGANVocoder, needed for speech output (the processor's `vocoder` when omitted).
        speaker_id: the voice of a multi-speaker vocoder: its index, or its name in the vocoder's `speaker_names`
            (the first voice when omitted).
        generation_kwargs: defaults for `generate` (the model's generation config applies otherwise).
        constrain_units: decode with `UnitSpanLogitsProcessor` (unit tokens only inside `<sosp>…<eosp>`, no text
            inside a span), so a young model cannot leak units into its text; False decodes freely.

    The unit tokenizer and vocoder run where the LM runs: each is moved to `model.device` when it is used (so also
    after the model is moved), and the processor's are loaded there (see `SpeechGPTProcessor.speech_device`).
    """

    def __init__(
        self,
        model: SpeechGPTForCausalLM,
        processor: SpeechGPTProcessor,
        unit_tokenizer: SpeechUnitTokenizer | None = None,
        vocoder: UnitVocoder | None = None,
        speaker_id: int | str | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        constrain_units: bool = True,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        if hasattr(processor, "speech_device"):
            processor.speech_device = model.device
        self._unit_tokenizer = placed(unit_tokenizer, model.device)
        self._vocoder = None if vocoder is None else placed(vocoder.eval(), model.device)
        self._speaker = speaker_id
        if speaker_id is not None:  # a voice the vocoder lacks is refused now, not at the first spoken answer
            _speaker_index(self.vocoder, speaker_id)
        self.generation_kwargs = {"max_new_tokens": 512, **(generation_kwargs or {})}
        self.unit_span = unit_span_logits_processor(processor) if constrain_units else None
        self.history: list[tuple[str, str]] = []

    @classmethod
    def from_pretrained(
        cls,
        repo: str,
        unit_tokenizer: SpeechUnitTokenizer | None = None,
        vocoder: UnitVocoder | None = None,
        constrain_units: bool = True,
        speaker_id: int | str | None = None,
        device: str | Any | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        **model_kwargs: Any,
    ) -> SpeechGPTChat:
        """Loads the LM and processor from `repo`; the unit tokenizer and vocoder (unless given) are the processor's,
        those its repo names, loaded when first needed. All of them run on `device` ("cuda", "cpu", …; None: where
        `from_pretrained` puts the LM, or the first device of a `device_map=` among `model_kwargs`).

        `revision` is the commit, branch or tag of `repo` that the LM and the processor load; `token` and the other
        Hub options among `model_kwargs` (`cache_dir`, `local_files_only`, `force_download`, `proxies`,
        `subfolder`) go to the LM, the processor and, through it, the unit tokenizer and vocoder (which live in
        repos of their own, at the revisions their pointers name)."""
        from transformers import AutoModelForCausalLM, AutoProcessor

        if device is not None:
            if model_kwargs.get("device_map") is not None:
                raise ValueError("Give `device` or `device_map`, not both.")
            model_kwargs["device_map"] = device
        hub = {"revision": revision, "token": token}
        hub.update({key: model_kwargs[key] for key in HUB_KWARGS if key in model_kwargs})
        hub = {key: value for key, value in hub.items() if value is not None}
        model = AutoModelForCausalLM.from_pretrained(repo, **{**model_kwargs, **hub})
        processor = AutoProcessor.from_pretrained(repo, **hub)
        return cls(
            model,
            processor,
            unit_tokenizer=unit_tokenizer,
            vocoder=vocoder,
            constrain_units=constrain_units,
            speaker_id=speaker_id,
        )

    @property
    def unit_tokenizer(self) -> SpeechUnitTokenizer | None:
        """The SpeechUnitTokenizer for speech input: the one given, else the processor's; on the LM's device."""
        given = self._unit_tokenizer
        return self._on_model_device(given if given is not None else getattr(self.processor, "audio_tokenizer", None))

    @property
    def vocoder(self) -> UnitVocoder | None:
        """The UnitHiFiGANVocoder for speech output: the one given, else the processor's; on the LM's device."""
        given = self._vocoder
        return self._on_model_device(given if given is not None else getattr(self.processor, "vocoder", None))

    def _on_model_device(self, component: Any | None) -> Any | None:
        """`component`, moved to the LM's device if it is elsewhere (the LM may have moved since it was placed)."""
        device = self.model.device
        if component is not None and getattr(component, "device", device) != device:
            component = placed(component, device)
        return component

    @property
    def speaker_id(self) -> int | None:
        """The vocoder voice answers are spoken in (None for a single-voice vocoder, or without one)."""
        return _speaker_index(self.vocoder, self._speaker)

    def reset(self) -> None:
        """Forgets the conversation so far."""
        self.history = []

    def instruction(
        self,
        text: str | None = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        output_modality: Modality | str | None = None,
    ) -> str:
        """The `[Human]` turn for text and/or speech, speech as a unit string.

        With `output_modality` ("speech" or "text") it is a chain-of-modality request for that kind of answer to
        one instruction, spoken or written, as the processor's prompt format writes it. None keeps a free-form
        request: the units go after "This is input:" when the text ends with it (ASR/TTS-style requests), after the
        text otherwise. The processor's chat template then renders the turn in that format.
        """
        if text is None and audio is None:
            raise ValueError("Say something: give `text`, `audio`, or both.")
        speech = None if audio is None else self._unit_string(audio, sampling_rate)
        if output_modality is not None:
            if speech is not None and text and text.strip():
                raise ValueError(
                    "A request with output_modality takes one instruction, spoken or written: give `audio` or "
                    "`text`, not both (output_modality=None sends both as one free-form request)."
                )
            source = Modality.TEXT if speech is None else Modality.SPEECH
            return self.processor.chain_of_modality_request(speech or text, output_modality, source)
        if speech is None:
            return text.strip()
        if text and text.rstrip().endswith(INPUT_MARKER):
            return f"{text.rstrip()} {speech}"
        return f"{text.strip()} {speech}" if text else speech

    def _unit_string(self, audio: Any, sampling_rate: int | None) -> str:
        if self.unit_tokenizer is None:
            raise ValueError(
                "Speech input needs a unit tokenizer: pass `unit_tokenizer=` or set unit_tokenizer_repo in the config."
            )
        units = self.unit_tokenizer.encode(audio, sampling_rate=sampling_rate).units
        if not units:
            raise ValueError("The audio gave no speech units (is it empty or silent?).")
        return units_to_string(units)

    def _prompt_ids(self, instruction: str, max_new_tokens: int) -> tuple[str, Any]:
        """The prompt, rendered by the processor's chat template, with as much history as fits the context next to
        `max_new_tokens` (oldest turns dropped first)."""
        limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        room = None if limit is None else limit - max_new_tokens
        while True:
            messages = history_messages(self.history, instruction)
            prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            inputs = self.processor(prompt, return_tensors="pt")
            if room is None or inputs["input_ids"].shape[1] <= room or not self.history:
                break
            self.history = self.history[1:]
        if room is not None and inputs["input_ids"].shape[1] > room:
            raise ValueError(
                f"The prompt is {inputs['input_ids'].shape[1]} tokens, more than the {room} the model can take "
                "with max_new_tokens; shorten the input or lower max_new_tokens."
            )
        return prompt, inputs.to(self.model.device)

    def _finish(self, instruction: str, prompt: str, answer_ids: list[int]) -> SpeechGPTReply:
        generated = self.processor.decode(answer_ids, skip_special_tokens=False)
        response = self.processor.parse(generated)
        # The turn kept for the next prompt ends at the answer's end, without the tokenizer's EOS.
        answer = self.processor.decode(answer_ids, skip_special_tokens=True)
        # Prompts hold units: the answer's spans in a unit BPE's pieces are written back in units.
        self.history.append((instruction, self.processor.with_units(answer.split(EOA)[0].strip())))
        return SpeechGPTReply(response=response, generated_text=generated, prompt=prompt)

    def respond(
        self,
        text: str | None = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        output_modality: Modality | str | None = None,
        **generate_kwargs: Any,
    ) -> SpeechGPTReply:
        """Answers one turn (`output_modality`: see `instruction`); speaks the answer's units when a vocoder is loaded."""
        import torch

        instruction = self.instruction(text, audio, sampling_rate, output_modality)
        settings = self._generation_settings(generate_kwargs)
        prompt, inputs = self._prompt_ids(instruction, settings["max_new_tokens"])
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings)
        reply = self._finish(instruction, prompt, output[0, inputs["input_ids"].shape[1] :].tolist())
        units = reply.response.units
        if units and self.vocoder is not None:
            speaker = {} if self.speaker_id is None else {"speaker_id": self.speaker_id}
            reply.waveform = self.vocoder.synthesize(units, **speaker).numpy()
            reply.sampling_rate = self.vocoder.config.sampling_rate
        return reply

    def respond_batch(
        self,
        requests: Sequence[str | dict[str, Any]],
        output_modality: Modality | str | None = None,
        batch_size: int = 8,
        **generate_kwargs: Any,
    ) -> list[SpeechGPTReply]:
        """Answers independent requests, one reply each in their order, `batch_size` at a time in one `generate`
        call. A request is a text, or a dict of `respond`'s arguments (`text`, `audio`, `sampling_rate`,
        `output_modality`). Each is answered as a conversation's first turn: the history is neither used nor
        changed. With greedy decoding every reply is the one `respond` gives the request alone."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
        settings = self._generation_settings(generate_kwargs)
        instructions = [self._batch_instruction(request, output_modality) for request in requests]
        prompts = [
            self.processor.apply_chat_template(history_messages([], instruction), add_generation_prompt=True)
            for instruction in instructions
        ]
        ids = [self.processor(prompt, return_tensors="pt")["input_ids"][0] for prompt in prompts]
        replies = []
        for start in range(0, len(ids), batch_size):
            answers = generate_answers(
                self.model, ids[start : start + batch_size], pad_token_id(self.processor.tokenizer), **settings
            )
            batch_prompts = prompts[start : start + batch_size]
            replies += [self._reply(prompt, answer) for prompt, answer in zip(batch_prompts, answers, strict=True)]
        self._voice([reply for reply in replies if reply.response.units])
        return replies

    def _batch_instruction(self, request: str | dict[str, Any], output_modality: Modality | str | None) -> str:
        fields = {"text": request} if isinstance(request, str) else dict(request)
        unknown = sorted(set(fields) - {"text", "audio", "sampling_rate", "output_modality"})
        if unknown:
            raise ValueError(f"A request holds text, audio, sampling_rate and output_modality, not {unknown}.")
        fields.setdefault("output_modality", output_modality)
        return self.instruction(**fields)

    def _reply(self, prompt: str, answer_ids: list[int]) -> SpeechGPTReply:
        generated = self.processor.decode(answer_ids, skip_special_tokens=False)
        return SpeechGPTReply(response=self.processor.parse(generated), generated_text=generated, prompt=prompt)

    def _voice(self, replies: list[SpeechGPTReply]) -> None:
        """Speaks the units of `replies` in one batched vocoder call."""
        if not replies or self.vocoder is None:
            return
        speaker = {} if self.speaker_id is None else {"speaker_id": self.speaker_id}
        waveforms = self.vocoder.synthesize([reply.response.units for reply in replies], **speaker)
        for reply, waveform in zip(replies, waveforms, strict=True):
            reply.waveform = waveform.numpy() if hasattr(waveform, "numpy") else np.asarray(waveform)
            reply.sampling_rate = self.vocoder.config.sampling_rate

    def stream(
        self,
        text: str | None = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        output_modality: Modality | str | None = None,
        **generate_kwargs: Any,
    ) -> Iterator[StreamEvent | SpeechGPTReply]:
        """Yields `StreamEvent`s (text deltas, audio chunks) as the answer is generated, then the `SpeechGPTReply`
        (`output_modality`: see `instruction`). Generation stops soon after the caller stops iterating (or closes
        this generator)."""
        instruction = self.instruction(text, audio, sampling_rate, output_modality)
        settings = self._generation_settings(generate_kwargs)
        prompt, inputs = self._prompt_ids(instruction, settings["max_new_tokens"])
        streamer = SpeechUnitStreamer(self.processor, vocoder=self.vocoder, speaker_id=self.speaker_id)
        abandoned = threading.Event()
        settings["stopping_criteria"] = _with_stop(settings.get("stopping_criteria"), abandoned)
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=self._generate_into, args=(inputs, streamer, settings, result), name=GENERATION_THREAD, daemon=True
        )
        worker.start()
        try:
            audio_chunks = []
            for event in streamer:
                if event.audio is not None:
                    audio_chunks.append(event.audio)
                yield event
            worker.join()
        finally:
            abandoned.set()
        if "error" in result:
            raise result["error"]
        reply = self._finish(instruction, prompt, result["ids"][0, inputs["input_ids"].shape[1] :].tolist())
        if audio_chunks:
            reply.waveform = np.concatenate(audio_chunks)
            reply.sampling_rate = self.vocoder.config.sampling_rate
        yield reply

    def _generation_settings(self, generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The chat's defaults, then this call's; the unit-span constraint joins any given logits processors."""
        from transformers import LogitsProcessorList

        settings = {**self.generation_kwargs, **generate_kwargs}
        if self.unit_span is not None:
            settings["logits_processor"] = LogitsProcessorList(
                [*(settings.get("logits_processor") or []), self.unit_span]
            )
        return settings

    def _generate_into(self, inputs: Any, streamer: SpeechUnitStreamer, settings: dict[str, Any], result: dict) -> None:
        """Runs `generate` in the streaming thread; an error is stored in `result` for the reading thread."""
        import torch

        try:
            with torch.inference_mode():
                result["ids"] = self.model.generate(**inputs, streamer=streamer, **settings)
        except BaseException as error:  # re-raised in the reading thread
            result["error"] = error
            streamer.end()


def default_device() -> str:
    """Where the command line and the evaluation run a system by default: "cuda" when a GPU is there, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _speaker_index(vocoder: UnitVocoder | None, speaker: int | str | None) -> int | None:
    """The speaker id to voice answers with: a multi-speaker vocoder speaks with its first voice unless told."""
    voices = getattr(vocoder.config, "num_speakers", 0) if vocoder is not None else 0
    if not voices:
        if speaker is not None and vocoder is not None:
            raise ValueError(f"This vocoder has a single voice: leave speaker_id unset (got {speaker!r}).")
        return None
    names = list(getattr(vocoder.config, "speaker_names", None) or [])
    if speaker is None:
        return 0
    if isinstance(speaker, str):
        if speaker not in names:
            raise ValueError(f"The vocoder has no voice {speaker!r}; its voices are {names}.")
        return names.index(speaker)
    if not 0 <= int(speaker) < voices:
        raise ValueError(f"speaker_id {speaker} is outside 0..{voices - 1} (this vocoder's voices).")
    return int(speaker)


def _with_stop(criteria: Any, stop: threading.Event) -> Any:
    """`criteria` (a StoppingCriteriaList, a list, or None) plus one that ends generation once `stop` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopWhenSet(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([*(criteria or []), _StopWhenSet()])


__all__ = ["SpeechGPTChat", "SpeechGPTReply", "default_device"]
