"""Keeps an ASR judge's decoder out of repetition loops, which would otherwise score as huge WERs and cost minutes.

Whisper sometimes loops on hard audio ("right right right …" to the token limit). Its own long-form decoding
catches this by the transcript's gzip compression ratio and decodes again at a higher temperature; a judge wants
deterministic transcripts, so here a loop stops decoding as soon as it shows (`RepetitionStop`) and the repeated
tail is cut back to one copy (`collapse_repeats`). What the recording said before the loop is kept.
"""

from __future__ import annotations

import re
import zlib

import torch
from transformers import StoppingCriteria

MIN_REPEATS = 4  # consecutive copies of the same token n-gram that count as a loop
MAX_PERIOD = 8  # longest n-gram (in tokens) looked for


def _loops(tokens: list[int], min_repeats: int, max_period: int) -> bool:
    """Whether `tokens` end in `min_repeats` consecutive copies of one n-gram of up to `max_period` tokens."""
    for period in range(1, max_period + 1):
        span = period * min_repeats
        if len(tokens) < span:
            break
        tail = tokens[-span:]
        if all(tail[i] == tail[i % period] for i in range(period, span)):
            return True
    return False


class RepetitionStop(StoppingCriteria):
    """Stops each row of a batched `generate` whose last tokens repeat one n-gram `min_repeats` times in a row."""

    def __init__(self, min_repeats: int = MIN_REPEATS, max_period: int = MAX_PERIOD) -> None:
        self.min_repeats, self.max_period = min_repeats, max_period

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        rows = input_ids[:, -self.min_repeats * self.max_period :].tolist()
        done = [_loops(row, self.min_repeats, self.max_period) for row in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


_WORD = re.compile(r"\S+")


def collapse_repeats(text: str, min_repeats: int = 3, max_words: int = 8) -> str:
    """`text` with every run of `min_repeats` or more consecutive copies of a word n-gram cut to one copy.

    Two copies ("very very") are ordinary speech and stay; comparison ignores case and punctuation.
    """
    words = _WORD.findall(text)
    keys = [re.sub(r"[^\w']", "", w).lower() for w in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        collapsed = False
        for size in range(1, max_words + 1):
            gram = keys[i : i + size]
            if len(gram) < size or not any(gram):
                break
            copies = 1
            while keys[i + copies * size : i + (copies + 1) * size] == gram:
                copies += 1
            if copies >= min_repeats:
                out.extend(words[i : i + size])
                i += copies * size
                collapsed = True
                break
        if not collapsed:
            out.append(words[i])
            i += 1
    return " ".join(out)


def compression_ratio(text: str) -> float:
    """Bytes of `text` over bytes of its zlib compression: above about 2.4 a transcript is mostly repetition."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


__all__ = ["RepetitionStop", "collapse_repeats", "compression_ratio"]
