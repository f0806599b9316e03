"""`unit_embedding_learning_rate`: with LoRA, the unit and marker rows train in optimizer groups of their own rate,
everything else at `learning_rate`, one schedule scaling both; full fine-tuning refuses it."""

import pytest
import torch
from test_training_stages import NUM_UNITS, _common, bf16_checkpoints, speechinstruct_folder  # noqa: F401  (fixtures)
from trl import TrlParser

from speechgpt_hf.training.sft import RECIPES_DIR, SpeechGPTTrainingConfig, build_trainer, stage_summary
from speechgpt_hf.training.unit_row_optimizer import UNIT_ROW_PARAMETERS

RATE = 1e-1


def _stage3(tmp_path, checkpoints, data, model_type: str = "llama", **fields) -> SpeechGPTTrainingConfig:
    settings = dict(
        model_name_or_path=str(checkpoints / model_type),
        dataset_name=str(data),
        use_lora=True,
        train_unit_embeddings=True,
        learning_rate=1e-3,
        weight_decay=0.1,
        max_length=128,
        max_steps=3,
    )
    return _common(tmp_path, "chain_of_modality", **{**settings, **fields})


def _unit_rows(model) -> list[torch.Tensor]:
    return [p for name, p in model.named_parameters() if UNIT_ROW_PARAMETERS in name and p.requires_grad]


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])  # untied and tied embeddings: two row tensors, or one
def test_the_unit_rows_get_groups_of_their_own_rate(tmp_path, model_type, bf16_checkpoints, speechinstruct_folder):  # noqa: F811
    config = _stage3(tmp_path, bf16_checkpoints, speechinstruct_folder, model_type, unit_embedding_learning_rate=RATE)
    trainer, _ = build_trainer(config)
    optimizer = trainer.create_optimizer()
    rows = {id(p) for p in _unit_rows(trainer.model)}
    assert len(rows) == (2 if model_type == "llama" else 1)
    groups = [group for group in optimizer.param_groups if group["params"]]  # the Trainer's no-decay one is empty
    for group in groups:
        units = {id(p) in rows for p in group["params"]}
        assert len(units) == 1, "a group mixes unit rows and other weights"
        assert group["lr"] == (RATE if units == {True} else 1e-3)
    decay = [(group["lr"], group["weight_decay"]) for group in groups]
    assert decay == [(1e-3, 0.1), (RATE, 0.1)]  # the rows keep the weight decay of the group they came from
    assert sum(len(group["params"]) for group in optimizer.param_groups) == sum(
        p.requires_grad for p in trainer.model.parameters()
    )
    trainer.train()
    assert sorted(trainer.lr_scheduler.base_lrs) == [1e-3, 1e-3, RATE]  # one schedule, from each group's own rate


def test_the_unit_rows_move_further_at_their_own_rate(tmp_path, bf16_checkpoints, speechinstruct_folder):  # noqa: F811
    moved = []
    for rate in (None, RATE):
        trainer, _ = build_trainer(
            _stage3(tmp_path / str(rate), bf16_checkpoints, speechinstruct_folder, unit_embedding_learning_rate=rate)
        )
        trainer.train()
        moved.append(sum(p.detach().norm() for p in _unit_rows(trainer.model)))  # the deltas start at 0
    assert moved[1] > 10 * moved[0], moved


def test_full_fine_tuning_refuses_a_unit_row_learning_rate(tmp_path):
    with pytest.raises(ValueError, match="full fine-tuning.*one embedding matrix.*train with LoRA"):
        _common(tmp_path, "cross_modal", model_name_or_path="x", unit_embedding_learning_rate=RATE)
    with pytest.raises(ValueError, match="set train_unit_embeddings: true"):
        _common(tmp_path, "cross_modal", model_name_or_path="x", use_lora=True, unit_embedding_learning_rate=RATE)


def test_a_recipe_takes_the_rate_and_the_card_records_it(tmp_path):
    recipe = (RECIPES_DIR / "pretrained_lora" / "stage2_cross_modal.yaml").read_text()
    (tmp_path / "recipe.yaml").write_text(
        recipe.replace("unit_embedding_learning_rate: 1.0e-2", "unit_embedding_learning_rate: 2.0e-2")
    )
    config = TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(["--config", str(tmp_path / "recipe.yaml")])[0]
    assert config.unit_embedding_learning_rate == 2e-2
    assert "with the unit embedding rows at learning rate 0.02;" in stage_summary(config, 16, 2)


def test_a_deepspeed_config_that_builds_its_own_optimizer_or_peak_rate_is_refused():
    from speechgpt_hf.training.unit_row_optimizer import check_deepspeed_keeps_the_rate

    zero3 = {"zero_optimization": {"stage": 3}, "gradient_clipping": 1.0}  # what accelerate builds from the yaml
    check_deepspeed_keeps_the_rate(zero3, RATE)
    check_deepspeed_keeps_the_rate({**zero3, "scheduler": {"type": "WarmupCosineLR"}}, RATE)
    check_deepspeed_keeps_the_rate({**zero3, "optimizer": {"type": "AdamW"}}, None)  # no rate of its own: no matter
    with pytest.raises(ValueError, match="'optimizer' section.*remove that section"):
        check_deepspeed_keeps_the_rate({**zero3, "optimizer": {"type": "AdamW"}}, RATE)
    with pytest.raises(ValueError, match="scheduler 'WarmupLR' sets one peak rate for every group"):
        check_deepspeed_keeps_the_rate({**zero3, "scheduler": {"type": "WarmupLR"}}, RATE)
