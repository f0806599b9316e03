"""`speechgpt-hf quickstart`: the recipe in miniature, offline."""

import argparse

HELP = (
    "Run the whole recipe in miniature (voices, units, SpeechInstruct, 3 LM stages, vocoder, a spoken chat), offline."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="quickstart_output", help="where every artefact is written")
    parser.add_argument("--num-units", type=int, default=64, help="size K of the unit vocabulary")
    parser.add_argument("--lm-steps", type=int, default=200, help="training steps of each LM stage")
    parser.add_argument("--vocoder-steps", type=int, default=100, help="GAN steps of the vocoder")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.quickstart import QuickstartSettings, run_quickstart

    settings = QuickstartSettings(
        num_units=args.num_units, lm_steps=args.lm_steps, vocoder_steps=args.vocoder_steps, seed=args.seed
    )
    run_quickstart(args.output_dir, settings)
