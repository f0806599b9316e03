"""SpeechInstruct build speed on CPU, side by side in one run; writes benchmarks/speechinstruct.md.

Rows per second for each configuration and where the time goes (audio decoding, unit tokenizer, TTS,
rendering and token counting, the rest), measured on one shard through `SpeechInstruct.generate_shard`:
1. modality_adaptation, cross_modal (single and multi-turn) and chain_of_modality (espeak-ng and Piper
   voices) with the weight-free MFCC unit tokenizer (K=100);
2. cross_modal with a HuBERT-base-sized encoder tokenizer (random weights, 11 layers, K=1000): the cost of
   the paper's real unit extractor; and both tokenizers with 2 torch threads instead of the default 1;
3. the whole Hub-folder write (parquet shards and card) with num_proc 1 vs 2.
Speech is espeak-ng (8 voices) at 16 kHz stored as WAV bytes in an Audio column, like a Hub corpus.
Cases run in interleaved rounds so that load from other processes hits them alike.

Run: python benchmarks/speechinstruct.py [--rounds 3] [--items 48]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import soundfile
import torch
import torchaudio.functional as AF
from transformers import HubertConfig

from speechgpt_hf.data.hub_folder import build_speechinstruct_folder
from speechgpt_hf.data.sources import load_instruction_pairs
from speechgpt_hf.data.speechinstruct import SpeechInstruct
from speechgpt_hf.data.tts_engines import EspeakTTS, PiperTTS
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.training.precision import cpu_model_name

RESULT = Path(__file__).with_suffix(".md")
PARTS = ("audio decoding", "unit tokenizer", "tts", "render and count")


def make_corpus(count: int) -> datasets.Dataset:
    """`count` espeak-ng utterances (16 kHz WAV bytes) with transcripts, ids and speakers."""
    engine, pairs = EspeakTTS(), load_instruction_pairs()
    texts = [pair[key] for pair in pairs for key in ("instruction", "response")][:count]
    audio, speakers = [], []
    for index, text in enumerate(texts):
        speaker = engine.speakers[index % len(engine.speakers)]
        wave, rate = engine(text, speaker=speaker)
        wave = AF.resample(torch.from_numpy(wave), rate, 16000).numpy()
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, 16000, format="WAV", subtype="PCM_16")
        audio.append({"bytes": buffer.getvalue(), "path": None})
        speakers.append(speaker)
    table = {"audio": audio, "text": texts, "id": [f"utt-{i:04d}" for i in range(len(texts))], "speaker": speakers}
    return datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))


def time_shard(name: str, **kwargs) -> tuple[int, int, dict[str, float]]:
    """(rows, items, seconds by part) of one shard holding every source item."""
    builder = SpeechInstruct(config_name=name, cache_dir=tempfile.mkdtemp(), shard_size=10**6, **kwargs)
    (shard,) = builder.plan()["train"]
    bench = builder.workbench  # tokenizers and descriptions are made outside the timing
    if name == "chain_of_modality":
        bench.tts("warm up", speaker=bench.tts.speakers[0])
    items = list(builder.shard_items(shard))
    result = builder.generate_shard(shard, items)
    return len(result.rows), len(items), result.seconds


def time_folder(folder: Path, num_proc: int, **kwargs) -> tuple[int, int, dict[str, float]]:
    start = time.perf_counter()
    summary = build_speechinstruct_folder(folder, ["cross_modal"], num_proc=num_proc, overwrite=True, **kwargs)
    split = summary["cross_modal"]["train"]
    return split.rows, split.items, {"total": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=48, help="utterances in the speech corpus")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    corpus = make_corpus(args.items)
    pairs = load_instruction_pairs()[: args.items // 2]
    mfcc = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=100))
    hubert = SpeechUnitTokenizer(
        SpeechUnitTokenizerConfig(feature_type="encoder", encoder_config=HubertConfig(), layer=11, num_units=1000)
    ).eval()
    piper, espeak = PiperTTS(), EspeakTTS()
    for tokenizer in (mfcc, hubert):  # first calls pay one-off set-up costs: keep them out of the first case
        tokenizer.encode(np.zeros(16000, dtype=np.float32) + 0.01, sampling_rate=16000)
    work = Path(tempfile.mkdtemp(prefix="speechinstruct-bench-"))
    small = corpus.select(range(min(16, len(corpus))))
    cases = {
        "modality_adaptation, MFCC": lambda: time_shard(
            "modality_adaptation", audio_source=corpus, unit_tokenizer=mfcc
        ),
        "cross_modal, MFCC": lambda: time_shard("cross_modal", audio_source=corpus, unit_tokenizer=mfcc),
        "cross_modal multi-turn p=0.5, MFCC": lambda: time_shard(
            "cross_modal", audio_source=corpus, unit_tokenizer=mfcc, multi_turn_probability=0.5
        ),
        "chain_of_modality, espeak-ng, MFCC": lambda: time_shard(
            "chain_of_modality", instructions=pairs, unit_tokenizer=mfcc, tts=espeak
        ),
        "chain_of_modality, Piper, MFCC": lambda: time_shard(
            "chain_of_modality", instructions=pairs, unit_tokenizer=mfcc, tts=piper
        ),
        "cross_modal, MFCC, torch_threads=2": lambda: time_shard(
            "cross_modal", audio_source=corpus, unit_tokenizer=mfcc, torch_threads=2
        ),
        f"cross_modal, HuBERT-base L11 ({len(small)} items)": lambda: time_shard(
            "cross_modal", audio_source=small, unit_tokenizer=hubert
        ),
        f"cross_modal, HuBERT-base L11 ({len(small)} items), torch_threads=2": lambda: time_shard(
            "cross_modal", audio_source=small, unit_tokenizer=hubert, torch_threads=2
        ),
        "Hub folder cross_modal, MFCC, num_proc=1": lambda: time_folder(
            work / "p1", 1, audio_source=corpus, unit_tokenizer=mfcc, shard_size=12
        ),
        "Hub folder cross_modal, MFCC, num_proc=2": lambda: time_folder(
            work / "p2", 2, audio_source=corpus, unit_tokenizer=mfcc, shard_size=12
        ),
    }
    runs: dict[str, list[tuple[int, int, dict[str, float]]]] = {name: [] for name in cases}
    for round_index in range(args.rounds):
        for name, case in cases.items():
            runs[name].append(case())
            print(f"round {round_index + 1}: {name}: {runs[name][-1][2]['total']:.2f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    write_report(args, runs, load_before, os.getloadavg())


def write_report(args, runs, load_before, load_after) -> None:
    lines = [
        "# SpeechInstruct build speed",
        "",
        f"Machine: {cpu_model_name()}, {os.cpu_count()} CPU cores, no GPU; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; Python {platform.python_version()}.",
        f"Load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} (other agents were working on the "
        "same 2 cores, so absolute numbers are pessimistic and noisy; the cases ran in interleaved rounds, so the "
        "ratios between them are the fairer reading).",
        f"Median of {args.rounds} rounds. Source: {args.items} espeak-ng utterances (about 1-3 s each, 16 kHz WAV "
        "bytes); chain-of-modality: "
        f"{args.items // 2} built-in instruction pairs, all four formats each (2 TTS calls and 2 unit encodings a pair).",
        "Command: `python benchmarks/speechinstruct.py " + f"--rounds {args.rounds} --items {args.items}`.",
        "",
        "| case | rows | source items | rows/s | items/s | decode | unit tokenizer | TTS | render+count | rest |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, results in runs.items():
        totals = [seconds["total"] for _, _, seconds in results]
        median = statistics.median(totals)
        rows, items, _ = results[0]
        shares = Counter()
        for _, _, seconds in results:
            shares.update({part: seconds.get(part, 0.0) for part in PARTS})
        whole = sum(totals)
        cells = [f"{100 * shares[part] / whole:.0f}%" if part in results[0][2] else "-" for part in PARTS]
        rest = f"{100 * (whole - sum(shares.values())) / whole:.0f}%" if set(PARTS) & set(results[0][2]) else "-"
        lines.append(
            f"| {name} | {rows} | {items} | {rows / median:.1f} | {items / median:.1f} | "
            + " | ".join(cells)
            + f" | {rest} |"
        )
    lines += ["", "Ratios (medians of the same interleaved rounds):", ""]
    rate = {name: results[0][0] / statistics.median(r[2]["total"] for r in results) for name, results in runs.items()}
    hubert = next(name for name in runs if "HuBERT" in name)
    pairs = [
        ("HuBERT-base encoder vs MFCC unit extraction, cross_modal rows/s", "cross_modal, MFCC", hubert),
        ("1 vs 2 torch threads, MFCC", "cross_modal, MFCC", "cross_modal, MFCC, torch_threads=2"),
        ("1 vs 2 torch threads, HuBERT-base", hubert, hubert + ", torch_threads=2"),
        ("espeak-ng vs Piper voice, chain_of_modality rows/s", "chain_of_modality, espeak-ng, MFCC",
         "chain_of_modality, Piper, MFCC"),
        ("Hub folder write, num_proc=2 vs num_proc=1", "Hub folder cross_modal, MFCC, num_proc=2",
         "Hub folder cross_modal, MFCC, num_proc=1"),
    ]  # fmt: skip
    lines += [f"- {label}: {rate[fast] / rate[slow]:.1f}x" for label, fast, slow in pairs]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
