"""The judge's loop guard: loops are found in token rows and stop decoding; the stop records which rows it cut."""

import torch

from speechgpt_hf.evaluation.repetition_guard import LENGTH, LOOP, RepetitionStop, compression_ratio

END = 50256  # Whisper's end of text, also its padding


def test_repetition_stop_ends_only_the_looping_rows():
    looping = [50257, 50362, 11, 826, 826, 826, 826]  # one token four times
    phrase = [50257, 5, 6, 7, 5, 6, 7, 5, 6, 7, 5, 6, 7]  # a three-token phrase four times
    speech = [50257, 50362, 11, 826, 826, 12, 13, 14]  # "right right" then more words
    width = max(map(len, (looping, phrase, speech)))
    rows = torch.tensor([[0] * (width - len(r)) + r for r in (looping, phrase, speech)])
    assert RepetitionStop()(rows, torch.zeros(3, 10)).tolist() == [True, True, False]


def _generate(stop, prompt, continuations, width):
    """Feeds `stop` the steps of a batched generate call: each row's tokens one at a time, END-padded once a row
    ends or is stopped, until `width` new tokens; returns the rows as generated."""
    rows, done = [list(prompt) for _ in continuations], [False] * len(continuations)
    for step in range(width):
        for index, tokens in enumerate(continuations):
            rows[index].append(END if done[index] or step >= len(tokens) else tokens[step])
            done[index] = done[index] or rows[index][-1] == END
        stopped = stop(torch.tensor(rows), torch.zeros(len(rows), 10)).tolist()
        done = [d or s for d, s in zip(done, stopped, strict=True)]
    return rows


def test_the_stop_records_which_rows_it_cut_and_why():
    stop = RepetitionStop(max_new_tokens=10, finished_ids={END})
    finished = [11, 12, END]  # ends by itself: never cut, though its padding then repeats END
    looping = [11, 826, 826, 826, 826, 826, 826, 826, 826, 826]  # stopped at the fourth copy
    running = list(range(100, 112))  # still speaking at the cap
    repeated_then_ended = [11, 826, 826, 826, END]  # three copies are speech, not a loop
    rows = _generate(stop, [50257, 50362], [finished, looping, running, repeated_then_ended], 10)
    assert stop.cut == [None, LOOP, LENGTH, None] and stop.calls == 1
    assert rows[1][2:7] == [11, 826, 826, 826, 826] and rows[1][7] == END  # the stop ends the row there
    _generate(stop, [50257], [looping], 10)  # a new generate call: its own rows
    assert stop.cut == [LOOP] and stop.calls == 2


def test_compression_ratio_marks_loops():
    assert compression_ratio("right " * 40) > 2.4 > compression_ratio("The quick brown fox jumps over the lazy dog.")
