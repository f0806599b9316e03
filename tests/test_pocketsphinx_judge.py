"""The light pocketsphinx judge: a real transcription of Piper speech, noise rejected, bad audio refused."""

import numpy as np
import pytest

from speechgpt_hf.audio import AudioInputError
from speechgpt_hf.evaluation.pocketsphinx_judge import PocketsphinxJudge


@pytest.fixture(scope="module")
def judge() -> PocketsphinxJudge:
    return PocketsphinxJudge()


def test_judge_reads_natural_speech_and_not_noise(judge):
    from speechgpt_hf.data.tts_engines import PiperTTS

    text = "The weather is nice today, so we will walk to the park."
    audio, rate = PiperTTS()(text)
    result = judge.judge([audio], [text], sampling_rate=rate)
    assert result.wer <= 0.2, result.transcripts
    assert result.cer is not None and result.cer <= result.wer + 0.1
    noise = np.random.default_rng(0).normal(0, 0.05, 16000 * 2).astype(np.float32)
    assert judge.judge([noise], [text]).wer >= 0.8


def test_judge_refuses_bad_audio(judge):
    with pytest.raises(AudioInputError, match="too short"):
        judge.transcribe([np.zeros(100, dtype=np.float32)])
    with pytest.raises(AudioInputError, match="NaN"):
        judge.transcribe([np.full(1600, np.nan, dtype=np.float32)])
    with pytest.raises(TypeError, match="list of waveforms"):
        judge.transcribe(np.zeros(1600, dtype=np.float32))
    with pytest.raises(ValueError, match="1 waveforms but 2"):
        judge.judge([np.zeros(1600, dtype=np.float32)], ["a", "b"])
