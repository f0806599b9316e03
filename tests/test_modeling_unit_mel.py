"""UnitMelVocoder: masked batches equal single items, streaming equals one-shot, UnitSequence durations, unit mean
mels, the frozen generator, saving and loading (AutoModel, local Hub, trust_remote_code), and the vocoder protocol."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel

import speechgpt_hf  # noqa: F401  (registers the Auto classes)
from speechgpt_hf import UnitSequence
from speechgpt_hf.models.unit_mel import UnitMelConfig, UnitMelStreamer, UnitMelVocoder
from speechgpt_hf.models.vocoder_protocol import UnitStreamer, UnitVocoder, check_vocoder, vocoder_sampling_rate
from speechgpt_hf.testing_utils import build_tiny_vocoder, fan_in_init_

TINY_GENERATOR = dict(
    model_in_dim=20,
    upsample_initial_channel=16,
    upsample_rates=[8, 8, 4],
    upsample_kernel_sizes=[16, 16, 8],
    resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]],
    n_fft=1024,
    hop_length=256,
    win_length=1024,
)
UNITS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5]


def tiny_vocoder(seed: int = 0, **overrides) -> UnitMelVocoder:
    """A random tiny vocoder whose every stage is active: a loud generator, a non-zero mel network, unit mels."""
    torch.manual_seed(seed)
    settings = dict(
        num_units=10,
        unit_embed_dim=8,
        num_speakers=2,
        hidden_dim=16,
        dilations=[1, 2],
        duration_predictor_hidden_dim=8,
        generator_config=TINY_GENERATOR,
    )
    model = UnitMelVocoder(UnitMelConfig(**{**settings, **overrides})).eval()
    fan_in_init_(model.generator)
    with torch.no_grad():
        model.mel_network.output_proj.weight.normal_(0.0, 0.3)
        model.unit_mel.weight.normal_(-3.0, 1.0)
        model.duration_predictor.proj.weight.normal_(0.0, 0.5)  # durations that vary from unit to unit
        model.duration_predictor.proj.bias.fill_(1.0)  # about two frames a unit
    return model


@pytest.fixture(scope="module")
def vocoder() -> UnitMelVocoder:
    return tiny_vocoder()


def test_output_length_and_rate(vocoder):
    wave = vocoder.synthesize(UNITS[:5], speaker_id=0, durations=[1, 2, 3, 1, 1])
    assert wave.shape == (8 * 320,) and wave.dtype == torch.float32
    assert wave.abs().max() > 1e-2  # loud enough that the comparisons below mean something
    native = tiny_vocoder(sampling_rate=22050)
    assert native.synthesize(UNITS[:5], speaker_id=0, durations=[1, 2, 3, 1, 1]).shape == (8 * 441,)


def test_masked_batch_equals_one_by_one(vocoder):
    rows = [UNITS, UNITS[:5], UNITS[7:19]]
    batch = vocoder.synthesize(rows, speaker_id=1)
    for row, wave in zip(rows, batch, strict=True):
        torch.testing.assert_close(wave, vocoder.synthesize(row, speaker_id=1), atol=1e-5, rtol=0)
    speakers = vocoder.synthesize(rows[:2], speaker_id=[0, 1])
    torch.testing.assert_close(speakers[0], vocoder.synthesize(rows[0], speaker_id=0), atol=1e-5, rtol=0)


def test_unit_sequence_durations_are_used(vocoder):
    sequence = UnitSequence(UNITS[:6], [1, 4, 2, 1, 3, 2])
    wave = vocoder.synthesize(sequence, speaker_id=0)
    assert wave.shape == (13 * 320,)
    torch.testing.assert_close(wave, vocoder.synthesize(UNITS[:6], speaker_id=0, durations=sequence.durations))
    both = vocoder.synthesize([sequence, UnitSequence(UNITS[3:5], [2, 2])], speaker_id=0)
    torch.testing.assert_close(both[0], wave, atol=1e-5, rtol=0)
    assert not torch.allclose(vocoder.synthesize(UNITS[:6], speaker_id=0)[: 6 * 320], wave[: 6 * 320])


def test_durations_follow_the_speaker(vocoder):
    ids = torch.tensor([UNITS])
    with torch.no_grad():
        vocoder.speaker_embedding.weight[1] += 3.0
        _, first = vocoder.predict_durations(ids, speaker_ids=torch.tensor([0]))
        _, second = vocoder.predict_durations(ids, speaker_ids=torch.tensor([1]))
        vocoder.speaker_embedding.weight[1] -= 3.0
    assert (first - second).abs().max() > 1e-3


@pytest.mark.parametrize("chunk_frames", [1, 7, 50])
def test_stream_equals_one_shot(vocoder, chunk_frames):
    expected = vocoder.synthesize(UNITS * 2, speaker_id=1)
    streamer = vocoder.streamer(speaker_id=1, chunk_frames=chunk_frames)
    chunks = [streamer.push(unit) for unit in UNITS * 2] + [streamer.flush()]
    assert sum(chunk.numel() > 0 for chunk in chunks) > (1 if chunk_frames < 50 else 0)
    torch.testing.assert_close(torch.cat(chunks), expected, atol=1e-4, rtol=0)
    assert len(streamer._frames) <= 2 * streamer.context + chunk_frames  # bounded memory


def test_stream_with_known_durations_and_at_the_generator_rate():
    vocoder = tiny_vocoder(sampling_rate=22050, num_speakers=0)
    durations = [1 + (u % 3) for u in UNITS]
    expected = vocoder.synthesize(UNITS, durations=durations)
    streamer = vocoder.streamer(chunk_frames=9)
    chunks = [streamer.push(UNITS[i : i + 3], durations[i : i + 3]) for i in range(0, len(UNITS), 3)]
    torch.testing.assert_close(torch.cat(chunks + [streamer.flush()]), expected, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="flushed"):
        streamer.push(1)


def test_unit_means_are_the_starting_prediction():
    fresh = UnitMelVocoder(UnitMelConfig(num_units=4, unit_embed_dim=8, hidden_dim=16, generator_config=TINY_GENERATOR))
    means = torch.randn(4, 20)
    fresh.set_unit_mels(means, seen=torch.tensor([True, False, True, True]))
    assert torch.equal(fresh.unit_mel.weight[1], torch.full((20,), -6.0))
    mel, lengths = fresh.predict_mel(torch.tensor([[0, 2, 3]]), torch.tensor([[2, 1, 3]]))
    assert lengths.item() == -(-6 * 441 // 256)
    torch.testing.assert_close(mel[0, 0], means[0])
    torch.testing.assert_close(mel[0, -1], means[3])
    with pytest.raises(ValueError, match="shaped"):
        fresh.set_unit_mels(torch.zeros(3, 20))


def test_the_generator_is_frozen_and_only_the_mel_side_trains(vocoder):
    assert not any(p.requires_grad for p in vocoder.generator.parameters())
    assert all(p.requires_grad for p in vocoder.mel_network.parameters())


def test_bad_inputs_are_refused(vocoder):
    with pytest.raises(ValueError, match="outside 0..9"):
        vocoder.synthesize([1, 10], speaker_id=0)
    with pytest.raises(ValueError, match="pass a speaker id"):
        vocoder.synthesize([1, 2])
    with pytest.raises(TypeError, match="integers"):
        vocoder.synthesize([1.5, 2.0], speaker_id=0)
    with pytest.raises(ValueError, match="at least one frame"):
        vocoder.synthesize([1, 2], speaker_id=0, durations=[1, 0])
    with pytest.raises(ValueError, match="outside 0..9"):
        vocoder.streamer(speaker_id=0).push([12])
    with pytest.raises(ValueError, match="multiple of unit_frame_rate"):
        UnitMelConfig(sampling_rate=16001)
    with pytest.raises(ValueError, match="convert mel-hifigan"):
        UnitMelConfig(generator_config={**TINY_GENERATOR, "n_fft": None})


def test_save_and_load_through_auto(vocoder, tmp_path, local_hub):
    vocoder.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "speechgpt_unit_mel" and config["generator_config"]["hop_length"] == 256
    assert config["auto_map"]["AutoModel"].endswith("UnitMelVocoder")
    assert isinstance(AutoConfig.from_pretrained(tmp_path), UnitMelConfig)
    expected = vocoder.synthesize(UNITS, speaker_id=1)
    for source in (tmp_path, local_hub(tmp_path, "tests/tiny-unit-mel")):
        loaded = AutoModel.from_pretrained(source)
        assert isinstance(loaded, UnitMelVocoder)
        torch.testing.assert_close(loaded.synthesize(UNITS, speaker_id=1), expected)
        loaded.freeze_generator()
        assert not any(p.requires_grad for p in loaded.generator.parameters())


def test_trust_remote_code_loads_without_the_plugin(vocoder, tmp_path):
    vocoder.save_pretrained(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert "speechgpt_hf" not in sys.modules, "the plugin was imported"
        print(type(model).__name__, tuple(model.synthesize([1, 2, 3], speaker_id=0).shape))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "UnitMelVocoder (" in done.stdout


def test_both_vocoders_honour_the_protocol(vocoder):
    hifigan = build_tiny_vocoder(num_units=10)
    for model in (vocoder, hifigan):
        assert isinstance(model, UnitVocoder) and check_vocoder(model) is model
        speaker = {"speaker_id": 0} if model.config.num_speakers else {}
        assert isinstance(model.streamer(**speaker), UnitStreamer)
        wave = model.synthesize(UnitSequence([1, 2, 3], [2, 1, 1]), **speaker)
        assert wave.shape == (4 * model.config.hop_length,) and vocoder_sampling_rate(model) == 16000
    assert isinstance(vocoder.streamer(speaker_id=0), UnitMelStreamer)


def test_check_vocoder_names_what_is_missing():
    class HalfVocoder:
        config = type("Config", (), {"num_units": 4})()

        def synthesize(self, units):
            return torch.zeros(1)

    assert not isinstance(HalfVocoder(), UnitVocoder)
    with pytest.raises(TypeError, match="streamer, eval, config.sampling_rate, config.num_speakers"):
        check_vocoder(HalfVocoder())
