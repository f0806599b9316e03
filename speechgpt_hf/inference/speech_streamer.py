"""A generate() streamer that speaks while the LM is still writing.

Tokens arrive from `model.generate(streamer=...)`; text tokens become text deltas, and unit tokens inside a
`<sosp>…<eosp>` span are pushed into the vocoder's streaming synthesiser, so the first audio chunk is ready
long before the answer is finished. It is a transformers `BaseStreamer`, so it plugs into the stock
`model.generate(**inputs, streamer=streamer)` (or a pipeline call's `streamer=`): iterate it from another thread
while `generate` runs, as with transformers' `TextIteratorStreamer`, or after `generate` returns (events queue up).
The audio chunks, concatenated, are the one-shot synthesis of the answer's units (see `UnitHiFiGANStreamer`).
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers.generation.streamers import BaseStreamer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..models.speechgpt.processing_speechgpt import SpeechGPTProcessor
    from ..models.vocoder_protocol import UnitVocoder

# Chain-of-modality tags and the part of the answer the text after each belongs to (`[ua]`: units follow).
_PART_TAGS = {"[tq]": "transcript", "[ta]": "answer", "[ua]": "answer"}
_END_MARKERS = ("<eoa>", "<eos>")


@dataclass
class StreamEvent:
    """One piece of a streamed answer: a text delta or a chunk of 1-D float32 audio.

    `part` says which part of a chain-of-modality answer a text delta belongs to: "transcript" (after `[tq]`)
    or "answer" (after `[ta]`, and any text before the first tag)."""

    text: str | None = None
    audio: np.ndarray | None = None
    part: str | None = None


class _IncrementalDecoder:
    """Turns token ids into text deltas by decoding only a short window: the ids not yet shown plus the
    last shown ones (kept so that a tokenizer's word-start spaces decode as in the whole text)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self._ids: list[int] = []
        self._shown = 0

    def push(self, token_id: int) -> str:
        """Adds one id and returns the new text, or "" while a multi-byte character is still incomplete."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text of every id pushed and not yet returned."""
        return self._advance(final=True) if len(self._ids) > self._shown else ""

    def _advance(self, final: bool) -> str:
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return ""
        shown = self.tokenizer.decode(self._ids[: self._shown], skip_special_tokens=True) if self._shown else ""
        self._ids = self._ids[self._shown :]
        self._shown = len(self._ids)
        return text[len(shown) :]


class _TagFilter:
    """Removes chain-of-modality tags and end markers from streamed text and labels each piece with its part.
    Text that may be the start of a tag (`; [t`) is held back until the next delta settles it."""

    def __init__(self, end_markers: tuple[str, ...]) -> None:
        self._markers = (*_PART_TAGS, *end_markers)
        self._pattern = re.compile(r"\s*;?\s*(" + "|".join(re.escape(m) for m in self._markers) + ")")
        self.part = "answer"
        self.ended = False
        self._held = ""
        self._part_start = True

    def feed(self, text: str) -> list[tuple[str, str]]:
        """The clean (text, part) pieces that `text`, added to what was held back, settles."""
        pieces: list[tuple[str, str]] = []
        buffer = self._held + text
        while not self.ended and (match := self._pattern.search(buffer)):
            self._emit(buffer[: match.start()], pieces)
            tag = match.group(1)
            self.ended = tag not in _PART_TAGS
            self.part, self._part_start = _PART_TAGS.get(tag, self.part), True
            buffer = buffer[match.end() :]
        if self.ended:
            self._held = ""
            return pieces
        cut = next(i for i in range(len(buffer) + 1) if self._may_become_marker(buffer[i:]))
        self._emit(buffer[:cut], pieces)
        self._held = buffer[cut:]
        return pieces

    def flush(self) -> list[tuple[str, str]]:
        """Releases held-back text (the text has stopped: a unit span or the end follows)."""
        pieces: list[tuple[str, str]] = []
        if not self.ended:
            self._emit(self._held.rstrip(), pieces)
        self._held = ""
        return pieces

    def _may_become_marker(self, tail: str) -> bool:
        tail = tail.lstrip()
        tail = tail[1:].lstrip() if tail.startswith(";") else tail
        return any(marker.startswith(tail) for marker in self._markers)

    def _emit(self, text: str, pieces: list[tuple[str, str]]) -> None:
        if self._part_start:
            text = text.lstrip()
            self._part_start = not text
        if text:
            pieces.append((text, self.part))


class SpeechUnitStreamer(BaseStreamer):
    """Routes generated tokens: text to decoded deltas, units to a vocoder streamer (when a vocoder is given).

    Args:
        processor: the SpeechGPTProcessor (its tokenizer decodes text, its offsets recognise units).
        vocoder: a UnitHiFiGANVocoder; without one, unit tokens are collected but not voiced.
        speaker_id: the voice of multi-speaker vocoders.
        chunk_frames: 20 ms frames per audio chunk (smaller: earlier first audio, more calls).
        skip_prompt: ignore the first `put` (generate sends the prompt first).
        timeout: seconds the reading side waits for the next event before raising `queue.Empty`.
    """

    def __init__(
        self,
        processor: SpeechGPTProcessor,
        vocoder: UnitVocoder | None = None,
        speaker_id: int | None = None,
        chunk_frames: int = 25,
        skip_prompt: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.processor = processor
        self.vocoder = vocoder
        self.speaker_id = speaker_id
        self.chunk_frames = chunk_frames
        self.timeout = timeout
        self._skip = skip_prompt
        self._events: queue.Queue[StreamEvent | None] = queue.Queue()
        tokenizer = processor.tokenizer
        self._decoder = _IncrementalDecoder(tokenizer)
        eos = getattr(tokenizer, "eos_token", None)
        self._tags = _TagFilter(_END_MARKERS + ((eos,) if eos else ()))
        self._synth = None
        self.units: list[int] = []

    def put(self, value: Any) -> None:
        ids = value.reshape(-1).tolist()
        if self._skip:
            self._skip = False
            return
        for token_id in ids:
            self._route(int(token_id))

    def _route(self, token_id: int) -> None:
        processor = self.processor
        if token_id == processor.sosp_token_id:
            self._flush_text()
            if self.vocoder is not None:
                self._synth = self.vocoder.streamer(speaker_id=self.speaker_id, chunk_frames=self.chunk_frames)
        elif token_id == processor.eosp_token_id:
            self._close_span()
        elif units := processor.ids_to_units([token_id]):  # a unit, or with a unit BPE the units of a piece
            self.units.extend(units)
            if self._synth is not None:
                for unit in units:
                    self._emit_audio(self._synth.push(unit))
        else:
            self._emit_text(self._tags.feed(self._decoder.push(token_id)))

    def _emit_text(self, pieces: list[tuple[str, str]]) -> None:
        for text, part in pieces:
            self._events.put(StreamEvent(text=text, part=part))

    def _flush_text(self) -> None:
        self._emit_text(self._tags.feed(self._decoder.flush()) + self._tags.flush())

    def _emit_audio(self, chunk: Any) -> None:
        if chunk.numel():
            self._events.put(StreamEvent(audio=chunk.float().cpu().numpy()))

    def _close_span(self) -> None:
        if self._synth is not None:
            self._emit_audio(self._synth.flush())
            self._synth = None

    def end(self) -> None:
        self._close_span()
        self._flush_text()
        self._events.put(None)

    def __iter__(self) -> Iterator[StreamEvent]:
        while True:
            event = self._events.get(timeout=self.timeout)
            if event is None:
                return
            yield event


__all__ = ["SpeechUnitStreamer", "StreamEvent"]
