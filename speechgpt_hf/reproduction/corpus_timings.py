"""Word timings for the speech corpus: each clip's words and their start and end times, kept beside the clip.

A clip `<digest>.flac` has its timings in `<digest>.words.json` (a `WordTimings`). espeak-ng voices time their own
speech (the events of the synthesis that made the clip); other engines' clips are force-aligned to their text with
pocketsphinx. A clip that cannot be aligned keeps an empty timing file, so it is not retried on every build, and
gives empty word columns. The corpus carries the times as three columns: `words` (the text's words, punctuation
removed), `word_starts` and `word_ends` (seconds from the start of the clip).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from speechgpt_hf.data.word_timings import POCKETSPHINX, TIMING_COLUMNS, WordTimings, align_words

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


def speak_timed(engine: Any, text: str, speaker: str) -> tuple[np.ndarray, int, WordTimings]:
    """(audio, sampling rate, timings) of `text` voiced by `engine` as `speaker`. A ValueError is the engine
    refusing the text; a failed alignment gives empty timings instead."""
    if _has_own_timings(engine):
        return engine.speak_with_timings(text, speaker=speaker)
    audio, sampling_rate = engine(text, speaker=speaker)
    return audio, sampling_rate, _aligned(audio, sampling_rate, text)


def time_clip(engine: Any, text: str, speaker: str, clip: Path) -> WordTimings:
    """Timings for a clip voiced before timings were kept: an engine that times its own speech speaks the text
    again (the same audio, as the clip's name is its text and voice), any other clip is aligned."""
    if _has_own_timings(engine):
        return engine.speak_with_timings(text, speaker=speaker)[2]
    import soundfile

    audio, sampling_rate = soundfile.read(clip, dtype="float32")
    return _aligned(audio, sampling_rate, text)


def voice_clip(
    engine: Any, text: str, speaker: str, clip: Path, write_clip: Callable[[Path, np.ndarray, int], None]
) -> None:
    """Voices `clip` (through `write_clip`) with its timings, or only times it when the clip was voiced before
    timings were kept. A ValueError is the engine refusing the text."""
    if clip.exists():
        write_timings(clip, time_clip(engine, text, speaker, clip))
        return
    audio, sampling_rate, timings = speak_timed(engine, text, speaker)
    write_clip(clip, audio, sampling_rate)
    write_timings(clip, timings)


def write_timings(clip: Path, timings: WordTimings) -> None:
    path = timings_path(clip)
    partial = path.with_suffix(".partial")
    partial.write_text(timings.to_json(), encoding="utf-8")
    partial.replace(path)


def timing_columns(clips: list[Path]) -> dict[str, list[Any]]:
    """The word columns of the given clips, in order (empty lists for a clip without timings)."""
    columns: dict[str, list[Any]] = {name: [] for name in TIMING_COLUMNS}
    for clip in clips:
        path = timings_path(clip)
        row = WordTimings.from_json(path.read_text(encoding="utf-8")).columns() if path.exists() else {}
        for name in TIMING_COLUMNS:
            columns[name].append(row.get(name, []))
    return columns


__all__ = [
    "TIMINGS_VERSION",
    "speak_timed",
    "time_clip",
    "timing_columns",
    "timing_features",
    "timings_path",
    "voice_clip",
    "write_timings",
]
