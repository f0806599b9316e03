"""Fine-tuning a pretrained 135M base on this CPU: tokens a second of each training choice, side by side in one run.

The bundled SmolLM2-135M-Instruct (GGUF, dequantised to fp32) is expanded with `--units` speech units, then each
choice trains the same batches (`--batch` rows of `--length` tokens: unit spans with a little text, as stage 1
sees them) from the same starting weights with AdamW for `--steps` steps after one untimed warm-up step:

- full fine-tuning in fp32;
- LoRA r=8 on q/v (the release's adapter), with and without the unit rows of the embeddings trainable (PEFT
  trainable tokens, what stage 1 needs: a LoRA alone cannot learn the new rows), built by the stage trainer's
  `lora_config`;
- full fine-tuning with gradient checkpointing;
- with `--bf16`, full and LoRA fine-tuning under bf16 autocast (fp32 master weights). Before any training, the
  matrix products a step is made of are timed in fp32 and bf16, which says whether bf16 can pay on this CPU.

Each choice reports tokens/s, the model FLOPs it achieved a second (6 N a token for a full step, 4 N for a frozen
weight: forward plus the activation gradient; N counts the matrix multiplies, the output layer included) as a
share of this CPU's peak, and its losses step by step: the bf16 losses must follow the fp32 ones.

    python benchmarks/pretrained_training.py [--steps 3] [--batch 8] [--length 256] [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from speechgpt_hf import add_speech_units
from speechgpt_hf.models.speechgpt.base_models import bundled_smollm2
from speechgpt_hf.training.precision import cpu_model_name

RESULT = Path(__file__).with_suffix(".md")
# Matrix-product peaks quoted for this machine type with two cores (the fp32 one is what the GEMM probe reaches).
PEAK_GFLOPS = {"fp32": 155.0, "bf16": 400.0}


@dataclass(frozen=True)
class Choice:
    """One way to train: which weights learn, in which precision, with or without gradient checkpointing."""

    name: str
    lora: bool = False
    unit_rows: bool = False
    bf16: bool = False
    checkpointing: bool = False


CHOICES = (
    Choice("full, fp32"),
    Choice("LoRA q/v, fp32", lora=True),
    Choice("LoRA q/v + unit rows, fp32", lora=True, unit_rows=True),
    Choice("full, fp32, gradient checkpointing", checkpointing=True),
)
# bf16 autocast, measured only with --bf16: on a CPU without AVX-512 BF16 its matrix products fall back to slow kernels
PROBE_TOKENS = 256  # rows of the timed matrix products (bf16's slowest takes seconds even so)
BF16_CHOICES = (
    Choice("full, bf16 autocast", bf16=True),
    Choice("LoRA q/v + unit rows, bf16 autocast", lora=True, unit_rows=True, bf16=True),
)


def gemm_rates(hidden: int, vocab: int, tokens: int) -> dict[str, dict[str, float]]:
    """GFLOP/s of the step's two kinds of matrix product in fp32 and bf16: a layer's projection (tokens x hidden by
    hidden x hidden) and the output layer's input gradient (tokens x vocab by vocab x hidden), one call each after a
    warm-up."""
    shapes = {"projection": (tokens, hidden, hidden), "output-layer gradient": (tokens, vocab, hidden)}
    rates: dict[str, dict[str, float]] = {}
    for name, (m, k, n) in shapes.items():
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            a @ b
            started = time.perf_counter()
            a @ b
            rates.setdefault(name, {})[str(dtype).removeprefix("torch.")] = (
                2 * m * k * n / (time.perf_counter() - started) / 1e9
            )
    return rates


def expanded_base(num_units: int) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct from its GGUF, expanded with `num_units` units."""
    model, tokenizer = add_speech_units(str(bundled_smollm2()), num_units=num_units)
    return model, tokenizer


def batches(model: Any, tokenizer: Any, steps: int, batch: int, length: int) -> list[torch.Tensor]:
    """`steps` + 1 batches of rows like stage 1's: a unit span between the markers, a few text tokens before it."""
    generator = torch.Generator().manual_seed(0)
    unit_ids = torch.tensor(model.config.unit_token_ids())
    start, end = tokenizer.convert_tokens_to_ids(["<sosp>", "<eosp>"])
    text = tokenizer("Listen to this:", add_special_tokens=False)["input_ids"]
    out = []
    for _ in range(steps + 1):
        units = unit_ids[torch.randint(0, len(unit_ids), (batch, length - len(text) - 2), generator=generator)]
        prefix = torch.tensor([*text, start]).expand(batch, -1)
        out.append(torch.cat([prefix, units, torch.full((batch, 1), end)], dim=1))
    return out


def prepared(base: Any, choice: Choice, scratch: str) -> tuple[Any, list[torch.nn.Parameter]]:
    """A copy of the base set up for `choice` (its LoRA built as the stage trainer builds it), and the parameters its
    optimiser updates."""
    from peft import get_peft_model

    from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, lora_config

    model = copy.deepcopy(base)
    if choice.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if choice.lora:
        stage = SpeechGPTTrainingConfig(
            output_dir=scratch,
            model_name_or_path=scratch,
            use_lora=True,
            lora_dropout=0.0,
            train_unit_embeddings=choice.unit_rows,
            use_cpu=True,
            report_to="none",
        )
        model = get_peft_model(model, lora_config(stage, model))
    model.train()
    return model, [p for p in model.parameters() if p.requires_grad]


def matmul_parameters(model: Any) -> int:
    """Weights that take part in a matrix product each token (every Linear, the output layer included)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def train(base: Any, choice: Choice, data: list[torch.Tensor], scratch: str) -> dict[str, Any]:
    """Warm-up step, then timed steps; tokens/s, achieved GFLOP/s and the loss of every step."""
    model, trainable = prepared(base, choice, scratch)
    optimiser = torch.optim.AdamW(trainable, lr=1e-4)
    losses, seconds = [], []
    for batch in data:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=choice.bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
        losses.append(loss.item())
        print(f"{choice.name}: step {len(losses)} loss {losses[-1]:.4f} in {seconds[-1]:.1f} s", flush=True)
    tokens = data[0].numel()
    timed = seconds[1:]
    n = matmul_parameters(base)
    flops_per_token = 6 * n if not choice.lora else 4 * n  # LoRA's own products are negligible beside N
    tokens_per_second = tokens * len(timed) / sum(timed)
    gflops = flops_per_token * tokens_per_second / 1e9
    return {
        "choice": choice.name,
        "trainable": sum(p.numel() for p in trainable),
        "tokens_per_second": tokens_per_second,
        "step_seconds": timed,
        "warm_up_seconds": seconds[0],
        "gflops": gflops,
        "peak": PEAK_GFLOPS["bf16" if choice.bf16 else "fp32"],
        "losses": losses,
    }


def report(
    results: list[dict[str, Any]], args: argparse.Namespace, parameters: int, rates: dict[str, dict[str, float]]
) -> str:
    baseline = results[0]
    probe = [
        f"| {name} | {r['float32']:.0f} | {r['bfloat16']:.1f} | {r['float32'] / r['bfloat16']:.0f}x |"
        for name, r in rates.items()
    ]
    rows = [
        f"| {r['choice']} | {r['trainable'] / 1e6:.2f} M | {r['tokens_per_second']:.0f} | "
        f"{r['tokens_per_second'] / baseline['tokens_per_second']:.2f}x | {r['gflops']:.0f} "
        f"({r['gflops'] / r['peak']:.0%} of {r['peak']:.0f}) | "
        + ", ".join(f"{loss:.3f}" for loss in r["losses"])
        + " |"
        for r in results
    ]
    gaps = {
        r["choice"]: max(abs(a - b) for a, b in zip(r["losses"], baseline["losses"], strict=True))
        for r in results
        if not r["choice"].startswith("LoRA")
    }
    return "\n".join(
        [
            "# Fine-tuning SmolLM2-135M-Instruct + speech units on this CPU: tokens/s per training choice",
            "",
            f"Command: `python benchmarks/pretrained_training.py --steps {args.steps} --batch {args.batch} --length "
            f"{args.length} --threads {args.threads}`. Machine: {cpu_model_name()}, {os.cpu_count()} CPU cores "
            f"({args.threads} torch threads), no GPU; torch {torch.__version__}, Python {platform.python_version()}.",
            f"Model: the bundled GGUF dequantised to fp32 and expanded with {args.units} units "
            f"({parameters / 1e6:.1f} M weights in matrix products a token). Every choice trains the same "
            f"{args.batch} x {args.length}-token batches from the same weights (AdamW, lr 1e-4); tokens/s over "
            f"{args.steps} timed steps after one warm-up step. Peak: about 140-170 GFLOP/s fp32 in matrix products "
            f"on this CPU ({platform.processor() or 'x86_64'}; AVX-512 BF16: {_has_avx512_bf16()}).",
            "",
            f"The matrix products a step is made of, for {PROBE_TOKENS} tokens, one call each, GFLOP/s:",
            "",
            "| product | fp32 | bf16 | fp32 / bf16 |",
            "| --- | ---: | ---: | ---: |",
            *probe,
            "",
            "| choice | trainable | tokens/s | vs full fp32 | achieved GFLOP/s (share of peak) | loss each step |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            "Largest loss gap to the fp32 full fine-tune at the same step (same weights, same batches): "
            + "; ".join(f"{name} {gap:.4f}" for name, gap in gaps.items() if name != baseline["choice"])
            + ".",
            "",
        ]
    )


def _has_avx512_bf16() -> str:
    return "yes" if torch._C._cpu._is_avx512_bf16_supported() else "no"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each choice (after one warm-up)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--choices", nargs="+", help="run only these choices (names as in the table)")
    parser.add_argument(
        "--bf16", action="store_true", help="also train under bf16 autocast (slow without AVX-512 BF16)"
    )
    parser.add_argument("--report", type=Path, default=RESULT)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base, tokenizer = expanded_base(args.units)
    data = batches(base, tokenizer, args.steps, args.batch, args.length)
    text = base.config.get_text_config()
    rates = gemm_rates(text.hidden_size, text.vocab_size, PROBE_TOKENS)
    print(json.dumps(rates), flush=True)
    every = CHOICES + (BF16_CHOICES if args.bf16 else ())
    chosen = [c for c in every if not args.choices or c.name in args.choices]
    with tempfile.TemporaryDirectory() as scratch:
        results = [train(base, choice, data, scratch) for choice in chosen]
    args.report.write_text(report(results, args, matmul_parameters(base), rates))
    print(f"Wrote {args.report}")


if __name__ == "__main__":
    main()
