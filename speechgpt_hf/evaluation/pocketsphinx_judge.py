"""A light offline ASR judge: pocketsphinx's bundled en-us recogniser (no neural network, no download).

It reads natural English fairly well (about 7% WER on Piper's joe voice) and robotic voices poorly, so it is the
fallback judge; `load_asr_judge("whisper-tiny.en")` is the stronger default. Compare a system's WER with the
WER of the reference audio judged the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..audio import to_int16
from .judges import SAMPLING_RATE, ASRJudge, prepare_waveforms


class PocketsphinxJudge(ASRJudge):
    """Transcribes 16 kHz English speech offline with pocketsphinx's en-us acoustic and language model."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as error:
            raise ImportError("The pocketsphinx judge needs pocketsphinx: pip install pocketsphinx") from error
        self.decoder = Decoder(samprate=SAMPLING_RATE, logfn="/dev/null")

    def transcribe(
        self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE, expected: Sequence[str] | None = None
    ) -> list[str]:
        """The text heard in each mono waveform (resampled to 16 kHz when `sampling_rate` differs); its decoding
        cannot loop, so `expected` is not needed."""
        return [self._decode(wave) for wave in prepare_waveforms(waveforms, sampling_rate)]

    def _decode(self, wave: np.ndarray) -> str:
        self.decoder.start_utt()
        self.decoder.process_raw(to_int16(wave).tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


__all__ = ["PocketsphinxJudge"]
