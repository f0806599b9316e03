"""Word and character error rates (jiwer) of texts normalised by `speechgpt_hf.evaluation.normalize`."""

from __future__ import annotations

from collections.abc import Sequence

from .normalize import normalize_text


def _normalized_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses.")
    refs = [normalize_text(r) for r in references]
    if not refs or not all(refs):
        raise ValueError("Every reference needs at least one word after normalisation (and there must be one).")
    return refs, [normalize_text(h) for h in hypotheses]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER of normalised texts; an empty hypothesis counts every reference word as deleted."""
    import jiwer

    return float(jiwer.wer(*_normalized_pairs(references, hypotheses)))


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER of normalised texts (spaces count as characters, as jiwer counts them)."""
    import jiwer

    return float(jiwer.cer(*_normalized_pairs(references, hypotheses)))


__all__ = ["character_error_rate", "normalize_text", "word_error_rate"]
