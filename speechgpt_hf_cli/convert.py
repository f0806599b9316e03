"""`speechgpt-hf convert <what>`: the original release's files -> this package's repos."""

import argparse

from ._verbs import add_verbs

HELP = "Convert a checkpoint of the original SpeechGPT release (no fairseq needed)."

# What can be converted -> module in this package defining HELP, add_arguments and run.
CONVERTERS: dict[str, str] = {
    "speechgpt": "convert_speechgpt",
    "vocoder": "convert_vocoder",
    "unit-tokenizer": "convert_unit_tokenizer",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_verbs(parser, CONVERTERS, dest="what")
