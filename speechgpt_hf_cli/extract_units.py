"""`speechgpt-hf extract-units`: add unit columns to a dataset (or a folder of audio) with a SpeechUnitTokenizer."""

import argparse

from ._verbs import check_pretrained, existing_path

HELP = (
    "Extract speech units for a dataset or audio files; files that cannot be read are skipped, left out of the "
    "saved dataset and named in the summary."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "audio", nargs="+", type=existing_path, help="audio files or folders, parquet files, or a saved dataset folder"
    )
    parser.add_argument("--tokenizer", required=True, help="SpeechUnitTokenizer repo id or folder")
    parser.add_argument("--output-dir", required=True, help="the dataset with units is saved here (save_to_disk)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-proc", type=int, default=None, help="parallel worker processes")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--frames", action="store_true", help="frame-level units instead of merged runs")


def run(args: argparse.Namespace) -> int:
    from speechgpt_hf.data.unit_extraction import add_unit_columns, audio_dataset

    tokenizer = check_pretrained(args.tokenizer, "--tokenizer")
    dataset = audio_dataset([str(path) for path in args.audio], args.audio_column)
    encoded, report = add_unit_columns(
        dataset,
        tokenizer,
        audio_column=args.audio_column,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        merge=not args.frames,
        precision=args.precision,
        keep_failed=False,
    )
    encoded.save_to_disk(args.output_dir)
    print(report.summary())
    return 0 if report.encoded else 1
