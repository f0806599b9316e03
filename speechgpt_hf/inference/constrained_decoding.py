"""Constrained decoding of unit spans: unit tokens only inside `<sosp>…<eosp>`, text only outside.

A SpeechGPT writes text and speech units in one token stream, and a small or young model leaks: bare unit
tokens in its text, text tokens inside a unit span, a stray `<eosp>`. `UnitSpanLogitsProcessor` masks the
logits so that every generated answer keeps the two apart. Whether a row is inside a span is read from the
row's ids (prompt and generated so far) at every step, so the processor keeps no state: it works with
greedy search, sampling, beam search (beams are reordered freely) and left-padded batches, and a prompt
that ends inside a span (e.g. `… [ua] <sosp>`) is continued with units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

if TYPE_CHECKING:
    from ..models.speechgpt.configuration_speechgpt import SpeechGPTConfig
    from ..models.speechgpt.modeling_speechgpt import SpeechGPTForCausalLM
    from ..models.speechgpt.processing_speechgpt import SpeechGPTProcessor


class UnitSpanLogitsProcessor(LogitsProcessor):
    """Keeps unit tokens inside `<sosp>…<eosp>` spans and everything else outside them.

    Inside a span only unit tokens and `<eosp>` may follow; outside one, unit tokens and `<eosp>` are
    masked (`<sosp>` and all text stay allowed). A row is inside a span when its last `<sosp>` comes after
    its last `<eosp>`.

    Args:
        unit_token_offset: token id of unit `<0>`; unit `u` is token `unit_token_offset + u`.
        num_units: the number of unit tokens (K, or K + M with a unit BPE of M merges).
        sosp_token_id: token id of `<sosp>`.
        eosp_token_id: token id of `<eosp>`.
        max_span_units: if set, a span that holds this many unit tokens is closed (only `<eosp>` is allowed),
            which bounds the speech a runaway span can produce (with a unit BPE a token is a piece of a few units).
    """

    def __init__(
        self,
        unit_token_offset: int,
        num_units: int,
        sosp_token_id: int,
        eosp_token_id: int,
        max_span_units: int | None = None,
    ) -> None:
        if num_units < 1:
            raise ValueError(f"num_units must be positive, got {num_units}.")
        units = range(unit_token_offset, unit_token_offset + num_units)
        for name, token_id in (("sosp_token_id", sosp_token_id), ("eosp_token_id", eosp_token_id)):
            if token_id in units:
                raise ValueError(f"{name}={token_id} lies inside the unit token block {units.start}..{units.stop - 1}.")
        if sosp_token_id == eosp_token_id:
            raise ValueError(f"<sosp> and <eosp> must be different tokens, both are {sosp_token_id}.")
        if max_span_units is not None and max_span_units < 1:
            raise ValueError(f"max_span_units must be positive (or None for no limit), got {max_span_units}.")
        self.unit_token_offset = unit_token_offset
        self.num_units = num_units
        self.sosp_token_id = sosp_token_id
        self.eosp_token_id = eosp_token_id
        self.max_span_units = max_span_units
        self._masks: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_processor(
        cls, processor: SpeechGPTProcessor, max_span_units: int | None = None
    ) -> UnitSpanLogitsProcessor:
        """Builds the processor from a `SpeechGPTProcessor`'s unit offset, K and marker ids."""
        return cls(
            processor.unit_token_offset,
            processor.num_unit_tokens,
            processor.sosp_token_id,
            processor.eosp_token_id,
            max_span_units=max_span_units,
        )

    @classmethod
    def from_config(cls, config: SpeechGPTConfig, max_span_units: int | None = None) -> UnitSpanLogitsProcessor:
        """Builds the processor from a `SpeechGPTConfig` (`unit_token_offset`, `num_units`, `special_token_ids`)."""
        missing = [key for key in ("sosp", "eosp") if key not in config.special_token_ids]
        if config.unit_token_offset is None or missing:
            raise ValueError(
                "This SpeechGPTConfig does not record the unit token block and <sosp>/<eosp> ids "
                f"(unit_token_offset={config.unit_token_offset}, missing markers: {missing}); build the model with "
                "`speechgpt_hf.add_speech_units(...)` or use `UnitSpanLogitsProcessor.from_processor(processor)`."
            )
        special = config.special_token_ids
        return cls(
            config.unit_token_offset,
            len(config.unit_token_ids()),
            special["sosp"],
            special["eosp"],
            max_span_units=max_span_units,
        )

    def span_state(self, input_ids: torch.LongTensor) -> tuple[torch.BoolTensor, torch.LongTensor]:
        """Per row: whether the ids end inside a unit span, and how many unit tokens that open span holds."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        no_position = torch.full_like(positions, -1)
        last_sosp = torch.where(input_ids == self.sosp_token_id, positions, no_position).amax(dim=1)
        last_eosp = torch.where(input_ids == self.eosp_token_id, positions, no_position).amax(dim=1)
        inside = last_sosp > last_eosp
        is_unit = (input_ids >= self.unit_token_offset) & (input_ids < self.unit_token_offset + self.num_units)
        span_units = (is_unit & (positions > last_sosp[:, None])).sum(dim=1)
        return inside, torch.where(inside, span_units, torch.zeros_like(span_units))

    def _allowed_masks(self, vocab_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Vocabulary masks of what may follow inside a span, outside one, and in a span that is full (cached)."""
        if (vocab_size, device) not in self._masks:
            self._masks[vocab_size, device] = self._build_masks(vocab_size, device)
        return self._masks[vocab_size, device]

    def _build_masks(self, vocab_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if (
            self.unit_token_offset + self.num_units > vocab_size
            or max(self.sosp_token_id, self.eosp_token_id) >= vocab_size
        ):
            raise ValueError(
                f"The scores have {vocab_size} entries but the unit block ends at {self.unit_token_offset + self.num_units} "
                f"and the markers are {self.sosp_token_id}/{self.eosp_token_id}: this processor was built for another model."
            )
        unit = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        unit[self.unit_token_offset : self.unit_token_offset + self.num_units] = True
        eosp = torch.zeros_like(unit)
        eosp[self.eosp_token_id] = True
        return unit | eosp, ~(unit | eosp), eosp

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Masks (sets to -inf) every token the span state of each row forbids."""
        inside, span_units = self.span_state(input_ids)
        in_span, out_of_span, close_only = self._allowed_masks(scores.shape[-1], scores.device)
        allowed = torch.where(inside[:, None], in_span, out_of_span)
        if self.max_span_units is not None:
            full = inside & (span_units >= self.max_span_units)
            allowed = torch.where(full[:, None], close_only, allowed)
        return scores.masked_fill(~allowed, -float("inf"))


def unit_span_logits_processor(
    model_or_processor: SpeechGPTForCausalLM | SpeechGPTConfig | SpeechGPTProcessor, max_span_units: int | None = None
) -> UnitSpanLogitsProcessor:
    """A `UnitSpanLogitsProcessor` for a SpeechGPTForCausalLM, its SpeechGPTConfig or its SpeechGPTProcessor.

    Pass it to generation as `model.generate(..., logits_processor=LogitsProcessorList([it]))`.
    """
    if hasattr(model_or_processor, "sosp_token_id") and hasattr(model_or_processor, "unit_token_offset"):
        return UnitSpanLogitsProcessor.from_processor(model_or_processor, max_span_units=max_span_units)
    config = getattr(model_or_processor, "config", model_or_processor)
    if hasattr(config, "special_token_ids") and hasattr(config, "unit_token_offset"):
        return UnitSpanLogitsProcessor.from_config(config, max_span_units=max_span_units)
    raise TypeError(
        f"Cannot read unit token ids from a {type(model_or_processor).__name__}: pass a SpeechGPTForCausalLM, "
        "a SpeechGPTConfig or a SpeechGPTProcessor."
    )


__all__ = ["UnitSpanLogitsProcessor", "unit_span_logits_processor"]
