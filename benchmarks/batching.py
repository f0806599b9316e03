"""Items per second: requests answered in batches against one by one; writes benchmarks/batching.md.

A small random SpeechGPT (Llama, 4 layers x 128, 200 units) answers the same text requests through
`SpeechGPTChat.respond_batch` at several batch sizes and through `respond` one at a time, and the same recordings
through the speech-to-text pipeline with a list and `batch_size` against one call each. Greedy, a fixed number of
new tokens (no end token is allowed), rounds interleaved so that machine load hits every setting alike; the answers
of each batched run are checked against the one-by-one answers.

Run: python benchmarks/batching.py [--items 16] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

import speechgpt_hf  # noqa: F401  (registers the pipelines)
from speechgpt_hf import SpeechGPTChat, SpeechGPTProcessor, add_speech_units
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.precision import cpu_model_name

RESULT = Path(__file__).with_suffix(".md")
NUM_UNITS = 200


def build_system(new_tokens: int) -> tuple[SpeechGPTChat, SpeechUnitTokenizer]:
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4
    )
    model, tokenizer = add_speech_units(base, tokenizer, num_units=NUM_UNITS)
    # A fixed answer length: no end token, so every setting generates the same number of tokens.
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    processor = SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).eval()
    units.fit([tone(2.0, 150 + 30 * i) for i in range(8)], sampling_rate=16000, max_iter=3, progress=False)
    return SpeechGPTChat(model.eval(), processor, unit_tokenizer=units, generation_kwargs=settings), units


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def baseline(name: str) -> str:
    """The one-by-one setting a setting is compared with."""
    return "chat, one by one" if name.startswith("chat") else "speech-to-text pipeline, one call each"


def timed(work) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of `work()`: on a machine other jobs share, the CPU time
    is the steadier measure of the work done."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run(items: int, rounds: int, batch_sizes: list[int], new_tokens: int) -> dict:
    chat, units = build_system(new_tokens)
    texts = [f"Tell me about topic number {i}, in a few words." for i in range(items)]
    recordings = [{"array": tone(0.8 + 0.05 * i, 200 + 10 * i), "sampling_rate": 16000} for i in range(items)]
    asr = pipeline("speech-to-text", model=chat.model, processor=chat.processor, unit_tokenizer=units, device="cpu")
    generate = dict(chat.generation_kwargs)

    def chat_one_by_one() -> list[str]:
        answers = []
        for text in texts:
            chat.reset()
            answers.append(chat.respond(text=text).response.text)
        return answers

    settings = {"chat, one by one": chat_one_by_one}
    for size in batch_sizes:
        settings[f"chat.respond_batch, batch_size {size}"] = lambda size=size: [
            reply.response.text for reply in chat.respond_batch(texts, batch_size=size)
        ]
    settings["speech-to-text pipeline, one call each"] = lambda: [asr(item, **generate)["text"] for item in recordings]
    for size in batch_sizes:
        settings[f"speech-to-text pipeline, list, batch_size {size}"] = lambda size=size: [
            result["text"] for result in asr(recordings, batch_size=size, **generate)
        ]
    wall: dict[str, list[float]] = {name: [] for name in settings}
    cpu: dict[str, list[float]] = {name: [] for name in settings}
    answers: dict[str, object] = {}
    for _ in range(rounds):
        for name, work in settings.items():
            elapsed, used, answers[name] = timed(work)
            wall[name].append(elapsed)
            cpu[name].append(used)
    same = {name: answers[name] == answers[baseline(name)] for name in settings}
    median = statistics.median
    return {
        "wall": {k: median(v) for k, v in wall.items()},
        "cpu": {k: median(v) for k, v in cpu.items()},
        "same": same,
    }


def write(result: dict, args: argparse.Namespace) -> None:
    lines = [
        "# Batched requests against one by one",
        "",
        f"Command: `python benchmarks/batching.py --items {args.items} --rounds {args.rounds} --threads "
        f"{args.threads}`.",
        f"Machine: {cpu_model_name()}; torch {torch.__version__}, {args.threads} threads. Model: a random Llama, 4 layers x "
        f"128, {NUM_UNITS} units; {args.items} requests, {args.new_tokens} new tokens each, greedy; the median of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| setting | CPU seconds | items per CPU second | speed-up (CPU) | wall seconds | items/s (wall) | answers "
        "equal to one by one |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    wall, cpu = result["wall"], result["cpu"]
    for name in cpu:
        lines.append(
            f"| {name} | {cpu[name]:.2f} | {args.items / cpu[name]:.1f} | {cpu[baseline(name)] / cpu[name]:.2f}x | "
            f"{wall[name]:.2f} | {args.items / wall[name]:.1f} | {'yes' if result['same'][name] else 'no'} |"
        )
    load = os.getloadavg()
    lines += ["", f"Load average when the run ended (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in load)}."]
    if load[1] > (os.cpu_count() or 1):
        lines.append(
            "The machine was busy with other work during the run (load above its CPU count): every timing above is "
            "uncertain, CPU seconds included (threads waiting for a core can count as busy), and the rows do not "
            "rank reliably; rerun on an idle machine before drawing a conclusion. The answer check holds regardless."
        )
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    write(run(args.items, args.rounds, args.batch_sizes, args.new_tokens), args)


if __name__ == "__main__":
    main()
