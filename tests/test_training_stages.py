"""The three SpeechGPT stages on TRL: expand a base LM, then stage 1 -> 2 -> 3 (LoRA), each loss going down."""

import dataclasses
import json

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

import speechgpt_hf_cli
from speechgpt_hf import (
    Modality,
    SpeechGPTProcessor,
    add_speech_units,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    units_to_string,
)
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.sft import (
    SpeechGPTTrainingConfig,
    build_trainer,
    load_model_and_processor,
    speech_token_ids,
    train_stage,
)

NUM_UNITS = 20


def _rows(stage: str, n: int = 16) -> list[dict]:
    rng = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        units = torch.randint(0, NUM_UNITS, (12,), generator=rng).tolist()
        if stage == "modality_adaptation":
            rows.append({"text": units_to_string(units)})
            continue
        if stage == "cross_modal":
            prompt = format_turn(format_cross_modal_instruction("Transcribe this.", units_to_string(units)))
            completion = f"number {i % 4}<eoa>"
        else:
            prompt = format_turn(units_to_string(units))
            completion = (
                format_chain_of_modality_response(Modality.SPEECH, f"yes {i % 3}", units[:4], "a question") + "<eoa>"
            )
        rows.append({"prompt": prompt, "completion": completion})
    return rows


@pytest.fixture(scope="module")
def speechinstruct_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speechinstruct")
    configs = []
    for stage in ("modality_adaptation", "cross_modal", "chain_of_modality"):
        (root / stage).mkdir()
        Dataset.from_list(_rows(stage)).to_parquet(root / stage / "train-00000-of-00001.parquet")
        configs.append(f"- config_name: {stage}\n  data_files:\n  - split: train\n    path: {stage}/train-*.parquet")
    (root / "README.md").write_text("---\nconfigs:\n" + "\n".join(configs) + "\n---\n")
    return root


@pytest.fixture(scope="module")
def base_model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    tokenizer = build_tiny_tokenizer()
    build_tiny_causal_lm("qwen2", vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _losses(folder) -> list[float]:
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def _common(tmp_path, stage: str, **fields) -> SpeechGPTTrainingConfig:
    settings = dict(
        stage=stage,
        output_dir=str(tmp_path / stage),
        max_steps=8,
        logging_steps=1,
        learning_rate=5e-3,
        per_device_train_batch_size=4,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    return SpeechGPTTrainingConfig(**{**settings, **fields})


def test_three_stages_chain_and_learn(tmp_path, speechinstruct_folder, base_model_folder):
    data = dict(dataset_name=str(speechinstruct_folder))
    stage1 = train_stage(
        _common(
            tmp_path,
            "modality_adaptation",
            base_model_name_or_path=str(base_model_folder),
            num_units=NUM_UNITS,
            packing=True,
            max_length=64,
            **data,
        )
    )
    stage2 = train_stage(_common(tmp_path, "cross_modal", model_name_or_path=str(stage1), max_length=128, **data))
    stage3 = train_stage(
        _common(
            tmp_path,
            "chain_of_modality",
            model_name_or_path=str(stage2),
            use_lora=True,
            train_unit_embeddings=True,
            learning_rate=2e-2,
            max_length=128,
            **data,
        )
    )
    for folder in (stage1, stage2, stage3):
        losses = _losses(folder)
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, (folder.name, losses)
    model = AutoModelForCausalLM.from_pretrained(stage3)
    assert model.config.model_type == "speechgpt" and model.config.num_units == NUM_UNITS
    assert (stage3 / "adapter" / "adapter_model.safetensors").exists()
    before = AutoModelForCausalLM.from_pretrained(stage2).state_dict()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("q_proj" in k for k in changed) and any("v_proj" in k for k in changed)
    assert not any("k_proj" in k or "mlp" in k for k in changed)  # LoRA touched only q and v (+ unit rows)


def test_config_rejects_a_missing_or_double_model(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        _common(tmp_path, "cross_modal")
    with pytest.raises(ValueError, match="Unknown stage"):
        _common(tmp_path, "stage4", model_name_or_path="x")


def test_cli_trains_from_a_recipe_with_overrides(tmp_path, speechinstruct_folder, base_model_folder):
    out = tmp_path / "cli"
    speechgpt_hf_cli.main(
        [
            "train",
            "--recipe",
            "stage1_modality_adaptation",
            "--base_model_name_or_path",
            str(base_model_folder),
            "--num_units",
            str(NUM_UNITS),
            "--dataset_name",
            str(speechinstruct_folder),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "2",
            "--max_length",
            "64",
            "--use_cpu",
            "true",
            "--save_strategy",
            "no",
        ]
    )
    assert AutoModelForCausalLM.from_pretrained(out).config.num_units == NUM_UNITS


def test_the_papers_recipes_parse_into_the_config():
    from trl import TrlParser

    from speechgpt_hf.training.sft import RECIPES_DIR

    parsed = {
        path.stem: TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(["--config", str(path)])[0]
        for path in sorted(RECIPES_DIR.glob("stage*.yaml"))
    }
    assert [c.stage for c in parsed.values()] == ["modality_adaptation", "cross_modal", "chain_of_modality"]
    lora = parsed["stage3_chain_of_modality"]
    assert (lora.use_lora, lora.lora_r, lora.lora_alpha, lora.lora_dropout) == (True, 8, 16, 0.05)
    assert lora.lora_target_modules == ["q_proj", "v_proj"]
    assert [c.max_length for c in parsed.values()] == [1024, 512, 1024]
    assert all(c.model_init_kwargs == {"dtype": "float32"} for c in parsed.values())  # fp32 master weights


def test_rows_longer_than_max_length_are_reported(tmp_path, speechinstruct_folder, base_model_folder, caplog):
    config = _common(
        tmp_path,
        "cross_modal",
        base_model_name_or_path=str(base_model_folder),
        num_units=NUM_UNITS,
        dataset_name=str(speechinstruct_folder),
        max_length=8,
        max_steps=1,
    )
    with pytest.raises(ValueError, match="16 of 16 rows have prompts longer than max_length=8"):
        train_stage(config)


def test_two_processes_under_accelerate_train_and_save_once(tmp_path, speechinstruct_folder, base_model_folder):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "-m",
        "speechgpt_hf_cli",
        "train",
        "--recipe",
        "stage1_modality_adaptation",
        "--base_model_name_or_path",
        str(base_model_folder),
        "--num_units",
        str(NUM_UNITS),
        "--dataset_name",
        str(speechinstruct_folder),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "64",
        "--use_cpu",
        "true",
        "--save_strategy",
        "no",
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Saved the modality_adaptation model") == 1  # printed by rank 0 only
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert AutoModelForCausalLM.from_pretrained(out).config.num_units == NUM_UNITS


# Loading as the user asks: fp32 master weights unless another dtype is asked for; model_init_kwargs honoured.


@pytest.fixture(scope="module")
def bf16_checkpoints(tmp_path_factory):
    """A bf16 text LM and bf16 SpeechGPTs with untied (llama) and tied (qwen2) embeddings, saved to folders."""
    root = tmp_path_factory.mktemp("bf16")
    tokenizer = build_tiny_tokenizer()
    build_tiny_causal_lm("llama", vocab_size=len(tokenizer)).to(torch.bfloat16).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    for model_type, tied in (("llama", False), ("qwen2", True)):
        tokenizer = build_tiny_tokenizer()
        base = build_tiny_causal_lm(model_type, vocab_size=len(tokenizer), tie_word_embeddings=tied)
        model, tokenizer = add_speech_units(base, tokenizer, num_units=NUM_UNITS)
        model.to(torch.bfloat16).save_pretrained(root / model_type)
        SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS).save_pretrained(root / model_type)
    return root


def _stage_config(tmp_path, stage: str, checkpoints, data, **fields) -> SpeechGPTTrainingConfig:
    source = (
        dict(base_model_name_or_path=str(checkpoints / "base"), num_units=NUM_UNITS, packing=True, max_length=64)
        if stage == "modality_adaptation"
        else dict(model_name_or_path=str(checkpoints / "llama"), max_length=128)
    )
    lora = dict(use_lora=True, train_unit_embeddings=True) if stage == "chain_of_modality" else {}
    return _common(tmp_path, stage, dataset_name=str(data), max_steps=1, **{**source, **lora, **fields})


def _dtypes(model, trainable: bool) -> set:
    return {p.dtype for p in model.parameters() if p.requires_grad == trainable}


@pytest.mark.parametrize("stage", ["modality_adaptation", "cross_modal", "chain_of_modality"])
def test_a_bf16_checkpoint_trains_fp32_master_weights_by_default(
    tmp_path, stage, bf16_checkpoints, speechinstruct_folder
):
    trainer, _ = build_trainer(_stage_config(tmp_path, stage, bf16_checkpoints, speechinstruct_folder))
    trainer.train()
    assert _dtypes(trainer.model, trainable=True) == {torch.float32}
    assert _dtypes(trainer.model, trainable=False) <= {torch.float32}  # the frozen base of the LoRA stage too


@pytest.mark.parametrize("stage", ["modality_adaptation", "cross_modal", "chain_of_modality"])
@pytest.mark.parametrize("dtype", ["bfloat16", "auto"])
def test_model_init_kwargs_dtype_is_honoured(tmp_path, stage, dtype, bf16_checkpoints, speechinstruct_folder):
    config = _stage_config(tmp_path, stage, bf16_checkpoints, speechinstruct_folder, model_init_kwargs={"dtype": dtype})
    trainer, _ = build_trainer(config)
    trainer.train()
    lora = stage == "chain_of_modality"  # PEFT keeps the adapter itself in fp32; the base weights are the model's
    assert _dtypes(trainer.model, trainable=not lora) == {torch.bfloat16}  # "auto" is the checkpoint's: bf16


@pytest.mark.parametrize("source", ["base", "llama"])
def test_model_init_kwargs_reach_from_pretrained(
    monkeypatch, tmp_path, source, bf16_checkpoints, speechinstruct_folder
):
    stage = "modality_adaptation" if source == "base" else "cross_modal"
    quantization = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    config = _stage_config(
        tmp_path,
        stage,
        bf16_checkpoints,
        speechinstruct_folder,
        model_init_kwargs={"attn_implementation": "eager", "quantization_config": quantization},
    )
    seen = {}
    load = AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        kwargs.pop("quantization_config")  # recorded; loading it would need bitsandbytes and a GPU
        return load(path, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    model, _ = load_model_and_processor(config)
    assert seen["quantization_config"] is quantization and seen["dtype"] == torch.float32
    assert model.config._attn_implementation == "eager"
    assert model.language_model.config._attn_implementation == "eager"


def test_an_unknown_dtype_is_refused_with_the_choices(tmp_path, bf16_checkpoints, speechinstruct_folder):
    fp8 = {"dtype": "fp8"}
    config = _stage_config(tmp_path, "cross_modal", bf16_checkpoints, speechinstruct_folder, model_init_kwargs=fp8)
    with pytest.raises(ValueError, match="dtype='fp8'.*'auto'.*bfloat16, float16, float32"):
        load_model_and_processor(config)


def test_a_base_model_on_an_accelerator_expands_where_it_lies():
    """On a GPU the base LM loads with a device map; its new rows are drawn on its device (meta stands in here)."""
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm("llama", vocab_size=len(tokenizer)).to("meta")
    model, tokenizer = add_speech_units(base, tokenizer, num_units=NUM_UNITS)
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        assert layer.weight.device.type == "meta" and layer.weight.shape[0] == len(tokenizer)


# "Train the unit embeddings" with LoRA: only the unit and marker rows of the embeddings (and an untied head) train.


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])  # untied and tied embeddings
def test_lora_trains_only_the_unit_and_marker_rows(tmp_path, model_type, bf16_checkpoints, speechinstruct_folder):
    from peft import PeftModel
    from safetensors import safe_open

    source = bf16_checkpoints / model_type
    output = train_stage(
        _common(
            tmp_path,
            "chain_of_modality",
            model_name_or_path=str(source),
            dataset_name=str(speechinstruct_folder),
            use_lora=True,
            train_unit_embeddings=True,
            learning_rate=2e-2,
            max_steps=2,
            max_length=128,
        )
    )
    before = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(output)
    rows = speech_token_ids(before)
    others = sorted(set(range(before.config.vocab_size)) - set(rows))
    assert len(rows) == NUM_UNITS + 7
    for layer in ("get_input_embeddings", "get_output_embeddings"):
        old, new = getattr(before, layer)().weight, getattr(merged, layer)().weight
        assert torch.equal(old[others], new[others]), layer
        assert not torch.equal(old[rows], new[rows]), layer
    tied = model_type == "qwen2"
    assert merged.config.tie_word_embeddings is tied
    assert torch.equal(merged.get_input_embeddings().weight, merged.get_output_embeddings().weight) is tied

    adapter = output / "adapter" / "adapter_model.safetensors"
    with safe_open(adapter, "pt") as saved:
        shapes = {key: saved.get_slice(key).get_shape() for key in saved.keys()}
    token_rows = [shape for key, shape in shapes.items() if "trainable_tokens_delta" in key]
    assert token_rows == [[len(rows), before.config.text_config.hidden_size]] * (1 if tied else 2), shapes
    assert not any(shape[0] == before.config.vocab_size for shape in shapes.values())  # no whole matrix
    assert adapter.stat().st_size < before.get_output_embeddings().weight.numel() * 4

    reloaded = PeftModel.from_pretrained(before, output / "adapter").merge_and_unload().state_dict()
    assert all(torch.equal(reloaded[key], value) for key, value in merged.state_dict().items())


def test_an_expanded_model_keeps_the_system_prompt_of_its_data(tmp_path, speechinstruct_folder, base_model_folder):
    from speechgpt_hf.models.speechgpt.prompt_format import DEFAULT_SYSTEM_PROMPT
    from speechgpt_hf.training.sft import load_model_and_processor

    settings = dict(
        base_model_name_or_path=str(base_model_folder), num_units=NUM_UNITS, dataset_name=str(speechinstruct_folder)
    )
    _, processor = load_model_and_processor(
        _common(tmp_path, "modality_adaptation", system_prompt="Be brief.\n", **settings)
    )
    assert processor.system_prompt == "Be brief.\n"
    assert processor.build_prompt("hi").startswith("Be brief.\n[Human]: hi")
    _, default = load_model_and_processor(_common(tmp_path, "modality_adaptation", **settings))
    assert default.system_prompt == DEFAULT_SYSTEM_PROMPT


def test_stage3_replays_cross_modal_rows(tmp_path, speechinstruct_folder):
    from speechgpt_hf.training.sft import load_stage_dataset

    config = _common(
        tmp_path,
        "chain_of_modality",
        model_name_or_path="unused",
        dataset_name=str(speechinstruct_folder),
        replay_config="cross_modal",
        replay_fraction=1.5,
    )
    rows = load_stage_dataset(config)
    completions = rows["completion"]
    replayed = [c for c in completions if c.startswith("number ")]
    # 1.5 x 16 rows asked of a set of 16: each drawn once, none repeated (a small set repeated is memorised)
    assert len(rows) == 16 + 16 and len(replayed) == 16
    assert {c for c in replayed} == {f"number {i}<eoa>" for i in range(4)}
    assert completions[:16] != [r["completion"] for r in _rows("chain_of_modality")]  # shuffled together
    half = load_stage_dataset(dataclasses.replace(config, replay_fraction=0.5))
    assert len(half) == 16 + 8


def test_replay_needs_a_prompt_completion_stage_and_a_positive_fraction(tmp_path):
    with pytest.raises(ValueError, match="replay_config"):
        _common(tmp_path, "modality_adaptation", model_name_or_path="unused", replay_config="cross_modal")
    with pytest.raises(ValueError, match="replay_fraction=0"):
        _common(
            tmp_path, "chain_of_modality", model_name_or_path="unused", replay_config="cross_modal", replay_fraction=0
        )


def test_each_stage_saves_a_processor_naming_the_components_without_loading_them(
    tmp_path, speechinstruct_folder, base_model_folder, load_spy
):
    from transformers import AutoProcessor

    from speechgpt_hf.models.unit_hifigan import UnitHiFiGANVocoder
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
    from speechgpt_hf.testing_utils import build_tiny_vocoder

    SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).save_pretrained(
        tmp_path / "units"
    )
    build_tiny_vocoder(NUM_UNITS).save_pretrained(tmp_path / "vocoder")
    unit_loads, vocoder_loads = load_spy(SpeechUnitTokenizer), load_spy(UnitHiFiGANVocoder)
    data = dict(dataset_name=str(speechinstruct_folder), max_steps=1, max_length=128)
    stage1 = train_stage(
        _common(
            tmp_path,
            "modality_adaptation",
            base_model_name_or_path=str(base_model_folder),
            num_units=NUM_UNITS,
            unit_tokenizer_repo=str(tmp_path / "units"),
            vocoder_repo=str(tmp_path / "vocoder"),
            **data,
        )
    )
    stage2 = train_stage(_common(tmp_path, "cross_modal", model_name_or_path=str(stage1), **data))
    for folder in (stage1, stage2):
        stored = json.loads((folder / "processor_config.json").read_text())
        assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "../vocoder")
    assert unit_loads == [] and vocoder_loads == []  # the stages use the processor for its text tokenizer only
    processor = AutoProcessor.from_pretrained(stage2)
    assert processor.vocoder_repo == str((tmp_path / "vocoder").resolve())
    assert processor.vocoder.config.num_units == NUM_UNITS and vocoder_loads == [processor.vocoder_repo]
