"""UnitHiFiGANVocoder: synthesis, batching with masks, durations, bad input, streaming, save/load through Auto."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

import speechgpt_hf  # noqa: F401  (registers the Auto classes)
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder, stream_units
from speechgpt_hf.testing_utils import fan_in_init_

HOP = 320


def tiny_config(**overrides) -> UnitHiFiGANConfig:
    kwargs = dict(
        num_units=20,
        unit_embed_dim=16,
        num_speakers=3,
        speaker_embed_dim=8,
        duration_predictor_hidden_dim=16,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 4, 4],
        upsample_kernel_sizes=[11, 8, 8, 8],
        resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3], [1, 3]],
    )
    kwargs.update(overrides)
    return UnitHiFiGANConfig(**kwargs)


def audible(model: UnitHiFiGANVocoder) -> UnitHiFiGANVocoder:
    """HiFi-GAN's init (std 0.01) writes near-silence; fan-in scaled weights make outputs (and differences) audible."""
    fan_in_init_(model.generator, gain=1.5)
    with torch.no_grad():
        if model.duration_predictor is not None:  # spread predicted durations over 1..4 frames
            model.duration_predictor.proj.bias.fill_(1.0)
            model.duration_predictor.proj.weight.mul_(20)
    return model


@pytest.fixture(scope="module")
def vocoder() -> UnitHiFiGANVocoder:
    torch.manual_seed(0)
    return audible(UnitHiFiGANVocoder(tiny_config()).eval())


def test_output_length_is_hop_times_frames(vocoder):
    ids = torch.tensor([[1, 5, 7, 2]])
    durations = torch.tensor([[2, 1, 3, 1]])
    out = vocoder(ids, speaker_ids=torch.tensor([1]), durations=durations)
    assert vocoder.config.hop_length == HOP
    assert out.waveform.shape == (1, 7 * HOP)
    assert out.lengths.tolist() == [7 * HOP]
    assert 0.05 < out.waveform.abs().max() <= 1.0


def test_predicted_durations_expand_units(vocoder):
    out = vocoder(torch.tensor([[1, 5, 7, 2, 9, 9, 3]]), speaker_ids=torch.tensor([0]))
    assert (out.durations >= 1).all() and len(set(out.durations.flatten().tolist())) > 1
    assert out.lengths.item() == out.durations.sum().item() * HOP == out.waveform.shape[1]


def test_no_predictor_means_one_frame_per_unit():
    model = UnitHiFiGANVocoder(tiny_config(use_duration_predictor=False, num_speakers=0)).eval()
    assert model.duration_predictor is None and model.speaker_embedding is None
    out = model(torch.tensor([[3, 4, 5]]))
    assert out.lengths.tolist() == [3 * HOP]


def test_batched_synthesis_equals_one_by_one(vocoder):
    rows = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 3], [4, 4, 1, 19, 0]]
    speakers = [0, 2, 1]
    batched = vocoder.synthesize(rows, speaker_id=speakers)
    for row, speaker, wave in zip(rows, speakers, batched, strict=True):
        single = vocoder.synthesize(row, speaker_id=speaker)
        assert wave.shape == single.shape
        torch.testing.assert_close(wave, single, atol=1e-5, rtol=0)
    out = vocoder(
        torch.tensor([[1, 2, 3], [4, 0, 0]]),
        attention_mask=torch.tensor([[1, 1, 1], [1, 0, 0]]),
        speaker_ids=torch.tensor([0, 1]),
    )
    assert (out.waveform[1, out.lengths[1] :] == 0).all()
    assert out.durations[1, 1:].tolist() == [0, 0]


def test_speaker_changes_the_voice(vocoder):
    a = vocoder.synthesize([1, 2, 3], speaker_id=0)
    b = vocoder.synthesize(np.array([1, 2, 3]), speaker_id=np.int64(2))
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_unit_sequence_durations_are_used(vocoder):
    from speechgpt_hf.models.unit_tokenizer import UnitSequence

    wave = vocoder.synthesize(UnitSequence(units=[3, 8, 3], durations=[4, 1, 2]), speaker_id=1)
    assert wave.shape == (7 * HOP,)


def test_bf16_synthesis_runs_and_stays_close(vocoder):
    ids = torch.tensor([[1, 2, 3, 4]])
    kwargs = dict(speaker_ids=torch.tensor([0]), durations=torch.tensor([[2, 2, 1, 1]]))
    reference = vocoder(ids, **kwargs).waveform
    half = UnitHiFiGANVocoder(vocoder.config).eval()
    half.load_state_dict(vocoder.state_dict())
    out = half.to(torch.bfloat16)(ids, **kwargs).waveform
    assert out.dtype == torch.bfloat16
    # bf16 rounds each value to 8 significant bits (~0.4%); how a CPU's kernels accumulate sets the worst sample
    # (0.027 peak error with native bf16, 0.030 emulated), so the bound is on the RMS error: about 2% either way.
    error = (out.float() - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()
    assert error < 0.1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(input_ids=torch.tensor([[1, 20]])), ValueError, "outside 0..19"),
        (dict(input_ids=torch.tensor([[-1, 2]])), ValueError, "Unit id -1 at batch index 0"),
        (dict(input_ids=torch.tensor([[1.0, 2.0]])), TypeError, "integer"),
        (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), ValueError, "Empty unit sequence"),
        (
            dict(input_ids=torch.tensor([[1, 2], [3, 4]]), attention_mask=torch.tensor([[1, 1], [0, 0]])),
            ValueError,
            "index [1]",
        ),
        (dict(input_ids=torch.tensor([[1, 2]]), speaker_ids=torch.tensor([3])), ValueError, "Speaker id 3"),
        (dict(input_ids=torch.tensor([[1, 2]]), speaker_ids=None), ValueError, "pass `speaker_ids`"),
        (dict(input_ids=torch.tensor([[1, 2]]), durations=torch.tensor([[1, 0]])), ValueError, "Duration 0"),
        (dict(input_ids=torch.tensor([[1, 2]]), durations=torch.tensor([[1.0, 2.0]])), TypeError, "durations"),
    ],
)
def test_bad_input_is_refused_before_synthesis(vocoder, kwargs, error, message):
    kwargs.setdefault("speaker_ids", torch.tensor([0] * kwargs["input_ids"].shape[0]))
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        vocoder(**kwargs)


def test_bad_input_in_synthesize(vocoder):
    with pytest.raises(TypeError, match="integers"):
        vocoder.synthesize([1.5, 2.0], speaker_id=0)
    with pytest.raises(ValueError, match="batch index 1"):
        vocoder.synthesize([[1, 2], [3, 25]], speaker_id=0)
    with pytest.raises(ValueError, match="Empty"):
        vocoder.synthesize([], speaker_id=0)
    single = UnitHiFiGANVocoder(tiny_config(num_speakers=0))
    with pytest.raises(ValueError, match="single voice"):
        single.synthesize([1, 2], speaker_id=0)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="even number"):
        tiny_config(upsample_kernel_sizes=[10, 8, 8, 8])


@pytest.mark.parametrize("chunk_frames", [6, 40])
def test_streaming_equals_one_shot(vocoder, chunk_frames):
    torch.manual_seed(1)
    units = torch.randint(0, 20, (60,)).tolist()
    one_shot = vocoder.synthesize(units, speaker_id=2)
    chunks = list(stream_units(vocoder, units, speaker_id=2, chunk_frames=chunk_frames))
    streamed = torch.cat(chunks)
    assert streamed.shape == one_shot.shape
    assert (streamed - one_shot).abs().max() < 1e-4
    assert len(chunks) > 1


def test_streaming_with_known_durations_and_bounded_memory(vocoder):
    torch.manual_seed(2)
    units = torch.randint(0, 20, (120,)).tolist()
    durations = torch.randint(1, 4, (120,)).tolist()
    one_shot = vocoder.synthesize(units, speaker_id=0, durations=durations)
    streamer = vocoder.streamer(speaker_id=0, chunk_frames=10)
    pieces, buffered = [], []
    for unit, duration in zip(units, durations, strict=True):
        pieces.append(streamer.push([unit], durations=[duration]))
        buffered.append(len(streamer._frames))
    pieces.append(streamer.flush())
    assert (torch.cat(pieces) - one_shot).abs().max() < 1e-4
    assert max(buffered) <= 2 * streamer.context + streamer.chunk_frames + 3
    with pytest.raises(RuntimeError, match="flushed"):
        streamer.push([1])
    with pytest.raises(ValueError, match="outside"):
        vocoder.streamer(speaker_id=0).push([99])
    with pytest.raises(TypeError, match="integers"):
        vocoder.streamer(speaker_id=0).push([1.5])
    numpy_ids = vocoder.streamer(speaker_id=0, chunk_frames=1)
    numpy_ids.push(np.int64(3), durations=[60])  # numpy scalars work like ints
    assert numpy_ids.flush().numel() > 0


def test_save_and_load_through_auto(vocoder, tmp_path, local_hub):
    vocoder.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "speechgpt_unit_hifigan"
    assert config["auto_map"]["AutoModel"].endswith("UnitHiFiGANVocoder")
    assert isinstance(AutoConfig.from_pretrained(tmp_path), UnitHiFiGANConfig)
    ids = torch.tensor([[1, 2, 3]])
    expected = vocoder(ids, speaker_ids=torch.tensor([1])).waveform
    for source in (tmp_path, local_hub(tmp_path, "tests/tiny-unit-hifigan")):
        loaded = AutoModel.from_pretrained(source)
        assert isinstance(loaded, UnitHiFiGANVocoder)
        torch.testing.assert_close(loaded(ids, speaker_ids=torch.tensor([1])).waveform, expected)


def test_trust_remote_code_loads_without_the_plugin(vocoder, tmp_path):
    vocoder.save_pretrained(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert "speechgpt_hf" not in sys.modules, "the plugin was imported"
        wave = model(torch.tensor([[1, 2, 3]]), speaker_ids=torch.tensor([1])).waveform
        print(type(model).__name__, tuple(wave.shape))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "UnitHiFiGANVocoder" in done.stdout
