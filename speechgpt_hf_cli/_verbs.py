"""Builds argparse sub-commands from a table of verb modules.

A verb module defines HELP and add_arguments(parser), and run(args) unless its own sub-verbs run instead.
A module with PASSTHROUGH = True receives the options it does not declare itself in `args.extra`.
"""

from __future__ import annotations

import argparse
import importlib


def add_verbs(parser: argparse.ArgumentParser, verbs: dict[str, str], dest: str) -> None:
    """Adds one sub-parser a verb; `verbs` maps a verb to the module (in this package) defining it."""
    subparsers = parser.add_subparsers(dest=dest, metavar=f"<{dest}>", required=True)
    for verb, module_name in verbs.items():
        module = importlib.import_module(f"speechgpt_hf_cli.{module_name}")
        sub = subparsers.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        if hasattr(module, "run"):
            sub.set_defaults(_run=module.run, _passthrough=getattr(module, "PASSTHROUGH", False))
