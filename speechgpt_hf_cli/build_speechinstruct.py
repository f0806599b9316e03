"""`speechgpt-hf build-speechinstruct`: SpeechInstruct as a Hub-ready parquet folder, optionally pushed."""

import argparse
from pathlib import Path
from typing import Any

from ._verbs import UsageError, library_module

HELP = "Build SpeechInstruct (modality adaptation, cross-modal, chain-of-modality) into a Hub-ready folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="folder to write (parquet shards, README.md); a rerun resumes it")
    stages = library_module("stages")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=stages.STAGES,
        metavar="CONFIG",
        help=f"configurations to build, named after the stages they train: {', '.join(stages.STAGES)} (default: all "
        f"three with --audio, else only {stages.CHAIN_OF_MODALITY})",
    )
    source = parser.add_argument_group("sources")
    source.add_argument("--audio", help="speech corpus: a local folder of audio files or a Hub dataset id")
    source.add_argument("--audio-config", help="configuration of the Hub dataset (e.g. 'clean')")
    source.add_argument("--audio-split", help="one split to read (default: every split)")
    source.add_argument("--streaming", action="store_true", help="stream the Hub dataset instead of downloading it")
    source.add_argument("--audio-column", help="default: 'audio'")
    source.add_argument("--transcript-column", help="default: text/transcript/sentence/... whichever exists")
    source.add_argument("--instructions", help="JSON/JSONL instruction-response pairs (default: the built-in set)")
    source.add_argument("--unit-tokenizer", help="SpeechUnitTokenizer folder or repo (default: an unfitted MFCC one)")
    source.add_argument(
        "--tts", default="piper", choices=("piper", "espeak-ng"), help="voice of chain-of-modality speech"
    )
    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--asr-probability", type=float, default=0.5, help="chance of an ASR (else TTS) request")
    recipe.add_argument(
        "--spliced-asr-rows",
        type=int,
        default=0,
        help="cross_modal: this many extra ASR rows an utterance of --spliced-texts sentences, spoken by splicing "
        "the units of words one speaker said (needs word timings in the corpus: words, word_starts, word_ends)",
    )
    recipe.add_argument("--spliced-texts", help="text file of sentences for --spliced-asr-rows, one a line")
    recipe.add_argument("--multi-turn-probability", type=float, default=0.0, help="chance a turn joins a conversation")
    recipe.add_argument("--max-turns", type=int, default=4)
    recipe.add_argument("--max-tokens", type=int, help="longest row (default 1024 / 512 / 1024 by stage)")
    recipe.add_argument("--tokenizer", help="count tokens with this tokenizer (default: an estimate)")
    recipe.add_argument("--max-audio-seconds", type=float, default=30.0, help="longer utterances are skipped")
    recipe.add_argument("--one-format-per-pair", action="store_true", help="one random chain-of-modality format a pair")
    recipe.add_argument("--seed", type=int, default=0)
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--shard-size", type=int, default=1000, help="source items a parquet shard")
    run_group.add_argument("--num-proc", type=int, default=1, help="processes generating shards side by side")
    run_group.add_argument("--overwrite", action="store_true", help="rebuild the named configurations from scratch")
    run_group.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the folder as this dataset repo")
    run_group.add_argument("--private", action="store_true", help="create the Hub repo private")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.data.hub_folder import build_speechinstruct_folder
    from speechgpt_hf.hub.push import check_folder, push
    from speechgpt_hf.stages import CHAIN_OF_MODALITY, CROSS_MODAL, STAGES

    configs = args.configs or (list(STAGES) if args.audio else [CHAIN_OF_MODALITY])
    if not args.audio and set(configs) - {"chain_of_modality"}:
        raise UsageError("modality_adaptation and cross_modal need speech: pass --audio FOLDER_OR_HUB_ID.")
    if args.spliced_asr_rows and CROSS_MODAL not in configs:
        raise UsageError("--spliced-asr-rows makes cross_modal rows: build cross_modal too.")
    if bool(args.spliced_asr_rows) != bool(args.spliced_texts):
        raise UsageError("--spliced-asr-rows and --spliced-texts go together: the rows and the sentences they speak.")
    spliced = {"spliced_asr_rows": args.spliced_asr_rows, "spliced_texts": args.spliced_texts}
    summaries = build_speechinstruct_folder(
        args.output_dir,
        {config: spliced if config == CROSS_MODAL and args.spliced_asr_rows else {} for config in configs},
        num_proc=args.num_proc,
        overwrite=args.overwrite,
        repo_id=args.push_to_hub,
        audio_source=args.audio,
        audio_source_config=args.audio_config,
        audio_split=args.audio_split,
        streaming=args.streaming,
        audio_column=args.audio_column,
        transcript_column=args.transcript_column,
        instructions=args.instructions,
        unit_tokenizer=args.unit_tokenizer,
        tts=args.tts,
        asr_probability=args.asr_probability,
        multi_turn_probability=args.multi_turn_probability,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        tokenizer=args.tokenizer,
        max_audio_seconds=args.max_audio_seconds,
        com_all_tasks=not args.one_format_per_pair,
        seed=args.seed,
        shard_size=args.shard_size,
    )
    _print_summaries(summaries, args.output_dir)
    print(
        f"Wrote {args.output_dir} (read a configuration with "
        f"speechgpt_hf.data.loading.load_speechinstruct({args.output_dir!r}, '<config>'))"
    )
    if args.push_to_hub:
        check_folder(args.output_dir, "dataset")
        url = push(args.output_dir, args.push_to_hub, repo_type="dataset", private=args.private)
        print(f"Pushed to {url}")


def _print_summaries(summaries: dict[str, dict[str, Any]], output_dir: str) -> None:
    """Rows and skipped items of each configuration and split, with the first skipped items of each reason named."""
    from speechgpt_hf.data.hub_folder import STATE_DIR, SUMMARY_FILE

    for config, splits in summaries.items():
        for split, summary in splits.items():
            skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(summary.skipped.items())) or "none"
            reused = f", {summary.reused_shards} of {summary.shards} shards reused" if summary.reused_shards else ""
            print(f"{config}/{split}: {summary.rows} rows from {summary.items} items{reused}; skipped {skipped}")
            for line in summary.skipped.lines():
                print(line)
    if any(summary.skipped for splits in summaries.values() for summary in splits.values()):
        print(f"Every skipped item is named in {Path(output_dir) / STATE_DIR / SUMMARY_FILE}")
