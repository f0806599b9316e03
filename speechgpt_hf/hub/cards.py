"""Model cards for the repos this package writes, rendered from the templates in hub_cards/.

A repo's card is made from what its folder holds: config.json (architecture, unit count, components),
provenance.json (how it was made: converted, fitted or trained, with the data and the recipe of each step),
train_results.json (final training metrics) and results.json from `speechgpt-hf evaluate` (as the Hub's
model-index). Writers call `record_provenance` and then `write_model_card`; `speechgpt-hf card` re-renders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..safe_files import atomic_path, atomic_write_json, read_json_file

PROVENANCE_FILE = "provenance.json"
RESULTS_FILE = "results.json"
TEMPLATES = {
    "speechgpt": "speechgpt_card.md",
    "speechgpt_unit_tokenizer": "unit_tokenizer_card.md",
    "speechgpt_unit_hifigan": "vocoder_card.md",
    "speechgpt_unit_mel": "unit_mel_vocoder_card.md",
    "speecht5_hifigan": "mel_hifigan_card.md",
}
# Evaluation task of `speechgpt-hf evaluate` -> the Hub's task type in model-index.
EVAL_TASK_TYPES = {
    "asr": ("automatic-speech-recognition", "Speech recognition"),
    "tts": ("text-to-speech", "Speech synthesis"),
    "resynthesis": ("audio-to-audio", "Unit resynthesis"),
    "spoken_qa": ("any-to-any", "Spoken question answering"),
    "latency": ("any-to-any", "Latency"),
}
_WAYS_OUT = {  # what to do about a damaged file, by name, where rerunning what wrote it is not all
    PROVENANCE_FILE: "it only records how the folder was made: delete it (the card then says less) or rerun the "
    "command that made the folder.",
}
_REPO_ID = re.compile(r"^(?!\.)[\w.-]+/(?!\.)[\w.-]+$")  # org/name; a name never starts with a dot
_PACKAGE_CARDS = Path(__file__).resolve().parents[1] / "hub_cards"  # where a wheel ships the templates
_CHECKOUT_CARDS = Path(__file__).resolve().parents[2] / "hub_cards"  # the repository's top-level folder


def template_path(name: str) -> Path:
    """The card template `name` from hub_cards/ (inside the installed package, or the repository's top level)."""
    for folder in (_PACKAGE_CARDS, _CHECKOUT_CARDS):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"Card template {name} is in neither {_PACKAGE_CARDS} nor {_CHECKOUT_CARDS}: reinstall speechgpt-hf "
        "(pip install speechgpt-hf, or pip install -e . in its repository)."
    )


def is_hub_id(value: Any) -> bool:
    """Whether `value` reads as a Hub repo id (org/name) rather than a local path."""
    return isinstance(value, str) and bool(_REPO_ID.match(value)) and ".." not in value and not Path(value).exists()


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`, or {} when there is no such file; a damaged file raises CorruptFileError naming it
    and the way out."""
    way_out = _WAYS_OUT.get(path.name, "rerun the command that wrote it.")
    return read_json_file(path, way_out) if path.is_file() else {}


def record_provenance(folder: str | Path, step: Mapping[str, Any], inherit_from: str | Path | None = None) -> Path:
    """Appends one step (`name`, `made_by`, `summary`, optional `base_model` with `base_weights`, `datasets`,
    `facts`) to the folder's
    provenance.json, replacing an earlier step of the same name (a rerun); `inherit_from` (a model folder it
    started from) contributes its steps first when the folder has no record yet."""
    folder = Path(folder)
    earlier = read_json(Path(inherit_from) / PROVENANCE_FILE) if inherit_from and Path(inherit_from).is_dir() else {}
    record = read_json(folder / PROVENANCE_FILE) or {"steps": list(earlier.get("steps", []))}
    record["steps"] = [s for s in record["steps"] if s.get("name") != step["name"]] + [dict(step)]
    return atomic_write_json(folder / PROVENANCE_FILE, record, indent=1, default=str)


def unit_fit_step(result: Any, data: str, made_by: str) -> dict[str, Any]:
    """The provenance step of a k-means codebook fit (a `KMeansResult`) on `data` (a description of the audio)."""
    stop = "converged" if result.converged else "stopped at the pass limit"
    summary = (
        f"k-means on a sample of {result.num_frames} of {result.frames_seen} frames of {data}, "
        f"{result.iterations} passes ({stop})"
    )
    facts = {"fit frames": result.num_frames, "inertia per frame": result.inertia_per_frame}
    return {"name": "codebook fit", "made_by": made_by, "summary": summary, "facts": facts}


def source_name(name: str | Path) -> str:
    """A model or dataset as a card names it: a Hub id as it is, a local folder or file by its name only."""
    if is_hub_id(str(name)):
        return str(name)
    return f"local {'file' if Path(name).is_file() else 'folder'} {Path(name).name}"


def base_model_step(
    name_or_path: str | Path, gguf_file: str | None = None, dtype: Any = "float32", made_by: str = "add_speech_units"
) -> dict[str, Any]:
    """The provenance step of expanding a text LM into a SpeechGPT: which base (a repo, folder or GGUF file) and,
    for a GGUF, its quantisation and the dtype its weights were dequantised to (`base_weights`)."""
    from ..models.speechgpt.base_models import describe_base_weights, split_gguf

    repo, gguf_file = split_gguf(name_or_path, gguf_file)
    base = source_name(Path(repo) / gguf_file if gguf_file and Path(repo).is_dir() else repo)
    step = {"name": "vocabulary expansion", "made_by": made_by, "base_model": base}
    weights = describe_base_weights(repo, gguf_file, dtype)
    step["summary"] = f"speech units added to the vocabulary of {base}" + (f" ({weights})" if weights else "")
    if weights:
        step["base_weights"] = weights
    return step


def write_converted_card(folder: str | Path, what: str, sources: list[str | Path | None]) -> Path:
    """Records that `folder` was converted from the original release's `what` (its files `sources`) and renders
    the card; the first source is the base model a converted SpeechGPT names."""
    names = [Path(s).name for s in sources if s is not None]
    step = {
        "name": "conversion",
        "made_by": "speechgpt-hf convert",
        "base_model": f"original release {names[0]}",
        "summary": f"converted from the original release's {what} ({', '.join(names)}) without fairseq",
    }
    record_provenance(folder, step)
    return write_model_card(folder)


def model_index(results: Mapping[str, Any]) -> list[Any]:
    """The evaluation results of `speechgpt-hf evaluate` (results.json) as huggingface_hub `EvalResult`s: one a
    task and metric that was run (the judge's own reference scores are left out)."""
    from huggingface_hub import EvalResult

    dataset = str(results.get("config", {}).get("dataset", "unknown"))
    entries = []
    for task, outcome in results.get("tasks", {}).items():
        if outcome.get("not_run"):
            continue
        task_type, task_name = EVAL_TASK_TYPES.get(task, ("any-to-any", task))
        for metric, value in outcome.get("metrics", {}).items():
            if metric.startswith("reference_") or not isinstance(value, (int, float)):
                continue
            entries.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=dataset if is_hub_id(dataset) else "local",
                    dataset_name=Path(dataset).name or dataset,
                    metric_type=metric,
                    metric_value=value,
                )
            )
    return entries


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _hub_ids(values: list[Any]) -> list[str]:
    return sorted({v for v in values if is_hub_id(v)})


def _common(folder: Path, repo_id: str | None) -> dict[str, Any]:
    """The facts every card has: its name, where it came from (steps) and its Hub metadata fields."""
    steps = read_json(folder / PROVENANCE_FILE).get("steps", [])
    based = [s for s in steps if s.get("base_model")]
    bases = [s["base_model"] for s in based]
    datasets = [d for s in steps for d in s.get("datasets", [])]
    return {
        "repo_id": repo_id or folder.resolve().name,
        "model_name": (repo_id or folder.resolve().name).split("/")[-1],
        "stages": steps,
        "made_by": steps[-1]["made_by"] if steps else "speechgpt-hf",
        "base_model": bases[0] if bases else "not recorded",
        "base_weights": based[0].get("base_weights") if based else None,
        "hub_base_models": _hub_ids(bases[:1]),
        "datasets": sorted(set(datasets)),
        "hub_datasets": _hub_ids(datasets),
        "facts": {k: _round(v) for s in steps for k, v in s.get("facts", {}).items()},
    }


def _speechgpt_facts(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    text = config.get("text_config", {})
    train = read_json(folder / "train_results.json")
    rows = [
        {"task": EVAL_TASK_TYPES.get(t, (t, t))[1], "metric": m, "value": _round(v)}
        for t, o in results.get("tasks", {}).items()
        if not o.get("not_run")
        for m, v in o.get("metrics", {}).items()
        if not m.startswith("reference_")
    ]
    return {
        "architecture": text.get("model_type", "unknown"),
        "num_layers": text.get("num_hidden_layers", "?"),
        "hidden_size": text.get("hidden_size", "?"),
        "vocab_size": text.get("vocab_size", "?"),
        "num_units": config.get("num_units"),
        "num_unit_merges": config.get("num_unit_merges", 0),
        "unit_tokenizer": config.get("unit_tokenizer_repo") or "not recorded",
        "vocoder": config.get("vocoder_repo") or "none recorded",
        "train_metrics": {k: _round(v) for k, v in train.items() if k in ("train_loss", "epoch")},
        "evaluation": rows,
        "judge": results.get("judge", "unknown"),
        "eval_dataset": results.get("config", {}).get("dataset", "unknown"),
        "pipeline_tag": "any-to-any",
    }


def _unit_tokenizer_facts(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    from ..models.unit_tokenizer import SpeechUnitTokenizerConfig

    features = SpeechUnitTokenizerConfig.from_dict(config).features_description
    rate = config.get("sampling_rate", 16000)
    return {
        "features": features,
        "num_units": config.get("num_units"),
        "sampling_rate": rate,
        "frame_ms": round(1000 * config.get("frame_hop", 320) / rate, 1),
        "pipeline_tag": "feature-extraction",
    }


def _vocoder_facts(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_units": config.get("num_units"),
        "sampling_rate": config.get("sampling_rate", 16000),
        "num_speakers": config.get("num_speakers", 0),
        "duration_predictor": config.get("use_duration_predictor"),
        "pipeline_tag": None,
    }


def _mel_front_end(config: dict[str, Any]) -> dict[str, Any]:
    """The mel front end a mel HiFi-GAN config records (converted by `speechgpt-hf convert mel-hifigan`)."""
    names = ("n_fft", "hop_length", "win_length", "fmin", "fmax")
    return {"num_mel_bins": config.get("model_in_dim"), **{name: config.get(name) for name in names}}


def _mel_hifigan_facts(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    return {"sampling_rate": config.get("sampling_rate"), **_mel_front_end(config), "pipeline_tag": None}


def _unit_mel_facts(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    generator = config.get("generator_config") or {}
    return {
        **_vocoder_facts(folder, config, results),
        "generator_sampling_rate": generator.get("sampling_rate"),
        **_mel_front_end(generator),
    }


_FACTS = {
    "speechgpt": _speechgpt_facts,
    "speechgpt_unit_tokenizer": _unit_tokenizer_facts,
    "speechgpt_unit_hifigan": _vocoder_facts,
    "speechgpt_unit_mel": _unit_mel_facts,
    "speecht5_hifigan": _mel_hifigan_facts,
}


def write_model_card(
    folder: str | Path,
    repo_id: str | None = None,
    license: str | None = None,
    results: str | Path | Mapping[str, Any] | None = None,
) -> Path:
    """Renders README.md for a SpeechGPT, unit tokenizer or vocoder folder from what it holds (see the module);
    `results` is a results.json (path or dict), found beside the model when not given. Returns the card's path."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = read_json(folder / "config.json")
    kind = config.get("model_type")
    if kind not in TEMPLATES:
        raise ValueError(
            f"{folder} holds no SpeechGPT, unit tokenizer or vocoder (config.json model_type is {kind!r}); "
            "save the model there first."
        )
    if results is None or isinstance(results, (str, Path)):
        results = read_json(Path(results) if results is not None else folder / RESULTS_FILE)
    facts = {**_common(folder, repo_id), **_FACTS[kind](folder, config, dict(results))}
    license = license or ("other" if kind == "speechgpt" else "apache-2.0")
    evals = model_index(results) if kind == "speechgpt" else []
    card_data = ModelCardData(
        language=["en"],
        license=license,
        library_name="transformers",
        pipeline_tag=facts.pop("pipeline_tag"),
        tags=["speechgpt", "speech-units", "audio", "speechgpt-hf"],
        base_model=facts["hub_base_models"] or None,
        datasets=facts["hub_datasets"] or None,
        model_name=facts["model_name"],
        eval_results=evals or None,
    )
    card = ModelCard.from_template(
        card_data, template_path=str(template_path(TEMPLATES[kind])), license=license, **facts
    )
    path = folder / "README.md"
    with atomic_path(path) as staging:
        card.save(staging)
    return path


__all__ = [
    "EVAL_TASK_TYPES",
    "PROVENANCE_FILE",
    "RESULTS_FILE",
    "TEMPLATES",
    "base_model_step",
    "is_hub_id",
    "model_index",
    "read_json",
    "record_provenance",
    "source_name",
    "template_path",
    "unit_fit_step",
    "write_converted_card",
    "write_model_card",
]
