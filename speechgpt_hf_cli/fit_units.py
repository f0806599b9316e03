"""`speechgpt-hf fit-units`: fit a unit codebook (k-means) on audio and save a SpeechUnitTokenizer."""

import argparse
import os
from pathlib import Path
from typing import Any

from ._verbs import UsageError, check_pretrained, existing_path

HELP = (
    "Fit the k-means codebook of a SpeechUnitTokenizer on audio (MFCC features, or a layer of a speech encoder: "
    "HuBERT, Wav2Vec2, WavLM or Whisper)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "audio", nargs="+", type=existing_path, help="audio files or folders, parquet files, or a saved dataset folder"
    )
    parser.add_argument("--output-dir", required=True, help="where the fitted SpeechUnitTokenizer is saved")
    parser.add_argument("--num-units", type=int, default=1000, help="number K of units (k-means clusters)")
    parser.add_argument(
        "--encoder",
        default=None,
        help="a HuBERT/Wav2Vec2/WavLM or Whisper repo or folder (of a Whisper model only the encoder is kept), or "
        "a bundled Whisper: whisper-tiny.en (4 layers) or whisper-base (6 layers, multilingual); MFCC when omitted",
    )
    parser.add_argument(
        "--unit-tokenizer",
        "--tokenizer",
        dest="unit_tokenizer",
        default=None,
        help="re-fit the codebook of an existing SpeechUnitTokenizer instead (--tokenizer: the former name)",
    )
    parser.add_argument(
        "--layer",
        type=int,
        default=11,
        help="encoder layer whose output is clustered (1-based; 11 is SpeechGPT's mHuBERT layer, Whisper tiny has "
        "4, base 6)",
    )
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=200_000,
        help="size of the uniform random sample of frames k-means runs on (bounds memory however large the corpus)",
    )
    parser.add_argument("--max-iter", type=int, default=100, help="most k-means passes over the sample")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="stop once a pass lowers the inertia by less than this fraction",
    )
    parser.add_argument(
        "--batch-size", type=int, default=10000, help="frames per chunk of the nearest-centroid search (bounds memory)"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    import torch

    from speechgpt_hf.data.unit_extraction import audio_dataset, skipped_summary, undecoded
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

    output_dir = _output_folder(args.output_dir)
    if args.unit_tokenizer:
        tokenizer = SpeechUnitTokenizer.from_pretrained(check_pretrained(args.unit_tokenizer, "--unit-tokenizer"))
    elif args.encoder:
        args.encoder = _encoder_path(args.encoder)
        _check_layer(args)
        tokenizer = SpeechUnitTokenizer.from_encoder(args.encoder, layer=args.layer, num_units=args.num_units)
    else:
        tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=args.num_units))
    if torch.cuda.is_available():
        tokenizer.to("cuda")
    dataset = undecoded(audio_dataset([str(path) for path in args.audio], args.audio_column), args.audio_column)
    result = tokenizer.eval().fit(
        dataset[args.audio_column],
        max_frames=args.max_frames,
        batch_size=args.batch_size,
        max_iter=args.max_iter,
        seed=args.seed,
        tolerance=args.tolerance,
    )
    _save(tokenizer.cpu(), result, args, output_dir)
    for index, inertia in enumerate(result.inertia_history, start=1):
        print(f"pass {index}: inertia {inertia:.6g} ({inertia / result.num_frames:.4g} a frame)")
    stop = "converged" if result.converged else f"stopped at --max-iter {args.max_iter}"
    print(
        f"Fitted {tokenizer.config.num_units} units: inertia {result.inertia:.4g} "
        f"({result.inertia_per_frame:.4g} a frame) after {result.iterations} passes ({stop}) "
        f"over a sample of {result.num_frames} of {result.frames_seen} frames. Saved to {args.output_dir}"
    )
    print(skipped_summary(result.skipped, len(dataset)))


def _output_folder(value: str) -> Path:
    """`--output-dir` resolved, once it is clear that replacing it (the fitted tokenizer replaces the whole folder)
    loses no more than an earlier unit tokenizer."""
    from speechgpt_hf.hub.cards import read_json

    folder = Path(value).resolve()
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return folder
    if read_json(folder / "config.json").get("model_type") != "speechgpt_unit_tokenizer":
        raise UsageError(
            f"--output-dir {value} holds other files, and the tokenizer replaces the whole folder: choose a new or "
            "empty folder."
        )
    return folder


def _save(tokenizer: Any, result: Any, args: argparse.Namespace, output_dir: Path) -> None:
    """Saves the tokenizer with its provenance and card in a staging folder renamed onto `output_dir`, so a kill
    leaves the earlier folder or none, never a half one; a re-fit tokenizer's earlier steps are kept."""
    from speechgpt_hf.hub.cards import record_provenance, unit_fit_step, write_model_card
    from speechgpt_hf.safe_files import staged_folder

    audio = ", ".join(path.name for path in args.audio[:3]) + (
        f" and {len(args.audio) - 3} more" if len(args.audio) > 3 else ""
    )
    with staged_folder(output_dir) as staging:
        tokenizer.save_pretrained(staging)
        step = unit_fit_step(result, audio, "speechgpt-hf fit-units")
        record_provenance(staging, step, inherit_from=args.unit_tokenizer)
        write_model_card(staging, repo_id=output_dir.name)


def _encoder_path(name: str) -> str:
    """`--encoder` as a folder or reachable repo id: a bundled Whisper's name becomes its converted folder."""
    from speechgpt_hf.convert.convert_whisper_ct2 import BUNDLED_WHISPER, bundled_whisper

    if name in BUNDLED_WHISPER and not os.path.exists(name):
        try:
            return str(bundled_whisper(name))
        except ImportError as error:
            raise UsageError(f"--encoder {name}: {error}") from error
    return check_pretrained(name, "--encoder")


def _check_layer(args: argparse.Namespace) -> None:
    """Ends the command before any weights load when `--layer` is not a layer of `--encoder`, naming its depth."""
    from transformers import AutoConfig

    depth = AutoConfig.from_pretrained(args.encoder).num_hidden_layers
    if not 1 <= args.layer <= depth:
        raise UsageError(f"--layer {args.layer}: {args.encoder} has {depth} encoder layers; pass --layer 1 to {depth}.")
