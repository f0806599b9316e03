"""Keeps an ASR judge's decoder out of repetition loops, which would otherwise score as huge WERs and cost minutes.

Whisper sometimes loops on hard audio ("right right right …" to the token limit). Its own long-form decoding
catches this by the transcript's gzip compression ratio and decodes again at a higher temperature; a judge wants
deterministic transcripts, so here a loop stops decoding as soon as it shows (`RepetitionStop`): the transcript keeps
what was heard up to and including the loop's first `MIN_REPEATS` copies, and a runaway loop adds a few words to the
WER instead of hundreds.

Nothing is cut from a transcript after decoding: a system whose own speech repeats a word is scored on what the
judge heard, and the stop cannot tell such speech from the judge's own loop. So the stop records which rows it ended
(`RepetitionStop.cut`: "loop", or "length" for a row that ran to the token cap), and evaluations count those items,
whose transcripts may hold less than the audio said.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import torch
from transformers import StoppingCriteria

MIN_REPEATS = 4  # consecutive copies of the same token n-gram that count as a loop
MAX_PERIOD = 8  # longest n-gram (in tokens) looked for
LOOP, LENGTH = "loop", "length"  # why decoding of a row was cut short


def ends_in_loop(tokens: list[int], min_repeats: int, max_period: int) -> bool:
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
    """Stops each row of a batched `generate` whose last tokens repeat one n-gram `min_repeats` times in a row.

    One instance serves one `generate` call. It records, per row, why decoding was cut short: `cut[i]` is "loop"
    when it stopped row i, "length" when row i was still going at `max_new_tokens` (when given), None when the row
    ended by itself (a token of `finished_ids`: end of text, or padding, appeared). `calls` counts the `generate`
    calls seen (a new one starts when the rows get shorter); `cut` describes the rows of the last.
    """

    def __init__(
        self,
        min_repeats: int = MIN_REPEATS,
        max_period: int = MAX_PERIOD,
        max_new_tokens: int | None = None,
        finished_ids: Iterable[int] = (),
    ) -> None:
        self.min_repeats, self.max_period, self.max_new_tokens = min_repeats, max_period, max_new_tokens
        self.finished_ids = frozenset(finished_ids)
        self.cut: list[str | None] = []
        self.calls, self._prompt, self._length = 0, 0, 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        if not self.calls or input_ids.shape[1] <= self._length or input_ids.shape[0] != len(self.cut):  # a new call
            self.calls, self._prompt, self.cut = self.calls + 1, input_ids.shape[1] - 1, [None] * input_ids.shape[0]
        self._length = input_ids.shape[1]
        rows = input_ids[:, -self.min_repeats * self.max_period :].tolist()
        done = [ends_in_loop(row, self.min_repeats, self.max_period) for row in rows]
        new = input_ids[:, self._prompt :].tolist()
        at_cap = self.max_new_tokens is not None and len(new[0]) >= self.max_new_tokens
        for index, (looping, tokens) in enumerate(zip(done, new, strict=True)):
            if self.cut[index] is None and not self.finished_ids.intersection(tokens):
                self.cut[index] = LOOP if looping else (LENGTH if at_cap else None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def compression_ratio(text: str) -> float:
    """Bytes of `text` over bytes of its zlib compression: above about 2.4 a transcript is mostly repetition."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


__all__ = ["LENGTH", "LOOP", "MAX_PERIOD", "MIN_REPEATS", "RepetitionStop", "compression_ratio", "ends_in_loop"]
