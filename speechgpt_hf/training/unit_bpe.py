"""The training side of a BPE over speech units: learn it on a stage's rows when a base LM is expanded, and write
the rows' unit spans in its pieces for TRL, whose string tokenisation must see what the processor makes of units."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.speechgpt.unit_pieces import UnitPieces
    from .sft import SpeechGPTTrainingConfig

logger = logging.getLogger(__name__)


def learn_unit_pieces(config: SpeechGPTTrainingConfig) -> UnitPieces:
    """A BPE of `unit_bpe_vocab_size` pieces over the unit spans of the stage's rows (the rows it trains on)."""
    from ..data.loading import load_speechinstruct
    from ..models.speechgpt.prompt_format import all_unit_spans
    from ..models.speechgpt.unit_pieces import UnitPieces

    dataset = load_speechinstruct(config.dataset_name, config.dataset_config, split=config.dataset_split)
    if config.max_train_samples is not None:
        dataset = dataset.select(range(min(config.max_train_samples, len(dataset))))
    # `text` holds a row whole (prompt and completion), so counting it beside them would count every run twice
    columns = (
        ["text"]
        if "text" in dataset.column_names
        else [c for c in ("prompt", "completion") if c in dataset.column_names]
    )
    spans = [span for column in columns for text in dataset[column] for span in all_unit_spans(text)]
    if not spans:
        raise ValueError(
            f"unit_bpe_vocab_size={config.unit_bpe_vocab_size} learns a BPE over the stage's unit spans, but the "
            f"{config.dataset_config} rows hold none: learn it on the modality-adaptation stage, or set it to 0."
        )
    pieces = UnitPieces.learn(spans, config.num_units, config.unit_bpe_vocab_size)
    logger.info("A BPE of %d pieces over %d unit spans (K=%d).", len(pieces), len(spans), config.num_units)
    return pieces


def in_unit_pieces(dataset: Any, processor: Any | None, name: str) -> Any:
    """`dataset` with its unit spans written in the processor's unit BPE, the pieces TRL's string tokenisation
    must see (the rows themselves stay in units); unchanged without one."""
    if processor is None or processor.unit_pieces is None:
        return dataset
    from datasets.fingerprint import Hasher

    return dataset.map(
        lambda row: {column: processor.with_unit_pieces(text) for column, text in row.items()},
        new_fingerprint=Hasher.hash([getattr(dataset, "_fingerprint", ""), processor.unit_merges]),
        desc=f"Writing {name}'s units as {len(processor.unit_pieces)} BPE pieces",
    )


__all__ = ["in_unit_pieces", "learn_unit_pieces"]
