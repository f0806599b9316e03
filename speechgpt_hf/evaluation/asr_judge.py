"""An independent, offline intelligibility judge: pocketsphinx's bundled en-us recogniser plus word error rate.

Used to score speech this project writes (vocoder resynthesis, TTS answers) without a network or any model that
shares training data with ours. It reads natural English well (about 7% WER on Piper's joe voice) and robotic
voices poorly, so compare a system's WER with the WER of the reference audio judged the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import load_audio, to_int16

SAMPLING_RATE = 16000


def normalize_text(text: str) -> str:
    """Lower case, digits and letters only (apostrophes kept inside words), single spaces."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (jiwer) of normalised texts; an empty hypothesis counts every reference word as deleted."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses.")
    refs = [normalize_text(r) for r in references]
    if not all(refs):
        raise ValueError("Every reference needs at least one word after normalisation.")
    return float(jiwer.wer(refs, [normalize_text(h) for h in hypotheses]))


@dataclass
class JudgeResult:
    """Corpus WER and what the recogniser heard for each utterance."""

    wer: float
    transcripts: list[str] = field(default_factory=list)


class PocketsphinxJudge:
    """Transcribes 16 kHz English speech offline with pocketsphinx's en-us acoustic and language model."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as error:
            raise ImportError("The ASR judge needs pocketsphinx: pip install pocketsphinx") from error
        self.decoder = Decoder(samprate=SAMPLING_RATE, logfn="/dev/null")

    def transcribe(self, audio: Any, sampling_rate: int = SAMPLING_RATE) -> str:
        """Text heard in one waveform (float in [-1, 1] or integers; channels are averaged), resampled to 16 kHz.

        Raises `speechgpt_hf.audio.AudioInputError` (a ValueError) for empty or non-finite audio.
        """
        samples = _recogniser_input(audio, sampling_rate)
        self.decoder.start_utt()
        self.decoder.process_raw(samples.tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def judge(
        self, audios: Sequence[Any], references: Sequence[str], sampling_rate: int = SAMPLING_RATE
    ) -> JudgeResult:
        """Transcribes every waveform and scores the transcripts against `references`."""
        if len(audios) != len(references):
            raise ValueError(f"{len(audios)} waveforms but {len(references)} reference texts.")
        transcripts = [self.transcribe(audio, sampling_rate) for audio in audios]
        return JudgeResult(word_error_rate(references, transcripts), transcripts)


def _recogniser_input(audio: Any, sampling_rate: int) -> np.ndarray:
    """One waveform as the 16 kHz mono int16 the recogniser reads: `load_audio` (down-mix, resample), `to_int16`."""
    return to_int16(load_audio(audio, sampling_rate, target_rate=SAMPLING_RATE, min_samples=1))


__all__ = ["JudgeResult", "PocketsphinxJudge", "normalize_text", "word_error_rate"]
