"""SpeechUnitStreamer: clean text deltas labelled by part, units routed aside, decoding in linear time."""

import pytest
import torch

from speechgpt_hf.inference.speech_streamer import SpeechUnitStreamer
from speechgpt_hf.testing_utils import TINY_CORPUS


def _stream(processor, ids):
    streamer = SpeechUnitStreamer(processor)
    streamer.put(torch.tensor([[1, 5, 6]]))  # the prompt, skipped
    for token_id in ids:
        streamer.put(torch.tensor([token_id]))
    streamer.end()
    return streamer, list(streamer)


def _text_by_part(events):
    parts = {}
    for event in events:
        if event.text is not None:
            parts[event.part] = parts.get(event.part, "") + event.text
    return parts


@pytest.mark.parametrize(
    "answer,expected,units",
    [
        ("[tq] what is said; [ta] The capital of France is Paris.<eoa>",
         {"transcript": "what is said", "answer": "The capital of France is Paris."}, []),
        ("[ta] hi there; [ua] <sosp><3><4><eosp><eoa>", {"answer": "hi there"}, [3, 4]),
        ("hello there ; [ta] hi<eos>", {"answer": "hello therehi"}, []),
        ("Paris; Rome [and] <more><eoa> left over", {"answer": "Paris; Rome [and] <more>"}, []),
    ],
)
def test_stream_yields_clean_text_split_into_transcript_and_answer(tiny_speechgpt, answer, expected, units):
    _, processor = tiny_speechgpt(num_units=50)
    ids = processor.encode(answer, add_special_tokens=False) + [processor.tokenizer.eos_token_id]
    streamer, events = _stream(processor, ids)
    assert _text_by_part(events) == expected
    assert streamer.units == units


def test_stream_text_equals_the_whole_decode_and_grows_linearly(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=50)
    text = " ".join(TINY_CORPUS * 3)
    ids = processor.encode(text, add_special_tokens=False)
    decoded_lengths = []
    decode = processor.tokenizer.decode

    def counting_decode(token_ids, **kwargs):
        decoded_lengths.append(len(token_ids))
        return decode(token_ids, **kwargs)

    processor.tokenizer.decode = counting_decode
    _, events = _stream(processor, ids)
    assert "".join(e.text for e in events) == text
    assert len(ids) > 300 and sum(decoded_lengths) < 6 * len(ids)  # re-decoding the whole answer: ~len(ids)**2 / 2
