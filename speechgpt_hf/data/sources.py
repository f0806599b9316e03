"""Inputs of the SpeechInstruct builder: speech corpora, local audio folders, instruction pairs, task descriptions.

A speech corpus is any `datasets` Dataset (or streamed IterableDataset, or a dict of splits) with an Audio
column and, for the instruction tasks, a transcript column; columns are found by their usual names
(LibriSpeech `text`, Common Voice `sentence`, GigaSpeech `text`). Bad items raise `SkipItem` with a reason so
that the builder can skip and count them instead of failing the whole job.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioInputError, read_audio

DATA_DIR = Path(__file__).parent
BUILTIN_INSTRUCTIONS = DATA_DIR / "instructions.jsonl"
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
TRANSCRIPT_COLUMNS = ("text", "transcript", "transcription", "sentence", "normalized_text", "raw_text")
ID_COLUMNS = ("id", "segment_id", "audio_id", "file", "file_name", "path")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")
INSTRUCTION_KEYS = ("instruction", "question", "prompt")
RESPONSE_KEYS = ("response", "answer", "output", "completion")

MISSING_TRANSCRIPT, EMPTY_AUDIO, CORRUPT_AUDIO = "missing transcript", "empty or silent audio", "corrupt audio"
TOO_LONG, TTS_FAILED, BAD_PAIR = "too long", "TTS failed", "empty instruction or response"


class SkipItem(Exception):
    """An input item the builder leaves out; `reason` is one of the reasons counted in the summary."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode_audio(value: Any, min_seconds: float = 0.05) -> tuple[np.ndarray, int]:
    """Any datasets Audio value (decoded dict, AudioDecoder, undecoded bytes/path) or a path -> (mono float32, sr).

    Audio that `speechgpt_hf.audio.read_audio` refuses (`AudioInputError`: corrupt, empty, NaN, bad rate) raises
    `SkipItem`; a missing decoding library raises ImportError, since every other file would fail the same way.
    """
    if value is None or (isinstance(value, Mapping) and not _holds_audio(value)):
        raise SkipItem(EMPTY_AUDIO, "no audio")
    try:
        array, sampling_rate = read_audio(value)
    except AudioInputError as error:
        raise SkipItem(CORRUPT_AUDIO, str(error)) from error
    if array.size < min_seconds * sampling_rate or np.abs(array).max() < 1e-4:
        raise SkipItem(EMPTY_AUDIO, f"{array.size} samples")
    return array, sampling_rate


def _holds_audio(value: Mapping[str, Any]) -> bool:
    return value.get("array") is not None or bool(value.get("bytes")) or bool(value.get("path"))


_GIGASPEECH_PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
_ANGLE_TAG = re.compile(r"\s*<[^<>]*>")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.?!])")


def normalize_transcript(text: Any) -> str:
    """A corpus transcript fit for a prompt: GigaSpeech punctuation tags become marks, other `<…>` tags go.

    Angle-bracket tags (`<SIL>`, `<NOISE>`, `<unk>`) would look like SpeechGPT's own markers in a prompt; a
    transcript made only of tags (GigaSpeech's garbage utterances) becomes empty, i.e. missing.
    """
    text = str(text or "")
    for tag, mark in _GIGASPEECH_PUNCTUATION.items():
        text = text.replace(tag, mark)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _ANGLE_TAG.sub(" ", text))
    return " ".join(text.split()).strip(" ,")


def find_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str) -> str | None:
    """The column to use for `what`: `wanted` if given (it must exist), else the first usual name present."""
    if wanted is not None:
        if wanted not in columns:
            raise ValueError(f"The {what} column {wanted!r} is not in the source; its columns are {list(columns)}.")
        return wanted
    return next((c for c in candidates if c in columns), None)


def audio_folder_dataset(folder: str | Path) -> Any:
    """A Dataset of the audio files under `folder`, with transcripts from metadata.csv/jsonl or sidecar .txt/.lab.

    metadata files follow the datasets audiofolder layout (a `file_name` column plus a transcript column).
    Audio stays undecoded (paths) so that decoding happens, and can fail per file, inside the builder.
    """
    import datasets

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"Audio folder {root} does not exist.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}.")
    metadata = _read_metadata(root)
    texts = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        sidecar = next((path.with_suffix(s) for s in (".txt", ".lab") if path.with_suffix(s).exists()), None)
        text = metadata.get(relative)
        if text is None and sidecar is not None:
            text = sidecar.read_text(encoding="utf-8").strip()
        texts.append(text)
    table = {"audio": [str(p) for p in files], "text": texts, "id": [p.relative_to(root).as_posix() for p in files]}
    return datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))


def _read_metadata(root: Path) -> dict[str, str]:
    rows: list[dict[str, Any]] = []
    if (root / "metadata.csv").exists():
        with open(root / "metadata.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif (root / "metadata.jsonl").exists():
        lines = (root / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    found: dict[str, str] = {}
    for row in rows:
        column = find_column(list(row), None, TRANSCRIPT_COLUMNS, "transcript")
        if "file_name" in row and column is not None and row[column] is not None:
            found[str(row["file_name"])] = str(row[column])
    return found


def load_speech_source(
    source: Any, config_name: str | None = None, split: str | None = None, streaming: bool = False
) -> dict[str, Any]:
    """A speech corpus as `{split: Dataset or IterableDataset}`.

    `source` is a Dataset/IterableDataset (one split, "train"), a DatasetDict or dict of splits, a local
    folder of audio files, or a Hub dataset id (read with `load_dataset`, streamed when `streaming`).
    """
    import datasets

    if isinstance(source, (datasets.Dataset, datasets.IterableDataset)):
        return {split or "train": source}
    if isinstance(source, Mapping):
        return dict(source) if split is None else {split: source[split]}
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return {split or "train": audio_folder_dataset(source)}
    if isinstance(source, str):
        loaded = datasets.load_dataset(source, config_name, split=split, streaming=streaming)
        return {split: loaded} if split is not None else dict(loaded)
    raise TypeError(f"Cannot read speech from a {type(source).__name__}: pass a Dataset, a folder or a Hub id.")


def load_instruction_pairs(source: Any = None) -> list[dict[str, str]]:
    """Text instruction/response pairs as `[{"id", "instruction", "response"}]`; None means the built-in set.

    `source` may be a JSON or JSONL file, a datasets Dataset, or an iterable of dicts; the keys
    instruction/question/prompt and response/answer/output/completion are recognised, and an Alpaca-style
    `input` is appended to the instruction on a new line.
    """
    if source is None:
        source = BUILTIN_INSTRUCTIONS
    if isinstance(source, (str, Path)):
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        records = (
            json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
    else:
        records = source
    return [_pair(record, index) for index, record in enumerate(_iter_records(records))]


def _iter_records(records: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(records, Mapping):
        raise ValueError("Instruction pairs must be a list of objects, not one object.")
    return records


def _pair(record: Mapping[str, Any], index: int) -> dict[str, str]:
    instruction = find_column(list(record), None, INSTRUCTION_KEYS, "instruction")
    response = find_column(list(record), None, RESPONSE_KEYS, "response")
    if instruction is None or response is None:
        raise ValueError(
            f"Instruction pair {index} has keys {sorted(record)}; it needs one of {INSTRUCTION_KEYS} and one of "
            f"{RESPONSE_KEYS}."
        )
    text = str(record[instruction] or "").strip()
    context = str(record.get("input") or "").strip()  # Alpaca-style pairs keep extra context in "input"
    return {
        "id": str(record.get("id", f"pair-{index:06d}")),
        "instruction": f"{text}\n{context}" if context else text,
        "response": str(record[response] or "").strip(),
    }


__all__ = [
    "BUILTIN_INSTRUCTIONS",
    "SkipItem",
    "audio_folder_dataset",
    "decode_audio",
    "find_column",
    "load_instruction_pairs",
    "load_speech_source",
    "normalize_transcript",
]
