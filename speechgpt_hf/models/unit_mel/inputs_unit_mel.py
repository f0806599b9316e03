"""Turning what users pass to `synthesize` into checked, padded tensors, with errors that name the bad item.

The vocoder accepts one unit sequence (a list, a 1-D tensor, or an object with `.units` and `.durations` such as a
UnitSequence) or a list of them. This module has no imports from other folders of the package: a saved repo's
`trust_remote_code` copy holds only this folder's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Boolean mask `[B, max_length]`, True before each row's length."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def is_single(units: Any) -> bool:
    """Whether `units` is one sequence (a UnitSequence, a 1-D tensor, a flat list) rather than a batch of them."""
    if hasattr(units, "units"):
        return True
    if isinstance(units, torch.Tensor):
        return units.dim() <= 1
    if len(units) == 0 or isinstance(units[0], str):
        return True
    first = units[0]
    return not (hasattr(first, "units") or (hasattr(first, "__len__") and getattr(first, "ndim", 1) >= 1))


def as_ids(values: Sequence[int] | torch.Tensor, what: str) -> torch.Tensor:
    """A 1-D long tensor from integers; floats, booleans and deeper nesting are refused by name."""
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(list(values), dtype=None)
    if len(tensor) == 0:
        tensor = torch.zeros(0, dtype=torch.long)
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{what} must be integers, got {tensor.dtype} values.")
    if tensor.dim() != 1:
        raise ValueError(f"each sequence of {what} must be 1-D, got shape {tuple(tensor.shape)}.")
    return tensor.long()


def padded(rows: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows right-padded with 0 into `[B, T]`, and the mask of real entries."""
    lengths = torch.tensor([len(row) for row in rows])
    ids = nn.utils.rnn.pad_sequence(rows, batch_first=True) if rows else torch.zeros(0, 0, dtype=torch.long)
    return ids.to(device), lengths_to_mask(lengths, ids.shape[1]).to(device)


def batch_inputs(
    units: Any, durations: Any, speaker_id: int | Sequence[int] | None, device: torch.device
) -> tuple[bool, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(single?, ids `[B, T]`, mask, durations `[B, T]` or None, speaker ids `[B]` or None) for `synthesize`;
    durations are taken from the sequences' `.durations` when every one has them and none were passed."""
    single = is_single(units)
    rows = [units] if single else list(units)
    if durations is None and rows and all(hasattr(row, "durations") for row in rows):
        durations = [row.durations for row in rows]
    elif durations is not None and single:
        durations = [durations]
    ids, mask = padded([as_ids(getattr(row, "units", row), "unit ids") for row in rows], device)
    frames = None if durations is None else padded([as_ids(d, "durations") for d in durations], device)[0]
    speakers = None if speaker_id is None else torch.as_tensor(speaker_id, device=device)
    if speakers is not None and speakers.dim() == 0:
        speakers = speakers.expand(len(rows))
    return single, ids, mask, frames, speakers


def check_speakers(speaker_ids: torch.Tensor | None, batch_size: int, num_speakers: int) -> None:
    """Refuses speaker ids a single-voice vocoder cannot take, missing ones a multi-voice one needs, and bad ids."""
    if num_speakers == 0:
        if speaker_ids is not None:
            raise ValueError("This vocoder has a single voice (num_speakers=0): do not pass a speaker id.")
        return
    if speaker_ids is None:
        raise ValueError(f"This vocoder has {num_speakers} voices: pass a speaker id (0..{num_speakers - 1}).")
    if speaker_ids.is_floating_point() or speaker_ids.shape != (batch_size,):
        raise TypeError(f"Speaker ids must be integers, one per batch row ({batch_size}).")
    bad = ((speaker_ids < 0) | (speaker_ids >= num_speakers)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"Speaker id {int(speaker_ids[bad[0]])} at batch index {bad[0]} is outside 0..{num_speakers - 1}."
        )


def check_units(input_ids: torch.Tensor, mask: torch.Tensor, durations: torch.Tensor | None, num_units: int) -> None:
    """Refuses non-integer ids, empty rows, ids outside 0..K-1 and durations below one frame, naming the first."""
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"Unit ids must be an integer tensor, got dtype {input_ids.dtype}; pass torch.long ids.")
    if input_ids.dim() != 2:
        raise ValueError(f"`input_ids` must be [batch, units], got shape {tuple(input_ids.shape)}.")
    empty = (mask.sum(-1) == 0).nonzero().flatten().tolist()
    if input_ids.shape[0] == 0 or empty:
        raise ValueError(f"Empty unit sequence(s) at batch index {empty or [0]}: every row needs at least one unit.")
    bad = mask & ((input_ids < 0) | (input_ids >= num_units))
    if bad.any():
        row, col = bad.nonzero()[0].tolist()
        raise ValueError(
            f"Unit id {int(input_ids[row, col])} at batch index {row}, position {col} is outside 0..{num_units - 1} "
            f"(this vocoder has K={num_units} units); map or drop it before synthesis."
        )
    if durations is None:
        return
    if durations.is_floating_point() or durations.shape != input_ids.shape:
        raise TypeError(f"`durations` must be an integer tensor shaped like `input_ids` {tuple(input_ids.shape)}.")
    short = mask & (durations < 1)
    if short.any():
        row, col = short.nonzero()[0].tolist()
        raise ValueError(
            f"Duration {int(durations[row, col])} at batch index {row}, position {col}: every unit lasts at least "
            "one frame (drop units with zero duration)."
        )


__all__ = ["as_ids", "batch_inputs", "check_speakers", "check_units", "is_single", "lengths_to_mask", "padded"]
