"""The original SpeechGPT-7B release (Llama format, optional stage-3 LoRA adapter) -> a `speechgpt` repo.

The original added `<0>`…`<K-1>` to the Llama tokenizer, then `<sosp> <eosp> [Human] [SpeechGPT] <eoh> <eos>`
(ids 32000+n for `<n>`, 33000… for the markers). Those ids are kept as they are, so the converted model's
logits equal the original's; only the bookkeeping (unit offset, marker ids) is written into the config.
Pickled `.bin` files are read with `weights_only=True` (plain tensors only).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ..hub.cards import write_converted_card
from ..models.speechgpt import (
    DEFAULT_SYSTEM_PROMPT,
    SPEECHGPT_SPECIAL_TOKENS,
    SpeechGPTForCausalLM,
    SpeechGPTProcessor,
)

# Markers the original added after the unit tokens, in id order (`<eoa>` was left to sub-word pieces).
ORIGINAL_MARKERS: dict[str, str] = {key: token for key, token in SPEECHGPT_SPECIAL_TOKENS.items() if key != "eoa"}

logger = logging.getLogger(__name__)

# The sampling the original command-line demo used.
ORIGINAL_GENERATION = dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=50, max_new_tokens=2048, min_new_tokens=10)


def check_original_layout(tokenizer: PreTrainedTokenizerBase, num_units: int) -> tuple[int, dict[str, int]]:
    """Returns (id of `<0>`, marker ids) after checking the tokenizer has the original's contiguous layout."""
    vocab = tokenizer.get_vocab()
    missing = [f"<{u}>" for u in (0, num_units - 1) if f"<{u}>" not in vocab]
    missing += [tok for tok in ORIGINAL_MARKERS.values() if tok not in vocab]
    if missing:
        raise ValueError(
            f"The tokenizer lacks {missing}: this is not a SpeechGPT checkpoint with {num_units} units "
            "(pass --num-units if the unit vocabulary has another size)."
        )
    offset = vocab["<0>"]
    wrong = [u for u in range(num_units) if vocab.get(f"<{u}>") != offset + u]
    if wrong:
        raise ValueError(
            f"Unit tokens are not contiguous from <0>={offset}: e.g. <{wrong[0]}> is {vocab.get(f'<{wrong[0]}>')}."
        )
    markers = {key: vocab[tok] for key, tok in ORIGINAL_MARKERS.items()}
    expected = {key: offset + num_units + i for i, key in enumerate(ORIGINAL_MARKERS)}
    if markers != expected:
        raise ValueError(f"Marker ids {markers} differ from the original layout {expected}.")
    return offset, markers


def read_system_prompt(jsonl_path: str | Path) -> str:
    """The release's system prompt: the `prefix` of the first record of a SpeechInstruct jsonl that has one."""
    jsonl_path = Path(jsonl_path)
    with jsonl_path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{jsonl_path} line {number} is not JSON ({error}): give a SpeechInstruct .jsonl file "
                    "(one record a line with `prefix` and `plain_text`)."
                ) from error
            prefix = record.get("prefix") if isinstance(record, dict) else None
            if isinstance(prefix, str) and prefix.strip():
                return prefix
    raise ValueError(
        f"No record of {jsonl_path} has a non-empty `prefix`: give a SpeechInstruct file of the release "
        "(cross_modal_instruction.jsonl or chain_of_modality_instruction.jsonl)."
    )


def _warn_default_system_prompt() -> None:
    message = (
        "No system prompt given: the converted model gets this package's default prompt, but SpeechGPT-7B answers "
        "as trained only under the release's own. Pass --system-prompt-from <SpeechInstruct .jsonl> (its `prefix` "
        "field) or system_prompt=read_system_prompt(path)."
    )
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _load_tokenizer(checkpoint_dir: Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(checkpoint_dir)
    except (ImportError, ValueError, OSError) as error:
        raise RuntimeError(
            f"Could not load the tokenizer of {checkpoint_dir} ({error}). The original ships a sentencepiece "
            "tokenizer.model: `pip install sentencepiece protobuf` lets transformers read it."
        ) from error


def convert_speechgpt(
    checkpoint_dir: str | Path,
    output_dir: str | Path,
    adapter_dir: str | Path | None = None,
    num_units: int = 1000,
    system_prompt: str | None = None,
    unit_tokenizer_repo: str | None = None,
    vocoder_repo: str | None = None,
    dtype: str = "auto",
) -> Path:
    """Converts the original checkpoint (and merges its LoRA adapter, if given) into `output_dir`.

    `checkpoint_dir` holds config.json, the weights (.bin or .safetensors, sharded or not) and the tokenizer
    with its added tokens; `adapter_dir` a PEFT adapter (adapter_config.json + adapter_model.bin/.safetensors).
    `system_prompt` is saved with the processor, so loading the repo uses it by default; the release's prompt is
    the `prefix` of its SpeechInstruct records (`read_system_prompt`). Without one, a warning is given and this
    package's default prompt is used. The processor records the "release" prompt format, so that requests are
    written as the release was trained on them (a chain-of-modality request is the bare unit span).
    """
    checkpoint_dir, output_dir = Path(checkpoint_dir), Path(output_dir)
    tokenizer = _load_tokenizer(checkpoint_dir)
    offset, markers = check_original_layout(tokenizer, num_units)
    model = AutoModelForCausalLM.from_pretrained(checkpoint_dir, dtype=dtype, weights_only=True)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        raise ValueError(
            f"The model has {model.get_input_embeddings().weight.shape[0]} embedding rows but the tokenizer "
            f"{len(tokenizer)} tokens: the checkpoint and tokenizer do not belong together."
        )
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()

    speechgpt = SpeechGPTForCausalLM.from_language_model(
        model, tokenizer, num_units, markers, unit_tokenizer_repo=unit_tokenizer_repo, vocoder_repo=vocoder_repo
    )
    speechgpt.generation_config.update(**ORIGINAL_GENERATION, eos_token_id=tokenizer.eos_token_id)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    if system_prompt is None:
        _warn_default_system_prompt()
        system_prompt = DEFAULT_SYSTEM_PROMPT
    speechgpt.save_pretrained(output_dir)
    processor = SpeechGPTProcessor(tokenizer, num_units=num_units, system_prompt=system_prompt, prompt_format="release")
    processor.use_components_of(speechgpt.config)
    processor.save_pretrained(output_dir)
    write_converted_card(output_dir, "SpeechGPT-7B checkpoint", [checkpoint_dir, adapter_dir])
    return output_dir


__all__ = ["ORIGINAL_MARKERS", "check_original_layout", "convert_speechgpt", "read_system_prompt"]
