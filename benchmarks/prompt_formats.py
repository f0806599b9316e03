"""Which prompt format suits an instruct base: SpeechGPT's turns inside the base's chat template, or SpeechGPT's own
`[Human]: … <eoh>. [SpeechGPT]:` form, measured on the bundled SmolLM2-135M-Instruct before any speech training.

The base is expanded with `--units` speech units (its text rows and logits unchanged) and asked the spoken-QA
questions in text through a `SpeechGPTChat` whose processor writes each format, with the system prompt the
`pretrained` preset trains with; the bare base in its own template (with "Answer in a few words.") is the
reference. A format the untrained model already follows is one the speech stages need not teach it, so the
accuracy it starts from is what the choice is made on. Greedy decoding, scored as spoken QA is.

    python benchmarks/prompt_formats.py [--questions 114] [--units 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from speechgpt_hf import SpeechGPTProcessor, add_speech_units
from speechgpt_hf.evaluation.eval_data import load_spoken_questions
from speechgpt_hf.evaluation.knowledge import base_text_qa, system_text_qa
from speechgpt_hf.inference.chat import SpeechGPTChat
from speechgpt_hf.models.speechgpt.base_models import bundled_smollm2, load_base_model, split_gguf
from speechgpt_hf.reproduction.settings import PRESETS

RESULT = Path(__file__).with_suffix(".md")
FORMATS = ("chat_template", "speechgpt")
READING = "## What this shows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=114, help="how many spoken-QA questions (all 114 by default)")
    parser.add_argument("--units", type=int, default=200, help="speech units added to the vocabulary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--examples", type=int, default=6, help="answers shown per format")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    questions = load_spoken_questions(limit=args.questions)
    model, tokenizer = load_base_model(*split_gguf(bundled_smollm2()))
    model.eval()
    system_prompt = PRESETS["pretrained"].system_prompt
    results, seconds = {}, {}
    start = time.perf_counter()
    results["bare base, its own template"] = base_text_qa(model, tokenizer, questions)
    seconds["bare base, its own template"] = time.perf_counter() - start
    expanded, expanded_tokenizer = add_speech_units(model, tokenizer, num_units=args.units, seed=0)
    for prompt_format in FORMATS:
        processor = SpeechGPTProcessor(
            expanded_tokenizer, num_units=args.units, system_prompt=system_prompt, prompt_format=prompt_format
        )
        name = f"expanded, prompt_format={prompt_format}"
        start = time.perf_counter()
        results[name] = system_text_qa(SpeechGPTChat(expanded.eval(), processor), questions)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {results[name].accuracy:.1%} ({seconds[name]:.0f} s)", flush=True)

    lines = [
        "# Prompt formats on an instruct base: text QA before speech training",
        "",
        "Command: `python benchmarks/prompt_formats.py "
        f"--questions {args.questions} --units {args.units} --threads {args.threads}`.",
        f"Machine: {platform.machine()}, {args.threads} CPU threads, torch {torch.__version__}. Base: the bundled "
        "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32), expanded with "
        f"{args.units} unit rows, untrained. {len(questions)} spoken-QA questions asked in text, greedy, scored as "
        f'spoken QA is. System prompt: "{system_prompt.strip()}".',
        "",
        "| prompt | accuracy | of the bare base's | seconds |",
        "| --- | ---: | ---: | ---: |",
    ]
    bare = results["bare base, its own template"].accuracy
    for name, result in results.items():
        share = f"{result.accuracy / bare:.0%}" if bare else "n/a"
        lines.append(f"| {name} | {result.accuracy:.1%} | {share} | {seconds[name]:.0f} |")
    lines += ["", "## What each wrote (the first questions)", ""]
    for index, question in enumerate(questions[: args.examples]):
        lines.append(f"- **{question.question}** (accepted: {', '.join(question.answers[:3])})")
        for name, result in results.items():
            mark = "right" if result.correct[index] else "wrong"
            answer = result.answers[index].replace("\n", " ").replace("|", "/")[:160]
            lines.append(f"  - {name} ({mark}): {answer!r}")
    # The reading of the numbers is written by hand under READING; a rerun keeps it below the new tables.
    kept = RESULT.read_text().partition(READING)[2] if RESULT.exists() else ""
    RESULT.write_text("\n".join(lines) + "\n" + (f"\n{READING}{kept}" if kept else ""))
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
