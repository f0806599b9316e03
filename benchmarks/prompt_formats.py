"""Which prompt format suits an instruct base: SpeechGPT's turns inside the base's chat template, or SpeechGPT's own
`[Human]: … <eoh>. [SpeechGPT]:` form, measured on the bundled SmolLM2-135M-Instruct before any speech training.

The base is expanded with `--units` speech units (its text rows and logits unchanged) and asked the spoken-QA
questions in text through a `SpeechGPTChat` whose processor writes each format, with the system prompt the
`pretrained` preset trains with; the bare base in its own template is the reference, asked the same questions with
the same budget (and, for comparison with the earlier measurements, once more the earlier way: "Answer in a few
words." first, 24 new tokens). A format the untrained model already follows is one the speech stages need not teach
it, so the accuracy it starts from is what the choice is made on. Greedy decoding, scored as spoken QA is (the first
answer an answer commits to), beside the earlier rule (an accepted answer anywhere in it).

Every answer is stored in prompt_formats.json, so a change of scoring is re-scored without running a model:

    python benchmarks/prompt_formats.py [--questions 114] [--units 200] [--threads 2]
    python benchmarks/prompt_formats.py --rescore
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from speechgpt_hf.evaluation.eval_data import SpokenQuestion, load_spoken_questions
from speechgpt_hf.evaluation.knowledge import ANSWER_BRIEFLY, MAX_NEW_TOKENS
from speechgpt_hf.evaluation.scoring import ANYWHERE, FIRST_ANSWER, first_answer, qa_accuracy
from speechgpt_hf.training.precision import cpu_model_name

RESULT = Path(__file__).with_suffix(".md")
ANSWERS = Path(__file__).with_suffix(".json")
FORMATS = ("chat_template", "speechgpt")
READING = "## What this shows"
BARE = "bare base, its own template"
BARE_EARLIER = f'bare base, its own template, "{ANSWER_BRIEFLY}" first, 24 new tokens (the earlier setting)'


def run_models(args: argparse.Namespace, questions: list[SpokenQuestion]) -> dict[str, Any]:
    """Every answer of every prompt (and the seconds each took), as stored in prompt_formats.json."""
    import torch

    from speechgpt_hf import SpeechGPTProcessor, add_speech_units
    from speechgpt_hf.evaluation.knowledge import base_text_qa, system_text_qa
    from speechgpt_hf.inference.chat import SpeechGPTChat
    from speechgpt_hf.models.speechgpt.base_models import bundled_smollm2, load_base_model, split_gguf
    from speechgpt_hf.reproduction.settings import PRESETS

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer = load_base_model(*split_gguf(bundled_smollm2()))
    model.eval()
    system_prompt = PRESETS["pretrained"].system_prompt
    answers, seconds = {}, {}

    def timed(name: str, ask: Any) -> None:
        start = time.perf_counter()
        answers[name] = ask().answers
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {seconds[name]:.0f} s", flush=True)

    timed(BARE, lambda: base_text_qa(model, tokenizer, questions))
    timed(BARE_EARLIER, lambda: base_text_qa(model, tokenizer, questions, 24, instruction=ANSWER_BRIEFLY))
    expanded, expanded_tokenizer = add_speech_units(model, tokenizer, num_units=args.units, seed=0)
    for prompt_format in FORMATS:
        processor = SpeechGPTProcessor(
            expanded_tokenizer, num_units=args.units, system_prompt=system_prompt, prompt_format=prompt_format
        )
        chat = SpeechGPTChat(expanded.eval(), processor)
        timed(f"expanded, prompt_format={prompt_format}", lambda chat=chat: system_text_qa(chat, questions))
    return {
        "command": f"python benchmarks/prompt_formats.py --questions {args.questions} --units {args.units} "
        f"--threads {args.threads}",
        "machine": f"{cpu_model_name()}, {args.threads} CPU threads, torch {torch.__version__}",
        "units": args.units,
        "max_new_tokens": MAX_NEW_TOKENS,
        "system_prompt": system_prompt.strip(),
        "questions": [q.id for q in questions],
        "answers": answers,
        "seconds": seconds,
    }


def _scores(run: dict[str, Any], questions: list[SpokenQuestion]) -> dict[str, dict[str, dict[str, Any]]]:
    accepted = [q.answers for q in questions]
    return {
        name: {rule: qa_accuracy(answers, accepted, rule) for rule in (FIRST_ANSWER, ANYWHERE)}
        for name, answers in run["answers"].items()
    }


def _clip(text: str, width: int = 160) -> str:
    text = text.replace("\n", " ").replace("|", "/")
    return repr(text[:width] + ("…" if len(text) > width else ""))


def render(run: dict[str, Any], questions: list[SpokenQuestion], examples: int) -> list[str]:
    """The markdown tables of a run: accuracy under both rules, how many answers each accepts, examples."""
    scores = _scores(run, questions)
    lines = [
        "# Prompt formats on an instruct base: text QA before speech training",
        "",
        f"Command: `{run['command']}`.",
        f"Machine: {run['machine']}. Base: the bundled SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32), "
        f"expanded with {run['units']} unit rows, untrained. {len(questions)} spoken-QA questions asked in text, "
        f"greedy, {run['max_new_tokens']} new tokens at most, each question as written (no instruction) unless the "
        f'row says otherwise. System prompt of the expanded model: "{run["system_prompt"]}".',
        "",
        "Scored two ways: **first answer** (the scorer's rule: the first sentence or clause of the answer that is not a "
        "question must hold an accepted answer) and **anywhere** (the earlier rule: an accepted answer anywhere in "
        "the answer, so a list of guesses passes).",
        "",
        "| prompt | accuracy, first answer | accuracy, anywhere | of the bare base's (first answer) | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    bare = scores[BARE][FIRST_ANSWER]["accuracy"]
    for name, by_rule in scores.items():
        strict, lenient = by_rule[FIRST_ANSWER]["accuracy"], by_rule[ANYWHERE]["accuracy"]
        share = f"{strict / bare:.0%}" if bare else "n/a"
        lines.append(f"| {name} | {strict:.1%} | {lenient:.1%} | {share} | {run['seconds'][name]:.0f} |")
    lines += _rule_counts(run, questions, scores)
    lines += ["", "## What each wrote (the first questions)", ""]
    for index, question in enumerate(questions[:examples]):
        lines.append(f"- **{question.question}** (accepted: {', '.join(question.answers[:3])})")
        for name, answers in run["answers"].items():
            mark = _mark(scores[name], index)
            lines.append(f"  - {name} ({mark}): {_clip(answers[index])}")
    return lines


def _mark(by_rule: dict[str, dict[str, Any]], index: int) -> str:
    strict, lenient = by_rule[FIRST_ANSWER]["correct"][index], by_rule[ANYWHERE]["correct"][index]
    return "right" if strict else ("wrong; right anywhere" if lenient else "wrong")


def _rule_counts(
    run: dict[str, Any], questions: list[SpokenQuestion], scores: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    """How many of all the answers each rule accepts, and every answer only the lenient rule accepts (up to 12)."""
    total = sum(len(answers) for answers in run["answers"].values())
    counts = {rule: sum(sum(s[rule]["correct"]) for s in scores.values()) for rule in (FIRST_ANSWER, ANYWHERE)}
    differ = [
        (name, index)
        for name, by_rule in scores.items()
        for index, (strict, lenient) in enumerate(
            zip(by_rule[FIRST_ANSWER]["correct"], by_rule[ANYWHERE]["correct"], strict=True)
        )
        if strict != lenient
    ]
    lines = [
        "",
        f"Of the {total} answers above, the first-answer rule accepts {counts[FIRST_ANSWER]} and the anywhere rule "
        f"{counts[ANYWHERE]}; they disagree on {len(differ)}. Where they disagree (the first answer the model "
        "committed to, then the whole answer):",
        "",
        "| prompt | question (accepted) | first answer | whole answer |",
        "| --- | --- | --- | --- |",
    ]
    for name, index in differ[:12]:
        question, answer = questions[index], run["answers"][name][index]
        lines.append(
            f"| {name} | {question.question} ({', '.join(question.answers[:3])}) | {_clip(first_answer(answer), 80)} "
            f"| {_clip(answer, 120)} |"
        )
    if len(differ) > 12:
        lines.append(f"| … {len(differ) - 12} more in prompt_formats.json | | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=114, help="how many spoken-QA questions (all 114 by default)")
    parser.add_argument("--units", type=int, default=200, help="speech units added to the vocabulary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--examples", type=int, default=6, help="answers shown per format")
    parser.add_argument("--rescore", action="store_true", help="score the stored answers again; run no model")
    args = parser.parse_args()

    if args.rescore:
        run = json.loads(ANSWERS.read_text())
        by_id = {q.id: q for q in load_spoken_questions()}
        questions = [by_id[qid] for qid in run["questions"]]
    else:
        questions = load_spoken_questions(limit=args.questions)
        run = run_models(args, questions)
        ANSWERS.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n")
    lines = render(run, questions, args.examples)
    # The reading of the numbers is written by hand under READING; a rerun keeps it below the new tables.
    kept = RESULT.read_text().partition(READING)[2] if RESULT.exists() else ""
    RESULT.write_text("\n".join(lines) + "\n" + (f"\n{READING}{kept}" if kept else ""))
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
