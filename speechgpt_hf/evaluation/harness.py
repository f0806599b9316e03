"""`evaluate_speechgpt`: runs the evaluation tasks on a SpeechGPT system and writes the results and report.

```python
from speechgpt_hf.evaluation import EvaluationConfig, evaluate_speechgpt
report = evaluate_speechgpt("me/speechgpt", EvaluationConfig(dataset="my-audio/", output_dir="eval"))
report.results["tasks"]["asr"]["metrics"]["wer"]
```
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.skipped import SkippedItems
from .eval_data import QUESTION_VOICES
from .tasks import (
    Judges,
    TaskResult,
    evaluate_asr,
    evaluate_latency,
    evaluate_resynthesis,
    evaluate_spoken_qa,
    evaluate_tts,
)

if TYPE_CHECKING:
    from ..inference.chat import SpeechGPTChat

TASKS = ("asr", "tts", "resynthesis", "spoken_qa", "latency")
NO_DATASET = "no speech dataset given (pass `dataset=`)"


@dataclass
class EvaluationConfig:
    """What to evaluate on and with which judges.

    Data: `dataset` is a datasets Dataset, a Hub id or an audio folder with transcripts (ASR, TTS and
    resynthesis use it; spoken QA uses the shipped question set, `max_questions` of it spread over its topics,
    voiced by `qa_tts`: voices `engine:speaker`, taken in turn, by default the espeak-ng voice the reproduction holds
    out of training, so that no question is heard in a training voice; or an engine name, engine or callable; pass
    voices your model never heard); TTS and resynthesis judge speech on the first `max_speech_items` of those items
    (None: all of them), since each costs a vocoder pass and a judge where an ASR item costs one short decode.
    Judges: `judge` is
    "whisper-tiny.en" (converted offline from a bundled model), "pocketsphinx", or any transformers ASR model
    id or folder; `naturalness` adds DNSMOS. Generation is greedy unless `generation_kwargs` says otherwise.
    Device: `device` is where a system loaded from a repo or folder runs, its unit tokenizer and vocoder with it
    ("cuda", "cpu", …; None: the first GPU when there is one, else the CPU).
    """

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    dataset: Any = None
    split: str | None = None
    text_column: str | None = None
    audio_column: str = "audio"
    max_items: int | None = 50
    max_speech_items: int | None = None
    qa_questions: str | None = None
    max_questions: int | None = None
    qa_tts: Any = QUESTION_VOICES
    latency_items: int = 3
    judge: str = "whisper-tiny.en"
    naturalness: bool = True
    asr_description: str | None = None
    tts_description: str | None = None
    generation_kwargs: dict[str, Any] = field(default_factory=lambda: {"do_sample": False, "max_new_tokens": 512})
    output_dir: str | None = None
    progress: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"Unknown evaluation task(s) {unknown}: choose from {', '.join(TASKS)}.")
        for name in ("max_items", "max_speech_items"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for every item; got {value}.")


@dataclass
class EvaluationReport:
    """The results (as written to results.json), the task results they came from, and the inputs left out."""

    results: dict[str, Any]
    tasks: dict[str, TaskResult]
    output_dir: Path | None = None
    skipped_inputs: SkippedItems = field(default_factory=SkippedItems)


def load_system(
    model: SpeechGPTChat | str | Path,
    generation_kwargs: dict[str, Any] | None = None,
    constrain_units: bool = True,
    device: str | None = None,
) -> SpeechGPTChat:
    """A `SpeechGPTChat` from a repo id or folder (a chat or a stand-in system is returned as it is), on `device`
    with its unit tokenizer and vocoder (None: the first GPU when there is one, else the CPU); `constrain_units`
    keeps unit tokens inside `<sosp>…<eosp>` spans while decoding."""
    if not isinstance(model, (str, Path)):
        return model
    from ..inference.chat import SpeechGPTChat, default_device

    chat = SpeechGPTChat.from_pretrained(str(model), constrain_units=constrain_units, device=device or default_device())
    chat.generation_kwargs.update(generation_kwargs or {})
    return chat


def load_judges(config: EvaluationConfig) -> Judges:
    """The ASR judge (and DNSMOS when `naturalness`) that the config names."""
    from .judges import DNSMOSScorer, load_asr_judge

    return Judges(asr=load_asr_judge(config.judge), mos=DNSMOSScorer() if config.naturalness else None)


def _description(given: str | None, task: str) -> str:
    from ..models.speechgpt.task_descriptions import default_task_description

    return given or default_task_description(task)


def _run_tasks(
    system: SpeechGPTChat, config: EvaluationConfig, judges: Judges, skipped: SkippedItems
) -> dict[str, TaskResult]:
    from .eval_data import load_speech_items, load_spoken_questions, voice_questions

    items = []
    if config.dataset is not None and {"asr", "tts", "resynthesis"} & set(config.tasks):
        items, item_skips = load_speech_items(
            config.dataset, config.split, config.text_column, config.audio_column, config.max_items
        )
        skipped.update(item_skips, prefix="dataset: ")
    speech_items = items[: config.max_speech_items]
    questions, spoken = [], []
    if {"spoken_qa", "latency"} & set(config.tasks):
        questions = load_spoken_questions(config.qa_questions, config.max_questions)
        spoken, voice_skips = voice_questions(questions, config.qa_tts)
        skipped.update(voice_skips, prefix="questions: ")
    runners = {
        "asr": lambda: evaluate_asr(
            system, items, judges, _description(config.asr_description, "asr"), config.progress
        ),
        "tts": lambda: evaluate_tts(
            system, speech_items, judges, _description(config.tts_description, "tts"), config.progress
        ),
        "resynthesis": lambda: evaluate_resynthesis(system, speech_items, judges, config.progress),
        "spoken_qa": lambda: evaluate_spoken_qa(system, questions, spoken, judges, config.progress),
        "latency": lambda: evaluate_latency(system, spoken[: config.latency_items], config.progress),
    }
    results = {}
    for name in config.tasks:
        start = time.perf_counter()
        needs_dataset = name in ("asr", "tts", "resynthesis")
        if needs_dataset and not items:
            results[name] = TaskResult(name, not_run=NO_DATASET if config.dataset is None else "no usable items")
        else:
            results[name] = runners[name]()
        results[name].seconds = round(time.perf_counter() - start, 2)
    return results


def _voice_names(tts: Any) -> Any:
    """The question voices as written (names of voices or engines), or the type of an engine or callable."""
    if isinstance(tts, str) or (isinstance(tts, (list, tuple)) and all(isinstance(v, str) for v in tts)):
        return tts if isinstance(tts, str) else list(tts)
    return getattr(tts, "name", None) or getattr(tts, "__name__", type(tts).__name__)


def _machine() -> str:
    import torch

    from ..training.precision import cpu_model_name

    gpu = f"{torch.cuda.get_device_name(0)} on " if torch.cuda.is_available() else ""
    return f"{gpu}{cpu_model_name()}, torch {torch.__version__}"


def _system_device(system: Any) -> str | None:
    """Where the system's LM ran (None for a stand-in system without a model)."""
    device = getattr(getattr(system, "model", None), "device", None)
    return None if device is None else str(device)


def evaluate_speechgpt(
    model: SpeechGPTChat | str | Path, config: EvaluationConfig | None = None, judges: Judges | None = None
) -> EvaluationReport:
    """Runs the configured tasks on `model` (a repo id or folder, a SpeechGPTChat, or a stand-in system),
    and writes results.json, items.jsonl and report.md (with plots) to `config.output_dir` when it is set."""
    config = config or EvaluationConfig()
    system = load_system(model, config.generation_kwargs, device=config.device)
    judges = judges or load_judges(config)
    skipped = SkippedItems()
    tasks = _run_tasks(system, config, judges, skipped)
    results = {
        "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
        "judge": config.judge,
        "machine": _machine(),
        "device": _system_device(system),
        "skipped_inputs": dict(skipped),
        "skipped_input_names": skipped.names,
        "tasks": {
            name: {
                "metrics": r.metrics,
                "skipped": dict(r.skipped),
                "not_run": r.not_run,
                "items": len(r.items),
                "seconds": r.seconds,
            }
            | ({"by_topic": r.by_topic} if r.by_topic else {})
            for name, r in tasks.items()
        },
        "config": {k: v for k, v in asdict(config).items() if k not in ("dataset", "qa_tts", "output_dir")}
        | {
            "dataset": str(config.dataset)
            if isinstance(config.dataset, (str, Path))
            else type(config.dataset).__name__,
            "qa_tts": _voice_names(config.qa_tts),
        },
    }
    report = EvaluationReport(results, tasks, skipped_inputs=skipped)
    if config.output_dir is not None:
        from .report import write_report

        report.output_dir = write_report(report, config.output_dir)
    return report


__all__ = ["TASKS", "EvaluationConfig", "EvaluationReport", "evaluate_speechgpt", "load_judges", "load_system"]
