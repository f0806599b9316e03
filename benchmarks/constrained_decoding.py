"""What constrained unit-span decoding changes, side by side in one run; writes benchmarks/constrained_decoding.md.

A tiny Llama SpeechGPT (K = 1000 units, the paper's vocabulary) measured random, then "young": after 60 and
200 AdamW steps on synthetic chain-of-modality answers (random units stand in for speech), when it has learned
that units are frequent but not yet quite where they belong. At each point it samples 50 answers (10 prompts,
text and speech instructions, 5 samples each) three ways from the same seed: free, with
`UnitSpanLogitsProcessor`, and with it plus `max_span_units`; each with transformers' default top-k 50 and with
plain sampling (top_k=0). Per answer: `SpeechGPTProcessor.parse(...).problems`, and the span-rule breaches
counted token by token (unit tokens outside spans, text inside spans, stray `<eosp>`). The reading under the
tables is written by `reading()` from the run's own rows.

Run: python benchmarks/constrained_decoding.py [--steps 60 200] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import functools
import os
import textwrap
import time
from collections import Counter
from pathlib import Path

import torch
from transformers import LogitsProcessorList

from speechgpt_hf import SpeechGPTProcessor, add_speech_units, format_chain_of_modality_response, units_to_string
from speechgpt_hf.inference.constrained_decoding import UnitSpanLogitsProcessor, unit_span_logits_processor
from speechgpt_hf.testing_utils import TINY_CORPUS, build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.precision import cpu_model_name

RESULT = Path(__file__).with_suffix(".md")
NUM_UNITS = 1000
MAX_SPAN_UNITS = 40
FREE, CONSTRAINED = "free", "constrained"
CAPPED = f"constrained, max_span_units={MAX_SPAN_UNITS}"
BREACHES = ("units outside spans", "text inside spans", "stray <eosp>")
IN_TEXT, AFTER_SPAN = "units in the text", "units after the span"
PROBLEM_KINDS = {
    "no end marker": "no end marker",
    "not closed": "unit span not closed",
    "holds no": "[ua] without span",
    "outside the spoken answer's unit span": IN_TEXT,
    "after <eosp>": AFTER_SPAN,
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
    model, processor, constraint: UnitSpanLogitsProcessor | None, new_tokens: int, top_k: int, repeats: int = 2
) -> tuple[list, float]:
    """50 sampled answers (ids after the prompt) and the CPU seconds of this process in the fastest of `repeats`
    identical generate calls (same seed, same answers): other jobs on the machine inflate wall time far more."""
    inputs = processor(prompts(processor), return_tensors="pt")
    processors = LogitsProcessorList([] if constraint is None else [constraint])
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        start = time.process_time()
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                do_sample=True,
                top_k=top_k,
                num_return_sequences=5,
                max_new_tokens=new_tokens,
                logits_processor=processors,
            )
        times.append(time.process_time() - start)
    return [row[inputs["input_ids"].shape[1] :].tolist() for row in output], min(times)


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
        kinds.update({label for problem in response.problems for key, label in PROBLEM_KINDS.items() if key in problem})
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
        FREE: None,
        CONSTRAINED: unit_span_logits_processor(processor),
        CAPPED: unit_span_logits_processor(processor, MAX_SPAN_UNITS),
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
        + " | answers with units | generate CPU s |",
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


def unit_mass(model, processor: SpeechGPTProcessor) -> float:
    """Mean next-token probability on the K unit tokens at the end of the ten prompts (left-padded)."""
    inputs = processor(prompts(processor), return_tensors="pt")
    with torch.inference_mode():
        probs = model(**inputs).logits[:, -1].softmax(-1)
    offset = processor.unit_token_offset
    return probs[:, offset : offset + NUM_UNITS].sum(-1).mean().item()


def _row(results: dict[int, dict[str, dict]], steps: int, top_k: int, decoding: str) -> dict:
    return results[steps][f"top_k={top_k}, {decoding}"]


def _per(row: dict, column: str) -> str:
    return f"{row['per_answer'].get(column, 0.0):.2f}"


def _bullet(text: str) -> str:
    """One wrapped markdown bullet; an `a -> b` change stays on one line."""
    kept = text.replace(" -> ", "\0->\0")
    wrapped = textwrap.fill(kept, width=110, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
    return wrapped.replace("\0", " ")


def _breach_lines(results: dict[int, dict[str, dict]], mass: float, young: int) -> list[str]:
    """What free decoding breaks, and what the constraint changes, at 0 and `young` steps."""
    row = functools.partial(_row, results)
    worst = max(
        row_["per_answer"].get(column, 0.0)
        for rows in results.values()
        for label, row_ in rows.items()
        if CONSTRAINED in label
        for column in BREACHES
    )
    removed = (
        "removes every breach in every constrained row"
        if worst == 0
        else f"leaves up to {worst:.2f} breaches an answer"
    )
    pairs = {top_k: (row(young, top_k, FREE), row(young, top_k, CONSTRAINED)) for top_k in (50, 0)}
    random_free, random_constrained = row(0, 0, FREE), row(0, 0, CONSTRAINED)
    return [
        _bullet(
            "Free decoding breaks the span rules whenever the sampler reaches the unit tokens. With plain sampling "
            f"the random model writes {_per(random_free, 'units outside spans')} bare units an answer: the "
            f"{NUM_UNITS} unit rows hold {mass:.0%} of its next-token probability, spread thin, so top-k 50 "
            f"rarely reaches them ({_per(row(0, 50, FREE), 'units outside spans')} an answer). After {young} steps "
            f"the young model puts text inside its spans ({_per(pairs[50][0], 'text inside spans')} and "
            f"{_per(pairs[0][0], 'text inside spans')} tokens an answer with top-k 50 and plain sampling) and "
            f"closes spans it never opened ({_per(pairs[50][0], 'stray <eosp>')} and "
            f"{_per(pairs[0][0], 'stray <eosp>')} stray `<eosp>` an answer)."
        ),
        _bullet(
            f"The constraint {removed}. At {young} steps parse problems an answer go "
            f"{_per(pairs[50][0], 'problems')} -> {_per(pairs[50][1], 'problems')} with top-k 50 and "
            f"{_per(pairs[0][0], 'problems')} -> {_per(pairs[0][1], 'problems')} with plain sampling "
            f"({_per(random_free, 'problems')} -> {_per(random_constrained, 'problems')} for the random model "
            f"with plain sampling), and answers with units {pairs[50][0]['with_units']} -> "
            f"{pairs[50][1]['with_units']} and {pairs[0][0]['with_units']} -> {pairs[0][1]['with_units']} of 50: "
            "broken spans become spans parse can read."
        ),
    ]


def _leak_lines(results: dict[int, dict[str, dict]], young: int, known: int) -> list[str]:
    """What the two leaked-unit problem kinds show, with and without the constraint."""
    row = functools.partial(_row, results)
    leaks = ", ".join(f"{row(steps, 0, FREE)['kinds'][IN_TEXT]} at {steps} steps" for steps in results)
    free, constrained = row(known, 0, FREE), row(known, 0, CONSTRAINED)
    return [
        _bullet(
            f"`parse` reports unit tokens outside the answer's span (columns `{IN_TEXT}` and `{AFTER_SPAN}`), so "
            f"the units free decoding leaks count as parse problems. Free answers with {IN_TEXT} (plain sampling, "
            f"of 50): {leaks}. At {known} steps free decoding with plain sampling has {_per(free, 'problems')} parse "
            f"problems an answer and {_per(free, 'units outside spans')} bare units; constrained decoding "
            f"{_per(constrained, 'problems')} and {_per(constrained, 'units outside spans')}."
        ),
        _bullet(
            "The constraint does not bring those two columns to zero: it checks how a span is written, not how many "
            "spans an answer has or where they stand. A young model under it still writes a second well-formed span "
            f"after the first ({AFTER_SPAN}: {row(young, 50, CONSTRAINED)['kinds'][AFTER_SPAN]} and "
            f"{row(young, 0, CONSTRAINED)['kinds'][AFTER_SPAN]} answers at {young} steps, top-k 50 and plain "
            f"sampling) or a span inside its text answer ({IN_TEXT}: {row(known, 50, CONSTRAINED)['kinds'][IN_TEXT]}"
            f" and {row(known, 0, CONSTRAINED)['kinds'][IN_TEXT]} at {known} steps); parse keeps one span as the "
            "answer's units and drops the units of the others."
        ),
    ]


def _limit_lines(results: dict[int, dict[str, dict]], young: int, known: int) -> list[str]:
    """What changes once the format is learnt, and what the constraint cannot fix."""
    row = functools.partial(_row, results)
    free, constrained = row(known, 50, FREE), row(known, 50, CONSTRAINED)
    breaks = sum(free["per_answer"].get(column, 0.0) for column in BREACHES)
    cut = [row(steps, 0, CONSTRAINED)["kinds"]["no end marker"] for steps in (young, known)]
    unclosed = [row(0, 0, decoding)["kinds"]["unit span not closed"] for decoding in (CONSTRAINED, CAPPED)]
    return [
        _bullet(
            f"Once the model knows the format ({known} steps, top-k 50) free decoding makes {breaks:.2f} span-rule "
            f"breaches an answer and the constraint changes little: answers with problems {free['with_problems']} -> "
            f"{constrained['with_problems']} of 50."
        ),
        _bullet(
            "What it cannot fix: answers cut off before an end marker (constrained, plain sampling: "
            f"{cut[0]} at {young} steps, {cut[1]} at {known}), and `[ua]` followed by text instead of a span "
            f"({constrained['kinds']['[ua] without span']} answers at {known} steps, top-k 50; `[ua]` is ordinary "
            "text, so the span rules do not see it). A span the constraint keeps open runs until `max_new_tokens`; "
            f"`max_span_units` closes it (random model, plain sampling: unclosed spans {unclosed[0]} -> {unclosed[1]})."
        ),
    ]


def reading(results: dict[int, dict[str, dict]], mass: float) -> list[str]:
    """The reading of a run, every number taken from its rows (`results[training steps][row label]`)."""
    young, known = min(steps for steps in results if steps), max(results)
    return [
        "Reading (written by the script from the rows above; its wording was chosen for the default run, "
        "`--steps 60 200 --new-tokens 128`):",
        *_breach_lines(results, mass, young),
        *_leak_lines(results, young, known),
        *_limit_lines(results, young, known),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 200], help="training steps at which to measure")
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    if min(args.steps) < 1:
        parser.error("--steps must be positive (the random model is always measured)")
    started = time.perf_counter()
    model, processor = build_model()
    mass = unit_mass(model, processor)
    lines = [
        "# Constrained decoding of unit spans",
        "",
        f"Machine: {cpu_model_name()}, {torch.get_num_threads()} torch threads, CPU only; torch {torch.__version__}. "
        "Command: `python benchmarks/constrained_decoding.py --steps "
        f"{' '.join(map(str, args.steps))} --new-tokens {args.new_tokens}`.",
        "",
        f"Llama 64 x 2 with K = {NUM_UNITS} unit tokens; 50 sampled answers (10 prompts x 5, seed 0), at most "
        f"{args.new_tokens} new tokens, cut at the first `</s>`/`<eoa>`. Problem columns count answers whose "
        "`parse(...).problems` name that problem; generate CPU s is this process's CPU time in the faster of two "
        "identical calls. At the end of the ten prompts the random model puts "
        f"{mass:.0%} of its next-token probability on the unit tokens.",
        "",
    ]
    results = {0: compare(model, processor, args.new_tokens)}
    lines += table("random model (0 training steps)", results[0])
    optimizer, generator, trained = torch.optim.AdamW(model.parameters(), lr=3e-3), torch.Generator().manual_seed(1), 0
    for checkpoint in sorted(set(args.steps)):
        loss = train_briefly(model, processor, optimizer, checkpoint - trained, generator)
        trained = checkpoint
        results[trained] = compare(model, processor, args.new_tokens)
        lines += table(f"young model ({trained} training steps, last loss {loss:.2f})", results[trained])
    lines += [
        f"Whole run: {time.perf_counter() - started:.0f} s on a 2-core machine shared with other jobs; load average "
        f"(1 min) at the end: {os.getloadavg()[0]:.1f}. The generate CPU seconds say only that the constraint "
        "costs no visible time at this size (it reads each row's ids once a step: O(batch x length)).",
        "",
        *reading(results, mass),
    ]
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
