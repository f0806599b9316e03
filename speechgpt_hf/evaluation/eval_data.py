"""What an evaluation runs on: speech items with transcripts, and the spoken question set.

Speech comes from any source the SpeechInstruct builder reads (a datasets Dataset, a Hub id, an audio folder
with a metadata file or sidecar transcripts); every item is decoded to 16 kHz mono once. Items that cannot be
used are counted by reason and named, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLING_RATE
from ..data.skipped import SkippedItems, audio_name

SPOKEN_QA_FILE = Path(__file__).parent / "data" / "spoken_qa.jsonl"


@dataclass
class SpeechItem:
    """One utterance to evaluate on: its id, its reference transcript and its 16 kHz mono waveform."""

    id: str
    text: str
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLING_RATE


@dataclass
class SpokenQuestion:
    """A short factual question with the answers accepted for it (lower case, any one suffices)."""

    id: str
    question: str
    answers: list[str]


def load_speech_items(
    source: Any,
    split: str | None = None,
    text_column: str | None = None,
    audio_column: str = "audio",
    limit: int | None = None,
) -> tuple[list[SpeechItem], SkippedItems]:
    """Up to `limit` usable items of `source`, and the items skipped by reason, each named by its id (else its file)."""
    from ..audio import AudioInputError, load_audio
    from ..data.sources import (
        ID_COLUMNS,
        MISSING_TRANSCRIPT,
        TRANSCRIPT_COLUMNS,
        SkipItem,
        decode_audio,
        find_column,
        load_speech_source,
        normalize_transcript,
    )
    from ..data.unit_extraction import undecoded

    splits = load_speech_source(_saved_dataset(source), split=split)
    name, dataset = next(iter(splits.items()))
    dataset = undecoded(dataset, audio_column)  # each row decoded on its own: a corrupt file skips only its row
    columns = list(dataset.column_names or [])
    if audio_column not in columns:
        raise ValueError(f"The {name} split has no {audio_column!r} column (columns: {columns}); pass audio_column=.")
    text_key = find_column(columns, text_column, TRANSCRIPT_COLUMNS, "transcript")
    id_key = find_column(columns, None, ID_COLUMNS, "id")
    items: list[SpeechItem] = []
    skipped = SkippedItems()
    for index, row in enumerate(dataset):
        if limit is not None and len(items) >= limit:
            break
        item_id = str(row[id_key]) if id_key else f"{name}-{index}"
        label = item_id if id_key else audio_name(row[audio_column]) or item_id  # what a skip is named by
        text = normalize_transcript(row.get(text_key)) if text_key else ""
        if not text:
            skipped.add(MISSING_TRANSCRIPT, label)
            continue
        try:
            array, rate = decode_audio(row[audio_column])
            audio = load_audio(array, sampling_rate=rate, target_rate=SAMPLING_RATE)
        except SkipItem as error:
            skipped.add(error.reason, label)
            continue
        except AudioInputError:
            skipped.add("unusable audio", label)
            continue
        items.append(SpeechItem(item_id, text, audio))
    return items, skipped


def _saved_dataset(source: Any) -> Any:
    """A folder written by `save_to_disk` (a Dataset or DatasetDict) loaded as such; anything else unchanged."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source)
        if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
            import datasets

            return datasets.load_from_disk(str(folder))
    return source


def load_spoken_questions(path: str | Path | None = None, limit: int | None = None) -> list[SpokenQuestion]:
    """The shipped question set (or a jsonl file of `{"id", "question", "answers"}` records)."""
    lines = Path(path or SPOKEN_QA_FILE).read_text(encoding="utf-8").splitlines()
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not record.get("question") or not record.get("answers"):
            raise ValueError(f"{path or SPOKEN_QA_FILE}, line {number}: a question needs `question` and `answers`.")
        questions.append(SpokenQuestion(str(record.get("id", number)), record["question"], list(record["answers"])))
    return questions[:limit]


def voice_questions(
    questions: Sequence[SpokenQuestion], tts: Any, speaker: str | None = None
) -> tuple[list[SpeechItem], SkippedItems]:
    """The questions spoken by an offline TTS engine, as speech items whose transcript is the question; the questions
    the engine could not speak are skipped, named by their id."""
    from ..audio import load_audio
    from ..data.tts_engines import resolve_tts

    engine = resolve_tts(tts)
    items, skipped = [], SkippedItems()
    for question in questions:
        try:
            waveform, rate = engine(question.question, speaker=speaker)
            items.append(SpeechItem(question.id, question.question, load_audio(waveform, sampling_rate=rate)))
        except (ValueError, RuntimeError):  # the engine could not speak it (AudioInputError is a ValueError)
            skipped.add("TTS failed", question.id)
    return items, skipped


__all__ = [
    "SAMPLING_RATE",
    "SPOKEN_QA_FILE",
    "SpeechItem",
    "SpokenQuestion",
    "load_speech_items",
    "load_spoken_questions",
    "voice_questions",
]
