"""SpeechGPTProcessor with audio: the chat template renders what build_prompt builds, audio becomes unit ids, the
unit tokenizer and vocoder travel as pointers through save/AutoProcessor, and decode_response voices answers."""

import json
import shutil

import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoProcessor

from speechgpt_hf import SpeechGPTProcessor, format_cross_modal_instruction, units_to_string
from speechgpt_hf.data.rows import make_turn, render_row, row_messages
from speechgpt_hf.models.speechgpt import AUDIO_PLACEHOLDER, SpeechGPTSpokenResponse
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

NUM_UNITS = 50


def _speech(seconds: float = 0.6, pitch: float = 220.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * pitch * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def _vocoder(**overrides) -> UnitHiFiGANVocoder:
    torch.manual_seed(0)
    sizes = dict(
        num_units=NUM_UNITS,
        unit_embed_dim=16,
        duration_predictor_hidden_dim=16,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 4, 4],
        upsample_kernel_sizes=[11, 8, 8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    return UnitHiFiGANVocoder(UnitHiFiGANConfig(**{**sizes, **overrides})).eval()


@pytest.fixture
def processor(tiny_speechgpt):
    _, text_only = tiny_speechgpt(num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    return SpeechGPTProcessor(
        text_only.tokenizer,
        num_units=NUM_UNITS,
        system_prompt="Be brief.\n",
        audio_tokenizer=units,
        vocoder=_vocoder(),
    )


def _units(processor, audio) -> str:
    return units_to_string(processor.audio_tokenizer.encode(audio, sampling_rate=16000).units)


def _user(*items, **keys) -> dict:
    return {"role": "user", "content": list(items), **keys}


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def _check_renders_as(processor, messages, expected_prompt, audio=(), **template_kwargs):
    """The template's text (audio placeholders filled with the audio's units) and ids both equal build_prompt's."""
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, **template_kwargs)
    for item in audio:
        rendered = rendered.replace(AUDIO_PLACEHOLDER, _units(processor, item), 1)
    assert rendered == expected_prompt
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", **template_kwargs
    )
    assert inputs["input_ids"][0].tolist() == processor.encode(expected_prompt)
    assert inputs["attention_mask"].all()


def test_cross_modal_asr_and_tts_requests_render_as_build_prompt(processor, tmp_path):
    audio = _speech()
    soundfile.write(tmp_path / "question.wav", audio, 16000)
    expected = processor.build_prompt(
        format_cross_modal_instruction("Transcribe the speech.", _units(processor, audio))
    )
    for item in ({"type": "audio", "audio": audio}, {"type": "audio", "path": str(tmp_path / "question.wav")}):
        _check_renders_as(processor, [_user(_text("Transcribe the speech. "), item)], expected, audio=[audio])
    marked = _user(_text("Transcribe the speech. This is input:"), {"type": "audio", "audio": audio})
    _check_renders_as(processor, [marked], expected, audio=[audio])
    tts = [_user(_text("Read this aloud."), _text("hello world"))]
    _check_renders_as(
        processor, tts, processor.build_prompt(format_cross_modal_instruction("Read this aloud.", "hello world"))
    )


@pytest.mark.parametrize("output_modality", ["speech", "text"])
def test_chain_of_modality_requests_render_as_build_prompt(processor, output_modality):
    audio = _speech()
    spoken = [_user({"type": "audio", "audio": audio})]
    expected = processor.build_prompt(_units(processor, audio), output_modality=output_modality)
    _check_renders_as(processor, spoken, expected, audio=[audio], output_modality=output_modality)
    written = [_user(_text("Name a red fruit."))]
    expected = processor.build_prompt("Name a red fruit.", output_modality=output_modality)
    _check_renders_as(processor, written, expected, output_modality=output_modality)
    plain = processor.build_prompt("Name a red fruit.")
    _check_renders_as(processor, [{"role": "user", "content": "Name a red fruit."}], plain)


def test_multi_turn_history_and_system_prompt_render_as_build_prompt(processor):
    first, second = _speech(pitch=200.0), _speech(pitch=300.0)
    messages = [
        _user(_text("Transcribe the speech."), {"type": "audio", "audio": first}),
        {"role": "assistant", "content": [_text("hello there")]},
        _user(_text("What is two plus two?")),
        {"role": "assistant", "content": "[ta] four"},
        _user({"type": "audio", "audio": second}),
    ]
    history = [
        (format_cross_modal_instruction("Transcribe the speech.", _units(processor, first)), "hello there"),
        ("What is two plus two?", "[ta] four"),
    ]
    expected = processor.build_prompt(_units(processor, second), history=history, output_modality="speech")
    assert expected.startswith("Be brief.\n")  # the processor's own system prompt
    _check_renders_as(processor, messages, expected, audio=[first, second], output_modality="speech")
    system = [{"role": "system", "content": [_text("You are terse.\n")]}]
    processor.system_prompt = "You are terse.\n"
    expected_with_system = processor.build_prompt(_units(processor, second), history=history, output_modality="speech")
    processor.system_prompt = "Be brief.\n"
    _check_renders_as(
        processor, system + messages, expected_with_system, audio=[first, second], output_modality="speech"
    )


def test_a_speechinstruct_row_is_the_templates_rendering_of_its_conversation(processor):
    turns = [
        make_turn("asr", instruction="Transcribe the speech.", input_units=[3, 1, 4], output_text="pie"),
        make_turn("text_to_speech", input_text="Say hi.", output_text="hi", output_units=[7, 7, 2]),
        make_turn("speech_to_text", input_units=[9, 8], input_text="what is two plus two", output_text="four"),
    ]
    row = render_row("row-0", turns, system_prompt="Be brief.\n")
    messages = [{"role": "system", "content": "Be brief.\n"}, *row_messages(row)]
    assert processor.apply_chat_template(messages) == row["prompt"] + row["completion"] == row["text"]
    assert processor.apply_chat_template(messages[:-1], add_generation_prompt=True) == row["prompt"]
    tts_turn = make_turn("tts", instruction="Read this aloud.", input_text="hi", output_units=[1, 2])
    tts = render_row("row-1", [tts_turn], system_prompt="Be brief.\n")
    assert processor.apply_chat_template(row_messages(tts)) == tts["text"]  # the processor's system prompt


def test_audio_goes_straight_to_the_ids_of_its_units(processor):
    first, second = _speech(pitch=200.0), _speech(pitch=300.0)
    prompt = f"Compare {AUDIO_PLACEHOLDER} with {AUDIO_PLACEHOLDER} please"
    inputs = processor(text=prompt, audio=[first, second], sampling_rate=16000)
    filled = f"Compare {_units(processor, first)} with {_units(processor, second)} please"
    assert inputs["input_ids"][0] == processor.tokenizer(filled)["input_ids"]
    alone = processor(audio=first, sampling_rate=16000)
    assert alone["input_ids"][0] == processor.encode(_units(processor, first))
    with pytest.raises(ValueError, match="2 audio inputs but 1"):
        processor(text=f"Say {AUDIO_PLACEHOLDER}", audio=[first, second], sampling_rate=16000)
    with pytest.raises(ValueError, match="no `audio` was given"):
        processor(text=f"Say {AUDIO_PLACEHOLDER}")


def test_a_processor_without_a_unit_tokenizer_reads_text_and_names_the_fix_for_audio(tiny_speechgpt):
    _, text_only = tiny_speechgpt(num_units=NUM_UNITS)
    assert text_only.audio_tokenizer is None and text_only("hello")["input_ids"]
    with pytest.raises(ValueError, match="audio_tokenizer=AutoModel.from_pretrained"):
        text_only(audio=_speech(), sampling_rate=16000)
    with pytest.raises(ValueError, match="audio_tokenizer=AutoModel.from_pretrained"):
        text_only.apply_chat_template([_user({"type": "audio", "audio": _speech()})], tokenize=True)
    with pytest.raises(ValueError, match="has 20 units but this processor has 50"):
        SpeechGPTProcessor(text_only.tokenizer, num_units=NUM_UNITS, vocoder=_vocoder(num_units=20))


def test_template_refuses_requests_it_cannot_render(processor):
    both = [_user(_text("Transcribe this."), {"type": "audio", "audio": _speech()})]
    with pytest.raises(Exception, match="one instruction, spoken or written"):
        processor.apply_chat_template(both, output_modality="text")
    with pytest.raises(Exception, match="'speech' or 'text', got video"):
        processor.apply_chat_template([_user(_text("hi"))], output_modality="video")
    with pytest.raises(Exception, match="not image"):
        processor.apply_chat_template([_user({"type": "image", "url": "x.png"})])


def test_the_unit_tokenizer_and_vocoder_travel_as_pointers_through_auto_processor(processor, tmp_path, local_hub):
    system = tmp_path / "system"
    processor.audio_tokenizer.save_pretrained(system / "units")
    processor.vocoder.save_pretrained(system / "vocoder")
    with pytest.raises(ValueError, match="no repo or folder to point to"):
        processor.save_pretrained(system / "lm")
    processor.audio_tokenizer = SpeechUnitTokenizer.from_pretrained(system / "units")
    processor.vocoder = UnitHiFiGANVocoder.from_pretrained(system / "vocoder")
    processor.save_pretrained(system / "lm")
    stored = json.loads((system / "lm" / "processor_config.json").read_text())
    assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "../vocoder")
    assert (system / "lm" / "chat_template.jinja").read_text() == processor.chat_template

    moved = tmp_path / "elsewhere"
    shutil.copytree(system, moved)
    shutil.rmtree(system)
    loaded = AutoProcessor.from_pretrained(moved / "lm")
    assert isinstance(loaded, SpeechGPTProcessor) and loaded.system_prompt == "Be brief.\n"
    assert isinstance(loaded.audio_tokenizer, SpeechUnitTokenizer) and isinstance(loaded.vocoder, UnitHiFiGANVocoder)
    audio = _speech()
    messages = [_user({"type": "audio", "audio": audio})]
    render = dict(tokenize=True, return_dict=True, add_generation_prompt=True)
    assert loaded.apply_chat_template(messages, **render) == processor.apply_chat_template(messages, **render)

    loaded.audio_tokenizer = SpeechUnitTokenizer.from_pretrained(local_hub(moved / "units", "someone/units"))
    loaded.vocoder = None
    loaded.save_pretrained(tmp_path / "hub_lm")
    stored = json.loads((tmp_path / "hub_lm" / "processor_config.json").read_text())
    assert stored["unit_tokenizer_repo"] == "someone/units" and "vocoder_repo" not in stored
    again = AutoProcessor.from_pretrained(tmp_path / "hub_lm")
    assert again.audio_tokenizer.name_or_path == "someone/units" and again.vocoder is None


def test_decode_response_gives_the_text_fields_and_the_waveform(processor):
    answer = processor.encode("[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><eosp><eoa>", add_special_tokens=False)
    spoken = processor.decode_response(answer)
    assert isinstance(spoken, SpeechGPTSpokenResponse)
    assert (spoken.transcript, spoken.text, spoken.units, spoken.complete) == ("hello", "hi there", [3, 4, 4, 9], True)
    np.testing.assert_allclose(spoken.waveform, processor.vocoder.synthesize([3, 4, 4, 9]).numpy())
    assert spoken.sampling_rate == processor.vocoder.config.sampling_rate
    text_only = processor.encode("[ta] fine<eoa>", add_special_tokens=False)
    batch = processor.decode_response(torch.tensor([text_only, text_only]))
    assert [b.text for b in batch] == ["fine", "fine"] and batch[0].waveform is None
    assert processor.decode(answer, skip_special_tokens=False).startswith("[tq] hello")  # decode stays text
    processor.vocoder = None
    with pytest.raises(ValueError, match="no vocoder to voice them"):
        processor.decode_response(answer)


@pytest.fixture
def saved_system(tiny_speechgpt, tmp_path):
    """`saved_system(own_pointers)` -> (LM folder, answer ids with units): a tiny system laid out as the quickstart
    writes it, moved to another folder after saving. The processor names its components itself, or (False) leaves
    that to the model config beside it."""

    def save(own_pointers: bool = True):
        model, text_only = tiny_speechgpt(num_units=NUM_UNITS)
        system = tmp_path / "system"
        SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).save_pretrained(
            system / "unit-tokenizer"
        )
        _vocoder().save_pretrained(system / "vocoder")
        model.config.unit_tokenizer_repo = str(system / "unit-tokenizer")
        model.config.vocoder_repo = str(system / "vocoder")
        lm = system / "lm" / "chain_of_modality"
        model.save_pretrained(lm)
        if own_pointers:
            text_only.use_components_of(model.config)
        text_only.save_pretrained(lm)
        stored = json.loads((lm / "processor_config.json").read_text())
        expected = ("../../unit-tokenizer", "../../vocoder") if own_pointers else (None, None)
        assert (stored.get("unit_tokenizer_repo"), stored.get("vocoder_repo")) == expected
        shutil.copytree(system, tmp_path / "elsewhere")
        shutil.rmtree(system)
        answer = text_only.encode("[tq] hello; [ta] hi; [ua] <sosp><3><4><4><9><eosp><eoa>", add_special_tokens=False)
        return tmp_path / "elsewhere" / "lm" / "chain_of_modality", answer

    return save


@pytest.mark.parametrize("own_pointers", [True, False], ids=["processor-pointers", "config-pointers"])
def test_a_moved_system_hears_and_speaks_through_auto_processor_loading_each_component_when_first_used(
    saved_system, own_pointers, tmp_path, monkeypatch, load_spy
):
    lm, answer = saved_system(own_pointers)
    system, audio = (tmp_path / "elsewhere").resolve(), _speech()
    units = SpeechUnitTokenizer.from_pretrained(system / "unit-tokenizer").encode(audio, sampling_rate=16000).units
    voiced = UnitHiFiGANVocoder.from_pretrained(system / "vocoder").synthesize([3, 4, 4, 9]).numpy()
    unit_loads, vocoder_loads = load_spy(SpeechUnitTokenizer), load_spy(UnitHiFiGANVocoder)
    monkeypatch.chdir(lm.parent)
    loaded = AutoProcessor.from_pretrained("chain_of_modality")
    monkeypatch.chdir(tmp_path)  # relative pointers were fixed against the folder at loading time
    pointers = [loaded.unit_tokenizer_repo, loaded.vocoder_repo]
    assert pointers == [str(system / "unit-tokenizer"), str(system / "vocoder")]
    text = [_user(_text("Say hello."))]
    assert loaded("hello")["input_ids"] and loaded.apply_chat_template(text, tokenize=True, add_generation_prompt=True)
    assert loaded.parse(answer).units == [3, 4, 4, 9]
    assert unit_loads == [] and vocoder_loads == []  # text-only work loads no speech weights

    heard = loaded(audio=audio, sampling_rate=16000)["input_ids"][0]
    assert heard == loaded.encode(units_to_string(units))
    assert unit_loads == [str(system / "unit-tokenizer")] and vocoder_loads == []
    np.testing.assert_allclose(loaded.decode_response(answer).waveform, voiced)
    loaded.decode_response(answer)
    loaded(audio=audio, sampling_rate=16000)
    assert unit_loads == [str(system / "unit-tokenizer")] and vocoder_loads == [str(system / "vocoder")]  # once each


def test_components_set_by_hand_win_over_pointers_and_loaded_ones_are_checked(saved_system, tmp_path, load_spy):
    lm, answer = saved_system()
    vocoder_loads = load_spy(UnitHiFiGANVocoder)
    loaded = AutoProcessor.from_pretrained(lm)
    mine = _vocoder(upsample_initial_channel=16)
    loaded.vocoder = mine
    assert loaded.vocoder is mine and vocoder_loads == []
    np.testing.assert_allclose(loaded.decode_response(answer).waveform, mine.synthesize([3, 4, 4, 9]).numpy())
    assert SpeechGPTProcessor.from_pretrained(lm, vocoder=mine).vocoder is mine and vocoder_loads == []

    _vocoder(num_units=20).save_pretrained(tmp_path / "small-vocoder")
    loaded.vocoder_repo = str(tmp_path / "small-vocoder")  # a new pointer replaces the vocoder set by hand
    with pytest.raises(ValueError, match="has 20 units but this processor has 50"):
        loaded.decode_response(answer)
    loaded.vocoder = None
    assert loaded.vocoder is None and loaded.vocoder_repo is None
    with pytest.raises(ValueError, match="no vocoder to voice them"):
        loaded.decode_response(answer)
