"""`speechgpt-hf card`: (re)write the model card of a SpeechGPT, unit tokenizer or vocoder folder."""

import argparse

from ._verbs import existing_path

HELP = (
    "Write README.md, the model card of a SpeechGPT, unit tokenizer or vocoder folder, from its config, training "
    "record and evaluation results (results.json of `speechgpt-hf evaluate`, as the Hub's model-index)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=existing_path, help="the saved model folder")
    parser.add_argument(
        "--results", type=existing_path, default=None, help="results.json to include (default: the folder's own)"
    )
    parser.add_argument(
        "--repo-id", default=None, help="the Hub repo the card's snippets load (default: the folder name)"
    )
    parser.add_argument(
        "--license", default=None, help="licence id (default: other for SpeechGPT, which inherits its base model's)"
    )


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.hub.cards import write_model_card

    path = write_model_card(args.folder, repo_id=args.repo_id, license=args.license, results=args.results)
    print(f"Wrote {path}")
