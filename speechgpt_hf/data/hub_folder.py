"""Writes SpeechInstruct as a Hub-ready folder of parquet shards, resumably, and pushes it to the Hub.

Layout: `{config}/{split}-{i:05d}-of-{n:05d}.parquet` (`{split}-{i:05d}.parquet` for streamed sources), a
README.md whose YAML `configs:` lets `load_dataset(folder_or_repo, "cross_modal")` find each
configuration, and a dataset card rendered from hub_cards/speechinstruct_card.md with the real counts.
Each finished shard leaves a small record under `.speechinstruct/` (with the names of the items it skipped), so a
rerun skips what is done; `.speechinstruct/summary.json` names every skipped item of the folder. Every file is
written under a staging name and renamed into place, so a run killed at any moment leaves only whole files.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..safe_files import atomic_path, atomic_write_json, read_json_file
from ..stages import CHAIN_OF_MODALITY, CROSS_MODAL, MODALITY_ADAPTATION
from .skipped import SkippedItems
from .speechinstruct import Shard, SpeechInstruct, fingerprint
from .word_splicing import read_sentences

logger = logging.getLogger(__name__)

STATE_DIR = ".speechinstruct"
SUMMARY_FILE = "summary.json"
CARD_TEMPLATE = "speechinstruct_card.md"
STAGES = {
    MODALITY_ADAPTATION: "1: modality adaptation",
    CROSS_MODAL: "2: cross-modal",
    CHAIN_OF_MODALITY: "3: chain-of-modality",
}
# Settings that change the rows: a rerun with other values must not mix its shards with the old ones.
_SETTINGS = (
    "asr_probability",
    "asr_and_tts",
    "multi_turn_probability",
    "max_turns",
    "max_tokens",
    "max_audio_seconds",
    "com_all_tasks",
    "shard_size",
    "seed",
    "system_prompt",
)


@dataclass
class SplitSummary:
    """What one split of one configuration holds: rows, source items read, skipped items (by reason, named),
    seconds."""

    rows: int = 0
    items: int = 0
    shards: int = 0
    reused_shards: int = 0
    skipped: SkippedItems = field(default_factory=SkippedItems)
    seconds: Counter = field(default_factory=Counter)

    def add(self, record: Mapping[str, Any], reused: bool) -> None:
        self.rows += record["rows"]
        self.items += record["items"]
        self.shards += 1
        self.reused_shards += int(reused)
        self.skipped.update(SkippedItems(record["skipped"], record.get("skipped_names")))  # older records: counts only
        if not reused:
            self.seconds.update(record["seconds"])


# The builder a forked worker uses: set before the pool starts, inherited by fork, never pickled.
_FORKED_BUILDER: SpeechInstruct | None = None


def _shard_paths(folder: Path, config: str, shard: Shard, num_shards: int | None) -> tuple[Path, Path]:
    suffix = f"-of-{num_shards:05d}" if num_shards is not None else ""
    data = folder / config / f"{shard.split}-{shard.index:05d}{suffix}.parquet"
    return data, folder / STATE_DIR / config / f"{shard.split}-{shard.index:05d}.json"


def _write_shard(builder: SpeechInstruct, shard: Shard, items: Iterable, data: Path, state: Path) -> dict[str, Any]:
    """Generates one shard, writes its parquet file atomically, then its record (the mark of a finished shard).

    A shard whose items were all skipped gets a record but no file: datasets cannot read empty parquet files.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .rows import FEATURES

    items = list(items)
    result = builder.generate_shard(shard, items)
    if result.rows:
        with atomic_path(data) as staging:
            pq.write_table(pa.Table.from_pylist(result.rows, schema=FEATURES.arrow_schema), staging)
    else:
        data.unlink(missing_ok=True)
    record = {
        "file": data.name if result.rows else None,
        "rows": len(result.rows),
        "items": len(items),
        "skipped": dict(result.skipped),
        "skipped_names": result.skipped.names,
        "seconds": result.seconds,
    }
    atomic_write_json(state, record, indent=1)
    return record


def _read_record(state: Path) -> dict[str, Any]:
    """The record of a finished shard; a damaged one raises CorruptFileError naming it and the way out."""
    return read_json_file(state, "delete it and build again with the same settings: that shard is rebuilt.")


def _finished(data: Path, state: Path) -> dict[str, Any] | None:
    """The record of a shard finished by an earlier run (its file still there), else None."""
    if not state.exists():
        return None
    record = _read_record(state)
    return record if record["file"] is None or data.exists() else None


def _forked_shard(task: tuple[Shard, str, str]) -> tuple[Shard, dict[str, Any]]:
    shard, data, state = task
    import torch

    torch.set_num_threads(1)  # a forked child must not use its parent's OpenMP pool (libgomp can hang)
    builder = _FORKED_BUILDER
    return shard, _write_shard(builder, shard, builder.shard_items(shard), Path(data), Path(state))


def _check_settings(builder: SpeechInstruct, folder: Path, overwrite: bool) -> None:
    config = builder.config
    settings = {name: getattr(config, name) for name in _SETTINGS}
    settings["unit_tokenizer"] = str(builder.input_ids["unit_tokenizer"])
    settings["builder_version"] = str(builder.VERSION)  # a new version renders rows differently: never mix them
    if config.spliced_asr_rows:  # recorded only when used, so that folders built before the setting still resume
        settings["spliced_asr_rows"] = config.spliced_asr_rows
        settings["spliced_texts"] = fingerprint(read_sentences(config.spliced_texts))
    path = folder / STATE_DIR / config.name / "settings.json"
    if path.exists() and not overwrite:
        previous = read_json_file(path, "build again with --overwrite (overwrite=True): that configuration is rebuilt.")
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed:
            raise ValueError(
                f"{folder / config.name} was built with other settings ({', '.join(changed)}); resuming would mix "
                "incompatible shards. Use another folder, or overwrite=True (--overwrite) to rebuild it."
            )
    if overwrite:  # the old settings stay until the last old shard is gone, so a kill here mixes nothing
        for old in [*(folder / config.name).glob("*.parquet"), *(folder / STATE_DIR / config.name).glob("*.json")]:
            if old != path:
                old.unlink()
    atomic_write_json(path, settings, indent=1)


def _build_split(builder: SpeechInstruct, folder: Path, split: str, shards: list[Shard], num_proc: int) -> SplitSummary:
    from tqdm.auto import tqdm

    global _FORKED_BUILDER
    name, summary = builder.config.name, SplitSummary()
    streamed = shards[0].stop is None
    total = None if streamed else shards[-1].stop
    with tqdm(total=total, desc=f"{name}/{split}", unit="item") as bar:
        if streamed:
            for shard, items in builder.iter_stream_shards(split):
                data, state = _shard_paths(folder, name, shard, None)
                record = _finished(data, state)
                reused = record is not None
                summary.add(record if reused else _write_shard(builder, shard, items, data, state), reused)
                bar.update(len(items))
            return summary
        todo, done = [], {}  # done: shard index -> (record, reused), added in shard order so names keep source order
        for shard in shards:
            data, state = _shard_paths(folder, name, shard, len(shards))
            record = _finished(data, state)
            if record is not None:
                done[shard.index] = record, True
                bar.update(shard.stop - shard.start)
            else:
                todo.append((shard, str(data), str(state)))
        if num_proc > 1 and len(todo) > 1:
            _FORKED_BUILDER = builder
            with multiprocessing.get_context("fork").Pool(min(num_proc, len(todo))) as pool:
                for shard, record in pool.imap_unordered(_forked_shard, todo):
                    done[shard.index] = record, False
                    bar.update(shard.stop - shard.start)
            _FORKED_BUILDER = None
        else:
            for shard, data, state in todo:
                record = _write_shard(builder, shard, builder.shard_items(shard), Path(data), Path(state))
                done[shard.index] = record, False
                bar.update(shard.stop - shard.start)
    for index in sorted(done):
        summary.add(*done[index])
    return summary


def build_speechinstruct_folder(
    output_dir: str | Path,
    configs: Mapping[str, Mapping[str, Any]] | Sequence[str],
    num_proc: int = 1,
    overwrite: bool = False,
    repo_id: str | None = None,
    **common: Any,
) -> dict[str, dict[str, SplitSummary]]:
    """Builds each named configuration into `output_dir` and renders its README/card; returns the summaries.

    `configs` names the configurations, or maps each to its own SpeechInstructConfig settings; `common`
    settings apply to all (e.g. `unit_tokenizer=`, `audio_source=`, `seed=`). `num_proc` processes generate
    shards side by side (a streamed source is read by one). `repo_id` is only used in the card's examples.
    """
    folder = Path(output_dir)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        summaries = _build_configs(folder, configs, num_proc, overwrite, common)
    except BaseException:
        if created and not any(folder.glob("*/*.parquet")):  # nothing worth resuming: leave no stray folder
            shutil.rmtree(folder, ignore_errors=True)
        raise
    write_readme(folder, repo_id=repo_id)
    write_summary(folder)
    return summaries


_EMPTY_HINTS = {
    "missing transcript": "give transcripts: a metadata.csv (file_name + transcription columns) or metadata.jsonl "
    "beside the audio, as datasets' audiofolder reads them, a .txt file beside each recording, or "
    "--transcript-column for a Hub corpus",
    "corrupt audio": "check that the files decode (ffmpeg -i FILE)",
    "too long": "raise --max-audio-seconds",
}


def _warn_if_empty(name: str, split: str, summary: SplitSummary) -> None:
    """A warning saying why a configuration came out with no rows, and how to fix it."""
    if summary.rows:
        return
    reasons = ", ".join(f"{r}: {n}" for r, n in Counter(summary.skipped).most_common()) or "no source items"
    hints = "; ".join(_EMPTY_HINTS[reason] for reason in summary.skipped if reason in _EMPTY_HINTS)
    logger.warning(f"{name}/{split} has 0 rows from {summary.items} items (skipped {reasons}). {hints}".strip())


def _build_configs(
    folder: Path,
    configs: Mapping[str, Mapping[str, Any]] | Sequence[str],
    num_proc: int,
    overwrite: bool,
    common: Mapping[str, Any],
) -> dict[str, dict[str, SplitSummary]]:
    """Builds each configuration into `folder` (see `build_speechinstruct_folder`) and records its description."""
    configs = {name: {} for name in configs} if not isinstance(configs, Mapping) else configs
    summaries: dict[str, dict[str, SplitSummary]] = {}
    descriptions = _read_descriptions(folder)
    for name, settings in configs.items():
        kwargs = {**common, **settings}
        builder = SpeechInstruct(config_name=name, cache_dir=str(folder / STATE_DIR / "cache"), **kwargs)
        _check_settings(builder, folder, overwrite)
        summaries[name] = {
            split: _build_split(builder, folder, split, shards, num_proc) for split, shards in builder.plan().items()
        }
        descriptions[name] = describe_build(builder)
        for split, summary in summaries[name].items():
            logger.info(
                "%s/%s: %d rows from %d items; skipped %s",
                name,
                split,
                summary.rows,
                summary.items,
                dict(summary.skipped) or "nothing",
            )
            _warn_if_empty(name, split, summary)
    atomic_write_json(folder / STATE_DIR / "descriptions.json", descriptions, indent=1)
    return summaries


def _read_descriptions(folder: Path) -> dict[str, dict[str, str]]:
    """The card's line on each configuration built into `folder`, by any run."""
    path = folder / STATE_DIR / "descriptions.json"
    way_out = "delete it and build again with every configuration of the folder: it is written anew."
    return read_json_file(path, way_out) if path.exists() else {}


def _describe_units(spec: Any) -> str:
    if spec is None:
        return "an unfitted MFCC SpeechUnitTokenizer"
    if isinstance(spec, (str, Path)):
        return f"the SpeechUnitTokenizer in {_describe_source(spec, hub_kind='repo')}"
    config = getattr(spec, "config", None)
    keys = (
        ("feature_type", "layer", "num_units")
        if getattr(config, "feature_type", "") == "encoder"
        else ("feature_type", "num_units")
    )
    details = [f"{k} {getattr(config, k)}" for k in keys if hasattr(config, k)]
    return f"{type(spec).__name__} ({', '.join(details)})" if details else type(spec).__name__


def _describe_source(source: Any, hub_kind: str = "dataset") -> str:
    """A Hub id as is; a local path by its name only (a card must not leak the builder's file system)."""
    if isinstance(source, (str, Path)) and Path(source).exists():
        return f"the local {'folder' if Path(source).is_dir() else 'file'} {Path(source).name!r}"
    if isinstance(source, str):
        return f"the Hub {hub_kind} {source!r}"
    return f"a {type(source).__name__}"


def describe_build(builder: SpeechInstruct) -> dict[str, str]:
    """For the card: the unit tokenizer, and one line on the sources and the recipe of a configuration."""
    config = builder.config
    parts = [f"seed {config.seed}", f"at most {config.token_limit} tokens a row"]
    if config.name == CHAIN_OF_MODALITY:
        count = len(builder.sources()["train"])
        instructions = "the built-in set" if config.instructions is None else _describe_source(config.instructions)
        instructions = f"{count} instruction pairs from {instructions}"
        tts = config.tts if isinstance(config.tts, str) else getattr(config.tts, "name", type(config.tts).__name__)
        tasks = "all of" if config.com_all_tasks else "one of"
        parts[:0] = [
            instructions,
            f"speech by {tts}",
            f"{tasks} {', '.join(config.com_tasks)} a pair",
        ]
    else:
        parts.insert(0, f"speech from {_describe_source(config.audio_source)}")
        if config.name == CROSS_MODAL:
            asr = (
                "ASR and TTS of every utterance"
                if config.asr_and_tts
                else f"ASR with probability {config.asr_probability}, else TTS"
            )
            if config.spliced_asr_rows:
                asr += f", and {config.spliced_asr_rows} ASR rows an utterance of new sentences spliced from its words"
            parts.insert(1, asr)
            parts.insert(2, f"multi-turn probability {config.multi_turn_probability} (up to {config.max_turns} turns)")
    return {"units": _describe_units(config.unit_tokenizer), "recipe": "; ".join(parts) + "."}


def folder_counts(folder: str | Path) -> dict[str, dict[str, SplitSummary]]:
    """Per configuration and split, the totals recorded by every finished shard in the folder."""
    counts: dict[str, dict[str, SplitSummary]] = {}
    for record_path in sorted((Path(folder) / STATE_DIR).glob("*/*-[0-9]*.json")):
        config, split = record_path.parent.name, record_path.stem.rsplit("-", 1)[0]
        record = _read_record(record_path)
        if record["file"] is None or (Path(folder) / config / record["file"]).exists():
            counts.setdefault(config, {}).setdefault(split, SplitSummary()).add(record, reused=True)
    return counts


def write_summary(folder: str | Path) -> Path:
    """Writes `.speechinstruct/summary.json`: per configuration and split, the rows, the source items read and every
    skipped item by reason and name, as the records of the folder's finished shards give them."""
    summary = {
        config: {
            split: {
                "rows": v.rows,
                "source_items": v.items,
                "skipped": dict(v.skipped),
                "skipped_names": v.skipped.names,
            }
            for split, v in splits.items()
        }
        for config, splits in folder_counts(folder).items()
    }
    return atomic_write_json(Path(folder) / STATE_DIR / SUMMARY_FILE, summary, indent=1)


def write_readme(folder: str | Path, repo_id: str | None = None, license: str = "other") -> Path:
    """Renders README.md (YAML `configs:` plus the dataset card) from what the folder actually holds."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from ..hub.cards import template_path

    folder = Path(folder)
    counts = folder_counts(folder)
    if not counts:
        raise ValueError(f"{folder} holds no finished SpeechInstruct shards to describe.")
    total_rows = sum(s.rows for splits in counts.values() for s in splits.values())
    card_data = DatasetCardData(
        pretty_name="SpeechInstruct",
        language=["en"],
        license=license,
        task_categories=["automatic-speech-recognition", "text-to-speech", "text-generation"],
        tags=["speechgpt", "speech-units", "instruction-tuning", "synthetic"],
        size_categories=[_size_category(total_rows)],
        configs=[
            {
                "config_name": config,
                "data_files": [{"split": s, "path": f"{config}/{s}-*.parquet"} for s, v in splits.items() if v.rows],
            }
            for config, splits in counts.items()
            if any(v.rows for v in splits.values())
        ],
    )
    table = [
        {
            "config": c,
            "stage": STAGES.get(c, c),
            "split": s,
            "rows": v.rows,
            "source_items": v.items,
            "skipped_total": sum(v.skipped.values()),
        }
        for c, splits in counts.items()
        for s, v in splits.items()
    ]
    reasons = [
        {"config": c, "split": s, "reason": reason, "count": n}
        for c, splits in counts.items()
        for s, v in splits.items()
        for reason, n in sorted(v.skipped.items())
    ]
    descriptions = _read_descriptions(folder)
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template_path(CARD_TEMPLATE)),
        pretty_name="SpeechInstruct",
        repo_id=repo_id or folder.name,
        unit_tokenizer=" / ".join(sorted({d["units"] for d in descriptions.values()})) or "not recorded",
        counts=table,
        skipped_reasons=reasons,
        settings=[{"config": c, "description": descriptions[c]["recipe"]} for c in counts if c in descriptions],
    )
    path = folder / "README.md"
    with atomic_path(path) as staging:
        card.save(staging)
    return path


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "10M<n<100M"


__all__ = [
    "SplitSummary",
    "build_speechinstruct_folder",
    "describe_build",
    "folder_counts",
    "write_readme",
    "write_summary",
]
