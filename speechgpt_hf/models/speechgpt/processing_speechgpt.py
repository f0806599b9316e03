"""SpeechGPTProcessor: the text tokenizer plus SpeechGPT's prompt formats and unit<->token mapping.

Unit spans (`<sosp><12><7><eosp>`) never go through string tokenisation: unit `u` is token
`unit_token_offset + u`, so they are mapped directly, which is exact and far faster. Audio is turned
into units by a SpeechUnitTokenizer (a model with weights, so not a processor attribute).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from transformers import BatchEncoding, ProcessorMixin

from .configuration_speechgpt import SPEECHGPT_SPECIAL_TOKENS
from .prompt_format import (
    DEFAULT_SYSTEM_PROMPT,
    EOSP,
    SOSP,
    Modality,
    SpeechGPTResponse,
    format_chain_of_modality_instruction,
    format_turn,
    parse_response,
)

_UNIT_SPAN = re.compile(r"<sosp>((?:\s*<\s*\d+\s*>)*)\s*<eosp>")
_UNIT = re.compile(r"<\s*(\d+)\s*>")


class SpeechGPTProcessor(ProcessorMixin):
    """Turns SpeechGPT prompts (text with unit spans) into token ids and generated ids back into answers.

    Args:
        tokenizer: the expanded text tokenizer (holding `<0>` … `<K-1>` and the SpeechGPT markers).
        num_units: K, the number of unit tokens.
        system_prompt: text put before the first `[Human]` turn.
        chat_template: optional Jinja chat template.
    """

    tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        tokenizer: Any = None,
        num_units: int = 1000,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.num_units = num_units
        self.system_prompt = system_prompt
        super().__init__(tokenizer, chat_template=chat_template, **kwargs)
        self.unit_token_offset = self._find_unit_offset()
        self.sosp_token_id = self._token_id(SPEECHGPT_SPECIAL_TOKENS["sosp"])
        self.eosp_token_id = self._token_id(SPEECHGPT_SPECIAL_TOKENS["eosp"])
        with_special = self.tokenizer("a")["input_ids"]
        without = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        self._prefix_ids = with_special[: len(with_special) - len(without)] if with_special[-len(without) :] == without else []

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"The tokenizer has no {token!r} token. Expand it with `speechgpt_hf.add_speech_units(model, tokenizer)` first."
            )
        return token_id

    def _find_unit_offset(self) -> int:
        offset = self._token_id("<0>")
        last = self._token_id(f"<{self.num_units - 1}>")
        if last != offset + self.num_units - 1:
            raise ValueError(
                f"Unit tokens <0>…<{self.num_units - 1}> are not contiguous in the tokenizer "
                f"(<0> is {offset}, <{self.num_units - 1}> is {last}); the direct unit mapping needs them in one block."
            )
        return offset

    # Units <-> token ids -------------------------------------------------------------------------

    def units_to_ids(self, units: Sequence[int], with_markers: bool = True) -> list[int]:
        """Token ids of a unit sequence (wrapped in `<sosp>`/`<eosp>` unless `with_markers=False`)."""
        ids = []
        for unit in units:
            unit = int(unit)
            if not 0 <= unit < self.num_units:
                raise ValueError(f"Unit id {unit} is outside 0..{self.num_units - 1} (this model has K={self.num_units}).")
            ids.append(self.unit_token_offset + unit)
        return [self.sosp_token_id, *ids, self.eosp_token_id] if with_markers else ids

    def ids_to_units(self, token_ids: Sequence[int]) -> list[int]:
        """The unit ids among `token_ids`, in order (everything that is not a unit token is skipped)."""
        offset, k = self.unit_token_offset, self.num_units
        return [int(t) - offset for t in token_ids if offset <= int(t) < offset + k]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of one prompt, equal to string tokenisation of the whole prompt: unit spans are mapped
        directly, and each text piece is tokenised between the markers that surround it in the prompt."""
        ids = list(self._prefix_ids) if add_special_tokens else []
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
        encoded = self.tokenizer([wrapped[i] for i in present], add_special_tokens=False)["input_ids"] if present else []
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
        """The text the model continues: system prompt, earlier turns, then `[Human]: … [SpeechGPT]: `.

        With `output_modality` ("speech" or "text") the instruction becomes a chain-of-modality request for that
        answer (its input is speech when it holds a `<sosp>` unit span); None sends it as it is (free-form or
        cross-modal, e.g. `'… This is input: <sosp>…<eosp>'`).
        """
        if output_modality is not None:
            instruction = format_chain_of_modality_instruction(instruction, None, output_modality)
        turns = "".join(format_turn(question, answer) + " " for question, answer in history)
        return self.system_prompt + turns + format_turn(instruction)

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        padding: bool | str = False,
        return_tensors: str | None = None,
        add_special_tokens: bool = True,
        padding_side: str = "left",
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenises prompts (text with unit spans) with the direct unit mapping. A batch is padded, on the
        left by default, since prompts are continued by `generate`."""
        if text is None:
            raise ValueError("SpeechGPTProcessor needs `text` (a prompt string or a list of them).")
        texts = [text] if isinstance(text, str) else list(text)
        encoded = {"input_ids": [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]}
        encoded["attention_mask"] = [[1] * len(ids) for ids in encoded["input_ids"]]
        return self.tokenizer.pad(
            encoded, padding=padding or (len(texts) > 1), return_tensors=return_tensors, padding_side=padding_side, **kwargs
        )

    # Decoding --------------------------------------------------------------------------------------

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def parse(self, generated: str | Sequence[int], strict: bool = False) -> SpeechGPTResponse:
        """Splits a generated answer (decoded text or token ids) into transcript, text answer and units."""
        if not isinstance(generated, str):
            generated = self.tokenizer.decode(list(generated), skip_special_tokens=False)
        end_markers = [self.tokenizer.eos_token] if self.tokenizer.eos_token else []
        return parse_response(generated, num_units=self.num_units, strict=strict, end_markers=end_markers)


__all__ = ["SpeechGPTProcessor"]
