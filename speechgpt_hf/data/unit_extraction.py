"""Bulk unit extraction: adds unit columns to a datasets Dataset, in parallel, skipping and counting bad items.

`add_unit_columns` runs `Dataset.map(batched=True, num_proc=…)`: each worker loads the tokenizer once,
decodes the audio itself (so a corrupt file fails its row, not the run) and writes `units`, `durations`
and `unit_error` (None when fine). `add_unit_columns_distributed` gives each accelerate process one
contiguous shard and gathers the shards in order through disk.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif")
_TOKENIZERS: dict[str, Any] = {}


@dataclass
class ExtractionReport:
    """What an extraction run did: rows seen, rows encoded, and `(row index, reason)` for each failure."""

    total: int
    encoded: int
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        """`N/M rows encoded, k skipped.`, then one line a skipped row with why (each names its file)."""
        header = f"{self.encoded}/{self.total} rows encoded, {self.failed} skipped."
        return "\n".join([header, *_skipped_lines(self.failures, "row")])


def skipped_summary(skipped: list[tuple[int, str]], total: int, what: str = "item") -> str:
    """`Skipped k of n items that could not be read (left out):` and one line `item i: reason` each."""
    if not skipped:
        return f"Skipped none of {total} {what}s."
    header = f"Skipped {len(skipped)} of {total} {what}s that could not be read (left out):"
    return "\n".join([header, *_skipped_lines(skipped, what)])


def _skipped_lines(skipped: list[tuple[int, str]], what: str, shown: int = 20) -> list[str]:
    """`  item i: reason` for the first `shown` skipped items, then how many more there are."""
    lines = [f"  {what} {index}: {reason}" for index, reason in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"  … and {len(skipped) - shown} more.")
    return lines


def _tokenizer(path: str, threads: int | None) -> Any:
    """The tokenizer saved at `path`, loaded once per process."""
    if path not in _TOKENIZERS:
        import torch

        from ..models.unit_tokenizer import SpeechUnitTokenizer

        if threads:
            torch.set_num_threads(threads)
        _TOKENIZERS[path] = SpeechUnitTokenizer.from_pretrained(path).eval()
    return _TOKENIZERS[path]


def _encode_batch(
    batch: dict[str, list[Any]],
    tokenizer_path: str,
    audio_column: str,
    merge: bool,
    precision: str,
    threads: int | None,
) -> dict[str, list[Any]]:
    from ..audio import AudioInputError
    from ..models.unit_tokenizer import UnitSequence, merge_units

    tokenizer = _tokenizer(tokenizer_path, threads)
    waves, rows, errors = [], [], [None] * len(batch[audio_column])
    for row, item in enumerate(batch[audio_column]):
        try:
            waves.append(tokenizer.load_audio(item))
            rows.append(row)
        except AudioInputError as error:  # bad audio fails its row; a missing decoder library stops the run
            errors[row] = _named(error, item)
    units: list[list[int]] = [[] for _ in errors]
    durations: list[list[int]] = [[] for _ in errors]
    for row, frame_units in zip(rows, tokenizer.frame_units(waves, precision=precision), strict=True):
        sequence = merge_units(frame_units.tolist()) if merge else UnitSequence(frame_units.tolist())
        units[row], durations[row] = sequence.units, sequence.durations
    return {"units": units, "durations": durations, "unit_error": errors}


def _named(error: Exception, item: Any) -> str:
    """The error as a row's reason, starting with the item's file name when the message does not name it."""
    reason = f"{type(error).__name__}: {error}"
    path = item.get("path") if isinstance(item, dict) else None
    return f"{path}: {reason}" if path and str(path) not in reason else reason


def undecoded(dataset: Any, audio_column: str = "audio") -> Any:
    """`dataset` with its Audio column read as undecoded {"bytes", "path"} values, so that each item is decoded by
    `load_audio` on its own and a corrupt file raises `AudioInputError` for that item instead of failing the read."""
    from datasets import Audio

    if isinstance(dataset.features.get(audio_column), Audio):
        return dataset.cast_column(audio_column, Audio(decode=False))
    return dataset


def _tokenizer_path(tokenizer: Any, scratch: str) -> str:
    if isinstance(tokenizer, (str, Path)):
        return str(tokenizer)
    tokenizer.save_pretrained(scratch)
    return scratch


def add_unit_columns(
    dataset: Any,
    tokenizer: Any,
    audio_column: str = "audio",
    batch_size: int = 16,
    num_proc: int | None = None,
    merge: bool = True,
    precision: str = "float32",
    progress: bool = True,
    keep_failed: bool = True,
) -> tuple[Any, ExtractionReport]:
    """`dataset` with `units`, `durations` and `unit_error` columns added, and a report of what failed.

    `tokenizer` is a SpeechUnitTokenizer or its path/repo id (workers load it from there). An Audio column
    is read undecoded and decoded per row, so audio refused with `speechgpt_hf.audio.AudioInputError` (corrupt,
    empty, too short) fails only its row: its units are empty and `unit_error` says why. Any other error (a
    missing soundfile, torchcodec or FFmpeg) stops the run. With `num_proc`, the CPU threads are split between workers.
    `keep_failed=False` leaves the failed rows out of the returned dataset (the report still lists them, by their
    index in the input), so that everything saved from it reads back.
    """
    from datasets import Audio, Features, List, Value

    if audio_column not in dataset.column_names:
        raise ValueError(f"No column {audio_column!r} in the dataset (columns: {dataset.column_names}).")
    original_feature = dataset.features[audio_column]
    dataset = undecoded(dataset, audio_column)
    features = Features(
        {
            **dataset.features,
            "units": List(Value("int32")),
            "durations": List(Value("int32")),
            "unit_error": Value("string"),
        }
    )
    threads = max(1, (os.cpu_count() or 1) // num_proc) if num_proc and num_proc > 1 else None
    with tempfile.TemporaryDirectory(prefix="unit-tokenizer-") as scratch:
        path = _tokenizer_path(tokenizer, scratch)
        encoded = dataset.map(
            _encode_batch,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            fn_kwargs={
                "tokenizer_path": path,
                "audio_column": audio_column,
                "merge": merge,
                "precision": precision,
                "threads": threads,
            },
            desc="Extracting units",
            load_from_cache_file=False,
            features=features,
        )
        _TOKENIZERS.pop(path, None)  # loaded per run: a later run may find different weights at that path
    if isinstance(original_feature, Audio):
        encoded = encoded.cast_column(audio_column, original_feature)
    report = _report(encoded["unit_error"])
    return (encoded if keep_failed else _without_failures(encoded, report)), report


def _without_failures(encoded: Any, report: ExtractionReport) -> Any:
    """`encoded` less the rows the report lists as failed."""
    if not report.failed:
        return encoded
    return encoded.filter(lambda error: error is None, input_columns="unit_error", desc="Leaving out failed rows")


def _report(errors: list[str | None]) -> ExtractionReport:
    """The report of a run whose rows ended with these `unit_error` values."""
    failures = [(index, error) for index, error in enumerate(errors) if error is not None]
    return ExtractionReport(total=len(errors), encoded=len(errors) - len(failures), failures=failures)


def add_unit_columns_distributed(
    dataset: Any, tokenizer: Any, output_dir: str | Path, **kwargs: Any
) -> tuple[Any, ExtractionReport]:
    """`add_unit_columns` across accelerate processes: rank r encodes contiguous shard r, every rank returns the whole
    (less the failed rows with `keep_failed=False`).

    Shards go through `output_dir/shard-r` (save_to_disk); after a barrier each process concatenates them
    in rank order, so row order is kept. Works on one process too.
    """
    from accelerate import PartialState
    from datasets import concatenate_datasets, load_from_disk

    state = PartialState()
    keep_failed = kwargs.pop("keep_failed", True)
    shard = dataset.shard(num_shards=state.num_processes, index=state.process_index, contiguous=True)
    encoded, _ = add_unit_columns(shard, tokenizer, **kwargs)
    output_dir = Path(output_dir)
    encoded.save_to_disk(str(output_dir / f"shard-{state.process_index:05d}"))
    state.wait_for_everyone()
    merged = concatenate_datasets(
        [load_from_disk(str(output_dir / f"shard-{rank:05d}")) for rank in range(state.num_processes)]
    )
    report = _report(merged["unit_error"])
    return (merged if keep_failed else _without_failures(merged, report)), report


def audio_dataset(source: str | Path | list[str], audio_column: str = "audio") -> Any:
    """A Dataset from a saved dataset folder (save_to_disk), parquet file(s), an audio folder or a list of audio files."""
    from datasets import Audio, Dataset, load_from_disk

    paths = [Path(p) for p in source] if isinstance(source, list) else [Path(source)]
    if len(paths) == 1 and paths[0].is_dir() and (paths[0] / "dataset_info.json").exists():
        return load_from_disk(str(paths[0]))
    if all(p.suffix == ".parquet" for p in paths):
        return Dataset.from_parquet([str(p) for p in paths])
    files = []
    for path in paths:
        files += (
            sorted(str(f) for f in path.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            if path.is_dir()
            else [str(path)]
        )
    if not files:
        raise ValueError(f"No audio found in {source} (looked for {', '.join(AUDIO_SUFFIXES)}).")
    return Dataset.from_dict({"path": files, audio_column: files}).cast_column(audio_column, Audio())


__all__ = ["ExtractionReport", "add_unit_columns", "add_unit_columns_distributed", "audio_dataset", "skipped_summary", "undecoded"]
