"""Whether evaluation questions were trained on: copies, near copies and answer leaks against training texts.

A question scored for accuracy measures what a model can answer only if it never saw that question (and its answer)
in training. Everything is compared after `normalize_text` (lower case, punctuation gone, numbers spelled out,
single spaces). A question is

- a **copy** when it equals a training text or appears word for word inside one;
- a **near copy** when the word sets overlap by Jaccard >= `jaccard` (0.8) or the strings match by difflib ratio
  >= `ratio` (0.9): "How many days are in a week?" against "How many days are there in a week?";
- an **answer leak** when a training instruction asks about the same content words (the words left after
  dropping question words and function words, lightly stemmed, British spellings folded; at least two shared,
  covering >= `content_overlap` (0.75) of the smaller set) and its response holds one of the question's accepted
  answers: "What color is grass?" against "What is the color of grass?" answered "Grass is usually green."

`find_overlaps` returns every such finding, so a test (or a user checking their own instruction data before
training) can name each one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .eval_data import SpokenQuestion
from .normalize import normalize_text

COPY, NEAR_COPY, ANSWER_LEAK = "copy", "near copy", "answer leak"

STOP_WORDS = frozenset(
    """a an the is are was were be been being am do does did done what which who whom whose how many much where when
    why of in on at to for from by with and or not it its this that these those there here you your we our us they
    their them i my me he him his she her one some any can could would should will shall may might must have has had
    call called name named tell give me say please""".split()
)
# British spellings folded to American ones so that "colour" and "color" count as one content word.
_SPELLINGS = {
    "colour": "color",
    "colours": "colors",
    "grey": "gray",
    "centre": "center",
    "metre": "meter",
    "metres": "meters",
    "litre": "liter",
    "litres": "liters",
    "favourite": "favorite",
    "neighbour": "neighbor",
    "harbour": "harbor",
    "aeroplane": "airplane",
}
_SUFFIXES = ("ing", "ed", "es", "s", "e")


@dataclass(frozen=True)
class Overlap:
    """One finding: the question, what kind of overlap, the training source and text, and the score behind it."""

    question_id: str
    question: str
    kind: str
    source: str
    text: str
    score: float

    def __str__(self) -> str:
        return f"{self.question_id} {self.question!r} ~ {self.source}: {self.text!r} ({self.kind}, {self.score:.2f})"


def _stem(word: str) -> str:
    word = _SPELLINGS.get(word, word)
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    """The normalised, lightly stemmed words of `text` that carry its topic (question and function words dropped)."""
    return frozenset(_stem(word) for word in normalize_text(text).split() if word not in STOP_WORDS)


def _holds(text: str, phrase: str) -> bool:
    """Whether normalised `phrase` appears in normalised `text` as whole words."""
    return bool(phrase) and f" {phrase} " in f" {text} "


@dataclass(frozen=True)
class _Text:
    source: str
    raw: str
    norm: str
    words: frozenset[str]


def _prepared(texts: Mapping[str, Iterable[str]]) -> list[_Text]:
    prepared, seen = [], set()
    for source, items in texts.items():
        for raw in items:
            norm = normalize_text(raw)
            if norm and (source, norm) not in seen:
                seen.add((source, norm))
                prepared.append(_Text(source, raw, norm, frozenset(norm.split())))
    return prepared


def _copy_or_near(
    question: SpokenQuestion, norm: str, words: frozenset[str], text: _Text, jaccard: float, ratio: float
) -> Overlap | None:
    finding = None
    if _holds(text.norm, norm):
        finding = (COPY, 1.0)
    elif min(len(words), len(text.words)) >= jaccard * max(len(words), len(text.words)):
        score = len(words & text.words) / len(words | text.words)
        if score >= jaccard:
            finding = (NEAR_COPY, score)
    if finding is None and 2 * min(len(norm), len(text.norm)) >= ratio * (len(norm) + len(text.norm)):
        matcher = difflib.SequenceMatcher(None, norm, text.norm, autojunk=False)
        if matcher.quick_ratio() >= ratio and matcher.ratio() >= ratio:
            finding = (NEAR_COPY, matcher.ratio())
    if finding is None:
        return None
    return Overlap(question.id, question.question, finding[0], text.source, text.raw, round(finding[1], 3))


def _leak(
    question: SpokenQuestion, content: frozenset[str], pair: tuple[str, str, str], content_overlap: float
) -> Overlap | None:
    source, instruction, response = pair
    asked = content_words(instruction)
    shared = content & asked
    if len(shared) < 2 or len(shared) < content_overlap * min(len(content), len(asked)):
        return None
    answer = normalize_text(response)
    if not any(_holds(answer, normalize_text(accepted)) for accepted in question.answers):
        return None
    score = len(shared) / min(len(content), len(asked))
    return Overlap(question.id, question.question, ANSWER_LEAK, source, f"{instruction} -> {response}", round(score, 3))


def find_overlaps(
    questions: Sequence[SpokenQuestion],
    texts: Mapping[str, Iterable[str]],
    pairs: Iterable[tuple[str, str, str]] = (),
    jaccard: float = 0.8,
    ratio: float = 0.9,
    content_overlap: float = 0.75,
) -> list[Overlap]:
    """Every copy and near copy of a question among `texts` (`{source name: training texts}`), and every answer
    leak among `pairs` (`(source name, instruction, response)` training pairs); the module doc has the rules."""
    prepared = _prepared(texts)
    pairs = list(pairs)
    found = []
    for question in questions:
        norm = normalize_text(question.question)
        words, content = frozenset(norm.split()), content_words(question.question)
        found += [o for text in prepared if (o := _copy_or_near(question, norm, words, text, jaccard, ratio))]
        found += [o for pair in pairs if (o := _leak(question, content, pair, content_overlap))]
    return found


__all__ = ["ANSWER_LEAK", "COPY", "NEAR_COPY", "STOP_WORDS", "Overlap", "content_words", "find_overlaps"]
