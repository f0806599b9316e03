"""The metrics of the harness, loaded as local `evaluate` modules so that `evaluate.load` users share them, and
the rule that decides whether a free-form answer to a question is right.

A free-form answer is right when the first answer it commits to holds an accepted one (`FIRST_ANSWER`): its first
sentence or clause that is not a question. "The capital of France is Paris." and "Paris. It is in France." are
right; "The answer is France. ... The answer is Paris." is not, since it offered France first. A line that only
announces the answer ("Here is the answer:") is passed over, as a question is. The earlier rule,
an accepted answer anywhere in the text (`ANYWHERE`), is kept to show what the stricter one changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).parent / "hub_metrics"
FIRST_ANSWER = "first_answer"  # an accepted answer in the first sentence or clause that is not a question
ANYWHERE = "anywhere"  # an accepted answer anywhere in the text (lenient: a list of guesses passes)
QA_RULES = (FIRST_ANSWER, ANYWHERE)

# A clause ends at . ! ? ; or a line break, where a space or the end follows; a period after a list number at the
# start of a clause ("1. Paris"), after a single letter or an initialism ("D.C.", "U.S."), or after a title or
# abbreviation ("Mt. Everest") ends nothing.
_CLAUSE_END = re.compile(r"[.!?;]+(?=\s|$)|\n")
_ABBREVIATIONS = frozenset("mr mrs ms dr st mt jr sr vs no prof gen col lt sgt ft approx ca".split())


def _ends_clause(text: str, start: int, match: re.Match[str]) -> bool:
    if not match.group().startswith("."):
        return True
    before = text[start : match.start()].split()
    word = before[-1] if before else ""
    if len(before) == 1 and word.isdigit():  # a list number
        return False
    bare = word.strip("(\"'*").lower()
    return not (len(bare) == 1 or re.fullmatch(r"(?:\w\.)+\w", bare) or bare in _ABBREVIATIONS)


def clauses(text: str) -> list[str]:
    """`text` cut into sentences or clauses (see `_CLAUSE_END`), each with its closing mark, blanks left out."""
    out, start = [], 0
    for match in _CLAUSE_END.finditer(text):
        if _ends_clause(text, start, match):
            out.append(text[start : match.end()].strip())
            start = match.end()
    out.append(text[start:].strip())
    return [clause for clause in out if any(char.isalnum() for char in clause)]


def first_answer(text: str) -> str:
    """The first clause of `text` that is neither a question (an echo of the question is no answer) nor an
    announcement ending in a colon on its own line ("Here is the answer:"), or "" if none."""
    return next((clause for clause in clauses(text) if not clause.endswith(("?", ":"))), "")


def metric_path(name: str) -> str:
    """The folder of a shipped metric module, for `evaluate.load(metric_path("speechgpt_wer"))` offline."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        known = sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir())
        raise ValueError(f"No shipped metric {name!r}; the shipped metrics are {known}.")
    return str(path)


@cache
def load_metric(name: str) -> Any:
    """A shipped metric module, loaded once a process (offline, from the package)."""
    import evaluate

    return evaluate.load(metric_path(name))


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    """`{"wer", "cer", "item_wer"}` of hypotheses against references (empty hypotheses count as deletions)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses.")
    return load_metric("speechgpt_wer").compute(predictions=list(hypotheses), references=list(references))


def qa_accuracy(
    answers: Sequence[str | None], accepted: Sequence[Sequence[str]], rule: str = FIRST_ANSWER
) -> dict[str, Any]:
    """`{"accuracy", "correct"}`: whether each answer is right by `rule` (`FIRST_ANSWER`: the first answer it commits
    to holds an accepted one; `ANYWHERE`: an accepted one appears anywhere in it)."""
    if rule not in QA_RULES:
        raise ValueError(f"Unknown QA rule {rule!r}: choose from {', '.join(QA_RULES)}.")
    predictions = [answer or "" for answer in answers]
    references = [list(a) for a in accepted]
    return load_metric("spoken_qa_accuracy").compute(predictions=predictions, references=references, rule=rule)


__all__ = [
    "ANYWHERE",
    "FIRST_ANSWER",
    "METRICS_DIR",
    "QA_RULES",
    "clauses",
    "error_rates",
    "first_answer",
    "load_metric",
    "metric_path",
    "qa_accuracy",
]
