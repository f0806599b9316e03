"""`run_reproduction`: the whole SpeechGPT recipe at small scale, then held-out numbers.

Steps, each resumable (a finished step leaves `steps/<name>.json`; a killed training stage resumes from its
last checkpoint): voice a corpus with held-out sentences and a held-out voice; fit units on the training audio
and encode it once; build SpeechInstruct; train a BPE tokenizer and a small Llama from scratch; train the three
stages with TRL; train the unit vocoder; evaluate ASR, TTS, resynthesis (and spoken QA, latency) on the held-out
sentences in training voices and in the held-out voice; write the report with learning curves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLING_RATE
from ..models.speechgpt.base_models import split_gguf
from ..safe_files import atomic_write_json, read_json_file
from ..stages import CROSS_MODAL, STAGES
from .base_lm import build_base_lm
from .settings import PRESETS, ReproductionSettings

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from ..models.unit_tokenizer.modeling_unit_tokenizer import SpeechUnitTokenizer
    from ..training.sft import SpeechGPTTrainingConfig

logger = logging.getLogger(__name__)

EVAL_SPLITS = ("test", "test_voice")
TRAIN_PROBE = "train_probe"  # a few training sentences, scored like the held-out ones: the overfitting gap


def _say(message: str) -> None:
    print(f"[reproduce] {message}", flush=True)


class _Steps:
    """Runs named steps once: a finished step's summary is stored (at once: a kill leaves it whole or absent) and
    returned again on a rerun."""

    def __init__(self, output: Path, settings: ReproductionSettings, overwrite: bool) -> None:
        self.folder = output / "steps"
        self.folder.mkdir(parents=True, exist_ok=True)
        saved = output / "settings.json"
        wanted = json.loads(json.dumps(settings.to_dict()))
        if saved.exists() and not overwrite and _recorded_settings(saved) != wanted:
            raise ValueError(
                f"{output} holds a reproduction with other settings; resuming would mix them. Use another "
                "output folder, or overwrite=True (--overwrite) to start again."
            )
        if overwrite:
            for done in self.folder.glob("*.json"):
                done.unlink()
        atomic_write_json(saved, wanted, indent=1)
        self.seconds: dict[str, float] = {}

    def run(self, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.folder / f"{name}.json"
        if done.exists():
            record = read_json_file(done, f"delete it to run the step {name!r} again")
            self.seconds[name] = record["seconds"]
            _say(f"{name}: done in an earlier run ({record['seconds']:.0f} s), reused")
            return record["summary"]
        start = time.perf_counter()
        summary = work()
        seconds = round(time.perf_counter() - start, 1)
        self.seconds[name] = seconds
        atomic_write_json(done, {"seconds": seconds, "summary": summary}, indent=1, default=str)
        _say(f"{name}: {seconds:.0f} s")
        return summary


def _recorded_settings(path: Path) -> Any:
    """The settings a reproduction folder was started with (settings.json), named when unreadable."""
    way_out = "delete it to resume under the settings given now, or start again with --overwrite"
    return read_json_file(path, way_out)


def audio_key(audio: np.ndarray, sampling_rate: int) -> str:
    """A content key of one waveform (the same samples at the same rate give the same key)."""
    data = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    return hashlib.sha1(data.tobytes() + str(int(sampling_rate)).encode()).hexdigest()


class PrecomputedUnits:
    """A unit tokenizer that hands out units computed once for known audio and encodes anything else.

    The training audio is encoded once (batched) and its units serve the SpeechInstruct builder's two speech
    configurations and the vocoder data; new audio (the TTS speech of chain-of-modality pairs) is encoded.
    """

    def __init__(self, tokenizer: SpeechUnitTokenizer, table: dict[str, dict[str, list[int]]]) -> None:
        self.tokenizer, self.table, self.config = tokenizer, table, tokenizer.config

    def encode(self, audio: Any, sampling_rate: int | None = None, **kwargs: Any) -> Any:
        from ..models.unit_tokenizer.modeling_unit_tokenizer import UnitSequence

        if isinstance(audio, np.ndarray) and sampling_rate is not None:
            known = self.table.get(audio_key(audio, sampling_rate))
            if known is not None:
                return UnitSequence(list(known["units"]), list(known["durations"]))
        return self.tokenizer.encode(audio, sampling_rate=sampling_rate, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """The wrapped tokenizer's weights: the builder fingerprints a unit tokenizer by them (the table follows)."""
        return self.tokenizer.state_dict()

    def __repr__(self) -> str:  # recorded in the SpeechInstruct folder's settings: stable across runs
        return f"PrecomputedUnits({self.tokenizer.name_or_path})"


def build_corpus(output: Path, settings: ReproductionSettings) -> DatasetDict:
    from .corpus import build_speech_corpus

    return build_speech_corpus(
        output / "corpus",
        settings.num_train,
        settings.num_test,
        voices=settings.voices,
        held_out_voices=settings.held_out_voices,
        seed=settings.seed,
        held_out_fraction=settings.held_out_fraction,
        words_per_kind=settings.words_per_kind,
    )


def _corpus_summary(output: Path, corpus: DatasetDict) -> dict[str, Any]:
    manifest = json.loads((output / "corpus" / "manifest.json").read_text())
    seconds = {
        split: round(sum(len(r["audio"]["array"]) for r in rows) / SAMPLING_RATE) for split, rows in corpus.items()
    }
    return {
        "utterances": {split: len(rows) for split, rows in corpus.items()},
        "speech_seconds": seconds,
        "test_only_words": len(manifest.get("test_only_words", [])),
        "skipped": manifest["skipped"]["count"],
    }


def _new_unit_tokenizer(settings: ReproductionSettings) -> SpeechUnitTokenizer:
    """An unfitted tokenizer on the encoder `settings.unit_encoder` names (a bundled Whisper, or MFCC)."""
    from ..models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

    if settings.unit_encoder == "mfcc":
        return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=settings.num_units))
    return SpeechUnitTokenizer.from_encoder(
        settings.unit_encoder, layer=settings.unit_layer, num_units=settings.num_units
    )


def fit_units(output: Path, settings: ReproductionSettings, corpus: DatasetDict) -> dict[str, Any]:
    """Fits the codebook on the training audio, saves the tokenizer, and encodes the training audio once."""
    import torch

    from ..hub.cards import record_provenance, unit_fit_step, write_model_card

    torch.manual_seed(settings.seed)
    tokenizer = _new_unit_tokenizer(settings).eval()
    train = corpus["train"]
    fit_on = train.select(range(min(settings.unit_fit_utterances, len(train))))
    result = tokenizer.fit(
        (row["audio"] for row in fit_on), max_frames=settings.unit_fit_frames, seed=settings.seed, progress=True
    )
    tokenizer.save_pretrained(output / "unit-tokenizer")
    record_provenance(
        output / "unit-tokenizer", unit_fit_step(result, f"{len(fit_on)} training utterances", "speechgpt-hf reproduce")
    )
    write_model_card(output / "unit-tokenizer")
    units = encode_split(tokenizer, train)
    atomic_write_json(output / "unit-tokenizer" / "train_units.json", units)
    lengths = [len(u["units"]) for u in units.values()]
    seconds = sum(len(row["audio"]["array"]) for row in train) / 16000
    return {
        "encoder": tokenizer.config.features_description,
        "num_units": settings.num_units,
        "passes": result.iterations,
        "inertia_per_pass": [round(float(x), 4) for x in result.inertia_history],
        "frames_seen": result.frames_seen,
        "merged_units_per_second": round(sum(lengths) / seconds, 2),
        "units_in_use": len({u for v in units.values() for u in v["units"]}),
    }


def encode_split(tokenizer: SpeechUnitTokenizer, split: Dataset) -> dict[str, dict[str, list[int]]]:
    """`{audio key: {"units", "durations"}}` of every utterance of a split, encoded in length-sorted batches."""
    arrays = [(np.asarray(row["audio"]["array"], dtype=np.float32), row["audio"]["sampling_rate"]) for row in split]
    sequences = tokenizer.encode([a for a, _ in arrays], sampling_rate=16000, progress=True)
    return {
        audio_key(a, r): {"units": s.units, "durations": s.durations}
        for (a, r), s in zip(arrays, sequences, strict=True)
    }


def load_units(output: Path) -> tuple[SpeechUnitTokenizer, dict[str, dict[str, list[int]]]]:
    from ..models.unit_tokenizer import SpeechUnitTokenizer

    tokenizer = SpeechUnitTokenizer.from_pretrained(output / "unit-tokenizer").eval()
    return tokenizer, json.loads((output / "unit-tokenizer" / "train_units.json").read_text())


def build_data(output: Path, settings: ReproductionSettings, corpus: DatasetDict) -> dict[str, Any]:
    from ..data.hub_folder import build_speechinstruct_folder
    from ..data.sources import load_instruction_pairs
    from ..models.speechgpt.task_descriptions import load_task_descriptions

    tokenizer, table = load_units(output)
    configs: dict[str, dict[str, Any]] = {stage: {} for stage in STAGES}
    if settings.spliced_asr_rows:
        texts = spliced_sentences(settings, corpus)
        configs[CROSS_MODAL] = {"spliced_asr_rows": settings.spliced_asr_rows, "spliced_texts": texts}
    summaries = build_speechinstruct_folder(
        output / "speechinstruct",
        configs,
        audio_source=corpus["train"],
        unit_tokenizer=PrecomputedUnits(tokenizer, table),
        tts="piper",
        asr_descriptions=load_task_descriptions(None, "asr")[: settings.task_descriptions],
        tts_descriptions=load_task_descriptions(None, "tts")[: settings.task_descriptions],
        instructions=load_instruction_pairs(None)[: settings.com_pairs],
        system_prompt=settings.system_prompt,
        asr_and_tts=settings.asr_and_tts,
        seed=settings.seed,
    )
    return {name: {split: s.rows for split, s in splits.items()} for name, splits in summaries.items()}


def spliced_sentences(settings: ReproductionSettings, corpus: DatasetDict) -> list[str]:
    """Grammar sentences for stage 2's spliced ASR rows: twice as many as it asks for (some use a word no single
    voice said), none of them a sentence of the corpus, so no held-out sentence is ever trained on."""
    from .corpus_grammar import Grammar, generate_sentences

    grammar = Grammar.load() if settings.words_per_kind is None else Grammar.load().narrowed(settings.words_per_kind)
    corpus_texts = [text for split in corpus.values() for text in split["text"]]
    count = 2 * settings.spliced_asr_rows * len(corpus["train"])
    return generate_sentences(count, f"{settings.seed}:spliced", grammar, taken=corpus_texts, allow_fewer=True)


def base_lm_texts(settings: ReproductionSettings, corpus: DatasetDict) -> list[str]:
    """The text the from-scratch tokenizer is trained on: training sentences, instructions, task descriptions."""
    from ..data.sources import load_instruction_pairs
    from ..models.speechgpt.task_descriptions import load_task_descriptions

    pairs = load_instruction_pairs(None)[: settings.com_pairs]
    return [
        *corpus["train"]["text"],
        *(p["instruction"] for p in pairs),
        *(p["response"] for p in pairs),
        *load_task_descriptions(None, "asr"),
        *load_task_descriptions(None, "tts"),
        settings.system_prompt,
    ]


def base_model_path(output: Path, settings: ReproductionSettings) -> str:
    """Where stage 1 loads its text LM from: the from-scratch one in `output/base-lm`, or the pretrained base."""
    if settings.base_model is None:
        return str(output / "base-lm")
    if settings.base_model == "smollm2":
        from ..models.speechgpt.base_models import bundled_smollm2

        return str(bundled_smollm2())
    return settings.base_model


def base_lm_step(output: Path, settings: ReproductionSettings, corpus: DatasetDict) -> dict[str, Any]:
    """Builds the from-scratch base LM, or names the pretrained one (and what its weights are stored as)."""
    if settings.base_model is None:
        return build_base_lm(output, settings, base_lm_texts(settings, corpus))
    from ..models.speechgpt.base_models import describe_base_weights

    path = base_model_path(output, settings)
    return {"base_model": path, "weights": describe_base_weights(*split_gguf(path))}


def knowledge_retention(output: Path, settings: ReproductionSettings) -> dict[str, Any]:
    """Text-QA accuracy on the same questions: the bare base (its own template), the expanded model before any
    training, then after each stage."""
    from ..evaluation.eval_data import load_spoken_questions
    from ..evaluation.harness import load_system
    from ..evaluation.knowledge import base_text_qa, system_text_qa
    from ..inference.chat import SpeechGPTChat
    from ..models.speechgpt import add_speech_units
    from ..models.speechgpt.base_models import load_base_model

    questions = load_spoken_questions(limit=settings.knowledge_questions)
    model, tokenizer = load_base_model(*split_gguf(base_model_path(output, settings)))
    results = {"bare base": base_text_qa(model.eval(), tokenizer, questions).to_dict()}
    processor = load_system(str(output / "lm" / STAGES[0])).processor  # the prompt format and system prompt trained
    expanded, _ = add_speech_units(
        model, tokenizer, num_units=settings.num_units, seed=settings.seed, unit_pieces=processor.unit_pieces
    )
    results["expanded, untrained"] = system_text_qa(SpeechGPTChat(expanded, processor), questions).to_dict()
    for stage in STAGES:
        results[f"after {stage}"] = system_text_qa(load_system(str(output / "lm" / stage)), questions).to_dict()
    bare = results["bare base"]["accuracy"]
    return {
        "questions": [q.id for q in questions],
        "accuracy": {name: result["accuracy"] for name, result in results.items()},
        "retained": {name: (r["accuracy"] / bare if bare else None) for name, r in results.items()},
        "answers": {name: result["answers"] for name, result in results.items()},
    }


def _latest_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint a killed stage or vocoder left in `folder` (incomplete ones skipped)."""
    from ..training.checkpoints import latest_checkpoint

    found = latest_checkpoint(folder)
    return None if found is None else str(found)


def stage_config(output: Path, settings: ReproductionSettings, stage: str) -> SpeechGPTTrainingConfig:
    """The training config of one stage: its method (LoRA, unit rows, rehearsal) from the stage's recipe
    (`settings.stage_recipe`), its sizes, data and hardware from the settings.

    Stage 1 trains unpacked here: its rows are single utterances (tens of tokens), and on a CPU a padding-free packed
    batch attends through a dense mask over the whole packed batch (measured: 18 s a step packed against 0.36 s
    unpacked for the quickstart's model, 2.7x slower a token).
    """
    from ..training.precision import resolve_bf16
    from ..training.sft import SpeechGPTTrainingConfig
    from ..training.stage_recipes import stage_method

    steps = settings.stage_steps[stage]
    folder = output / "lm" / stage
    source = (
        dict(
            base_model_name_or_path=base_model_path(output, settings),
            num_units=settings.num_units,
            unit_bpe_vocab_size=settings.unit_bpe_vocab_size,
            unit_tokenizer_repo=str(output / "unit-tokenizer"),
            system_prompt=settings.system_prompt,
            prompt_format=settings.prompt_format,
            packing=False,
        )
        if stage == STAGES[0]
        else dict(model_name_or_path=str(output / "lm" / STAGES[STAGES.index(stage) - 1]))
    )
    learning_rate = settings.lora_learning_rate if stage == STAGES[2] else settings.learning_rate
    return SpeechGPTTrainingConfig(
        stage=stage,
        dataset_name=str(output / "speechinstruct"),
        output_dir=str(folder),
        max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=max(1, steps // 50),
        save_steps=max(50, steps // 5),
        save_total_limit=1,
        report_to="none",
        use_cpu=True,
        seed=settings.seed,
        max_length=1024,
        resume_from_checkpoint=_latest_checkpoint(folder),
        disable_tqdm=False,
        gradient_checkpointing=False,
        bf16=resolve_bf16(settings.bf16),
        **source,
        **stage_method(settings.stage_recipe(stage)),
    )


def train_stage(output: Path, settings: ReproductionSettings, stage: str) -> dict[str, Any]:
    """One of the three stages (`stage_config`), resumed from its last checkpoint after a kill."""
    from ..training.precision import resolve_bf16
    from ..training.sft import train_stage as run_stage

    steps = settings.stage_steps[stage]
    folder = output / "lm" / stage
    config = stage_config(output, settings, stage)
    run_stage(config)
    # A stage in bf16 leaves accelerate's process-wide state at bf16, which the next step's own Accelerator (the
    # vocoder's, in fp32) may not change: this single-process run clears it once the stage is saved.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1], "bf16": resolve_bf16(settings.bf16)}


def train_vocoder_step(output: Path, settings: ReproductionSettings, corpus: DatasetDict) -> dict[str, Any]:
    """The unit vocoder (`settings.vocoder`) on the training audio and its precomputed units, one speaker id per
    training voice."""
    from ..training.sft import RECIPES_DIR
    from ..training.vocoder.config import VocoderTrainingConfig
    from ..training.vocoder.data import prepare_vocoder_dataset
    from ..training.vocoder.trainer import train_vocoder

    _, table = load_units(output)
    train = corpus["train"]
    rows = []
    for row in train:
        audio = np.asarray(row["audio"]["array"], dtype=np.float32)
        entry = table[audio_key(audio, row["audio"]["sampling_rate"])]
        rows.append({"audio": {"array": audio, "sampling_rate": 16000}, "speaker": row["speaker"], **entry})
    data = prepare_vocoder_dataset(rows, speaker_column="speaker", speakers=list(settings.voices))
    folder = output / "vocoder"
    common = {
        "output_dir": str(folder),
        "max_steps": settings.vocoder_steps,
        "cpu": True,
        "seed": settings.seed,
        "log_steps": 10,
        "eval_steps": max(50, settings.vocoder_steps // 10),
        "save_steps": max(50, settings.vocoder_steps // 10),
        "resume_from_checkpoint": _latest_checkpoint(folder),
    }
    if settings.vocoder == "unit_mel":
        recipe = VocoderTrainingConfig.from_yaml(RECIPES_DIR / "vocoder_mel_cpu.yaml", **common)
        config = dataclasses.replace(recipe, time_limit_minutes=None)  # the run is sized in steps, not minutes
    else:
        channels = settings.vocoder_channels
        config = VocoderTrainingConfig(
            **common,
            batch_size=6,
            segment_frames=24,
            discriminator_start_step=settings.vocoder_warmup_steps,
            discriminator_width=0.25,
            model=dict(
                upsample_initial_channel=channels,
                unit_embed_dim=min(128, channels),
                duration_predictor_hidden_dim=min(128, channels),
            ),
        )
    train_vocoder(config, data, num_units=settings.num_units)
    return {"architecture": settings.vocoder, "steps": settings.vocoder_steps, "speakers": len(data.speakers)}


def assemble(output: Path) -> Path:
    """Points the final LM and its processor at the vocoder (paths stored relative to the model folder, so the run
    can move)."""
    from ..inference.assemble import assemble_system

    return assemble_system(output / "lm" / STAGES[-1], vocoder=output / "vocoder")


def evaluate_held_out(output: Path, settings: ReproductionSettings, corpus: DatasetDict) -> dict[str, Any]:
    """ASR, TTS and resynthesis on the held-out sentences in training voices (`test`), the same sentences in
    the held-out voice (`test_voice`) and a few training sentences (the overfitting gap); spoken QA and latency
    once. WER split by kind: sentences with new words versus new combinations of training words."""
    from ..evaluation.harness import EvaluationConfig, evaluate_speechgpt, load_judges, load_system

    model = assemble(output)
    base = EvaluationConfig(
        judge=settings.judge,
        naturalness=settings.naturalness,
        max_items=settings.eval_items,
        max_speech_items=settings.eval_speech_items,
        max_questions=settings.eval_questions,
        qa_tts=list(settings.held_out_voices),  # questions in voices never trained on, like the test_voice split
        latency_items=3,
    )
    judges = load_judges(base)
    system = load_system(str(model), base.generation_kwargs, constrain_units=settings.constrained_decoding)
    probe = (
        corpus["train"].shuffle(seed=settings.seed).select(range(min(settings.eval_items, 20, len(corpus["train"]))))
    )
    # The held-out splits list sentences with new words first: shuffled alike, the first items mix both kinds and
    # are the same sentences in both voices' splits.
    test, test_voice = (corpus[name].shuffle(seed=settings.seed) for name in ("test", "test_voice"))
    plan = {
        "test": (test, ["asr", "tts", "resynthesis", "spoken_qa", "latency"]),
        "test_voice": (test_voice, ["asr", "resynthesis"]),
        TRAIN_PROBE: (probe, ["asr", "tts"]),
    }
    results = {}
    for name, (split, tasks) in plan.items():
        config = EvaluationConfig(
            **{**base.__dict__, "dataset": split, "tasks": tasks, "output_dir": str(output / "evaluation" / name)}
        )
        report = evaluate_speechgpt(system, config, judges=judges)
        results[name] = report.results["tasks"]
        if "asr" in report.tasks and "kind" in split.column_names:
            results[name]["asr"]["wer_by_kind"] = _wer_by_kind(report.tasks["asr"].items, split)
    return results


def _wer_by_kind(items: list[dict[str, Any]], split: Any) -> dict[str, float]:
    from ..evaluation.scoring import error_rates

    kinds = dict(zip(split["id"], split["kind"], strict=True))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(kinds.get(item["id"], "unknown"), []).append(item)
    return {
        kind: error_rates([i["reference"] for i in rows], [i["hypothesis"] for i in rows])["wer"]
        for kind, rows in grouped.items()
    }


def run_reproduction(
    output_dir: str | Path, settings: ReproductionSettings | str = "hour", overwrite: bool = False
) -> dict[str, Any]:
    """Runs (or resumes) every step and writes `summary.json` and `report.md` in `output_dir`."""
    from .report import write_reproduction_report

    settings = PRESETS[settings] if isinstance(settings, str) else settings
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    steps = _Steps(output, settings, overwrite)
    summary: dict[str, Any] = {"settings": settings.to_dict()}
    summary["corpus"] = steps.run("corpus", lambda: _corpus_summary(output, build_corpus(output, settings)))
    corpus = build_corpus(output, settings)  # built: loaded from disk
    summary["units"] = steps.run("units", lambda: fit_units(output, settings, corpus))
    summary["speechinstruct"] = steps.run("speechinstruct", lambda: build_data(output, settings, corpus))
    summary["base_lm"] = steps.run("base_lm", lambda: base_lm_step(output, settings, corpus))
    for stage in STAGES:
        summary[stage] = steps.run(stage, lambda stage=stage: train_stage(output, settings, stage))
    summary["vocoder"] = steps.run("vocoder", lambda: train_vocoder_step(output, settings, corpus))
    summary["evaluation"] = steps.run("evaluation", lambda: evaluate_held_out(output, settings, corpus))
    if settings.knowledge_questions:
        summary["knowledge"] = steps.run("knowledge", lambda: knowledge_retention(output, settings))
    summary["seconds"] = steps.seconds
    atomic_write_json(output / "summary.json", summary, indent=1, default=str)
    write_reproduction_report(output, summary)
    return summary


__all__ = ["EVAL_SPLITS", "STAGES", "PrecomputedUnits", "audio_key", "run_reproduction"]
