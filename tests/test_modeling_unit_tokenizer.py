"""SpeechUnitTokenizer: the encode contract, exact batching, input kinds, bad input, save/load and Auto loading."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor, HubertConfig, HubertModel

from speechgpt_hf import SpeechUnitTokenizer, SpeechUnitTokenizerConfig, UnitSequence, units_to_string
from speechgpt_hf.models.unit_tokenizer import AudioInputError, fit_kmeans, merge_units, modeling_unit_tokenizer
from speechgpt_hf.models.unit_tokenizer.kmeans import ReservoirSampler
from speechgpt_hf_cli import main as cli_main

SR = 16000


def tiny_hubert_config(layers: int = 2) -> HubertConfig:
    return HubertConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )


def voice(seconds: float, seed: int = 0, rate: int = SR) -> np.ndarray:
    """A speech-like test signal: a gliding harmonic tone with syllable-rate loudness and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 40 * np.sin(2 * np.pi * (0.5 + seed % 3) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.2 * tone * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def frames(num_samples: int) -> int:
    return (num_samples - 400) // 320 + 1


@pytest.fixture(scope="module")
def mfcc_tok():
    return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=50)).eval()


@pytest.fixture(scope="module")
def hubert_tok():
    config = SpeechUnitTokenizerConfig(
        feature_type="encoder", encoder_config=tiny_hubert_config(), layer=2, num_units=20
    )
    return SpeechUnitTokenizer(config).eval()


def test_mfcc_encode_contract(mfcc_tok):
    wave = voice(2.0)
    seq = mfcc_tok.encode(wave, sampling_rate=SR)
    assert isinstance(seq, UnitSequence)
    assert seq.num_frames == sum(seq.durations) == frames(wave.size) == 99
    assert all(a != b for a, b in zip(seq.units, seq.units[1:], strict=False))  # adjacent repeats merged
    assert all(0 <= u < 50 for u in seq.units) and len(set(seq.units)) > 3
    framewise = mfcc_tok.encode(wave, sampling_rate=SR, merge=False)
    assert framewise.durations == [1] * 99 and framewise.units == seq.frame_units()
    assert merge_units(framewise.units) == seq
    assert (mfcc_tok.config.sampling_rate, mfcc_tok.config.frame_rate, mfcc_tok.config.num_units) == (16000, 50, 50)
    assert mfcc_tok.config.feature_dim == 39


def test_encoder_batched_equals_one_at_a_time(hubert_tok):
    waves = [voice(s, seed=i) for i, s in enumerate((2.0, 0.4, 1.3, 0.0251, 3.1))]
    batched = hubert_tok.encode(waves, sampling_rate=SR, merge=False)
    for wave, seq in zip(waves, batched, strict=True):
        alone = hubert_tok.encode(wave, sampling_rate=SR, merge=False)
        assert seq.units == alone.units and len(seq.units) == frames(wave.size)


def test_layer_is_counted_like_fairseq_output_layer():
    """layer=L gives hidden_states[L] of the full encoder (fairseq's 1-based output_layer), truncated weights."""
    torch.manual_seed(0)
    full = HubertModel(tiny_hubert_config(layers=3)).eval()
    tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(encoder_config=full.config, layer=2, num_units=8)).eval()
    missing, unexpected = tok.encoder.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith("encoder.layers.2.") for k in unexpected)
    assert tok.encoder.config.num_hidden_layers == 2 and full.config.num_hidden_layers == 3
    wave = torch.from_numpy(voice(1.0))[None]
    with torch.no_grad():
        expected = full(wave, output_hidden_states=True).hidden_states[2]
        features, counts = tok.compute_features(wave, torch.tensor([wave.shape[1]]))
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_every_input_kind_gives_the_same_units(mfcc_tok, tmp_path):
    mono = voice(1.5, seed=3)
    reference = mfcc_tok.encode(mono, sampling_rate=SR).units
    stereo_path = tmp_path / "stereo.wav"
    soundfile.write(stereo_path, np.stack([mono, mono], axis=1), SR, subtype="FLOAT")
    tensor = torch.from_numpy(np.stack([mono, mono]))
    inputs = [
        str(stereo_path),
        stereo_path,
        tensor,
        {"array": mono, "sampling_rate": SR},
        {"bytes": stereo_path.read_bytes(), "path": None},
    ]
    results = mfcc_tok.encode(inputs, sampling_rate=SR)
    assert [r.units for r in results] == [reference] * len(inputs)


def test_datasets_audio_values_and_resampling(mfcc_tok, tmp_path):
    from datasets import Audio, Dataset

    wave = voice(2.0, seed=1)
    path = tmp_path / "a.wav"
    soundfile.write(path, wave, SR, subtype="PCM_16")
    ds = Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio())
    from_dataset = mfcc_tok.encode(ds[0]["audio"])
    assert from_dataset.units == mfcc_tok.encode(str(path)).units
    wave_8k = voice(2.0, seed=1, rate=8000)
    seq = mfcc_tok.encode(wave_8k, sampling_rate=8000)
    assert seq.num_frames == frames(2 * SR)


def test_wav_sample_formats_load(mfcc_tok, tmp_path):
    wave = voice(1.0, seed=2)
    results = []
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "FLOAT"):
        path = tmp_path / f"{subtype}.wav"
        rate = 22050 if subtype == "PCM_U8" else SR  # 8-bit at another rate: resampled on load
        soundfile.write(path, voice(1.0, seed=2, rate=rate) if rate != SR else wave, rate, subtype=subtype)
        results.append(mfcc_tok.encode(path))
    assert all(r.num_frames == frames(SR) for r in results)
    assert results[1].frame_units() == results[3].frame_units()  # 16-bit vs float: same units on this signal


def test_long_audio_is_chunked_like_the_original():
    config = SpeechUnitTokenizerConfig(
        feature_type="encoder", encoder_config=tiny_hubert_config(), layer=2, num_units=20, max_chunk_samples=16000
    )
    tok = SpeechUnitTokenizer(config).eval()
    wave = voice(3.5)
    whole = tok.encode(wave, sampling_rate=SR, merge=False).units
    pieces = [wave[i : i + 16000] for i in range(0, wave.size, 16000)]
    by_chunk = [u for piece in pieces for u in tok.encode(piece, sampling_rate=SR, merge=False).units]
    assert whole == by_chunk and len(whole) == 3 * frames(16000) + frames(8000)


def test_unit_strings_match_the_prompt_format():
    units = [12, 7, 401]
    text = SpeechUnitTokenizer.to_unit_string(units)
    assert text == "<sosp><12><7><401><eosp>" == units_to_string(units)
    assert SpeechUnitTokenizer.to_unit_string(UnitSequence(units, [2, 1, 3])) == text
    assert SpeechUnitTokenizer.from_unit_string("answer: <sosp> <12> <7><401> <eosp> done") == units
    with pytest.raises(ValueError, match="No <sosp>"):
        SpeechUnitTokenizer.from_unit_string("no units here")


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(0, np.float32), SR, "empty"),
        (np.zeros(300, np.float32), SR, "too short"),
        (np.array([0.1, np.nan] * 400, np.float32), SR, "NaN"),
        (np.array([0.1, np.inf] * 400, np.float32), SR, "NaN or infinite"),
        (np.zeros(800, np.float32), 1000, "Unsupported sampling rate"),
        (np.zeros(800, np.float32), 16000.5, "Unsupported sampling rate"),
        (np.zeros(800, np.float32), None, "needs its rate"),
        (np.zeros((2, 2, 800), np.float32), SR, "1-D or"),
        (object(), SR, "Unsupported audio input"),
    ],
)
def test_bad_input_is_named(mfcc_tok, audio, rate, message):
    with pytest.raises(AudioInputError, match=message):
        mfcc_tok.encode(audio, sampling_rate=rate)


def test_bad_files_are_named(mfcc_tok, tmp_path):
    text_file = tmp_path / "notes.wav"
    text_file.write_text("this is not audio")
    corrupt = tmp_path / "corrupt.wav"
    soundfile.write(corrupt, voice(1.0), SR)
    corrupt.write_bytes(corrupt.read_bytes()[:30])
    for path in (text_file, corrupt):
        with pytest.raises(AudioInputError, match="corrupt or not an audio file"):
            mfcc_tok.encode(path)
    with pytest.raises(AudioInputError, match="not found"):
        mfcc_tok.encode(tmp_path / "missing.wav")
    with pytest.raises(AudioInputError, match="Item 1: The audio is empty"):
        mfcc_tok.encode([voice(1.0), np.zeros(0, np.float32)], sampling_rate=SR)


def test_silence_is_encoded_like_any_audio(mfcc_tok, hubert_tok):
    """Documented choice: digital silence is valid audio and yields (silence) units, never an error."""
    silence = np.zeros(SR, np.float32)
    for tok in (mfcc_tok, hubert_tok):
        seq = tok.encode(silence, sampling_rate=SR)
        assert seq.num_frames == frames(SR) and len(set(seq.units)) == 1


def test_reduced_precision_features_stay_close_and_separated_units_agree(hubert_tok):
    """bf16 autocast moves each feature by a rounding error whose size depends on the CPU (native bf16 units round
    differently from emulated ones), so units are compared only where that cannot matter. The codebook is a spread
    of the fp32 features themselves (farthest-point picks): each picked frame sits on its own centroid, at least the
    codebook's smallest spacing from any other, so bf16 keeps its unit whenever its feature error is under half that
    spacing, which the test checks holds with room to spare instead of assuming it."""
    waves = [voice(1.0, seed=i) for i in range(3)]
    fp32 = torch.cat(hubert_tok.frame_units(waves, return_features=True))
    bf16 = torch.cat(hubert_tok.frame_units(waves, return_features=True, precision="bfloat16"))
    assert bf16.shape == fp32.shape and bf16.dtype == torch.float32
    error = (bf16 - fp32).norm(dim=-1)
    # bf16 keeps 8 significant bits (relative rounding 2^-9 per value): through two layers a frame typically moves
    # by about 1% of its norm (measured 1.1% with native bf16 and 1.2% emulated); a CPU sets only the worst frames
    assert (error / fp32.norm(dim=-1)).median() < 0.05

    picked = [0]
    for _ in range(hubert_tok.config.num_units - 1):
        picked.append(int(torch.cdist(fp32, fp32[picked]).min(-1).values.argmax()))
    codebook = fp32[picked]
    spacing = torch.pdist(codebook).min()
    assert error[picked].max() < spacing / 4, "the bound below would not hold: the picked frames are too close"
    saved = hubert_tok.centroids.detach().clone()
    try:
        with torch.no_grad():
            hubert_tok.centroids.copy_(codebook)
        units32 = torch.cat([torch.tensor(s.units) for s in hubert_tok.encode(waves, sampling_rate=SR, merge=False)])
        units16 = hubert_tok.encode(waves, sampling_rate=SR, merge=False, precision="bfloat16")
        units16 = torch.cat([torch.tensor(s.units) for s in units16])
    finally:
        with torch.no_grad():
            hubert_tok.centroids.copy_(saved)
    assert units32[picked].tolist() == list(range(len(picked)))
    assert torch.equal(units16[picked], units32[picked])


def test_fit_recovers_separated_clusters_and_is_seeded():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 4, generator=generator) * 10
    points = centres.repeat_interleave(200, 0) + 0.1 * torch.randn(1200, 4, generator=generator)
    first = fit_kmeans(points, 6, batch_size=256, max_iter=30, seed=1, progress=False)
    again = fit_kmeans(points, 6, batch_size=256, max_iter=30, seed=1, progress=False)
    assert torch.equal(first.centroids, again.centroids)
    matched = torch.cdist(centres, first.centroids).min(-1).values
    assert matched.max() < 0.1 and first.inertia_per_frame < 0.1
    with pytest.raises(ValueError, match="at least as many"):
        fit_kmeans(points[:3], 6, progress=False)


def test_fit_codebook_on_audio_lowers_inertia(mfcc_tok):
    tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=8))
    audio = [{"array": voice(1.0, seed=i), "sampling_rate": SR} for i in range(4)] + [
        {"array": np.zeros(0), "sampling_rate": SR}
    ]
    features = torch.cat(tok.frame_units([tok.load_audio(a) for a in audio[:4]], return_features=True))
    before = torch.cdist(features, tok.centroids).min(-1).values.pow(2).mean().item()
    result = tok.fit(audio, max_iter=20, batch_size=128, progress=False)
    assert result.inertia_per_frame < before / 4
    assert torch.equal(tok.centroids, result.centroids)
    assert len(set(tok.encode(audio[0]).units)) > 2


class RecordingSampler(ReservoirSampler):
    """The fit's frame sample, checked after every chunk: it never holds more than its capacity. It also notes
    how many utterances the stream had yielded at each chunk and keeps the chunks, to trace sampled rows."""

    instances: list["RecordingSampler"] = []
    yielded = 0

    def __init__(self, capacity: int, seed: int = 0) -> None:
        super().__init__(capacity, seed)
        self.chunks: list[torch.Tensor] = []
        self.yielded_at_chunk: list[int] = []
        RecordingSampler.instances.append(self)

    def add(self, rows: torch.Tensor) -> None:
        super().add(rows)
        assert self.sample().shape[0] == min(self.seen, self.capacity) <= self.capacity
        self.chunks.append(rows.clone())
        self.yielded_at_chunk.append(RecordingSampler.yielded)


def short_utterances(count: int):
    """A generator of `count` 0.3 s utterances (14 frames each), counting what it has yielded."""
    for index in range(count):
        RecordingSampler.yielded += 1
        yield {"array": voice(0.3, seed=index), "sampling_rate": SR}


def test_fit_streams_a_generator_through_a_bounded_uniform_sample(monkeypatch):
    monkeypatch.setattr(modeling_unit_tokenizer, "ReservoirSampler", RecordingSampler)
    monkeypatch.setattr(RecordingSampler, "instances", [])
    monkeypatch.setattr(RecordingSampler, "yielded", 0)
    tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=4))
    result = tok.fit(short_utterances(60), max_frames=40, max_batch_samples=10_000, progress=False)
    (sampler,) = RecordingSampler.instances
    assert len(sampler.chunks) == 60 and sampler.seen == result.frames_seen == 60 * frames(4800)
    assert sampler.sample().shape == (40, 39) and result.num_frames == 40  # what k-means ran on
    # Read as a stream: features of utterance i are sampled before utterance i + 3 is even read.
    assert max(y - i for i, y in enumerate(sampler.yielded_at_chunk, start=1)) <= 2
    # Uniform over the whole stream: the sample has frames of the first and of the last utterances.
    rows = torch.cat(sampler.chunks)
    source = torch.cat([torch.full((len(c),), i) for i, c in enumerate(sampler.chunks)])
    sampled_from = source[torch.cdist(sampler.sample(), rows).argmin(-1)]
    assert sampled_from.min() < 15 and sampled_from.max() >= 45


def test_fit_is_reproducible_with_a_seed():
    def fitted(seed: int):
        tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=4))
        return tok.fit(short_utterances(30), max_frames=50, seed=seed, progress=False)

    first, again, other = fitted(7), fitted(7), fitted(8)
    assert torch.equal(first.centroids, again.centroids) and first.inertia_history == again.inertia_history
    assert not torch.equal(first.centroids, other.centroids)
    pairs = zip(first.inertia_history, first.inertia_history[1:], strict=False)
    assert all(later <= earlier * (1 + 1e-6) for earlier, later in pairs)  # Lloyd passes never raise it


def test_readme_fit_units_command(tmp_path, monkeypatch, capsys):
    """`speechgpt-hf fit-units audio/ --output-dir my-units --num-units 500`, as the README shows it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audio").mkdir()
    for index in range(3):
        soundfile.write(tmp_path / "audio" / f"{index}.wav", voice(4.0, seed=index), SR)
    cli_main(["fit-units", "audio/", "--output-dir", "my-units", "--num-units", "500"])
    out = capsys.readouterr().out
    assert "pass 1: inertia" in out and "pass 2: inertia" in out
    assert "Fitted 500 units: inertia" in out and f"over a sample of {3 * frames(4 * SR)} of" in out
    tok = SpeechUnitTokenizer.from_pretrained(tmp_path / "my-units")
    assert tok.config.num_units == 500 and len(set(tok.encode(voice(1.0, seed=9), sampling_rate=SR).units)) > 5


def test_save_load_and_auto_classes(hubert_tok, tmp_path, local_hub):
    hubert_tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "speechgpt_unit_tokenizer"
    assert config["auto_map"]["AutoModel"] == "modeling_unit_tokenizer.SpeechUnitTokenizer"
    wave = voice(1.2)
    expected = hubert_tok.encode(wave, sampling_rate=SR)
    repo = local_hub(tmp_path, "speechgpt-hf-tests/tiny-unit-tokenizer")
    for loader in (SpeechUnitTokenizer, AutoModel, AutoProcessor):
        for source in (str(tmp_path), repo):
            loaded = loader.from_pretrained(source)
            assert isinstance(loaded, SpeechUnitTokenizer)
            assert loaded.encode(wave, sampling_rate=SR) == expected
    assert AutoConfig.from_pretrained(repo).layer == 2


def test_weight_free_mfcc_tokenizer_saves_and_loads(mfcc_tok, tmp_path):
    mfcc_tok.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.feature_type == "mfcc" and loaded.encoder is None
    assert torch.equal(loaded.centroids, mfcc_tok.centroids) and not loaded.centroids.requires_grad
    wave = voice(1.0, seed=5)
    assert loaded.encode(wave, sampling_rate=SR) == mfcc_tok.encode(wave, sampling_rate=SR)


def test_trust_remote_code_without_the_plugin(hubert_tok, tmp_path):
    hubert_tok.save_pretrained(tmp_path)
    wave = voice(1.0)
    np.save(tmp_path / "wave.npy", wave)
    expected = hubert_tok.encode(wave, sampling_rate=SR).units
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        from transformers import AutoModel
        tok = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert "speechgpt_hf" not in sys.modules, "the plugin must not be needed"
        print(type(tok).__name__, tok.encode(np.load({str(tmp_path / "wave.npy")!r}), sampling_rate=16000).units)
        """
    )
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name, units = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert name == "SpeechUnitTokenizer" and eval(units) == expected


def test_from_encoder_wraps_a_saved_speech_encoder(tmp_path):
    torch.manual_seed(1)
    full = HubertModel(tiny_hubert_config(layers=3)).eval()
    full.save_pretrained(tmp_path)
    tok = SpeechUnitTokenizer.from_encoder(str(tmp_path), layer=2, num_units=5)
    wave = torch.from_numpy(voice(0.6))[None]
    with torch.no_grad():
        expected = full(wave, output_hidden_states=True).hidden_states[2]
        features, _ = tok.compute_features(wave, torch.tensor([wave.shape[1]]))
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
