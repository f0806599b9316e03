"""The original SpeechInstruct jsonl files (`prefix`, `plain_text`) read into this schema and written back.

The released files (fnlp/SpeechInstruct) hold no task field: a cross-modal turn is ASR when its input
holds the `<sosp>` span and TTS when its answer does; a chain-of-modality turn's formats follow from
where units appear. Reading is whitespace tolerant (the release writes `<eoh> [SpeechGPT]:` in one file
and `<eoh>. [SpeechGPT]:` in the other); writing uses this package's templates, and `prefix` is the
row's own system prompt, so a written file reads back to the same rows.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..models.speechgpt.prompt_format import SOSP, format_turn, parse_response, string_to_units
from .rows import ASR, COM_TASKS, MODALITY_ADAPTATION, TTS, make_turn, render_exchange, render_row

_TURN = re.compile(r"\[Human\]\s*:\s*(?P<human>.*?)\s*<eoh>\s*\.?\s*(?P<answer>\[SpeechGPT\]\s*:.*?<eoa>)", re.DOTALL)
_INPUT_MARKER = re.compile(r"\s*this is input\s*:\s*", re.IGNORECASE)
_ANSWER_START = re.compile(r"^\[SpeechGPT\]\s*:\s*")
_ANSWER_END = re.compile(r"\s*<eoa>$")


def parse_original_turn(human: str, answer: str, source_id: str = "") -> dict[str, Any]:
    """One `[Human]: … <eoh> [SpeechGPT]: …<eoa>` exchange as structured fields."""
    marker = _INPUT_MARKER.search(human)
    if marker is not None:
        description, content = human[: marker.start()].strip(), human[marker.end() :].strip()
        response = _ANSWER_END.sub("", _ANSWER_START.sub("", answer)).strip()
        if SOSP in content:
            units = string_to_units(content)
            return make_turn(ASR, description, response, units, output_text=response, source_id=source_id)
        units = string_to_units(response)
        return make_turn(TTS, description, content, output_text=content, output_units=units, source_id=source_id)
    parsed = parse_response(answer, strict=True)
    speech_in = SOSP in human
    input_text = (parsed.transcript or "") if speech_in else human.strip()
    output = "speech" if parsed.units else "text"
    task = next(
        name
        for name, (i, o) in COM_TASKS.items()
        if i.value == ("speech" if speech_in else "text") and o.value == output
    )
    return make_turn(
        task,
        instruction=input_text,
        input_text=input_text,
        input_units=string_to_units(human) if speech_in else [],
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


def to_original_record(row: dict[str, Any]) -> dict[str, str]:
    """A row as `{"prefix", "plain_text"}`: the system prompt and the conversation, as the release stored them."""
    if row["task"] == MODALITY_ADAPTATION:
        return {"prefix": "", "plain_text": row["text"]}
    turns = [*row["history"], row]
    conversation = " ".join(format_turn(*render_exchange(turn)) for turn in turns)
    if not row["text"].endswith(conversation):
        raise ValueError(f"Row {row['id']}: its text does not end with its structured turns; was it edited by hand?")
    return {"prefix": row["text"][: len(row["text"]) - len(conversation)], "plain_text": conversation}


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
    "parse_original_record",
    "parse_original_turn",
    "to_original_record",
    "write_original_jsonl",
]
