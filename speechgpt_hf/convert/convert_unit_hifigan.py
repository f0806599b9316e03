"""fairseq CodeHiFiGAN vocoder (the one SpeechGPT ships) -> UnitHiFiGANVocoder, without fairseq.

The original is a generator file `{"generator": state_dict}` whose convolutions carry legacy weight norm
(`weight_g`, `weight_v`) plus a `config.json`. Weight norm is folded into plain weights (w = g * v / |v|, the norm
over every dim but 0), keys are renamed, and the result is loaded strictly. The same mapping also builds
transformers' `SeamlessM4TCodeHifiGan` from one of our vocoders, the side-by-side reference of tests and benchmarks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ..hub.cards import write_converted_card
from ..models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder

# fairseq key prefix -> our key prefix, tried in order (first match wins).
_FAIRSEQ_RENAMES: list[tuple[str, str]] = [
    (r"^dict\.", "unit_embedding."),
    (r"^spkr\.", "speaker_embedding."),
    (r"^dur_predictor\.conv([12])\.0\.", r"duration_predictor.conv\1."),
    (r"^dur_predictor\.", "duration_predictor."),
    (r"^conv_pre\.", "generator.conv_pre."),
    (r"^ups\.", "generator.upsamplers."),
    (r"^resblocks\.", "generator.resblocks."),
    (r"^conv_post\.", "generator.conv_post."),
]

# Our key prefix -> SeamlessM4TCodeHifiGan's.
_SEAMLESS_RENAMES: list[tuple[str, str]] = [
    (r"^duration_predictor\.", "dur_predictor."),
    (r"^generator\.upsamplers\.", "hifi_gan.upsampler."),
    (r"^generator\.", "hifi_gan."),
]


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    raise KeyError(f"Unexpected key {key!r} in the vocoder checkpoint: it does not look like a CodeHiFiGAN generator.")


def fuse_weight_norm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replaces every `X.weight_g` / `X.weight_v` pair by `X.weight` = g * v / |v| (norm over all dims but 0)."""
    fused = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            stem = key[: -len(".weight_v")]
            gain = state_dict[f"{stem}.weight_g"].float()
            norm = value.float().flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            fused[f"{stem}.weight"] = (value.float() * (gain / norm)).to(value.dtype)
        else:
            fused[key] = value
    return fused


def config_from_fairseq(fairseq_config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> UnitHiFiGANConfig:
    """Our config from the vocoder's config.json (speaker count read from the weights, as fairseq's may be implicit)."""
    if fairseq_config.get("f0") or fairseq_config.get("embedder_params"):
        raise ValueError("This converter supports unit (+ speaker id) vocoders; f0 or speaker-embedder inputs are not.")
    duration = fairseq_config.get("dur_predictor_params") or {}
    if duration and duration.get("var_pred_kernel_size", 3) != 3:
        raise ValueError("fairseq's duration predictor is only length-preserving with kernel 3 (its conv2 pads 1).")
    embed_dim = fairseq_config["embedding_dim"]
    num_speakers = state_dict["spkr.weight"].shape[0] if "spkr.weight" in state_dict else 0
    expected_in = embed_dim * (2 if num_speakers else 1)
    if fairseq_config.get("model_in_dim", expected_in) != expected_in:
        raise ValueError(
            f"model_in_dim {fairseq_config['model_in_dim']} != unit (+ speaker) embedding width {expected_in}."
        )
    return UnitHiFiGANConfig(
        num_units=fairseq_config["num_embeddings"],
        unit_embed_dim=embed_dim,
        num_speakers=num_speakers,
        speaker_embed_dim=embed_dim,
        use_duration_predictor=bool(duration),
        duration_predictor_hidden_dim=duration.get("var_pred_hidden_dim", embed_dim),
        duration_predictor_kernel_size=duration.get("var_pred_kernel_size", 3),
        duration_predictor_dropout=duration.get("var_pred_dropout", 0.5),
        upsample_initial_channel=fairseq_config["upsample_initial_channel"],
        upsample_rates=fairseq_config["upsample_rates"],
        upsample_kernel_sizes=fairseq_config["upsample_kernel_sizes"],
        resblock_kernel_sizes=fairseq_config["resblock_kernel_sizes"],
        resblock_dilation_sizes=fairseq_config["resblock_dilation_sizes"],
        sampling_rate=fairseq_config.get("sampling_rate", 16000),
    )


def load_fairseq_generator(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The generator state dict of a fairseq/speech-resynthesis `g_XXXXXXXX` file (tensors only, no code run)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "generator" not in checkpoint:
        keys = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{checkpoint_path} is not a CodeHiFiGAN generator file (expected a 'generator' key, got {keys})."
        )
    return checkpoint["generator"]


def convert_unit_hifigan(
    checkpoint_path: str | Path, config_path: str | Path, output_dir: str | Path | None = None
) -> UnitHiFiGANVocoder:
    """Converts a fairseq CodeHiFiGAN generator and its config.json; saves to `output_dir` (safetensors) if given."""
    state_dict = load_fairseq_generator(checkpoint_path)
    config = config_from_fairseq(json.loads(Path(config_path).read_text()), state_dict)
    converted = {_rename(key, _FAIRSEQ_RENAMES): value for key, value in fuse_weight_norm(state_dict).items()}
    model = UnitHiFiGANVocoder(config)
    model.load_state_dict(converted, strict=True)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        write_converted_card(output_dir, "unit HiFi-GAN vocoder", [checkpoint_path, config_path])
    return model


def to_seamless_m4t_code_hifigan(vocoder: UnitHiFiGANVocoder) -> torch.nn.Module:
    """transformers' `SeamlessM4TCodeHifiGan` holding the same weights (no language embedding), for cross-checks.

    Its pad id is set to `num_units`, which is never a unit. It always predicts durations, so `vocoder` needs a
    duration predictor.
    """
    from transformers import SeamlessM4TConfig
    from transformers.models.seamless_m4t.modeling_seamless_m4t import SeamlessM4TCodeHifiGan

    cfg = vocoder.config
    if not cfg.use_duration_predictor or cfg.duration_predictor_hidden_dim != cfg.unit_embed_dim:
        raise ValueError("SeamlessM4TCodeHifiGan needs a duration predictor whose width equals unit_embed_dim.")
    seamless_config = SeamlessM4TConfig(
        unit_hifi_gan_vocab_size=cfg.num_units,
        unit_embed_dim=cfg.unit_embed_dim,
        lang_embed_dim=0,
        vocoder_num_langs=1,
        spkr_embed_dim=cfg.speaker_embed_dim if cfg.num_speakers else 0,
        vocoder_num_spkrs=max(cfg.num_speakers, 1),
        upsample_initial_channel=cfg.upsample_initial_channel,
        upsample_rates=cfg.upsample_rates,
        upsample_kernel_sizes=cfg.upsample_kernel_sizes,
        resblock_kernel_sizes=cfg.resblock_kernel_sizes,
        resblock_dilation_sizes=cfg.resblock_dilation_sizes,
        leaky_relu_slope=cfg.leaky_relu_slope,
        variance_predictor_kernel_size=cfg.duration_predictor_kernel_size,
        var_pred_dropout=cfg.duration_predictor_dropout,
        t2u_pad_token_id=cfg.num_units,
    )
    reference = SeamlessM4TCodeHifiGan(seamless_config)
    state = {_rename(key, _SEAMLESS_RENAMES + [(r"^", "")]): value for key, value in vocoder.state_dict().items()}
    missing, unexpected = reference.load_state_dict(state, strict=False)
    leftover = [key for key in missing if not key.startswith(("language_embedding", "speaker_embedding"))]
    if leftover or unexpected:
        raise RuntimeError(
            f"Weights do not map onto SeamlessM4TCodeHifiGan: missing {leftover}, unexpected {unexpected}"
        )
    return reference.eval()


__all__ = [
    "config_from_fairseq",
    "convert_unit_hifigan",
    "fuse_weight_norm",
    "load_fairseq_generator",
    "to_seamless_m4t_code_hifigan",
]
