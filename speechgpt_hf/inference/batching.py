"""Several prompts through one `generate` call: left-padded into a batch, each row's answer cut back out.

A decoder-only LM continues a prompt from its last token, so a batch pads on the left, and the attention mask keeps
the padding out of every row's context (transformers derives the positions from it). A row that finishes first is
filled with the pad token while the others go on; those tokens are cut off its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def pad_token_id(tokenizer: Any) -> int:
    """The id to pad a batch with: the tokenizer's pad token, else its end-of-sequence token, else 0."""
    for token_id in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if token_id is not None:
            return int(token_id)
    return 0


def left_padded(prompts: Sequence[Any], pad_id: int) -> dict[str, Any]:
    """`input_ids` and `attention_mask` of a batch of 1-D prompt id tensors, padded on the left."""
    import torch

    longest = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, longest - len(ids) :] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, longest - len(ids) :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def generate_answers(model: Any, prompts: Sequence[Any], pad_id: int, **generate_kwargs: Any) -> list[list[int]]:
    """The ids each prompt (a 1-D tensor or list of ids) is answered with, from one `generate` call over them all;
    the padding after a row's end is cut off (all but its first token, which may be the row's end)."""
    import torch

    pad_id = generate_kwargs.pop("pad_token_id", None) or pad_id
    batch = left_padded(prompts, pad_id)
    batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    with torch.inference_mode():
        output = model.generate(**batch, pad_token_id=pad_id, **generate_kwargs)
    sequences = getattr(output, "sequences", output)
    answers = []
    for row in sequences[:, batch["input_ids"].shape[1] :].tolist():
        # The first pad of a trailing run stays: it is the row's end-of-sequence token when pad and EOS are one.
        while len(prompts) > 1 and len(row) > 1 and row[-1] == row[-2] == pad_id:
            row.pop()
        answers.append(row)
    return answers


__all__ = ["generate_answers", "left_padded", "pad_token_id"]
