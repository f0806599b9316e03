"""The reproduction's report: learning curves and a Markdown summary of where the time went and what was reached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..evaluation.report import CUT_COUNTS, METRIC_LABELS
from ..safe_files import atomic_write_text
from ..stages import STAGES

STAGE_TITLES = {name: f"stage {number}" for number, name in enumerate(STAGES, 1)}
# The judge's score on the reference audio shown beside each metric (for spoken QA the reference is the question audio).
_FLOORS = {
    "wer": "reference_judge_wer",
    "judge_wer": "reference_judge_wer",
    "dnsmos": "reference_dnsmos",
    "accuracy": "question_judge_wer",
}
# The goals of the reproduction: (split, task, metric, bound, higher is better).
GOALS = (
    ("test", "asr", "wer", 0.20, False),
    ("test", "resynthesis", "judge_wer", 0.25, False),
    ("test", "resynthesis", "dnsmos", 2.5, True),
    ("test", "tts", "judge_wer", 0.40, False),
)


def _losses(trainer_state: Path) -> tuple[list[int], list[float]]:
    history = json.loads(trainer_state.read_text())["log_history"]
    points = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    return [step for step, _ in points], [loss for _, loss in points]


def plot_learning_curves(output: Path) -> Path | None:
    """One panel a stage (LM loss by step) and one for the vocoder (its losses), in learning_curves.png."""
    from ..evaluation.report import pyplot, save_figure

    plt = pyplot()
    panels = [(STAGE_TITLES[s], output / "lm" / s / "trainer_state.json") for s in STAGE_TITLES]
    panels = [(title, path) for title, path in panels if path.exists()]
    checkpoints = sorted(
        (output / "vocoder").glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1])
    )
    vocoder = checkpoints[-1] if checkpoints else output / "vocoder" / "trainer_state.json"
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels) + vocoder.exists(), figsize=(4 * (len(panels) + 1), 3.2))
    for ax, (title, path) in zip(axes, panels, strict=False):  # the last axis is the vocoder's
        steps, losses = _losses(path)
        ax.plot(steps, losses)
        ax.set_title(f"{title}: LM loss")
        ax.set_xlabel("step")
    if vocoder.exists():
        history = json.loads(vocoder.read_text()).get("history", [])
        ax = axes[-1]
        for key in ("mel_l1", "duration"):
            points = [(e["step"], e[key]) for e in history if key in e]
            if points:
                ax.plot(*zip(*points, strict=True), label=key)
        ax.set_title("vocoder losses")
        ax.set_xlabel("step")
        ax.legend()
    path = output / "learning_curves.png"
    save_figure(fig, path)
    return path


def _metric(summary: dict[str, Any], split: str, task: str, metric: str) -> Any:
    return summary.get("evaluation", {}).get(split, {}).get(task, {}).get("metrics", {}).get(metric)


def _fmt(value: Any, percent: bool) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.2f}"


def _describe_units(summary: dict[str, Any]) -> str:
    """The encoder the units were computed with, as the fitted tokenizer recorded it (a run from before that record
    is marked with its setting's name instead)."""
    encoder = summary.get("units", {}).get("encoder", "")
    if encoder and encoder != summary["settings"]["unit_encoder"]:
        return encoder
    return f"{summary['settings']['unit_encoder']} (setting; the encoder loaded was not recorded)"


def _describe_bpe(settings: dict[str, Any]) -> str:
    """The unit BPE the LM reads, as a clause after K (none for a run without one or from before the setting)."""
    size = settings.get("unit_bpe_vocab_size") or 0
    return f", read by the LM as a BPE of {size} pieces" if size else ""


def _describe_lm(summary: dict[str, Any]) -> str:
    settings, base = summary["settings"], summary.get("base_lm", {})
    if settings.get("base_model"):
        weights = f", {base['weights']}" if base.get("weights") else ""
        return f"pretrained {base.get('base_model', settings['base_model'])}{weights}, turns in {settings['prompt_format']}"
    return (
        f"Llama {settings['lm_layers']} layers x {settings['lm_hidden']} from scratch "
        f"({base.get('parameters', 0) / 1e6:.1f} M parameters)"
    )


def _cut_lines(summary: dict[str, Any]) -> list[str]:
    """How many judge transcripts the judge's loop stop or token cap cut short, per split, task and audio."""
    rows = [
        f"{split} {task}, {audio}: {result['metrics'][key]}"
        for split, tasks in summary.get("evaluation", {}).items()
        for task, result in tasks.items()
        for key, audio in CUT_COUNTS.items()
        if key in result.get("metrics", {})
    ]
    if not rows:
        return []
    return ["", "Judge transcripts cut short by its loop stop or token cap (scored as heard): " + "; ".join(rows) + "."]


def _knowledge_scores(knowledge: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Each model's stored answers scored again by both QA rules: (first answer, anywhere)."""
    from ..evaluation.eval_data import load_spoken_questions
    from ..evaluation.scoring import ANYWHERE, FIRST_ANSWER, qa_accuracy

    by_id = {question.id: question for question in load_spoken_questions()}
    accepted = [by_id[qid].answers for qid in knowledge["questions"]]
    return {
        name: tuple(float(qa_accuracy(answers, accepted, rule)["accuracy"]) for rule in (FIRST_ANSWER, ANYWHERE))
        for name, answers in knowledge["answers"].items()
    }


def _knowledge_lines(summary: dict[str, Any]) -> list[str]:
    """Text-QA accuracy of the bare base, the expanded model and each stage, with the share of the base's kept, by
    the scorer's rule (the first answer given) beside the lenient one (an accepted answer anywhere)."""
    from ..evaluation.knowledge import MAX_NEW_TOKENS

    knowledge = summary.get("knowledge")
    if not knowledge:
        return []
    scores = _knowledge_scores(knowledge)
    lines = [
        "",
        "## Knowledge retention (the same spoken-QA questions asked in text)",
        "",
        f"{len(knowledge['questions'])} questions, each as written, greedy, at most {MAX_NEW_TOKENS} new tokens; the "
        "bare base in its own chat template, every other model through its processor's prompt. An answer is right "
        "when its first answer (first sentence or clause that is not a question) holds an accepted one; the lenient "
        "rule (an accepted answer anywhere) is shown beside it.",
        "",
        "| model | text-QA accuracy, first answer | share of the bare base's | accuracy, anywhere |",
        "| --- | --- | --- | --- |",
    ]
    bare = scores.get("bare base", (None, None))[0]
    for name, (strict, lenient) in scores.items():
        kept = strict / bare if bare else None
        lines.append(f"| {name} | {_fmt(strict, True)} | {_fmt(kept, True)} | {_fmt(lenient, True)} |")
    spoken = _metric(summary, "test", "spoken_qa", "accuracy")
    if spoken is not None and bare:
        lines += [
            "",
            f"Cross-modal transfer: spoken-QA accuracy {_fmt(spoken, True)} over the bare base's text "
            f"accuracy {_fmt(bare, True)} = {_fmt(spoken / bare, True)}.",
        ]
    return lines


def write_reproduction_report(output: Path, summary: dict[str, Any]) -> Path:
    """report.md: settings, time per step, held-out numbers against the goals, and the learning curves."""
    curves = plot_learning_curves(output)
    settings = summary["settings"]
    lines = [
        "# SpeechGPT reproduction at small scale",
        "",
        f"Units: {_describe_units(summary)} (K={settings['num_units']}{_describe_bpe(settings)}); LM: "
        f"{_describe_lm(summary)}; vocoder: "
        f"{settings.get('vocoder', 'unit_hifigan')}; {settings['num_train']} training and {settings['num_test']} "
        "held-out sentences.",
        "",
        "## Held-out results",
        "",
        "| split | task | metric | value | judge on the reference audio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, tasks in summary.get("evaluation", {}).items():
        for task, result in tasks.items():
            if result.get("not_run"):
                continue
            metrics = result["metrics"]
            for metric, value in metrics.items():
                if metric.startswith("reference_") or not isinstance(value, float):
                    continue
                percent = "wer" in metric or "cer" in metric or metric in ("accuracy", "text_accuracy")
                floor = metrics.get(_FLOORS.get(metric, ""))  # spoken QA: the judge on the question audio
                label = METRIC_LABELS.get(metric, metric)
                lines.append(f"| {split} | {task} | {label} | {_fmt(value, percent)} | {_fmt(floor, percent)} |")
            if "text_accuracy" in metrics and "cross_modal_transfer" not in metrics:
                lines.append(
                    f"| {split} | {task} | {METRIC_LABELS['cross_modal_transfer']} | n/a (text accuracy 0) | |"
                )
            for kind, wer in result.get("wer_by_kind", {}).items():
                lines.append(f"| {split} | {task} | wer ({kind}) | {_fmt(wer, True)} | |")
    lines += _cut_lines(summary)
    lines += ["", "## Goals", "", "| goal | reached | value |", "| --- | --- | --- |"]
    for split, task, metric, bound, higher in GOALS:
        value = _metric(summary, split, task, metric)
        reached = value is not None and (value >= bound if higher else value <= bound)
        sign = ">=" if higher else "<="
        percent = "wer" in metric
        lines.append(
            f"| {task} {metric} {sign} {_fmt(bound, percent)} | {'yes' if reached else 'no'} | {_fmt(value, percent)} |"
        )
    lines += _knowledge_lines(summary)
    lines += ["", "## Where the time went", "", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in summary.get("seconds", {}).items()]
    if curves is not None:
        lines += ["", f"![learning curves]({curves.name})"]
    return atomic_write_text(output / "report.md", "\n".join(lines) + "\n")


__all__ = ["GOALS", "plot_learning_curves", "write_reproduction_report"]
