"""FSDP2 on two CPU processes (gloo): stage 2 trains from the shipped fsdp2.yaml, checkpoints sharded, resumes from
a sharded checkpoint to the weights of an uninterrupted run, and ends with one loadable safetensors model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training_stages import NUM_UNITS, base_model_folder, speechinstruct_folder  # noqa: F401  (fixtures)
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechgpt_hf import SpeechGPTProcessor, add_speech_units
from speechgpt_hf.training.sft import ACCELERATE_CONFIGS_DIR

ENTRY = Path(__file__).with_name("fsdp_cpu_entry.py")


@pytest.fixture(scope="module")
def speechgpt_folder(tmp_path_factory, base_model_folder):  # noqa: F811
    folder = tmp_path_factory.mktemp("speechgpt")
    base = AutoModelForCausalLM.from_pretrained(base_model_folder)
    model, tokenizer = add_speech_units(base, AutoTokenizer.from_pretrained(base_model_folder), num_units=NUM_UNITS)
    model.save_pretrained(folder)
    SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS).save_pretrained(folder)
    return folder


def _train_under_fsdp(output_dir: Path, model: Path, data: Path, *extra: str) -> None:
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_CONFIGS_DIR / "fsdp2.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        str(ENTRY),
        "train",
        "--recipe",
        "stage2_cross_modal",
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(output_dir),
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "128",
        "--learning_rate",
        "5e-3",
        "--logging_steps",
        "1",
        "--use_cpu",
        "true",
        *extra,
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]


def test_fsdp_trains_resumes_exactly_and_saves_one_model(tmp_path, speechgpt_folder, speechinstruct_folder):  # noqa: F811
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _train_under_fsdp(whole, speechgpt_folder, speechinstruct_folder)
    checkpoint = whole / "checkpoint-2"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # sharded: each process wrote its own part
    assert not list(checkpoint.glob("*.safetensors"))
    _train_under_fsdp(resumed, speechgpt_folder, speechinstruct_folder, "--resume_from_checkpoint", str(checkpoint))

    assert [p.name for p in whole.glob("*.safetensors")] == ["model.safetensors"]  # one model, gathered
    final, again = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    start = AutoModelForCausalLM.from_pretrained(speechgpt_folder).state_dict()
    assert final.keys() == again.keys()
    assert all(torch.equal(final[key], again[key]) for key in final)  # resumed to the very same weights
    assert any(not torch.equal(final[key], start[key]) for key in final)  # and it did train
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    model = AutoModelForCausalLM.from_pretrained(whole)
    assert model.config.model_type == "speechgpt" and model.config.num_units == NUM_UNITS
