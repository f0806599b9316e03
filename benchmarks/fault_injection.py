"""Kill -9 at random moments: every long job, killed several times and rerun, ends as an uninterrupted run ends.

For each job (corpus voicing, fit-units, extract-units, build-speechinstruct, a training stage, train-vocoder,
reproduce), at a tiny size on a corpus spoken by espeak-ng: one uninterrupted run gives the reference and its wall
time T; then the same job, in a fresh folder, is started and SIGKILLed (with its children) at a random moment in
[0.15 T, 0.8 T], `--kills` times in a row, each start resuming what the killed one left; then it runs to the end.
The result is compared with the reference by content (rows, tensors), and the folder is searched for staging
leftovers. fault_injection.md gets one row a job.

    python benchmarks/fault_injection.py                  # every job, 3 kills each
    python benchmarks/fault_injection.py --only train --kills 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechgpt_hf.training.precision import cpu_model_name

HERE = Path(__file__).parent
CLI = [sys.executable, "-m", "speechgpt_hf_cli"]
TINY_REPRODUCTION = [
    "num_train=16",
    "num_test=2",
    'voices=["espeak:en-us", "espeak:en-gb"]',
    "unit_encoder=mfcc",
    "num_units=24",
    "unit_fit_frames=5000",
    "text_vocab_size=400",
    "lm_hidden=32",
    "lm_layers=1",
    "lm_heads=2",
    'stage_steps={"modality_adaptation": 4, "cross_modal": 6, "chain_of_modality": 4}',
    "batch_size=2",
    "com_pairs=2",
    "vocoder_steps=4",
    "vocoder_warmup_steps=1",
    "vocoder_channels=32",
    "eval_items=2",
    "eval_questions=2",
    "judge=pocketsphinx",
    "naturalness=false",
    "knowledge_questions=0",
]


@dataclass
class Job:
    """A long job: the command that runs (or resumes) it into a folder, and what of its output must not change."""

    name: str
    command: Callable[[Path], list[str]]
    fingerprint: Callable[[Path], str]
    resume: list[str] = field(default_factory=list)  # added to every start after the first


# ---- fingerprints: the content a job produces, not the bytes of its files ----------------------------------------


def _digest(items: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tensors_digest(folder: Path) -> str:
    """Every tensor of every safetensors file under `folder` (paths relative to it), hashed."""
    from safetensors.torch import load_file

    items = []
    for path in sorted(folder.rglob("*.safetensors")):
        if "checkpoint-" in str(path.relative_to(folder)):
            continue
        for name, tensor in sorted(load_file(str(path)).items()):
            digest = hashlib.sha256(tensor.float().contiguous().numpy().tobytes()).hexdigest()
            items.append([str(path.relative_to(folder)), name, digest])
    if not items:
        raise FileNotFoundError(f"no weights under {folder}")
    return _digest(items)


def saved_dataset_digest(folder: Path) -> str:
    """Every row of a `save_to_disk` folder (a Dataset or a DatasetDict), audio included."""
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    items = []
    for split, rows in splits:
        table = rows.with_format("arrow")[:]
        items.append([split, hashlib.sha256(str(table.to_pylist()).encode()).hexdigest()])
    return _digest(items)


def parquet_digest(folder: Path) -> str:
    """Every row of every parquet shard under `folder`."""
    import pyarrow.parquet as pq

    items = [
        [str(path.relative_to(folder)), hashlib.sha256(str(pq.read_table(path).to_pylist()).encode()).hexdigest()]
        for path in sorted(folder.rglob("*.parquet"))
    ]
    return _digest(items)


def reproduction_digest(folder: Path) -> str:
    """The reproduction's trained weights and what the evaluation heard and read (every item but the latency
    ones, which are clock readings)."""
    items = []
    for path in sorted(folder.rglob("items.jsonl")):
        for line in path.read_text().splitlines():
            item = json.loads(line)
            if item.get("task") != "latency":
                items.append([str(path.relative_to(folder)), item])
    return _digest([tensors_digest(folder / "lm"), tensors_digest(folder / "vocoder"), items])


# ---- the jobs, each reading what an earlier one made ---------------------------------------------------------------


def corpus_command(out: Path) -> list[str]:
    code = (
        "import sys; from speechgpt_hf.reproduction.corpus import build_speech_corpus; "
        "build_speech_corpus(sys.argv[1], 12, 3, voices=('espeak:en-us', 'espeak:en-gb'), "
        "held_out_voices=('espeak:en-gb-x-rp',), words_per_kind=2, held_out_fraction=0.0)"
    )
    return [sys.executable, "-c", code, str(out)]


def jobs(inputs: Path) -> list[Job]:
    """The jobs, given `inputs` (the audio folder, tokenizer, SpeechInstruct folder and base LM `prepare` made)."""
    audio, tokenizer, speechinstruct, base = (inputs / n for n in ("audio", "tokenizer", "speechinstruct", "base"))
    return [
        Job("corpus voicing", corpus_command, lambda out: saved_dataset_digest(out / "dataset")),
        Job(
            "fit-units",
            lambda out: [*CLI, "fit-units", str(audio), "--output-dir", str(out), "--num-units", "16"],
            tensors_digest,
        ),
        Job(
            "extract-units",
            lambda out: [
                *CLI, "extract-units", str(audio), "--tokenizer", str(tokenizer), "--output-dir", str(out),
                "--shard-size", "3",
            ],
            saved_dataset_digest,
        ),
        Job(
            "build-speechinstruct",
            lambda out: [
                *CLI, "build-speechinstruct", str(out), "--audio", str(audio), "--unit-tokenizer", str(tokenizer),
                "--tts", "espeak-ng", "--shard-size", "3",
            ],
            parquet_digest,
        ),
        Job(
            "train (stage 2, cross_modal)",
            lambda out: [
                *CLI, "train", "--stage", "cross_modal", "--dataset-name", str(speechinstruct),
                "--model-name-or-path", str(base), "--output-dir", str(out), "--max-steps", "24",
                "--save-steps", "4", "--per-device-train-batch-size", "2", "--logging-steps", "4", "--use-cpu",
                "--report-to", "none", "--seed", "0",
            ],
            tensors_digest,
            resume=["--resume-from-checkpoint", "latest"],
        ),
        Job(
            "train-vocoder",
            lambda out: [
                *CLI, "train-vocoder", str(inputs / "vocoder-data"), "--unit-tokenizer", str(tokenizer),
                "--eval-size", "1", "--config", str(inputs / "vocoder.yaml"), "--output-dir", str(out), "--cpu",
            ],
            tensors_digest,
            resume=["--resume"],
        ),
        Job(
            "reproduce (tiny)",
            lambda out: [*CLI, "reproduce", "--output-dir", str(out), "--preset", "quickstart", "--set",
                         *TINY_REPRODUCTION],
            reproduction_digest,
        ),
    ]  # fmt: skip


def prepare(inputs: Path) -> None:
    """The inputs the jobs read: a spoken corpus as an audio folder with transcripts, a unit tokenizer fitted on it,
    a SpeechInstruct folder built from both, a tiny expanded LM, a vocoder dataset and recipe."""
    import datasets
    import soundfile

    if (inputs / "ready").exists():
        return
    subprocess.run(corpus_command(inputs / "corpus"), check=True)
    audio = inputs / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    corpus = datasets.load_from_disk(str(inputs / "corpus" / "dataset"))["train"]
    for index, row in enumerate(corpus):
        soundfile.write(audio / f"utt{index:03d}.wav", row["audio"]["array"], row["audio"]["sampling_rate"])
        (audio / f"utt{index:03d}.txt").write_text(row["text"])
    subprocess.run([*CLI, "fit-units", str(audio), "--output-dir", str(inputs / "tokenizer"), "--num-units", "16"])
    subprocess.run(
        [*CLI, "build-speechinstruct", str(inputs / "speechinstruct"), "--audio", str(audio)]
        + ["--unit-tokenizer", str(inputs / "tokenizer"), "--tts", "espeak-ng"],
        check=True,
    )
    _tiny_base(inputs / "base")
    corpus.select_columns(["audio"]).save_to_disk(str(inputs / "vocoder-data"))
    _vocoder_recipe(inputs / "vocoder.yaml")
    (inputs / "ready").write_text("")


def _tiny_base(folder: Path) -> None:
    from speechgpt_hf.models.speechgpt.vocabulary_expansion import add_speech_units
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm("llama", vocab_size=len(tokenizer)), tokenizer, 16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _vocoder_recipe(path: Path) -> None:
    """A unit HiFi-GAN small enough to train in seconds, saving a checkpoint every second step."""
    recipe = {
        "model": {
            "unit_embed_dim": 16,
            "duration_predictor_hidden_dim": 16,
            "upsample_initial_channel": 16,
            "upsample_rates": [5, 4, 4, 4],
            "upsample_kernel_sizes": [11, 8, 8, 8],
        },
        "segment_frames": 8,
        "batch_size": 2,
        "max_steps": 12,
        "log_steps": 2,
        "eval_steps": 6,
        "save_steps": 2,
        "discriminator_width": 1 / 32,
        "mpd_periods": [2, 3],
        "n_fft": 256,
        "hop_length": 64,
        "win_length": 256,
        "n_mels": 20,
        "num_audio_samples": 1,
    }
    path.write_text(json.dumps(recipe))


# ---- one job, killed and resumed ----------------------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    """Staging names a killed writer left behind (the rerun clears those it rewrites)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial" in p.name)


def kill_and_resume(job: Job, workdir: Path, kills: int, rng: random.Random) -> dict:
    """The job's reference run, then `kills` starts killed at random moments and a last start run to the end."""
    from speechgpt_hf.testing_utils import kill_when

    reference = workdir / "reference"
    started = time.monotonic()
    subprocess.run(job.command(reference), check=True, capture_output=True)
    seconds = reference_seconds = time.monotonic() - started
    expected = job.fingerprint(reference)

    folder, killed, finished_early, resuming = workdir / "killed", [], 0, False
    while len(killed) < kills and finished_early < 2 * kills:
        moment = rng.uniform(0.15, 0.8) * seconds
        started = time.monotonic()
        command = job.command(folder) + (job.resume if resuming else [])
        if kill_when(command, lambda end=started + moment: time.monotonic() > end):
            killed.append(round(moment, 1))
            resuming = True
        else:  # a busy machine made the reference slow: time the job again from this run, and start it afresh
            finished_early += 1
            seconds = min(seconds, time.monotonic() - started)
            shutil.rmtree(folder)
            resuming = False
    rerun = subprocess.run(job.command(folder) + job.resume, capture_output=True, text=True)
    result = {
        "job": job.name,
        "reference_seconds": round(reference_seconds, 1),
        "kills": killed,
        "finished_before_kill": finished_early,
        "rerun_finished": rerun.returncode == 0,
        "identical": rerun.returncode == 0 and job.fingerprint(folder) == expected,
        "leftovers": leftovers(folder),
    }
    if rerun.returncode:
        result["error"] = rerun.stderr[-2000:]
    return result


def write_report(results: list[dict], path: Path) -> None:
    lines = [
        "# Fault injection: kill -9, then rerun",
        "",
        f"`python benchmarks/fault_injection.py` on {cpu_model_name()}. Each job runs once uninterrupted "
        "(the reference, wall time T), then in a fresh folder it is started and SIGKILLed with its children at a "
        "random moment in [0.15 T, 0.8 T], again and again, each start resuming what the last one left, and then run "
        "to the end. A start that finishes before its kill (a busy machine had slowed the reference) is counted, "
        "its own time becomes T, and the job starts afresh. *Identical*: the final rows or tensors equal the "
        "reference's.",
        "",
        "| job | T (s) | kills injected (s into the run) | finished before its kill | rerun finished | identical "
        "| staging leftovers |",
        "| --- | ---: | --- | ---: | :---: | :---: | --- |",
    ]
    for r in results:
        moments = ", ".join(f"{m}" for m in r["kills"]) or "none"
        lines.append(
            f"| {r['job']} | {r['reference_seconds']} | {len(r['kills'])}: {moments} | {r['finished_before_kill']} "
            f"| {'yes' if r['rerun_finished'] else 'NO'} | {'yes' if r['identical'] else 'NO'} "
            f"| {', '.join(r['leftovers']) or 'none'} |"
        )
    failures = [r for r in results if "error" in r]
    for r in failures:
        lines += ["", f"{r['job']} failed on its rerun:", "", "```", r["error"].strip(), "```"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3, help="kills injected into each job before it may finish")
    parser.add_argument("--only", nargs="*", help="jobs whose name starts with one of these (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/speechgpt-hf-fault-injection"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prepare(args.workdir / "inputs")
    rng = random.Random(args.seed)
    results_path = HERE / "fault_injection.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for job in jobs(args.workdir / "inputs"):
        if args.only and not any(job.name.startswith(prefix) for prefix in args.only):
            continue
        slug = job.name.split()[0]
        shutil.rmtree(args.workdir / slug, ignore_errors=True)
        results[job.name] = kill_and_resume(job, args.workdir / slug, args.kills, rng)
        print(json.dumps(results[job.name]), flush=True)
        results_path.write_text(json.dumps(results, indent=1))  # a finished job is kept whatever comes after
    order = [job.name for job in jobs(args.workdir / "inputs")]
    write_report(sorted(results.values(), key=lambda r: order.index(r["job"])), HERE / "fault_injection.md")
    print(f"wrote {HERE / 'fault_injection.md'}")


if __name__ == "__main__":
    main()
