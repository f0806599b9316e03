"""Chain-of-modality instructions: each of the four names its input and wanted output modality, reads back,
and leaves the answer format (and its parsing) as it was."""

import itertools

import pytest

from speechgpt_hf.models.speechgpt.prompt_format import (
    Modality,
    format_chain_of_modality_instruction,
    format_chain_of_modality_response,
    format_turn,
    parse_chain_of_modality_instruction,
    parse_response,
    units_to_string,
)

SPOKEN = units_to_string([4, 8, 15])
WRITTEN = "What is two plus two?"
PAIRS = list(itertools.product(Modality, Modality))


def _instruction(source: Modality, target: Modality) -> str:
    return format_chain_of_modality_instruction(SPOKEN if source is Modality.SPEECH else WRITTEN, source, target)


def test_the_four_instructions_differ_and_name_their_modalities():
    prompts = {pair: _instruction(*pair) for pair in PAIRS}
    assert len(set(prompts.values())) == 4
    for (source, target), prompt in prompts.items():
        first, second = prompt.split("\n")
        assert first == f"Here is an instruction in {source.value}: {SPOKEN if source is Modality.SPEECH else WRITTEN}"
        assert second.startswith(f"Please answer in {target.value}. Go step by step:")
        assert ("write down the words you hear" in second) == (source is Modality.SPEECH)
        assert ("aloud" in second) == (target is Modality.SPEECH)
        assert "this is input" not in prompt.lower()  # would read back as a cross-modal ASR/TTS request


@pytest.mark.parametrize("source,target", PAIRS)
def test_instructions_read_back_even_with_other_whitespace(source, target):
    prompt = _instruction(source, target)
    content = SPOKEN if source is Modality.SPEECH else WRITTEN
    assert parse_chain_of_modality_instruction(prompt) == (content, source, target)
    assert parse_chain_of_modality_instruction(" " + prompt.replace(" ", "  ").replace("\n", " ")) == (
        content.replace(" ", "  "),
        source,
        target,
    )


def test_other_turns_are_not_chain_of_modality_instructions():
    assert parse_chain_of_modality_instruction(SPOKEN) is None
    assert parse_chain_of_modality_instruction("Transcribe this. This is input: " + SPOKEN) is None
    assert parse_chain_of_modality_instruction(_instruction(Modality.TEXT, Modality.TEXT) + " And be quick.") is None


def test_input_modality_can_follow_from_the_content():
    assert format_chain_of_modality_instruction(SPOKEN, None, "text") == _instruction(Modality.SPEECH, Modality.TEXT)
    assert format_chain_of_modality_instruction(WRITTEN, None, "speech") == _instruction(Modality.TEXT, Modality.SPEECH)


def test_bad_requests_are_refused_with_the_way_out():
    with pytest.raises(ValueError, match="output_modality must be 'speech' or 'text'"):
        format_chain_of_modality_instruction(WRITTEN, "text", "music")
    with pytest.raises(ValueError, match="unit string"):
        format_chain_of_modality_instruction(WRITTEN, "speech", "text")
    with pytest.raises(ValueError, match="needs its input"):
        format_chain_of_modality_instruction("  ", "text", "text")


@pytest.mark.parametrize("source,target", PAIRS)
def test_answers_to_the_instructions_parse_as_before(source, target):
    speech_in, speech_out = source is Modality.SPEECH, target is Modality.SPEECH
    answer = format_chain_of_modality_response(
        target, "Four.", answer_units=[1, 2] if speech_out else None, transcript=WRITTEN if speech_in else None
    )
    assert answer.startswith("[tq] " if speech_in else "[ta] ") and ("[ua] " in answer) == speech_out
    parsed = parse_response("System.\n" + format_turn(_instruction(source, target), answer), strict=True)
    assert (parsed.transcript, parsed.text, parsed.units) == (
        WRITTEN if speech_in else None,
        "Four.",
        [1, 2] if speech_out else None,
    )
