"""Configuration of a SpeechUnitTokenizer: speech features (an SSL or Whisper encoder layer, or MFCC) plus k-means
centroids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig

FEATURE_TYPES = ("encoder", "mfcc")
# Whisper's front end: 16 kHz audio, a 160-sample mel hop and a stride-2 convolution, i.e. one frame per 320 samples.
WHISPER_SAMPLING_RATE = 16000
WHISPER_FRAME_HOP = 320
WHISPER_WINDOWS = ("utterance", "30s")


class SpeechUnitTokenizerConfig(PretrainedConfig):
    """Configuration for [`SpeechUnitTokenizer`].

    Frame rule (`num_frames`): a convolutional encoder (HuBERT, Wav2Vec2, WavLM) and MFCC give
    ⌊(N − frame_length) / frame_hop⌋ + 1 frames for N samples; a Whisper encoder gives exactly ⌊N / 320⌋ (one
    unit per 320 samples, the unit vocoder's hop), however `whisper_window` runs the encoder.

    Args:
        feature_type: `"encoder"` (a transformers speech encoder: HuBERT, Wav2Vec2, WavLM, or the encoder of a
            Whisper model) or `"mfcc"` (weight-free MFCC + deltas + delta-deltas, HuBERT's first-iteration features).
        encoder_config: configuration of the encoder (`PretrainedConfig` or its dict with `model_type`);
            HuBERT-base when omitted. Only used with `feature_type="encoder"`. For a `WhisperConfig` only its
            encoder is built (`encoder_layers` is the encoder's depth); the decoder is never built nor saved.
        layer: the encoder is truncated after this many transformer layers, counted from 1 as fairseq's
            `output_layer` does (SpeechGPT: 11; Whisper tiny has 4), and its last hidden state gives the features.
        final_layer_norm: Whisper only: whether the encoder's final LayerNorm is applied to layer `layer`'s output.
            By default exactly when `layer` is the encoder's last layer, so that the features equal
            `hidden_states[layer]` of the full Whisper encoder (transformers reports the last layer after that
            norm, the earlier ones before it).
        whisper_window: Whisper only: `"utterance"` (default) runs the encoder on each chunk's own length (its
            first positional embeddings, attention masked to the chunk): cost follows the audio, about 10x less
            than a full window for a 3-s utterance. `"30s"` pads every chunk to the 30-s window as Whisper was
            trained (each chunk costs a full window). The two give different features: fit and encode with one.
        num_units: number K of k-means centroids, i.e. of discrete units.
        sampling_rate: rate the features expect; any other input rate is resampled to it.
        frame_length / frame_hop: analysis window and hop in samples (the encoder's receptive field and
            stride: 400 and 320 at 16 kHz, i.e. 50 frames a second). The MFCC front end uses the same. For Whisper
            both are 320 by default: one frame per 320 samples, and audio shorter than that has no frame.
        num_mfcc: cepstral coefficients per frame for `"mfcc"` (deltas and delta-deltas are appended).
        normalize_waveform: zero-mean unit-variance each waveform first (only for encoders trained so).
        max_chunk_samples: longer audio is processed in independent chunks of this many samples and the
            features concatenated, as SpeechGPT's reader does (1,600,000 = 100 s). For Whisper it defaults to (and
            may not exceed) the encoder's window, 480,000 = 30 s; it must be a multiple of `frame_hop` so that the
            chunks' frames add up to ⌊N / 320⌋.
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
        frame_length: int | None = None,
        frame_hop: int = 320,
        num_mfcc: int = 13,
        normalize_waveform: bool = False,
        max_chunk_samples: int | None = None,
        seed: int = 0,
        final_layer_norm: bool | None = None,
        whisper_window: str = "utterance",
        **kwargs: Any,
    ) -> None:
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}.")
        if num_units < 1 or layer < 1:
            raise ValueError(f"num_units and layer must be positive, got num_units={num_units}, layer={layer}.")
        self.feature_type = feature_type
        full_config = _encoder_config(encoder_config) if feature_type == "encoder" else None
        whisper = full_config is not None and full_config.model_type == "whisper"
        if whisper and final_layer_norm is None:
            final_layer_norm = layer == full_config.num_hidden_layers
        self.encoder_config = _truncated_encoder_config(full_config, layer) if full_config is not None else None
        self.layer = layer
        self.num_units = num_units
        self.sampling_rate = sampling_rate
        self.frame_length = frame_length if frame_length is not None else (frame_hop if whisper else 400)
        self.frame_hop = frame_hop
        self.num_mfcc = num_mfcc
        self.normalize_waveform = normalize_waveform
        if max_chunk_samples is None:
            max_chunk_samples = self.encoder_window_samples if whisper else 1_600_000
        self.max_chunk_samples = max_chunk_samples
        self.seed = seed
        self.final_layer_norm = final_layer_norm if whisper else None
        if whisper and whisper_window not in WHISPER_WINDOWS:
            raise ValueError(f"whisper_window must be one of {WHISPER_WINDOWS}, got {whisper_window!r}.")
        self.whisper_window = whisper_window if whisper else None
        if whisper:
            self._check_whisper_framing()
        super().__init__(**kwargs)

    @property
    def is_whisper(self) -> bool:
        """Whether the features come from a Whisper encoder (log-mel front end, 30-s windows)."""
        return self.encoder_config is not None and self.encoder_config.model_type == "whisper"

    @property
    def encoder_window_samples(self) -> int:
        """Samples of one Whisper encoder window: 480,000 (30 s) for 1500 positions at one frame per 320 samples."""
        return self.encoder_config.max_source_positions * WHISPER_FRAME_HOP

    def num_frames(self, num_samples: int) -> int:
        """Frames (units before merging) of `num_samples` samples in one chunk, by the rule in the class docstring."""
        if self.is_whisper:
            return num_samples // self.frame_hop
        return max(0, (num_samples - self.frame_length) // self.frame_hop + 1)

    def _check_whisper_framing(self) -> None:
        """Refuses settings under which Whisper's 30-s windows would not give one frame per 320 samples."""
        if (self.sampling_rate, self.frame_hop) != (WHISPER_SAMPLING_RATE, WHISPER_FRAME_HOP):
            raise ValueError(
                f"A Whisper encoder reads {WHISPER_SAMPLING_RATE} Hz audio and gives one frame per "
                f"{WHISPER_FRAME_HOP} samples; got sampling_rate={self.sampling_rate}, frame_hop={self.frame_hop}. "
                "Leave both at their defaults (other input rates are resampled)."
            )
        window = self.encoder_window_samples
        if not 0 < self.max_chunk_samples <= window or self.max_chunk_samples % self.frame_hop:
            raise ValueError(
                f"max_chunk_samples={self.max_chunk_samples} does not fit a Whisper encoder: use a multiple of "
                f"{self.frame_hop} no larger than its {window}-sample window (the default)."
            )

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

    @property
    def features_description(self) -> str:
        """What the units are computed from, read off this config (not off any setting's name): the source a
        report or card names, e.g. "layer 4 of a whisper encoder of width 512" or "13 MFCCs with deltas"."""
        if self.feature_type == "mfcc":
            return f"{self.num_mfcc} MFCCs with deltas and delta-deltas"
        source = getattr(self.encoder_config, "_name_or_path", "") or ""
        named = f" ({Path(source).name})" if source else ""
        return f"layer {self.layer} of a {self.encoder_config.model_type} encoder of width {self.feature_dim}{named}"


def _encoder_config(encoder_config: PretrainedConfig | dict[str, Any] | None) -> PretrainedConfig:
    """A private copy of the encoder's config (HuBERT-base when None; a dict needs its `model_type`)."""
    if isinstance(encoder_config, dict):
        encoder_config = dict(encoder_config)
        model_type = encoder_config.pop("model_type", None)
        if model_type is None:
            raise ValueError("`encoder_config` given as a dict needs a `model_type` key (e.g. 'hubert').")
        return AutoConfig.for_model(model_type, **encoder_config)
    if encoder_config is None:
        return AutoConfig.for_model("hubert")
    return encoder_config.__class__.from_dict(encoder_config.to_dict())


def _truncated_encoder_config(encoder_config: PretrainedConfig, layer: int) -> PretrainedConfig:
    """The encoder's config cut to `layer` transformer layers (the layers after it are never computed).

    `num_hidden_layers` is the encoder's depth for every supported model (WhisperConfig maps it to
    `encoder_layers`).
    """
    depth = encoder_config.num_hidden_layers
    if depth < layer:
        raise ValueError(
            f"layer={layer} but the {encoder_config.model_type} encoder has only {depth} layers: "
            f"choose a layer from 1 to {depth}."
        )
    encoder_config.num_hidden_layers = layer
    return encoder_config


__all__ = ["FEATURE_TYPES", "WHISPER_FRAME_HOP", "WHISPER_SAMPLING_RATE", "SpeechUnitTokenizerConfig"]
