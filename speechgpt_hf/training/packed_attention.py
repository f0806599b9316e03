"""Attention that keeps packed rows apart without a dense mask: one causal SDPA call per row of a padding-free batch.

A padding-free batch (TRL's `packing` with the "bfd" strategy, or `padding_free=True`) lays its rows end to end in one
sequence and marks where each starts with `position_ids` (and `cu_seq_lens_q`). Plain SDPA keeps them apart with a
dense block-diagonal mask over the whole batch, whose cost grows with the square of the batch's total length; this
backend attends within each row only, so attention costs what the rows cost one at a time, on any device and with no
extra package. Padded batches (an attention mask given) and generation go to transformers' SDPA unchanged.
Flash attention (`flash_attention_2`, where the `flash-attn` package is installed) does the same in one kernel.
"""

from __future__ import annotations

from typing import Any

import torch

PACKED_SDPA = "speechgpt_packed_sdpa"


def row_bounds(position_ids: torch.Tensor | None, cu_seq_lens: torch.Tensor | None, length: int) -> list[int]:
    """Start offsets of the rows in a one-sequence padding-free batch, with `length` appended: from the cumulative
    lengths the collator gives when present, else from where `position_ids` restart at 0, else one row.

    A run of one-token rows (the padding of `pad_to_multiple_of`, each a row at position 0) becomes one row: a
    one-token row bears no loss and nothing attends to it, so this changes no loss and saves a call per token.
    """
    if cu_seq_lens is not None:
        starts = cu_seq_lens.tolist()
    elif position_ids is not None:
        starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    else:
        starts = []
    bounds = sorted({0, *starts, length})
    inner = [
        bound
        for before, bound, after in zip(bounds[:-2], bounds[1:-1], bounds[2:], strict=True)
        if not (bound - before == 1 and after - bound == 1)
    ]
    return [0, *inner, length]


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal SDPA over each packed row of a one-sequence batch; anything else goes to transformers' SDPA as is."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.pop("position_ids", None)
    cu_seq_lens = kwargs.pop("cu_seq_lens_q", None)
    length = query.shape[2]
    if attention_mask is not None or query.shape[0] != 1 or key.shape[2] != length:
        _refuse_packed_rows_in_a_wider_batch(position_ids, query.shape[0], attention_mask)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    bounds = row_bounds(position_ids, cu_seq_lens, length)
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], None, is_causal=True, **kwargs
        )[0]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return torch.cat(outputs, dim=1), None


def _refuse_packed_rows_in_a_wider_batch(position_ids: torch.Tensor | None, batch: int, mask: Any) -> None:
    """Rows packed side by side in a batch of several sequences (no mask to keep them apart) are not supported."""
    if mask is None and batch > 1 and position_ids is not None and bool((position_ids[:, 1:] == 0).any()):
        raise ValueError(
            f"{PACKED_SDPA} keeps packed rows apart in padding-free batches of one sequence; this batch packs rows "
            f"into {batch} sequences. Use TRL's padding-free packing (packing=True with packing_strategy='bfd') or "
            "attn_implementation='sdpa'."
        )


def packed_sdpa_mask(*args: Any, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor | None:
    """No mask for a padding-free batch (the rows are kept apart by `packed_sdpa_attention`); SDPA's mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register_packed_attention() -> str:
    """Registers the backend with transformers (once per process) and returns its `attn_implementation` name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_SDPA, packed_sdpa_mask)
    return PACKED_SDPA


__all__ = ["PACKED_SDPA", "packed_sdpa_attention", "packed_sdpa_mask", "register_packed_attention", "row_bounds"]
