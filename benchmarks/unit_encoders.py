"""MFCC units against Whisper-encoder units on the same data: the same reproduction run twice, once per encoder.

Both runs use one preset of `speechgpt_hf.reproduction` (corpus, LM, stages, vocoder and evaluation identical) and
differ only in `unit_encoder`; each is resumable, so a rerun only writes the report. The table sets the held-out
numbers of the two side by side (judged by Whisper tiny.en, whose own score on the reference audio is the floor).
The report names the command line it was run with (`sys.argv`) and the commit of the code.

    python benchmarks/unit_encoders.py [--preset quickstart] [--set FIELD=VALUE ...]
                                       [--output-root unit_encoders_output] [--report benchmarks/unit_encoders.md]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from speechgpt_hf.reproduction import PRESETS, run_reproduction
from speechgpt_hf.reproduction.settings import UNIT_ENCODERS
from speechgpt_hf.training.precision import cpu_model_name
from speechgpt_hf_cli.reproduce import parse_overrides

# (label, split, task, metric)
ROWS = [
    ("ASR WER, held-out sentences", "test", "asr", "wer"),
    ("ASR WER, held-out voice", "test_voice", "asr", "wer"),
    ("ASR WER, training sentences", "train_probe", "asr", "wer"),
    ("ASR CER, held-out sentences", "test", "asr", "cer"),
    ("resynthesis judge WER, held-out sentences", "test", "resynthesis", "judge_wer"),
    ("resynthesis DNSMOS, held-out sentences", "test", "resynthesis", "dnsmos"),
    ("TTS judge WER, held-out sentences", "test", "tts", "judge_wer"),
    ("TTS judge WER, training sentences", "train_probe", "tts", "judge_wer"),
    ("TTS DNSMOS, held-out sentences", "test", "tts", "dnsmos"),
]

FLOORS = {"wer": "reference_judge_wer", "judge_wer": "reference_judge_wer", "dnsmos": "reference_dnsmos"}


def metric(summary: dict[str, Any], split: str, task: str, name: str) -> float | None:
    return summary["evaluation"].get(split, {}).get(task, {}).get("metrics", {}).get(name)


def formatted(value: float | None, name: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if name == "dnsmos" else f"{100 * value:.1f}%"


DEFAULT_REPORT = Path(__file__).with_name("unit_encoders.md")
# Hand-written sections (each heading names its date and the run it reads) come after what the script writes and
# start at the first heading that begins so; the script keeps everything from there on when it rewrites the report.
NOTES_HEADING = "## Hand-written"


def code_version() -> str:
    """The checkout's commit, and whether tracked files differ from it ("unknown" outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = bool(git("status", "--porcelain", "--untracked-files=no"))
    except OSError:
        return "unknown"
    return (f"commit {commit}" + (", with uncommitted changes" if changed else "")) if commit else "unknown"


def write_report(
    path: Path,
    preset: str,
    root: Path,
    summaries: dict[str, dict[str, Any]],
    overrides: list[str] = (),
    command: str | None = None,
) -> None:
    """Writes the report; `command` is the command line shown (by default the one this process was run with)."""
    whisper, mfcc = (summaries[encoder] for encoder in UNIT_ENCODERS)
    changed = " --set " + shlex.join(overrides) if overrides else ""
    command = command or shlex.join(["python", *sys.argv])
    lines = [
        "# MFCC units against Whisper-encoder units, same data, same recipe",
        "",
        f"Command: `{command}` (two `speechgpt-hf reproduce --preset {preset}{changed}` runs that differ only in "
        f"`unit_encoder`), code: {code_version()}. Machine: {cpu_model_name()}, {os.cpu_count()} CPU cores, no GPU, "
        f"torch {torch.__version__}.",
        "",
        "| | Whisper tiny.en encoder | MFCC | judge floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    units = [summary["units"] for summary in (whisper, mfcc)]
    lines.append(
        f"| units (K={whisper['settings']['num_units']}): merged units a second | "
        f"{units[0]['merged_units_per_second']} | {units[1]['merged_units_per_second']} | |"
    )
    stage2 = [summary["cross_modal"] for summary in (whisper, mfcc)]
    lines.append(
        f"| stage-2 loss, first -> last | {stage2[0]['first_loss']:.2f} -> {stage2[0]['last_loss']:.2f} | "
        f"{stage2[1]['first_loss']:.2f} -> {stage2[1]['last_loss']:.2f} | |"
    )
    for label, split, task, name in ROWS:
        values = [metric(summary, split, task, name) for summary in (whisper, mfcc)]
        floor = FLOORS.get(name)  # what the judge scores on the reference audio of the same items
        floor_text = formatted(metric(whisper, split, task, floor), name) if floor else ""
        lines.append(f"| {label} | {formatted(values[0], name)} | {formatted(values[1], name)} | {floor_text} |")
    seconds = [summary["seconds"] for summary in (whisper, mfcc)]
    lines += [
        "",
        "Seconds per step (the same machine, one run after the other):",
        "",
        "| step | Whisper tiny.en encoder | MFCC |",
        "| --- | ---: | ---: |",
        *(f"| {step} | {seconds[0].get(step, 0):.0f} | {seconds[1].get(step, 0):.0f} |" for step in seconds[0]),
        "",
        f"Outputs: `{root}/<encoder>/report.md` for every number of each run.",
        "",
    ]
    earlier = path.read_text() if path.exists() else ""
    notes = earlier[earlier.index(NOTES_HEADING) :] if NOTES_HEADING in earlier else ""
    path.write_text("\n".join(lines) + ("\n" + notes if notes else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quickstart", choices=sorted(PRESETS))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="settings both runs change")
    parser.add_argument("--output-root", type=Path, default=Path("unit_encoders_output"))
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    args = parser.parse_args()
    summaries = {}
    for encoder in UNIT_ENCODERS:
        settings = PRESETS[args.preset].override(**{**parse_overrides(args.set), "unit_encoder": encoder})
        summaries[encoder] = run_reproduction(args.output_root / encoder, settings)
    write_report(args.report, args.preset, args.output_root, summaries, args.set)
    print(f"Report: {args.report}")


if __name__ == "__main__":
    main()
