"""A corrupt file never breaks a run: every verb that reads audio skips it, leaves it out of what it saves, and
names it in its summary. Also: an unfitted unit tokenizer says so, and the expected time a step is reported."""

import json
import logging

import numpy as np
import pytest
import soundfile
from datasets import load_from_disk

from speechgpt_hf.data.unit_extraction import audio_dataset
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.training.step_timer import StepTimer
from speechgpt_hf_cli import main as cli_main

TINY_VOCODER = dict(
    unit_embed_dim=16,
    speaker_embed_dim=8,
    duration_predictor_hidden_dim=16,
    upsample_initial_channel=16,
    upsample_rates=[5, 4, 4, 4],
    upsample_kernel_sizes=[11, 8, 8, 8],
    resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]],
)


@pytest.fixture
def audio_folder(tmp_path):
    """Five short tones and one corrupt wav."""
    folder = tmp_path / "audio"
    folder.mkdir()
    t = np.arange(12000) / 16000
    for i in range(5):
        soundfile.write(
            folder / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * (180 + 60 * i) * t)).astype(np.float32), 16000
        )
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return folder


@pytest.fixture
def fitted_tokenizer(tmp_path):
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=6))
    tokenizer.set_codebook(np.random.default_rng(0).standard_normal((6, tokenizer.config.feature_dim)))
    tokenizer.save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


@pytest.mark.parametrize("saved", [False, True], ids=["audio folder", "saved dataset"])
def test_fit_units_skips_a_corrupt_file_and_names_it(audio_folder, tmp_path, capsys, saved):
    source = audio_folder
    if saved:  # the corrupt file's bytes are embedded in the dataset, under its name
        source = tmp_path / "saved"
        audio_dataset(str(audio_folder)).remove_columns("path").save_to_disk(str(source))
    argv = [
        "fit-units",
        str(source),
        "--output-dir",
        str(tmp_path / "fit"),
        "--num-units",
        "4",
        "--max-iter",
        "5",
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "Skipped 1 of 6 items" in out and "corrupt.wav" in out
    assert SpeechUnitTokenizer.from_pretrained(tmp_path / "fit").is_fitted


def test_extract_units_leaves_a_corrupt_file_out_of_the_saved_dataset(audio_folder, fitted_tokenizer, tmp_path, capsys):
    argv = [
        "extract-units",
        str(audio_folder),
        "--tokenizer",
        str(fitted_tokenizer),
        "--output-dir",
        str(tmp_path / "u"),
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "5/6 rows encoded, 1 skipped." in out and "corrupt.wav" in out
    saved = load_from_disk(str(tmp_path / "u"))
    rows = list(saved)  # decodes every row's audio: a corrupt one would raise
    assert len(rows) == 5 and all(row["unit_error"] is None and row["units"] for row in rows)


def _vocoder_recipe(tmp_path):
    recipe = dict(
        model=TINY_VOCODER,
        segment_frames=8,
        batch_size=2,
        max_steps=5,
        log_steps=1,
        eval_steps=5,
        save_steps=5,
        discriminator_width=1 / 32,
        mpd_periods=[2, 3],
        n_fft=256,
        hop_length=64,
        win_length=256,
        n_mels=20,
        cpu=True,
        num_audio_samples=1,
    )
    (tmp_path / "vocoder.yaml").write_text(json.dumps(recipe))
    return str(tmp_path / "vocoder.yaml")


def test_train_vocoder_skips_a_corrupt_file_names_it_and_reports_the_step_time(
    audio_folder, fitted_tokenizer, tmp_path, capsys
):
    argv = [
        "train-vocoder",
        str(audio_folder),
        "--unit-tokenizer",
        str(fitted_tokenizer),
        "--eval-size",
        "1",
        "--config",
        _vocoder_recipe(tmp_path),
        "--output-dir",
        str(tmp_path / "voc"),
    ]
    # a folder of audio reads through datasets' audiofolder, whose Audio column would decode the corrupt file
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert "Skipped 1 of 6 rows" in captured.out and "corrupt.wav" in captured.out
    assert "Expected time:" in captured.out + captured.err and "a step" in captured.out + captured.err
    assert (tmp_path / "voc" / "config.json").exists()


def test_train_vocoder_names_a_missing_speaker_column(audio_folder, fitted_tokenizer, tmp_path, capsys):
    argv = [
        "train-vocoder",
        str(audio_folder),
        "--unit-tokenizer",
        str(fitted_tokenizer),
        "--speaker-column",
        "speaker",
        "--config",
        _vocoder_recipe(tmp_path),
        "--output-dir",
        str(tmp_path / "voc"),
    ]
    assert cli_main(argv) == 2
    assert "no speaker column 'speaker'" in capsys.readouterr().err


def test_an_unfitted_tokenizer_warns_and_a_fitted_one_does_not(tmp_path, caplog):
    from transformers.utils import logging as hf_logging

    wave = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=5, seed=123))
    hf_logging.enable_propagation()
    with caplog.at_level(logging.WARNING):
        tokenizer.encode(wave, sampling_rate=16000)
    assert not tokenizer.is_fitted and "never fitted" in caplog.text
    tokenizer.fit([wave], sampling_rate=16000, max_iter=2, progress=False)
    tokenizer.save_pretrained(tmp_path / "fitted")
    assert SpeechUnitTokenizer.from_pretrained(tmp_path / "fitted").is_fitted


def test_the_step_timer_reports_once_after_the_warm_up_step():
    messages = []
    timer = StepTimer(total_steps=100, report=messages.append, skip=1, measure=3)
    for step in range(1, 10):
        timer.step_ended(step)
    assert len(messages) == 1 and "a step" in messages[0] and "96 steps left of 100" in messages[0]
