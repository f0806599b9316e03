"""The unit tokenizer and vocoder run where the LM runs: in the chat, the processor, the pipelines and the evaluation.

On the CPU the LM is put on the "meta" device, which holds no data: a component left behind stays on the CPU, so a
device check catches it. With a GPU the whole system answers a spoken question on it.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, LogitsProcessorList, pipeline

import speechgpt_hf  # noqa: F401  (registers the Auto classes and pipelines)
from speechgpt_hf.evaluation import harness
from speechgpt_hf.inference.chat import SpeechGPTChat
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import ScriptedAnswer, build_tiny_vocoder

NUM_UNITS = 50
ANSWER = "[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><12><1><eosp><eoa>"
META = torch.device("meta")


def _device(component) -> torch.device:
    return next(component.parameters()).device


def _unit_tokenizer() -> SpeechUnitTokenizer:
    return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()


@pytest.fixture
def saved_system(tmp_path, tiny_speechgpt) -> Path:
    """A saved tiny system: an LM folder whose config and processor name a unit tokenizer and vocoder folder."""
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    _unit_tokenizer().save_pretrained(tmp_path / "units")
    build_tiny_vocoder(NUM_UNITS).save_pretrained(tmp_path / "vocoder")
    model.config.unit_tokenizer_repo, model.config.vocoder_repo = str(tmp_path / "units"), str(tmp_path / "vocoder")
    processor.use_components_of(model.config)
    model.save_pretrained(tmp_path / "lm")
    processor.save_pretrained(tmp_path / "lm")
    return tmp_path / "lm"


def _on_meta(saved_system: Path) -> tuple:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(saved_system).to(META)
    return model, AutoProcessor.from_pretrained(saved_system)


def test_the_components_a_processor_loads_land_on_the_lms_device(saved_system):
    model, processor = _on_meta(saved_system)
    chat = SpeechGPTChat(model, processor)
    assert processor.speech_device == META
    # both load only now, after the chat was made, from the folders the processor names
    assert _device(processor.audio_tokenizer) == META
    assert _device(chat.vocoder) == META
    assert chat.unit_tokenizer is processor.audio_tokenizer


def test_components_given_to_the_chat_move_to_the_lms_device(saved_system):
    model, processor = _on_meta(saved_system)
    units, vocoder = _unit_tokenizer(), build_tiny_vocoder(NUM_UNITS)
    chat = SpeechGPTChat(model, processor, unit_tokenizer=units, vocoder=vocoder)
    assert _device(chat.unit_tokenizer) == META and _device(chat.vocoder) == META


def test_components_follow_an_lm_moved_after_the_chat_was_made(saved_system):
    from transformers import AutoModelForCausalLM

    chat = SpeechGPTChat(
        AutoModelForCausalLM.from_pretrained(saved_system), AutoProcessor.from_pretrained(saved_system)
    )
    assert _device(chat.vocoder) == torch.device("cpu")
    chat.model.to(META)
    assert _device(chat.vocoder) == META and _device(chat.unit_tokenizer) == META


def test_a_processor_places_components_attached_before_and_after_its_device_is_set(saved_system):
    processor = AutoProcessor.from_pretrained(saved_system)
    before = build_tiny_vocoder(NUM_UNITS)
    processor.vocoder = before
    processor.speech_device = META
    assert _device(before) == META
    processor.audio_tokenizer = _unit_tokenizer()
    assert _device(processor.audio_tokenizer) == META


def test_a_moved_component_is_moved_with_to(saved_system, monkeypatch):
    """The same plumbing without the meta device: a spy on `.to` sees the vocoder sent to the LM's device."""
    model, processor = _on_meta(saved_system)
    sent = []
    vocoder = build_tiny_vocoder(NUM_UNITS)
    original = type(vocoder).to
    monkeypatch.setattr(type(vocoder), "to", lambda self, *args, **kw: sent.append(args) or original(self, *args, **kw))
    SpeechGPTChat(model, processor, vocoder=vocoder)
    assert sent and torch.device(sent[-1][0]) == META


@pytest.mark.parametrize("task", ["speech-to-speech", "text-to-audio"])
def test_a_pipeline_puts_the_components_on_its_device(saved_system, task):
    from transformers import AutoModelForCausalLM

    model, processor = AutoModelForCausalLM.from_pretrained(saved_system), AutoProcessor.from_pretrained(saved_system)
    parts = {"tokenizer": processor.tokenizer} if task == "text-to-audio" else {}
    pipe = pipeline(task, model=model, processor=processor, device=META, **parts)
    assert pipe.model.device == META
    assert _device(pipe.chat.vocoder) == META and _device(pipe.chat.unit_tokenizer) == META


class _Loaded:
    """What the stand-in loader gives: the keywords it was called with."""

    def __init__(self, **kwargs):
        self.kwargs, self.generation_kwargs = kwargs, {}


@pytest.mark.parametrize(
    ("device", "gpu", "expected"),
    [(None, True, "cuda"), (None, False, "cpu"), ("cpu", True, "cpu"), ("cuda:1", True, "cuda:1")],
)
def test_the_evaluation_runs_a_loaded_system_where_it_is_told(saved_system, monkeypatch, device, gpu, expected):
    monkeypatch.setattr(SpeechGPTChat, "from_pretrained", classmethod(lambda cls, repo, **kw: _Loaded(**kw)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert harness.load_system(saved_system, device=device).kwargs["device"] == expected


def test_a_chat_loaded_for_a_device_runs_everything_there(saved_system):
    chat = SpeechGPTChat.from_pretrained(str(saved_system), device="meta")
    assert chat.model.device == META and _device(chat.vocoder) == META
    with pytest.raises(ValueError, match="not both"):
        SpeechGPTChat.from_pretrained(str(saved_system), device="cpu", device_map="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_spoken_question_is_heard_answered_and_voiced_on_the_gpu(saved_system):
    chat = SpeechGPTChat.from_pretrained(str(saved_system), device="cuda")
    answer = chat.processor.encode(ANSWER, add_special_tokens=False) + [chat.processor.tokenizer.eos_token_id]
    t = np.arange(16000) / 16000
    question = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    reply = chat.respond(
        audio=question, sampling_rate=16000, logits_processor=LogitsProcessorList([ScriptedAnswer(answer)])
    )
    assert chat.model.device.type == "cuda"
    assert _device(chat.unit_tokenizer).type == "cuda" and _device(chat.vocoder).type == "cuda"
    assert reply.response.units == [3, 4, 4, 9, 12, 1]
    assert reply.waveform is not None and len(reply.waveform) > 0 and np.isfinite(reply.waveform).all()
    pipe = pipeline("speech-to-speech", model=str(saved_system), device=0)
    assert _device(pipe.chat.unit_tokenizer).type == "cuda" and _device(pipe.chat.vocoder).type == "cuda"
