"""`speechgpt-hf <verb>`: the command line of speechgpt-hf.

This package sits beside `speechgpt_hf` rather than inside it because importing `speechgpt_hf`
registers the Auto classes, which loads torch and transformers (seconds). Each verb is a module here
holding only its argparse definition; its `run(args)` imports the library when the verb runs, so every
`--help` answers at once.

A user's mistake (a missing file or repo, a bad option value, offline without a cached copy) ends the command
with one line on stderr naming the problem and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._library_warnings import quiet_library_warnings
from ._verbs import USER_ERRORS, add_verbs, one_line

# Verb name -> module in this package defining HELP, add_arguments(parser) and run(args).
COMMANDS: dict[str, str] = {
    "quickstart": "quickstart",
    "convert": "convert",
    "fit-units": "fit_units",
    "extract-units": "extract_units",
    "train": "train",
    "train-vocoder": "train_vocoder",
    "assemble": "assemble",
    "build-speechinstruct": "build_speechinstruct",
    "evaluate": "evaluate",
    "reproduce": "reproduce",
    "card": "card",
    "push": "push",
    "chat": "chat",
    "space": "space",
}


def _version() -> str:
    """The installed distribution's version (read from its metadata, so torch is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("speechgpt-hf")
    except PackageNotFoundError:
        return "unknown (not installed; pip install -e . in the repository)"


def build_parser() -> argparse.ArgumentParser:
    """The `speechgpt-hf` parser: one sub-command a verb, plus `--version` and `--debug`."""
    parser = argparse.ArgumentParser(prog="speechgpt-hf", description="SpeechGPT on the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"speechgpt-hf {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails, and every library warning"
    )
    add_verbs(parser, COMMANDS, dest="command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one verb; returns its exit code (2, after one line on stderr, for a user's mistake)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args._passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if not args.debug:
        quiet_library_warnings()
    try:
        result = args._run(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"speechgpt-hf {args.command}: error: {one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return int(result or 0)


__all__ = ["COMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
