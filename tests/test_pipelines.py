"""transformers.pipeline(...) runs SpeechGPT: every task, every input form, stock output shapes, clear errors."""

import numpy as np
import pytest
import soundfile
from transformers import LogitsProcessorList, pipeline
from transformers.pipelines.text_to_audio import TextToAudioPipeline

import speechgpt_hf  # noqa: F401  (registers the pipelines)
from speechgpt_hf import AudioInputError, add_speech_units
from speechgpt_hf.models.speechgpt.prompt_format import format_chain_of_modality_instruction
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.pipelines import (
    SpeechGPTAnyToAnyPipeline,
    SpeechGPTTextToAudioPipeline,
    SpeechToSpeechPipeline,
    SpeechToTextPipeline,
)
from speechgpt_hf.testing_utils import ScriptedAnswer, build_tiny_causal_lm, build_tiny_tokenizer, build_tiny_vocoder

NUM_UNITS = 50
UNITS = [3, 4, 4, 9, 12, 1]
SPOKEN = "[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><12><1><eosp><eoa>"


def _tone(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def system():
    """A tiny SpeechGPT (model, processor), MFCC unit tokenizer and vocoder."""
    from speechgpt_hf import SpeechGPTProcessor

    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    return model.eval(), SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS), units, build_tiny_vocoder(NUM_UNITS)


@pytest.fixture(scope="module")
def pipes(system):
    model, processor, units, vocoder = system
    parts = dict(processor=processor, unit_tokenizer=units, vocoder=vocoder, device="cpu")
    pipes = {
        task: pipeline(task, model=model, **parts) for task in ("speech-to-text", "speech-to-speech", "any-to-any")
    }
    # Like every text-to-audio model passed as an object, it needs its tokenizer (the processor is optional there).
    pipes["text-to-audio"] = pipeline("text-to-audio", model=model, tokenizer=processor.tokenizer, **parts)
    return pipes


def _script(processor, answer: str) -> ScriptedAnswer:
    return ScriptedAnswer(processor.encode(answer, add_special_tokens=False) + [processor.tokenizer.eos_token_id])


def _run(pipe, inputs, answer: str, **kwargs):
    """Calls `pipe` with generation scripted to `answer`; returns the output and the prompt's ids."""
    scripted = _script(pipe.processor, answer)
    output = pipe(inputs, logits_processor=LogitsProcessorList([scripted]), **kwargs)
    return output, scripted.prompt_ids


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    soundfile.write(path, _tone(), 16000)
    return path


def _input_forms(path):
    """The same recording as each input form the stock audio pipelines take: (inputs, call keywords)."""
    wave = _tone()
    return {
        "path": (str(path), {}),
        "array+rate": (wave, {"sampling_rate": 16000}),
        "array at the model rate": (wave, {}),
        "dict": ({"array": wave, "sampling_rate": 16000}, {}),
        "dict raw": ({"raw": wave, "sampling_rate": 16000}, {}),
        "dict at 8 kHz": ({"array": _tone(rate=8000), "sampling_rate": 8000}, {}),
    }


def _units_ids(pipe, audio, rate=16000):
    return pipe.processor.units_to_ids(pipe.chat.unit_tokenizer.encode(audio, sampling_rate=rate).units)


def _contains(sequence, part) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def test_tasks_resolve_to_the_speechgpt_pipelines(pipes):
    assert isinstance(pipes["speech-to-text"], SpeechToTextPipeline)
    assert isinstance(pipes["speech-to-speech"], SpeechToSpeechPipeline)
    assert isinstance(pipes["text-to-audio"], SpeechGPTTextToAudioPipeline)
    assert isinstance(pipes["any-to-any"], SpeechGPTAnyToAnyPipeline)


@pytest.mark.parametrize("form", list(_input_forms("x")))
def test_speech_to_text_transcribes_every_input_form(pipes, recording, form):
    pipe = pipes["speech-to-text"]
    inputs, kwargs = _input_forms(recording)[form]
    output, prompt = _run(pipe, inputs, "hello there<eoa>", **kwargs)
    assert output == {"text": "hello there"}
    rate = 8000 if form == "dict at 8 kHz" else 16000
    expected_units = _units_ids(pipe, _tone(rate=rate), rate)
    assert _contains(prompt, expected_units)  # the recording's units are in the prompt
    asr_request = pipe.processor.encode("Transcribe the recording below. This is input:", add_special_tokens=False)
    assert _contains(prompt, asr_request[1:])


def test_speech_to_text_answer_mode_asks_with_chain_of_modality_and_returns_the_transcript(pipes, recording):
    pipe = pipes["speech-to-text"]
    output, prompt = _run(pipe, str(recording), "[tq] hello; [ta] hi there<eoa>", mode="answer")
    assert output == {"text": "hi there", "transcript": "hello"}
    units = pipe.chat.unit_tokenizer.to_unit_string(pipe.chat.unit_tokenizer.encode(str(recording)))
    request = format_chain_of_modality_instruction(units, "speech", "text")
    assert pipe.processor.decode(prompt) == pipe.processor.decode(
        pipe.processor(pipe.processor.build_prompt(request))["input_ids"][0]
    )


def test_speech_to_text_takes_a_custom_instruction_and_a_list(pipes, recording):
    pipe = pipes["speech-to-text"]
    scripted = [_script(pipe.processor, "hello<eoa>") for _ in range(2)]
    outputs = [
        pipe(
            [str(recording)], instruction="Write down what the speaker says.", logits_processor=LogitsProcessorList([s])
        )
        for s in scripted
    ]
    assert outputs == [[{"text": "hello"}], [{"text": "hello"}]]
    request = pipe.processor.encode("Write down what the speaker says. This is input:", add_special_tokens=False)
    assert _contains(scripted[0].prompt_ids, request[1:])


def test_generation_keywords_reach_generate(pipes, recording):
    pipe = pipes["speech-to-text"]
    answer = "the quick brown fox jumps over the lazy dog<eoa>"
    full, _ = _run(pipe, str(recording), answer)
    short, _ = _run(pipe, str(recording), answer, max_new_tokens=3)
    via_dict, _ = _run(pipe, str(recording), answer, generate_kwargs={"max_new_tokens": 3})
    assert full["text"] == "the quick brown fox jumps over the lazy dog"
    assert short == via_dict and len(short["text"]) < len(full["text"]) and full["text"].startswith(short["text"])
    with pytest.raises(ValueError, match="given twice"):
        pipe(str(recording), max_new_tokens=3, generate_kwargs={"max_new_tokens": 4})


@pytest.mark.parametrize("form", ["path", "array+rate", "dict"])
def test_speech_to_speech_answers_in_speech(pipes, recording, form):
    pipe = pipes["speech-to-speech"]
    inputs, kwargs = _input_forms(recording)[form]
    output, prompt = _run(pipe, inputs, SPOKEN, **kwargs)
    assert set(output) == {"audio", "sampling_rate", "text", "transcript"}
    assert (output["text"], output["transcript"], output["sampling_rate"]) == ("hi there", "hello", 16000)
    assert output["audio"].dtype == np.float32 and output["audio"].ndim == 1
    np.testing.assert_allclose(output["audio"], pipe.chat.vocoder.synthesize(UNITS).numpy())
    assert "Please answer in speech." in pipe.processor.decode(prompt)


def test_speech_to_speech_without_units_in_the_answer_gives_empty_audio(pipes, recording):
    output, _ = _run(pipes["speech-to-speech"], str(recording), "[tq] hello; [ta] hi there<eoa>")
    assert output["audio"].shape == (0,) and output["text"] == "hi there"


def test_text_to_audio_reads_the_text_aloud(pipes):
    pipe = pipes["text-to-audio"]
    output, prompt = _run(pipe, "Read this sentence.", "<sosp><3><4><4><9><12><1><eosp><eoa>")
    assert set(output) == {"audio", "sampling_rate"} and output["sampling_rate"] == 16000
    np.testing.assert_allclose(output["audio"], pipe.chat.vocoder.synthesize(UNITS).numpy())
    assert "Read the following text aloud. This is input: Read this sentence." in pipe.processor.decode(prompt)


def test_text_to_audio_answer_mode_and_the_text_to_speech_alias(system):
    model, processor, units, vocoder = system
    pipe = pipeline("text-to-speech", model=model, tokenizer=processor.tokenizer, vocoder=vocoder, device="cpu")
    output, prompt = _run(pipe, "Tell me a story.", SPOKEN, mode="answer")
    np.testing.assert_allclose(output["audio"], vocoder.synthesize(UNITS).numpy())
    assert "Here is an instruction in text:" in pipe.processor.decode(prompt)


def test_any_to_any_text_and_audio_out(pipes, recording):
    pipe = pipes["any-to-any"]
    scripted = _script(pipe.processor, "[ta] hi there<eoa>")
    text = pipe(text="How are you?", logits_processor=LogitsProcessorList([scripted]))
    assert text == [{"input_text": "How are you?", "generated_text": "hi there"}]
    scripted = _script(pipe.processor, SPOKEN)
    audio = pipe(
        audio=_tone(), sampling_rate=16000, generation_mode="audio", logits_processor=LogitsProcessorList([scripted])
    )
    assert list(audio[0]) == ["input_text", "generated_audio"] and audio[0]["input_text"] is None
    np.testing.assert_allclose(audio[0]["generated_audio"], pipe.chat.vocoder.synthesize(UNITS).numpy())
    assert "Please answer in speech." in pipe.processor.decode(scripted.prompt_ids)
    scripted = _script(pipe.processor, "hello<eoa>")
    both = pipe(
        text="Transcribe this. This is input:",
        audio={"array": _tone(), "sampling_rate": 16000},
        logits_processor=LogitsProcessorList([scripted]),
    )
    assert both[0]["generated_text"] == "hello"
    assert _contains(scripted.prompt_ids, _units_ids(pipe, _tone()))


def test_a_repo_id_loads_the_model_processor_unit_tokenizer_and_vocoder(system, tmp_path, local_hub, load_spy):
    from speechgpt_hf import SpeechGPTProcessor
    from speechgpt_hf.models.unit_hifigan import UnitHiFiGANVocoder

    _, _, units, vocoder = system
    units.save_pretrained(tmp_path / "units")
    vocoder.save_pretrained(tmp_path / "vocoder")
    local_hub(tmp_path / "units", "tiny/units")
    local_hub(tmp_path / "vocoder", "tiny/vocoder")
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(
        build_tiny_causal_lm(vocab_size=len(tokenizer)),
        tokenizer,
        num_units=NUM_UNITS,
        unit_tokenizer_repo="tiny/units",
        vocoder_repo="tiny/vocoder",
    )
    model.save_pretrained(tmp_path / "lm")
    SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS).save_pretrained(tmp_path / "lm")
    repo = local_hub(tmp_path / "lm", "tiny/speechgpt")
    for task in ("speech-to-speech", "any-to-any"):
        pipe = pipeline(task, model=repo, device="cpu")
        assert pipe.chat.unit_tokenizer is not None and pipe.chat.vocoder is not None
    tts = pipeline("text-to-audio", model=repo, device="cpu")
    output, _ = _run(tts, "hello there", "<sosp><3><4><eosp><eoa>")
    np.testing.assert_allclose(output["audio"], vocoder.synthesize([3, 4]).numpy())
    vocoder_loads = load_spy(UnitHiFiGANVocoder)
    asr = pipeline("speech-to-text", model=repo, device="cpu")
    output, _ = _run(asr, _tone(), SPOKEN, mode="answer")  # an answer with units, which this task does not voice
    assert output["text"] == "hi there" and not vocoder_loads  # loads only what it needs


def test_bad_inputs_say_what_to_pass(pipes, system):
    with pytest.raises(AudioInputError, match="takes speech, and 'hello there' is not an audio file.*text-to-audio"):
        pipes["speech-to-text"]("hello there")
    with pytest.raises(AudioInputError, match="takes speech, not int"):
        pipes["speech-to-speech"](42)
    with pytest.raises(AudioInputError, match="needs its 'sampling_rate'"):
        pipes["speech-to-text"]({"array": _tone()})
    with pytest.raises(TypeError, match="takes a non-empty string, not ndarray"):
        pipes["text-to-audio"](_tone())
    with pytest.raises(TypeError, match="not chat messages.*SpeechGPTChat"):
        pipes["text-to-audio"]([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="mode='sing' is not one of"):
        pipes["speech-to-text"](_tone(), mode="sing")
    with pytest.raises(ValueError, match="no images or videos"):
        pipes["any-to-any"](text="What is this?", images="cat.png")
    with pytest.raises(ValueError, match="generation_mode='image'"):
        pipes["any-to-any"](text="Draw a cat.", generation_mode="image")
    model, processor, units, _ = system
    with pytest.raises(ValueError, match="speech-to-speech pipeline needs a vocoder: pass vocoder="):
        pipeline("speech-to-speech", model=model, processor=processor, unit_tokenizer=units, device="cpu")
    with pytest.raises(TypeError, match="runs a SpeechGPTForCausalLM, not a LlamaForCausalLM"):
        pipeline("speech-to-text", model=build_tiny_causal_lm(), processor=processor, device="cpu")


def test_other_models_still_get_the_stock_pipelines():
    from transformers import VitsConfig, VitsModel

    tokenizer = build_tiny_tokenizer()
    config = VitsConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        sampling_rate=8000,
    )
    tts = pipeline("text-to-audio", model=VitsModel(config).eval(), tokenizer=tokenizer, device="cpu")
    assert type(tts) is TextToAudioPipeline
    output = tts("hello there")
    assert output["sampling_rate"] == 8000 and output["audio"].size > 0
    for pipeline_class in (SpeechGPTTextToAudioPipeline, SpeechGPTAnyToAnyPipeline):
        for flag in ("_load_processor", "_load_tokenizer", "_load_feature_extractor", "_load_image_processor"):
            assert getattr(pipeline_class, flag) == getattr(pipeline_class.stock_pipeline, flag)
