"""`speechgpt-hf convert speechgpt`: the original SpeechGPT-7B (+ its LoRA adapter) -> a speechgpt repo."""

import argparse

from ._verbs import existing_path

HELP = "Convert a Llama-format SpeechGPT checkpoint (and optionally its stage-3 LoRA adapter) into a speechgpt repo."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=existing_path, help="folder of the original model (config.json, weights, tokenizer)"
    )
    parser.add_argument("output", help="folder to write the converted repo to")
    parser.add_argument(
        "--adapter", type=existing_path, help="folder of the PEFT LoRA adapter to merge (e.g. SpeechGPT-7B-com)"
    )
    parser.add_argument("--num-units", type=int, default=1000, help="size K of the unit vocabulary (default 1000)")
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument(
        "--system-prompt-from",
        type=existing_path,
        metavar="JSONL",
        help="a SpeechInstruct .jsonl of the release: the `prefix` of its first record that has one becomes the "
        "system prompt, as the model was trained with (recommended)",
    )
    prompt.add_argument("--system-prompt-file", type=existing_path, help="text file with the system prompt to use")
    parser.add_argument("--unit-tokenizer-repo", help="repo of the unit tokenizer to record in the config")
    parser.add_argument("--vocoder-repo", help="repo of the vocoder to record in the config")
    parser.add_argument("--dtype", default="auto", help="weights dtype: auto (as stored), float16, bfloat16, float32")


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.convert.convert_speechgpt import convert_speechgpt, read_system_prompt

    system_prompt = None
    if args.system_prompt_from:
        system_prompt = read_system_prompt(args.system_prompt_from)
    elif args.system_prompt_file:
        system_prompt = args.system_prompt_file.read_text()
    output = convert_speechgpt(
        args.checkpoint,
        args.output,
        adapter_dir=args.adapter,
        num_units=args.num_units,
        system_prompt=system_prompt,
        unit_tokenizer_repo=args.unit_tokenizer_repo,
        vocoder_repo=args.vocoder_repo,
        dtype=args.dtype,
    )
    print(f"Wrote {output}")
