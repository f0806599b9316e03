"""The metrics of the harness, loaded as local `evaluate` modules so that `evaluate.load` users share them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).parent / "hub_metrics"


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


def qa_accuracy(answers: Sequence[str | None], accepted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """`{"accuracy", "correct"}`: whether each answer holds one of its accepted answers."""
    predictions = [answer or "" for answer in answers]
    return load_metric("spoken_qa_accuracy").compute(predictions=predictions, references=[list(a) for a in accepted])


__all__ = ["METRICS_DIR", "error_rates", "load_metric", "metric_path", "qa_accuracy"]
