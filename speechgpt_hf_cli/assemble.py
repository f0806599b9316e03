"""`speechgpt-hf assemble`: make a trained LM name its unit tokenizer and vocoder, one system that loads in one call."""

import argparse

from ._verbs import existing_path

HELP = (
    "Make one SpeechGPT system of a trained LM folder, a unit tokenizer and a vocoder: the LM's config and processor "
    "name both (checked to match the LM's units), so `speechgpt-hf chat FOLDER` or SpeechGPTChat.from_pretrained "
    "loads all three."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lm", type=existing_path, help="the SpeechGPT folder, e.g. the last training stage's output")
    parser.add_argument(
        "--unit-tokenizer", help="the SpeechUnitTokenizer repo id or folder (default: the one it names)"
    )
    parser.add_argument("--vocoder", help="the vocoder repo id or folder (default: the one it names)")
    parser.add_argument(
        "--output-dir", help="write the system into a copy of the LM folder here (default: edit the LM folder)"
    )


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.inference.assemble import assemble_system

    folder = assemble_system(
        args.lm, unit_tokenizer=args.unit_tokenizer, vocoder=args.vocoder, output_dir=args.output_dir
    )
    print(f"Wrote the system to {folder}: talk to it with `speechgpt-hf chat {folder}`.")
