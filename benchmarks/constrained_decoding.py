"""What constrained unit-span decoding changes, side by side in one run; writes benchmarks/constrained_decoding.md.

A tiny Llama SpeechGPT (K = 1000 units, the paper's vocabulary) measured random, then "young": after 60 and
200 AdamW steps on synthetic chain-of-modality answers (random units stand in for speech), when it has learned
that units are frequent but not yet quite where they belong. At each point it samples 50 answers (10 prompts,
text and speech instructions, 5 samples each) three ways from the same seed: free, with
`UnitSpanLogitsProcessor`, and with it plus `max_span_units`; each with transformers' default top-k 50 and with
plain sampling (top_k=0). Per answer: `SpeechGPTProcessor.parse(...).problems`, and the span-rule breaches that
parse does not report (unit tokens outside spans, text inside spans, stray `<eosp>`).

Run: python benchmarks/constrained_decoding.py [--steps 60 200] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from pathlib import Path

import torch
from transformers import LogitsProcessorList

from speechgpt_hf import SpeechGPTProcessor, add_speech_units, format_chain_of_modality_response, units_to_string
from speechgpt_hf.inference.constrained_decoding import UnitSpanLogitsProcessor, unit_span_logits_processor
from speechgpt_hf.testing_utils import TINY_CORPUS, build_tiny_causal_lm, build_tiny_tokenizer

RESULT = Path(__file__).with_suffix(".md")
NUM_UNITS = 1000
MAX_SPAN_UNITS = 40
READING = """\
Reading (numbers of the default run):
- Free decoding breaks the span rules whenever the sampler reaches the unit tokens: with plain sampling
  the random model writes about 86 bare units an answer (the 1000 unit rows hold about three quarters of
  its probability mass, spread thin, so top-k 50 almost never reaches them), and after 60 steps the
  young model puts text inside its spans and closes spans it never opened, under either sampler. The
  constraint removes every breach in every row, and there it also cuts parse problems per answer
  (0.84 -> 0.54 and 0.82 -> 0.64 at 60 steps; 1.00 -> 0.62 for the random model) and turns broken spans
  into clean unit answers (answers with units 9 -> 19, 18 -> 29).
- `parse(...).problems` does not count units leaked into the text (they stay in `text` as `<12>`
  strings), so it understates what free decoding gets wrong: at 200 steps with plain sampling free
  decoding has fewer parse problems (0.44 vs 0.60, 50 answers, noisy) but 7.8 bare units an answer.
- Once the model knows the format (200 steps, top-k 50) free decoding is already clean and the
  constraint changes next to nothing.
- What it cannot fix: answers cut off before an end marker, and `[ua]` followed by text instead of a
  span (`[ua]` is ordinary text, so the span rules do not see it). A span the constraint keeps open runs
  until `max_new_tokens`; `max_span_units` closes it (random model, plain sampling: unclosed spans 8 -> 1).
"""
PROBLEM_KINDS = {
    "no end marker": "no end marker",
    "not closed": "unit span not closed",
    "holds no": "[ua] without span",
}


def random_units(generator: torch.Generator, low: int = 5, high: int = 30) -> list[int]:
    """A random unit sequence of `low`-`high` units, standing in for an utterance."""
    length = int(torch.randint(low, high + 1, (1,), generator=generator))
    return torch.randint(0, NUM_UNITS, (length,), generator=generator).tolist()


def conversation(processor: SpeechGPTProcessor, generator: torch.Generator) -> str:
    """One synthetic exchange in one of the four chain-of-modality formats (random units stand in for speech)."""
    question, answer = (TINY_CORPUS[int(i)] for i in torch.randint(0, len(TINY_CORPUS), (2,), generator=generator))
    speech_in, speech_out = torch.randint(0, 2, (2,), generator=generator).tolist()
    instruction = units_to_string(random_units(generator)) if speech_in else question
    response = format_chain_of_modality_response(
        "speech" if speech_out else "text",
        answer,
        answer_units=random_units(generator) if speech_out else None,
        transcript=question if speech_in else None,
    )
    return processor.build_prompt(instruction) + response + "<eoa>"


def train_briefly(
    model: torch.nn.Module,
    processor: SpeechGPTProcessor,
    optimizer: torch.optim.Optimizer,
    steps: int,
    generator: torch.Generator,
    batch: int = 16,
) -> float:
    """`steps` more optimiser steps of LM loss on fresh synthetic answers; returns the last loss."""
    model.train()
    for _ in range(steps):
        texts = [conversation(processor, generator) for _ in range(batch)]
        inputs = processor(texts, return_tensors="pt", padding_side="right")
        labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return loss.item()


def prompts(processor: SpeechGPTProcessor) -> list[str]:
    """Ten prompts: five text instructions and five spoken ones (random unit spans)."""
    generator = torch.Generator().manual_seed(2)
    spoken = [units_to_string(random_units(generator, 20, 60)) for _ in range(5)]
    return [processor.build_prompt(text) for text in [*TINY_CORPUS[:5], *spoken]]


def sample_answers(
    model, processor, constraint: UnitSpanLogitsProcessor | None, new_tokens: int, top_k: int
) -> tuple[list, float]:
    """50 sampled answers (ids after the prompt) and the seconds the generate call took."""
    inputs = processor(prompts(processor), return_tensors="pt")
    processors = LogitsProcessorList([] if constraint is None else [constraint])
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            do_sample=True,
            top_k=top_k,
            num_return_sequences=5,
            max_new_tokens=new_tokens,
            logits_processor=processors,
        )
    seconds = time.perf_counter() - start
    return [row[inputs["input_ids"].shape[1] :].tolist() for row in output], seconds


def breaches(answer: list[int], processor: SpeechGPTProcessor) -> Counter:
    """Span-rule breaches of one answer, walking from outside a span (every prompt here ends outside one)."""
    units = range(processor.unit_token_offset, processor.unit_token_offset + NUM_UNITS)
    counts, inside = Counter(), False
    for token in answer:
        if token == processor.sosp_token_id:
            inside = True
        elif token == processor.eosp_token_id:
            counts["stray <eosp>"] += not inside
            inside = False
        elif token in units:
            counts["units outside spans"] += not inside
        elif inside:
            counts["text inside spans"] += 1
    return counts


def measure(answers: list[list[int]], processor: SpeechGPTProcessor, model) -> dict:
    ends = set(model.generation_config.eos_token_id)
    totals, kinds, with_problems, with_units = Counter(), Counter(), 0, 0
    for answer in answers:
        cut = next((i + 1 for i, token in enumerate(answer) if token in ends), len(answer))
        response = processor.parse(answer[:cut])
        totals += breaches(answer[:cut], processor)
        totals["problems"] += len(response.problems)
        with_problems += bool(response.problems)
        with_units += bool(response.units)
        for problem in response.problems:
            kinds.update(label for key, label in PROBLEM_KINDS.items() if key in problem)
    n = len(answers)
    return {
        "n": n,
        "per_answer": {k: v / n for k, v in totals.items()},
        "kinds": kinds,
        "with_problems": with_problems,
        "with_units": with_units,
    }


def build_model() -> tuple:
    """A random Llama 64 x 2 expanded with K unit tokens, and its processor."""
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm("llama", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128)
    model, tokenizer = add_speech_units(base, tokenizer, num_units=NUM_UNITS)
    return model.eval(), SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS)


def compare(model, processor, new_tokens: int) -> dict[str, dict]:
    """The three decodings of the same model, from the same seed, with top-k 50 (transformers' default) and
    plain sampling (top_k=0)."""
    decodings = {
        "free": None,
        "constrained": unit_span_logits_processor(processor),
        f"constrained, max_span_units={MAX_SPAN_UNITS}": unit_span_logits_processor(processor, MAX_SPAN_UNITS),
    }
    rows = {}
    for top_k in (50, 0):
        for label, constraint in decodings.items():
            answers, seconds = sample_answers(model, processor, constraint, new_tokens, top_k)
            rows[f"top_k={top_k}, {label}"] = {**measure(answers, processor, model), "seconds": seconds}
    return rows


def table(name: str, rows: dict[str, dict]) -> list[str]:
    """Markdown lines of one model's comparison."""
    columns = ["parse problems", "units outside spans", "text inside spans", "stray <eosp>"]
    lines = [
        f"### {name}",
        "",
        "| decoding | answers with problems | "
        + " | ".join(f"{c} / answer" for c in columns)
        + " | "
        + " | ".join(PROBLEM_KINDS.values())
        + " | answers with units | generate s |",
        "| --- |" + " ---: |" * (len(columns) + len(PROBLEM_KINDS) + 3),
    ]
    for label, row in rows.items():
        per = row["per_answer"]
        values = [per.get("problems", 0.0), *(per.get(c, 0.0) for c in columns[1:])]
        lines.append(
            f"| {label} | {row['with_problems']}/{row['n']} | "
            + " | ".join(f"{v:.2f}" for v in values)
            + " | "
            + " | ".join(str(row["kinds"][k]) for k in PROBLEM_KINDS.values())
            + f" | {row['with_units']}/{row['n']} | {row['seconds']:.2f} |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 200], help="training steps at which to measure")
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    started = time.perf_counter()
    lines = [
        "# Constrained decoding of unit spans",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU only; torch {torch.__version__}. "
        "Command: `python benchmarks/constrained_decoding.py --steps "
        f"{' '.join(map(str, args.steps))} --new-tokens {args.new_tokens}`.",
        "",
        f"Llama 64 x 2 with K = {NUM_UNITS} unit tokens; 50 sampled answers (10 prompts x 5, seed 0), at most "
        f"{args.new_tokens} new tokens, cut at the first `</s>`/`<eoa>`. Problem columns count answers whose "
        "`parse(...).problems` name that problem.",
        "",
    ]
    model, processor = build_model()
    lines += table("random model (0 training steps)", compare(model, processor, args.new_tokens))
    optimizer, generator, trained = torch.optim.AdamW(model.parameters(), lr=3e-3), torch.Generator().manual_seed(1), 0
    for checkpoint in sorted(args.steps):
        loss = train_briefly(model, processor, optimizer, checkpoint - trained, generator)
        trained = checkpoint
        name = f"young model ({trained} training steps, last loss {loss:.2f})"
        lines += table(name, compare(model, processor, args.new_tokens))
    lines += [
        f"Whole run: {time.perf_counter() - started:.0f} s on a 2-core machine shared with other jobs; load average "
        f"(1 min) at the end: {os.getloadavg()[0]:.1f}, so the generate seconds say only that the constraint costs "
        "no visible time at this size (it reads each row's ids once a step: O(batch x length)).",
        "",
        READING.rstrip(),
    ]
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
