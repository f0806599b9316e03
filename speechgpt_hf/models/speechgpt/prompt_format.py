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


def units_to_string(units: Iterable[int]) -> str:
    """`[12, 7]` -> `'<sosp><12><7><eosp>'` (the form the LM reads and writes)."""
    return SOSP + "".join(f"<{int(u)}>" for u in units) + EOSP


def string_to_units(text: str) -> list[int]:
    """Unit ids of the first `<sosp>…<eosp>` span of `text` (whitespace between tokens allowed)."""
    match = _UNIT_SPAN.search(text)
    if match is None:
        raise ValueError(f"No <sosp>…<eosp> unit span in {text[:80]!r}.")
    return [int(u) for u in _UNIT.findall(match.group(1))]


def format_turn(instruction: str, response: str | None = None) -> str:
    """One exchange; with `response=None` it ends where the model starts to answer."""
    prompt = f"{HUMAN}: {instruction} {EOH}. {SPEECHGPT}: "
    return prompt if response is None else f"{prompt}{response}{EOA}"


def format_cross_modal_instruction(task_description: str, content: str) -> str:
    """An ASR or TTS request: `'{task description} This is input: {content}'`."""
    return f"{task_description.strip()} {INPUT_MARKER} {content}"


def format_chain_of_modality_response(
    output_modality: Modality | str,
    text_answer: str,
    answer_units: Sequence[int] | None = None,
    transcript: str | None = None,
) -> str:
    """The answer of the chain-of-modality stage: `[tq] …; [ta] …; [ua] <sosp>…<eosp>`.

    `transcript` is the text of a spoken instruction (speech input only); `answer_units` the speech of
    `text_answer` (speech output only). The four formats follow from which of the two are given.
    """
    if Modality(output_modality) is Modality.SPEECH and not answer_units:
        raise ValueError("A speech answer needs `answer_units` (the units of the spoken answer).")
    parts = [] if transcript is None else [f"{TEXT_QUESTION_TAG} {transcript}"]
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
    "SpeechGPTResponse",
    "format_chain_of_modality_response",
    "format_cross_modal_instruction",
    "format_turn",
    "parse_response",
    "string_to_units",
    "units_to_string",
]
