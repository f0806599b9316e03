"""SpeechGPTProcessor: the text tokenizer plus SpeechGPT's prompt formats, chat template and unit<->token mapping.

Unit spans (`<sosp><12><7><eosp>`) never go through string tokenisation: unit `u` is token
`unit_token_offset + u`, so they are mapped directly, which is exact and far faster. Audio goes to units through
the processor's `audio_tokenizer` (a SpeechUnitTokenizer) and units back to speech through its `vocoder`; both are
models with their own repos, so the processor saves only pointers to them (relative when they sit close by) and
loads them on first use (see speech_components.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from transformers import BatchEncoding, ProcessorMixin

from .chat_template import AUDIO_PLACEHOLDER, is_speechgpt_chat_template, speechgpt_chat_template
from .configuration_speechgpt import COMPONENT_FIELDS, SPEECHGPT_SPECIAL_TOKENS
from .prompt_format import (
    DEFAULT_SYSTEM_PROMPT,
    EOSP,
    SOSP,
    Modality,
    PromptFormat,
    SpeechGPTResponse,
    as_prompt_format,
    format_chain_of_modality_request,
    format_conversation,
    parse_response,
    units_to_string,
)
from .speech_components import (
    COMPONENT_LOAD_KWARGS,
    COMPONENT_POINTERS,
    Pointer,
    SpeechComponents,
    model_config_beside,
    repo_pointers,
)
from .unit_pieces import UnitPieces

_UNIT_SPAN = re.compile(r"<sosp>((?:\s*<\s*\d+\s*>)*)\s*<eosp>")
_UNIT = re.compile(r"<\s*(\d+)\s*>")
# Where `get_processor_dict` hands the component pointers and load kwargs to `from_args_and_dict`.
_SPEECH_KEY = "_speech_components"


@dataclass
class SpeechGPTSpokenResponse(SpeechGPTResponse):
    """A parsed answer with its speech: `waveform` (float32, at `sampling_rate`) voices `units`, None without units."""

    waveform: np.ndarray | None = None
    sampling_rate: int | None = None


def _component_property(name: str, doc: str) -> property:
    """A speech component as a processor attribute: read, it is loaded on first use; set, it replaces its pointer."""
    return property(lambda self: self._speech.get(name), lambda self, value: self._speech.attach(name, value), doc=doc)


def _one_of(audio_tokenizer: Any | None, unit_tokenizer: Any | None) -> Any | None:
    """The unit tokenizer given as `audio_tokenizer=` or as `unit_tokenizer=` (not both)."""
    if audio_tokenizer is not None and unit_tokenizer is not None:
        raise ValueError("Give the unit tokenizer once: as `unit_tokenizer=` or as `audio_tokenizer=`, not both.")
    return unit_tokenizer if unit_tokenizer is not None else audio_tokenizer


def _pointer_property(field: str, doc: str) -> property:
    """A component's repo as a processor attribute (an attached component's own); set, it replaces the component."""
    return property(
        lambda self: self._speech.location(field),
        lambda self, repo: self._speech.point(field, _given_pointer(repo)),
        doc=doc,
    )


class SpeechGPTProcessor(ProcessorMixin):
    """Turns SpeechGPT prompts (text with unit spans, or audio) into token ids and generated ids back into answers.

    Args:
        tokenizer: the expanded text tokenizer (holding `<0>` … `<K-1>` and the SpeechGPT markers).
        num_units: K, the number of unit tokens.
        system_prompt: text put before the first `[Human]` turn (the system message under "chat_template").
        prompt_format: how turns are written out, the form the model was trained on (see `PromptFormat`):
            "speechgpt" (this package's), "release" (the original SpeechGPT-7B's) or "chat_template" (the turns
            inside the base LLM's own chat template, e.g. the ChatML of an instruct model).
        base_chat_template: the base LLM's chat template for "chat_template" (the tokenizer's when omitted).
        chat_template: Jinja chat template; SpeechGPT's own in `prompt_format` (`speechgpt_chat_template`) when omitted.
        audio_tokenizer: a SpeechUnitTokenizer with K units, needed for audio input (`unit_tokenizer=` is the same
            argument: transformers' processors call this component `audio_tokenizer`, this package `unit_tokenizer`).
        vocoder: a UnitHiFiGANVocoder with K units, needed to voice answers in `decode_response`.
        unit_merges: a BPE over the units (`UnitPieces.merges`): the LM then reads and writes pieces `<0>` …
            `<K+M-1>` (units, then one piece a merge), which the processor makes from every unit span it tokenises
            and turns back into units in every answer it parses, so data, unit tokenizer and vocoder stay in units.

    Instead of the components themselves, `unit_tokenizer_repo` / `vocoder_repo` may name their repos (as a saved
    processor, or the model config beside it, does): each is then loaded on first use, so text-only work never
    loads speech weights.
    """

    tokenizer_class = "AutoTokenizer"
    audio_placeholder = AUDIO_PLACEHOLDER

    def __init__(
        self,
        tokenizer: Any = None,
        num_units: int = 1000,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        chat_template: str | None = None,
        audio_tokenizer: Any | None = None,
        vocoder: Any | None = None,
        prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT,
        base_chat_template: str | None = None,
        unit_merges: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        audio_tokenizer = _one_of(audio_tokenizer, kwargs.pop("unit_tokenizer", None))
        self.num_units = num_units
        self.unit_merges = [[int(left), int(right)] for left, right in unit_merges or ()]
        self._unit_pieces = UnitPieces(num_units, self.unit_merges) if self.unit_merges else None
        self.system_prompt = system_prompt
        self.prompt_format = as_prompt_format(prompt_format).value
        self.base_chat_template = (
            _base_chat_template(tokenizer, base_chat_template)
            if self.prompt_format == PromptFormat.CHAT_TEMPLATE
            else None
        )
        self._speech = SpeechComponents(num_units)
        chat_template = chat_template or speechgpt_chat_template(
            system_prompt, self.prompt_format, self.base_chat_template
        )
        super().__init__(tokenizer, chat_template=chat_template, **kwargs)
        for name, component in (("audio_tokenizer", audio_tokenizer), ("vocoder", vocoder)):
            if component is not None:
                self._speech.attach(name, component)
        self.unit_token_offset = self._find_unit_offset()
        self.sosp_token_id = self._token_id(SPEECHGPT_SPECIAL_TOKENS["sosp"])
        self.eosp_token_id = self._token_id(SPEECHGPT_SPECIAL_TOKENS["eosp"])
        with_special = self.tokenizer("a")["input_ids"]
        without = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        self._prefix_ids = (
            with_special[: len(with_special) - len(without)] if with_special[-len(without) :] == without else []
        )

    # The speech components: attached, or loaded from their repos on first use --------------------------------

    audio_tokenizer = _component_property(
        "audio_tokenizer",
        "The unit tokenizer that turns audio into units (loaded from `unit_tokenizer_repo` when first used).",
    )
    unit_tokenizer = _component_property(
        "audio_tokenizer",
        "The unit tokenizer that turns audio into units: this package's name for `audio_tokenizer`, the attribute "
        "transformers' processors give an audio codec (both name the same object).",
    )
    vocoder = _component_property(
        "vocoder", "The vocoder that voices units (loaded from `vocoder_repo` when first used)."
    )
    unit_tokenizer_repo = _pointer_property(
        "unit_tokenizer_repo", "The unit tokenizer's repo id or folder, None without one."
    )
    vocoder_repo = _pointer_property("vocoder_repo", "The vocoder's repo id or folder, None without one.")

    @property
    def speech_device(self) -> Any | None:
        """Where the unit tokenizer and vocoder run: set it to the LM's device (`processor.speech_device =
        model.device`) and those loaded already move there, those loaded later load there. None (the default)
        leaves them where `from_pretrained` puts them, the CPU. `SpeechGPTChat` and the pipelines set it."""
        return self._speech.device

    @speech_device.setter
    def speech_device(self, device: Any | None) -> None:
        self._speech.place(device)

    def use_components_of(self, config: Any) -> None:
        """Points this processor at the unit tokenizer and vocoder that a SpeechGPTConfig names (relative paths
        resolved against the model folder), loading nothing; a component the config does not name is kept."""
        for field in COMPONENT_FIELDS:
            if getattr(config, field, None):
                self._speech.point(field, _config_pointer(config, field))

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"The tokenizer has no {token!r} token. Expand it with `speechgpt_hf.add_speech_units(model, tokenizer)` first."
            )
        return token_id

    @property
    def unit_pieces(self) -> UnitPieces | None:
        """The BPE over units that the LM reads and writes (None: it reads the units themselves)."""
        return self._unit_pieces

    @property
    def num_unit_tokens(self) -> int:
        """How many unit tokens the LM has: K, or K plus one a merge with a unit BPE."""
        return len(self._unit_pieces) if self._unit_pieces is not None else self.num_units

    def _find_unit_offset(self) -> int:
        offset, count = self._token_id("<0>"), self.num_unit_tokens
        last = self._token_id(f"<{count - 1}>")
        beyond = self.tokenizer.convert_tokens_to_ids(f"<{count}>")
        if beyond is not None and beyond == last + 1 and beyond != self.tokenizer.unk_token_id:
            raise ValueError(
                f"The tokenizer holds unit tokens past <{count - 1}>: its model reads a BPE over the units, whose "
                "merges this processor lacks. Load the processor saved with the model (AutoProcessor.from_pretrained "
                "on the stage's final folder), or pass unit_merges=…."
            )
        if last != offset + count - 1:
            raise ValueError(
                f"Unit tokens <0>…<{count - 1}> are not contiguous in the tokenizer "
                f"(<0> is {offset}, <{count - 1}> is {last}); the direct unit mapping needs them in one block."
            )
        return offset

    # Units <-> token ids -------------------------------------------------------------------------

    def units_to_ids(self, units: Sequence[int], with_markers: bool = True) -> list[int]:
        """Token ids of a unit sequence (wrapped in `<sosp>`/`<eosp>` unless `with_markers=False`); with a unit
        BPE, the ids of its pieces."""
        units = [int(unit) for unit in units]
        if self._unit_pieces is not None:
            pieces = self._unit_pieces.encode(units)  # checks the range as below
        else:
            outside = next((unit for unit in units if not 0 <= unit < self.num_units), None)
            if outside is not None:
                raise ValueError(
                    f"Unit id {outside} is outside 0..{self.num_units - 1} (this model has K={self.num_units})."
                )
            pieces = units
        ids = [self.unit_token_offset + piece for piece in pieces]
        return [self.sosp_token_id, *ids, self.eosp_token_id] if with_markers else ids

    def ids_to_units(self, token_ids: Sequence[int]) -> list[int]:
        """The unit ids among `token_ids`, in order (everything that is not a unit token is skipped); with a unit
        BPE, each piece's units."""
        offset, count = self.unit_token_offset, self.num_unit_tokens
        pieces = [int(t) - offset for t in token_ids if offset <= int(t) < offset + count]
        return self._unit_pieces.decode(pieces) if self._unit_pieces is not None else pieces

    def with_unit_pieces(self, text: str) -> str:
        """`text` with each unit span written in the LM's pieces, as the tokenizer itself must read it (training
        rows handed to TRL); `encode` and `__call__` make the pieces themselves. Without a unit BPE, `text`."""
        return self._rewrite_unit_spans(text, "encode")

    def with_units(self, text: str) -> str:
        """The inverse of `with_unit_pieces`: `text` (e.g. a decoded answer) with each span of pieces written in units,
        as prompts hold them. Without a unit BPE, `text`."""
        return self._rewrite_unit_spans(text, "decode")

    def _rewrite_unit_spans(self, text: str, direction: str) -> str:
        """`text` with every `<sosp>…<eosp>` span passed through the unit BPE's `encode` or `decode`."""
        if self._unit_pieces is None:
            return text
        rewrite = getattr(self._unit_pieces, direction)
        return _UNIT_SPAN.sub(lambda span: units_to_string(rewrite(int(u) for u in _UNIT.findall(span.group(1)))), text)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of one prompt, equal to string tokenisation of the whole prompt: unit spans are mapped
        directly, and each text piece is tokenised between the markers that surround it in the prompt."""
        bos = self.tokenizer.bos_token
        with_prefix = add_special_tokens and not (bos and self._prefix_ids and text.startswith(bos))
        ids = list(self._prefix_ids) if with_prefix else []  # a chat template may write the BOS itself
        spans = list(_UNIT_SPAN.finditer(text))
        starts = [0] + [span.end() for span in spans]
        ends = [span.start() for span in spans] + [len(text)]
        pieces = self._encode_pieces([text[start:end] for start, end in zip(starts, ends, strict=True)])
        for piece_ids, span in zip(pieces, spans, strict=False):
            ids += piece_ids + self.units_to_ids(int(u) for u in _UNIT.findall(span.group(1)))
        return ids + pieces[-1]

    def _encode_pieces(self, pieces: list[str]) -> list[list[int]]:
        """Token ids of the text between unit spans. Tokenisers treat text next to an added token differently
        from text at the start of a string (a Metaspace prefix `▁`, whitespace stripped around added tokens),
        so each piece is tokenised with its neighbouring `<eosp>` / `<sosp>` and their ids are dropped."""
        last = len(pieces) - 1
        wrapped = [(EOSP if i else "") + piece + (SOSP if i < last else "") for i, piece in enumerate(pieces)]
        present = [i for i, piece in enumerate(pieces) if piece]
        encoded = (
            self.tokenizer([wrapped[i] for i in present], add_special_tokens=False)["input_ids"] if present else []
        )
        result: list[list[int]] = [[] for _ in pieces]
        for i, piece_ids in zip(present, encoded, strict=True):
            result[i] = list(piece_ids[1 if i else 0 : len(piece_ids) - 1 if i < last else None])
        return result

    # Prompts ---------------------------------------------------------------------------------------

    def build_prompt(
        self,
        instruction: str,
        history: Sequence[tuple[str, str]] = (),
        output_modality: Modality | str | None = None,
    ) -> str:
        """The text the model continues, in this processor's prompt format: system prompt, earlier turns, then
        the request, ending where the model answers (`[Human]: … [SpeechGPT]:` in the marker formats; the space
        after the colon is the first thing the model writes, as in training).

        With `output_modality` ("speech" or "text") the instruction becomes a chain-of-modality request for that
        answer (its input is speech when it holds a `<sosp>` unit span); None sends it as it is (free-form or
        cross-modal, e.g. `'… This is input: <sosp>…<eosp>'`).
        """
        if output_modality is not None:
            instruction = self.chain_of_modality_request(instruction, output_modality)
        return self._prompt(history, instruction)

    def chain_of_modality_request(
        self, content: str, output_modality: Modality | str, input_modality: Modality | str | None = None
    ) -> str:
        """The human turn asking for a `output_modality` answer to `content` (a unit string or text) in this
        processor's prompt format: this package's instruction wording, or the bare input for "release"."""
        return format_chain_of_modality_request(content, input_modality, output_modality, self.prompt_format)

    def prompt_and_completion(
        self, instruction: str, response: str, history: Sequence[tuple[str, str]] = ()
    ) -> tuple[str, str]:
        """One training example in this processor's prompt format: the prompt is what `build_prompt` gives at
        inference, the completion the answer with the format's end of turn, so that training and use agree."""
        prompt, text = self._prompt(history, instruction), self._render(history, instruction, response)
        if not text.startswith(prompt):
            raise ValueError(
                f"The {self.prompt_format} format writes the answered turn differently from its prompt, so it "
                f"cannot be split into prompt and completion (prompt ends {prompt[-60:]!r}, text {text[-80:]!r})."
            )
        completion = text[len(prompt) :]
        # a chat template ends a turn with its end-of-turn token and a newline; the next turn follows the token
        return prompt, completion.rstrip() if self.prompt_format == PromptFormat.CHAT_TEMPLATE else completion

    def _prompt(self, history: Sequence[tuple[str, str]], instruction: str) -> str:
        """The conversation up to where the model answers, trailing spaces left to the answer: byte-level BPE and
        SentencePiece tokenizers join a space to the word after it, so a prompt ending in one would tokenise
        differently alone than in front of its answer, and training would drop a token that inference keeps."""
        return self._render(history, instruction).rstrip(" ")

    def _render(self, history: Sequence[tuple[str, str]], instruction: str, response: str | None = None) -> str:
        """The conversation's text in this processor's format; it ends where the model answers without `response`."""
        if self.prompt_format != PromptFormat.CHAT_TEMPLATE:
            return format_conversation(self.system_prompt, history, instruction, response, self.prompt_format)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for question, answer in [*history, (instruction, response)]:
            messages.append({"role": "user", "content": question})
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.base_chat_template, tokenize=False, add_generation_prompt=response is None
        )

    def _answer_end_markers(self) -> list[str]:
        """What ends an answer besides `<eoa>`: the tokenizer's EOS and, under "chat_template", the text the base
        template closes an assistant turn with (e.g. `<|im_end|>`)."""
        markers = [self.tokenizer.eos_token] if self.tokenizer.eos_token else []
        if self.prompt_format == PromptFormat.CHAT_TEMPLATE:
            if getattr(self, "_turn_end", None) is None:
                closed = self._render([], "\x00", "\x01")
                self._turn_end = closed.split("\x01", 1)[-1].strip() if "\x01" in closed else ""
            markers += [self._turn_end] if self._turn_end else []
        return markers

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        padding: bool | str = False,
        return_tensors: str | None = None,
        add_special_tokens: bool = True,
        padding_side: str = "left",
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenises prompts (text with unit spans) with the direct unit mapping. A batch is padded, on the
        left by default, since prompts are continued by `generate`.

        `audio` (one input or a list: paths, arrays at `sampling_rate`, datasets Audio values) becomes unit spans
        through the unit tokenizer, each in the place of the next `audio_placeholder` in `text` (as
        `apply_chat_template` writes them for audio items); without `text` each audio is a prompt of its own.
        """
        if text is None and audio is None:
            raise ValueError("SpeechGPTProcessor needs `text` (a prompt string or a list of them) or `audio`.")
        for other in ("images", "videos"):  # passed (as None) by apply_chat_template
            if kwargs.pop(other, None) is not None:
                raise ValueError(f"SpeechGPT reads text and audio, not {other}.")
        texts = None if text is None else [text] if isinstance(text, str) else list(text)
        if audio is not None:
            texts = self._with_audio_units(texts, audio, sampling_rate)
        elif any(self.audio_placeholder in t for t in texts):
            raise ValueError(
                f"The text holds {self.audio_placeholder} audio placeholders but no `audio` was given: pass the audio "
                "(apply_chat_template does so for audio items)."
            )
        encoded = {"input_ids": [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]}
        encoded["attention_mask"] = [[1] * len(ids) for ids in encoded["input_ids"]]
        return self.tokenizer.pad(
            encoded,
            padding=padding or (len(texts) > 1),
            return_tensors=return_tensors,
            padding_side=padding_side,
            **kwargs,
        )

    def _with_audio_units(self, texts: list[str] | None, audio: Any, sampling_rate: int | None) -> list[str]:
        """`texts` with each audio placeholder replaced by the unit string of the next audio (or the unit strings)."""
        if self.audio_tokenizer is None:
            raise ValueError(
                "This SpeechGPTProcessor has no unit tokenizer to turn audio into units: pass "
                "`audio_tokenizer=AutoModel.from_pretrained(model.config.unit_tokenizer_repo)` when making it, or set "
                "`processor.audio_tokenizer` (or `processor.unit_tokenizer_repo`, to load it when needed)."
            )
        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        sequences = self.audio_tokenizer.encode(items, sampling_rate=sampling_rate)
        empty = [index for index, sequence in enumerate(sequences) if not sequence.units]
        if empty:
            raise ValueError(f"Audio {empty[0]} gave no speech units (is it empty or silent?).")
        spans = [units_to_string(sequence.units) for sequence in sequences]
        if texts is None:
            return spans
        pieces = [t.split(self.audio_placeholder) for t in texts]
        if sum(len(p) - 1 for p in pieces) != len(spans):
            raise ValueError(
                f"{len(spans)} audio inputs but {sum(len(p) - 1 for p in pieces)} {self.audio_placeholder} placeholders "
                "in the text: put one placeholder where each audio goes (apply_chat_template does so for audio items)."
            )
        spans.reverse()
        return [
            "".join(p + (spans.pop() if i < len(parts) - 1 else "") for i, p in enumerate(parts)) for parts in pieces
        ]

    def apply_chat_template(self, conversation: Any, chat_template: str | None = None, **kwargs: Any) -> Any:
        """transformers' `apply_chat_template`, with this processor's system prompt as the template's default."""
        template = chat_template or self.chat_template
        if isinstance(template, str) and "system_prompt" in template:
            kwargs.setdefault("system_prompt", self.system_prompt)
        return super().apply_chat_template(conversation, chat_template=chat_template, **kwargs)

    # Decoding --------------------------------------------------------------------------------------

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def parse(self, generated: str | Sequence[int], strict: bool = False) -> SpeechGPTResponse:
        """Splits a generated answer (decoded text or token ids) into transcript, text answer and units."""
        if not isinstance(generated, str):
            generated = self.tokenizer.decode(list(generated), skip_special_tokens=False)
        end_markers = self._answer_end_markers()
        response = parse_response(generated, num_units=self.num_unit_tokens, strict=strict, end_markers=end_markers)
        if self._unit_pieces is not None and response.units:
            response.units = self._unit_pieces.decode(response.units)
        return response

    def decode_response(
        self, generated_ids: Any, speaker_id: int | None = None
    ) -> SpeechGPTSpokenResponse | list[SpeechGPTSpokenResponse]:
        """Generated answer ids (one sequence, or a batch as a 2-D tensor or list) -> the parsed answer with its
        speech, voiced by the vocoder (`speaker_id`: a multi-speaker vocoder's voice, its first by default).

        `decode` stays the tokenizer's text decoding, as pipelines and streamers expect."""
        rows = generated_ids.tolist() if hasattr(generated_ids, "tolist") else list(generated_ids)
        single = not rows or not isinstance(rows[0], (list, tuple))
        answers = [self._spoken(self.parse(row), speaker_id) for row in ([rows] if single else rows)]
        return answers[0] if single else answers

    def _spoken(self, response: SpeechGPTResponse, speaker_id: int | None) -> SpeechGPTSpokenResponse:
        spoken = SpeechGPTSpokenResponse(**vars(response))
        if not response.units:
            return spoken
        if self.vocoder is None:
            raise ValueError(
                "The answer holds speech units but this processor has no vocoder to voice them: pass "
                "`vocoder=AutoModel.from_pretrained(model.config.vocoder_repo)` when making it, or set "
                "`processor.vocoder` or `processor.vocoder_repo` (`parse` gives the answer without speech)."
            )
        if speaker_id is None and getattr(self.vocoder.config, "num_speakers", 0):
            speaker_id = 0
        spoken.waveform = self.vocoder.synthesize(response.units, speaker_id=speaker_id).numpy()
        spoken.sampling_rate = self.vocoder.config.sampling_rate
        return spoken

    # Saving and loading: the speech components as pointers to their repos ------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The processor's settings, with the unit tokenizer and vocoder as pointers to their repos (their weights
        are neither copied nor saved here)."""
        speech = self.__dict__.pop("_speech")
        try:
            output = super().to_dict()
        finally:
            self._speech = speech
        for field in COMPONENT_POINTERS.values():
            location = speech.location(field, getattr(self, "_save_folder", None))
            if location:
                output[field] = location
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Saves the tokenizer, chat template and settings; the unit tokenizer and vocoder are stored as pointers
        to their repos or folders, so each attached one must have been loaded from (or saved to and reloaded from)
        one."""
        for name in self._speech.unnamed():
            raise ValueError(
                f"The processor's {name} has no repo or folder to point to: save it "
                f"(`{name}.save_pretrained(folder)`), load it back with from_pretrained(folder), and attach that."
            )
        self._save_folder = Path(save_directory)
        try:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            del self._save_folder

    @classmethod
    def get_processor_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """transformers' processor settings, with the pointers to the unit tokenizer and vocoder (a relative one
        resolved against the processor's folder; one it lacks taken from the model config beside it) set aside
        for `from_args_and_dict`; without a saved `num_units` (no processor file) K is the model config's. Nothing
        is loaded here."""
        processor_dict, rest = super().get_processor_dict(pretrained_model_name_or_path, **kwargs)
        if "num_units" not in processor_dict:  # a folder saved with the model and tokenizer alone: its K is the model's
            beside = model_config_beside(str(pretrained_model_name_or_path), **kwargs)
            if beside is not None and getattr(beside[0], "num_unit_merges", 0):
                raise ValueError(
                    f"{pretrained_model_name_or_path} has no processor_config.json, and its model reads a BPE over "
                    f"the units ({beside[0].num_unit_merges} merges) that only that file holds: load the processor "
                    "from the folder the stage saved at its end, or copy its processor_config.json here."
                )
            if beside is not None:
                processor_dict["num_units"] = beside[0].num_units
        processor_dict[_SPEECH_KEY] = {
            "pointers": repo_pointers(processor_dict, str(pretrained_model_name_or_path), **kwargs),
            "load_kwargs": {key: kwargs[key] for key in COMPONENT_LOAD_KWARGS if key in kwargs},
        }
        return processor_dict, rest

    @classmethod
    def from_args_and_dict(cls, args: Any, processor_dict: dict[str, Any], **kwargs: Any) -> Any:
        """transformers' construction from saved settings, then the component pointers that `get_processor_dict`
        found for the components not given by hand (each loads when first used)."""
        processor_dict = dict(processor_dict)
        speech = processor_dict.pop(_SPEECH_KEY, {"pointers": {}, "load_kwargs": {}})
        made = super().from_args_and_dict(args, processor_dict, **kwargs)
        processor = made[0] if isinstance(made, tuple) else made
        processor._speech.load_kwargs = speech["load_kwargs"]
        for field, pointer in speech["pointers"].items():
            processor._speech.point_if_unattached(field, pointer)
        return made


def _base_chat_template(tokenizer: Any, given: str | None) -> str:
    """The base LLM's own chat template for the "chat_template" prompt format: `given`, else the tokenizer's."""
    template = given or getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # a tokenizer with several named templates
        template = template.get("default")
    if not template or is_speechgpt_chat_template(template):
        raise ValueError(
            "prompt_format='chat_template' renders SpeechGPT turns inside the base LLM's own chat template, but the "
            "tokenizer has none: expand an instruct model whose tokenizer has one (e.g. SmolLM2-135M-Instruct), or "
            "pass base_chat_template=…; a base LLM without one takes prompt_format='speechgpt'."
        )
    return template


def _config_pointer(config: Any, field: str) -> Pointer:
    """The pointer a model config holds in `field`, resolved now; one that cannot be (its folder is gone) raises
    when the component is needed, as the config itself would."""
    try:
        return _given_pointer(config.resolve_component_path(field))
    except (ValueError, OSError):
        return Pointer(getattr(config, field), partial(config.resolve_component_path, field))


def _given_pointer(repo: str | os.PathLike | None) -> Pointer | None:
    """A pointer set by hand: a repo id, or a folder (made absolute, so that it holds wherever the work goes on)."""
    if repo is None:
        return None
    location = str(Path(repo).resolve()) if os.path.isdir(repo) else str(repo)
    return Pointer(location, partial(str, location))


__all__ = ["SpeechGPTProcessor", "SpeechGPTSpokenResponse"]
