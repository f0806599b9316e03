"""`speechgpt-hf convert <what>`: the original release's files -> this package's repos."""

import argparse

from ._verbs import add_verbs

HELP = (
    "Convert a checkpoint of the original SpeechGPT release, a CTranslate2 Whisper judge or a mel HiFi-GAN generator "
    "(no fairseq needed)."
)

# What can be converted -> module in this package defining HELP, add_arguments and run.
CONVERTERS: dict[str, str] = {
    "speechgpt": "convert_speechgpt",
    "vocoder": "convert_vocoder",
    "unit-tokenizer": "convert_unit_tokenizer",
    "whisper-ct2": "convert_whisper_ct2",
    "mel-hifigan": "convert_mel_hifigan",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_verbs(parser, CONVERTERS, dest="what")
