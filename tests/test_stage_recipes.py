"""The stage recipes hold how each stage trains: LoRA, the unit rows, and which rows are rehearsed."""

import pytest
from trl import TrlParser

from speechgpt_hf.stages import CHAIN_OF_MODALITY, CROSS_MODAL, MODALITY_ADAPTATION, RECIPES
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig
from speechgpt_hf.training.stage_recipes import (
    PRETRAINED_LORA,
    RECIPES_DIR,
    load_recipe,
    recipe_name,
    replay_fraction_of,
    stage_method,
)


def _parse(name: str) -> SpeechGPTTrainingConfig:
    path = RECIPES_DIR / f"{name}.yaml"
    return TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(["--config", str(path), "--use_cpu", "true"])[0]


def test_stage3_rehearses_three_cross_modal_rows_for_each_of_its_own():
    config = _parse(RECIPES[CHAIN_OF_MODALITY])
    assert (config.replay_config, config.replay_fraction) == (CROSS_MODAL, 3.0)
    assert config.use_lora and not config.train_unit_embeddings  # the release's LoRA on q/v, unit rows frozen


def test_the_pretrained_lora_recipes_train_the_unit_rows_apart_and_stage2_rehearses():
    stage1, stage2 = (_parse(f"{PRETRAINED_LORA}/{RECIPES[s]}") for s in (MODALITY_ADAPTATION, CROSS_MODAL))
    assert (stage1.stage, stage2.stage) == (MODALITY_ADAPTATION, CROSS_MODAL)
    assert stage1.unit_row_spread == 1.0 and _parse(RECIPES[MODALITY_ADAPTATION]).unit_row_spread == 0.1
    for config in (stage1, stage2):
        assert config.use_lora and config.train_unit_embeddings and config.unit_embedding_learning_rate == 1e-2
        assert config.lora_r == 16 and len(config.lora_target_modules) == 7  # every linear layer of a Llama block
    assert (stage2.replay_config, stage2.replay_fraction) == (CHAIN_OF_MODALITY, 0.4)
    assert _parse(RECIPES[CROSS_MODAL]).replay_config is None  # full fine-tuning of stage 2 rehearses nothing


def test_a_variant_without_a_stage_file_falls_back_to_the_stage_recipe():
    assert recipe_name(CROSS_MODAL, PRETRAINED_LORA) == f"{PRETRAINED_LORA}/{RECIPES[CROSS_MODAL]}"
    assert recipe_name(CHAIN_OF_MODALITY, PRETRAINED_LORA) == RECIPES[CHAIN_OF_MODALITY]
    assert recipe_name(CROSS_MODAL) == RECIPES[CROSS_MODAL]


def test_stage_method_keeps_how_a_stage_trains_and_drops_its_sizes():
    method = stage_method(f"{PRETRAINED_LORA}/{RECIPES[CROSS_MODAL]}")
    assert method["replay_config"] == CHAIN_OF_MODALITY and method["train_unit_embeddings"] is True
    assert not {"learning_rate", "max_length", "per_device_train_batch_size", "output_dir"} & set(method)
    assert replay_fraction_of(RECIPES[CROSS_MODAL]) == 0.0 and replay_fraction_of(RECIPES[CHAIN_OF_MODALITY]) == 3.0


def test_a_loaded_recipe_is_a_copy_and_an_unknown_one_is_named():
    load_recipe(RECIPES[CHAIN_OF_MODALITY])["lora_target_modules"].append("k_proj")
    assert load_recipe(RECIPES[CHAIN_OF_MODALITY])["lora_target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(FileNotFoundError, match="known: .*pretrained_lora/stage1_modality_adaptation"):
        load_recipe("stage4_nothing")
