"""The whole SpeechGPT recipe in miniature, offline, on an embedded tiny default.

Each step prints what it did; everything written goes under `output_dir`. The steps grow with the
package: today they expand a tiny text LM into a SpeechGPT, save it as a Hub-style repo, load it back
through the Auto classes, and generate a spoken-style answer that the processor parses.
"""

from __future__ import annotations

import time
from pathlib import Path


def _step(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def run_quickstart(output_dir: str | Path = "quickstart_output", num_units: int = 100, seed: int = 0) -> dict:
    """Runs every step and returns a summary of what each produced."""
    import torch
    from transformers import AutoModelForCausalLM, AutoProcessor

    from speechgpt_hf import SpeechGPTProcessor, add_speech_units, format_cross_modal_instruction, units_to_string
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

    started = time.perf_counter()
    output_dir = Path(output_dir)
    repo = output_dir / "speechgpt-tiny"
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm("llama", vocab_size=len(tokenizer), seed=seed)
    model, tokenizer = add_speech_units(base, tokenizer, num_units=num_units)
    _step(f"expanded a {base.num_parameters():,}-parameter Llama: {num_units} unit tokens from id {model.config.unit_token_offset}")

    processor = SpeechGPTProcessor(tokenizer, num_units=num_units)
    model.save_pretrained(repo)
    processor.save_pretrained(repo)
    _step(f"saved the repo to {repo} ({', '.join(sorted(p.name for p in repo.iterdir()))})")

    model = AutoModelForCausalLM.from_pretrained(repo)
    processor = AutoProcessor.from_pretrained(repo)
    _step(f"loaded back through the Auto classes: {type(model).__name__}, {type(processor).__name__}")

    units = torch.randint(0, num_units, (20,), generator=torch.Generator().manual_seed(seed)).tolist()
    instruction = format_cross_modal_instruction("Transcribe this recording.", units_to_string(units))
    inputs = processor(processor.build_prompt(instruction), return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = processor.parse(generated[0, inputs["input_ids"].shape[1] :])
    _step(f"generated {generated.shape[1] - inputs['input_ids'].shape[1]} tokens; parsed answer: {answer}")
    summary = {"repo": str(repo), "answer": answer, "seconds": round(time.perf_counter() - started, 1)}
    _step(f"done in {summary['seconds']} s")
    return summary


__all__ = ["run_quickstart"]
