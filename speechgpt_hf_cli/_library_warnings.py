"""Silences the few library messages a user of the command line cannot act on, by their exact wording.

Each one is raised inside transformers or TRL by their own defaults (TRL turns on `gradient_checkpointing`, which
transformers 5 renamed; the Whisper pipeline passes its own generation settings beside a generation config) and
says nothing about the user's data or settings. Everything else, and every message of this package, still shows;
`speechgpt-hf --debug` shows these too.
"""

from __future__ import annotations

import logging
import re
import warnings

# (category, message regex) of Python warnings raised by library defaults.
LIBRARY_WARNINGS = (
    (FutureWarning, r"`gradient_checkpointing` is deprecated and will be removed in v6"),
    (FutureWarning, r"`gradient_checkpointing_kwargs` is deprecated and will be removed in v6"),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated and will be removed in v6"),
)
# logger name -> message regexes of log records written by library internals.
LIBRARY_LOG_MESSAGES = {
    "transformers.generation.utils": (
        r"Passing `generation_config` together with generation-related arguments",
        r"Both `max_new_tokens` \(=\d+\) and `max_length`\(=\d+\) seem to have been set",
    ),
    "transformers.trainer_utils": (r"mtime may not be reliable on this filesystem",),
}


class _DropMessages(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def quiet_library_warnings() -> None:
    """Installs the filters (once; calling again adds nothing)."""
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, patterns in LIBRARY_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(patterns))


__all__ = ["LIBRARY_LOG_MESSAGES", "LIBRARY_WARNINGS", "quiet_library_warnings"]
