"""`speechgpt-hf train`: one SpeechGPT stage on TRL, configured by a YAML recipe and/or flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._verbs import UsageError, library_module

PASSTHROUGH = True  # every SpeechGPTTrainingConfig field, parsed by TRL's parser
OWN_HELP = True  # --help lists every SpeechGPTTrainingConfig field, which needs transformers: built only when asked
HELP = "Train one SpeechGPT stage (modality_adaptation, cross_modal, chain_of_modality) with TRL's SFTTrainer."

EPILOG = """Every field of SpeechGPTTrainingConfig (TRL's SFTConfig plus model, data and LoRA fields) is accepted as
--field-name value (or --field_name value) after the options above, and overrides the YAML file. Recipes of the
paper's three stages: speechgpt_hf/training/recipes/stage{1,2,3}_*.yaml (--recipe STAGE uses one, with your
--dataset-name; the file's name, e.g. stage2_cross_modal, is accepted too). stage, dataset_name and output_dir must be given (flag or YAML). The expected time a step is printed
after a few steps. --resume_from_checkpoint latest resumes from the newest complete checkpoint in output_dir (from
scratch when there is none; one whose save was cut short is skipped), so that the same command continues a killed
run; a checkpoint that does not read whole is named, with the way out."""

_STAGE_RECIPES: dict[str, str] = library_module("stages").RECIPES  # stage name -> recipe file name
RECIPES = (*_STAGE_RECIPES, *_STAGE_RECIPES.values())  # a stage's name, or its recipe file's
REQUIRED = {
    "stage": "--stage (modality_adaptation, cross_modal or chain_of_modality)",
    "dataset_name": "--dataset-name (a folder from `speechgpt-hf build-speechinstruct`, or a Hub dataset repo)",
    "output_dir": "--output-dir (where the trained model is saved)",
}


class _FullHelp(argparse.Action):
    """`-h/--help`: the verb's options, then every configuration field grouped by where it comes from, with defaults."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001, ANN204 (argparse's signature)
        add_config_fields(parser)
        parser.print_help()
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.usage = "speechgpt-hf train [-h] [--debug] [--config YAML | --recipe NAME] [--FIELD VALUE ...]"
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("-h", "--help", action=_FullHelp)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file of SpeechGPTTrainingConfig fields")
    source.add_argument(
        "--recipe",
        choices=RECIPES,
        metavar="STAGE",
        help=f"a built-in recipe of the paper: {', '.join(_STAGE_RECIPES)}",
    )


def add_config_fields(parser: argparse.ArgumentParser) -> None:
    """Adds every SpeechGPTTrainingConfig field to `parser`, in three groups: SpeechGPT's own, TRL's SFTConfig,
    and transformers' TrainingArguments."""
    import dataclasses
    import typing

    from transformers import HfArgumentParser
    from trl import SFTConfig

    from speechgpt_hf.training.sft import SpeechGPTTrainingConfig

    groups = {
        SpeechGPTTrainingConfig: parser.add_argument_group("SpeechGPT: stage, model, data and LoRA"),
        SFTConfig: parser.add_argument_group("TRL SFTConfig: sequence length, packing, loss"),
    }
    rest = parser.add_argument_group("transformers TrainingArguments: optimisation, logging, saving, hardware")
    hints = typing.get_type_hints(SpeechGPTTrainingConfig)
    for field in dataclasses.fields(SpeechGPTTrainingConfig):
        if not field.init or f"--{field.name}" in parser._option_string_actions:  # e.g. --debug, the verb's own
            continue
        field.type = hints[field.name]
        owner = next((cls for cls in groups if field.name in cls.__dict__.get("__annotations__", {})), None)
        group = groups.get(owner, rest)
        HfArgumentParser._parse_dataclass_field(group, field)
    for action in parser._actions:
        if action.help and action.dest not in ("help",):
            action.help = action.help.replace("%", "%%").replace("%%(default)s", "%(default)s")


def _given_fields(argv: list[str]) -> set[str]:
    """Names of the configuration fields set by `--field` flags in `argv` or by the YAML file after `--config`."""
    import yaml

    given = {arg[2:].split("=", 1)[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    if "--config" in argv[:-1]:
        path = Path(argv[argv.index("--config") + 1])
        if not path.is_file():
            raise UsageError(f"--config {path}: no such file.")
        given |= set(yaml.safe_load(path.read_text()) or {})
    return given


def check_required(args: argparse.Namespace) -> list[str]:
    """The argv TRL's parser reads (the YAML first), after checking the fields a run cannot do without."""
    from speechgpt_hf.training.sft import RECIPES_DIR

    argv = list(args.extra)
    given_on_line = _given_fields(argv)
    if args.recipe:
        if "dataset_name" not in given_on_line:
            raise UsageError(
                f"--recipe {args.recipe} names a placeholder dataset: pass --dataset-name (a folder from "
                "`speechgpt-hf build-speechinstruct`, or a Hub dataset repo)."
            )
        recipe = _STAGE_RECIPES.get(args.recipe, args.recipe)
        argv = ["--config", str(RECIPES_DIR / f"{recipe}.yaml"), *argv]
    elif args.config:
        argv = ["--config", args.config, *argv]
    missing = [text for name, text in REQUIRED.items() if name not in _given_fields(argv)]
    if missing:
        raise UsageError(f"train needs {', '.join(missing)}; set them as flags or in the --config YAML.")
    return argv


def run(args: argparse.Namespace) -> None:
    from accelerate import PartialState
    from trl import TrlParser

    from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, train_stage
    from speechgpt_hf.training.step_timer import StepTimeCallback

    argv = check_required(args)
    (config,) = TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(argv)
    output_dir = train_stage(config, callbacks=[StepTimeCallback()])
    if PartialState().is_main_process:
        print(f"Saved the {config.stage} model to {output_dir}")
