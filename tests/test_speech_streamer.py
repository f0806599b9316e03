"""SpeechUnitStreamer: clean text deltas labelled by part, units routed aside, decoding in linear time."""

import numpy as np
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
        (
            "[tq] what is said; [ta] The capital of France is Paris.<eoa>",
            {"transcript": "what is said", "answer": "The capital of France is Paris."},
            [],
        ),
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


ANSWER_UNITS = [(7 * i) % 50 for i in range(40)]  # 40 units: longer than the tiny vocoder's 10-frame context
ANSWER = f"[tq] hello; [ta] hi there; [ua] <sosp>{''.join(f'<{u}>' for u in ANSWER_UNITS)}<eosp><eoa>"


def _generate_streaming(model, processor, streamer, in_thread: bool):
    """Plain `model.generate(..., streamer=streamer)` scripted to ANSWER, run here or in a worker thread; returns
    the events read from the streamer."""
    import threading

    from transformers import LogitsProcessorList

    from speechgpt_hf.testing_utils import ScriptedAnswer

    inputs = processor(processor.build_prompt("Say something."), return_tensors="pt")
    answer = processor.encode(ANSWER, add_special_tokens=False) + [processor.tokenizer.eos_token_id]
    scripted = LogitsProcessorList([ScriptedAnswer(answer)])
    settings = dict(streamer=streamer, max_new_tokens=len(answer), logits_processor=scripted)
    if not in_thread:
        model.generate(**inputs, **settings)
        return list(streamer)
    worker = threading.Thread(target=model.generate, kwargs={**inputs, **settings})
    worker.start()
    events = list(streamer)  # read while generate runs, as with transformers' TextIteratorStreamer
    worker.join()
    return events


@pytest.mark.parametrize("in_thread", [False, True], ids=["same-thread", "generate-in-a-thread"])
def test_stock_generate_streams_audio_chunks_equal_to_one_shot_synthesis(tiny_speechgpt, in_thread):
    from speechgpt_hf.testing_utils import build_tiny_vocoder

    model, processor = tiny_speechgpt(num_units=50)
    vocoder = build_tiny_vocoder(50)
    streamer = SpeechUnitStreamer(processor, vocoder=vocoder, chunk_frames=2, timeout=60)
    events = _generate_streaming(model, processor, streamer, in_thread)
    chunks = [event.audio for event in events if event.audio is not None]
    assert streamer.units == ANSWER_UNITS and len(chunks) >= 2  # several chunks: audio comes while units arrive
    assert all(chunk.dtype == np.float32 and chunk.ndim == 1 and chunk.size for chunk in chunks)
    one_shot = vocoder.synthesize(ANSWER_UNITS).numpy()
    np.testing.assert_allclose(np.concatenate(chunks), one_shot, atol=1e-4)  # the streaming vocoder's contract
    assert _text_by_part(events) == {"transcript": "hello", "answer": "hi there"}
