"""The three SpeechGPT training stages on TRL's SFTTrainer.

1. modality_adaptation: language modelling on `<sosp>…<eosp>` unit sequences (the `text` column), packed.
2. cross_modal: ASR/TTS instructions as prompt/completion pairs, loss on the completion.
3. chain_of_modality: the four chain-of-modality formats, LoRA on attention (q_proj, v_proj by default).

A stage is one `SpeechGPTTrainingConfig` (an `SFTConfig` with model, data and LoRA fields) and one call to
`train_stage`; the recipes of the paper are YAML files in `speechgpt_hf/training/recipes/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import SFTConfig

logger = logging.getLogger(__name__)

STAGES = ("modality_adaptation", "cross_modal", "chain_of_modality")
RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass
class SpeechGPTTrainingConfig(SFTConfig):
    """Everything one SpeechGPT stage needs: TRL's `SFTConfig` plus the model, the data and LoRA.

    Model: start from a SpeechGPT repo (`model_name_or_path`) or expand a text LLM (`base_model_name_or_path`,
    with `num_units`). Data: a SpeechInstruct folder or Hub repo and its config (the stage's by default).
    LoRA: `use_lora` with rank, alpha, dropout and target modules (the release's r=8, alpha=16, q/v), and
    optionally the unit rows of the embeddings trained alongside (`train_unit_embeddings`).
    """

    stage: str = field(default="cross_modal", metadata={"help": f"Which stage to run: one of {', '.join(STAGES)}."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "A SpeechGPT repo id or folder to train."})
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "A text causal LM to expand into a SpeechGPT first (instead of model_name_or_path)."}
    )
    num_units: int = field(default=1000, metadata={"help": "Unit vocabulary size K when expanding a base model."})
    unit_tokenizer_repo: str | None = field(default=None, metadata={"help": "Unit tokenizer repo to record when expanding."})
    vocoder_repo: str | None = field(default=None, metadata={"help": "Vocoder repo to record when expanding."})
    dataset_name: str | None = field(default=None, metadata={"help": "SpeechInstruct folder or Hub repo id."})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config; defaults to the stage's name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many rows (quick runs)."})
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of every weight."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"], metadata={"help": "Module names LoRA adapts."}
    )
    train_unit_embeddings: bool = field(
        default=False, metadata={"help": "With LoRA, also train the embedding rows of the unit and marker tokens."}
    )
    merge_lora: bool = field(default=True, metadata={"help": "Save the LoRA merged into the weights at the end."})

    def __post_init__(self) -> None:
        import torch

        if self.stage not in STAGES:
            raise ValueError(f"Unknown stage {self.stage!r}: choose one of {', '.join(STAGES)}.")
        if (self.model_name_or_path is None) == (self.base_model_name_or_path is None):
            raise ValueError("Give exactly one of model_name_or_path (a SpeechGPT) or base_model_name_or_path (a text LM).")
        if self.bf16 is None and not torch.cuda.is_available():
            self.bf16 = False  # TRL's bf16 default needs a GPU; on a CPU train in fp32
        self.dataset_config = self.dataset_config or self.stage
        super().__post_init__()


def load_model_and_processor(config: SpeechGPTTrainingConfig) -> tuple[Any, Any]:
    """The SpeechGPT to train and its processor: loaded, or made by expanding a base LM."""
    from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    from ..models.speechgpt import SpeechGPTProcessor, add_speech_units

    if config.model_name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(config.model_name_or_path)
        return model, AutoProcessor.from_pretrained(config.model_name_or_path)
    base = AutoModelForCausalLM.from_pretrained(config.base_model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model_name_or_path)
    model, tokenizer = add_speech_units(
        base,
        tokenizer,
        num_units=config.num_units,
        unit_tokenizer_repo=config.unit_tokenizer_repo,
        vocoder_repo=config.vocoder_repo,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, SpeechGPTProcessor(tokenizer, num_units=config.num_units)


def load_stage_dataset(config: SpeechGPTTrainingConfig) -> Any:
    """The stage's rows in the form TRL expects: `text` for stage 1, `prompt`/`completion` otherwise."""
    from ..data.loading import load_speechinstruct

    dataset = load_speechinstruct(config.dataset_name, config.dataset_config, split=config.dataset_split)
    columns = ["text"] if config.stage == "modality_adaptation" else ["prompt", "completion"]
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{config.dataset_name} ({config.dataset_config}) lacks the column(s) {missing} that stage "
            f"{config.stage} trains on; build it with `speechgpt-hf build-speechinstruct`."
        )
    if config.max_train_samples is not None:
        dataset = dataset.select(range(min(config.max_train_samples, len(dataset))))
    return dataset.select_columns(columns)


def lora_config(config: SpeechGPTTrainingConfig, model: Any) -> Any:
    """The PEFT LoRA of the stage; the unit and marker rows join it when `train_unit_embeddings` is set."""
    from peft import LoraConfig

    extra: dict[str, Any] = {}
    if config.train_unit_embeddings:
        first = model.config.unit_token_offset
        extra = dict(
            trainable_token_indices={"embed_tokens": list(range(first, model.config.vocab_size))},
            modules_to_save=["lm_head"],
        )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
        **extra,
    )


def _check_rows_kept(config: SpeechGPTTrainingConfig, rows: int, prepared: Any) -> None:
    """TRL silently drops rows whose prompt alone fills `max_length`; say so, and stop if none are left."""
    if config.packing or not hasattr(prepared, "__len__") or len(prepared) == rows:
        return
    message = (
        f"{rows - len(prepared)} of {rows} rows have prompts longer than max_length={config.max_length} tokens "
        "and were dropped; raise max_length (or shorten the system prompt) to train on them."
    )
    if len(prepared) == 0:
        raise ValueError(message)
    logger.warning(message)


def train_stage(config: SpeechGPTTrainingConfig) -> Path:
    """Runs one stage and saves the trained SpeechGPT (LoRA merged unless `merge_lora=False`), its processor,
    and the training metrics and loss history (train_results.json, trainer_state.json)."""
    from trl import SFTTrainer

    model, processor = load_model_and_processor(config)
    dataset = load_stage_dataset(config)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=processor.tokenizer,
        peft_config=lora_config(config, model) if config.use_lora else None,
    )
    _check_rows_kept(config, len(dataset), trainer.train_dataset)
    result = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()  # trainer_state.json: the loss history
    output_dir = Path(config.output_dir)
    main_process = trainer.is_world_process_zero()  # under accelerate/torchrun only rank 0 writes files
    if config.use_lora and config.merge_lora:
        if main_process:
            trainer.model.save_pretrained(output_dir / "adapter")
            trainer.model.merge_and_unload().save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))
    if main_process:
        processor.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
    return output_dir


__all__ = ["RECIPES_DIR", "STAGES", "SpeechGPTTrainingConfig", "load_model_and_processor", "load_stage_dataset", "train_stage"]
