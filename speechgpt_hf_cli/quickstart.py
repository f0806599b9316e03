"""`speechgpt-hf quickstart`: the recipe in miniature, offline."""

import argparse

HELP = "Run the whole recipe in miniature on an embedded tiny default (offline, minutes on a CPU)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="quickstart_output", help="where every artefact is written")
    parser.add_argument("--num-units", type=int, default=100, help="size K of the unit vocabulary")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.quickstart import run_quickstart

    run_quickstart(args.output_dir, num_units=args.num_units, seed=args.seed)
