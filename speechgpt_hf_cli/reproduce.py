"""`speechgpt-hf reproduce`: the recipe at small scale on a held-out corpus, with held-out numbers."""

import argparse

HELP = "Reproduce SpeechGPT at small scale: corpus, units, three stages, vocoder, then held-out evaluation."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="reproduction_output", help="where every step writes (resumable)")
    parser.add_argument(
        "--preset",
        default="hour",
        choices=("hour", "quickstart", "pretrained"),
        help="sizes of the run (pretrained: SmolLM2-135M-Instruct as the base, reading a BPE over Whisper units)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="override settings, e.g. --set num_train=500 unit_encoder=mfcc (JSON values: stage_steps='{...}')",
    )
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")


def parse_overrides(pairs: list[str]) -> dict:
    """`["num_train=500", "voices=[\"piper:joe\"]"]` -> settings overrides (values read as JSON where they parse)."""
    import json

    overrides = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE, got {pair!r}.")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            overrides[field] = value
        if isinstance(overrides[field], list):
            overrides[field] = tuple(overrides[field])
    return overrides


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.reproduction import PRESETS, run_reproduction

    settings = PRESETS[args.preset].override(**parse_overrides(args.set))
    run_reproduction(args.output_dir, settings, overwrite=args.overwrite)
    print(f"Report: {args.output_dir}/report.md")
