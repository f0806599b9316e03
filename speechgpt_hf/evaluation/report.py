"""Writes an evaluation: results.json, items.jsonl (one record per item and task), report.md with plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLING_RATE
from ..data.skipped import capped
from ..safe_files import atomic_path, atomic_write_json

# Names shown in reports for metrics whose key alone says too little.
METRIC_LABELS = {
    "accuracy": "accuracy (spoken question, spoken answer; its first answer)",
    "text_accuracy": "text accuracy (the same questions written; the first answer)",
    "cross_modal_transfer": "cross-modal transfer (spoken / text accuracy)",
    "question_judge_wer": "judge WER on the question audio",
}
# Counts of the judge's transcripts that its decoding guard cut short, by the audio they are of (reported apart).
CUT_COUNTS = {
    "judge_cut_items": "the system's speech",
    "reference_judge_cut_items": "the reference audio",
    "question_judge_cut_items": "the question audio",
    "answer_judge_cut_items": "the spoken answers",
}
# How the harness runs its judge; benchmarks that give the judge more (benchmarks/vocoders.md) say so beside theirs.
JUDGED_AS = (
    "Speech is judged as a user would hear it: the judge is not told the reference text (its decoding is capped by "
    "the audio's length alone) and the vocoder predicts each unit's duration. Answers are right when the first "
    "answer they commit to (their first sentence or clause that is not a question) holds an accepted one."
)
# Metrics where lower is better, shown as a system bar beside the judge's reference bar.
_ERROR_METRICS = {"asr": "wer", "tts": "judge_wer", "resynthesis": "judge_wer"}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (reports are written on machines without a screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> bool:
    """Writes `fig` to `path` at once (in the format its suffix names) and frees it; True, so a plotting function
    can return it."""
    fig.tight_layout()
    with atomic_path(path) as staging:
        fig.savefig(staging, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    pyplot().close(fig)
    return True


def _plot_error_rates(report: Any, path: Path) -> bool:
    plt = pyplot()
    rows = [(name, report.tasks[name].metrics) for name in _ERROR_METRICS if name in report.tasks]
    rows = [(name, metrics) for name, metrics in rows if _ERROR_METRICS[name] in metrics]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(rows))
    system = [100 * m[_ERROR_METRICS[n]] for n, m in rows]
    reference = [100 * m.get("reference_judge_wer", np.nan) for _, m in rows]
    ax.bar(x - 0.2, system, 0.4, label="this system")
    ax.bar(x + 0.2, reference, 0.4, label="judge on the reference audio")
    ax.set_xticks(x, [name for name, _ in rows])
    ax.set_ylabel("WER (%)")
    ax.legend()
    ax.set_title("Word error rate by task")
    return save_figure(fig, path)


def _plot_wer_by_length(report: Any, path: Path) -> bool:
    plt = pyplot()
    asr = report.tasks.get("asr")
    if asr is None or not asr.items:
        return False
    seconds = np.array([item["seconds"] for item in asr.items])
    wer = np.array([100 * item["wer"] for item in asr.items])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.scatter(seconds, wer, s=12, alpha=0.7)
    ax.set_xlabel("utterance length (s)")
    ax.set_ylabel("ASR WER (%)")
    ax.set_title("ASR word error rate by utterance length")
    return save_figure(fig, path)


def _plot_spectrograms(report: Any, path: Path) -> bool:
    plt = pyplot()
    task = report.tasks.get("tts") or report.tasks.get("resynthesis")
    example = next(((out, ref) for out, ref in (task.examples if task else []) if out is not None), None)
    if example is None:
        return False
    fig, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    for ax, waveform, title in zip(axes, example, (f"{task.task}: spoken answer", "reference"), strict=True):
        with np.errstate(divide="ignore"):  # digital silence has no level in dB
            ax.specgram(waveform, NFFT=512, Fs=SAMPLING_RATE, noverlap=384, cmap="magma")
        ax.set_ylabel("Hz")
        ax.set_title(title)
    axes[-1].set_xlabel("time (s)")
    return save_figure(fig, path)


def _markdown(results: dict[str, Any], plots: list[str]) -> str:
    lines = [
        f"# Evaluation of {results['model']}",
        "",
        f"Judge: {results['judge']}. Machine: {results['machine']}"
        + (f"; the system ran on {results['device']}." if results.get("device") else "."),
        "",
        JUDGED_AS,
        "",
        "| task | metric | value | judge on the reference audio |",
        "| --- | --- | --- | --- |",
    ]
    for name, task in results["tasks"].items():
        if task["not_run"]:
            lines.append(f"| {name} | not run | {task['not_run']} | |")
            continue
        metrics = task["metrics"]
        # Spoken QA's reference audio is the question audio: the judge's WER on it sits beside the accuracy.
        reference = {
            "judge_wer": "reference_judge_wer",
            "wer": "reference_judge_wer",
            "dnsmos": "reference_dnsmos",
            "accuracy": "question_judge_wer",
        }
        for metric, value in metrics.items():
            if metric.startswith("reference_") or metric in CUT_COUNTS:
                continue
            floor = metrics.get(reference.get(metric, ""), "")
            lines.append(f"| {name} | {METRIC_LABELS.get(metric, metric)} | {_fmt(value)} | {_fmt(floor)} |")
        if "text_accuracy" in metrics and "cross_modal_transfer" not in metrics:
            lines.append(f"| {name} | {METRIC_LABELS['cross_modal_transfer']} | n/a (text accuracy is 0) | |")
    lines += _cut_markdown(results)
    lines += _topic_markdown(results)
    lines += _skipped_markdown(results)
    lines += ["", *(f"![{plot}]({plot})" for plot in plots)]
    return "\n".join(lines) + "\n"


def _cut_markdown(results: dict[str, Any]) -> list[str]:
    """Per task, how many of the judge's transcripts its loop stop or token cap cut short (items.jsonl marks which)."""
    rows = []
    for name, task in results["tasks"].items():
        metrics = task["metrics"]
        rows += [f"- {name}, {audio}: {metrics[key]}" for key, audio in CUT_COUNTS.items() if key in metrics]
    if not rows:
        return []
    return [
        "",
        "Judge transcripts cut short by the judge's loop stop or token cap (scored as heard; a cut transcript may "
        "hold less than the audio said, e.g. speech that repeats itself; items.jsonl marks each as `judge_cut`):",
        *rows,
    ]


def _topic_markdown(results: dict[str, Any]) -> list[str]:
    """A table of each task's accuracy by question topic (spoken QA), spoken beside text."""
    lines = []
    for name, task in results["tasks"].items():
        topics = task.get("by_topic") or {}
        if not topics:
            continue
        lines += ["", f"{name} by topic:", "", "| topic | questions | spoken accuracy | text accuracy |"]
        lines.append("| --- | --- | --- | --- |")
        lines += [
            f"| {topic} | {row['questions']} | {_fmt(row['accuracy'])} | {_fmt(row['text_accuracy'])} |"
            for topic, row in topics.items()
        ]
    return lines


def _skipped_markdown(results: dict[str, Any]) -> list[str]:
    """The skipped inputs (the first few of each reason named; results.json names them all), then each task's skips."""
    names = results.get("skipped_input_names", {})
    lines = []
    for reason, count in results["skipped_inputs"].items():
        lines.append(f"- {reason}: {count}")
        lines += capped([f"  - `{name}`" for name in names.get(reason, [])], count, indent="  - ")
    lines += [f"- {n}: {r}: {c}" for n, t in results["tasks"].items() for r, c in t["skipped"].items()]
    if not lines:
        return []
    heading = "Skipped (results.json names every skipped input):" if results["skipped_inputs"] else "Skipped:"
    return ["", heading, *lines]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_report(report: Any, output_dir: str | Path) -> Path:
    """Writes the report's files into `output_dir` (each at once: a kill leaves it whole or as it was) and
    returns it."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "results.json", report.results, indent=1, default=_json_default)
    with atomic_path(output / "items.jsonl") as staging, open(staging, "w", encoding="utf-8") as handle:
        for name, task in report.tasks.items():
            for item in task.items:
                handle.write(json.dumps({"task": name, **item}, default=_json_default) + "\n")
    plots = [
        name
        for name, draw in (
            ("error_rates.png", _plot_error_rates),
            ("wer_by_length.png", _plot_wer_by_length),
            ("spectrogram.png", _plot_spectrograms),
        )
        if draw(report, output / name)
    ]
    with atomic_path(output / "report.md") as staging:
        staging.write_text(_markdown(report.results, plots), encoding="utf-8")
    return output


__all__ = ["CUT_COUNTS", "JUDGED_AS", "METRIC_LABELS", "pyplot", "save_figure", "write_report"]
