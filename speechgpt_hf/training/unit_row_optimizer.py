"""The optimizer that trains the unit and marker rows at a learning rate of their own (`unit_embedding_learning_rate`).

With LoRA and `train_unit_embeddings`, PEFT makes those rows parameters of their own; `SpeechGPTSFTTrainer` moves them
into optimizer groups at that rate, and `check_unit_embedding_learning_rate` refuses a rate no group could carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trl import SFTTrainer

if TYPE_CHECKING:
    from .sft import SpeechGPTTrainingConfig

UNIT_ROW_PARAMETERS = "token_adapter"  # in the names of PEFT's trainable-token parameters: the unit and marker rows


def check_unit_embedding_learning_rate(config: SpeechGPTTrainingConfig) -> None:
    """Refuses a unit-row learning rate no optimizer group could carry: the rows must be parameters of their own."""
    rate = config.unit_embedding_learning_rate
    if rate is None:
        return
    if rate <= 0:
        raise ValueError(f"unit_embedding_learning_rate must be positive; got {rate}.")
    if not config.use_lora:
        raise ValueError(
            "unit_embedding_learning_rate needs use_lora: true with train_unit_embeddings: true, which train the unit "
            "rows as parameters of their own. In full fine-tuning they are rows of the one embedding matrix, a single "
            "parameter, which an optimizer moves at a single learning rate: train with LoRA, or leave "
            "unit_embedding_learning_rate unset (every weight then trains at learning_rate)."
        )
    if not config.train_unit_embeddings:
        raise ValueError(
            "unit_embedding_learning_rate is the learning rate of the unit rows that train_unit_embeddings trains with "
            "the LoRA: set train_unit_embeddings: true, or leave unit_embedding_learning_rate unset."
        )


def check_deepspeed_keeps_the_rate(deepspeed_config: dict[str, Any], rate: float | None) -> None:
    """Refuses a DeepSpeed config that would build its own optimizer or a scheduler with one peak rate for every
    group: either trains the unit rows at the base rate in silence (the Trainer's optimizer groups never reach it)."""
    if rate is None:
        return
    if "optimizer" in deepspeed_config:
        raise ValueError(
            "unit_embedding_learning_rate needs the Trainer's optimizer, but the DeepSpeed config has an 'optimizer' "
            "section, from which DeepSpeed builds one optimizer group at one rate: remove that section (the Trainer "
            "then builds AdamW with the unit rows' group and DeepSpeed takes it), or leave the rate unset."
        )
    scheduler = deepspeed_config.get("scheduler")
    if scheduler is not None and scheduler.get("type") != "WarmupCosineLR":
        raise ValueError(
            f"unit_embedding_learning_rate needs a schedule that scales each group's own rate, but the DeepSpeed "
            f"config's scheduler {scheduler.get('type')!r} sets one peak rate for every group: remove the 'scheduler' "
            "section (the Trainer's lr_scheduler_type then applies), use WarmupCosineLR, or leave the rate unset."
        )


class SpeechGPTSFTTrainer(SFTTrainer):
    """TRL's `SFTTrainer` whose optimizer trains the unit rows at `unit_embedding_learning_rate` when it is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None:  # the config DeepSpeed reads: from accelerate's yaml or from TrainingArguments.deepspeed
            hf_config = getattr(plugin, "hf_ds_config", None)
            config = hf_config.config if hf_config is not None else plugin.deepspeed_config
            check_deepspeed_keeps_the_rate(config, self.args.unit_embedding_learning_rate)

    def create_optimizer(self, model: Any = None) -> Any:
        """The Trainer's optimizer (class, settings and weight decay groups), the unit rows then given their rate."""
        new = self.optimizer is None
        optimizer = super().create_optimizer(model)
        rate = self.args.unit_embedding_learning_rate
        if new and rate is not None:
            _give_unit_rows_their_rate(optimizer, self.model if model is None else model, rate)
        return optimizer


def _give_unit_rows_their_rate(optimizer: Any, model: Any, rate: float) -> None:
    """Moves the unit rows' parameters out of each optimizer group into a copy of it at `rate`, before any step, so
    that they keep the group's weight decay and settings and the scheduler scales `rate` as it scales the rest."""
    rows = {id(p) for name, p in model.named_parameters() if UNIT_ROW_PARAMETERS in name and p.requires_grad}
    moved = 0
    for group in list(optimizer.param_groups):
        own = [p for p in group["params"] if id(p) in rows]
        if not own:
            continue
        moved += len(own)
        if len(own) == len(group["params"]):
            group["lr"] = rate
        else:
            group["params"] = [p for p in group["params"] if id(p) not in rows]
            optimizer.add_param_group({**group, "params": own, "lr": rate})
    if not rows or moved != len(rows):
        raise ValueError(
            f"unit_embedding_learning_rate: {moved} of the {len(rows)} trainable unit-row parameters (PEFT's "
            f"{UNIT_ROW_PARAMETERS}) are in the parameter groups of the optimizer {type(optimizer).__name__}; it "
            "needs an optimizer built from the Trainer's groups, such as optim: adamw_torch (the default)."
        )


__all__ = [
    "UNIT_ROW_PARAMETERS",
    "SpeechGPTSFTTrainer",
    "check_deepspeed_keeps_the_rate",
    "check_unit_embedding_learning_rate",
]
