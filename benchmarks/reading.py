"""The reading benchmark: how fast a SpeechGPT LM learns to read speech units, one curve per configuration.

One fixed task: the quickstart's corpus (grammar sentences in four training voices, held-out sentences, the held-out
voice en-gb-x-rp), units from the bundled Whisper tiny.en, a Llama from scratch on a BPE of the training text. Each
configuration trains on the same rows for the same budget of CPU seconds; every `--eval-every` seconds (the clock is
stopped meanwhile) it transcribes, greedily, `--eval-items` held-out sentences in training voices, as many in the
held-out voice and as many training sentences, asked as the evaluation asks (the first shipped ASR description).
WER against seconds and steps, every configuration in one plot, a table of where each ends, reading.md beside it.

    python benchmarks/reading.py                       # every configuration, 240 s each
    python benchmarks/reading.py --only baseline wide  # some of them
    python benchmarks/reading.py --budget 60 --eval-every 20 --cache /tmp/reading  # a quick look

Each configuration changes one thing from `baseline` (the quickstart's stage 2, ASR and TTS rows) unless its
`lever` says it combines several. Corpus and units are cached under `--cache` by their settings; the task, the LM
and the training rows are built in `reading_data.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from reading_data import (
    ROWS,
    UnitPieces,
    Utterance,
    asr_request,
    batches,
    build_model,
    corpus_and_units,
    parameter_groups,
    phrase_rows,
    training_rows,
    utterances,
)

from speechgpt_hf.training.precision import cpu_model_name

HERE = Path(__file__).parent
READING = "## What this shows"


@dataclass(frozen=True)
class ReadingConfig:
    """One configuration: the units, the LM, the optimiser and the rows it trains on."""

    name: str
    lever: str
    num_train: int = 240
    words_per_kind: int | None = None  # a narrowed grammar (Grammar.narrowed); None: the full one
    held_out_fraction: float = 0.1  # share of each noun and adjective kind kept out of training (0: none)
    unit_layer: int = 2
    num_units: int = 64
    lm_hidden: int = 128
    lm_layers: int = 3
    learning_rate: float = 2e-3
    batch_size: int = 8
    tts_rows: bool = True  # stage 2's mix: every ASR row beside a TTS row of the same utterance
    task_descriptions: int = 10
    phrases: int = 0  # extra ASR rows an utterance: a run of 1-3 of its words and the units spoken over it
    interleaved: int = 0  # extra rows an utterance of its words and unit spans alternating at word edges
    warmup_steps: int = 50
    bf16: bool = False  # bf16 autocast (fp32 master weights)
    noisy_copies: int = 0  # extra ASR rows an utterance whose units are each replaced at random with `unit_noise`
    unit_noise: float = 0.1
    base: str = "scratch"  # "scratch": the Llama above on a BPE of the corpus; "smollm2": SmolLM2-135M-Instruct
    lora_r: int = 0  # with a pretrained base: a LoRA of this rank on `lora_targets`, the unit rows trained beside it
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    unit_learning_rate: float | None = None  # the unit and marker rows' own rate (None: `learning_rate`)
    spliced: int = 0  # extra ASR rows an utterance: new grammar sentences spoken by splicing training words' units
    splice_mixed: bool = False  # spliced sentences may take each word from another voice (WordSpliceBank.mix_speakers)
    grammar_text: int = 0  # control for `spliced`: its sentences as text-only rows, no units
    crossovers: int = 0  # extra ASR rows an utterance: one utterance's start joined to another's end at a shared word
    frame_pooling: int = 1  # encoder frames averaged in groups of this many before k-means (2: 50 -> 25 Hz)
    curriculum_seconds: float = 0.0  # train first on phrase rows alone (1-3 words) for this many CPU seconds
    curriculum_phrases: int = 4  # the curriculum's phrase rows an utterance
    sentences: bool = True  # whole-utterance ASR (and TTS) rows; False only for a curriculum's phrase rows
    rows_only_seconds: float = 0.0  # with a pretrained base: train the unit rows alone this many CPU seconds first
    unit_bpe: int = 0  # a BPE of this many pieces over the merged units, its pieces the LM's units (0: none)

    @property
    def lm_units(self) -> int:
        """The speech tokens the LM reads and writes: the BPE's pieces, or the k-means units."""
        return self.unit_bpe or self.num_units


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NARROW = dict(words_per_kind=2, held_out_fraction=0.0, num_train=480)
# The pretrained base on the narrowed task, in its chat template, through a LoRA (the rank and targets per run).
SMOL = dict(base="smollm2", bf16=True, learning_rate=5e-4, warmup_steps=10, task_descriptions=1, **NARROW)
SMOL_ALL_R16 = dict(lora_r=16, lora_targets=ALL_LINEAR, **SMOL)
CONFIGS = [
    # Run 1: one lever at a time against the quickstart's stage 2.
    ReadingConfig("baseline", "the quickstart's stage 2: 128x3 Llama, lr 2e-3, layer-2 units K=64, ASR + TTS rows"),
    ReadingConfig("asr_only", "ASR rows only (no TTS rows competing)", tts_rows=False),
    ReadingConfig(
        "narrow_240",
        "narrowed grammar (2 words a kind, ~150 word forms), no held-out words",
        words_per_kind=2,
        held_out_fraction=0.0,
    ),
    ReadingConfig("narrow_480", "narrowed grammar and 480 training sentences", **NARROW),
    # Run 2: one lever at a time against narrow_480.
    ReadingConfig(
        "n480_phrases",
        "narrow_480 + 2 phrase ASR rows an utterance (1-3 words, cut by word timings)",
        phrases=2,
        **NARROW,
    ),
    ReadingConfig(
        "n480_interleaved",
        "narrow_480 + 1 word-interleaved row an utterance (runs of 1-3 words as text or units)",
        interleaved=1,
        **NARROW,
    ),
    ReadingConfig(
        "n480_one_request",
        "narrow_480 with one ASR request wording (the evaluation's) instead of 10",
        task_descriptions=1,
        **NARROW,
    ),
    ReadingConfig("n480_layer4", "narrow_480 with units from Whisper tiny.en's last layer (4)", unit_layer=4, **NARROW),
    ReadingConfig("n480_wide", "narrow_480 with a 256 x 4 Llama", lm_hidden=256, lm_layers=4, **NARROW),
    ReadingConfig("n960", "narrowed grammar and 960 training sentences", **{**NARROW, "num_train": 960}),
    # Run 3: the winners together, for longer, in fp32 and in bf16 autocast.
    ReadingConfig("combined", "narrow_480 with one request wording", task_descriptions=1, **NARROW),
    ReadingConfig("combined_bf16", "combined, in bf16 autocast", task_descriptions=1, bf16=True, **NARROW),
    # Run 4: against memorising the training sentences.
    ReadingConfig(
        "combined_noisy",
        "combined + 2 ASR copies an utterance with 10% of units replaced at random",
        task_descriptions=1,
        noisy_copies=2,
        **NARROW,
    ),
    ReadingConfig("combined_k32", "combined with K=32 units", task_descriptions=1, num_units=32, **NARROW),
    ReadingConfig("combined_k128", "combined with K=128 units", task_descriptions=1, num_units=128, **NARROW),
    ReadingConfig(
        "combined_960", "combined with 960 training sentences", task_descriptions=1, **{**NARROW, "num_train": 960}
    ),
    # Run 6: new sentences from spliced word spans, against reading a sentence by its whole unit sequence.
    ReadingConfig(
        "combined_spliced",
        "combined + 2 ASR rows an utterance of new grammar sentences, units spliced from training words in one voice",
        task_descriptions=1,
        spliced=2,
        **NARROW,
    ),
    ReadingConfig(
        "combined_crossover8",
        "combined + 8 ASR rows an utterance, each two utterances of one voice joined at a word they share (no grammar)",
        task_descriptions=1,
        crossovers=8,
        **NARROW,
    ),
    ReadingConfig(
        "combined_spliced8",
        "combined + 8 spliced ASR rows an utterance",
        task_descriptions=1,
        spliced=8,
        **NARROW,
    ),
    ReadingConfig(
        "combined_spliced16",
        "combined + 16 spliced ASR rows an utterance",
        task_descriptions=1,
        spliced=16,
        **NARROW,
    ),
    ReadingConfig(
        "combined_spliced8_layer4",
        "combined_spliced8 with units from Whisper tiny.en's last layer (4)",
        task_descriptions=1,
        spliced=8,
        unit_layer=4,
        **NARROW,
    ),
    # Run 7: a broad corpus (the full grammar), where one voice can say few new sentences.
    ReadingConfig("full_one_request", "baseline with one request wording", task_descriptions=1),
    ReadingConfig(
        "full_spliced8_mixed",
        "full_one_request + 8 spliced ASR rows an utterance, each word from any voice that said it",
        task_descriptions=1,
        spliced=8,
        splice_mixed=True,
    ),
    ReadingConfig(
        "combined_grammar_text8",
        "control: combined + the sentences of combined_spliced8 as text-only rows (the grammar without its sound)",
        task_descriptions=1,
        grammar_text=8,
        **NARROW,
    ),
    # Run 5: the pretrained base (the `pretrained` preset's LM) on the same task, through a LoRA.
    ReadingConfig(
        "smol_qv_r8",
        "SmolLM2-135M-Instruct, the pretrained preset's LoRA: r=8 on q/v, unit rows trained, lr 5e-4",
        lora_r=8,
        **SMOL,
    ),
    ReadingConfig(
        "smol_all_r16", "SmolLM2, LoRA r=16 on every linear layer, unit rows trained, lr 5e-4", **SMOL_ALL_R16
    ),
    ReadingConfig(
        "smol_all_r16_rows1e-2",
        "smol_all_r16 with the unit rows at lr 1e-2",
        unit_learning_rate=1e-2,
        **SMOL_ALL_R16,
    ),
    ReadingConfig(
        "smol_all_r16_rows1e-2_spliced8",
        "smol_all_r16_rows1e-2 + 8 spliced ASR rows an utterance",
        unit_learning_rate=1e-2,
        spliced=8,
        **SMOL_ALL_R16,
    ),
    # Run 8: the levers not yet measured, each one change from the winner of its base.
    ReadingConfig(
        "combined_spliced8_pool2",
        "combined_spliced8 with encoder frames averaged in pairs before k-means (units at 25 Hz, not 50)",
        task_descriptions=1,
        spliced=8,
        frame_pooling=2,
        **NARROW,
    ),
    ReadingConfig(
        "combined_spliced8_curriculum",
        "combined_spliced8 after 150 CPU s of phrase rows alone (4 an utterance, 1-3 words each)",
        task_descriptions=1,
        spliced=8,
        curriculum_seconds=150.0,
        **NARROW,
    ),
    ReadingConfig(
        "combined_spliced8_bpe256",
        "combined_spliced8 with a BPE of 256 pieces over the merged units, its pieces the LM's units",
        task_descriptions=1,
        spliced=8,
        unit_bpe=256,
        **NARROW,
    ),
    ReadingConfig(
        "smol_rows_warmup_spliced8",
        "smol_all_r16_rows1e-2_spliced8 after 300 CPU s of the unit rows alone (the LoRA waiting)",
        unit_learning_rate=1e-2,
        spliced=8,
        rows_only_seconds=300.0,
        **SMOL_ALL_R16,
    ),
    ReadingConfig(
        "smol_bpe256_spliced8",
        "smol_all_r16_rows1e-2_spliced8 with a BPE of 256 pieces over the merged units, its pieces the LM's units",
        unit_learning_rate=1e-2,
        spliced=8,
        unit_bpe=256,
        **SMOL_ALL_R16,
    ),
    ReadingConfig(
        "smol_full_spliced8",
        "smol_all_r16_rows1e-2_spliced8 with every transformer weight trained at 1e-4 instead of a LoRA",
        unit_learning_rate=1e-2,
        spliced=8,
        **{**SMOL_ALL_R16, "lora_r": 0, "learning_rate": 1e-4},
    ),
]


# ---- evaluation -----------------------------------------------------------------------------------------------------


@torch.no_grad()
def transcribe(
    model: Any, processor: Any, items: list[Utterance], pieces: UnitPieces, max_new_tokens: int = 40
) -> list[str]:
    """Greedy transcripts of unit sequences, asked with the evaluation's ASR request, in one left-padded batch."""
    from speechgpt_hf.models.speechgpt.task_descriptions import default_task_description

    tokenizer = processor.tokenizer
    prompts = [
        processor.build_prompt(asr_request(pieces(item.units), default_task_description("asr"))) for item in items
    ]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    model.eval()
    out = model.generate(
        **encoded,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<eoa>")],
    )
    model.train()
    texts = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=False)
    return [processor.parse(text).text or "" for text in texts]


def score(model: Any, processor: Any, probes: dict[str, list[Utterance]], pieces: UnitPieces) -> dict[str, Any]:
    from speechgpt_hf.evaluation.metrics import word_error_rate

    result = {}
    for split, items in probes.items():
        hypotheses = transcribe(model, processor, items, pieces)
        result[split] = round(100 * word_error_rate([item.text for item in items], hypotheses), 1)
        result[f"{split}_examples"] = [[item.text, h] for item, h in list(zip(items, hypotheses, strict=True))[:3]]
    return result


# ---- one configuration ----------------------------------------------------------------------------------------------


def run_config(config: ReadingConfig, cache: Path, budget: float, eval_every: float, eval_items: int) -> dict:
    corpus, units = corpus_and_units(cache, config)
    rate = 50.0 / config.frame_pooling  # frames a second of the units' durations
    train = utterances(corpus, units, "train", rate)
    probes = {
        "held_out": utterances(corpus, units, "test", rate)[:eval_items],
        "held_out_voice": utterances(corpus, units, "test_voice", rate)[:eval_items],
        "training": train[:eval_items],
    }
    torch.manual_seed(0)
    model, processor = build_model(config, [item.text for item in train])
    pieces = UnitPieces.learn(train, config.unit_bpe)
    rows = training_rows(config, processor, train, held_out=list(corpus["test"]["text"]), pieces=pieces)
    groups = parameter_groups(model, config)
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps))
    pad = processor.tokenizer.pad_token_id
    stream = batches(rows, config.batch_size, pad)
    if config.curriculum_seconds:
        first = batches(phrase_rows(config, processor, train, pieces), config.batch_size, pad)
    curve, trained, step, next_eval, losses = [], 0.0, 0, eval_every, []
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"[reading] {config.name}: {len(rows)} rows, {trainable / 1e6:.2f} M trainable parameters")
    waiting = [p for name, p in model.named_parameters() if p.requires_grad and ROWS not in name]
    warming = config.rows_only_seconds > 0
    if warming:  # the unit rows train alone; the rest waits, with no optimizer state yet
        if config.base == "scratch":
            raise ValueError(f"{config.name}: rows_only_seconds needs a pretrained base (base='smollm2').")
        for parameter in waiting:
            parameter.requires_grad_(False)
    while True:
        if warming and trained >= config.rows_only_seconds:
            warming = False
            for parameter in waiting:
                parameter.requires_grad_(True)
        start = time.process_time()
        ids, labels, mask = next(first if trained < config.curriculum_seconds else stream)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        trained += time.process_time() - start
        step += 1
        losses.append(loss.item())
        if trained >= next_eval or trained >= budget:
            point = {"step": step, "cpu_seconds": round(trained, 1), "loss": round(sum(losses) / len(losses), 3)}
            point.update(score(model, processor, probes, pieces))
            losses = []
            curve.append(point)
            print(
                f"[reading] {config.name} step {step} ({trained:.0f} cpu-s) loss {point['loss']}: held-out "
                f"{point['held_out']}%, held-out voice {point['held_out_voice']}%, training {point['training']}%",
                flush=True,
            )
            next_eval += eval_every
            if trained >= budget:
                break
    return {"config": dataclasses.asdict(config), "budget": budget, "rows": len(rows), "curve": curve}


# ---- report ---------------------------------------------------------------------------------------------------------


# The curves drawn in colour; every other configuration is a thin grey line (the table names them all).
HIGHLIGHT = (
    "combined",
    "combined_spliced8",
    "combined_crossover8",
    "combined_grammar_text8",
    "smol_all_r16_rows1e-2",
    "smol_all_r16_rows1e-2_spliced8",
    "combined_spliced8_bpe256",
    "smol_full_spliced8",
    "smol_bpe256_spliced8",
)


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(HIGHLIGHT, plt.get_cmap("tab10").colors, strict=False))
    figure, axes = plt.subplots(1, 3, figsize=(17, 5.2), sharey=True)
    for axis, split in zip(axes, ("held_out", "held_out_voice", "training"), strict=True):
        for name, result in sorted(results.items(), key=lambda item: item[0] in colours):
            seconds, wer = [p["cpu_seconds"] for p in result["curve"]], [p[split] for p in result["curve"]]
            if name in colours:
                axis.plot(seconds, wer, marker="o", ms=3, color=colours[name], label=name)
            else:
                axis.plot(seconds, wer, color="0.75", linewidth=0.8, label="_other")
        axis.plot([], [], color="0.75", linewidth=0.8, label="the other configurations")
        axis.set_title(f"ASR WER, {split.replace('_', ' ')}")
        axis.set_xscale("log")
        axis.set_xlabel("training CPU seconds (log scale)")
        axis.axhline(40 if split != "training" else 20, color="grey", linestyle=":", linewidth=1)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("WER %")
    axes[0].set_ylim(0, 120)
    axes[-1].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_report(results: dict[str, dict], path: Path) -> None:
    lines = [
        "# Reading benchmark",
        "",
        f"`python benchmarks/reading.py` on {cpu_model_name()}, {torch.get_num_threads()} thread, torch "
        f"{torch.__version__}. Each configuration trains for its budget of CPU seconds (one "
        "thread, so that a busy machine does not inflate them); ASR WER on 20 items a probe (held-out sentences in "
        "training voices, the same in the held-out voice en-gb-x-rp, training sentences), greedy, asked as the "
        "evaluation asks, the clock stopped while scoring.",
        "",
        "![reading curves](reading.png)",
        "",
        "| configuration | lever | CPU s | steps | loss | held-out WER | held-out voice WER | training WER | best held-out |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        last = result["curve"][-1]
        best = min(p["held_out"] for p in result["curve"])
        lines.append(
            f"| {name} | {result['config']['lever']} | {last['cpu_seconds']:.0f} | {last['step']} | {last['loss']} | "
            f"{last['held_out']}% | {last['held_out_voice']}% | {last['training']}% | {best}% |"
        )
    lines += ["", "What each wrote at the end (reference → transcript, the first held-out sentences):", ""]
    for name, result in results.items():
        examples = result["curve"][-1].get("held_out_examples") or []
        if examples:
            lines.append(f"- **{name}**: " + "; ".join(f"{r!r} → {h!r}" for r, h in examples))
    # The reading of the numbers is written by hand under READING; a rerun keeps it below the new tables.
    kept = path.read_text().partition(READING)[2] if path.exists() else ""
    path.write_text("\n".join(lines) + "\n" + (f"\n{READING}{kept}" if kept else ""))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="configuration names (default: all)")
    parser.add_argument("--budget", type=float, default=240.0, help="training CPU seconds per configuration")
    parser.add_argument("--eval-every", type=float, default=40.0)
    parser.add_argument("--eval-items", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "speechgpt-hf" / "reading")
    parser.add_argument("--output", type=Path, default=HERE / "reading")
    parser.add_argument("--report-only", action="store_true", help="redraw the plot and table from the results file")
    args = parser.parse_args(argv)
    chosen = [c for c in CONFIGS if not args.only or c.name in args.only]
    args.cache.mkdir(parents=True, exist_ok=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # One thread: the process's CPU seconds then measure the work alone (two threads spin-wait on a busy core).
    torch.set_num_threads(1)
    results_path = args.output.with_suffix(".json")
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for config in [] if args.report_only else chosen:
        results[config.name] = run_config(config, args.cache, args.budget, args.eval_every, args.eval_items)
        results_path.write_text(json.dumps(results, indent=1))  # a finished configuration is never lost
    plot(results, args.output.with_suffix(".png"))
    write_report(results, args.output.with_suffix(".md"))
    print(f"[reading] wrote {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
