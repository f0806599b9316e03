"""The offline TTS engines: real audio out, reproducible, speakers that differ, clear errors."""

import pickle

import numpy as np
import pytest

from speechgpt_hf.data.tts_engines import CallableTTS, EspeakTTS, PiperTTS, TTSEngine, resolve_tts


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS()


def _check_speech(audio: np.ndarray, sampling_rate: int, min_seconds: float = 0.3) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size / sampling_rate > min_seconds
    assert np.abs(audio).max() <= 1.0 and np.sqrt(np.mean(audio**2)) > 0.01


def test_piper_speaks_reproducibly_and_rate_variants_change_length(piper):
    audio, sampling_rate = piper("The weather is lovely today. Shall we walk?")
    again, _ = piper("The weather is lovely today. Shall we walk?")
    _check_speech(audio, sampling_rate)
    assert sampling_rate == 22050 and np.array_equal(audio, again)
    slow, _ = piper("The weather is lovely today. Shall we walk?", speaker="joe-slow")
    fast, _ = piper("The weather is lovely today. Shall we walk?", speaker="joe-fast")
    assert fast.size < audio.size < slow.size
    assert isinstance(piper, TTSEngine) and piper.speakers == ["joe", "joe-slow", "joe-fast"]


def test_piper_pickles_by_its_arguments_and_threads_do_not_change_the_voice(piper):
    clone = pickle.loads(pickle.dumps(piper))
    assert np.array_equal(clone("Hello.")[0], piper("Hello.")[0]) and clone.speakers == piper.speakers
    default_threads = PiperTTS(num_threads=None)
    assert np.allclose(default_threads("Hello.")[0], piper("Hello.")[0], atol=1e-4)


def test_piper_rejects_unknown_speakers_and_unspeakable_text(piper):
    with pytest.raises(ValueError, match="Unknown Piper speakers"):
        PiperTTS(speakers=["alice"])
    with pytest.raises(ValueError, match="no audio"):
        piper("   ")


def test_espeak_voices_differ_and_repeat():
    engine = EspeakTTS()
    first, sampling_rate = engine("Good morning, everyone.", speaker="en-us+m1")
    same, _ = engine("Good morning, everyone.", speaker="en-us+m1")
    other, _ = engine("Good morning, everyone.", speaker="en-gb+f2")
    _check_speech(first, sampling_rate)
    assert np.array_equal(first, same)
    assert first.size != other.size or not np.allclose(first, other)
    assert len(engine.speakers) == 8


def test_espeak_errors_name_the_problem():
    with pytest.raises(FileNotFoundError, match="install espeak-ng"):
        EspeakTTS(executable="no-such-espeak-binary")
    with pytest.raises(RuntimeError, match="espeak-ng failed"):
        EspeakTTS()("hello", speaker="zz-not-a-voice")


def test_callable_engines_are_adapted_and_checked():
    def beep(text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        pitch = 440 if speaker in (None, "low") else 880
        t = np.arange(8000 * len(text.split())) / 16000
        return (0.5 * np.sin(2 * np.pi * pitch * t) * 32767).astype(np.int16), 16000

    engine = resolve_tts(beep)
    audio, sampling_rate = engine("three short words", speaker="high")
    assert engine.name == "beep" and sampling_rate == 16000 and audio.dtype == np.float32
    assert audio.size == 24000 and 0.45 < np.abs(audio).max() <= 0.5
    stereo = CallableTTS(lambda text: (np.zeros((2, 1600), dtype=np.float32), 16000))
    assert stereo("x")[0].shape == (1600,)
    with pytest.raises(TypeError, match="must return"):
        CallableTTS(lambda text: np.zeros(10))("x")
    with pytest.raises(ValueError, match="Unknown TTS engine"):
        resolve_tts("festival")
    assert isinstance(resolve_tts("espeak"), EspeakTTS)
