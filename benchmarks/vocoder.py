"""Vocoder speed on CPU, side by side in one run: UnitHiFiGANVocoder vs transformers' SeamlessM4TCodeHifiGan.

Both hold the same random weights in SpeechGPT's vocoder configuration (K=1000, embed 128, upsampling 5-4-4-2-2 from
512 channels, kernels 3/7/11, duration predictor; 13.5 M parameters). Measured, interleaved so that load from other
processes hits both alike: the real-time factor (RTF, compute seconds per second of audio) for 10 s of speech; a
batch of 8 utterances at once vs one by one; and streaming time-to-first-chunk vs one-shot latency.

    python benchmarks/vocoder.py [--repeats 3] [--output benchmarks/vocoder.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from speechgpt_hf.convert.convert_unit_hifigan import to_seamless_m4t_code_hifigan
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.testing_utils import fan_in_init_
from speechgpt_hf.training.precision import cpu_model_name

SECONDS = 10.0


def timed(fn: Callable[[], object]) -> float:
    """CPU seconds (all threads) that `fn` took: less disturbed than wall time when other processes share the CPU."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def build(seed: int = 0) -> tuple[UnitHiFiGANVocoder, torch.nn.Module]:
    torch.manual_seed(seed)
    ours = UnitHiFiGANVocoder(UnitHiFiGANConfig()).eval()
    # Denormal near-silence would distort CPU timings: fan-in scaled weights give a trained vocoder's levels.
    fan_in_init_(ours.generator)
    with torch.no_grad():
        ours.duration_predictor.proj.bias.fill_(0.9)  # predicted durations of 1-3 frames, as for merged units
    return ours, to_seamless_m4t_code_hifigan(ours)


def units_for(ours: UnitHiFiGANVocoder, seconds: float, seed: int) -> torch.Tensor:
    """Random merged units whose predicted durations add up to about `seconds` of audio."""
    generator = torch.Generator().manual_seed(seed)
    units = torch.randint(0, ours.config.num_units, (1, int(seconds * 50)), generator=generator)
    with torch.inference_mode():
        durations, _ = ours.predict_durations(units)
    keep = int((durations.cumsum(-1) <= seconds * 50).sum())
    return units[:, :keep]


def rtf(ours: UnitHiFiGANVocoder, theirs: torch.nn.Module, repeats: int) -> dict[str, float]:
    units = units_for(ours, SECONDS, seed=1)
    with torch.inference_mode():
        audio_s = ours(units).lengths.item() / 16000
        theirs_ids = dict(
            input_ids=units, spkr_id=torch.zeros(1, 1, dtype=torch.long), lang_id=torch.zeros(1, 1, dtype=torch.long)
        )
        wave_theirs, _ = theirs(**theirs_ids)
        max_diff = (wave_theirs.view(-1) - ours(units).waveform[0]).abs().max().item()
        peak = wave_theirs.abs().max().item()
        ours_t, theirs_t = [], []
        for i in range(repeats):  # interleaved, alternating which goes first
            first, second = (ours_t, theirs_t) if i % 2 == 0 else (theirs_t, ours_t)
            run_first, run_second = (lambda: ours(units)), (lambda: theirs(**theirs_ids))
            if i % 2:
                run_first, run_second = run_second, run_first
            first.append(timed(run_first))
            second.append(timed(run_second))
    ours_s, theirs_s = statistics.median(ours_t), statistics.median(theirs_t)
    pair_ratios = [t / o for o, t in zip(ours_t, theirs_t, strict=True)]
    return dict(
        audio_s=audio_s,
        ours_rtf=ours_s / audio_s,
        theirs_rtf=theirs_s / audio_s,
        speedup=statistics.median(pair_ratios),
        ratio_range=(min(pair_ratios), max(pair_ratios)),
        max_diff=max_diff,
        peak=peak,
    )


def batching(ours: UnitHiFiGANVocoder, repeats: int) -> dict[str, float]:
    rows = [
        units_for(ours, seconds, seed=10 + i)[0].tolist() for i, seconds in enumerate([2, 3, 4, 5, 2.5, 3.5, 4.5, 3])
    ]
    with torch.inference_mode():
        batched = ours.synthesize(rows)
        singles = [ours.synthesize(row) for row in rows]
        max_diff = max((a - b).abs().max().item() for a, b in zip(batched, singles, strict=True))
        batch_t, single_t = [], []
        for _ in range(repeats):
            batch_t.append(timed(lambda: ours.synthesize(rows)))
            single_t.append(timed(lambda: [ours.synthesize(row) for row in rows]))
    audio_s = sum(len(w) for w in batched) / 16000
    return dict(
        audio_s=audio_s, batched_s=statistics.median(batch_t), single_s=statistics.median(single_t), max_diff=max_diff
    )


def streaming(ours: UnitHiFiGANVocoder, chunk_frames: int, repeats: int) -> dict[str, float]:
    units = units_for(ours, SECONDS, seed=1)[0].tolist()

    def first_chunk_and_total() -> tuple[float, float, torch.Tensor]:
        streamer, chunks, first = ours.streamer(chunk_frames=chunk_frames), [], None
        start = time.process_time()
        for unit in units:  # units arrive one at a time, as an LLM emits them
            chunk = streamer.push(unit)
            if chunk.numel():
                first = first or time.process_time() - start
                chunks.append(chunk)
        chunks.append(streamer.flush())
        return first, time.process_time() - start, torch.cat(chunks)

    with torch.inference_mode():
        one_shot_wave = ours.synthesize(units)
        firsts, totals, one_shots = [], [], []
        for _ in range(repeats):
            first, total, wave = first_chunk_and_total()
            firsts.append(first)
            totals.append(total)
            one_shots.append(timed(lambda: ours.synthesize(units)))
    return dict(
        first_chunk_s=statistics.median(firsts),
        stream_total_s=statistics.median(totals),
        one_shot_s=statistics.median(one_shots),
        max_diff=(wave - one_shot_wave).abs().max().item(),
        context=ours.generator.receptive_context(),
    )


def report(r: dict[str, float], b: dict[str, float], s: dict[str, float], chunk_frames: int, repeats: int) -> str:
    return f"""# Vocoder benchmark (CPU)

Machine: {cpu_model_name()}, {os.cpu_count()} CPU cores, no GPU; torch {torch.__version__},
{torch.get_num_threads()} threads; fp32. Other agents (and a vocoder training run) shared this CPU during the run, so
every time is process CPU seconds (all threads), the median of {repeats} interleaved repeats; the ratios are the
meaningful numbers. Configuration: SpeechGPT's vocoder (K=1000,
13.5 M parameters, duration predictor), random weights, both models holding the same weights.
Script: `python benchmarks/vocoder.py --repeats {repeats} --threads {torch.get_num_threads()}` (one thread: with two
threads on a CPU that other processes load, OpenMP spin-waiting dominated small operations and made timings erratic).

## UnitHiFiGANVocoder vs SeamlessM4TCodeHifiGan, {r["audio_s"]:.1f} s of speech

| | RTF (CPU s / audio s) |
|---|---|
| UnitHiFiGANVocoder | {r["ours_rtf"]:.3f} |
| SeamlessM4TCodeHifiGan | {r["theirs_rtf"]:.3f} |
| **speed ratio (theirs / ours time), median of interleaved pairs** | **{r["speedup"]:.2f}** (pairs: {r["ratio_range"][0]:.2f} to {r["ratio_range"][1]:.2f}) |

Same waveform: max abs difference {r["max_diff"]:.1e}.

## Batched vs one-by-one: 8 utterances, {b["audio_s"]:.1f} s of audio in all

| | seconds |
|---|---|
| one batch (padded, masked) | {b["batched_s"]:.2f} |
| one by one | {b["single_s"]:.2f} |
| ratio (one-by-one / batched) | {b["single_s"] / b["batched_s"]:.2f} |

Batched waveforms equal one-by-one ones: max abs difference {b["max_diff"]:.1e}.

On a CPU these convolutions are memory-bound: a padded batch also computes its padding, and its larger
activations fall out of the cache, so one-by-one synthesis is the faster way here; batching is meant for GPUs
(not measured: no GPU in this run).

## Streaming, {r["audio_s"]:.1f} s of speech, units pushed one at a time

Chunks of {chunk_frames} frames ({chunk_frames * 20} ms) with {s["context"]} frames of context each side.

| | seconds |
|---|---|
| time to first audio chunk | {s["first_chunk_s"]:.3f} |
| one-shot latency (whole utterance) | {s["one_shot_s"]:.3f} |
| streaming, all chunks | {s["stream_total_s"]:.3f} |

Concatenated chunks equal one-shot synthesis: max abs difference {s["max_diff"]:.1e}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 is steadiest on a shared CPU")
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, theirs = build()
    text = report(
        rtf(ours, theirs, args.repeats),
        batching(ours, args.repeats),
        streaming(ours, args.chunk_frames, args.repeats),
        args.chunk_frames,
        args.repeats,
    )
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
