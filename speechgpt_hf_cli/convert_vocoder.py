"""`speechgpt-hf convert vocoder`: the original fairseq CodeHiFiGAN unit vocoder -> a UnitHiFiGANVocoder repo."""

import argparse

from ._verbs import existing_path

HELP = "Convert a fairseq CodeHiFiGAN generator file (g_XXXXXXXX / vocoder.pt) and its config.json into a vocoder repo."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=existing_path, help="the generator file: a torch dict {'generator': state_dict}"
    )
    parser.add_argument("config", type=existing_path, help="the vocoder's config.json")
    parser.add_argument("output", help="folder to write the converted repo to (config.json + model.safetensors)")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_unit_hifigan import convert_unit_hifigan

    model = convert_unit_hifigan(args.checkpoint, args.config, args.output)
    params = sum(p.numel() for p in model.parameters())
    print(f"Wrote {args.output} ({params / 1e6:.2f} M parameters, {model.config.num_units} units)")
