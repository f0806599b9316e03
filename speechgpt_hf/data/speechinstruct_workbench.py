"""The per-process state of a SpeechInstruct build: the unit tokenizer, the TTS engine, the task descriptions and
the sentences to splice, made on first use in each worker, and how the builder fingerprints the objects it is given."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import AudioInputError
from ..models.speechgpt.task_descriptions import load_task_descriptions
from .rows import ASR, TTS, token_counter
from .sources import CORRUPT_AUDIO, TOO_LONG, TTS_FAILED, SkipItem
from .tts_engines import resolve_tts
from .word_splicing import read_sentences

if TYPE_CHECKING:
    from .speechinstruct import SpeechInstructConfig

logger = logging.getLogger(__name__)


def resolve_unit_tokenizer(spec: Any) -> Any:
    """An object with `.encode(audio, sampling_rate=)`: the given one, a loaded path/repo, or an unfitted MFCC one.

    The builder skips an utterance that `encode` refuses with `speechgpt_hf.audio.AudioInputError`; any other
    error stops the build.
    """
    if isinstance(spec, PortableModule):
        return spec.load()
    if spec is not None and not isinstance(spec, (str, os.PathLike)) and hasattr(spec, "encode"):
        return spec
    from ..models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

    if spec is None:
        logger.warning(
            "No unit_tokenizer given: using an unfitted MFCC SpeechUnitTokenizer (100 seeded centroids). Its units "
            "are consistent but not trained; pass a fitted tokenizer for real training data."
        )
        return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=100))
    return SpeechUnitTokenizer.from_pretrained(spec)


class Workbench:
    """The heavy, per-process state of a build (tokenizers, TTS engine, descriptions), made on first use."""

    def __init__(self, config: SpeechInstructConfig) -> None:
        self.config = config
        self.units = resolve_unit_tokenizer(config.unit_tokenizer)
        self.count_tokens = token_counter(config.tokenizer)
        self.asr_descriptions = load_task_descriptions(config.asr_descriptions, ASR)
        self.tts_descriptions = load_task_descriptions(config.tts_descriptions, TTS)
        self._tts = None
        self._spliced_texts: list[str] | None = None
        self._resamplers: dict[int, Any] = {}
        self.target_rate = getattr(getattr(self.units, "config", None), "sampling_rate", None)
        self.seconds: Counter = Counter()

    @property
    def tts(self) -> Any:
        if self._tts is None:
            self._tts = resolve_tts(self.config.tts)
        return self._tts

    @property
    def spliced_texts(self) -> list[str]:
        """The sentences `spliced_asr_rows` draws from, read once."""
        if self._spliced_texts is None:
            self._spliced_texts = read_sentences(self.config.spliced_texts)
        return self._spliced_texts

    @property
    def frames_per_second(self) -> float:
        """Unit frames a second before merging (50 for a Whisper encoder at 16 kHz)."""
        config = getattr(self.units, "config", None)
        hop = getattr(config, "frame_hop", None)
        return self.target_rate / hop if self.target_rate and hop else 50.0

    def encode(self, audio: np.ndarray, sampling_rate: int) -> list[int]:
        """Merged units of one utterance; too-long audio is refused before any work is spent on it."""
        return list(self.encode_sequence(audio, sampling_rate).units)

    def encode_sequence(self, audio: np.ndarray, sampling_rate: int) -> Any:
        """The utterance's UnitSequence (merged units and their durations in frames), refused as `encode` says."""
        if audio.size / sampling_rate > self.config.max_audio_seconds:
            raise SkipItem(TOO_LONG, f"{audio.size / sampling_rate:.1f} s > {self.config.max_audio_seconds} s")
        started = time.perf_counter()
        if self.target_rate and sampling_rate != self.target_rate:
            audio, sampling_rate = self._resample(audio, sampling_rate), self.target_rate
        try:
            return self.units.encode(audio, sampling_rate=sampling_rate)
        except AudioInputError as error:  # the tokenizer refusing one input (too short, NaN…) skips that item
            raise SkipItem(CORRUPT_AUDIO, str(error)) from error
        finally:
            self.seconds["unit tokenizer"] += time.perf_counter() - started

    def _resample(self, audio: np.ndarray, sampling_rate: int) -> np.ndarray:
        """Resampling with a kernel built once a source rate (rebuilding it each call cost ~30% of a unit encoding)."""
        import torch
        import torchaudio

        if sampling_rate not in self._resamplers:
            self._resamplers[sampling_rate] = torchaudio.transforms.Resample(sampling_rate, self.target_rate)
        with torch.no_grad():
            return self._resamplers[sampling_rate](torch.from_numpy(audio)).numpy()

    def speak(self, text: str, speaker: str) -> list[int]:
        started = time.perf_counter()
        try:
            audio, sampling_rate = self.tts(text, speaker=speaker)
        except ValueError as error:  # an engine refusing one text skips that pair; other errors stop the build
            raise SkipItem(TTS_FAILED, f"{type(error).__name__}: {error}") from error
        finally:
            self.seconds["tts"] += time.perf_counter() - started
        return self.encode(audio, sampling_rate)


class PortableModule:
    """A torch module pickled as (class, config, state dict): weight-normed encoders refuse plain pickling."""

    def __init__(self, module: Any) -> None:
        self.cls, self.config, self.state = type(module), module.config, module.state_dict()

    def load(self) -> Any:
        module = self.cls(self.config)
        module.load_state_dict(self.state)
        return module.eval()


def fingerprint(value: Any) -> str:
    """A content hash of a tokenizer, engine or callable, for the builder's cache id; models hash their weights."""
    from datasets.fingerprint import Hasher

    if not hasattr(value, "state_dict"):
        return Hasher.hash(value)
    hasher = Hasher()
    hasher.update(type(value).__qualname__)
    hasher.update(value.config.to_json_string() if hasattr(value, "config") else "")
    for name, tensor in value.state_dict().items():
        hasher.update(name)
        hasher.update(tensor.detach().cpu().contiguous().numpy())
    return hasher.hexdigest()


__all__ = ["PortableModule", "Workbench", "fingerprint", "resolve_unit_tokenizer"]
