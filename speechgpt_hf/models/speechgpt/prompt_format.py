"""The SpeechGPT text formats: unit strings, turns, cross-modal instructions, chain-of-modality answers.

Everything here is plain string work with no model or tokenizer, so the dataset builder, the processor
and the chat session all share one definition of each format. Parsing is whitespace tolerant because
the original release's slow tokenizer decoded `<sosp><5>` as `<sosp> <5>` and `[SpeechGPT]:` as
`[SpeechGPT] :`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

SOSP, EOSP = "<sosp>", "<eosp>"
HUMAN, SPEECHGPT, EOH, EOA = "[Human]", "[SpeechGPT]", "<eoh>", "<eoa>"
TEXT_QUESTION_TAG, TEXT_ANSWER_TAG, UNIT_ANSWER_TAG = "[tq]", "[ta]", "[ua]"
INPUT_MARKER = "This is input:"

DEFAULT_SYSTEM_PROMPT = (
    "You are SpeechGPT, an assistant that listens and speaks as well as reads and writes.\n"
    "Speech reaches you as discrete units between <sosp> and <eosp>, and you can answer with units too.\n"
    "Follow the human's instruction faithfully and answer helpfully, truthfully and briefly.\n"
)

_UNIT = re.compile(r"<\s*(\d+)\s*>")
_UNIT_SPAN = re.compile(r"<sosp>((?:\s*<\s*\d+\s*>)*)\s*(<eosp>)?")
_RESPONSE_START = re.compile(r"\[SpeechGPT\]\s*:?\s*")
_ANSWER_END = re.compile(r"<eoa>|<eos>|</s>")
_TEXT_ANSWER = re.compile(r";?\s*\[ta\]\s*")
_UNIT_ANSWER = re.compile(r";?\s*\[ua\]\s*")
_TEXT_QUESTION = re.compile(r"^\s*\[tq\]\s*")


class Modality(str, Enum):
    """One side of a chain-of-modality exchange."""

    SPEECH = "speech"
    TEXT = "text"


class PromptFormat(str, Enum):
    """How a conversation is written out as the text the LM reads: a model answers as trained only in its own.

    - SPEECHGPT: this package's `[Human]: … <eoh>. [SpeechGPT]: …<eoa>` turns; a chain-of-modality request names
      its input and the wanted output modality (`format_chain_of_modality_instruction`).
    - RELEASE: the original SpeechGPT-7B release's layouts, byte for byte: a chain-of-modality request is the bare
      input (`[Human]: <sosp>…<eosp><eoh>. [SpeechGPT]: `, the transcript untagged in the answer), a cross-modal one
      `[Human]: … This is input: …<eoh> [SpeechGPT]: `.
    - CHAT_TEMPLATE: the SPEECHGPT requests and answers inside the base LLM's own chat template (e.g. the ChatML of
      an instruct model), in place of the `[Human]`/`[SpeechGPT]` markers.
    """

    SPEECHGPT = "speechgpt"
    RELEASE = "release"
    CHAT_TEMPLATE = "chat_template"


def as_prompt_format(value: PromptFormat | str) -> PromptFormat:
    """`value` as a PromptFormat, with an error naming the choices for anything else."""
    try:
        return PromptFormat(value)
    except ValueError:
        choices = ", ".join(repr(f.value) for f in PromptFormat)
        raise ValueError(f"prompt_format must be one of {choices}, got {value!r}.") from None


def units_to_string(units: Iterable[int]) -> str:
    """`[12, 7]` -> `'<sosp><12><7><eosp>'` (the form the LM reads and writes)."""
    return SOSP + "".join(f"<{int(u)}>" for u in units) + EOSP


def string_to_units(text: str) -> list[int]:
    """Unit ids of the first `<sosp>…<eosp>` span of `text` (whitespace between tokens allowed)."""
    match = _UNIT_SPAN.search(text)
    if match is None:
        raise ValueError(f"No <sosp>…<eosp> unit span in {text[:80]!r}.")
    return [int(u) for u in _UNIT.findall(match.group(1))]


def all_unit_spans(text: str) -> list[list[int]]:
    """Unit ids of every `<sosp>…` span of `text`, in order."""
    return [[int(u) for u in _UNIT.findall(match.group(1))] for match in _UNIT_SPAN.finditer(text)]


def format_turn(instruction: str, response: str | None = None) -> str:
    """One exchange; with `response=None` it ends where the model starts to answer."""
    prompt = f"{HUMAN}: {instruction} {EOH}. {SPEECHGPT}: "
    return prompt if response is None else f"{prompt}{response}{EOA}"


def is_cross_modal_request(instruction: str) -> bool:
    """Whether a human turn is a cross-modal (ASR/TTS) request, i.e. holds "This is input:" (in any case)."""
    return INPUT_MARKER.lower() in instruction.lower()


def format_release_turn(instruction: str, response: str | None = None) -> str:
    """One exchange in the original release's layout; with `response=None` it ends where the model answers.

    A cross-modal request is `[Human]: {instruction}<eoh> [SpeechGPT]: {response}<eoa> ` and any other (a bare unit
    span or text) `[Human]: {instruction}<eoh>. [SpeechGPT]: {response}<eoa>.`, as the released files write them.
    """
    cross = is_cross_modal_request(instruction)
    prompt = f"{HUMAN}: {instruction}{EOH}{' ' if cross else '. '}{SPEECHGPT}: "
    return prompt if response is None else f"{prompt}{response}{EOA}{' ' if cross else '.'}"


def format_conversation(
    system_prompt: str,
    history: Sequence[tuple[str, str]],
    instruction: str,
    response: str | None = None,
    prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT,
) -> str:
    """The text of a conversation in a marker format ("speechgpt" or "release"): the system prompt, the earlier
    `(instruction, answer)` turns, then `instruction` with its `response`, or ending where the model answers.

    "chat_template" needs the base LLM's tokenizer: `SpeechGPTProcessor.build_prompt` renders that one.
    """
    prompt_format = as_prompt_format(prompt_format)
    if prompt_format is PromptFormat.SPEECHGPT:
        turns = "".join(format_turn(question, answer) + " " for question, answer in history)
        return system_prompt + turns + format_turn(instruction, response)
    if prompt_format is PromptFormat.CHAT_TEMPLATE:
        raise ValueError(
            "The chat_template prompt format renders turns with the base LLM's chat template: use "
            "SpeechGPTProcessor.build_prompt (or prompt_and_completion), which holds the tokenizer."
        )
    body = ""
    for question, answer in [*history, (instruction, response)]:  # a chain-of-modality turn ends "<eoa>."
        body += (" " if body and not body.endswith(" ") else "") + format_release_turn(question, answer)
    return system_prompt + body


def format_cross_modal_instruction(task_description: str, content: str) -> str:
    """An ASR or TTS request: `'{task description} This is input: {content}'`."""
    return f"{task_description.strip()} {INPUT_MARKER} {content}"


# The chain-of-modality instruction: a sentence naming the input modality and holding the input, a sentence
# naming the wanted output modality, then step-by-step guidance for that pair of modalities.
_INPUT_SENTENCE = {
    Modality.SPEECH: "Here is an instruction in speech:",
    Modality.TEXT: "Here is an instruction in text:",
}
_OUTPUT_SENTENCE = {Modality.SPEECH: "Please answer in speech.", Modality.TEXT: "Please answer in text."}
_GUIDANCE = {
    (Modality.SPEECH, Modality.SPEECH): "Go step by step: first write down the words you hear, then think of the "
    "answer in text, and last speak that answer aloud.",
    (Modality.SPEECH, Modality.TEXT): "Go step by step: first write down the words you hear, then think of the "
    "answer and write it in text.",
    (
        Modality.TEXT,
        Modality.SPEECH,
    ): "Go step by step: first think of the answer in text, then speak that answer aloud.",
    (
        Modality.TEXT,
        Modality.TEXT,
    ): "Go step by step: first think the instruction through, then write the answer in text.",
}


def _modality(value: Modality | str, name: str) -> Modality:
    try:
        return Modality(value)
    except ValueError:
        raise ValueError(f"{name} must be 'speech' or 'text', got {value!r}.") from None


def format_chain_of_modality_instruction(
    input_content: str, input_modality: Modality | str | None, output_modality: Modality | str
) -> str:
    """The human turn of a chain-of-modality request: the input (a unit string or text) in a sentence naming its
    modality, a sentence naming the wanted output modality, and step-by-step guidance for that pair.

    `input_modality=None` takes speech when `input_content` holds a `<sosp>` unit span, text otherwise.
    """
    content = input_content.strip()
    if input_modality is None:
        input_modality = Modality.SPEECH if SOSP in content else Modality.TEXT
    source, target = _modality(input_modality, "input_modality"), _modality(output_modality, "output_modality")
    if not content:
        raise ValueError("A chain-of-modality instruction needs its input (a <sosp>…<eosp> unit string or text).")
    if source is Modality.SPEECH and SOSP not in content:
        raise ValueError("A speech instruction holds a <sosp>…<eosp> unit string; give text input as 'text'.")
    return f"{_INPUT_SENTENCE[source]} {content}\n{_OUTPUT_SENTENCE[target]} {_GUIDANCE[source, target]}"


def format_chain_of_modality_request(
    input_content: str,
    input_modality: Modality | str | None,
    output_modality: Modality | str,
    prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT,
) -> str:
    """The human turn of a chain-of-modality request as `prompt_format` writes it: this package's instruction
    (`format_chain_of_modality_instruction`), or for "release" the bare input (a unit string or text), which is
    what the release was trained on (its prompt never names the wanted output modality)."""
    instruction = format_chain_of_modality_instruction(input_content, input_modality, output_modality)
    return input_content.strip() if as_prompt_format(prompt_format) is PromptFormat.RELEASE else instruction


def _loose(fixed: str) -> str:
    """A regex for a fixed sentence that allows any whitespace where it has a space."""
    return re.escape(fixed).replace(r"\ ", r"\s+")


_CHAIN_OF_MODALITY_INSTRUCTIONS = {
    pair: re.compile(
        rf"^\s*{_loose(_INPUT_SENTENCE[pair[0]])}\s*(?P<content>.*?)\s*"
        rf"{_loose(_OUTPUT_SENTENCE[pair[1]])}\s*{_loose(_GUIDANCE[pair])}\s*$",
        re.DOTALL,
    )
    for pair in _GUIDANCE
}


def parse_chain_of_modality_instruction(instruction: str) -> tuple[str, Modality, Modality] | None:
    """(input content, input modality, output modality) of a `format_chain_of_modality_instruction` text, or None
    when `instruction` is not one (e.g. a bare unit string or a free-form request)."""
    for (input_modality, output_modality), pattern in _CHAIN_OF_MODALITY_INSTRUCTIONS.items():
        match = pattern.match(instruction)
        if match is not None:
            return match.group("content"), input_modality, output_modality
    return None


def format_chain_of_modality_response(
    output_modality: Modality | str,
    text_answer: str,
    answer_units: Sequence[int] | None = None,
    transcript: str | None = None,
    prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT,
) -> str:
    """The answer of the chain-of-modality stage: `[tq] …; [ta] …; [ua] <sosp>…<eosp>`.

    `transcript` is the text of a spoken instruction (speech input only); `answer_units` the speech of
    `text_answer` (speech output only). The four formats follow from which of the two are given. The "release"
    prompt format writes the transcript without its `[tq]` tag, as the released data does.
    """
    if Modality(output_modality) is Modality.SPEECH and not answer_units:
        raise ValueError("A speech answer needs `answer_units` (the units of the spoken answer).")
    tag = "" if as_prompt_format(prompt_format) is PromptFormat.RELEASE else f"{TEXT_QUESTION_TAG} "
    parts = [] if transcript is None else [f"{tag}{transcript}"]
    parts.append(f"{TEXT_ANSWER_TAG} {text_answer}")
    if Modality(output_modality) is Modality.SPEECH:
        parts.append(f"{UNIT_ANSWER_TAG} {units_to_string(answer_units)}")
    return "; ".join(parts)


@dataclass
class SpeechGPTResponse:
    """What a generated answer holds, with what was wrong with it.

    Attributes:
        transcript: the model's transcript of a spoken instruction (`[tq]` part), if any.
        text: the text answer (the `[ta]` part, or the whole answer when it has no tags).
        units: unit ids of the spoken answer, if any.
        complete: whether the answer ended properly (`<eoa>`/EOS seen, unit span closed).
        problems: human-readable notes on anything malformed; empty for a clean answer.
    """

    transcript: str | None = None
    text: str | None = None
    units: list[int] | None = None
    complete: bool = True
    problems: list[str] = field(default_factory=list)


def _response_body(generated: str, end_markers: Sequence[str], problems: list[str]) -> tuple[str, bool]:
    starts = list(_RESPONSE_START.finditer(generated))
    body = generated[starts[-1].end() :] if starts else generated
    ends = [m.start() for m in [_ANSWER_END.search(body)] if m is not None]
    ends += [body.find(marker) for marker in end_markers if marker and marker in body]
    if not ends:
        problems.append("The answer has no end marker (<eoa> or EOS): it may have been cut off.")
        return body.strip(), False
    return body[: min(ends)].strip(), True


def _split_units(section: str, num_units: int | None, problems: list[str]) -> tuple[list[int], bool]:
    match = _UNIT_SPAN.search(section)
    if match is None:
        problems.append("A speech answer was announced but holds no <sosp> unit span.")
        return [], False
    units = [int(u) for u in _UNIT.findall(match.group(1))]
    closed = match.group(2) is not None
    if _UNIT.search(section[match.end() :]):
        problems.append("Unit tokens after <eosp> are outside the unit span; dropped them.")
    if not closed:
        problems.append(f"The unit span is not closed by <eosp>; kept the {len(units)} units before the end.")
    if num_units is not None:
        bad = sorted({u for u in units if u >= num_units})
        if bad:
            problems.append(f"Dropped unit ids outside 0..{num_units - 1}: {bad[:10]}.")
            units = [u for u in units if u < num_units]
    return units, closed


def _without_stray_units(text: str | None, part: str, problems: list[str]) -> str | None:
    """`text` with unit tokens that stand outside a `<sosp>…<eosp>` span removed (and reported)."""
    if text is None or not _UNIT.search(text):
        return text
    problems.append(f"Unit tokens in the {part}, outside the spoken answer's unit span; removed them from the text.")
    return re.sub(r"[ \t]{2,}", " ", _UNIT.sub("", text)).strip() or None


def parse_response(
    generated: str,
    num_units: int | None = None,
    strict: bool = False,
    end_markers: Sequence[str] = (),
) -> SpeechGPTResponse:
    """Splits a decoded answer into transcript, text answer and units.

    `generated` may be the answer alone or the whole decoded conversation (the last `[SpeechGPT]:`
    turn is used). `end_markers` adds end-of-answer strings to `<eoa>`/`<eos>`/`</s>` (e.g. the
    tokenizer's EOS). With `strict=True` any problem raises `ValueError`; otherwise problems are listed
    on the result and what could be recovered is kept.
    """
    problems: list[str] = []
    body, complete = _response_body(generated, end_markers, problems)
    response = SpeechGPTResponse()
    unit_tag = _UNIT_ANSWER.search(body)
    if unit_tag is not None:
        response.units, closed = _split_units(body[unit_tag.end() :], num_units, problems)
        complete = complete and closed
        body = body[: unit_tag.start()]
    elif SOSP in body and _TEXT_ANSWER.search(body) is None:
        response.units, closed = _split_units(body, num_units, problems)
        complete = complete and closed
        body = body[: body.index(SOSP)]
    text_tag = _TEXT_ANSWER.search(body)
    if text_tag is not None:
        question = body[: text_tag.start()].strip()
        response.transcript = _TEXT_QUESTION.sub("", question).strip() or None
        response.text = body[text_tag.end() :].strip()
    else:
        response.text = body.strip() or None
    response.transcript = _without_stray_units(response.transcript, "transcript", problems)
    response.text = _without_stray_units(response.text, "text answer", problems)
    response.complete = complete
    response.problems = problems
    if strict and problems:
        raise ValueError("Malformed SpeechGPT answer: " + " ".join(problems))
    return response


__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "Modality",
    "PromptFormat",
    "SpeechGPTResponse",
    "as_prompt_format",
    "format_chain_of_modality_instruction",
    "format_chain_of_modality_request",
    "format_chain_of_modality_response",
    "format_conversation",
    "format_cross_modal_instruction",
    "format_release_turn",
    "format_turn",
    "is_cross_modal_request",
    "parse_chain_of_modality_instruction",
    "parse_response",
    "string_to_units",
    "units_to_string",
]
