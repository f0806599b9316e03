"""Turning a text causal LM and its tokenizer into a SpeechGPT: unit tokens, markers, new embeddings."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AddedToken, PreTrainedModel, PreTrainedTokenizerBase

from .configuration_speechgpt import SPEECHGPT_SPECIAL_TOKENS
from .modeling_speechgpt import SpeechGPTForCausalLM
from .unit_pieces import UnitPieces

# Words whose embeddings seed each marker's new row, so a marker starts near its meaning.
_MARKER_SEED_WORDS = {
    "sosp": "start of speech",
    "eosp": "end of speech",
    "human": "Human",
    "speechgpt": "Assistant",
    "eoh": "end of question",
    "eos": "end",
    "eoa": "end of answer",
}


def unit_tokens(num_units: int) -> list[str]:
    """`['<0>', …, '<K-1>']`."""
    return [f"<{unit}>" for unit in range(num_units)]


def _add_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str]) -> None:
    present = set(tokenizer.get_vocab())
    clashes = [token for token in tokens if token in present]
    if clashes:
        raise ValueError(
            f"The tokenizer already has {clashes[:5]}: it looks expanded already. "
            "Load it with SpeechGPTProcessor / AutoProcessor instead of expanding it again."
        )
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False) for token in tokens])


@torch.no_grad()
def _initialise_new_rows(
    embeddings: torch.Tensor,
    new_ids: range,
    seeds: dict[int, list[int]],
    generator: torch.Generator,
    unit_row_spread: float,
) -> None:
    """Unit rows: the mean old embedding plus noise of `unit_row_spread` times its per-dimension spread, so that
    units start in the region the LM already uses yet stay distinguishable. Marker rows: the mean
    embedding of their seed words."""
    old = embeddings[: new_ids.start].float()
    mean, std = old.mean(0), old.std(0)
    noise = torch.randn(len(new_ids), old.shape[1], generator=generator).to(old.device) * std * unit_row_spread
    embeddings[new_ids.start : new_ids.stop] = (mean + noise).to(embeddings.dtype)
    for token_id, seed_ids in seeds.items():
        if seed_ids:
            embeddings[token_id] = old[seed_ids].mean(0).to(embeddings.dtype)


def add_speech_units(
    model: PreTrainedModel | str | Path,
    tokenizer: PreTrainedTokenizerBase | None = None,
    num_units: int = 1000,
    unit_tokenizer_repo: str | None = None,
    vocoder_repo: str | None = None,
    pad_to_multiple_of: int | None = None,
    seed: int = 0,
    gguf_file: str | None = None,
    unit_row_spread: float = 0.1,
    unit_pieces: UnitPieces | None = None,
) -> tuple[SpeechGPTForCausalLM, PreTrainedTokenizerBase]:
    """Expands a text LM into a SpeechGPT.

    Adds `<0>` … `<K-1>` then `<sosp> <eosp> [Human] [SpeechGPT] <eoh> <eos> <eoa>` to `tokenizer`
    (the order of the original release), grows the embedding (and untied output) matrices, gives the
    new rows a sensible start (see `_initialise_new_rows`) and wraps the LM in a
    `SpeechGPTForCausalLM` whose config records the mapping. `tokenizer` is changed in place.

    `model` may also be a repo id, a folder, or a `.gguf` file (or a folder or repo id with `gguf_file`): the LM and
    its tokenizer (unless `tokenizer` is given) are then loaded with `load_base_model`, a GGUF dequantised to
    float32. `speechgpt_hf.hub.cards.base_model_step` describes such a base for the saved model's card.

    `unit_row_spread` scales the noise that sets the unit rows apart, as a share of the text rows' per-dimension
    spread. 0.1 suits a model whose every weight trains; a base adapted with LoRA and only its unit rows trainable
    needs distinct units from the start (1.0: as far apart as text tokens), or it cannot tell them apart and writes
    from its text prior whatever it hears (measured on SmolLM2-135M: benchmarks/reproduction.md).

    With `unit_pieces` (a BPE over the units, `UnitPieces.learn`) the LM gets one unit token a piece, `<0>` …
    `<K+M-1>`; give its merges to the processor (`SpeechGPTProcessor(..., unit_merges=unit_pieces.merges)`).
    """
    if isinstance(model, (str, Path)):
        from .base_models import load_base_model

        model, loaded_tokenizer = load_base_model(model, gguf_file)
        tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
    elif gguf_file is not None:
        raise ValueError("gguf_file names the file to load the base from: pass its folder or repo id as `model`.")
    if tokenizer is None:
        raise ValueError("Pass the base model's tokenizer with the model (or pass the model's repo id or path).")
    if num_units < 1:
        raise ValueError(f"num_units must be positive, got {num_units}.")
    if unit_pieces is not None and unit_pieces.num_units != num_units:
        raise ValueError(f"The unit BPE is over {unit_pieces.num_units} units but num_units is {num_units}.")
    num_unit_merges = len(unit_pieces.merges) if unit_pieces is not None else 0
    if unit_row_spread < 0:
        raise ValueError(
            f"unit_row_spread must be 0 or more (a share of the text rows' spread), got {unit_row_spread}."
        )
    if isinstance(model, SpeechGPTForCausalLM):
        raise ValueError("This model is a SpeechGPT already; its vocabulary holds the unit tokens.")
    seed_ids = {
        key: tokenizer(words, add_special_tokens=False)["input_ids"] for key, words in _MARKER_SEED_WORDS.items()
    }
    first_new = len(tokenizer)
    _add_tokens(tokenizer, unit_tokens(num_units + num_unit_merges) + list(SPEECHGPT_SPECIAL_TOKENS.values()))
    special_ids = {key: tokenizer.convert_tokens_to_ids(tok) for key, tok in SPEECHGPT_SPECIAL_TOKENS.items()}
    old_rows = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=pad_to_multiple_of, mean_resizing=False)

    generator = torch.Generator().manual_seed(seed)
    new_ids = range(first_new, len(tokenizer))
    if first_new > old_rows:
        raise ValueError(f"The tokenizer has {first_new} tokens but the model only {old_rows} embedding rows.")
    seeds = {special_ids[key]: [i for i in ids if i < first_new] for key, ids in seed_ids.items()}
    _initialise_new_rows(model.get_input_embeddings().weight, new_ids, seeds, generator, unit_row_spread)
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        _initialise_new_rows(output.weight, new_ids, seeds, generator, unit_row_spread)
        if getattr(output, "bias", None) is not None:
            output.bias.data[new_ids.start : new_ids.stop] = output.bias.data[:first_new].mean()

    speechgpt = SpeechGPTForCausalLM.from_language_model(
        model,
        tokenizer,
        num_units,
        special_ids,
        unit_tokenizer_repo=unit_tokenizer_repo,
        vocoder_repo=vocoder_repo,
        num_unit_merges=num_unit_merges,
    )
    eoa = special_ids["eoa"]
    eos = speechgpt.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    speechgpt.generation_config.eos_token_id = [*eos_ids, eoa] if eoa not in eos_ids else eos_ids
    return speechgpt, tokenizer


__all__ = ["add_speech_units", "unit_tokens"]
