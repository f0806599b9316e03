"""The shipped distributed setups: accelerate configs for DDP, FSDP2 and DeepSpeed ZeRO-3 (with CPU offload) load
with accelerate's own reader and say what docs/training.md promises; the QLoRA recipe parses into the config."""

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from trl import TrlParser

from speechgpt_hf.training.sft import ACCELERATE_CONFIGS_DIR, RECIPES_DIR, SpeechGPTTrainingConfig


def _load(name: str):
    return load_config_from_file(str(ACCELERATE_CONFIGS_DIR / name))


def test_fsdp2_shards_fully_wraps_layers_and_checkpoints_sharded():
    config = _load("fsdp2.yaml")
    assert (config.distributed_type, config.mixed_precision) == ("FSDP", "bf16")
    fsdp = config.fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT" and fsdp["fsdp_cpu_ram_efficient_loading"] is True


@pytest.mark.parametrize(
    ("name", "offload"), [("deepspeed_zero3.yaml", "none"), ("deepspeed_zero3_offload.yaml", "cpu")]
)
def test_deepspeed_zero3_with_and_without_cpu_offload(name, offload):
    config = _load(name)
    deepspeed = config.deepspeed_config
    assert config.distributed_type == "DEEPSPEED" and deepspeed["zero_stage"] == 3
    assert deepspeed["zero3_save_16bit_model"] is True
    assert deepspeed["offload_optimizer_device"] == deepspeed["offload_param_device"] == offload


def test_ddp_is_plain_data_parallelism_in_bf16():
    config = _load("ddp.yaml")
    assert (config.distributed_type, config.mixed_precision, config.use_cpu) == ("MULTI_GPU", "bf16", False)


def test_the_qlora_recipe_loads_a_4bit_base_and_keeps_the_adapter():
    path = RECIPES_DIR / "qlora" / "stage3_chain_of_modality_qlora.yaml"
    (config,) = TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(
        ["--config", str(path), "--bf16", "false", "--use_cpu", "true"]
    )
    quantization = config.model_init_kwargs["quantization_config"]
    assert quantization["load_in_4bit"] is True and quantization["bnb_4bit_quant_type"] == "nf4"
    assert config.stage == "chain_of_modality" and config.use_lora and not config.merge_lora
