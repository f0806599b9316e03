"""The three SpeechGPT stages on TRL: expand a base LM, then stage 1 -> 2 -> 3 (LoRA), each loss going down."""

import json

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

import speechgpt_hf_cli
from speechgpt_hf import (
    Modality,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    units_to_string,
)
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.stages import SpeechGPTTrainingConfig, train_stage

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
            completion = format_chain_of_modality_response(Modality.SPEECH, f"yes {i % 3}", units[:4], "a question") + "<eoa>"
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
        stage=stage, output_dir=str(tmp_path / stage), max_steps=8, logging_steps=1, learning_rate=5e-3,
        per_device_train_batch_size=4, report_to="none", save_strategy="no", use_cpu=True, seed=0,
    )
    return SpeechGPTTrainingConfig(**{**settings, **fields})


def test_three_stages_chain_and_learn(tmp_path, speechinstruct_folder, base_model_folder):
    data = dict(dataset_name=str(speechinstruct_folder))
    stage1 = train_stage(_common(
        tmp_path, "modality_adaptation", base_model_name_or_path=str(base_model_folder), num_units=NUM_UNITS,
        packing=True, max_length=64, **data,
    ))
    stage2 = train_stage(_common(tmp_path, "cross_modal", model_name_or_path=str(stage1), max_length=128, **data))
    stage3 = train_stage(_common(
        tmp_path, "chain_of_modality", model_name_or_path=str(stage2), use_lora=True, train_unit_embeddings=True,
        learning_rate=2e-2, max_length=128, **data,
    ))
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
    speechgpt_hf_cli.main([
        "train", "--recipe", "stage1_modality_adaptation",
        "--base_model_name_or_path", str(base_model_folder), "--num_units", str(NUM_UNITS),
        "--dataset_name", str(speechinstruct_folder), "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "2", "--max_length", "64", "--use_cpu", "true", "--save_strategy", "no",
    ])
    assert AutoModelForCausalLM.from_pretrained(out).config.num_units == NUM_UNITS


def test_the_papers_recipes_parse_into_the_config():
    from trl import TrlParser

    from speechgpt_hf.training.stages import RECIPES_DIR

    parsed = {
        path.stem: TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(["--config", str(path)])[0]
        for path in sorted(RECIPES_DIR.glob("*.yaml"))
    }
    assert [c.stage for c in parsed.values()] == ["modality_adaptation", "cross_modal", "chain_of_modality"]
    lora = parsed["stage3_chain_of_modality"]
    assert (lora.use_lora, lora.lora_r, lora.lora_alpha, lora.lora_dropout) == (True, 8, 16, 0.05)
    assert lora.lora_target_modules == ["q_proj", "v_proj"]
    assert [c.max_length for c in parsed.values()] == [1024, 512, 1024]


def test_rows_longer_than_max_length_are_reported(tmp_path, speechinstruct_folder, base_model_folder, caplog):
    config = _common(
        tmp_path, "cross_modal", base_model_name_or_path=str(base_model_folder), num_units=NUM_UNITS,
        dataset_name=str(speechinstruct_folder), max_length=8, max_steps=1,
    )
    with pytest.raises(ValueError, match="16 of 16 rows have prompts longer than max_length=8"):
        train_stage(config)


def test_two_processes_under_accelerate_train_and_save_once(tmp_path, speechinstruct_folder, base_model_folder):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "-m", "speechgpt_hf_cli", "train", "--recipe", "stage1_modality_adaptation",
        "--base_model_name_or_path", str(base_model_folder), "--num_units", str(NUM_UNITS),
        "--dataset_name", str(speechinstruct_folder), "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "2", "--max_length", "64", "--use_cpu", "true", "--save_strategy", "no",
    ]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Saved the modality_adaptation model") == 1  # printed by rank 0 only
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert AutoModelForCausalLM.from_pretrained(out).config.num_units == NUM_UNITS
