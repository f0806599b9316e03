"""The three SpeechGPT training stages on TRL's SFTTrainer (their names: `speechgpt_hf.stages`).

1. modality_adaptation: language modelling on `<sosp>…<eosp>` unit sequences (the `text` column), packed.
2. cross_modal: ASR/TTS instructions as prompt/completion pairs, loss on the completion, packed.
3. chain_of_modality: the four chain-of-modality formats, LoRA on attention (q_proj, v_proj by default).

A stage is one `SpeechGPTTrainingConfig` (an `SFTConfig` with model, data and LoRA fields) and one call to
`train_stage`; the recipes of the paper are YAML files in `speechgpt_hf/training/recipes/`. Models load as TRL
loads a model given by name: with `model_init_kwargs`, in float32 unless a dtype is asked for, so that full
fine-tuning keeps fp32 master weights and bf16 enters only as mixed precision (on by default where a GPU has it).
Packed (padding-free) batches attend within each row through `packed_attention` unless another backend is asked for.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from trl import SFTConfig

from ..stages import CROSS_MODAL, MODALITY_ADAPTATION, STAGES
from .checkpoints import MARKER, resume_target, staged_model
from .stage_recipes import RECIPES_DIR
from .unit_bpe import in_unit_pieces, learn_unit_pieces
from .unit_row_optimizer import SpeechGPTSFTTrainer, check_unit_embedding_learning_rate

logger = logging.getLogger(__name__)

ACCELERATE_CONFIGS_DIR = Path(__file__).parent / "accelerate_configs"
_DTYPE_NAMES = ("bfloat16", "float16", "float32")


@dataclass
class SpeechGPTTrainingConfig(SFTConfig):
    """Everything one SpeechGPT stage needs: TRL's `SFTConfig` plus the model, the data and LoRA.

    Model: start from a SpeechGPT repo (`model_name_or_path`) or expand a text LLM (`base_model_name_or_path`,
    with `num_units`). Data: a SpeechInstruct folder or Hub repo and its config (the stage's by default).
    LoRA: `use_lora` with rank, alpha, dropout and target modules (the release's r=8, alpha=16, q/v), and
    optionally the unit rows of the embeddings trained alongside (`train_unit_embeddings`), at a learning rate of
    their own (`unit_embedding_learning_rate`).
    """

    stage: str = field(default=CROSS_MODAL, metadata={"help": f"Which stage to run: one of {', '.join(STAGES)}."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "A SpeechGPT repo id or folder to train."})
    base_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A text causal LM to expand into a SpeechGPT first (instead of model_name_or_path): a repo id, "
            "a folder, or a .gguf file (dequantised on loading)."
        },
    )
    gguf_file: str | None = field(
        default=None,
        metadata={"help": "The GGUF file inside base_model_name_or_path (a folder or repo id) to load the base from."},
    )
    num_units: int = field(default=1000, metadata={"help": "Unit vocabulary size K when expanding a base model."})
    unit_row_spread: float = field(
        default=0.1,
        metadata={
            "help": "When expanding, the unit rows' noise as a share of the text rows' spread (1.0 for a LoRA-adapted "
            "pretrained base, so that its units start distinct)."
        },
    )
    unit_bpe_vocab_size: int = field(
        default=0,
        metadata={
            "help": "When expanding, learn a BPE over the stage's unit spans with this many pieces (the K units "
            "and one piece a merge) for the LM to read and write instead of units; 0 keeps units. Rows get about "
            "a third shorter, and SmolLM2 learnt to read far sooner (benchmarks/reading.md)."
        },
    )
    unit_tokenizer_repo: str | None = field(
        default=None, metadata={"help": "Unit tokenizer repo to record when expanding."}
    )
    vocoder_repo: str | None = field(default=None, metadata={"help": "Vocoder repo to record when expanding."})
    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "System prompt of the expanded model's processor (default: the package's); match the data's."
        },
    )
    prompt_format: str | None = field(
        default=None,
        metadata={
            "help": "How the expanded model's processor writes turns, in training and in use: 'speechgpt' (the "
            "default), 'release' (the original SpeechGPT-7B's layout) or 'chat_template' (inside the base LLM's "
            "own chat template: an instruct base). A SpeechGPT repo keeps the format its processor records."
        },
    )
    dataset_name: str | None = field(default=None, metadata={"help": "SpeechInstruct folder or Hub repo id."})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config; defaults to the stage's name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many rows (quick runs)."})
    replay_config: str | None = field(
        default=None,
        metadata={
            "help": "Another config of the same dataset whose rows are mixed in (e.g. cross_modal in stage 3), "
            "so that the stage keeps what the earlier one taught."
        },
    )
    replay_fraction: float = field(
        default=0.5,
        metadata={
            "help": "Rows drawn from replay_config, as a fraction of the stage's own rows, each replayed row at most "
            "once."
        },
    )
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
    unit_embedding_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "With LoRA and train_unit_embeddings, the learning rate of the unit and marker rows (the rest "
            "trains at learning_rate, the same schedule scaling both): Adam moves a weight by about the learning "
            "rate a step, too little for new rows at a LoRA's rate. Default: learning_rate."
        },
    )
    merge_lora: bool = field(default=True, metadata={"help": "Save the LoRA merged into the weights at the end."})

    def __post_init__(self) -> None:
        import torch

        if self.stage not in STAGES:
            raise ValueError(f"Unknown stage {self.stage!r}: choose one of {', '.join(STAGES)}.")
        if (self.model_name_or_path is None) == (self.base_model_name_or_path is None):
            raise ValueError(
                "Give exactly one of model_name_or_path (a SpeechGPT) or base_model_name_or_path (a text LM)."
            )
        if self.gguf_file is not None and self.base_model_name_or_path is None:
            raise ValueError("gguf_file names a file of base_model_name_or_path: give that too (or drop gguf_file).")
        if self.replay_config is not None and (self.stage == STAGES[0] or self.replay_fraction <= 0):
            raise ValueError(
                "replay_config mixes prompt/completion rows into stage cross_modal or chain_of_modality with a "
                f"positive replay_fraction; got stage {self.stage!r} and replay_fraction={self.replay_fraction}."
            )
        if self.unit_bpe_vocab_size and (
            self.base_model_name_or_path is None or self.unit_bpe_vocab_size < self.num_units
        ):
            raise ValueError(
                f"unit_bpe_vocab_size={self.unit_bpe_vocab_size} is the size of a BPE learnt when a base LM is "
                f"expanded: it needs base_model_name_or_path and at least num_units={self.num_units} pieces (a "
                "SpeechGPT repo keeps the BPE its processor records)."
            )
        check_unit_embedding_learning_rate(self)
        if self.prompt_format is not None:
            from ..models.speechgpt.prompt_format import as_prompt_format

            self.prompt_format = as_prompt_format(self.prompt_format).value
        if self.bf16 is None and (self.use_cpu or not (torch.cuda.is_available() and torch.cuda.is_bf16_supported())):
            self.bf16 = False  # TRL's bf16 default needs a GPU that has bf16; elsewhere train in fp32 (or ask for fp16)
        self.dataset_config = self.dataset_config or self.stage
        super().__post_init__()


def model_init_kwargs(config: SpeechGPTTrainingConfig) -> dict[str, Any]:
    """The keyword arguments for `from_pretrained`, built as TRL's SFTTrainer builds them for a model given by name:
    the user's `model_init_kwargs`, dtype float32 unless set ("auto" keeps the checkpoint's), `trust_remote_code`
    from the config, and no device map on a CPU or under data parallelism ("auto" on a single accelerator)."""
    import torch

    kwargs = dict(config.model_init_kwargs or {})
    dtype = kwargs.pop("torch_dtype", kwargs.pop("dtype", "float32"))
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        dtype = getattr(torch, dtype)
    elif not (dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype)):
        raise ValueError(
            f"model_init_kwargs has dtype={dtype!r}: use 'auto' (the checkpoint's dtype) "
            f"or one of {', '.join(_DTYPE_NAMES)}."
        )
    kwargs["dtype"] = dtype
    kwargs.setdefault("trust_remote_code", config.trust_remote_code)
    _choose_attention(config, kwargs)
    device = config.device  # sets up the distributed state on first use
    state = config.distributed_state
    if state is not None and state.distributed_type in ("MULTI_GPU", "DEEPSPEED", "FSDP"):
        kwargs["device_map"] = None  # each process loads the model; DDP keeps it whole, FSDP/ZeRO shard it
    kwargs.setdefault("device_map", None if device.type in ("cpu", "mps") else "auto")
    return kwargs


def padding_free(config: SpeechGPTTrainingConfig) -> bool:
    """Whether TRL lays the rows of a batch end to end with no padding (as it does for `packing` with "bfd")."""
    return bool(config.padding_free or (config.packing and config.packing_strategy in ("bfd", "bfd_split")))


def _choose_attention(config: SpeechGPTTrainingConfig, kwargs: dict[str, Any]) -> None:
    """Padding-free batches attend within each row (the packed SDPA backend) unless another backend is asked for."""
    from .packed_attention import PACKED_SDPA, register_packed_attention

    asked = kwargs.get("attn_implementation")
    if asked == PACKED_SDPA or (asked is None and padding_free(config)):
        kwargs["attn_implementation"] = register_packed_attention()


def load_model_and_processor(config: SpeechGPTTrainingConfig) -> tuple[Any, Any]:
    """The SpeechGPT to train and its processor: loaded, or made by expanding a base LM, with `model_init_kwargs`.
    The processor points at the unit tokenizer and vocoder the model config names (loading neither), so that the
    processor saved beside the trained model names them too."""
    model, processor = _model_and_processor(config)
    processor.use_components_of(model.config)
    return model, processor


def _model_and_processor(config: SpeechGPTTrainingConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoProcessor

    from ..models.speechgpt import SpeechGPTProcessor, add_speech_units
    from ..models.speechgpt.base_models import load_base_model

    kwargs = model_init_kwargs(config)
    hub = {"revision": kwargs.get("revision"), "trust_remote_code": kwargs["trust_remote_code"]}
    if config.model_name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(config.model_name_or_path, **kwargs)
        processor = AutoProcessor.from_pretrained(config.model_name_or_path, **hub)
        if config.prompt_format not in (None, processor.prompt_format):
            raise ValueError(
                f"{config.model_name_or_path} was trained in the {processor.prompt_format!r} prompt format, not "
                f"{config.prompt_format!r}: leave prompt_format unset to go on in its own (it is chosen when a base "
                "LLM is expanded)."
            )
        return model, processor
    base, tokenizer = load_base_model(config.base_model_name_or_path, config.gguf_file, **kwargs)
    pieces = learn_unit_pieces(config) if config.unit_bpe_vocab_size else None
    model, tokenizer = add_speech_units(
        base,
        tokenizer,
        num_units=config.num_units,
        unit_tokenizer_repo=config.unit_tokenizer_repo,
        vocoder_repo=config.vocoder_repo,
        unit_row_spread=config.unit_row_spread,
        unit_pieces=pieces,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompt = {} if config.system_prompt is None else {"system_prompt": config.system_prompt}
    if config.prompt_format is not None:
        prompt["prompt_format"] = config.prompt_format
    if pieces is not None:
        prompt["unit_merges"] = pieces.merges
    return model, SpeechGPTProcessor(tokenizer, num_units=config.num_units, **prompt)


def load_stage_dataset(config: SpeechGPTTrainingConfig, processor: Any | None = None) -> Any:
    """The stage's rows in the form TRL expects: `text` for stage 1, `prompt`/`completion` otherwise.

    With `processor`, prompt/completion rows are rendered again from their structured fields in the processor's
    prompt format and under its system prompt (`prompt_completion_for`): the text the trained model is prompted with.
    Rows that have only the prompt/completion text are taken as stored, which only the "speechgpt" format can do.
    """
    from ..data.loading import load_speechinstruct

    dataset = load_speechinstruct(config.dataset_name, config.dataset_config, split=config.dataset_split)
    columns = ["text"] if config.stage == MODALITY_ADAPTATION else ["prompt", "completion"]
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{config.dataset_name} ({config.dataset_config}) lacks the column(s) {missing} that stage "
            f"{config.stage} trains on; build it with `speechgpt-hf build-speechinstruct`."
        )
    if config.max_train_samples is not None:
        dataset = dataset.select(range(min(config.max_train_samples, len(dataset))))
    dataset = _training_columns(dataset, columns, processor, config.dataset_config)
    if config.replay_config is not None:
        dataset = _with_replay(config, dataset, columns, processor)
    return dataset


def _training_columns(dataset: Any, columns: list[str], processor: Any | None, name: str) -> Any:
    """`dataset` reduced to `columns`, prompt/completion rendered by `processor` where it is given."""
    from ..data.rows import TURN_KEYS

    if processor is None or columns == ["text"]:
        return in_unit_pieces(dataset.select_columns(columns), processor, name)
    lacking = [c for c in [*TURN_KEYS, "history"] if c not in dataset.column_names]
    if lacking:
        if processor.prompt_format != "speechgpt":
            raise ValueError(
                f"The {name} rows hold prompt/completion text only (no {', '.join(lacking[:3])}…), in this package's "
                f"prompt format; the model's processor writes {processor.prompt_format!r}, which needs the "
                "structured fields to render them: build the data with `speechgpt-hf build-speechinstruct`."
            )
        return in_unit_pieces(dataset.select_columns(columns), processor, name)
    from datasets.fingerprint import Hasher

    from ..data.rows import prompt_completion_for

    tokenizer = processor.tokenizer
    adds_bos = bool(tokenizer.bos_token) and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]

    def render(row: dict[str, Any]) -> dict[str, str]:
        rendered = prompt_completion_for(row, processor)
        if adds_bos and rendered["prompt"].startswith(tokenizer.bos_token):  # TRL's tokenisation adds the BOS
            rendered["prompt"] = rendered["prompt"][len(tokenizer.bos_token) :]
        return rendered

    first = dataset[0] if len(dataset) else None
    if first is not None and processor.prompt_format == "speechgpt" and first["prompt"] != render(first)["prompt"]:
        logger.warning(
            "The %s rows were stored under another system prompt than the model's processor has; they are trained "
            "under the processor's, the one saved with the model and used to prompt it.",
            name,
        )
    settings = [processor.prompt_format, processor.system_prompt, processor.base_chat_template, adds_bos]
    rendered = dataset.map(
        render,
        remove_columns=dataset.column_names,
        new_fingerprint=Hasher.hash([getattr(dataset, "_fingerprint", ""), *settings]),
        desc=f"Rendering {name} in the {processor.prompt_format} prompt format",
    ).select_columns(columns)
    return in_unit_pieces(rendered, processor, name)


def _with_replay(config: SpeechGPTTrainingConfig, dataset: Any, columns: list[str], processor: Any | None) -> Any:
    """The stage's rows with `replay_fraction` of their number drawn (seeded, each at most once) from `replay_config`,
    shuffled together: rehearsal against forgetting the earlier stage's tasks. A small set repeated is memorised, not
    rehearsed: drawn 12 times each, 160 chain-of-modality rows outweighed the ASR rows of stage 2 three to one in loss
    tokens, and the model answered spoken questions with their transcripts (benchmarks/reproduction.md)."""
    from datasets import concatenate_datasets

    from ..data.loading import load_speechinstruct

    replay = load_speechinstruct(config.dataset_name, config.replay_config, split=config.dataset_split)
    missing = [c for c in columns if c not in replay.column_names]
    if missing:
        raise ValueError(
            f"replay_config {config.replay_config!r} lacks the column(s) {missing} that {config.stage} trains on."
        )
    wanted = min(len(replay), max(1, round(config.replay_fraction * len(dataset))))
    replayed = _training_columns(
        replay.shuffle(seed=config.seed).select(range(wanted)), columns, processor, config.replay_config
    )
    mixed = concatenate_datasets([dataset, replayed])
    logger.info("Stage %s: %d rows plus %d replayed from %s.", config.stage, len(dataset), wanted, config.replay_config)
    return mixed.shuffle(seed=config.seed)


def speech_token_ids(model: Any) -> list[int]:
    """Token ids of the unit tokens and the SpeechGPT markers of `model` (padding rows of the matrix excluded)."""
    return sorted({*model.config.unit_token_ids(), *model.config.special_token_ids.values()})


def _embedding_module_names(model: Any) -> list[str]:
    """Names of the input embedding module and, unless it shares the input's weight, the output embedding module."""
    names = {id(module): name for name, module in model.named_modules()}
    embeddings = [model.get_input_embeddings()]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not embeddings[0].weight:
        embeddings.append(output)
    return [names[id(module)] for module in embeddings]


def lora_config(config: SpeechGPTTrainingConfig, model: Any) -> Any:
    """The PEFT LoRA of the stage. With `train_unit_embeddings`, the unit and marker rows of the input embeddings
    (and of an untied output layer; a tied one follows its input rows) train too, as PEFT trainable tokens."""
    from peft import LoraConfig

    extra: dict[str, Any] = {}
    if config.train_unit_embeddings:
        rows = speech_token_ids(model)
        extra["trainable_token_indices"] = {name: rows for name in _embedding_module_names(model)}
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


def _pass_head_bias_through(model: Any) -> None:
    """TRL's fused loss reads `lm_head.weight` and `lm_head.bias`; PEFT's trainable-token wrapper of the head
    answers `weight` (with the trained rows) but not `bias`, so hand it the wrapped layer's bias."""
    head = model.get_output_embeddings()
    if head is None or hasattr(head, "bias"):
        return
    # a plain attribute, not a registered parameter: the bias stays the wrapped layer's, saved and merged with it
    object.__setattr__(head, "bias", head.original_module.bias)


class UnmarkRewrittenCheckpoints(TrainerCallback):
    """Removes the trainer_state.json of a checkpoint folder just before the Trainer saves into it again (a run
    resumed from an earlier checkpoint), so that a kill mid-save leaves it unfinished rather than a finished-looking
    mix of two saves (the Trainer writes trainer_state.json last)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_save and state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / MARKER).unlink(missing_ok=True)

    on_epoch_end = on_step_end


class _AlreadyTrained(Exception):
    """Raised by `StopWhenResumedAtTheEnd` to leave `Trainer.train` before it takes a step past max_steps."""


class StopWhenResumedAtTheEnd(TrainerCallback):
    """Resumed from a checkpoint of its last step (a run killed while saving its final model), the Trainer would take
    one step more than max_steps before stopping; this stops it first, with the checkpoint's weights loaded."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps:
            raise _AlreadyTrained


def build_trainer(config: SpeechGPTTrainingConfig, callbacks: list[Any] | None = None) -> tuple[Any, Any]:
    """The stage's `SpeechGPTSFTTrainer` (with these transformers `TrainerCallback`s), ready to train, and the
    processor to save beside the model."""
    model, processor = load_model_and_processor(config)
    dataset = load_stage_dataset(config, processor)
    args = copy.copy(config)
    args.model_init_kwargs = None  # applied by load_model_and_processor; TRL would warn that they were ignored
    trainer = SpeechGPTSFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor.tokenizer,
        peft_config=lora_config(config, model) if config.use_lora else None,
        callbacks=[*(callbacks or []), UnmarkRewrittenCheckpoints(), StopWhenResumedAtTheEnd()],
    )
    if config.use_lora and config.train_unit_embeddings:
        _pass_head_bias_through(trainer.model)
    _check_rows_kept(config, len(dataset), trainer.train_dataset)
    return trainer, processor


def _save_model(trainer: Any, output_dir: Path) -> None:
    """The trained model as one safetensors checkpoint. Under FSDP the shards are gathered onto rank 0 first (the
    Trainer would write only the shards); checkpoints written during training stay sharded for resuming."""
    if getattr(trainer.accelerator.state, "fsdp_plugin", None) is None:
        trainer.save_model(str(output_dir))
        return
    from torch.distributed.tensor import DTensor

    main_process = trainer.is_world_process_zero()
    state_dict = {}
    for name, tensor in trainer.model.state_dict().items():  # one tensor gathered at a time, by every process
        whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        if main_process:
            state_dict[name] = whole.detach().to("cpu", copy=True)
    if main_process:
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(output_dir, state_dict=state_dict)


def train_stage(config: SpeechGPTTrainingConfig, callbacks: list[Any] | None = None) -> Path:
    """Runs one stage (with these transformers `TrainerCallback`s) and saves the trained SpeechGPT (LoRA merged
    unless `merge_lora=False`), its processor, and the training metrics and loss history (train_results.json,
    trainer_state.json).

    `resume_from_checkpoint` "latest" (or "true") resumes from the newest complete checkpoint in output_dir (none:
    from scratch), so that the same command reruns a killed job; the checkpoint is checked before the Trainer reads
    it. The final files are saved beside output_dir and moved in with config.json last (`staged_model`)."""
    resume = resume_target(config.resume_from_checkpoint, config.output_dir)
    trainer, processor = build_trainer(config, callbacks)
    metrics = _train(trainer, resume)
    _save_final(config, trainer, processor, metrics)
    return Path(config.output_dir)


def _train(trainer: Any, resume: str | None) -> dict[str, float]:
    """Trains (resuming from `resume`) and returns the training metrics; a checkpoint of the last step only has
    its weights loaded (the metrics of the run that wrote it were never saved: epoch and FLOs stand in)."""
    try:
        return trainer.train(resume_from_checkpoint=resume).metrics
    except _AlreadyTrained:
        logger.info("%s holds the last step: saving its model without training further.", resume)
        return {"epoch": trainer.state.epoch, "total_flos": trainer.state.total_flos}


def _save_final(config: SpeechGPTTrainingConfig, trainer: Any, processor: Any, metrics: dict[str, float]) -> None:
    """Saves the trained model, its processor, metrics and card into a staging folder, then into output_dir."""
    output_dir = Path(config.output_dir)
    main_process = trainer.is_world_process_zero()  # under accelerate/torchrun only rank 0 writes files
    with staged_model(output_dir, main_process, trainer.accelerator.wait_for_everyone) as staging:
        _save_run_files(trainer, metrics, staging)
        if config.use_lora and config.merge_lora:
            if main_process:
                trainer.model.save_pretrained(staging / "adapter")
                trainer.model.merge_and_unload().save_pretrained(staging)
        else:
            _save_model(trainer, staging)
        if main_process:
            processor.save_pretrained(staging)
            sequences = len(trainer.train_dataset) if hasattr(trainer.train_dataset, "__len__") else None
            steps = trainer.state.global_step
            write_stage_card(config, staging, sequences, steps, model_name=output_dir.resolve().name)
    trainer.accelerator.wait_for_everyone()


def _save_run_files(trainer: Any, metrics: dict[str, float], folder: Path) -> None:
    """The training metrics (train_results.json, all_results.json) and loss history (trainer_state.json), written
    by the Trainer into `folder` rather than its output_dir."""
    output_dir, trainer.args.output_dir = trainer.args.output_dir, str(folder)
    try:
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    finally:
        trainer.args.output_dir = output_dir


def _source_name(name: str) -> str:
    """A model or dataset as a card names it: a Hub id as it is, a local folder or file by its name only."""
    from ..hub.cards import source_name

    return source_name(name)


def stage_summary(config: SpeechGPTTrainingConfig, sequences: int | None, steps: int) -> str:
    """One line of a model card saying how the stage trained: method, data, length, optimisation."""
    if config.use_lora:
        method = f"LoRA r={config.lora_r}, alpha={config.lora_alpha} on {', '.join(config.lora_target_modules)}"
        method += " with the unit embedding rows" if config.train_unit_embeddings else ""
        rate = config.unit_embedding_learning_rate
        method += f" at learning rate {rate:g}" if rate is not None else ""
    else:
        method = "full fine-tuning"
    batch = config.per_device_train_batch_size * config.gradient_accumulation_steps
    data = f"{_source_name(config.dataset_name)} ({config.dataset_config}, {config.dataset_split})"
    if config.replay_config is not None:
        data += f" with up to {config.replay_fraction:g}x as many {config.replay_config} rows replayed"
    packed = ", packed" if config.packing else ""
    data = data if sequences is None else f"{sequences} sequences of {data}"
    schedule = getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type)
    return (
        f"{method}; {steps} steps of batch {batch} per device{packed} on {data}; "
        f"learning rate {config.learning_rate:g} ({schedule}), max length {config.max_length}"
    )


def _base_dtype(config: SpeechGPTTrainingConfig) -> str:
    """The dtype the base model was loaded in, as `model_init_kwargs` chose it (float32 unless set)."""
    kwargs = config.model_init_kwargs or {}
    return str(kwargs.get("torch_dtype", kwargs.get("dtype", "float32"))).removeprefix("torch.")


def write_stage_card(
    config: SpeechGPTTrainingConfig,
    output_dir: Path,
    sequences: int | None,
    steps: int,
    model_name: str | None = None,
) -> Path:
    """Adds the stage to the model's provenance (after the steps of the model it started from) and renders its card,
    naming the model `model_name` (default: the folder's name; a staging folder's is not the model's)."""
    from ..hub.cards import base_model_step, record_provenance, write_model_card

    start = config.model_name_or_path or config.base_model_name_or_path
    step = {
        "name": f"stage {STAGES.index(config.stage) + 1}: {config.stage.replace('_', ' ')}",
        "made_by": "speechgpt-hf train",
        "summary": stage_summary(config, sequences, steps),
        "datasets": [_source_name(config.dataset_name)],
    }
    if config.base_model_name_or_path is not None:
        base = base_model_step(config.base_model_name_or_path, config.gguf_file, _base_dtype(config))
        step |= {key: base[key] for key in ("base_model", "base_weights") if key in base}
    inherit = start if config.model_name_or_path is not None and Path(start).is_dir() else None
    record_provenance(output_dir, step, inherit_from=inherit)
    return write_model_card(output_dir, repo_id=model_name)


__all__ = [
    "ACCELERATE_CONFIGS_DIR",
    "RECIPES_DIR",
    "SpeechGPTTrainingConfig",
    "StopWhenResumedAtTheEnd",
    "UnmarkRewrittenCheckpoints",
    "build_trainer",
    "load_model_and_processor",
    "load_stage_dataset",
    "lora_config",
    "model_init_kwargs",
    "padding_free",
    "speech_token_ids",
    "stage_summary",
    "train_stage",
    "write_stage_card",
]
