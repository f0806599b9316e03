"""Bulk unit extraction: adds unit columns to a datasets Dataset, in parallel, skipping and counting bad items.

`add_unit_columns` runs `Dataset.map(batched=True, num_proc=…)`: each worker loads the tokenizer once,
decodes the audio itself (so a corrupt file fails its row, not the run) and writes `units`, `durations`
and `unit_error` (None when fine). `add_unit_columns_distributed` gives each accelerate process one
contiguous shard and gathers the shards in order through disk.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..safe_files import atomic_write_json, read_json_file, staged_folder
from .skipped import capped

if TYPE_CHECKING:
    from datasets import Dataset

    from ..models.unit_tokenizer.modeling_unit_tokenizer import SpeechUnitTokenizer

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif")
_TOKENIZERS: dict[str, SpeechUnitTokenizer] = {}


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
    return capped([f"  {what} {index}: {reason}" for index, reason in skipped], shown=shown)


def _tokenizer(path: str, threads: int | None, device: str | None = None) -> SpeechUnitTokenizer:
    """The tokenizer saved at `path`, loaded once per process (onto `device` when given)."""
    if path not in _TOKENIZERS:
        import torch

        from ..models.unit_tokenizer import SpeechUnitTokenizer

        if threads:
            torch.set_num_threads(threads)
        _TOKENIZERS[path] = SpeechUnitTokenizer.from_pretrained(path).eval().to(device or "cpu")
    return _TOKENIZERS[path]


def _encode_batch(
    batch: dict[str, list[Any]],
    tokenizer_path: str,
    audio_column: str,
    merge: bool,
    precision: str,
    threads: int | None,
    device: str | None,
) -> dict[str, list[Any]]:
    from ..audio import AudioInputError
    from ..models.unit_tokenizer import UnitSequence, merge_units

    tokenizer = _tokenizer(tokenizer_path, threads, device)
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


def undecoded(dataset: Dataset, audio_column: str = "audio") -> Dataset:
    """`dataset` with its Audio column read as undecoded {"bytes", "path"} values, so that each item is decoded by
    `load_audio` on its own and a corrupt file raises `AudioInputError` for that item instead of failing the read."""
    from datasets import Audio

    if isinstance((dataset.features or {}).get(audio_column), Audio):
        return dataset.cast_column(audio_column, Audio(decode=False))
    return dataset


def _tokenizer_path(tokenizer: SpeechUnitTokenizer | str | Path, scratch: str) -> str:
    if isinstance(tokenizer, (str, Path)):
        return str(tokenizer)
    tokenizer.save_pretrained(scratch)
    return scratch


def add_unit_columns(
    dataset: Dataset,
    tokenizer: SpeechUnitTokenizer | str | Path,
    audio_column: str = "audio",
    batch_size: int = 16,
    num_proc: int | None = None,
    merge: bool = True,
    precision: str = "float32",
    progress: bool = True,
    keep_failed: bool = True,
    device: str | None = None,
) -> tuple[Dataset, ExtractionReport]:
    """`dataset` with `units`, `durations` and `unit_error` columns added, and a report of what failed.

    `tokenizer` is a SpeechUnitTokenizer or its path/repo id (workers load it from there). An Audio column
    is read undecoded and decoded per row, so audio refused with `speechgpt_hf.audio.AudioInputError` (corrupt,
    empty, too short) fails only its row: its units are empty and `unit_error` says why. Any other error (a
    missing soundfile, torchcodec or FFmpeg) stops the run. With `num_proc`, the CPU threads are split between workers.
    `keep_failed=False` leaves the failed rows out of the returned dataset (the report still lists them, by their
    index in the input), so that everything saved from it reads back. `device` ("cuda:0"…) is where the tokenizer
    runs (the CPU by default); `progress=False` hides the progress bar.
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
    with tempfile.TemporaryDirectory(prefix="unit-tokenizer-") as scratch, _progress_bars(progress):
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
                "device": device,
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


@contextmanager
def _progress_bars(shown: bool) -> Iterator[None]:
    """datasets' progress bars as they were, or off while the block runs."""
    import datasets as bars

    if shown or bars.are_progress_bars_disabled():
        yield
        return
    bars.disable_progress_bars()
    try:
        yield
    finally:
        bars.enable_progress_bars()


def _without_failures(encoded: Dataset, report: ExtractionReport) -> Dataset:
    """`encoded` less the rows the report lists as failed."""
    if not report.failed:
        return encoded
    return encoded.filter(lambda error: error is None, input_columns="unit_error", desc="Leaving out failed rows")


def _report(errors: list[str | None]) -> ExtractionReport:
    """The report of a run whose rows ended with these `unit_error` values."""
    failures = [(index, error) for index, error in enumerate(errors) if error is not None]
    return ExtractionReport(total=len(errors), encoded=len(errors) - len(failures), failures=failures)


def add_unit_columns_distributed(
    dataset: Dataset,
    tokenizer: SpeechUnitTokenizer | str | Path,
    output_dir: str | Path,
    shard_size: int = 1000,
    **kwargs: Any,
) -> tuple[Dataset, ExtractionReport]:
    """`add_unit_columns` across accelerate or torchrun processes, resumable: every process returns the whole dataset
    with units (less the failed rows with `keep_failed=False`), the same as one process would.

    The rows are cut into shards of `shard_size` (the cut does not depend on the process count); the processes share
    the shards not yet done and save each finished one to `output_dir/shard-NNNNN`, so a run started again after a
    kill keeps the finished shards and encodes only the rest. Each process reports every shard it finishes on stderr.
    Without a `device`, each process encodes on its own accelerator (cpu with `num_proc` workers).
    """
    from datasets import concatenate_datasets, load_from_disk

    state = _process_state()
    keep_failed = kwargs.pop("keep_failed", True)
    if kwargs.get("device") is None and not (kwargs.get("num_proc") or 0) > 1:
        kwargs["device"] = str(state.device)
    output_dir = Path(output_dir)
    num_shards = max(1, -(-len(dataset) // shard_size))
    manifest = _manifest(dataset, tokenizer, shard_size, kwargs)
    if state.is_main_process:
        _claim(output_dir, manifest)
    state.wait_for_everyone()  # the manifest is in place before any process reads it
    _check_manifest(output_dir, manifest)
    pending = [index for index in range(num_shards) if not _shard_path(output_dir, index).is_dir()]
    state.wait_for_everyone()  # every process has listed the pending shards before any is written
    mine = pending[state.process_index :: state.num_processes]
    progress = _ShardProgress(state.process_index, state.num_processes, num_shards, num_shards - len(pending), mine)
    for index in mine:
        rows = range(index * shard_size, min(len(dataset), (index + 1) * shard_size))
        encoded, report = add_unit_columns(dataset.select(rows), tokenizer, progress=False, **kwargs)
        _save_shard(encoded, output_dir, index)
        progress.shard_done(index, rows, report)
    state.wait_for_everyone()
    merged = concatenate_datasets([load_from_disk(str(_shard_path(output_dir, i))) for i in range(num_shards)])
    report = _report(merged["unit_error"])
    return (merged if keep_failed else _without_failures(merged, report)), report


def _process_state() -> Any:
    """accelerate's PartialState, on the gloo backend where no GPU is (or ACCELERATE_USE_CPU asks for the CPU)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


_MANIFEST = "extraction.json"


def _manifest(
    dataset: Dataset, tokenizer: SpeechUnitTokenizer | str | Path, shard_size: int, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """What decides the shards' content: the dataset, the tokenizer, the shard size and the encoding options."""
    defaults = {"audio_column": "audio", "merge": True, "precision": "float32"}
    options = {key: kwargs.get(key, default) for key, default in defaults.items()}
    return {
        "rows": len(dataset),
        "dataset_fingerprint": getattr(dataset, "_fingerprint", None),
        "tokenizer": str(tokenizer) if isinstance(tokenizer, (str, Path)) else type(tokenizer).__name__,
        "shard_size": shard_size,
        **options,
    }


def _claim(output_dir: Path, manifest: dict[str, Any]) -> None:
    """Records what the shards of `output_dir` are made from, unless it is recorded already; shards found without
    a record are of an unknown extraction and are removed first, as only recorded shards are trusted."""
    path = output_dir / _MANIFEST
    if path.exists():
        return
    for unrecorded in output_dir.glob("shard-*"):
        shutil.rmtree(unrecorded)
    atomic_write_json(path, manifest, indent=2)  # the other processes read it whole or not at all


def _check_manifest(output_dir: Path, manifest: dict[str, Any]) -> None:
    """Refuses to resume into `output_dir` when its shards were made from other data or options."""
    way_out = f"delete {output_dir} and run again: its finished shards are encoded again."
    found = read_json_file(output_dir / _MANIFEST, way_out)
    if found != manifest:
        changed = sorted(key for key in {*found, *manifest} if found.get(key) != manifest.get(key))
        raise ValueError(
            f"{output_dir} holds shards of another extraction ({', '.join(changed)} differ: {found} here, "
            f"{manifest} now). Delete that folder or choose another one to start over."
        )


def remove_shards(output_dir: str | Path) -> None:
    """Deletes the shards folder of a saved extraction, its manifest last: a kill midway leaves shards that are
    still recorded, never shards without the record that vouches for them."""
    output_dir = Path(output_dir)
    for shard in output_dir.glob("shard-*"):
        shutil.rmtree(shard)
    shutil.rmtree(output_dir)


def _shard_path(output_dir: Path, index: int) -> Path:
    return output_dir / f"shard-{index:05d}"


def _save_shard(encoded: Dataset, output_dir: Path, index: int) -> None:
    """Saves a finished shard in a staging folder renamed into place: a shard folder is only ever complete."""
    with staged_folder(_shard_path(output_dir, index)) as staging:
        encoded.save_to_disk(str(staging))


class _ShardProgress:
    """One stderr line per shard a process finishes: its rows, failures, the process's own count and rate."""

    def __init__(self, rank: int, processes: int, total: int, done_before: int, mine: list[int]) -> None:
        self.prefix = f"[unit extraction, process {rank + 1}/{processes}]"
        self.mine, self.finished, self.start = len(mine), 0, time.perf_counter()
        self.rows = 0
        if rank == 0 and done_before:
            self._say(f"{done_before}/{total} shards done by an earlier run, kept; {total - done_before} to go.")
        self._say(f"{len(mine)} of the {total - done_before} shards left are this process's.")

    def shard_done(self, index: int, rows: range, report: ExtractionReport) -> None:
        self.finished += 1
        self.rows += len(rows)
        rate = self.rows / max(time.perf_counter() - self.start, 1e-9)
        self._say(
            f"shard {index} (rows {rows.start}-{rows.stop - 1}) done: {report.encoded} encoded, "
            f"{report.failed} skipped; {self.finished}/{self.mine} of this process's shards, {rate:.1f} rows/s."
        )

    def _say(self, line: str) -> None:
        print(f"{self.prefix} {line}", file=sys.stderr, flush=True)


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


__all__ = [
    "ExtractionReport",
    "add_unit_columns",
    "add_unit_columns_distributed",
    "audio_dataset",
    "remove_shards",
    "skipped_summary",
    "undecoded",
]
