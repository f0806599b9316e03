"""Word timings: espeak-ng's own (from the synthesis that made the audio) and pocketsphinx's forced alignment,
checked against what the audio holds (speech inside words, silence in pauses) and against each other."""

import json

import numpy as np
import pytest

from speechgpt_hf.data.tts_engines import CallableTTS, EspeakTTS
from speechgpt_hf.data.word_timings import (
    ESPEAK,
    POCKETSPHINX,
    WordTimings,
    align_words,
    arpabet,
    espeak_synthesize,
    speak_with_timings,
    text_words,
)

SENTENCE = "The cat sat on the mat. Then it left."
WORDS = ["The", "cat", "sat", "on", "the", "mat", "Then", "it", "left"]


def _rms(audio: np.ndarray, sampling_rate: int, start: float, end: float) -> float:
    part = audio[int(start * sampling_rate) : int(end * sampling_rate)].astype(np.float64)
    return float(np.sqrt(np.mean(part**2))) if part.size else 0.0


def _check_order(timings: WordTimings, seconds: float) -> None:
    starts, ends = np.array(timings.starts), np.array(timings.ends)
    assert (np.diff(starts) > 0).all() and (ends > starts).all()
    assert (ends[:-1] <= starts[1:] + 1e-9).all() and starts[0] >= 0 and ends[-1] <= seconds


def test_text_words_drop_punctuation_and_keep_the_spans():
    assert [w for w, _, _ in text_words('Well -- it\'s 3.50, "OK"?')] == ["Well", "it's", "3.50", "OK"]
    text = "Hello, world."
    assert [text[s:e] for _, s, e in text_words(text)] == ["Hello,", "world."]


def test_espeak_times_every_word_of_the_text_in_order_inside_the_audio():
    samples, sampling_rate, timings = espeak_synthesize(SENTENCE, "en-us+m1", rate=165)
    seconds = samples.size / sampling_rate
    assert list(timings.words) == WORDS and timings.source == ESPEAK and sampling_rate == 22050
    _check_order(timings, seconds)
    # espeak-ng says "on the" as one word: both halves get phonemes of their own
    assert {timings.phoneme_words.count(3), timings.phoneme_words.count(4)} != {0}
    assert set(range(len(WORDS))) <= set(timings.phoneme_words)
    # every word is speech; the pause after "mat." is silence
    for start, end in zip(timings.starts, timings.ends, strict=True):
        assert _rms(samples, sampling_rate, start, end) > 500
    assert timings.starts[6] - timings.ends[5] > 0.2
    assert _rms(samples, sampling_rate, timings.ends[5] + 0.02, timings.starts[6] - 0.02) < 100


def test_espeak_word_starts_scale_with_the_speaking_rate():
    slow = espeak_synthesize(SENTENCE, "en-us", rate=90)[2]
    fast = espeak_synthesize(SENTENCE, "en-us", rate=180)[2]
    ratios = np.array(slow.starts[1:]) / np.array(fast.starts[1:])
    assert np.all((ratios > 1.6) & (ratios < 2.4)), ratios


def test_an_explicit_pause_between_words_is_silence_outside_both_words():
    samples, sampling_rate, timings = espeak_synthesize("one two three", "en-us", rate=175, word_gap=100)
    assert list(timings.words) == ["one", "two", "three"]
    _check_order(timings, samples.size / sampling_rate)
    for index in range(2):
        gap_start, gap_end = timings.ends[index], timings.starts[index + 1]
        assert 0.9 < gap_end - gap_start < 1.3  # 100 x 10 ms, plus the words' own edges
        assert _rms(samples, sampling_rate, gap_start + 0.02, gap_end - 0.02) < 50


def test_the_timed_espeak_audio_is_the_command_lines_audio_and_repeats():
    engine = EspeakTTS(speakers=["en-gb+f2", "en-us+m3"])
    for speaker in engine.speakers:
        plain, sampling_rate = engine(SENTENCE, speaker=speaker)
        for _ in range(2):
            audio, timed_rate, timings = engine.speak_with_timings(SENTENCE, speaker=speaker)
            assert timed_rate == sampling_rate and np.array_equal(audio, plain) and list(timings.words) == WORDS
    gapped = EspeakTTS(speakers=["en-us"], word_gap=50)
    assert np.array_equal(gapped("one two")[0], gapped.speak_with_timings("one two")[0])
    with pytest.raises(RuntimeError, match="no voice"):
        espeak_synthesize("hello", "xx-no-such-voice")


@pytest.mark.parametrize(
    "text,voice",
    [
        (SENTENCE, "en-us+m1"),
        ("My neighbour bought two green apples at the market yesterday.", "en-gb+f2"),
        ("Will the old teacher carry the heavy box to the library tomorrow?", "en-us+f3"),
    ],
)
def test_pocketsphinx_alignment_agrees_with_espeaks_own_word_starts(text, voice):
    samples, sampling_rate, own = espeak_synthesize(text, voice, rate=165)
    aligned = align_words(samples, sampling_rate, text)
    assert aligned.words == own.words and aligned.source == POCKETSPHINX
    _check_order(aligned, samples.size / sampling_rate + 0.01)
    difference = np.abs(np.array(aligned.starts) - np.array(own.starts))
    assert difference.mean() < 0.05 and difference.max() < 0.1, difference
    assert aligned.phonemes and set(aligned.phoneme_words) == set(range(len(aligned.words)))


def test_alignment_spells_words_the_dictionary_lacks_and_refuses_what_it_cannot_align():
    assert arpabet("yoghurt")[:2] == ["Y", "OW"]
    text = "Please pass the zorblat yoghurt."
    samples, sampling_rate, own = espeak_synthesize(text, "en-us", rate=165)
    aligned = align_words(samples, sampling_rate, text)
    assert list(aligned.words) == ["Please", "pass", "the", "zorblat", "yoghurt"]
    assert np.abs(np.array(aligned.starts) - np.array(own.starts)).max() < 0.1
    with pytest.raises(ValueError, match="no words"):
        align_words(samples, sampling_rate, " -- ")
    with pytest.raises(ValueError):
        align_words(np.zeros(800, dtype=np.float32), 16000, "a rather long sentence that cannot fit in this audio")


def test_engines_without_their_own_timings_are_aligned_and_timings_round_trip():
    espeak = EspeakTTS(speakers=["en-us"])
    engine = CallableTTS(lambda text: espeak(text), name="plain")
    audio, sampling_rate, timings = speak_with_timings(engine, SENTENCE)
    assert timings.source == POCKETSPHINX and list(timings.words) == WORDS
    assert speak_with_timings(espeak, SENTENCE)[2].source == ESPEAK
    assert WordTimings.from_json(timings.to_json()) == timings
    columns = timings.columns()
    assert set(columns) == {"words", "word_starts", "word_ends"} and json.dumps(columns)
    assert columns["word_starts"] == [round(t, 4) for t in timings.starts]
    with pytest.raises(ValueError, match="words"):
        WordTimings(("a",), (0.0,), ())


def test_an_alignment_does_not_depend_on_the_recordings_aligned_before_it():
    """A resumed corpus build aligns in a new process: each clip must be timed as if it came first. Without the
    front end's reset, clips 5 and 7 of these (a corpus's first Piper clips) moved by a frame after the others."""
    from speechgpt_hf.data import word_timings
    from speechgpt_hf.data.tts_engines import PiperTTS

    piper = PiperTTS()
    sentences = [
        ("When will my sister buy the fresh apple?", "joe-fast"),
        ("Do we order a banana every evening?", "joe"),
        ("How many dogs did my brother find yesterday?", "joe-fast"),
        ("My brother brings a cup every morning.", "joe"),
        ("My sister bought the cup in the noisy kitchen last night.", "joe-fast"),
        ("Your brother will eat a sweet apple tomorrow.", "joe"),
        ("Let's buy a banana tomorrow morning.", "joe-fast"),
        ("Your sister will clean the plates tomorrow.", "joe"),
    ]
    clips = [(text, *piper(text, speaker=speaker)) for text, speaker in sentences]
    word_timings._aligner.cache_clear()
    in_a_row = [align_words(samples, rate, text) for text, samples, rate in clips]
    for index, (text, samples, rate) in enumerate(clips):
        word_timings._aligner.cache_clear()
        assert align_words(samples, rate, text) == in_a_row[index], f"clip {index} moved with what came before it"
