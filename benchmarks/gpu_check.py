"""GPU checks in a few minutes: batched vs one-at-a-time unit extraction and vocoding, a bf16 training step of each
stage, and the chat's time to first audio, on random models of real shape. Writes gpu_check.md.

    python benchmarks/gpu_check.py                        # on a GPU: real-shaped models (mHuBERT-base, unit HiFi-GAN,
                                                          # a 1024 x 8 Llama with 1000 units)
    python benchmarks/gpu_check.py --device cpu --tiny    # every measurement at toy size, to check the script runs

Weights are random (nothing is downloaded), so the numbers are speeds and memory, not quality.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch
from datasets import Dataset
from transformers import HubertConfig, TrainerCallback

from speechgpt_hf import (
    SpeechGPTChat,
    SpeechUnitTokenizer,
    SpeechUnitTokenizerConfig,
    UnitHiFiGANConfig,
    UnitHiFiGANVocoder,
    add_speech_units,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    units_to_string,
)
from speechgpt_hf.models.speechgpt import SpeechGPTProcessor
from speechgpt_hf.stages import STAGES
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.precision import cpu_model_name
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, build_trainer

RESULT = Path(__file__).with_suffix(".md")
SR = 16000


@dataclass
class Sizes:
    """How big each measurement is: the real shapes on a GPU, toy ones with `--tiny`."""

    utterances: int = 32
    seconds: tuple[float, float] = (2.0, 8.0)
    num_units: int = 1000
    hidden: int = 1024
    layers: int = 8
    rows: int = 64
    row_tokens: int = 512
    batch: int = 8
    steps: int = 4
    tiny: bool = False


TINY = Sizes(
    utterances=4,
    seconds=(0.5, 1.5),
    num_units=50,
    hidden=32,
    layers=2,
    rows=8,
    row_tokens=64,
    batch=2,
    steps=2,
    tiny=True,
)


def timed(fn: Callable[[], object], device: str) -> float:
    """Seconds `fn` takes, the device's queue drained before and after."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_of(fn: Callable[[], object], device: str, repeats: int = 3) -> float:
    """The median of `repeats` timed runs after one warm-up run."""
    fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def waves(sizes: Sizes, seed: int = 0) -> list[np.ndarray]:
    """Gliding harmonic tones with noise, of uniform random length within `sizes.seconds`."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in rng.uniform(*sizes.seconds, sizes.utterances):
        t = np.arange(int(seconds * SR)) / SR
        pitch = 2 * np.pi * np.cumsum(rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * t))) / SR
        out.append(
            (0.2 * np.sin(pitch) + 0.1 * np.sin(3 * pitch) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        )
    return out


def unit_tokenizer(sizes: Sizes, device: str) -> SpeechUnitTokenizer:
    """A random mHuBERT-base-shaped tokenizer (layer 11, K=1000), or an MFCC one with `--tiny`."""
    torch.manual_seed(0)
    if sizes.tiny:
        config = SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=sizes.num_units)
    else:
        config = SpeechUnitTokenizerConfig(encoder_config=HubertConfig(), layer=11, num_units=sizes.num_units)
    return SpeechUnitTokenizer(config).eval().to(device)


def unit_extraction(sizes: Sizes, device: str) -> dict[str, float]:
    """Seconds of audio a second: one utterance at a time (fp32) against batched fp32 and bf16."""
    tokenizer, audio = unit_tokenizer(sizes, device), waves(sizes)
    with torch.inference_mode():
        loop = [tokenizer.frame_units([w])[0] for w in audio]
        batched = tokenizer.frame_units(audio)
        same = sum(int((a == b).sum()) for a, b in zip(loop, batched, strict=True)) / sum(len(a) for a in loop)
        times = {
            "one at a time, fp32": best_of(lambda: [tokenizer.frame_units([w]) for w in audio], device),
            "batched, fp32": best_of(lambda: tokenizer.frame_units(audio), device),
            "batched, bf16": best_of(lambda: tokenizer.frame_units(audio, precision="bfloat16"), device),
        }
    total = sum(len(w) for w in audio) / SR
    return {**{name: total / seconds for name, seconds in times.items()}, "same units (batched fp32)": same}


def vocoder(sizes: Sizes, device: str) -> UnitHiFiGANVocoder:
    """The released unit HiFi-GAN shape (or a toy one with `--tiny`), random weights."""
    torch.manual_seed(0)
    if not sizes.tiny:
        return UnitHiFiGANVocoder(UnitHiFiGANConfig()).eval().to(device)
    config = UnitHiFiGANConfig(
        num_units=sizes.num_units,
        unit_embed_dim=16,
        duration_predictor_hidden_dim=16,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 4, 4],
        upsample_kernel_sizes=[11, 8, 8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    return UnitHiFiGANVocoder(config).eval().to(device)


def vocoding(sizes: Sizes, device: str) -> dict[str, float]:
    """Seconds of audio a second: the rows one by one against one batched call."""
    model = vocoder(sizes, device)
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(int(sizes.seconds[0] * 25), int(sizes.seconds[1] * 25) + 1, (8,), generator=generator)
    rows = [torch.randint(0, sizes.num_units, (int(n),), generator=generator).tolist() for n in lengths]
    with torch.inference_mode():
        audio_s = sum(len(w) for w in model.synthesize(rows)) / model.config.sampling_rate
        one = best_of(lambda: [model.synthesize(row) for row in rows], device)
        batch = best_of(lambda: model.synthesize(rows), device)
    return {"one by one": audio_s / one, "batched": audio_s / batch}


def speechgpt(sizes: Sizes, folder: Path) -> Path:
    """A Llama of `hidden` x `layers` expanded with the unit vocabulary, saved with its processor."""
    tokenizer = build_tiny_tokenizer()
    heads = max(sizes.hidden // 64, 2)
    base = build_tiny_causal_lm(
        "llama",
        vocab_size=len(tokenizer),
        hidden_size=sizes.hidden,
        intermediate_size=sizes.hidden * 8 // 3,
        num_hidden_layers=sizes.layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
    )
    model, tokenizer = add_speech_units(base, tokenizer, num_units=sizes.num_units)
    model.save_pretrained(folder)
    SpeechGPTProcessor(tokenizer, num_units=sizes.num_units).save_pretrained(folder)
    return folder


def stage_rows(stage: str, sizes: Sizes, generator: torch.Generator) -> list[dict[str, str]]:
    """`sizes.rows` rows of the stage's form, each with about `row_tokens` unit tokens."""
    rows = []
    for _ in range(sizes.rows):
        units = units_to_string(
            torch.randint(0, sizes.num_units, (sizes.row_tokens - 40,), generator=generator).tolist()
        )
        if stage == "modality_adaptation":
            rows.append({"text": units})
        elif stage == "cross_modal":
            rows.append(
                {
                    "prompt": format_turn(format_cross_modal_instruction("Transcribe this.", units)),
                    "completion": "the words said.<eoa>",
                }
            )
        else:
            answer = format_chain_of_modality_response("speech", "yes.", answer_units=[1, 2, 3], transcript="hello")
            rows.append({"prompt": format_turn(units), "completion": answer + "<eoa>"})
    return rows


def speechinstruct(sizes: Sizes, folder: Path) -> Path:
    """A SpeechInstruct folder with the three stages' configs, random units."""
    generator = torch.Generator().manual_seed(2)
    configs = []
    for stage in STAGES:
        (folder / stage).mkdir(parents=True)
        Dataset.from_list(stage_rows(stage, sizes, generator)).to_parquet(folder / stage / "train-00000.parquet")
        configs.append(f"- config_name: {stage}\n  data_files:\n  - split: train\n    path: {stage}/train-*.parquet")
    (folder / "README.md").write_text("---\nconfigs:\n" + "\n".join(configs) + "\n---\n")
    return folder


class _StepClock(TrainerCallback):
    """The end time of every optimizer step, the device drained first."""

    def __init__(self, device: str) -> None:
        self.device, self.ends = device, [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs) -> None:  # noqa: ANN001 (TrainerCallback's signature)
        _sync(self.device)
        self.ends.append(time.perf_counter())


def training_step(stage: str, sizes: Sizes, model: Path, data: Path, device: str) -> dict[str, float]:
    """A bf16 mixed-precision step of `stage` (stage 3 with LoRA): median seconds a step after the first, tokens a
    second, and on a GPU the peak memory."""
    config = SpeechGPTTrainingConfig(
        stage=stage,
        model_name_or_path=str(model),
        dataset_name=str(data),
        output_dir=str(data.parent / stage),
        max_length=sizes.row_tokens,
        packing=stage != "chain_of_modality",
        use_lora=stage == "chain_of_modality",
        per_device_train_batch_size=sizes.batch,
        max_steps=sizes.steps,
        bf16=True,
        use_cpu=device == "cpu",
        learning_rate=1e-4,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    clock = _StepClock(device)
    trainer, _ = build_trainer(config, callbacks=[clock])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    step = statistics.median(b - a for a, b in zip(clock.ends[1:-1], clock.ends[2:], strict=True))
    result = {"s/step": step, "tokens/s": sizes.batch * sizes.row_tokens / step}
    return {**result, "peak GiB": torch.cuda.max_memory_allocated() / 2**30} if device.startswith("cuda") else result


def _forcing(script: list[int]) -> Callable[[int, torch.Tensor], list[int]]:
    """A `prefix_allowed_tokens_fn` that allows only the next token of `script` after the prompt."""
    prompt: dict[str, int] = {}

    def allowed(_batch: int, ids: torch.Tensor) -> list[int]:
        step = len(ids) - prompt.setdefault("length", len(ids))
        return [script[min(step, len(script) - 1)]]

    return allowed


def first_audio(sizes: Sizes, model: Path, device: str) -> dict[str, float]:
    """Seconds from `SpeechGPTChat.stream` to its first audio chunk and to the whole reply, in bf16, the answer's tokens
    forced (a random model would not choose to speak): 40 answer units."""
    chat = SpeechGPTChat.from_pretrained(str(model), vocoder=vocoder(sizes, device), dtype=torch.bfloat16)
    chat.model.to(device)
    answer = format_chain_of_modality_response("speech", "yes.", answer_units=list(range(1, 41)), transcript="hi")
    script = [*chat.processor.encode(answer + "<eoa>", add_special_tokens=False), chat.processor.tokenizer.eos_token_id]
    firsts, wholes = [], []
    for _ in range(3):  # the first run warms up
        start, first = time.perf_counter(), None
        for event in chat.stream("hello", prefix_allowed_tokens_fn=_forcing(script), max_new_tokens=len(script)):
            if first is None and getattr(event, "audio", None) is not None:
                first = time.perf_counter() - start
        firsts.append(first if first is not None else float("nan"))
        wholes.append(time.perf_counter() - start)
        chat.reset()
    return {"first audio s": statistics.median(firsts[1:]), "whole reply s": statistics.median(wholes[1:])}


def run(sizes: Sizes, device: str) -> dict[str, dict]:
    """Every measurement, in order; the training and chat ones on one saved SpeechGPT."""
    results = {"unit extraction": unit_extraction(sizes, device), "vocoder": vocoding(sizes, device)}
    with TemporaryDirectory(prefix="gpu-check-") as scratch:
        model = speechgpt(sizes, Path(scratch) / "model")
        data = speechinstruct(sizes, Path(scratch) / "data")
        for stage in STAGES:
            results[f"training step: {stage}"] = training_step(stage, sizes, model, data, device)
        results["chat"] = first_audio(sizes, model, device)
    return results


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU ({cpu_model_name()}, {torch.get_num_threads()} threads), torch {torch.__version__}"


def report(results: dict[str, dict], sizes: Sizes, device: str, seconds: float) -> str:
    """gpu_check.md: the machine and sizes, then one table a measurement."""
    lines = ["# GPU checks", ""]
    if not device.startswith("cuda"):
        lines += [
            "**This run is not a GPU measurement.** It ran on the CPU"
            + (" at toy sizes (`--tiny`)" if sizes.tiny else "")
            + " to check that every measurement works; the script has not yet run on a GPU. On one, run "
            "`bash benchmarks/gpu_check.sh` and commit the file it writes.",
            "",
        ]
    lines += [
        f"Machine: {_machine(device)}. Whole run: {seconds:.0f} s. Random weights: speeds and memory, not quality.",
        f"Sizes: {sizes.utterances} utterances of {sizes.seconds[0]:g}-{sizes.seconds[1]:g} s; K={sizes.num_units} "
        f"units; SpeechGPT a Llama of hidden {sizes.hidden} x {sizes.layers} layers; training batches of "
        f"{sizes.batch} x {sizes.row_tokens} tokens, {sizes.steps} steps (the first not timed), bf16 mixed precision.",
        "",
    ]
    for name, values in results.items():
        lines += [f"## {name}", "", "| measure | value |", "| --- | ---: |"]
        lines += [f"| {key} | {value:.3g} |" for key, value in values.items()]
        lines.append("")
    lines.append(
        "Unit extraction and vocoder: seconds of audio a second. Training: tokens/s = batch x max length / step."
    )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks that every measurement runs")
    parser.add_argument("--output", type=Path, default=RESULT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Runs the checks on `--device` and writes the report to `--output`."""
    args = parse_args(argv)
    sizes = TINY if args.tiny else Sizes()
    start = time.perf_counter()
    results = run(sizes, args.device)
    args.output.write_text(report(results, sizes, args.device, time.perf_counter() - start))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
