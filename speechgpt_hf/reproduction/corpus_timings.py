"""Word timings for the speech corpus: each clip's words and their start and end times, kept beside the clip.

A clip `<digest>.flac` has its timings in `<digest>.words.json` (a `WordTimings`). espeak-ng voices time their own
speech (the events of the synthesis that made the clip); other engines' clips are force-aligned to their text with
pocketsphinx as written (16 kHz FLAC), so a clip timed after an interrupted build is aligned from the audio an
uninterrupted build aligns. A clip that cannot be aligned keeps an empty timing file, so it is not retried on every build, and
gives empty word columns. The corpus carries the times as three columns: `words` (the text's words, punctuation
removed), `word_starts` and `word_ends` (seconds from the start of the clip).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from speechgpt_hf.data.word_timings import POCKETSPHINX, TIMING_COLUMNS, WordTimings, align_words
from speechgpt_hf.safe_files import CorruptFileError, atomic_write_text

TIMINGS_VERSION = 1  # part of the corpus settings: a corpus cached before the word columns is rebuilt


def timings_path(clip: Path) -> Path:
    """Where the timings of `clip` are kept."""
    return clip.with_suffix(".words.json")


def timing_features() -> dict[str, Any]:
    """The datasets features of the word columns."""
    import datasets

    seconds = datasets.List(datasets.Value("float64"))
    return {"words": datasets.List(datasets.Value("string")), "word_starts": seconds, "word_ends": seconds}


def _has_own_timings(engine: Any) -> bool:
    return callable(getattr(engine, "speak_with_timings", None))


def _aligned(audio: np.ndarray, sampling_rate: int, text: str) -> WordTimings:
    """pocketsphinx's alignment of `text` to `audio`, or empty timings where it finds none."""
    try:
        return align_words(audio, sampling_rate, text)
    except ValueError:
        return WordTimings((), (), (), source=POCKETSPHINX)


def time_clip(engine: Any, text: str, speaker: str, clip: Path) -> WordTimings:
    """Timings of a written clip: an engine that times its own speech speaks the text again (the same audio, as the
    clip's name is its text and voice), any other clip is aligned as written, so every build aligns the same audio."""
    if _has_own_timings(engine):
        return engine.speak_with_timings(text, speaker=speaker)[2]
    import soundfile

    audio, sampling_rate = soundfile.read(clip, dtype="float32")
    return _aligned(audio, sampling_rate, text)


def voice_clip(
    engine: Any, text: str, speaker: str, clip: Path, write_clip: Callable[[Path, np.ndarray, int], None]
) -> None:
    """Voices `clip` (through `write_clip`) unless it exists, then writes its timings: an aligned clip is aligned as
    written, whether this build voiced it or a killed one did. A ValueError is the engine refusing the text."""
    if clip.exists():
        timings = time_clip(engine, text, speaker, clip)
    elif _has_own_timings(engine):
        audio, sampling_rate, timings = engine.speak_with_timings(text, speaker=speaker)
        write_clip(clip, audio, sampling_rate)
    else:
        write_clip(clip, *engine(text, speaker=speaker))
        timings = time_clip(engine, text, speaker, clip)
    write_timings(clip, timings)


def write_timings(clip: Path, timings: WordTimings) -> None:
    """Writes the timings of `clip` all at once: a file there is whole."""
    atomic_write_text(timings_path(clip), timings.to_json())


def read_timings(clip: Path) -> WordTimings:
    """The timings kept for `clip`; a damaged file raises CorruptFileError naming it and the way out."""
    path = timings_path(clip)
    try:
        return WordTimings.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError) as error:  # truncated or garbled JSON, or not a WordTimings
        raise CorruptFileError(
            f"{path} is truncated or corrupt ({error}): delete it and build again; its clip is timed anew."
        ) from error


def timing_columns(clips: list[Path]) -> dict[str, list[Any]]:
    """The word columns of the given clips, in order (empty lists for a clip without timings)."""
    columns: dict[str, list[Any]] = {name: [] for name in TIMING_COLUMNS}
    for clip in clips:
        path = timings_path(clip)
        row = read_timings(clip).columns() if path.exists() else {}
        for name in TIMING_COLUMNS:
            columns[name].append(row.get(name, []))
    return columns


__all__ = [
    "TIMINGS_VERSION",
    "read_timings",
    "time_clip",
    "timing_columns",
    "timing_features",
    "timings_path",
    "voice_clip",
    "write_timings",
]
