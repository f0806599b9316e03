"""New sentences spoken by splicing the units of words already heard.

A small corpus teaches an LM to recognise each recording by its whole unit sequence: it transcribes its training
sentences and guesses the content words of new ones. Word timings cut every utterance into word spans; joining
the spans of one speaker's words in a new order speaks a new sentence at no voicing cost, and an ASR row of it
can only be answered by reading word by word. benchmarks/reading.md measures the effect (`combined_spliced8`).
"""

from __future__ import annotations

import bisect
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NOT_A_WORD = re.compile(r"[^a-z0-9' ]+")


def splice_key(word: str) -> str:
    """The form in which two words count as the same: lower case, punctuation gone."""
    return " ".join(_NOT_A_WORD.sub(" ", word.lower()).split())


def read_sentences(source: Any) -> list[str]:
    """Sentences from a list, or from a UTF-8 text file of one a line; blank lines dropped."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"No sentence file at {path}: give a text file of one sentence a line, or a list.")
        source = path.read_text(encoding="utf-8").splitlines()
    return [text.strip() for text in source if text.strip()]


def word_unit_spans(
    durations: Sequence[int], starts: Sequence[float], ends: Sequence[float], frames_per_second: float = 50.0
) -> list[tuple[int, int]]:
    """Each word's `[first, last)` merged-unit indices: the units whose first frame falls within the word's time
    span, or the unit sounding at its start when the word is shorter than a unit."""
    onsets, frame = [], 0
    for duration in durations:
        onsets.append(frame)
        frame += duration
    if not onsets:
        return []
    spans = []
    for start, end in zip(starts, ends, strict=True):
        first = bisect.bisect_left(onsets, round(start * frames_per_second))
        last = bisect.bisect_left(onsets, round(end * frames_per_second))
        if last <= first:
            first = max(0, bisect.bisect_right(onsets, start * frames_per_second) - 1)
            last = first + 1
        spans.append((min(first, len(onsets) - 1), min(last, len(onsets))))
    return spans


@dataclass
class WordSpliceBank:
    """The unit spans of every word each speaker was heard saying, and how their utterances end (the silence
    after the last word), from which `speak` splices new sentences. With `mix_speakers`, a sentence no single
    speaker can say takes each word from any speaker who said it (for a broad corpus, where one voice says few)."""

    frames_per_second: float = 50.0
    mix_speakers: bool = False
    spans: dict[tuple[str, str], list[list[int]]] = field(default_factory=dict)
    endings: dict[str, list[list[int]]] = field(default_factory=dict)
    transcripts: set[str] = field(default_factory=set)

    def add(
        self,
        speaker: str,
        transcript: str,
        units: Sequence[int],
        durations: Sequence[int],
        words: Sequence[str],
        starts: Sequence[float],
        ends: Sequence[float],
    ) -> bool:
        """Files one utterance's word spans under its speaker; False (and nothing filed) when it has no word timings
        or no duration for each unit."""
        if not words or not units or len(durations) != len(units):
            return False
        word_spans = word_unit_spans(durations, starts, ends, self.frames_per_second)
        for word, (first, last) in zip(words, word_spans, strict=True):
            self.spans.setdefault((speaker, splice_key(word)), []).append(list(units[first:last]))
        self.endings.setdefault(speaker, []).append(list(units[word_spans[-1][1] :]))
        self.transcripts.add(splice_key(transcript))
        return True

    def speakers_of(self, words: Sequence[str]) -> list[str]:
        """The speakers who were heard saying every one of `words`."""
        return [s for s in sorted(self.endings) if all((s, w) in self.spans for w in words)]

    def speak(self, text: str, rng: random.Random) -> tuple[str, list[int]] | None:
        """`(speaker, merged units)` of `text` spliced from one speaker's words (each word's span drawn from
        where that speaker said it; with `mix_speakers`, from several when no one said them all), or None when it
        cannot be said or `text` is a heard transcript."""
        words = splice_key(text).split()
        if not words or splice_key(text) in self.transcripts:
            return None
        speakers = self.speakers_of(words)
        if speakers:
            chosen = [rng.choice(speakers)] * len(words)
        elif self.mix_speakers and all(self.speakers_of([w]) for w in words):
            chosen = [rng.choice(self.speakers_of([w])) for w in words]
        else:
            return None
        units = [u for s, w in zip(chosen, words, strict=True) for u in rng.choice(self.spans[(s, w)])]
        units += rng.choice(self.endings[chosen[-1]])
        speaker = chosen[0] if len(set(chosen)) == 1 else "+".join(sorted(set(chosen)))
        return speaker, [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]

    def speak_many(self, texts: Iterable[str], count: int, rng: random.Random) -> list[tuple[str, str, list[int]]]:
        """Up to `count` `(text, speaker, units)` of `texts`, taken in order, skipping those `speak` cannot say."""
        spoken: list[tuple[str, str, list[int]]] = []
        for text in texts:
            if len(spoken) >= count:
                break
            said = self.speak(text, rng)
            if said is not None:
                spoken.append((text, *said))
        return spoken


__all__ = ["WordSpliceBank", "read_sentences", "splice_key", "word_unit_spans"]
