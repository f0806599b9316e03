"""`speechgpt-hf push`: upload a model, unit tokenizer, vocoder, dataset folder or Space to the Hub."""

import argparse

from ._verbs import existing_path

HELP = (
    "Upload a model, unit tokenizer, vocoder, dataset folder or Space to the Hub (upload_folder); folders without "
    "a card, or whose config names local folders, are refused."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=existing_path, help="the folder to upload")
    parser.add_argument("repo_id", help="the Hub repo to create or update, e.g. me/speechgpt-small")
    parser.add_argument(
        "--repo-type",
        choices=("model", "dataset", "space"),
        default=None,
        help="default: space with app.py, model with config.json, dataset with parquet files",
    )
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="a Hub token (default: the one `hf auth login` stored)")
    parser.add_argument("--message", default=None, help="the commit message")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.hub.push import push

    url = push(
        args.folder, args.repo_id, args.repo_type, private=args.private, token=args.token, commit_message=args.message
    )
    print(f"Uploaded {args.folder} to {args.repo_id}: {url}")
