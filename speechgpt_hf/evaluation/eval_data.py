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
# The voice questions are asked in unless told otherwise: the espeak-ng voice the reproduction holds out of training
# (its `held_out_voices`), so that the questions test listening to a voice the model never heard. Piper's joe, which
# voices the chain-of-modality training speech, would measure the training voice instead. Of the espeak-ng voices no
# training default uses, en-gb-x-rp is the one the judges read best (benchmarks/judges.md): a question the judge
# cannot make out measures the voice, not the model.
QUESTION_VOICES = ("espeak:en-gb-x-rp",)
_VOICE_ENGINES = ("piper", "espeak", "espeak-ng")


@dataclass
class SpeechItem:
    """One utterance to evaluate on: its id, its reference transcript, its 16 kHz mono waveform and (when known) the
    voice that spoke it."""

    id: str
    text: str
    audio: np.ndarray
    voice: str | None = None

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLING_RATE


@dataclass
class SpokenQuestion:
    """A short factual question with the answers accepted for it (lower case, any one suffices) and its topic
    (geography, maths, animals, ...), by which accuracy is also reported."""

    id: str
    question: str
    answers: list[str]
    topic: str | None = None


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
    """The shipped question set (or a jsonl file of `{"id", "question", "answers", "topic"}` records; `topic` is
    optional). `limit` keeps that many, taken from the topics in turn (in file order), so that a few questions span
    as many topics as they can instead of being the first topic's."""
    lines = Path(path or SPOKEN_QA_FILE).read_text(encoding="utf-8").splitlines()
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not record.get("question") or not record.get("answers"):
            raise ValueError(f"{path or SPOKEN_QA_FILE}, line {number}: a question needs `question` and `answers`.")
        questions.append(
            SpokenQuestion(
                str(record.get("id", number)), record["question"], list(record["answers"]), record.get("topic")
            )
        )
    return questions if limit is None else _across_topics(questions, limit)


def _across_topics(questions: list[SpokenQuestion], limit: int) -> list[SpokenQuestion]:
    """The first question of each topic, then the second of each, ... until `limit`, in file order within a round."""
    by_topic: dict[str | None, list[SpokenQuestion]] = {}
    for question in questions:
        by_topic.setdefault(question.topic, []).append(question)
    rounds = max((len(group) for group in by_topic.values()), default=0)
    order = [group[i] for i in range(rounds) for group in by_topic.values() if i < len(group)]
    kept = {id(question) for question in order[: max(limit, 0)]}
    return [question for question in questions if id(question) in kept]


def question_voices(tts: Any = QUESTION_VOICES, speaker: str | None = None) -> list[tuple[str, Any, str | None]]:
    """`(voice name, engine, speaker)` for each voice the questions are spoken in.

    `tts` is a voice `engine:speaker` ("espeak:en-gb-x-rp", "piper:joe"), a list of them, an engine name
    ("piper", "espeak-ng": its first speaker unless `speaker` says), or an engine or callable (with `speaker`).
    """
    from ..data.tts_engines import EspeakTTS, PiperTTS, resolve_tts

    specs = [tts] if isinstance(tts, str) else list(tts) if isinstance(tts, (list, tuple)) else None
    if specs is None or not all(isinstance(spec, str) and ":" in spec for spec in specs):
        engine = resolve_tts(tts)
        return [(f"{engine.name}:{speaker}" if speaker else engine.name, engine, speaker)]
    if not specs:
        raise ValueError("Give at least one voice for the questions, e.g. 'espeak:en-gb-x-rp'.")
    wanted: dict[str, list[str]] = {}
    for spec in specs:
        name, _, who = spec.partition(":")
        if name not in _VOICE_ENGINES or not who:
            raise ValueError(
                f"Question voice {spec!r} is not 'piper:SPEAKER' or 'espeak:VOICE' (e.g. {QUESTION_VOICES[0]!r})."
            )
        wanted.setdefault("piper" if name == "piper" else "espeak", []).append(who)
    engines = {
        name: PiperTTS(speakers=sorted(set(who))) if name == "piper" else EspeakTTS(speakers=sorted(set(who)))
        for name, who in wanted.items()
    }
    return [
        (spec, engines["piper" if spec.startswith("piper:") else "espeak"], spec.partition(":")[2]) for spec in specs
    ]


def voice_questions(
    questions: Sequence[SpokenQuestion], tts: Any = QUESTION_VOICES, speaker: str | None = None
) -> tuple[list[SpeechItem], SkippedItems]:
    """The questions spoken offline (voices as in `question_voices`; several voices take the questions in turn), as
    speech items whose transcript is the question and whose `voice` names who spoke it; the questions a voice could
    not speak are skipped, named by their id."""
    from ..audio import load_audio

    voices = question_voices(tts, speaker)
    items, skipped = [], SkippedItems()
    for index, question in enumerate(questions):
        name, engine, who = voices[index % len(voices)]
        try:
            waveform, rate = engine(question.question, speaker=who)
            audio = load_audio(waveform, sampling_rate=rate)
        except (ValueError, RuntimeError):  # the engine could not speak it (AudioInputError is a ValueError)
            skipped.add("TTS failed", question.id)
            continue
        items.append(SpeechItem(question.id, question.question, audio, voice=name))
    return items, skipped


__all__ = [
    "QUESTION_VOICES",
    "SAMPLING_RATE",
    "SPOKEN_QA_FILE",
    "SpeechItem",
    "SpokenQuestion",
    "load_speech_items",
    "load_spoken_questions",
    "question_voices",
    "voice_questions",
]
