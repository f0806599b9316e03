"""Configuration of a SpeechUnitTokenizer: speech features (an SSL encoder layer or MFCC) plus k-means centroids."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

FEATURE_TYPES = ("encoder", "mfcc")


class SpeechUnitTokenizerConfig(PretrainedConfig):
    """Configuration for [`SpeechUnitTokenizer`].

    Args:
        feature_type: `"encoder"` (a transformers speech encoder such as HuBERT, Wav2Vec2 or WavLM) or
            `"mfcc"` (weight-free MFCC + deltas + delta-deltas, HuBERT's first-iteration features).
        encoder_config: configuration of the encoder (`PretrainedConfig` or its dict with `model_type`);
            HuBERT-base when omitted. Only used with `feature_type="encoder"`.
        layer: the encoder is truncated after this many transformer layers, counted from 1 as fairseq's
            `output_layer` does (SpeechGPT: 11), and its last hidden state gives the features.
        num_units: number K of k-means centroids, i.e. of discrete units.
        sampling_rate: rate the features expect; any other input rate is resampled to it.
        frame_length / frame_hop: analysis window and hop in samples (the encoder's receptive field and
            stride: 400 and 320 at 16 kHz, i.e. 50 frames a second). The MFCC front end uses the same.
        num_mfcc: cepstral coefficients per frame for `"mfcc"` (deltas and delta-deltas are appended).
        normalize_waveform: zero-mean unit-variance each waveform first (only for encoders trained so).
        max_chunk_samples: longer audio is processed in independent chunks of this many samples and the
            features concatenated, as SpeechGPT's reader does (1,600,000 = 100 s).
        seed: seed of the random initial centroids used until a codebook is fitted or converted.
    """

    model_type = "speechgpt_unit_tokenizer"
    sub_configs = {"encoder_config": AutoConfig}

    def __init__(
        self,
        feature_type: str = "encoder",
        encoder_config: PretrainedConfig | dict[str, Any] | None = None,
        layer: int = 11,
        num_units: int = 1000,
        sampling_rate: int = 16000,
        frame_length: int = 400,
        frame_hop: int = 320,
        num_mfcc: int = 13,
        normalize_waveform: bool = False,
        max_chunk_samples: int = 1_600_000,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}.")
        if num_units < 1 or layer < 1:
            raise ValueError(f"num_units and layer must be positive, got num_units={num_units}, layer={layer}.")
        self.feature_type = feature_type
        self.encoder_config = _truncated_encoder_config(encoder_config, layer) if feature_type == "encoder" else None
        self.layer = layer
        self.num_units = num_units
        self.sampling_rate = sampling_rate
        self.frame_length = frame_length
        self.frame_hop = frame_hop
        self.num_mfcc = num_mfcc
        self.normalize_waveform = normalize_waveform
        self.max_chunk_samples = max_chunk_samples
        self.seed = seed
        super().__init__(**kwargs)

    @property
    def frame_rate(self) -> float:
        """Frames (units before merging) a second: 50 for HuBERT at 16 kHz."""
        rate = self.sampling_rate / self.frame_hop
        return int(rate) if rate == int(rate) else rate

    def to_dict(self) -> dict[str, Any]:
        """As `PretrainedConfig.to_dict`, with plain `auto_map` entries.

        transformers treats any class whose name contains "Tokenizer" as a (slow, fast) tokenizer pair when
        it writes `auto_map`; this model and its config are not tokenizers, so the pair is undone here.
        """
        output = super().to_dict()
        if output.get("auto_map"):
            output["auto_map"] = {
                key: value[0] if isinstance(value, (list, tuple)) and key != "AutoTokenizer" else value
                for key, value in output["auto_map"].items()
            }
        return output

    @property
    def feature_dim(self) -> int:
        """Width of one feature vector, i.e. of one centroid."""
        if self.feature_type == "mfcc":
            return 3 * self.num_mfcc
        return self.encoder_config.hidden_size


def _truncated_encoder_config(encoder_config: PretrainedConfig | dict[str, Any] | None, layer: int) -> PretrainedConfig:
    """The encoder's config cut to `layer` transformer layers (the layers after it are never computed)."""
    if isinstance(encoder_config, dict):
        encoder_config = dict(encoder_config)
        model_type = encoder_config.pop("model_type", None)
        if model_type is None:
            raise ValueError("`encoder_config` given as a dict needs a `model_type` key (e.g. 'hubert').")
        encoder_config = AutoConfig.for_model(model_type, **encoder_config)
    elif encoder_config is None:
        encoder_config = AutoConfig.for_model("hubert")
    else:
        encoder_config = encoder_config.__class__.from_dict(encoder_config.to_dict())
    if encoder_config.num_hidden_layers < layer:
        raise ValueError(
            f"layer={layer} but the encoder has only {encoder_config.num_hidden_layers} layers: "
            "choose a layer within the encoder."
        )
    encoder_config.num_hidden_layers = layer
    return encoder_config


__all__ = ["FEATURE_TYPES", "SpeechUnitTokenizerConfig"]
