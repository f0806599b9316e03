"""One way to read audio: one integer scaling, one down-mix, one error type at every place that reads or writes
audio, and a missing decoding library reported as such, never as bad audio."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import speechgpt_hf
from speechgpt_hf.audio import AudioInputError, load_audio, read_audio, to_float, to_int16
from speechgpt_hf.data.sources import decode_audio
from speechgpt_hf.data.tts_engines import CallableTTS
from speechgpt_hf.evaluation.pocketsphinx_judge import PocketsphinxJudge
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.space.app import read_upload
from speechgpt_hf.training.vocoder import prepare_vocoder_dataset

SR = 16000


def stereo_int16(samples: int = 1600) -> np.ndarray:
    """(2, samples) int16 noise that reaches both ends of the range."""
    rng = np.random.default_rng(0)
    audio = rng.integers(-32768, 32768, size=(2, samples), dtype=np.int16)
    audio[0, 0], audio[1, 1] = -32768, 32767
    return audio


def test_one_module_under_every_name():
    from speechgpt_hf.models import unit_tokenizer

    assert unit_tokenizer.AudioInputError is speechgpt_hf.AudioInputError is AudioInputError
    assert unit_tokenizer.load_audio is speechgpt_hf.load_audio is load_audio
    assert issubclass(AudioInputError, ValueError)


def test_integers_scale_by_two_to_the_bits_minus_one():
    assert to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert to_float(np.array([-128, 64], np.int8)).tolist() == [-1.0, 0.5]
    assert to_float(np.array([-(2**31)], np.int32)).tolist() == [-1.0]
    assert to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert to_float(torch.tensor([-32768], dtype=torch.int16)).tolist() == [-1.0]
    assert to_float(np.array([0.25], np.float64)).dtype == np.float32
    with pytest.raises(AudioInputError, match="must hold numbers"):
        to_float(np.array(["a"]))


def test_to_int16_inverts_to_float_and_clips():
    every_value = np.arange(-32768, 32768, dtype=np.int16)
    assert np.array_equal(to_int16(to_float(every_value)), every_value)
    assert to_int16(np.array([-1.5, -1.0, 0.5, 1.0, 2.0], np.float32)).tolist() == [-32768, -32768, 16384, 32767, 32767]
    assert to_int16(torch.tensor([0.5])).tolist() == [16384]
    with pytest.raises(AudioInputError, match="NaN"):
        to_int16(np.array([0.0, np.nan], np.float32))


def test_read_audio_down_mixes_and_keeps_the_rate(tmp_path):
    audio = stereo_int16()
    expected = (audio[0].astype(np.float64) + audio[1]) / 2 / 32768
    wave, rate = read_audio(audio, SR)
    assert rate == SR and wave.dtype == np.float32
    np.testing.assert_allclose(wave, expected, atol=1e-7)
    np.testing.assert_array_equal(read_audio(audio.T, SR)[0], wave)  # (samples, channels) as Gradio gives it
    soundfile.write(tmp_path / "stereo.wav", audio.T, SR, subtype="PCM_16")
    from_file, file_rate = read_audio(tmp_path / "stereo.wav")
    assert file_rate == SR
    np.testing.assert_array_equal(from_file, wave)
    assert load_audio(audio, SR, target_rate=8000, min_samples=1).size == 800


def _space_upload(audio: np.ndarray, folder: Path) -> np.ndarray:
    """`audio` (channels, samples) int16 as the Space reads it: a WAV upload through `read_upload`."""
    soundfile.write(folder / "upload.wav", audio.T, SR, subtype="PCM_16")
    return read_upload([str(folder / "upload.wav")], max_seconds=10)[0]


def test_every_reader_gives_the_same_samples_for_int16_stereo(tmp_path):
    audio = stereo_int16()
    expected, _ = read_audio(audio, SR)
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=8))
    row = {"audio": {"array": audio, "sampling_rate": SR}, "units": [1, 2], "durations": [2, 3]}
    readers = {
        "unit tokenizer": tokenizer.load_audio(audio, SR),
        "package top level": speechgpt_hf.load_audio(audio, SR),
        "SpeechInstruct sources": decode_audio({"array": audio, "sampling_rate": SR})[0],
        "vocoder data": prepare_vocoder_dataset([row], hop_length=320).examples[0]["audio"],
        "TTS engines": CallableTTS(lambda text: (audio, SR))("x")[0],
        "Space": _space_upload(audio, tmp_path),
    }
    for where, wave in readers.items():
        np.testing.assert_array_equal(wave, expected, err_msg=where)


class _RecordingDecoder:
    """Stands in for pocketsphinx's decoder and keeps the int16 samples the judge hands it."""

    def start_utt(self) -> None:
        self.samples = np.zeros(0, np.int16)

    def process_raw(self, data: bytes, no_search: bool, full_utt: bool) -> None:
        self.samples = np.frombuffer(data, dtype=np.int16)

    def end_utt(self) -> None:
        pass

    def hyp(self) -> None:
        return None


def test_the_judge_and_the_space_write_int16_the_same_way(tmp_path):
    audio = stereo_int16()
    judge = object.__new__(PocketsphinxJudge)
    judge.decoder = _RecordingDecoder()
    assert judge.transcribe([audio], SR) == [""]
    np.testing.assert_array_equal(judge.decoder.samples, to_int16(read_audio(audio, SR)[0]))
    mono = stereo_int16()[0]
    assert np.array_equal(to_int16(_space_upload(mono[None], tmp_path)), mono)  # the Space's round trip is exact


def test_a_missing_soundfile_is_named_not_called_corrupt(tmp_path, monkeypatch):
    soundfile.write(tmp_path / "good.wav", np.zeros(1600, np.float32), SR)
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(ImportError, match="pip install soundfile"):
        read_audio(tmp_path / "good.wav")


def _torchcodec_without_ffmpeg() -> types.ModuleType:
    """A torchcodec.decoders module that fails as torchcodec does when FFmpeg's shared libraries are absent."""
    module = types.ModuleType("torchcodec.decoders")

    def missing_library(attribute: str) -> None:
        raise OSError("libavutil.so.59: cannot open shared object file: No such file or directory")

    module.__getattr__ = missing_library
    return module


def test_a_missing_ffmpeg_is_named_not_called_corrupt(tmp_path, monkeypatch):
    not_for_soundfile = tmp_path / "speech.m4a"
    not_for_soundfile.write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", _torchcodec_without_ffmpeg())
    with pytest.raises(ImportError, match="pip install torchcodec.*FFmpeg.*libavutil"):
        read_audio(not_for_soundfile)


def test_a_corrupt_file_is_bad_input_named_even_when_read_from_its_bytes(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioInputError, match="corrupt or not an audio file"):
        read_audio(tmp_path / "corrupt.wav")
    embedded = {"bytes": (tmp_path / "corrupt.wav").read_bytes(), "path": "corrupt.wav"}  # as a saved dataset holds it
    with pytest.raises(AudioInputError, match="Could not decode corrupt.wav: it is corrupt"):
        read_audio(embedded)
