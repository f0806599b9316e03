"""`speechgpt-hf convert unit-tokenizer`: fairseq mHuBERT checkpoint + k-means file -> a SpeechUnitTokenizer repo."""

import argparse

from ._verbs import existing_path

HELP = "Convert a fairseq (m)HuBERT checkpoint and its joblib k-means file into a SpeechUnitTokenizer (no fairseq/sklearn)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=existing_path,
        help="fairseq HuBERT checkpoint, e.g. mhubert_base_vp_en_es_fr_it3.pt",
    )
    parser.add_argument(
        "--kmeans",
        required=True,
        type=existing_path,
        help="joblib k-means file, e.g. mhubert_base_vp_en_es_fr_it3_L11_km1000.bin",
    )
    parser.add_argument("--output-dir", required=True, help="where the SpeechUnitTokenizer repo is written")
    parser.add_argument("--layer", type=int, default=11, help="features after this many layers (fairseq output_layer)")
    parser.add_argument("--num-attention-heads", type=int, default=None, help="only if the checkpoint's cfg lacks it")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_mhubert import convert_unit_tokenizer

    tokenizer = convert_unit_tokenizer(
        args.checkpoint, args.kmeans, args.output_dir, args.layer, args.num_attention_heads
    )
    print(f"Wrote a {tokenizer.config.num_units}-unit tokenizer (layer {tokenizer.config.layer}) to {args.output_dir}")
