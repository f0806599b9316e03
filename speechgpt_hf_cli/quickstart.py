"""`speechgpt-hf quickstart`: the recipe in miniature, offline, ending with held-out numbers."""

import argparse

from .reproduce import parse_overrides

HELP = (
    "Run the whole recipe in miniature (held-out corpus, Whisper units, SpeechInstruct, 3 LM stages, vocoder, "
    "held-out evaluation, a spoken exchange), offline; a rerun resumes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="quickstart_output", help="where every artefact is written")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="override the quickstart preset's settings, e.g. --set num_units=64 unit_encoder=mfcc",
    )
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.reproduction import PRESETS
    from speechgpt_hf.reproduction.quickstart import run_quickstart

    settings = PRESETS["quickstart"].override(**parse_overrides(args.set))
    run_quickstart(args.output_dir, settings, overwrite=args.overwrite)
