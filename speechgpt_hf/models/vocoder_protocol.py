"""What the rest of the package needs of a vocoder, so that any unit vocoder can voice SpeechGPT's answers.

The processor, the chat session, the pipelines, the streaming router and the evaluation tasks never look inside a
vocoder: they call `synthesize` (one unit sequence, a UnitSequence with its durations, or a list of them, and an
optional `speaker_id`) and `streamer` (chunked audio as units arrive), put it in eval mode, and read three fields
of its `config`: `num_units` (checked against the LM's unit vocabulary), `sampling_rate` (of the audio returned)
and `num_speakers` (with the optional `speaker_names`, to pick a voice). `UnitHiFiGANVocoder` and
`UnitMelVocoder` both satisfy `UnitVocoder`; `check_vocoder` says what a candidate lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

CONFIG_FIELDS = ("num_units", "sampling_rate", "num_speakers")  # read by callers; `speaker_names` is optional


@runtime_checkable
class UnitStreamer(Protocol):
    """Incremental synthesis: every chunk `push` and `flush` return, joined, is the one-shot waveform."""

    def push(self, units: int | Sequence[int] | torch.Tensor, durations: Sequence[int] | None = None) -> torch.Tensor:
        """Adds units; returns the 1-D float audio that is now final (possibly empty)."""
        ...

    def flush(self) -> torch.Tensor:
        """Ends the stream; returns the rest of the audio."""
        ...


@runtime_checkable
class UnitVocoder(Protocol):
    """A model that voices discrete speech units; its `config` has `num_units`, `sampling_rate`, `num_speakers`."""

    config: Any

    def synthesize(
        self,
        units: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | Any,
        speaker_id: int | Sequence[int] | None = None,
        durations: Sequence[int] | Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Units (a list, a tensor, an object with `.units`/`.durations` such as a UnitSequence, or a list of
        those) -> 1-D float32 CPU waveform(s) at `config.sampling_rate`; a list in gives a list out."""
        ...

    def streamer(self, speaker_id: int | None = None, chunk_frames: int = 50) -> UnitStreamer:
        """A fresh `UnitStreamer` in the given voice, synthesising `chunk_frames` unit frames at a time."""
        ...

    def eval(self) -> Any: ...


def check_vocoder(vocoder: Any) -> Any:
    """`vocoder` unchanged when it offers what `UnitVocoder` names (and the config fields); else a TypeError that
    lists what is missing."""
    missing = [name for name in ("synthesize", "streamer", "eval") if not callable(getattr(vocoder, name, None))]
    config = getattr(vocoder, "config", None)
    missing += [f"config.{name}" for name in CONFIG_FIELDS if not hasattr(config, name)]
    if missing:
        raise TypeError(
            f"{type(vocoder).__name__} is not a unit vocoder: it lacks {', '.join(missing)}. Use a "
            "UnitHiFiGANVocoder or UnitMelVocoder (AutoModel.from_pretrained of a vocoder repo)."
        )
    return vocoder


def vocoder_sampling_rate(vocoder: Any) -> int:
    """The rate of the audio `vocoder.synthesize` returns."""
    return int(check_vocoder(vocoder).config.sampling_rate)


__all__ = ["CONFIG_FIELDS", "UnitStreamer", "UnitVocoder", "check_vocoder", "vocoder_sampling_rate"]
