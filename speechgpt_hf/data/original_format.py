"""The original SpeechInstruct jsonl files (`prefix`, `plain_text`) read into this schema and written back.

The released files (fnlp/SpeechInstruct) hold no task field: a cross-modal turn is ASR when its input
holds the `<sosp>` span and TTS when its answer does; a chain-of-modality turn's format follows from
where units appear. Writing reproduces the release's two layouts byte for byte, so the original training
scripts read a written file as they read the release:

- cross-modal: `[Human]: {description} This is input: {input}<eoh> [SpeechGPT]: {output}<eoa> `
- chain-of-modality: `[Human]: {units or text}<eoh>. [SpeechGPT]: {transcript}; [ta] {text}; [ua] {units}<eoa>.`
  (the transcript only for speech input, the `[ua]` part only for speech output).

`prefix` is the row's system prompt. Reading is whitespace tolerant and also takes this package's own
chain-of-modality instructions (`format_chain_of_modality_instruction`) as the human turn.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..models.speechgpt.prompt_format import (
    EOA,
    EOH,
    HUMAN,
    SOSP,
    SPEECHGPT,
    Modality,
    format_chain_of_modality_response,
    format_turn,
    parse_chain_of_modality_instruction,
    parse_response,
    string_to_units,
    units_to_string,
)
from ..stages import MODALITY_ADAPTATION
from .rows import ASR, COM_TASKS, TTS, make_turn, render_exchange, render_row

_TURN = re.compile(r"\[Human\]\s*:\s*(?P<human>.*?)\s*<eoh>\s*\.?\s*(?P<answer>\[SpeechGPT\]\s*:.*?<eoa>)", re.DOTALL)
_INPUT_MARKER = re.compile(r"\s*this is input\s*:\s*", re.IGNORECASE)
_ANSWER_START = re.compile(r"^\[SpeechGPT\]\s*:\s*")
_ANSWER_END = re.compile(r"\s*<eoa>$")


def parse_original_turn(human: str, answer: str, source_id: str = "") -> dict[str, Any]:
    """One `[Human]: … <eoh> [SpeechGPT]: …<eoa>` exchange as structured fields."""
    requested = parse_chain_of_modality_instruction(human)
    if requested is not None:
        return _chain_of_modality_turn(requested[0], answer, requested, source_id)
    marker = _INPUT_MARKER.search(human)
    if marker is None:  # the release's chain-of-modality layout: the bare input is the human turn
        return _chain_of_modality_turn(human, answer, None, source_id)
    description, content = human[: marker.start()].strip(), human[marker.end() :].strip()
    response = _ANSWER_END.sub("", _ANSWER_START.sub("", answer)).strip()
    if SOSP in content:
        units = string_to_units(content)
        return make_turn(ASR, description, response, units, output_text=response, source_id=source_id)
    units = string_to_units(response)
    return make_turn(TTS, description, content, output_text=content, output_units=units, source_id=source_id)


def _chain_of_modality_turn(
    content: str, answer: str, requested: tuple[str, Modality, Modality] | None, source_id: str
) -> dict[str, Any]:
    """A chain-of-modality turn from its input (units or text) and answer; the answer decides the format."""
    parsed = parse_response(answer, strict=True)
    output = Modality.SPEECH if parsed.units else Modality.TEXT
    if requested is not None and requested[2] is not output:
        raise ValueError(f"The instruction asks for a {requested[2].value} answer but the answer is {output.value}.")
    speech_in = requested[1] is Modality.SPEECH if requested is not None else SOSP in content
    source = Modality.SPEECH if speech_in else Modality.TEXT
    task = next(name for name, pair in COM_TASKS.items() if pair == (source, output))
    input_text = (parsed.transcript or "") if speech_in else content.strip()
    return make_turn(
        task,
        instruction=input_text,
        input_text=input_text,
        input_units=string_to_units(content) if speech_in else [],
        output_text=parsed.text or "",
        output_units=parsed.units or [],
        source_id=source_id,
    )


def parse_original_record(record: dict[str, Any], row_id: str) -> dict[str, Any]:
    """One jsonl record (`prefix`, `plain_text`) as a row of this schema; the prefix stays the system prompt."""
    if "plain_text" not in record:
        raise ValueError(
            f"Record {row_id} has keys {sorted(record)}; an original SpeechInstruct record has plain_text."
        )
    prefix, plain = record.get("prefix") or "", record["plain_text"]
    matches = list(_TURN.finditer(plain))
    if not matches:
        stripped = plain.strip()
        if stripped.startswith(SOSP):  # a bare unit sequence: modality-adaptation data
            turn = make_turn(MODALITY_ADAPTATION, input_units=string_to_units(stripped), source_id=row_id)
            return render_row(row_id, [turn])
        raise ValueError(f"Record {row_id} holds no [Human]: … <eoh> [SpeechGPT]: … <eoa> turn: {plain[:80]!r}.")
    turns = [parse_original_turn(m.group("human"), m.group("answer"), source_id=row_id) for m in matches]
    return render_row(row_id, turns, system_prompt=prefix)


def iter_original_jsonl(path: str | Path, skipped: Counter | None = None) -> Iterator[dict[str, Any]]:
    """Rows of an original SpeechInstruct jsonl file, read lazily (the cross-modal file is ~13 GB).

    A malformed line raises, naming its line number; pass a Counter as `skipped` to skip and count them instead.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                yield parse_original_record(json.loads(line), f"{path.stem}-{number:09d}")
            except ValueError as error:  # json.JSONDecodeError is a ValueError too
                if skipped is None:
                    raise ValueError(f"{path}, line {number + 1}: {error}") from error
                skipped["malformed record"] += 1


def original_jsonl_to_dataset(path: str | Path) -> Any:
    """An original jsonl file as a datasets Dataset in this schema (written to the datasets cache as it is read)."""
    import datasets

    from .rows import FEATURES

    return datasets.Dataset.from_generator(iter_original_jsonl, gen_kwargs={"path": str(path)}, features=FEATURES)


def original_turn(turn: dict[str, Any]) -> str:
    """One cross-modal or chain-of-modality turn in the release's layout (see the module docstring)."""
    if turn["task"] in (ASR, TTS):
        request, response = render_exchange(turn)
        return f"{HUMAN}: {request}{EOH} {SPEECHGPT}: {response}{EOA} "
    if turn["task"] not in COM_TASKS:
        raise ValueError(f"Task {turn['task']!r} has no turn in the original layout.")
    speech_in = turn["input_modality"] == Modality.SPEECH.value
    answer = format_chain_of_modality_response(
        turn["output_modality"], turn["output_text"], answer_units=turn["output_units"] or None
    )
    if speech_in and turn["input_text"]:
        answer = f"{turn['input_text']}; {answer}"  # the release writes the transcript untagged
    human = units_to_string(turn["input_units"]) if speech_in else turn["input_text"]
    return f"{HUMAN}: {human}{EOH}. {SPEECHGPT}: {answer}{EOA}."


def to_original_record(row: dict[str, Any]) -> dict[str, str]:
    """A row as `{"prefix", "plain_text"}`: its system prompt and its conversation in the release's layout."""
    if row["task"] == MODALITY_ADAPTATION:
        return {"prefix": "", "plain_text": row["text"]}
    turns = [*row["history"], row]
    conversation = " ".join(format_turn(*render_exchange(turn)) for turn in turns)
    if not row["text"].endswith(conversation):
        raise ValueError(f"Row {row['id']}: its text does not end with its structured turns; was it edited by hand?")
    plain_text = ""
    for turn in turns:  # a chain-of-modality turn ends with "<eoa>.", so a space separates it from the next
        plain_text += (" " if plain_text and not plain_text.endswith(" ") else "") + original_turn(turn)
    return {"prefix": row["text"][: len(row["text"]) - len(conversation)], "plain_text": plain_text}


def write_original_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Writes rows in the original jsonl format and returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(to_original_record(row), ensure_ascii=False) + "\n")
            count += 1
    return count


__all__ = [
    "iter_original_jsonl",
    "original_jsonl_to_dataset",
    "original_turn",
    "parse_original_record",
    "parse_original_turn",
    "to_original_record",
    "write_original_jsonl",
]
