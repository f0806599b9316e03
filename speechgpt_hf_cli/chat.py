"""`speechgpt-hf chat`: a conversation with a SpeechGPT system in the terminal, by text or by recordings."""

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from ._verbs import check_pretrained

HELP = (
    "Talk with a SpeechGPT system in the terminal: type text or a path to a recording; the answer's text streams "
    "in, its speech is saved as a wav file and played where aplay, paplay or ffplay exists."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a SpeechGPT repo id or folder (its config names the unit tokenizer and vocoder)")
    parser.add_argument(
        "--output-dir", default=None, help="where spoken answers are written (default: a new temporary folder)"
    )
    parser.add_argument(
        "--output-modality",
        choices=("text", "speech"),
        default=None,
        help="ask for answers of this kind (default: the model chooses, as in SpeechGPTChat.respond)",
    )
    parser.add_argument("--speaker", default=None, help="the vocoder voice, by index or name (default: its first)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="longest answer in tokens (default: the chat's 512)"
    )
    parser.add_argument(
        "--no-constrain-units",
        action="store_true",
        help="decode freely instead of keeping unit tokens inside <sosp>…<eosp> spans",
    )
    parser.add_argument("--system-prompt", default=None, help="text put before the first turn (default: the model's)")
    parser.add_argument("--no-play", action="store_true", help="only save spoken answers, do not play them")
    parser.add_argument(
        "--device",
        default=None,
        help="where the LM, unit tokenizer and vocoder run: cuda, cuda:1, cpu, … (default: the first GPU if any, else "
        "the CPU)",
    )


def _speaker(value: str | None) -> int | str | None:
    """A voice index when `value` is a number, else the voice name as given."""
    return int(value) if value is not None and value.isdigit() else value


def run(args: argparse.Namespace) -> int:
    model = check_pretrained(args.model, "MODEL")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens {args.max_new_tokens}: give a positive number of tokens.")
    print(f"Loading {model} …", flush=True)
    from speechgpt_hf.inference.chat import SpeechGPTChat, default_device

    from ._audio_player import find_player
    from ._chat_session import ChatSession

    chat = SpeechGPTChat.from_pretrained(
        model,
        constrain_units=not args.no_constrain_units,
        speaker_id=_speaker(args.speaker),
        device=args.device or default_device(),
    )
    if args.system_prompt is not None:
        chat.processor.system_prompt = args.system_prompt
    output_dir = Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="speechgpt-chat-"))
    session = ChatSession(
        chat,
        output_dir,
        player=None if args.no_play else find_player(),
        output_modality=args.output_modality,
        generate_kwargs={} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens},
        debug=args.debug,
        model_name=model,
    )
    _enable_line_editing()
    return session.run()


def _enable_line_editing() -> None:
    """Gives `input()` line editing and history (readline) when a person types at a terminal."""
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (importing it is what enables them)
