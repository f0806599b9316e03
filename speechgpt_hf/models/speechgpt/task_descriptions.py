"""The ASR and TTS task descriptions that open a cross-modal instruction ("Transcribe this speech. This is input: …").

The package ships 100 of each, phrased in different ways, so a model trained on them keys its answer on the input
and not on one fixed wording; inference uses the first of each unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TASKS = ("asr", "tts")


def shipped_task_descriptions_path(task: str) -> Path:
    """The text file (one description a line) shipped for `task` ("asr" or "tts")."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: task descriptions exist for {', '.join(TASKS)}.")
    return Path(__file__).with_name(f"{task}_task_descriptions.txt")


def load_task_descriptions(source: str | Path | Sequence[str] | None, task: str) -> list[str]:
    """ASR or TTS task descriptions: a list, a text file (one a line), or None for the shipped 100."""
    if source is None:
        source = shipped_task_descriptions_path(task)
    if isinstance(source, (str, Path)):
        source = Path(source).read_text(encoding="utf-8").splitlines()
    descriptions = [line.strip() for line in source if line.strip()]
    if not descriptions:
        raise ValueError(f"No {task.upper()} task descriptions given.")
    return descriptions


def default_task_description(task: str) -> str:
    """The description inference uses when none is given: the first shipped one."""
    return load_task_descriptions(None, task)[0]


__all__ = ["default_task_description", "load_task_descriptions", "shipped_task_descriptions_path"]
