"""A generate() streamer that speaks while the LM is still writing.

Tokens arrive from `model.generate(streamer=...)`; text tokens become text deltas, and unit tokens inside a
`<sosp>…<eosp>` span are pushed into the vocoder's streaming synthesiser, so the first audio chunk is ready
long before the answer is finished. Events are read by iterating the streamer from another thread.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers.generation.streamers import BaseStreamer


@dataclass
class StreamEvent:
    """One piece of a streamed answer: a text delta or a chunk of 1-D float32 audio."""

    text: str | None = None
    audio: np.ndarray | None = None


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
        processor: Any,
        vocoder: Any | None = None,
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
        self._text_ids: list[int] = []
        self._text_sent = ""
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
        elif processor.ids_to_units([token_id]):
            unit = token_id - processor.unit_token_offset
            self.units.append(unit)
            if self._synth is not None:
                self._emit_audio(self._synth.push(unit))
        else:
            self._text_ids.append(token_id)
            self._flush_text(final=False)

    def _flush_text(self, final: bool = True) -> None:
        text = self.processor.tokenizer.decode(self._text_ids, skip_special_tokens=True)
        # Hold back a trailing replacement character: a multi-byte character may be half decoded.
        ready = text if final or not text.endswith("\ufffd") else text[:-1]
        if len(ready) > len(self._text_sent):
            self._events.put(StreamEvent(text=ready[len(self._text_sent) :]))
            self._text_sent = ready
        if final:
            self._text_ids, self._text_sent = [], ""

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
