"""SpeechGPTProcessor and the prompt formats: exact strings, direct unit mapping, tolerant parsing."""

import pytest
from transformers import AutoProcessor

from speechgpt_hf import (
    Modality,
    SpeechGPTProcessor,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    parse_response,
    string_to_units,
    units_to_string,
)
from speechgpt_hf.models.speechgpt.prompt_format import format_chain_of_modality_instruction


def test_turn_and_cross_modal_formats_are_the_papers():
    instruction = format_cross_modal_instruction("Transcribe the speech.", units_to_string([5, 17]))
    assert instruction == "Transcribe the speech. This is input: <sosp><5><17><eosp>"
    assert format_turn(instruction) == f"[Human]: {instruction} <eoh>. [SpeechGPT]: "
    assert format_turn("Hi", "Hello") == "[Human]: Hi <eoh>. [SpeechGPT]: Hello<eoa>"


FOUR_FORMATS = [
    (Modality.SPEECH, "what is two plus two", [9, 8], "[tq] what is two plus two; [ta] four; [ua] <sosp><9><8><eosp>"),
    (Modality.TEXT, "what is two plus two", None, "[tq] what is two plus two; [ta] four"),
    (Modality.SPEECH, None, [9, 8], "[ta] four; [ua] <sosp><9><8><eosp>"),
    (Modality.TEXT, None, None, "[ta] four"),
]


@pytest.mark.parametrize("output,transcript,units,expected", FOUR_FORMATS)
def test_chain_of_modality_formats_round_trip_through_parse(output, transcript, units, expected):
    response = format_chain_of_modality_response(output, "four", answer_units=units, transcript=transcript)
    assert response == expected
    parsed = parse_response(format_turn("q", response), num_units=50, strict=True)
    assert (parsed.transcript, parsed.text, parsed.units) == (transcript, "four", units)
    assert parsed.complete and not parsed.problems


def test_speech_answer_needs_units():
    with pytest.raises(ValueError, match="answer_units"):
        format_chain_of_modality_response("speech", "four")


@pytest.mark.parametrize(
    "generated",
    [
        "[SpeechGPT]: hello there; [ta] hi; [ua] <sosp><1><2><eosp><eoa>",
        "[SpeechGPT] : hello there ; [ta] hi ; [ua] <sosp> <1> <2> <eosp> <eoa>",  # the original slow tokenizer
        "prefix [Human]: <sosp><3><eosp> <eoh>. [SpeechGPT] :hello there;[ta]hi;[ua]<sosp><1> <2><eosp></s>",
    ],
)
def test_parse_tolerates_the_whitespace_of_the_original_tokenizer(generated):
    parsed = parse_response(generated, strict=True)
    assert (parsed.transcript, parsed.text, parsed.units) == ("hello there", "hi", [1, 2])


def test_parse_reports_cut_off_and_out_of_range_answers_instead_of_guessing():
    cut = parse_response("[ta] hi; [ua] <sosp><1><2><3", num_units=10)
    assert cut.units == [1, 2] and not cut.complete
    assert any("not closed" in p for p in cut.problems) and any("no end marker" in p for p in cut.problems)
    wide = parse_response("[ua] <sosp><1><12><eosp><eoa>", num_units=10)
    assert wide.units == [1] and any("12" in p for p in wide.problems)
    with pytest.raises(ValueError, match="Malformed"):
        parse_response("[ua] <sosp><1><12><eosp><eoa>", num_units=10, strict=True)
    assert parse_response("just text<eoa>").text == "just text"
    with pytest.raises(ValueError, match="No <sosp>"):
        string_to_units("no units here")


@pytest.mark.parametrize(
    "generated,transcript,text,units",
    [
        ("[ta] The capital is France<29><32><7><eoa>", None, "The capital is France", None),
        ("hello <5> there; [ta] France<29><32>; [ua] <sosp><1><eosp><eoa>", "hello there", "France", [1]),
        ("[ta] Paris; [ua] <sosp><1><2><eosp><3><4><eoa>", None, "Paris", [1, 2]),
    ],
)
def test_parse_reports_unit_tokens_that_leak_outside_a_span(generated, transcript, text, units):
    parsed = parse_response(generated, num_units=50)
    assert (parsed.transcript, parsed.text, parsed.units) == (transcript, text, units)
    assert any("outside" in problem for problem in parsed.problems), parsed.problems
    with pytest.raises(ValueError, match="outside"):
        parse_response(generated, num_units=50, strict=True)


def test_direct_unit_mapping_gives_the_ids_of_string_tokenisation(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=50)
    prompts = [
        processor.build_prompt(format_cross_modal_instruction("Read this aloud.", "hello world")),
        processor.build_prompt("Repeat <sosp><0><49><7><7><eosp> please", history=[("hi", "[ta] hey")]),
        "<sosp><1><eosp>text<sosp><2><3><eosp>",
    ]
    for prompt in prompts:
        assert processor.encode(prompt) == processor.tokenizer(prompt)["input_ids"]
    batch = processor(prompts, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 3 and batch["attention_mask"].sum(1).tolist() == [
        len(processor.encode(p)) for p in prompts
    ]


def test_build_prompt_asks_for_the_wanted_output_modality(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=50)
    spoken = units_to_string([3, 1, 4])
    free = processor.build_prompt(spoken)
    as_speech, as_text = (processor.build_prompt(spoken, output_modality=m) for m in ("speech", Modality.TEXT))
    assert free.endswith(f"[Human]: {spoken} <eoh>. [SpeechGPT]:")
    assert len({free, as_speech, as_text}) == 3
    assert as_speech.endswith(format_turn(format_chain_of_modality_instruction(spoken, "speech", "speech")).rstrip())
    assert as_text.endswith(format_turn(format_chain_of_modality_instruction(spoken, "speech", "text")).rstrip())
    written = processor.build_prompt("Name a red fruit.", history=[("hi", "[ta] hey")], output_modality="speech")
    assert written.endswith(
        format_turn(format_chain_of_modality_instruction("Name a red fruit.", "text", "speech")).rstrip()
    )
    assert "[Human]: hi <eoh>. [SpeechGPT]: [ta] hey<eoa> " in written
    assert processor.encode(as_speech) == processor.tokenizer(as_speech)["input_ids"]
    cross_modal = format_cross_modal_instruction("Transcribe this.", spoken)
    assert processor.build_prompt(cross_modal).endswith(f"[Human]: {cross_modal} <eoh>. [SpeechGPT]:")
    with pytest.raises(ValueError, match="output_modality must be"):
        processor.build_prompt(spoken, output_modality="image")


def test_units_ids_round_trip_and_range_errors(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=50)
    ids = processor.units_to_ids([0, 49, 3])
    assert ids == [processor.sosp_token_id, 300, 349, 303, processor.eosp_token_id]
    assert processor.ids_to_units(ids) == [0, 49, 3]
    with pytest.raises(ValueError, match="outside 0..49"):
        processor.units_to_ids([50])
    with pytest.raises(ValueError, match="outside 0..49"):
        processor.units_to_ids([-1])


def test_parse_generated_ids_stops_at_the_tokenizer_eos(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=50)
    answer = processor.encode("[ta] ok; [ua] <sosp><4><5><eosp>", add_special_tokens=False)
    parsed = processor.parse(answer + [processor.tokenizer.eos_token_id] + processor.units_to_ids([9]))
    assert (parsed.text, parsed.units, parsed.complete) == ("ok", [4, 5], True)


def test_processor_needs_an_expanded_tokenizer():
    from speechgpt_hf.testing_utils import build_tiny_tokenizer

    with pytest.raises(ValueError, match="add_speech_units"):
        SpeechGPTProcessor(build_tiny_tokenizer())


def test_processor_saves_its_settings(tiny_speechgpt, tmp_path):
    _, processor = tiny_speechgpt(num_units=50)
    processor.system_prompt = "Be brief.\n"
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SpeechGPTProcessor)
    assert (loaded.num_units, loaded.system_prompt, loaded.unit_token_offset) == (50, "Be brief.\n", 300)


def test_a_folder_saved_right_after_expansion_loads_its_processor_and_answers(tmp_path):
    """No processor file was saved: K comes from the model config beside the tokenizer, not the default 1000."""
    from transformers import AutoModelForCausalLM, LogitsProcessorList

    from speechgpt_hf import SpeechGPTChat, add_speech_units
    from speechgpt_hf.testing_utils import ScriptedAnswer, build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=200)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(processor, SpeechGPTProcessor) and processor.num_units == 200
    assert processor.ids_to_units(processor.units_to_ids([0, 199])) == [0, 199]
    chat = SpeechGPTChat(AutoModelForCausalLM.from_pretrained(tmp_path), processor)
    answer = processor.encode("[ta] hi there; [ua] <sosp><199><7><eosp><eoa>", add_special_tokens=False)
    reply = chat.respond("hello", logits_processor=LogitsProcessorList([ScriptedAnswer(answer)]), max_new_tokens=40)
    assert (reply.response.text, reply.response.units) == ("hi there", [199, 7])


WORDS = "the quick brown fox jumps over a lazy dog please repeat say read this aloud answer hello world".split()


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    """A tiny SentencePiece BPE model (byte fallback, like Llama's) trained on generated sentences."""
    import random

    spm = pytest.importorskip("sentencepiece")
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(400)]
    folder = tmp_path_factory.mktemp("sentencepiece")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    return folder


def _qwen_style_tokenizer():
    """A Qwen2 tokenizer (regex split + byte-level BPE) over the vocabulary of the tiny test BPE."""
    import json

    from transformers import Qwen2Tokenizer

    from speechgpt_hf.testing_utils import build_tiny_tokenizer

    model = json.loads(build_tiny_tokenizer().backend_tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return Qwen2Tokenizer(vocab=model["vocab"], merges=merges, unk_token="<unk>", eos_token="</s>", pad_token="<pad>")


def _tokenizer(kind, folder):
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    if kind == "qwen":
        return _qwen_style_tokenizer()
    if kind.startswith("sentencepiece"):  # the slow, SentencePiece-run tokenizer of the original release
        return SentencePieceBackend(
            vocab_file=str(folder / "tokenizer.model"),
            legacy=kind.endswith("legacy"),
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
        )
    return LlamaTokenizer.from_pretrained(folder, legacy=kind.endswith("legacy"))


TEXT_AROUND_UNITS = [
    "Repeat <sosp><1><2><eosp> please",
    "<sosp><1><eosp>text after a span",
    "say<sosp><3><eosp>",
    "Read this aloud:\n<sosp><4><eosp>\nhello world",
    "two <sosp><5><eosp> <sosp><6><eosp>spans",
]


@pytest.mark.parametrize("kind", ["llama", "llama-legacy", "sentencepiece", "sentencepiece-legacy", "qwen"])
def test_text_around_unit_spans_tokenises_as_the_whole_string(kind, sentencepiece_model):
    from speechgpt_hf import add_speech_units
    from speechgpt_hf.testing_utils import build_tiny_causal_lm

    tokenizer = _tokenizer(kind, sentencepiece_model)
    _, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=50)
    processor = SpeechGPTProcessor(tokenizer, num_units=50)
    prompts = TEXT_AROUND_UNITS + [processor.build_prompt(TEXT_AROUND_UNITS[0], history=[("hi", "[ta] hey")])]
    for prompt in prompts:
        assert processor.encode(prompt) == tokenizer(prompt)["input_ids"], prompt
