"""The two vocoders side by side on the same held-out speech: unit HiFi-GAN vs the unit-to-mel vocoder (CPU).

Real speech (Piper joe and espeak-ng en-us reading grammar sentences) is cut into Whisper tiny.en units (k-means on
encoder layer L). Each unit's mean mel, which needs no training, is measured for every layer asked for; the
unit-to-mel vocoder (`speechgpt_hf/training/recipes/vocoder_mel_cpu.yaml`) and the unit HiFi-GAN
(`vocoder_cpu.yaml`) then train for the same minutes on the first layer's units. On the held-out sentences (voices
seen in training), judged by the Whisper tiny.en judge and DNSMOS: the reference audio, the ceiling (the
reference's own mels through the pretrained generator), and resynthesis from units (true durations, and predicted
ones for the mel vocoder); plus the real-time factor of each vocoder on the same units and a spectrogram PNG.

    python benchmarks/vocoders.py [--layers 2 4] [--minutes 5] [--num-train 240] [--num-test 20] [--num-units 100]
                                  [--output-root vocoders_output] [--report benchmarks/vocoders.md]
Every stage is cached under --output-root: a rerun only redoes what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from speechgpt_hf import UnitSequence
from speechgpt_hf.reproduction.corpus import build_speech_corpus
from speechgpt_hf.training.precision import cpu_model_name
from speechgpt_hf.training.vocoder import VocoderTrainingConfig, prepare_vocoder_dataset, train_vocoder

RECIPES = Path(__file__).resolve().parents[1] / "speechgpt_hf" / "training" / "recipes"
VOICES = ("piper:joe", "espeak:en-us")
HELD_OUT_VOICES = ("espeak:en-gb-scotland+m4",)  # the builder needs one; this benchmark uses seen voices only


def corpus(root: Path, num_train: int, num_test: int) -> Any:
    return build_speech_corpus(root / "corpus", num_train, num_test, voices=VOICES, held_out_voices=HELD_OUT_VOICES)


def unit_sequences(root: Path, corpus: Any, layer: int, num_units: int) -> dict[str, list[UnitSequence]]:
    """Whisper tiny.en layer-`layer` units of the train and test splits (k-means fitted on train), cached."""
    from speechgpt_hf.convert.convert_whisper_ct2 import whisper_tiny_en
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer

    cache = root / f"units-layer{layer}-k{num_units}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        return {split: [UnitSequence(**s) for s in rows] for split, rows in stored.items()}
    torch.manual_seed(0)
    tokenizer = SpeechUnitTokenizer.from_encoder(str(whisper_tiny_en()), layer=layer, num_units=num_units).eval()
    tokenizer.fit([row["audio"] for row in corpus["train"]], seed=0)
    out = {split: [tokenizer.encode(row["audio"]) for row in corpus[split]] for split in ("train", "test")}
    cache.write_text(json.dumps({k: [{"units": s.units, "durations": s.durations} for s in v] for k, v in out.items()}))
    return out


def vocoder_rows(rows: Any, sequences: list[UnitSequence]) -> Any:
    table = [
        {"audio": row["audio"], "units": s.units, "durations": s.durations, "speaker": row["speaker"]}
        for row, s in zip(rows, sequences, strict=True)
    ]
    return prepare_vocoder_dataset(table, speaker_column="speaker", speakers=list(VOICES))


def recipe(name: str, output: Path, minutes: float) -> VocoderTrainingConfig:
    """A CPU recipe run for `minutes` (checkpointed at the end only), resumed when a checkpoint is there."""
    values = yaml.safe_load((RECIPES / name).read_text())
    resume = True if list(output.glob("checkpoint-*")) else None
    values.update(output_dir=str(output), time_limit_minutes=minutes, max_steps=100_000, resume_from_checkpoint=resume)
    return VocoderTrainingConfig(**{**values, "eval_steps": 10**9, "save_steps": 10**9})


def trained(output: Path, config: VocoderTrainingConfig, data: Any, num_units: int) -> tuple[Any, dict[str, Any]]:
    """The vocoder trained for `config.time_limit_minutes` (loaded when an earlier run finished), with its facts."""
    from transformers import AutoModel

    facts_file = output / "benchmark_facts.json"
    if not facts_file.exists():
        start = time.perf_counter()
        train_vocoder(config, data, num_units=num_units)
        state = json.loads(sorted(output.glob("checkpoint-*/trainer_state.json"))[-1].read_text())
        losses = [h for h in state["history"] if "mel_l1" in h]
        facts = {
            "steps": state["step"],
            "minutes": (time.perf_counter() - start) / 60,
            "first": losses[0],
            "last": losses[-1],
        }
        facts_file.write_text(json.dumps(facts))
    model = AutoModel.from_pretrained(output).eval()
    return model, {**json.loads(facts_file.read_text()), "parameters": trainable_parameters(model)}


def trainable_parameters(model: Any) -> int:
    generator = getattr(model, "generator", None) if model.config.model_type == "speechgpt_unit_mel" else None
    frozen = sum(p.numel() for p in generator.parameters()) if generator is not None else 0
    return sum(p.numel() for p in model.parameters()) - frozen


def mean_mel_vocoder(data: Any, num_units: int) -> Any:
    """The unit-to-mel vocoder before any training: each unit voiced as its mean mel."""
    from speechgpt_hf.training.vocoder.unit_mel import build_unit_mel_vocoder

    values = yaml.safe_load((RECIPES / "vocoder_mel_cpu.yaml").read_text())
    return build_unit_mel_vocoder(VocoderTrainingConfig(**values), data, num_units)[0].eval()


def held_out_mel_l1(vocoder: Any, data: Any) -> float:
    """Mean log-mel L1 of the predicted frames (true durations) against the held-out audio's own mels."""
    from speechgpt_hf.training.vocoder.unit_mel import mel_targets

    targets, distances = mel_targets(vocoder.config, data), []
    with torch.inference_mode():
        for example, target in zip(data.examples, targets, strict=True):
            ids, frames = torch.tensor([example["units"]]), torch.tensor([example["durations"]])
            mel, _ = vocoder.predict_mel(ids, frames, torch.tensor([example["speaker"]]))
            distances.append((mel[0] - target).abs().mean().item())
    return float(np.mean(distances))


def ceiling(generator: Any, waves: list[np.ndarray]) -> list[np.ndarray]:
    """The reference audio's own mels (the generator's front end) through the generator, back at 16 kHz."""
    import torchaudio

    from speechgpt_hf.models.unit_mel import HiFiGANMelSpectrogram

    front_end, rate, out = HiFiGANMelSpectrogram.from_config(generator.config), generator.config.sampling_rate, []
    with torch.inference_mode():
        for wave in waves:
            audio = torchaudio.functional.resample(torch.from_numpy(wave), 16000, rate)
            out.append(torchaudio.functional.resample(generator(front_end(audio)), rate, 16000).numpy())
    return out


def resynthesize(vocoder: Any, data: Any, durations: bool = True) -> tuple[list[np.ndarray], float]:
    """Each held-out item voiced from its units (true or predicted durations), and the real-time factor (compute
    seconds per second of audio, wall time, this process's threads)."""
    waves, compute = [], 0.0
    for example in data.examples:
        known = {"durations": example["durations"]} if durations else {}
        start = time.perf_counter()
        wave = vocoder.synthesize(example["units"], speaker_id=example["speaker"], **known)
        compute += time.perf_counter() - start
        waves.append(wave.numpy())
    return waves, compute / (sum(len(w) for w in waves) / vocoder.config.sampling_rate)


def judged(systems: dict[str, list[np.ndarray]], texts: list[str]) -> dict[str, dict[str, Any]]:
    from speechgpt_hf.evaluation.judges import DNSMOSScorer, load_asr_judge

    judge, dnsmos, out = load_asr_judge(), DNSMOSScorer(), {}
    for name, waves in systems.items():
        result = judge.judge(waves, texts)
        out[name] = {"wer": result.wer, "dnsmos": float(np.mean(dnsmos.score(waves))), "heard": result.transcripts}
    return out


def spectrograms(path: Path, waves: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechgpt_hf.models.unit_mel import HiFiGANMelSpectrogram

    front_end = HiFiGANMelSpectrogram(sampling_rate=16000, n_fft=1024, hop_length=160, win_length=640, fmax=8000)
    figure, axes = plt.subplots(len(waves), 1, figsize=(9, 2.1 * len(waves)), dpi=80, sharex=True)
    for ax, (name, wave) in zip(axes, waves.items(), strict=True):
        ax.imshow(front_end(torch.from_numpy(wave)).T.numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=2)
        ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=9)
    axes[-1].set_xlabel("frame (10 ms)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4], help="Whisper layers; the first is trained")
    parser.add_argument("--minutes", type=float, default=5.0, help="training minutes of each vocoder")
    parser.add_argument("--num-train", type=int, default=240)
    parser.add_argument("--num-test", type=int, default=20)
    parser.add_argument("--num-units", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-root", type=Path, default=Path("vocoders_output"))
    parser.add_argument("--report", type=Path, default=Path(__file__).with_name("vocoders.md"))
    return parser.parse_args()


def main() -> None:
    from transformers import SpeechT5HifiGan

    from speechgpt_hf.convert.convert_mel_hifigan import mel_hifigan_universal

    args = parse_args()
    torch.set_num_threads(args.threads)
    args.output_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data_set = corpus(args.output_root, args.num_train, args.num_test)
    test = data_set["test"]
    units = {layer: unit_sequences(args.output_root, data_set, layer, args.num_units) for layer in args.layers}
    layers = {}
    for layer in args.layers:
        train_data = vocoder_rows(data_set["train"], units[layer]["train"])
        test_data = vocoder_rows(data_set["test"], units[layer]["test"])
        layers[layer] = {"mean_mel_l1": held_out_mel_l1(mean_mel_vocoder(train_data, args.num_units), test_data)}
        layers[layer]["units_per_second"] = np.mean([len(s.units) / (s.num_frames / 50) for s in units[layer]["test"]])
    layer = args.layers[0]
    train_data = vocoder_rows(data_set["train"], units[layer]["train"])
    test_data = vocoder_rows(data_set["test"], units[layer]["test"])
    mean_only = mean_mel_vocoder(train_data, args.num_units)
    root = args.output_root / f"layer{layer}"
    mel_recipe = recipe("vocoder_mel_cpu.yaml", root / "unit_mel", args.minutes)
    mel_model, mel_facts = trained(root / "unit_mel", mel_recipe, train_data, args.num_units)
    hifigan_recipe = recipe("vocoder_cpu.yaml", root / "unit_hifigan", args.minutes)
    hifigan, hifigan_facts = trained(root / "unit_hifigan", hifigan_recipe, train_data, args.num_units)
    references = [example["audio"] for example in test_data.examples]  # 16 kHz, cut to whole unit frames
    generator = SpeechT5HifiGan.from_pretrained(mel_hifigan_universal()).eval()
    systems, rtf = {"reference": references, "ceiling (true mels -> generator)": ceiling(generator, references)}, {}
    for name, model, predicted in (
        ("unit HiFi-GAN", hifigan, False),
        ("unit-to-mel, unit means only (no training)", mean_only, False),
        ("unit-to-mel", mel_model, True),
    ):
        systems[f"{name}, true durations"], rtf[name] = resynthesize(model, test_data)
        if predicted:
            systems[f"{name}, predicted durations"], _ = resynthesize(model, test_data, durations=False)
    scores = judged(systems, list(test["text"]))
    first = {name: waves[0] for name, waves in systems.items() if "predicted" not in name and "means only" not in name}
    spectrograms(args.report.with_name("vocoders_spectrograms.png"), first)
    facts = {"layers": layers, "layer": layer, "unit_mel": mel_facts, "unit_hifigan": hifigan_facts, "rtf": rtf}
    facts.update(minutes=(time.perf_counter() - started) / 60, test_items=len(test), train_items=len(train_data))
    (args.output_root / "results.json").write_text(
        json.dumps({"facts": facts, "scores": scores}, indent=1, default=float)
    )
    write_report(args, facts, scores, list(test["text"]))
    print(f"Report: {args.report}")


JUDGED = (
    "Judged as `ASRJudge.judge` judges: the Whisper tiny.en judge is told each reference text (its decoding is capped "
    "at twice the reference's tokens as well as by the audio's length), and each row says whether the vocoder was "
    "given the units' true durations (read from the recording) or predicted them. The evaluation harness "
    "(`speechgpt-hf evaluate`; quickstart.md, quickstart_evaluate.md, reproduction.md) tells its judge nothing and its "
    'vocoder predicts durations: its resynthesis numbers compare with the "predicted durations" row, not with the '
    "others."
)


def write_report(args: argparse.Namespace, facts: dict[str, Any], scores: dict[str, Any], texts: list[str]) -> None:
    lines = [
        "# Unit HiFi-GAN vs unit-to-mel vocoder, same units, same held-out speech (CPU)",
        "",
        f"Command: `python benchmarks/vocoders.py --layers {' '.join(map(str, args.layers))} --minutes {args.minutes:g} "
        f"--num-train {args.num_train} --num-test {args.num_test} --num-units {args.num_units}`. Machine: "
        f"{cpu_model_name()}, {os.cpu_count()} CPU cores ({args.threads} torch threads), no GPU, torch "
        f"{torch.__version__}; whole run {facts['minutes']:.1f} min.",
        "",
        f"Data: {facts['train_items']} training utterances ({', '.join(VOICES)}), {facts['test_items']} held-out "
        f"sentences in the same voices. Units: Whisper tiny.en encoder layer {facts['layer']}, k-means K={args.num_units}.",
        "",
        JUDGED,
        "",
        "| audio | judge WER | DNSMOS |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {100 * s['wer']:.1f}% | {s['dnsmos']:.2f} |" for name, s in scores.items()),
        "",
        "| vocoder | trained parameters | training | steps | mel L1 first -> last | real-time factor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, name in (("unit_hifigan", "unit HiFi-GAN"), ("unit_mel", "unit-to-mel")):
        f = facts[key]
        lines.append(
            f"| {name} | {f['parameters'] / 1e6:.2f} M | {f['minutes']:.1f} min | {f['steps']} | "
            f"{f['first']['mel_l1']:.3f} -> {f['last']['mel_l1']:.3f} | {facts['rtf'][name]:.2f} |"
        )
    lines += ["", "Unit layer, judged by the held-out log-mel L1 of each unit's mean mel (no training):", ""]
    lines += ["| Whisper layer | merged units a second | mean-mel L1 |", "| ---: | ---: | ---: |"]
    lines += [f"| {k} | {v['units_per_second']:.1f} | {v['mean_mel_l1']:.3f} |" for k, v in facts["layers"].items()]
    lines += [
        "",
        "What the judge heard on the first five items:",
        "",
        "| system | " + " | ".join(f"item {i}" for i in range(5)) + " |",
    ]
    lines += ["| --- |" + " --- |" * 5, "| text | " + " | ".join(texts[:5]) + " |"]
    lines += [f"| {name} | " + " | ".join(s["heard"][:5]) + " |" for name, s in scores.items()]
    lines += ["", "Spectrograms of the first item: `benchmarks/vocoders_spectrograms.png`.", ""]
    earlier = args.report.read_text() if args.report.exists() else ""
    notes = earlier[earlier.index("## What this shows") :] if "## What this shows" in earlier else ""
    args.report.write_text("\n".join(lines) + ("\n" + notes if notes else ""))


if __name__ == "__main__":
    main()
