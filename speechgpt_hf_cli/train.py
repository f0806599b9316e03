"""`speechgpt-hf train`: one SpeechGPT stage on TRL, configured by a YAML recipe and/or flags."""

import argparse

PASSTHROUGH = True  # every SpeechGPTTrainingConfig field, parsed by TRL's parser
HELP = "Train one SpeechGPT stage (modality_adaptation, cross_modal, chain_of_modality) with TRL's SFTTrainer."

EPILOG = """Every field of SpeechGPTTrainingConfig (TRL's SFTConfig plus model, data and LoRA fields) is accepted as
--field value after the options above, and overrides the YAML file. Recipes of the paper's three stages:
speechgpt_hf/training/recipes/stage{1,2,3}_*.yaml (--recipe NAME uses one as it is)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file of SpeechGPTTrainingConfig fields")
    source.add_argument(
        "--recipe",
        choices=["stage1_modality_adaptation", "stage2_cross_modal", "stage3_chain_of_modality"],
        help="a built-in recipe of the paper",
    )


def run(args: argparse.Namespace) -> None:
    from trl import TrlParser

    from speechgpt_hf.training.stages import RECIPES_DIR, SpeechGPTTrainingConfig, train_stage

    argv = list(args.extra)
    if args.recipe:
        argv = ["--config", str(RECIPES_DIR / f"{args.recipe}.yaml"), *argv]
    elif args.config:
        argv = ["--config", args.config, *argv]
    from accelerate import PartialState

    (config,) = TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(argv)
    output_dir = train_stage(config)
    if PartialState().is_main_process:
        print(f"Saved the {config.stage} model to {output_dir}")
