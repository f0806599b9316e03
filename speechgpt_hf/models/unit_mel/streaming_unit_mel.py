"""Streaming synthesis with the unit-to-mel vocoder: units arrive one by one, audio comes out in chunks.

Every stage sees a bounded neighbourhood: the duration predictor a few units, the mel network and the generator a
few dozen mel frames, the resampler a few samples. A chunk of unit frames is therefore synthesised from a window
that adds `receptive_context()` unit frames on each side. The window keeps the global mel-frame grid (mel frame m
takes unit frame ⌊(m·hop + hop/2) / samples-a-unit-frame⌋ wherever the window starts) and is resampled from a unit
frame boundary (441 generator samples -> 320 output samples at 22,050 -> 16,000 Hz: whole periods of the
resampling filter), so the chunk's samples equal one-shot synthesis up to float rounding. Only the context is
kept, so memory stays bounded however long the stream runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .inputs_unit_mel import check_speakers

if TYPE_CHECKING:
    from .modeling_unit_mel import UnitMelVocoder

EXPAND_EVERY = 4  # ready units that trigger a duration prediction before a chunk is certain


class UnitMelStreamer:
    """Incremental unit-to-speech synthesis with a [`UnitMelVocoder`].

    `push(units)` returns whatever audio became final (possibly an empty tensor), `flush()` ends the stream and
    returns the rest. Concatenating every returned chunk gives the one-shot waveform of all units pushed.

    Args:
        vocoder: the vocoder (its device and dtype are used).
        speaker_id: the voice, for multi-speaker vocoders.
        chunk_frames: unit frames (20 ms each) synthesised per chunk; smaller means earlier audio.
    """

    def __init__(self, vocoder: UnitMelVocoder, speaker_id: int | None = None, chunk_frames: int = 50) -> None:
        if chunk_frames < 1:
            raise ValueError("`chunk_frames` must be at least 1.")
        check_speakers(None if speaker_id is None else torch.tensor([speaker_id]), 1, vocoder.config.num_speakers)
        self.vocoder = vocoder
        self.speaker_ids = None if speaker_id is None else torch.tensor([speaker_id], device=vocoder.device)
        self.chunk_frames = chunk_frames
        self.context = vocoder.receptive_context()
        predictor = vocoder.duration_predictor
        self.unit_context = 0 if predictor is None else predictor.context
        self._units: list[int] = []  # units not yet expanded, preceded by up to `unit_context` expanded ones
        self._units_left = 0  # how many leading entries of `_units` are only left context
        self._frames: list[int] = []  # unit-frame ids, starting at global unit frame `_frame_offset`
        self._positions: list[tuple[float, float]] = []  # their position features (see `expand_units`)
        self._frame_offset = 0
        self._emitted = 0  # global unit frame up to which audio has been returned
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
            # Every unit lasts >= 1 frame: with `missing` ready units the next chunk is certain; otherwise predict
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
        if not units:
            return
        ids, positions, _ = self.vocoder.expand_units(torch.tensor([units]), torch.tensor([durations]))
        self._frames.extend(ids[0].tolist())
        self._positions.extend(map(tuple, positions[0].tolist()))

    @torch.inference_mode()
    def _expand_units(self, final: bool) -> None:
        """Predicts the durations of the units whose right context is complete and appends their frames."""
        pending = len(self._units) - self._units_left
        ready = pending if final else pending - self.unit_context
        if ready <= 0:
            return
        ids = torch.tensor([self._units], device=self.vocoder.device)
        durations, _ = self.vocoder.predict_durations(ids, speaker_ids=self.speaker_ids)
        window = slice(self._units_left, self._units_left + ready)
        self._add_frames(self._units[window], durations[0, window].tolist())
        keep_from = max(0, self._units_left + ready - self.unit_context)
        self._units = self._units[keep_from:]
        self._units_left = self._units_left + ready - keep_from

    @torch.inference_mode()
    def _synthesize(self, final: bool) -> torch.Tensor:
        """Voices every chunk that has its full right context (all that is left when `final`)."""
        chunks = []
        available = self._frame_offset + len(self._frames)
        while True:
            todo = available - self._emitted
            if todo <= 0 or (not final and todo < self.chunk_frames + self.context):
                break
            count = min(self.chunk_frames, todo)
            chunks.append(self._window(self._emitted, self._emitted + count, available, final))
            self._emitted += count
        drop = max(0, self._emitted - self.context - self._frame_offset)
        del self._frames[:drop], self._positions[:drop]
        self._frame_offset += drop
        return torch.cat(chunks) if chunks else torch.zeros(0)

    def _window(self, start: int, end: int, available: int, final: bool) -> torch.Tensor:
        """Output samples of unit frames [start, end), from a window of unit frames with context on both sides."""
        vocoder, config = self.vocoder, self.vocoder.config
        hop, unit = config.mel_hop_length, config.generator_hop_length
        first = max(self._frame_offset, start - self.context)
        last = min(available, end + self.context)
        at_end = final and last == available  # the window reaches the end of the utterance: as one-shot does
        mel_start = config.first_mel_frame(first)
        mel_end = config.num_mel_frames(available) if at_end else config.first_mel_frame(last)
        index = torch.clamp(config.unit_frame_of_mel(torch.arange(mel_start, mel_end)), max=available - 1) - first
        device = vocoder.device
        ids = torch.tensor([self._frames[first - self._frame_offset : last - self._frame_offset]], device=device)
        positions = torch.tensor([self._positions[first - self._frame_offset : last - self._frame_offset]])
        mel = vocoder.mel_from_frames(ids, positions.to(device), index[None].to(device), None, self.speaker_ids)
        audio = vocoder.vocode(mel)[0]
        aligned = -(-(hop * mel_start) // unit)  # first unit frame boundary inside the window's audio
        output = vocoder.resample(audio[aligned * unit - hop * mel_start :])
        return output[(start - aligned) * config.hop_length : (end - aligned) * config.hop_length].float().cpu()


__all__ = ["UnitMelStreamer"]
