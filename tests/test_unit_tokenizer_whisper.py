"""SpeechUnitTokenizer on a Whisper encoder: log-mel front end, utterance-length and 30-s windows, frame rule,
truncation, save/load, fit."""

import json
import re

import numpy as np
import pytest
import soundfile
import torch
from safetensors import safe_open
from transformers import AutoModel, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from speechgpt_hf import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.models.unit_tokenizer import AudioInputError
from speechgpt_hf.models.unit_tokenizer.features import whisper_log_mel
from speechgpt_hf_cli import main as cli_main

SR = 16000
WINDOW = 30 * SR


def tiny_whisper_config() -> WhisperConfig:
    return WhisperConfig(
        d_model=16,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )


def speech_like(num_samples: int, seed: int = 0) -> np.ndarray:
    """Three drifting partials under a 5 Hz loudness wobble, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    partials = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 3000, size=3))
    wobble = 0.6 + 0.4 * np.cos(2 * np.pi * 5 * t)
    return (0.1 * partials * wobble + 0.005 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.fixture(scope="module")
def whisper() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval()


@pytest.fixture(scope="module")
def whisper_folder(whisper, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper-tiny-random")
    whisper.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tok(whisper) -> SpeechUnitTokenizer:
    return SpeechUnitTokenizer.from_encoder(whisper, layer=1, num_units=12)


@pytest.fixture(scope="module")
def tok30(whisper) -> SpeechUnitTokenizer:
    return SpeechUnitTokenizer.from_encoder(whisper, layer=1, num_units=12, whisper_window="30s")


def test_log_mel_matches_whisper_feature_extractor():
    waves = [speech_like(n, seed) for seed, n in enumerate((SR, 7777, WINDOW))]
    expected = WhisperFeatureExtractor(feature_size=80)(waves, sampling_rate=SR, return_tensors="np").input_features
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], batch_first=True)
    padded[1, 7777:] = 1.0  # whatever lies past an item's length is not audio
    mel = whisper_log_mel(padded, torch.tensor([len(w) for w in waves]), 80, WINDOW)
    assert mel.shape == expected.shape == (3, 80, 3000) and mel.dtype == torch.float32
    np.testing.assert_allclose(mel.numpy(), expected, atol=1e-5)


def test_bfloat16_autocast_keeps_the_log_mel_in_float32(tok):
    wave = torch.from_numpy(speech_like(SR, seed=7))[None]
    exact = whisper_log_mel(wave, torch.tensor([SR]), 80, WINDOW)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel = whisper_log_mel(wave, torch.tensor([SR]), 80, WINDOW)
    assert mel.dtype == torch.float32 and torch.equal(mel, exact)
    sequence = tok.encode(wave[0].numpy(), sampling_rate=SR, merge=False, precision="bfloat16")
    assert sequence.num_frames == SR // 320


def test_config_defaults_and_frame_rule(tok):
    config = tok.config
    assert config.is_whisper and config.feature_type == "encoder"
    assert (config.max_chunk_samples, config.frame_length, config.frame_rate) == (WINDOW, 320, 50)
    assert [config.num_frames(n) for n in (319, 320, 16639, WINDOW)] == [0, 1, 51, 1500]
    lengths = (320, 16639, 100_003, WINDOW, WINDOW + 5000, 2 * WINDOW + 319)
    sequences = tok.encode([speech_like(n, i) for i, n in enumerate(lengths)], sampling_rate=SR, merge=False)
    assert [seq.num_frames for seq in sequences] == [n // 320 for n in lengths]
    with pytest.raises(AudioInputError, match="too short"):
        tok.encode(np.zeros(319, np.float32), sampling_rate=SR)


def test_long_audio_is_independent_30s_chunks(tok):
    wave = speech_like(WINDOW + 9000, seed=3)
    whole = tok.encode(wave, sampling_rate=SR, merge=False).units
    parts = tok.encode([wave[:WINDOW], wave[WINDOW:]], sampling_rate=SR, merge=False)
    assert whole == parts[0].units + parts[1].units


def test_batched_equals_one_at_a_time_in_one_encoder_call(tok30):
    waves = [speech_like(n, seed) for seed, n in enumerate((2 * SR, 4321, 3 * SR + 17, 640))]
    calls = []
    hook = tok30.encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    try:
        batched = tok30.frame_units(waves, max_batch_samples=len(waves) * WINDOW, return_features=True)
    finally:
        hook.remove()
    assert calls == [(4, 80, 3000)]
    for wave, features in zip(waves, batched, strict=True):
        alone = tok30.frame_units([wave], return_features=True)[0]
        assert features.shape == alone.shape == (len(wave) // 320, 16)
        torch.testing.assert_close(features, alone, atol=1e-5, rtol=1e-5)
    units = tok30.encode(waves, sampling_rate=SR, merge=False)
    assert [seq.units for seq in units] == [tok30.encode(w, sampling_rate=SR, merge=False).units for w in waves]


def test_utterance_window_batched_equals_one_at_a_time(tok):
    assert tok.config.whisper_window == "utterance"
    waves = [speech_like(n, seed) for seed, n in enumerate((2 * SR, 4321, 3 * SR + 17, 640, 655))]
    batched = tok.frame_units(waves, max_batch_samples=10 * WINDOW, return_features=True)
    for wave, features in zip(waves, batched, strict=True):
        alone = tok.frame_units([wave], return_features=True)[0]
        assert features.shape == alone.shape == (len(wave) // 320, 16)
        torch.testing.assert_close(features, alone, atol=1e-5, rtol=1e-5)
    units = tok.encode(waves, sampling_rate=SR, merge=False)
    assert [seq.units for seq in units] == [tok.encode(w, sampling_rate=SR, merge=False).units for w in waves]


def test_utterance_window_is_the_encoder_on_the_utterances_own_mel(whisper, tok):
    """The encoder's own modules on the item's ⌊N/160⌋ mel frames alone (no padding, no mask) give the features."""
    wave = speech_like(2 * SR + 333, seed=9)
    length = torch.tensor([len(wave)])
    mel = whisper_log_mel(torch.from_numpy(wave)[None], length, 80, None)
    assert mel.shape == (1, 80, len(wave) // 160)
    encoder = whisper.get_encoder()
    with torch.no_grad():
        hidden = torch.nn.functional.gelu(encoder.conv2(torch.nn.functional.gelu(encoder.conv1(mel)))).transpose(1, 2)
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        hidden = encoder.layers[0](hidden, None)
    features = tok.frame_units([wave], return_features=True)[0]
    torch.testing.assert_close(features, hidden[0, : len(wave) // 320], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="whisper_window must be one of"):
        SpeechUnitTokenizerConfig(encoder_config=tiny_whisper_config(), layer=1, whisper_window="10s")


@pytest.mark.parametrize("layer", [1, 2])
def test_truncated_encoder_equals_hidden_state_of_full_encoder(whisper, layer):
    tok = SpeechUnitTokenizer.from_encoder(whisper, layer=layer, num_units=4, whisper_window="30s")
    assert len(tok.encoder.layers) == layer and tok.config.final_layer_norm == (layer == 2)
    wave = speech_like(5 * SR + 100, seed=5)
    mel = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=SR, return_tensors="pt").input_features
    with torch.no_grad():
        hidden = whisper.get_encoder()(mel, output_hidden_states=True).hidden_states[layer]
    features = tok.frame_units([wave], return_features=True)[0]
    torch.testing.assert_close(features, hidden[0, : len(wave) // 320], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("source", ["folder", "WhisperForConditionalGeneration", "WhisperModel", "WhisperEncoder"])
def test_every_kind_of_whisper_source_gives_the_same_encoder(source, whisper, whisper_folder, tok):
    encoder = {
        "folder": str(whisper_folder),
        "WhisperForConditionalGeneration": whisper,
        "WhisperModel": whisper.model,
        "WhisperEncoder": whisper.get_encoder(),
    }[source]
    built = SpeechUnitTokenizer.from_encoder(encoder, layer=1, num_units=12)
    assert type(built.encoder).__name__ == "WhisperEncoder"
    expected = tok.state_dict()
    assert built.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[key]) for key, value in built.state_dict().items())


def test_save_load_through_auto_model_keeps_only_the_truncated_encoder(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as checkpoint:
        names = list(checkpoint.keys())
    assert names and all(name == "centroids" or name.startswith("encoder.") for name in names)
    assert not [name for name in names if "decoder" in name or "layers.1." in name or "encoder.layer_norm" in name]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["encoder_config"]["model_type"] == "whisper" and saved["encoder_config"]["encoder_layers"] == 1
    assert (saved["max_chunk_samples"], saved["frame_length"], saved["final_layer_norm"]) == (WINDOW, 320, False)
    assert saved["whisper_window"] == "utterance"
    mfcc = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=3))
    mfcc.save_pretrained(tmp_path / "mfcc")  # a config without a Whisper window reloads too
    assert AutoModel.from_pretrained(tmp_path / "mfcc").config.whisper_window is None
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, SpeechUnitTokenizer) and loaded.config.is_whisper
    waves = [speech_like(n, seed) for seed, n in enumerate((SR, 2 * SR + 99))]
    assert loaded.encode(waves, sampling_rate=SR) == tok.encode(waves, sampling_rate=SR)


def test_bad_layer_and_chunking_are_refused(whisper):
    with pytest.raises(ValueError, match="whisper encoder has only 2 layers: choose a layer from 1 to 2"):
        SpeechUnitTokenizer.from_encoder(whisper, layer=11)
    with pytest.raises(ValueError, match="no larger than its 480000-sample window"):
        SpeechUnitTokenizerConfig(encoder_config=tiny_whisper_config(), layer=1, max_chunk_samples=1_600_000)
    with pytest.raises(ValueError, match="one frame per 320 samples"):
        SpeechUnitTokenizerConfig(encoder_config=tiny_whisper_config(), layer=1, frame_hop=160)


def test_forward_refuses_more_than_one_window(tok, tok30):
    for tokenizer in (tok, tok30):
        with pytest.raises(ValueError, match="at most 480000 samples at once"):
            tokenizer(torch.zeros(1, WINDOW + 1))


def test_fit_units_cli_on_whisper_then_encode(whisper_folder, tmp_path, capsys):
    paths = []
    for seed, seconds in enumerate((1.0, 2.5, 0.7)):
        paths.append(str(tmp_path / f"utt{seed}.wav"))
        soundfile.write(paths[-1], speech_like(int(seconds * SR), seed), SR)
    common = ["fit-units", *paths, "--encoder", str(whisper_folder), "--output-dir", str(tmp_path / "units")]
    assert cli_main(common) == 2
    assert re.search("--layer 11: .* has 2 encoder layers; pass --layer 1 to 2", capsys.readouterr().err)
    cli_main([*common, "--layer", "2", "--num-units", "5", "--max-iter", "5"])
    assert "Fitted 5 units" in capsys.readouterr().out
    fitted = AutoModel.from_pretrained(tmp_path / "units")
    assert fitted.config.is_whisper and fitted.config.layer == 2 and fitted.config.final_layer_norm
    sequence = fitted.encode(paths[1], merge=False)
    assert sequence.num_frames == int(2.5 * SR) // 320 and len(set(sequence.units)) > 1
    assert all(0 <= unit < 5 for unit in sequence.units)
