"""Vocoder training: losses, data preparation through a unit tokenizer, the accelerate loop, checkpoints and exact
resume, validation samples, the loss plot, and the `train-vocoder` verb."""

import json
import sys

import numpy as np
import pytest
import soundfile
import torch
from datasets import Audio, Dataset
from transformers import AutoModel

import speechgpt_hf  # noqa: F401
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import tiny_mel_generator_config
from speechgpt_hf.training.vocoder import VocoderTrainingConfig, prepare_vocoder_dataset, train_vocoder
from speechgpt_hf.training.vocoder.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from speechgpt_hf_cli import main as cli_main

TINY_MODEL = dict(
    unit_embed_dim=16,
    speaker_embed_dim=8,
    duration_predictor_hidden_dim=16,
    upsample_initial_channel=16,
    upsample_rates=[5, 4, 4, 4],
    upsample_kernel_sizes=[11, 8, 8, 8],
    resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]],
)


def tone(seconds: float, freq: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def unit_rows(n: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        durations = rng.integers(1, 4, size=12).tolist()
        rows.append(
            {
                "audio": {"array": tone(sum(durations) * 0.02, 200 + 40 * i), "sampling_rate": 16000},
                "units": rng.integers(0, 10, size=12).tolist(),
                "durations": durations,
                "speaker": f"s{i % 2}",
            }
        )
    return Dataset.from_list(rows)


def training_config(tmp_path, **overrides) -> VocoderTrainingConfig:
    values = dict(
        output_dir=str(tmp_path / "run"),
        model=TINY_MODEL,
        segment_frames=8,
        batch_size=2,
        max_steps=4,
        log_steps=1,
        eval_steps=2,
        save_steps=2,
        discriminator_width=1 / 32,
        mpd_periods=(2, 3),
        n_fft=256,
        hop_length=64,
        win_length=256,
        n_mels=20,
        cpu=True,
        num_audio_samples=1,
    )
    values.update(overrides)
    return VocoderTrainingConfig(**values)


def test_lsgan_and_feature_matching_losses():
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert discriminator_loss(ones, zeros).item() == 0.0
    assert discriminator_loss(zeros, ones).item() == 2.0
    assert generator_adversarial_loss(ones).item() == 0.0
    assert feature_matching_loss([[torch.ones(3)]], [[torch.zeros(3)]]).item() == 1.0


def test_prepare_through_the_unit_tokenizer_skips_bad_rows(caplog):
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=12))
    rows = Dataset.from_list(
        [
            {"audio": {"array": tone(0.6, 220), "sampling_rate": 22050}, "speaker": "a"},
            {"audio": {"array": np.zeros(0, dtype=np.float32), "sampling_rate": 16000}, "speaker": "b"},
            {"audio": {"array": tone(0.4, 330), "sampling_rate": 16000}, "speaker": "c"},
        ]
    ).cast_column("audio", Audio())
    data = prepare_vocoder_dataset(rows, unit_tokenizer=tokenizer, speaker_column="speaker")
    assert len(data) == 2 and data.speakers == ["a", "c"]
    for example in data.examples:
        assert len(example["audio"]) == sum(example["durations"]) * 320
        assert max(example["units"]) < 12
    assert "Skipped 1 of 3 rows" in caplog.text


def test_prepare_skips_corrupt_files_but_stops_on_a_missing_library_a_bug_or_a_missing_column(
    tmp_path, monkeypatch, decoding_bug
):
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=12))
    soundfile.write(tmp_path / "good.wav", tone(0.5, 220), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows = [{"audio": str(tmp_path / "good.wav")}, {"audio": str(tmp_path / "corrupt.wav")}]
    assert len(prepare_vocoder_dataset(rows, unit_tokenizer=tokenizer)) == 1
    with pytest.raises(KeyError, match="lacks the column"):
        prepare_vocoder_dataset(rows, unit_tokenizer=tokenizer, audio_column="speech")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "soundfile", None)
        with pytest.raises(ImportError, match="pip install soundfile"):
            prepare_vocoder_dataset(rows, unit_tokenizer=tokenizer)

    decoding_bug()
    with pytest.raises(TypeError, match="a bug"):
        prepare_vocoder_dataset(rows, unit_tokenizer=tokenizer)


def test_train_checkpoints_validation_plot_and_export(tmp_path):
    data = prepare_vocoder_dataset(unit_rows(), speaker_column="speaker")
    config = training_config(tmp_path, save_total_limit=1)
    torch.manual_seed(0)
    model = train_vocoder(config, data, eval_data=data, num_units=10)
    run = tmp_path / "run"
    assert (run / "model.safetensors").exists() and (run / "loss.png").exists()
    assert (run / "samples" / "step-2" / "0.wav").exists()
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-4"]
    state = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["step"] == 4
    losses = [h for h in state["history"] if "mel_l1" in h]
    assert len(losses) == 4 and all(np.isfinite(h["loss_g"]) and h["duration"] > 0 for h in losses)
    assert any("eval_mel_distance" in h for h in state["history"])
    loaded = AutoModel.from_pretrained(run)
    assert isinstance(loaded, UnitHiFiGANVocoder) and loaded.config.speaker_names == ["s0", "s1"]
    assert not any("parametrizations" in key for key in loaded.state_dict())
    torch.testing.assert_close(loaded.generator.conv_post.weight, model.generator.conv_post.weight)


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    data = prepare_vocoder_dataset(unit_rows(), speaker_column="speaker")
    straight = train_vocoder(training_config(tmp_path / "a", eval_steps=100), data, num_units=10)
    train_vocoder(training_config(tmp_path / "b", eval_steps=100, max_steps=2), data, num_units=10)
    resumed = train_vocoder(
        training_config(tmp_path / "b", eval_steps=100, resume_from_checkpoint=True), data, num_units=10
    )
    state = json.loads((tmp_path / "b" / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["epoch"] == 1
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_config_from_yaml_refuses_unknown_keys(tmp_path):
    (tmp_path / "r.yaml").write_text("max_steps: 7\nbatch_size: 3\n")
    assert VocoderTrainingConfig.from_yaml(tmp_path / "r.yaml", batch_size=5).batch_size == 5
    (tmp_path / "bad.yaml").write_text("max_stepz: 7\n")
    with pytest.raises(ValueError, match="max_stepz"):
        VocoderTrainingConfig.from_yaml(tmp_path / "bad.yaml")


def test_cli_train_vocoder_with_a_unit_tokenizer(tmp_path, capsys):
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=8))
    tokenizer.save_pretrained(tmp_path / "tok")
    rows = Dataset.from_list([{"audio": {"array": tone(0.5, 150 + 50 * i), "sampling_rate": 16000}} for i in range(4)])
    rows.cast_column("audio", Audio()).save_to_disk(str(tmp_path / "data"))
    recipe = training_config(tmp_path).to_dict()
    recipe.update(
        max_steps=2,
        eval_steps=2,
        save_steps=2,
        adam_betas=list(recipe["adam_betas"]),
        mpd_periods=list(recipe["mpd_periods"]),
    )
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    argv = [
        "train-vocoder",
        str(tmp_path / "data"),
        "--unit-tokenizer",
        str(tmp_path / "tok"),
        "--eval-size",
        "1",
        "--config",
        str(tmp_path / "recipe.yaml"),
        "--output-dir",
        str(tmp_path / "cli"),
    ]
    assert cli_main(argv) == 0
    assert "Wrote" in capsys.readouterr().out
    vocoder = AutoModel.from_pretrained(tmp_path / "cli")
    assert vocoder.config.num_units == 8 and vocoder.config.num_speakers == 0
    with pytest.raises(SystemExit):
        cli_main(["train-vocoder", "--help"])
    assert "--unit-tokenizer" in capsys.readouterr().out


def test_time_limit_stops_with_a_resumable_checkpoint(tmp_path):
    data = prepare_vocoder_dataset(unit_rows(), speaker_column="speaker")
    train_vocoder(training_config(tmp_path, eval_steps=100, max_steps=50, time_limit_minutes=0.0), data, num_units=10)
    assert [p.name for p in (tmp_path / "run").glob("checkpoint-*")] == ["checkpoint-1"]
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_generator_warm_up_before_the_discriminators(tmp_path):
    data = prepare_vocoder_dataset(unit_rows(), speaker_column="speaker")
    config = training_config(tmp_path, eval_steps=100, max_steps=3, discriminator_start_step=2)
    train_vocoder(config, data, num_units=10)
    history = json.loads((tmp_path / "run" / "checkpoint-3" / "trainer_state.json").read_text())["history"]
    assert ["loss_d" in h for h in history] == [False, False, True]
    assert all("mel_l1" in h for h in history)


TINY_MEL_GENERATOR = tiny_mel_generator_config(num_mels=20)
TINY_UNIT_MEL = dict(unit_embed_dim=8, hidden_dim=16, dilations=[1, 2], duration_predictor_hidden_dim=8)


@pytest.fixture
def mel_generator(tmp_path):
    """A tiny random mel HiFi-GAN folder, as `speechgpt-hf convert mel-hifigan` writes one."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    SpeechT5HifiGan(SpeechT5HifiGanConfig(**TINY_MEL_GENERATOR)).save_pretrained(tmp_path / "generator")
    return tmp_path / "generator"


def unit_mel_config(folder, generator, **overrides) -> VocoderTrainingConfig:
    values = dict(
        output_dir=str(folder),
        architecture="unit_mel",
        generator=str(generator),
        model=TINY_UNIT_MEL,
        segment_frames=10,
        batch_size=3,
        max_steps=4,
        log_steps=1,
        eval_steps=100,
        save_steps=2,
        learning_rate=1e-2,
        cpu=True,
        num_audio_samples=1,
    )
    values.update(overrides)
    return VocoderTrainingConfig(**values)


def test_unit_mel_vocoder_trains_resumes_and_loads(tmp_path, mel_generator):
    from transformers import SpeechT5HifiGan

    from speechgpt_hf.models.unit_mel import UnitMelVocoder

    data = prepare_vocoder_dataset(unit_rows(), speaker_column="speaker")
    straight = train_vocoder(unit_mel_config(tmp_path / "a", mel_generator, eval_steps=4), data, data, num_units=10)
    train_vocoder(unit_mel_config(tmp_path / "b", mel_generator, max_steps=2), data, num_units=10)
    resumed = train_vocoder(
        unit_mel_config(tmp_path / "b", mel_generator, resume_from_checkpoint=True), data, num_units=10
    )
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    history = json.loads((tmp_path / "a" / "checkpoint-4" / "trainer_state.json").read_text())["history"]
    losses = [h["mel_l1"] for h in history if "mel_l1" in h]
    assert len(losses) == 4 and losses[-1] < losses[0] and all(h.get("duration", 1) > 0 for h in history)
    assert not any("loss_d" in h for h in history) and any("eval_mel_distance" in h for h in history)
    assert (tmp_path / "a" / "loss.png").exists() and (tmp_path / "a" / "samples" / "step-4" / "0.wav").exists()
    loaded = AutoModel.from_pretrained(tmp_path / "a")
    assert isinstance(loaded, UnitMelVocoder) and loaded.config.speaker_names == ["s0", "s1"]
    generator = SpeechT5HifiGan.from_pretrained(mel_generator)
    torch.testing.assert_close(loaded.generator.conv_post.weight, generator.conv_post.weight)  # frozen
    assert "unit-to-mel" in (tmp_path / "a" / "README.md").read_text()
    wave = loaded.synthesize(data.examples[0]["units"], speaker_id=0, durations=data.examples[0]["durations"])
    assert wave.shape == (len(data.examples[0]["audio"]),)


def test_unit_mean_mels_are_the_mean_target_frame_of_each_unit(mel_generator):
    from speechgpt_hf.models.unit_mel import UnitMelConfig
    from speechgpt_hf.training.vocoder.unit_mel import mel_targets, unit_mel_means

    data = prepare_vocoder_dataset(unit_rows(2))
    config = UnitMelConfig(num_units=10, generator_config=TINY_MEL_GENERATOR, **TINY_UNIT_MEL)
    targets = mel_targets(config, data)
    pairs = []  # (unit under each mel frame's centre, that frame's target), worked out by hand: 441 samples a unit
    for example, target in zip(data.examples, targets, strict=True):
        frame_units = [u for u, d in zip(example["units"], example["durations"], strict=True) for _ in range(d)]
        assert len(target) == -(-len(frame_units) * 441 // 256)
        pairs += [
            (frame_units[min((256 * m + 128) // 441, len(frame_units) - 1)], target[m]) for m in range(len(target))
        ]
    means, seen = unit_mel_means(config, data, targets)
    for unit in {u for u, _ in pairs}:
        torch.testing.assert_close(means[unit], torch.stack([t for u, t in pairs if u == unit]).mean(0))
    assert seen.tolist() == [unit in {u for u, _ in pairs} for unit in range(10)]


def test_cli_trains_the_unit_mel_vocoder(tmp_path, mel_generator, capsys):
    rows = Dataset.from_list([{"audio": {"array": tone(0.5, 150 + 50 * i), "sampling_rate": 16000}} for i in range(4)])
    rows = rows.map(lambda row, i: {"units": [i % 2, 2, 1 - i % 2], "durations": [8, 9, 8]}, with_indices=True)
    rows.cast_column("audio", Audio()).save_to_disk(str(tmp_path / "data"))
    (tmp_path / "recipe.yaml").write_text(json.dumps({"model": TINY_UNIT_MEL, "max_steps": 2, "cpu": True}))
    argv = ["train-vocoder", str(tmp_path / "data"), "--architecture", "unit_mel", "--generator", str(mel_generator)]
    argv += ["--config", str(tmp_path / "recipe.yaml"), "--eval-size", "1", "--output-dir", str(tmp_path / "cli")]
    assert cli_main(argv) == 0
    assert AutoModel.from_pretrained(tmp_path / "cli").config.model_type == "speechgpt_unit_mel"
