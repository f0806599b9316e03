"""`speechgpt-hf <verb>`: the command line of speechgpt-hf.

This package sits beside `speechgpt_hf` rather than inside it because importing `speechgpt_hf`
registers the Auto classes, which loads torch and transformers (seconds). Each verb is a module here
holding only its argparse definition; its `run(args)` imports the library when the verb runs, so every
`--help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._verbs import add_verbs

# Verb name -> module in this package defining HELP, add_arguments(parser) and run(args).
COMMANDS: dict[str, str] = {
    "quickstart": "quickstart",
    "convert": "convert",
    "fit-units": "fit_units",
    "extract-units": "extract_units",
    "train": "train",
    "train-vocoder": "train_vocoder",
    "build-speechinstruct": "build_speechinstruct",
    "evaluate": "evaluate",
    "reproduce": "reproduce",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechgpt-hf", description="SpeechGPT on the Hugging Face stack.")
    add_verbs(parser, COMMANDS, dest="command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args._passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    result = args._run(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
