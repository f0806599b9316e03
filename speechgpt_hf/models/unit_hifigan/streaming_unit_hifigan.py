"""Streaming synthesis: units arrive one by one (e.g. from an LLM generating them) and audio comes out in chunks.

Every convolution in the vocoder sees a bounded neighbourhood, so a chunk of frames can be synthesised from a window
that adds `receptive_context()` frames of left and right context; the samples of the chunk itself are then the same
as one-shot synthesis (up to float rounding: the tests hold them to 1e-4 absolute in fp32). Durations are final once
the duration predictor's right context (2 units for kernel 3) has arrived. Only the context is kept, so memory stays
bounded however long the stream runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .modeling_unit_hifigan import UnitHiFiGANVocoder

EXPAND_EVERY = 4  # ready units that trigger a duration prediction before a chunk is certain


class UnitHiFiGANStreamer:
    """Incremental unit-to-speech synthesis with a [`UnitHiFiGANVocoder`].

    `push(units)` returns whatever audio became ready (possibly an empty tensor), `flush()` ends the stream and
    returns the rest. Concatenating every returned chunk gives the one-shot waveform of all units pushed.

    Args:
        vocoder: the vocoder (its device and dtype are used).
        speaker_id: the voice, for multi-speaker vocoders.
        chunk_frames: unit frames (20 ms each at 16 kHz) synthesised per chunk; smaller means earlier audio.
    """

    def __init__(self, vocoder: UnitHiFiGANVocoder, speaker_id: int | None = None, chunk_frames: int = 50) -> None:
        if chunk_frames < 1:
            raise ValueError("`chunk_frames` must be at least 1.")
        vocoder._check_speakers(None if speaker_id is None else torch.tensor([speaker_id]), 1)
        self.vocoder = vocoder
        self.speaker_ids = None if speaker_id is None else torch.tensor([speaker_id], device=vocoder.device)
        self.chunk_frames = chunk_frames
        self.context = vocoder.generator.receptive_context()
        predictor = vocoder.duration_predictor
        self.unit_context = 0 if predictor is None else predictor.context
        self._units: list[int] = []  # units not yet expanded, preceded by up to `unit_context` expanded ones
        self._units_left = 0  # how many leading entries of `_units` are only left context
        self._frames: list[int] = []  # frame-level ids, starting at global frame `_frame_offset`
        self._frame_offset = 0
        self._emitted = 0  # global frame index up to which audio has been returned
        self._finished = False

    def push(self, units: int | Sequence[int] | torch.Tensor, durations: Sequence[int] | None = None) -> torch.Tensor:
        """Adds units (with their durations, if known) and returns the audio that is now final (1-D, float32)."""
        if self._finished:
            raise RuntimeError("This stream was flushed; start a new one with `vocoder.streamer()`.")
        new = self._as_list(units)
        if durations is not None:
            self._add_frames(new, list(durations))
        elif self.vocoder.duration_predictor is None:
            self._add_frames(new, [1] * len(new))
        else:
            self._units.extend(new)
            ready = len(self._units) - self._units_left - self.unit_context
            missing = self._emitted + self.chunk_frames + self.context - self._frame_offset - len(self._frames)
            # Every unit lasts >= 1 frame: with `missing` ready units the next chunk is certain. Otherwise predict
            # every few units only, which spares the predictor most calls when units come one at a time.
            if ready >= missing or ready >= EXPAND_EVERY:
                self._expand_units(final=False)
        return self._synthesize(final=False)

    def flush(self) -> torch.Tensor:
        """Ends the stream: expands the remaining units and returns all audio not yet returned."""
        if self._units[self._units_left :]:
            self._expand_units(final=True)
        self._finished = True
        return self._synthesize(final=True)

    def _as_list(self, units: int | Sequence[int] | torch.Tensor) -> list[int]:
        """Checked unit ids as a list (a single id, a list, a numpy array or a tensor)."""
        tensor = units if isinstance(units, torch.Tensor) else torch.as_tensor(units)
        if tensor.numel() and (tensor.is_floating_point() or tensor.dtype == torch.bool):
            raise TypeError(f"Unit ids must be integers, got {tensor.dtype} values.")
        bad = [int(u) for u in tensor.flatten().tolist() if not 0 <= int(u) < self.vocoder.config.num_units]
        if bad:
            raise ValueError(f"Unit id {bad[0]} is outside 0..{self.vocoder.config.num_units - 1}.")
        return tensor.flatten().tolist()

    def _add_frames(self, units: list[int], durations: list[int]) -> None:
        if len(units) != len(durations) or any(int(d) < 1 for d in durations):
            raise ValueError("Pass one duration >= 1 per unit (units with zero duration must be dropped).")
        for unit, duration in zip(units, durations, strict=True):
            self._frames.extend([unit] * int(duration))

    @torch.inference_mode()
    def _expand_units(self, final: bool) -> None:
        """Predicts the durations of the units whose right context is complete and appends their frames."""
        pending = len(self._units) - self._units_left
        ready = pending if final else pending - self.unit_context
        if ready <= 0:
            return
        ids = torch.tensor([self._units], device=self.vocoder.device)
        durations, _ = self.vocoder.predict_durations(ids)
        window = slice(self._units_left, self._units_left + ready)
        self._add_frames(self._units[window], durations[0, window].tolist())
        keep_from = max(0, self._units_left + ready - self.unit_context)
        self._units = self._units[keep_from:]
        self._units_left = self._units_left + ready - keep_from

    @torch.inference_mode()
    def _synthesize(self, final: bool) -> torch.Tensor:
        """Runs the generator over every chunk that has its full right context (all that is left when `final`)."""
        chunks = []
        available = self._frame_offset + len(self._frames)
        while True:
            todo = available - self._emitted
            if todo <= 0 or (not final and todo < self.chunk_frames + self.context):
                break
            count = min(self.chunk_frames, todo)
            start = max(self._frame_offset, self._emitted - self.context)
            end = min(available, self._emitted + count + self.context)
            ids = torch.tensor([self._frames[start - self._frame_offset : end - self._frame_offset]])
            features = self.vocoder.frame_features(ids.to(self.vocoder.device), self.speaker_ids)
            waveform = self.vocoder.generator(features)[0]
            hop = self.vocoder.config.hop_length
            chunks.append(waveform[(self._emitted - start) * hop : (self._emitted - start + count) * hop].float().cpu())
            self._emitted += count
        drop = max(0, self._emitted - self.context - self._frame_offset)
        self._frames = self._frames[drop:]
        self._frame_offset += drop
        return torch.cat(chunks) if chunks else torch.zeros(0)


def stream_units(
    vocoder: UnitHiFiGANVocoder,
    units: Iterable[int | Sequence[int]],
    speaker_id: int | None = None,
    chunk_frames: int = 50,
) -> Iterator[torch.Tensor]:
    """Yields non-empty waveform chunks while `units` (single ids or small lists of ids) is being consumed."""
    streamer = UnitHiFiGANStreamer(vocoder, speaker_id=speaker_id, chunk_frames=chunk_frames)
    for item in units:
        chunk = streamer.push(item)
        if chunk.numel():
            yield chunk
    chunk = streamer.flush()
    if chunk.numel():
        yield chunk


__all__ = ["UnitHiFiGANStreamer", "stream_units"]
