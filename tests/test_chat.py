"""SpeechGPTChat: speech and text in, parsed answer and speech out, multi-turn, streaming equal to one-shot."""

import numpy as np
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from speechgpt_hf.inference.chat import SpeechGPTChat, SpeechGPTReply
from speechgpt_hf.inference.speech_streamer import StreamEvent
from speechgpt_hf.models.speechgpt.prompt_format import (
    Modality,
    format_chain_of_modality_instruction,
    parse_chain_of_modality_instruction,
)
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

NUM_UNITS = 50
ANSWER = "[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><12><1><eosp><eoa>"


class ScriptedAnswer(LogitsProcessor):
    """Constrains decoding to a fixed answer, so the real generate loop produces a known reply."""

    def __init__(self, answer_ids: list[int]) -> None:
        self.answer_ids, self.prompt_length = answer_ids, None

    def __call__(self, input_ids, scores):
        self.prompt_length = self.prompt_length or input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.answer_ids[min(step, len(self.answer_ids) - 1)]] = 0
        return forced


@pytest.fixture
def chat(tiny_speechgpt):
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    torch.manual_seed(0)
    vocoder = UnitHiFiGANVocoder(UnitHiFiGANConfig(
        num_units=NUM_UNITS, unit_embed_dim=16, duration_predictor_hidden_dim=16, upsample_initial_channel=32,
        upsample_rates=[5, 4, 4, 4], upsample_kernel_sizes=[11, 8, 8, 8], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )).eval()
    return SpeechGPTChat(model, processor, unit_tokenizer=units, vocoder=vocoder, generation_kwargs={"max_new_tokens": 40})


def _scripted(chat) -> LogitsProcessorList:
    answer = chat.processor.encode(ANSWER, add_special_tokens=False) + [chat.processor.tokenizer.eos_token_id]
    return LogitsProcessorList([ScriptedAnswer(answer)])


def _speech(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def test_speech_in_speech_out(chat):
    audio = _speech()
    instruction = chat.instruction(audio=audio, sampling_rate=16000)
    assert instruction == chat.unit_tokenizer.to_unit_string(chat.unit_tokenizer.encode(audio, sampling_rate=16000))
    reply = chat.respond(audio=audio, sampling_rate=16000, logits_processor=_scripted(chat))
    assert (reply.response.transcript, reply.response.text, reply.response.units) == ("hello", "hi there", [3, 4, 4, 9, 12, 1])
    expected = chat.vocoder.synthesize([3, 4, 4, 9, 12, 1]).numpy()
    np.testing.assert_allclose(reply.waveform, expected)
    assert reply.sampling_rate == 16000 and chat.history[-1][0] == instruction


def test_asr_style_request_puts_the_units_after_the_input_marker(chat):
    instruction = chat.instruction("Transcribe the recording. This is input:", _speech(0.5), 16000)
    assert instruction.startswith("Transcribe the recording. This is input: <sosp><")
    with pytest.raises(ValueError, match="give `text`, `audio`"):
        chat.instruction()


def test_output_modality_asks_for_a_spoken_or_a_written_answer_to_the_same_audio(chat):
    audio = _speech()
    units = chat.instruction(audio=audio, sampling_rate=16000)
    spoken, written = (chat.instruction(audio=audio, sampling_rate=16000, output_modality=m) for m in ("speech", "text"))
    assert spoken != written and units in spoken and units in written
    assert parse_chain_of_modality_instruction(spoken) == (units, Modality.SPEECH, Modality.SPEECH)
    assert parse_chain_of_modality_instruction(written) == (units, Modality.SPEECH, Modality.TEXT)
    assert chat.instruction("What is two plus two?", output_modality="speech") == format_chain_of_modality_instruction(
        "What is two plus two?", "text", "speech"
    )
    reply = chat.respond(audio=audio, sampling_rate=16000, output_modality="text", logits_processor=_scripted(chat))
    assert reply.prompt.endswith(f"[Human]: {written} <eoh>. [SpeechGPT]: ") and chat.history[-1][0] == written
    assert (reply.response.transcript, reply.response.text, reply.response.units) == ("hello", "hi there", [3, 4, 4, 9, 12, 1])
    streamed = list(chat.stream(audio=audio, sampling_rate=16000, output_modality="speech", logits_processor=_scripted(chat)))
    assert streamed[-1].prompt.endswith(f"[Human]: {spoken} <eoh>. [SpeechGPT]: ")
    with pytest.raises(ValueError, match="not both"):
        chat.instruction("Transcribe this. This is input:", audio, 16000, output_modality="text")
    with pytest.raises(ValueError, match="'speech' or 'text'"):
        chat.instruction("hi", output_modality="video")


def test_turns_accumulate_and_the_oldest_go_when_the_context_is_full(chat):
    for turn in range(3):
        chat.respond(f"question {turn}", logits_processor=_scripted(chat))
    assert [q for q, _ in chat.history] == ["question 0", "question 1", "question 2"]
    assert "question 1" in chat.processor.build_prompt("next", history=chat.history)
    prompt_tokens = len(chat.processor.encode(chat.processor.build_prompt("next", history=chat.history[-1:])))
    chat.model.config.get_text_config().max_position_embeddings = prompt_tokens + 40 + 1
    chat.respond("next", logits_processor=_scripted(chat))
    assert [q for q, _ in chat.history][0] == "question 2"  # older turns were dropped to fit
    chat.reset()
    assert chat.history == []


def test_streaming_gives_the_text_and_the_one_shot_audio(chat):
    events = list(chat.stream("speak", logits_processor=_scripted(chat)))
    reply = events[-1]
    assert isinstance(reply, SpeechGPTReply) and all(isinstance(e, StreamEvent) for e in events[:-1])
    text = "".join(e.text for e in events[:-1] if e.text)
    assert "hi there" in text and "<" not in text.replace("<eoa>", "")
    chunks = [e.audio for e in events[:-1] if e.audio is not None]
    assert chunks
    np.testing.assert_allclose(np.concatenate(chunks), chat.vocoder.synthesize([3, 4, 4, 9, 12, 1]).numpy(), atol=1e-4)
    assert reply.response.units == [3, 4, 4, 9, 12, 1]


def test_speech_input_needs_a_unit_tokenizer(tiny_speechgpt):
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    with pytest.raises(ValueError, match="unit tokenizer"):
        SpeechGPTChat(model, processor).respond(audio=_speech(), sampling_rate=16000)
