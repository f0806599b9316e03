"""The judge's loop guard: loops are found in token rows and in transcripts, ordinary repeats are left alone."""

import pytest
import torch

from speechgpt_hf.evaluation.repetition_guard import RepetitionStop, collapse_repeats, compression_ratio


def test_repetition_stop_ends_only_the_looping_rows():
    looping = [50257, 50362, 11, 826, 826, 826, 826]  # one token four times
    phrase = [50257, 5, 6, 7, 5, 6, 7, 5, 6, 7, 5, 6, 7]  # a three-token phrase four times
    speech = [50257, 50362, 11, 826, 826, 12, 13, 14]  # "right right" then more words
    width = max(map(len, (looping, phrase, speech)))
    rows = torch.tensor([[0] * (width - len(r)) + r for r in (looping, phrase, speech)])
    assert RepetitionStop()(rows, torch.zeros(3, 10)).tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I said right right right right right right", "I said right"),
        ("Can I pay for the tickets? For the tickets? For the tickets? For the tickets?", "Can I pay for the tickets?"),
        ("It is very very cold today.", "It is very very cold today."),
        ("no no no", "no"),
        ("", ""),
    ],
)
def test_collapse_repeats(text, expected):
    assert collapse_repeats(text) == expected


def test_compression_ratio_marks_loops():
    assert compression_ratio("right " * 40) > 2.4 > compression_ratio("The quick brown fox jumps over the lazy dog.")
