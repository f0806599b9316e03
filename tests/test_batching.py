"""Batches: the pipelines and SpeechGPTChat take lists and give one result per input, in order, each the answer the
input gets alone (greedy decoding on a tiny random model, whose answers differ from input to input)."""

import numpy as np
import pytest
import torch
from transformers import pipeline

import speechgpt_hf  # noqa: F401  (registers the pipelines)
from speechgpt_hf import SpeechGPTChat, SpeechGPTProcessor, add_speech_units
from speechgpt_hf.inference.batching import generate_answers, left_padded
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer, build_tiny_vocoder

NUM_UNITS = 50
GREEDY = {"max_new_tokens": 12, "do_sample": False}


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def system():
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    units.fit([_tone(1.0, 150 + 50 * i) for i in range(4)], sampling_rate=16000, max_iter=3, progress=False)
    return model.eval(), SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS), units, build_tiny_vocoder(NUM_UNITS)


RECORDINGS = [_tone(0.6, 180), _tone(1.2, 260), _tone(0.9, 400)]  # prompts of different lengths
TEXTS = ["Read this.", "Read this sentence aloud, please, slowly.", "Hi."]


@pytest.mark.parametrize("batch_size", [2, 3])
def test_speech_to_text_gives_each_recording_its_own_answer(system, batch_size):
    model, processor, units, vocoder = system
    asr = pipeline("speech-to-text", model=model, processor=processor, unit_tokenizer=units, device="cpu")
    inputs = [{"array": wave, "sampling_rate": 16000} for wave in RECORDINGS]
    alone = [asr(item, **GREEDY) for item in inputs]
    batched = asr(inputs, batch_size=batch_size, **GREEDY)
    assert isinstance(batched, list) and len(batched) == len(inputs)
    assert batched == alone
    assert len({result["text"] for result in alone}) > 1  # the inputs do get different answers


def test_text_to_audio_gives_one_waveform_per_text(system):
    model, processor, units, vocoder = system
    tts = pipeline("text-to-audio", model=model, tokenizer=processor.tokenizer, processor=processor, vocoder=vocoder)
    alone = [tts(text, **GREEDY) for text in TEXTS]
    batched = tts(TEXTS, batch_size=3, **GREEDY)
    assert len(batched) == len(TEXTS)
    for one, many in zip(alone, batched, strict=True):
        assert one["sampling_rate"] == many["sampling_rate"]
        np.testing.assert_allclose(one["audio"], many["audio"], atol=1e-5)


def test_the_pipeline_batch_size_is_the_default_of_a_call(system):
    model, processor, units, vocoder = system
    asr = pipeline("speech-to-text", model=model, processor=processor, unit_tokenizer=units, batch_size=2)
    calls = []
    generate = model.generate
    model.generate = lambda **kwargs: calls.append(kwargs["input_ids"].shape[0]) or generate(**kwargs)
    try:
        results = asr([{"array": wave, "sampling_rate": 16000} for wave in RECORDINGS], **GREEDY)
    finally:
        del model.generate
    assert calls == [2, 1] and len(results) == 3


def test_chat_respond_batch_answers_each_request_as_respond_does(system):
    model, processor, units, vocoder = system
    chat = SpeechGPTChat(model, processor, unit_tokenizer=units, vocoder=vocoder, generation_kwargs=GREEDY)
    requests = [
        "Tell me a joke.",
        {"audio": RECORDINGS[1], "sampling_rate": 16000},
        {"text": "Say hello.", "output_modality": "speech"},
    ]
    alone = []
    for request in requests:
        chat.reset()
        alone.append(chat.respond(**({"text": request} if isinstance(request, str) else request)))
    chat.reset()
    batched = chat.respond_batch(requests, batch_size=2)
    assert chat.history == []  # independent requests: the conversation is left as it was
    assert len(batched) == len(requests)
    for one, many in zip(alone, batched, strict=True):
        assert (many.response.transcript, many.response.text, many.response.units) == (
            one.response.transcript,
            one.response.text,
            one.response.units,
        )
        assert many.prompt == one.prompt
        assert (many.waveform is None) == (one.waveform is None)
        if one.waveform is not None:
            np.testing.assert_allclose(one.waveform, many.waveform, atol=1e-5)


def test_chat_respond_batch_refuses_what_a_request_cannot_hold(system):
    model, processor, units, vocoder = system
    chat = SpeechGPTChat(model, processor, unit_tokenizer=units, vocoder=vocoder, generation_kwargs=GREEDY)
    with pytest.raises(ValueError, match="not \\['voice'\\]"):
        chat.respond_batch([{"text": "Hi", "voice": 1}])
    with pytest.raises(ValueError, match="batch_size"):
        chat.respond_batch(["Hi"], batch_size=0)


def test_prompts_are_padded_on_the_left_and_the_padding_cut_from_the_answers(system):
    model, processor, _, _ = system
    batch = left_padded([torch.tensor([5, 6, 7]), torch.tensor([8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    eos = processor.tokenizer.eos_token_id
    prompt = processor(processor.build_prompt("Hi."), return_tensors="pt")["input_ids"][0]
    answers = generate_answers(model, [prompt, prompt[:-2]], pad_id=eos, max_new_tokens=6, do_sample=False)
    assert all(len(answer) <= 6 for answer in answers)
    assert all(answer[-2:] != [eos, eos] for answer in answers)
