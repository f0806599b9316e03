"""`speechgpt-hf space`: write a Space folder (app, card, this package's source, pinned requirements) for a model."""

import argparse

HELP = (
    "Write a Gradio Space folder that installs and runs as it is: app.py, a card with the Space metadata, this "
    "package's source with pinned requirements, and the model repo (or, with --copy-model, the system itself)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="the Space folder to write")
    parser.add_argument("--model", required=True, help="the SpeechGPT repo id, or a local folder with --copy-model")
    parser.add_argument(
        "--copy-model",
        action="store_true",
        help="copy the local SpeechGPT folder and the unit tokenizer and vocoder it names into the Space",
    )
    parser.add_argument("--title", default="SpeechGPT", help="the Space's title")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="the longest recording the Space accepts")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.space import assemble_space

    output = assemble_space(
        args.output,
        args.model,
        copy_model=args.copy_model,
        title=args.title,
        max_seconds=args.max_seconds,
        overwrite=args.overwrite,
    )
    print(
        f"Wrote the Space to {output}: try it with `cd {output} && pip install -r requirements.txt && python app.py`,"
        f" deploy it with `speechgpt-hf push {output} OWNER/NAME --repo-type space`."
    )
