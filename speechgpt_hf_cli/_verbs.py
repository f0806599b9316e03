"""Builds argparse sub-commands from a table of verb modules, and the checks and errors verbs share.

A verb module defines HELP and add_arguments(parser), and run(args) unless its own sub-verbs run instead.
A module with PASSTHROUGH = True receives the options it does not declare itself in `args.extra`; one with
its own `--help` sets OWN_HELP = True. Every long option takes both spellings, `--output-dir` and `--output_dir`
(help shows the hyphenated one the verb declares), as TRL's parser does for `train`'s fields.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


class UsageError(ValueError):
    """A mistake in how a command was called; the message names it and the way out."""


# Errors that mean bad input or a missing resource rather than a bug: printed as one line, exit code 2.
USER_ERRORS = (ValueError, OSError, ImportError)

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def one_line(error: BaseException) -> str:
    """The error's message on one line (whitespace collapsed; a KeyError's message without its quotes)."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(message.split()) or type(error).__name__


class VerbParser(argparse.ArgumentParser):
    """An ArgumentParser for a verb: an abbreviation matching both spellings of one option (`--output` for
    `--output-dir` and `--output_dir`) names that option rather than being ambiguous."""

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        matches, actions = [], set()
        for match in super()._get_option_tuples(option_string):  # each starts with the matched option's action
            if id(match[0]) not in actions:
                actions.add(id(match[0]))
                matches.append(match)
        return matches


def add_spelling_aliases(parser: argparse.ArgumentParser) -> None:
    """Lets each long option of `parser` be written with hyphens or underscores (`--output-dir`, `--output_dir`):
    the other spelling parses to the same option without showing in `--help`."""
    for action in parser._actions:
        for option in list(action.option_strings):
            if option.startswith("--"):
                name = option[2:]
                for alias in (f"--{name.replace('_', '-')}", f"--{name.replace('-', '_')}"):
                    parser._option_string_actions.setdefault(alias, action)


def add_verbs(parser: argparse.ArgumentParser, verbs: dict[str, str], dest: str) -> None:
    """Adds one sub-parser a verb; `verbs` maps a verb to the module (in this package) defining it."""
    subparsers = parser.add_subparsers(dest=dest, metavar=f"<{dest}>", required=True, parser_class=VerbParser)
    for verb, module_name in verbs.items():
        module = importlib.import_module(f"speechgpt_hf_cli.{module_name}")
        own_help = getattr(module, "OWN_HELP", False)
        sub = subparsers.add_parser(verb, help=module.HELP, description=module.HELP, add_help=not own_help)
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on failure"
        )
        module.add_arguments(sub)
        add_spelling_aliases(sub)
        if hasattr(module, "run"):
            sub.set_defaults(_run=module.run, _passthrough=getattr(module, "PASSTHROUGH", False))


def library_module(name: str) -> ModuleType:
    """The module `speechgpt_hf.<name>`, which must import nothing but the standard library, read from its file
    without importing the package (whose import registers the Auto classes and so loads torch): for names that
    `--help` lists."""
    if f"speechgpt_hf.{name}" in sys.modules:
        return sys.modules[f"speechgpt_hf.{name}"]
    package = importlib.util.find_spec("speechgpt_hf")
    path = Path(package.origin).parent.joinpath(*name.split(".")).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"_speechgpt_hf_{name.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def existing_path(value: str) -> Path:
    """argparse type: a file or folder that exists (else a usage error naming it)."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or folder")
    return path


def check_pretrained(value: str, option: str, repo_type: str = "model") -> str:
    """`value` unchanged when it is a local folder or a Hub repo id that can be reached; else a UsageError.

    A missing folder, or a model repo id with no cached copy while offline (HF_HUB_OFFLINE=1), is named with the
    way out.
    """
    if Path(value).is_dir():
        return value
    if not _REPO_ID.match(value):
        raise UsageError(f"{option} {value}: no such folder (and not a Hub repo id like org/name).")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    if offline and repo_type == "model":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(value, "config.json"), str):
            raise UsageError(
                f"{option} {value}: not a local folder, and no cached copy of that Hub repo while offline "
                "(HF_HUB_OFFLINE=1): download it first (hf download REPO) or pass a folder."
            )
    return value


__all__ = [
    "USER_ERRORS",
    "UsageError",
    "VerbParser",
    "add_spelling_aliases",
    "add_verbs",
    "check_pretrained",
    "existing_path",
    "library_module",
    "one_line",
]
