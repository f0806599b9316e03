"""fairseq (m)HuBERT checkpoint + joblib k-means file -> a SpeechUnitTokenizer repo, without fairseq or sklearn.

The checkpoint is read with a restricted unpickler (its omegaconf `cfg` becomes plain data, nothing runs);
weights are renamed to transformers' HubertModel layout; the encoder is cut after `layer` layers, as
SpeechGPT's `output_layer=11`; the k-means centres become the tokenizer's centroids; all saved as safetensors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from transformers import HubertConfig

from ..hub.cards import write_converted_card
from ..models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from . import safe_pickle
from .read_kmeans_joblib import read_kmeans_centers

# fairseq name pattern -> transformers HubertModel name (the layer index is kept).
_RENAMES: list[tuple[str, str]] = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^encoder\.pos_conv_embed\.conv\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv_embed\.conv\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
]
_CONV_SPEC = re.compile(r"\[\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\s*\](?:\s*\*\s*(\d+))?")
_DROPPED = re.compile(r"^(final_proj|label_embs_concat|label_embs)")


def load_fairseq_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's top-level dict; `cfg`/`args` as plain dicts, `model` as the state dict, nothing executed."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False, pickle_module=safe_pickle)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a fairseq checkpoint (no 'model' state dict at the top level).")
    return {
        **checkpoint,
        "cfg": safe_pickle.plain(checkpoint.get("cfg")),
        "args": safe_pickle.plain(checkpoint.get("args")),
    }


def rename_fairseq_hubert(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq HubertModel weights under transformers' HubertModel names (training-only heads dropped)."""
    renamed = {}
    for key, value in state_dict.items():
        if _DROPPED.match(key):
            continue
        new_key = key
        for pattern, replacement in _RENAMES:
            new_key = re.sub(pattern, replacement, new_key)
        renamed[new_key] = value
    return renamed


def _model_options(checkpoint: dict[str, Any]) -> dict[str, Any]:
    cfg = checkpoint.get("cfg") or {}
    model = cfg.get("model") if isinstance(cfg, dict) else None
    return dict(model or checkpoint.get("args") or {})


def _conv_strides(spec: str) -> list[int]:
    """Strides from fairseq's `conv_feature_layers` string, e.g. "[(512,10,5)] + [(512,3,2)] * 4 + …" (no eval)."""
    strides = []
    for _, _, stride, repeat in _CONV_SPEC.findall(spec):
        strides += [int(stride)] * int(repeat or 1)
    return strides


def hubert_config_from_fairseq(checkpoint: dict[str, Any], num_attention_heads: int | None = None) -> HubertConfig:
    """A HubertConfig matching the checkpoint: sizes from the weights, the rest from its cfg (or base defaults)."""
    state, options = checkpoint["model"], _model_options(checkpoint)
    conv_weights = [
        state[k]
        for k in sorted(
            (k for k in state if re.match(r"^feature_extractor\.conv_layers\.\d+\.0\.weight$", k)),
            key=lambda k: int(k.split(".")[2]),
        )
    ]
    conv_spec = options.get("conv_feature_layers")
    strides = _conv_strides(conv_spec) if isinstance(conv_spec, str) else [5, 2, 2, 2, 2, 2, 2]
    num_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    hidden = state["post_extract_proj.weight"].shape[0]
    pos_conv = state.get("encoder.pos_conv.0.weight_v", state.get("encoder.pos_conv.0.weight"))
    group_norm_only = "feature_extractor.conv_layers.1.2.weight" not in state
    return HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=num_attention_heads or options.get("encoder_attention_heads", 12),
        intermediate_size=state["encoder.layers.0.fc1.weight"].shape[0],
        conv_dim=[w.shape[0] for w in conv_weights],
        conv_kernel=[w.shape[-1] for w in conv_weights],
        conv_stride=strides,
        conv_bias="feature_extractor.conv_layers.0.0.bias" in state,
        feat_extract_norm="group" if group_norm_only else "layer",
        num_conv_pos_embeddings=pos_conv.shape[-1],
        num_conv_pos_embedding_groups=hidden // pos_conv.shape[1],
        do_stable_layer_norm=bool(options.get("layer_norm_first", False)),
    )


def convert_unit_tokenizer(
    checkpoint_path: str | Path,
    kmeans_path: str | Path | None,
    output_dir: str | Path | None = None,
    layer: int = 11,
    num_attention_heads: int | None = None,
) -> SpeechUnitTokenizer:
    """Builds (and with `output_dir` saves) a SpeechUnitTokenizer from a fairseq HuBERT checkpoint and k-means file."""
    checkpoint = load_fairseq_checkpoint(checkpoint_path)
    encoder_config = hubert_config_from_fairseq(checkpoint, num_attention_heads)
    centers = read_kmeans_centers(kmeans_path) if kmeans_path is not None else None
    task = (checkpoint.get("cfg") or {}).get("task") or {}
    config = SpeechUnitTokenizerConfig(
        feature_type="encoder",
        encoder_config=encoder_config,
        layer=layer,
        num_units=centers.shape[0] if centers is not None else 1000,
        normalize_waveform=bool(task.get("normalize", False)) if isinstance(task, dict) else False,
    )
    tokenizer = SpeechUnitTokenizer(config).eval()
    weights = rename_fairseq_hubert(checkpoint["model"])
    weights = {
        k: v
        for k, v in weights.items()
        if not re.match(r"^encoder\.layers\.(\d+)\.", k) or int(k.split(".")[2]) < layer
    }
    missing, unexpected = tokenizer.encoder.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != "masked_spec_embed"]
    if missing or unexpected:
        raise ValueError(f"Checkpoint does not fit HubertModel: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    if centers is not None:
        tokenizer.set_codebook(centers)
    if output_dir is not None:
        tokenizer.save_pretrained(output_dir)
        write_converted_card(output_dir, "mHuBERT and k-means", [checkpoint_path, kmeans_path])
    return tokenizer


__all__ = ["convert_unit_tokenizer", "hubert_config_from_fairseq", "load_fairseq_checkpoint", "rename_fairseq_hubert"]
