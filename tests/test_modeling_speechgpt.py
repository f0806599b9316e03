"""SpeechGPTForCausalLM on top of different causal LMs: expansion, generation, training features, saving."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from speechgpt_hf import SpeechGPTForCausalLM, add_speech_units
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

ARCHITECTURES = [("llama", {}), ("qwen2", {"tie_word_embeddings": True})]


@pytest.mark.parametrize("model_type,overrides", ARCHITECTURES)
def test_expansion_keeps_text_behaviour_and_records_the_layout(model_type, overrides):
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm(model_type, vocab_size=len(tokenizer), **overrides).eval()
    text_ids = tokenizer("The quick brown fox", return_tensors="pt")["input_ids"]
    before = base(text_ids).logits.detach().clone()
    old_rows = base.get_input_embeddings().weight.detach().clone()

    model, tokenizer = add_speech_units(copy.deepcopy(base), tokenizer, num_units=40)
    config = model.config
    assert config.model_type == "speechgpt" and config.text_config.model_type == model_type
    assert config.num_units == 40 and config.unit_token_offset == 300
    assert tokenizer.convert_tokens_to_ids("<39>") == 339
    assert config.special_token_ids == {
        "sosp": 340,
        "eosp": 341,
        "human": 342,
        "speechgpt": 343,
        "eoh": 344,
        "eos": 345,
        "eoa": 346,
    }
    assert config.vocab_size == len(tokenizer) == 347
    # Old rows untouched, old-vocabulary logits unchanged.
    embeddings = model.get_input_embeddings().weight
    torch.testing.assert_close(embeddings[:300], old_rows)
    torch.testing.assert_close(model(text_ids).logits[..., :300], before)
    # New unit rows start near the mean embedding, distinct from one another; markers at their seed words' mean.
    mean, spread = old_rows.mean(0), old_rows.std(0).norm()
    unit_rows = embeddings[300:340]
    assert (unit_rows - mean).norm(dim=1).max() < 0.5 * spread
    assert torch.cdist(unit_rows, unit_rows).add(torch.eye(40) * 1e3).min() > 0
    seeds = tokenizer("Human", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(embeddings[342], old_rows[seeds].mean(0))
    assert 346 in model.generation_config.eos_token_id


def _spread(rows: torch.Tensor) -> float:
    return float((rows - rows.mean(0)).norm(dim=1).mean())


def test_unit_row_spread_sets_how_distinct_the_units_start():
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm(vocab_size=len(tokenizer))
    text_spread = _spread(base.get_input_embeddings().weight.detach())
    for share in (0.1, 1.0):
        model, _ = add_speech_units(copy.deepcopy(base), copy.deepcopy(tokenizer), num_units=40, unit_row_spread=share)
        units = model.get_input_embeddings().weight.detach()[300:340]
        # The units lie about `share` of the text rows' spread apart: 1.0 makes them as distinct as text tokens.
        assert 0.7 * share < _spread(units) / text_spread < 1.3 * share
    with pytest.raises(ValueError, match="unit_row_spread must be 0 or more"):
        add_speech_units(copy.deepcopy(base), copy.deepcopy(tokenizer), num_units=4, unit_row_spread=-1)


def test_expanding_twice_is_refused():
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=10)
    with pytest.raises(ValueError, match="SpeechGPT already"):
        add_speech_units(model, tokenizer)
    with pytest.raises(ValueError, match="expanded already"):
        add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=10)


@pytest.mark.parametrize("model_type,overrides", ARCHITECTURES)
def test_generate_with_cache_matches_step_by_step_greedy_decoding(tiny_speechgpt, model_type, overrides):
    model, processor = tiny_speechgpt(model_type, **overrides)
    inputs = processor(processor.build_prompt("Say <sosp><1><2><3><eosp>"), return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    ids = inputs["input_ids"]
    for _ in range(8):
        next_id = model(ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    assert torch.equal(generated, ids)


def test_sdpa_and_eager_attention_agree(tiny_speechgpt, tmp_path):
    model, processor = tiny_speechgpt()
    model.save_pretrained(tmp_path)
    ids = processor(processor.build_prompt("hello <sosp><4><5><eosp>"), return_tensors="pt")
    sdpa = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa")
    eager = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager")
    assert sdpa.language_model.config._attn_implementation == "sdpa"
    assert eager.language_model.config._attn_implementation == "eager"
    torch.testing.assert_close(sdpa(**ids).logits, eager(**ids).logits, atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_speechgpt):
    model, processor = tiny_speechgpt()
    model.train()
    batch = processor(processor.build_prompt("Read <sosp><7><8><9><eosp>"), return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()

    def gradients():
        model.zero_grad()
        model(**batch).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = gradients()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    assert model.language_model.model.gradient_checkpointing  # reaches the wrapped LM's decoder
    checkpointed = gradients()
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)


def test_peft_lora_by_module_name_trains_and_merges(tiny_speechgpt, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, processor = tiny_speechgpt()
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    trainable = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert sum("q_proj" in n for n in trainable) == sum("v_proj" in n for n in trainable) == 4  # A and B, 2 layers
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            p.data.normal_()
    batch = processor("Tell me <sosp><3><4><eosp>", return_tensors="pt")
    adapted = lora(**batch).logits.detach()
    lora.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    merged = lora.merge_and_unload()
    assert isinstance(merged, SpeechGPTForCausalLM)
    torch.testing.assert_close(merged(**batch).logits, adapted, atol=1e-5, rtol=1e-4)


def test_save_load_safetensors_dtype_and_device_map(tiny_speechgpt, tmp_path):
    model, processor = tiny_speechgpt("qwen2", tie_word_embeddings=True)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    batch = processor("hello <sosp><1><eosp>", return_tensors="pt")
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)
    inner = loaded.language_model
    assert inner.lm_head.weight.data_ptr() == inner.model.embed_tokens.weight.data_ptr()
    half = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="cpu")
    assert half.dtype == torch.bfloat16 and half.device.type == "cpu"
    torch.testing.assert_close(half(**batch).logits.float(), model(**batch).logits, atol=0.1, rtol=0.1)


def test_resizing_the_wrapper_keeps_config_and_weights_in_step(tiny_speechgpt):
    model, processor = tiny_speechgpt()
    model.resize_token_embeddings(400)
    assert model.config.vocab_size == model.config.text_config.vocab_size == 400
    assert model.get_output_embeddings().weight.shape[0] == 400
    model.config.vocab_size = 401
    assert model.config.text_config.vocab_size == 401


def test_batched_generation_equals_one_prompt_at_a_time(tiny_speechgpt):
    model, processor = tiny_speechgpt()
    prompts = [processor.build_prompt("hi"), processor.build_prompt("Transcribe <sosp><1><2><3><4><5><6><eosp> now")]
    batch = processor(prompts, return_tensors="pt")
    assert batch["attention_mask"][0, 0] == 0  # left padding
    together = model.generate(**batch, max_new_tokens=6, min_new_tokens=6, do_sample=False)[
        :, batch["input_ids"].shape[1] :
    ]
    for row, prompt in zip(together, prompts, strict=True):
        alone = processor(prompt, return_tensors="pt")
        single = model.generate(**alone, max_new_tokens=6, min_new_tokens=6, do_sample=False)[
            0, alone["input_ids"].shape[1] :
        ]
        assert torch.equal(row, single)
