"""SpeechGPTChat: speech and text in, parsed answer and speech out, multi-turn, streaming equal to one-shot."""

import threading

import numpy as np
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from speechgpt_hf.inference.chat import GENERATION_THREAD, SpeechGPTChat, SpeechGPTReply
from speechgpt_hf.inference.speech_streamer import StreamEvent
from speechgpt_hf.models.speechgpt.prompt_format import (
    Modality,
    format_chain_of_modality_instruction,
    parse_chain_of_modality_instruction,
)
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import ScriptedAnswer

NUM_UNITS = 50
ANSWER = "[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><12><1><eosp><eoa>"


@pytest.fixture
def chat(tiny_speechgpt):
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    torch.manual_seed(0)
    vocoder = UnitHiFiGANVocoder(
        UnitHiFiGANConfig(
            num_units=NUM_UNITS,
            unit_embed_dim=16,
            duration_predictor_hidden_dim=16,
            upsample_initial_channel=32,
            upsample_rates=[5, 4, 4, 4],
            upsample_kernel_sizes=[11, 8, 8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
        )
    ).eval()
    return SpeechGPTChat(
        model, processor, unit_tokenizer=units, vocoder=vocoder, generation_kwargs={"max_new_tokens": 40}
    )


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
    assert (reply.response.transcript, reply.response.text, reply.response.units) == (
        "hello",
        "hi there",
        [3, 4, 4, 9, 12, 1],
    )
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
    spoken, written = (
        chat.instruction(audio=audio, sampling_rate=16000, output_modality=m) for m in ("speech", "text")
    )
    assert spoken != written and units in spoken and units in written
    assert parse_chain_of_modality_instruction(spoken) == (units, Modality.SPEECH, Modality.SPEECH)
    assert parse_chain_of_modality_instruction(written) == (units, Modality.SPEECH, Modality.TEXT)
    assert chat.instruction("What is two plus two?", output_modality="speech") == format_chain_of_modality_instruction(
        "What is two plus two?", "text", "speech"
    )
    reply = chat.respond(audio=audio, sampling_rate=16000, output_modality="text", logits_processor=_scripted(chat))
    assert reply.prompt.endswith(f"[Human]: {written} <eoh>. [SpeechGPT]:") and chat.history[-1][0] == written
    assert (reply.response.transcript, reply.response.text, reply.response.units) == (
        "hello",
        "hi there",
        [3, 4, 4, 9, 12, 1],
    )
    streamed = list(
        chat.stream(audio=audio, sampling_rate=16000, output_modality="speech", logits_processor=_scripted(chat))
    )
    assert streamed[-1].prompt.endswith(f"[Human]: {spoken} <eoh>. [SpeechGPT]:")
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
    texts = [(e.part, e.text) for e in events[:-1] if e.text]
    assert "".join(t for part, t in texts if part == "transcript") == "hello"
    assert "".join(t for part, t in texts if part == "answer") == "hi there"
    chunks = [e.audio for e in events[:-1] if e.audio is not None]
    assert chunks
    np.testing.assert_allclose(np.concatenate(chunks), chat.vocoder.synthesize([3, 4, 4, 9, 12, 1]).numpy(), atol=1e-4)
    assert reply.response.units == [3, 4, 4, 9, 12, 1]


def test_history_fits_the_context_next_to_the_calls_own_max_new_tokens(chat):
    for turn in range(3):
        chat.respond(f"question {turn}", logits_processor=_scripted(chat))
    prompt_tokens = len(chat.processor.encode(chat.processor.build_prompt("next", history=chat.history)))
    limit = prompt_tokens + 40  # every turn fits beside the default max_new_tokens=40, not beside 60
    chat.model.config.get_text_config().max_position_embeddings = limit
    reply = chat.respond("next", max_new_tokens=60, logits_processor=_scripted(chat))
    assert len(chat.processor.encode(reply.prompt)) + 60 <= limit
    assert chat.history[0][0] != "question 0"


def test_history_keeps_the_answer_without_the_tokenizers_eos(chat):
    answer = chat.processor.encode("[ta] fine", add_special_tokens=False) + [chat.processor.tokenizer.eos_token_id]
    reply = chat.respond("how are you", logits_processor=LogitsProcessorList([ScriptedAnswer(answer)]))
    assert reply.response.text == "fine" and chat.history[-1] == ("how are you", "[ta] fine")


def test_an_abandoned_stream_stops_generating(chat):
    chat.model.config.get_text_config().max_position_embeddings = 100_000
    endless = LogitsProcessorList([ScriptedAnswer(chat.processor.encode(" hello", add_special_tokens=False))])
    events = chat.stream("talk forever", max_new_tokens=50_000, logits_processor=endless)
    assert next(events).text
    worker = next(t for t in threading.enumerate() if t.name == GENERATION_THREAD)
    events.close()
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_speech_input_needs_a_unit_tokenizer(tiny_speechgpt):
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    with pytest.raises(ValueError, match="unit tokenizer"):
        SpeechGPTChat(model, processor).respond(audio=_speech(), sampling_rate=16000)


def test_a_saved_system_can_be_moved_and_loaded_from_another_directory(chat, tmp_path, monkeypatch):
    import json
    import shutil

    system = tmp_path / "system"
    chat.unit_tokenizer.save_pretrained(system / "units")
    chat.vocoder.save_pretrained(system / "lm" / "vocoder")
    chat.model.config.unit_tokenizer_repo = str(system / "units")
    chat.model.config.vocoder_repo = str(system / "lm" / "vocoder")
    chat.model.save_pretrained(system / "lm")
    chat.processor.save_pretrained(system / "lm")
    stored = json.loads((system / "lm" / "config.json").read_text())
    assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "./vocoder")

    moved = tmp_path / "elsewhere" / "system"
    shutil.copytree(system, moved)
    shutil.rmtree(system)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    loaded = SpeechGPTChat.from_pretrained("../elsewhere/system/lm")
    assert loaded.unit_tokenizer is not None and loaded.vocoder is not None
    reply = loaded.respond(audio=_speech(), sampling_rate=16000, logits_processor=_scripted(loaded))
    assert reply.response.units == [3, 4, 4, 9, 12, 1] and reply.waveform is not None


def test_hub_ids_and_far_away_folders_are_stored_as_they_are(chat, tmp_path):
    config = chat.model.config
    config.unit_tokenizer_repo, config.vocoder_repo = "someone/units", str(tmp_path / "a" / "b" / "vocoder")
    (tmp_path / "a" / "b" / "vocoder").mkdir(parents=True)
    config.save_pretrained(tmp_path / "x" / "y" / "z" / "lm")
    stored = config.from_pretrained(tmp_path / "x" / "y" / "z" / "lm")
    assert stored.unit_tokenizer_repo == "someone/units" == stored.resolve_component_path("unit_tokenizer_repo")
    assert stored.vocoder_repo == str((tmp_path / "a" / "b" / "vocoder").resolve())
    stored.vocoder_repo = "../gone"
    with pytest.raises(FileNotFoundError, match="vocoder_repo"):
        stored.resolve_component_path("vocoder_repo", model_dir=tmp_path)


class FavourUnits(LogitsProcessor):
    """Stands in for a young model that writes unit tokens everywhere."""

    def __init__(self, processor) -> None:
        self.units = slice(processor.unit_token_offset, processor.unit_token_offset + processor.num_units)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.units] += 100.0
        return scores


def test_unit_tokens_stay_inside_spans_unless_the_constraint_is_off(chat):
    leaks = "outside the spoken answer's unit span"
    favour = LogitsProcessorList([FavourUnits(chat.processor)])
    constrained = chat.respond(text="hello there", logits_processor=favour)
    assert chat.unit_span is not None and not [p for p in constrained.response.problems if leaks in p]
    free = SpeechGPTChat(chat.model, chat.processor, generation_kwargs={"max_new_tokens": 40}, constrain_units=False)
    assert free.unit_span is None
    assert [p for p in free.respond(text="hello there", logits_processor=favour).response.problems if leaks in p]


def test_a_multi_speaker_vocoder_speaks_with_its_first_voice_unless_told(chat):
    torch.manual_seed(0)
    voices = UnitHiFiGANVocoder(
        UnitHiFiGANConfig(
            num_units=NUM_UNITS,
            num_speakers=2,
            speaker_embed_dim=8,
            unit_embed_dim=16,
            duration_predictor_hidden_dim=16,
            upsample_initial_channel=32,
            upsample_rates=[5, 4, 4, 4],
            upsample_kernel_sizes=[11, 8, 8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
        )
    ).eval()
    voices.config.speaker_names = ["piper:joe", "espeak:en-us"]
    assert SpeechGPTChat(chat.model, chat.processor, vocoder=voices).speaker_id == 0
    assert SpeechGPTChat(chat.model, chat.processor, vocoder=voices, speaker_id="espeak:en-us").speaker_id == 1
    with pytest.raises(ValueError, match="no voice 'nobody'; its voices are"):
        SpeechGPTChat(chat.model, chat.processor, vocoder=voices, speaker_id="nobody")
    with pytest.raises(ValueError, match="outside 0..1"):
        SpeechGPTChat(chat.model, chat.processor, vocoder=voices, speaker_id=2)
    with pytest.raises(ValueError, match="single voice"):
        SpeechGPTChat(chat.model, chat.processor, vocoder=chat.vocoder, speaker_id=0)
    reply = SpeechGPTChat(chat.model, chat.processor, vocoder=voices).respond(
        text="hi", logits_processor=_scripted(chat)
    )
    assert reply.waveform is not None and len(reply.waveform) > 0
