"""Unit extraction throughput: SpeechUnitTokenizer (batched fp32 and bf16) against the original's loop.

The original (SpeechGPT's reader) runs the mHuBERT encoder on one utterance at a time in fp32, truncated
at layer 11, then assigns k-means units in numpy. Here the same weights (a HuBERT-base-sized encoder,
random but seeded, 11 layers, K=1000 centroids fitted on its own features) run both ways on the same
utterances, interleaved block by block so that other load on the machine hits every path alike.
Reports seconds of audio per second, achieved GFLOP/s against a matmul peak measured in the same run,
and how many frames get the same unit as the loop.

    python benchmarks/unit_extraction.py --num-utterances 100 --output benchmarks/unit_extraction.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from transformers import HubertConfig

from speechgpt_hf import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.models.unit_tokenizer import fit_kmeans

SR = 16000


def utterances(count: int, low: float, high: float, seed: int) -> list[np.ndarray]:
    """Speech-like signals (gliding harmonics, syllable-rate envelope, noise) of uniform random length."""
    rng = np.random.default_rng(seed)
    waves = []
    for seconds in rng.uniform(low, high, count):
        t = np.arange(int(seconds * SR)) / SR
        pitch = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
        phase = 2 * np.pi * np.cumsum(pitch) / SR
        tone = sum(rng.uniform(0.2, 1.0) * np.sin(k * phase) / k for k in range(1, 8))
        envelope = np.abs(np.sin(2 * np.pi * rng.uniform(2, 5) * t))
        waves.append((0.2 * tone * envelope + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return waves


def matmul_peak(dtype: torch.dtype, device: str, size: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encoder_flops(config: HubertConfig, num_samples: int, num_units: int) -> float:
    """Multiply-adds x 2 of the conv front end, projection, positional conv, layers and k-means distances."""
    flops, length, channels = 0.0, num_samples, 1
    for dim, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride, strict=True):
        length = (length - kernel) // stride + 1
        flops += 2 * length * dim * channels * kernel
        channels = dim
    d, f, t = config.hidden_size, config.intermediate_size, length
    flops += 2 * t * channels * d
    flops += 2 * t * d * (d // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings
    flops += config.num_hidden_layers * (2 * t * (4 * d * d + 2 * d * f) + 4 * t * t * d)
    return flops + 2 * t * num_units * d


def original_loop(tokenizer: SpeechUnitTokenizer, waves: list[np.ndarray], device: str) -> list[np.ndarray]:
    """SpeechGPT's reader: one utterance at a time, fp32 features, numpy k-means assignment (ApplyKmeans)."""
    centers = tokenizer.centroids.cpu().numpy()
    center_norms = (centers**2).sum(1, keepdims=True).T
    units = []
    with torch.no_grad():
        for wave in waves:
            features = tokenizer.encoder(torch.from_numpy(wave).to(device)[None]).last_hidden_state[0].cpu().numpy()
            distances = (features**2).sum(1, keepdims=True) - 2 * features @ centers.T + center_norms
            units.append(distances.argmin(1))
    return units


def timed(fn, device: str):
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def build_tokenizer(layers: int, num_units: int, device: str, seed: int) -> SpeechUnitTokenizer:
    torch.manual_seed(seed)
    config = SpeechUnitTokenizerConfig(encoder_config=HubertConfig(), layer=layers, num_units=num_units)
    tokenizer = SpeechUnitTokenizer(config).eval().to(device)
    warm = utterances(12, 2, 6, seed + 1)  # codebook fitted on features of other utterances, as in practice
    features = torch.cat(tokenizer.frame_units(warm, return_features=True))
    tokenizer.set_codebook(
        fit_kmeans(features.to(device), num_units, batch_size=4096, max_iter=30, progress=False).centroids
    )
    return tokenizer


def run(args: argparse.Namespace) -> str:
    device = args.device
    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    tokenizer = build_tokenizer(args.layers, args.num_units, device, args.seed)
    waves = utterances(args.num_utterances, args.min_seconds, args.max_seconds, args.seed)
    seconds = sum(w.size for w in waves) / SR
    flops = sum(encoder_flops(tokenizer.config.encoder_config, w.size, args.num_units) for w in waves)
    paths = {
        "loop": lambda b: original_loop(tokenizer, b, device),
        "fp32": lambda b: tokenizer.frame_units(b, precision="float32", max_batch_samples=args.batch_samples),
        "bf16": lambda b: tokenizer.frame_units(b, precision="bfloat16", max_batch_samples=args.batch_samples),
    }
    for fn in paths.values():  # one-time set-up costs (kernels, weight casts) out of the timings
        fn(waves[:1])
    times = {name: 0.0 for name in paths}
    block_ratios: dict[str, list[float]] = {"fp32": [], "bf16": []}
    same = {"fp32": 0, "bf16": 0}
    frames = 0
    load_before = os.getloadavg()
    order = list(paths)
    for number, start in enumerate(range(0, len(waves), args.block)):
        block = waves[start : start + args.block]
        outputs, block_times = {}, {}
        for name in order[number % 3 :] + order[: number % 3]:  # rotate which path runs first
            outputs[name], block_times[name] = timed(lambda b=block, n=name: paths[n](b), device)
            times[name] += block_times[name]
        frames += sum(r.size for r in outputs["loop"])
        for precision in ("fp32", "bf16"):
            same[precision] += sum(
                int((o.numpy() == r).sum()) for o, r in zip(outputs[precision], outputs["loop"], strict=True)
            )
            block_ratios[precision].append(block_times["loop"] / block_times[precision])
        print(f"block {number}: " + ", ".join(f"{k} {v:.1f}s" for k, v in block_times.items()), flush=True)
    peaks_after = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    return report(args, peaks, peaks_after, times, same, frames, seconds, flops, load_before, block_ratios)


def report(args, peaks, peaks_after, times, same, frames, seconds, flops, load_before, block_ratios) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{cpu}, {os.cpu_count()} cores"
    rows = [
        ("original loop (1 utterance at a time, fp32)", "loop", "fp32", None),
        ("SpeechUnitTokenizer batched, fp32", "fp32", "fp32", "fp32"),
        ("SpeechUnitTokenizer batched, bf16 autocast", "bf16", "bf16", "bf16"),
    ]
    lines = [
        "# Unit extraction benchmark",
        "",
        f"Machine: {device_name}; torch {torch.__version__}, {torch.get_num_threads()} threads. "
        f"Load average at start {load_before[0]:.1f} (other agents share this machine).",
        f"Workload: {args.num_utterances} utterances of {args.min_seconds:g}-{args.max_seconds:g} s "
        f"({seconds:.0f} s of audio, {frames} frames), HuBERT-base encoder truncated at layer {args.layers} "
        f"(random seeded weights), K={args.num_units}; paths interleaved in blocks of {args.block} utterances, "
        "the first path of each block rotating.",
        f"Matmul peak (2048^3) at start / end: fp32 {peaks['fp32']:.0f} / {peaks_after['fp32']:.0f} GFLOP/s, "
        f"bf16 {peaks['bf16']:.0f} / {peaks_after['bf16']:.0f} GFLOP/s. Work: {flops / 1e12:.2f} TFLOP "
        f"({flops / seconds / 1e9:.1f} GFLOP per second of audio).",
        "",
        "| path | time (s) | audio s / s | speed-up vs loop | GFLOP/s | % of matmul peak (same dtype) | frames with the loop's unit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, key, dtype, agree in rows:
        rate = flops / times[key] / 1e9
        agreement = "reference" if agree is None else f"{100 * same[agree] / frames:.2f}%"
        lines.append(
            f"| {label} | {times[key]:.1f} | {seconds / times[key]:.2f} | {times['loop'] / times[key]:.2f}x | "
            f"{rate:.0f} | {100 * rate / peaks[dtype]:.0f}% | {agreement} |"
        )
    spread = "; ".join(
        f"{name}: " + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {np.median(ratios):.2f})"
        for name, ratios in block_ratios.items()
    )
    lines += [
        "",
        f"Speed-up per block (loop time / path time; the spread shows the shared machine's noise): {spread}.",
        "",
        f"Command: `python benchmarks/unit_extraction.py --num-utterances {args.num_utterances} "
        f"--min-seconds {args.min_seconds:g} --max-seconds {args.max_seconds:g} --block {args.block} --device {args.device}`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-utterances", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--layers", type=int, default=11)
    parser.add_argument("--num-units", type=int, default=1000)
    parser.add_argument("--block", type=int, default=10, help="utterances per interleaved block")
    parser.add_argument("--batch-samples", type=int, default=960_000, help="max padded samples a batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the markdown result here")
    args = parser.parse_args()
    text = run(args)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
