"""`speechgpt-hf extract-units`: add unit columns to a dataset (or a folder of audio) with a SpeechUnitTokenizer.

Under `accelerate launch` or `torchrun` the processes share the work shard by shard and give the units one process
gives; finished shards are kept in `--shards-dir`, so the same command started again after a kill resumes.
"""

import argparse
from pathlib import Path
from typing import Any

from ._verbs import UsageError, check_pretrained, existing_path

HELP = (
    "Extract speech units for a dataset or audio files; files that cannot be read are skipped, left out of the "
    "saved dataset and named in the summary."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "audio", nargs="+", type=existing_path, help="audio files or folders, parquet files, or a saved dataset folder"
    )
    parser.add_argument(
        "--unit-tokenizer",
        "--tokenizer",
        dest="unit_tokenizer",
        required=True,
        help="SpeechUnitTokenizer repo id or folder (--tokenizer: the same option's former name)",
    )
    parser.add_argument("--output-dir", required=True, help="the dataset with units is saved here (save_to_disk)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-proc", type=int, default=None, help="parallel worker processes")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--frames", action="store_true", help="frame-level units instead of merged runs")
    parser.add_argument("--shard-size", type=int, default=1000, help="rows a shard: the unit of work and of resuming")
    parser.add_argument(
        "--shards-dir",
        type=Path,
        default=None,
        help="where finished shards are kept until the dataset is saved (default: OUTPUT_DIR.shards)",
    )


def run(args: argparse.Namespace) -> int:
    from speechgpt_hf.data.unit_extraction import add_unit_columns_distributed, audio_dataset

    if args.shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1 (got {args.shard_size}).")
    output_dir = _output_folder(args.output_dir, args.audio)
    tokenizer = check_pretrained(args.unit_tokenizer, "--unit-tokenizer")
    dataset = audio_dataset([str(path) for path in args.audio], args.audio_column)
    shards_dir = args.shards_dir or output_dir.with_name(f"{output_dir.name}.shards")
    encoded, report = add_unit_columns_distributed(
        dataset,
        tokenizer,
        shards_dir,
        shard_size=args.shard_size,
        audio_column=args.audio_column,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        merge=not args.frames,
        precision=args.precision,
        keep_failed=False,
    )
    return _save_once(encoded, report, output_dir, shards_dir)


def _output_folder(value: str, audio: list[Path]) -> Path:
    """`--output-dir` resolved, once it is clear that replacing it (the saved dataset replaces the whole folder)
    loses no more than an earlier saved dataset that is not among the inputs."""
    folder = Path(value).resolve()
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return folder
    if not all((folder / name).is_file() for name in ("dataset_info.json", "state.json")):
        raise UsageError(
            f"--output-dir {value} holds other files, and the dataset replaces the whole folder: choose a new or "
            "empty folder."
        )
    if folder in {path.resolve() for path in audio}:
        raise UsageError(f"--output-dir {value} is also an input: save the dataset with units to another folder.")
    return folder


def _save_once(encoded: Any, report: Any, output_dir: Path, shards_dir: Path) -> int:
    """The main process saves the dataset (staged, so a kill leaves the old folder or none, never a half one),
    prints the summary and removes the shards; every process returns the code."""
    from accelerate import PartialState

    from speechgpt_hf.data.unit_extraction import remove_shards
    from speechgpt_hf.safe_files import staged_folder

    state = PartialState()
    if state.is_main_process:
        with staged_folder(output_dir) as staging:
            encoded.save_to_disk(str(staging))
        print(report.summary())
    state.wait_for_everyone()
    if state.is_main_process:
        remove_shards(shards_dir)
    return 0 if report.encoded else 1
