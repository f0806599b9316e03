"""Configuration of the unit-to-mel vocoder: units (plus a speaker) -> log-mel frames -> a pretrained mel HiFi-GAN."""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig, SpeechT5HifiGanConfig

from .mel_frontend import HIFIGAN_MEL_DEFAULTS

# HiFi-GAN V1 / universal, as `speechgpt-hf convert mel-hifigan` writes it for the bundled generator.
DEFAULT_GENERATOR = {
    "model_in_dim": 80,
    "sampling_rate": 22050,
    "upsample_initial_channel": 512,
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "normalize_before": False,
    **{k: v for k, v in HIFIGAN_MEL_DEFAULTS.items() if k not in ("sampling_rate", "num_mel_bins")},
}


class UnitMelConfig(PretrainedConfig):
    """Configuration for [`UnitMelVocoder`]: a small non-autoregressive unit-to-mel network in front of a frozen
    pretrained mel HiFi-GAN (transformers' `SpeechT5HifiGan`).

    Units arrive at `unit_frame_rate` frames a second (50: one per 20 ms, as HuBERT and Whisper units); merged units
    are expanded by their durations, each mel frame takes the unit frame under its centre, and residual dilated
    convolutions predict the log-mel frame on top of that unit's mean mel (`unit_mel`, set from training data).

    Args:
        num_units: size K of the unit vocabulary; valid unit ids are `0 … K-1`.
        unit_embed_dim: width of the unit (and speaker) embeddings.
        num_speakers: number of voices; 0 builds a single-voice vocoder without a speaker embedding.
        hidden_dim: channels of the mel network.
        kernel_size: kernel (odd) of its dilated convolutions.
        dilations: one residual block a dilation.
        dropout: dropout inside the mel network (training only).
        use_duration_predictor: whether merged units without known durations are expanded by a learned predictor.
        duration_predictor_hidden_dim / duration_predictor_kernel_size / duration_predictor_dropout: its sizes.
        unit_frame_rate: unit frames a second; the generator's and the output's rates must be multiples of it.
        sampling_rate: rate of the audio `synthesize` returns (the generator's output is resampled to it).
        generator_config: the mel HiFi-GAN's `SpeechT5HifiGanConfig` (or its dict), with its mel front end
            (`n_fft`, `hop_length`, `win_length`, `fmin`, `fmax`); HiFi-GAN V1 at 22,050 Hz by default.
    """

    model_type = "speechgpt_unit_mel"
    sub_configs = {"generator_config": SpeechT5HifiGanConfig}

    def __init__(
        self,
        num_units: int = 1000,
        unit_embed_dim: int = 128,
        num_speakers: int = 0,
        hidden_dim: int = 192,
        kernel_size: int = 5,
        dilations: list[int] | tuple[int, ...] = (1, 2, 4, 1, 2, 4),
        dropout: float = 0.1,
        use_duration_predictor: bool = True,
        duration_predictor_hidden_dim: int = 128,
        duration_predictor_kernel_size: int = 3,
        duration_predictor_dropout: float = 0.5,
        unit_frame_rate: int = 50,
        sampling_rate: int = 16000,
        generator_config: SpeechT5HifiGanConfig | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(generator_config, SpeechT5HifiGanConfig):
            generator_config = generator_config.to_dict()
        values = {**DEFAULT_GENERATOR, **(generator_config or {})}
        values.pop("model_type", None)
        self.generator_config = SpeechT5HifiGanConfig(**values)
        self.num_units = num_units
        self.unit_embed_dim = unit_embed_dim
        self.num_speakers = num_speakers
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.dilations = list(dilations)
        self.dropout = dropout
        self.use_duration_predictor = use_duration_predictor
        self.duration_predictor_hidden_dim = duration_predictor_hidden_dim
        self.duration_predictor_kernel_size = duration_predictor_kernel_size
        self.duration_predictor_dropout = duration_predictor_dropout
        self.unit_frame_rate = unit_frame_rate
        self.sampling_rate = sampling_rate
        self._validate()
        super().__init__(**kwargs)

    def _validate(self) -> None:
        if self.num_units < 1 or self.num_speakers < 0:
            raise ValueError("`num_units` must be >= 1 and `num_speakers` >= 0.")
        if self.kernel_size % 2 == 0 or self.duration_predictor_kernel_size % 2 == 0:
            raise ValueError("`kernel_size` and `duration_predictor_kernel_size` must be odd.")
        for name, rate in (("sampling_rate", self.sampling_rate), ("generator sampling_rate", self.mel_sampling_rate)):
            if rate % self.unit_frame_rate:
                raise ValueError(
                    f"The {name} {rate} is not a multiple of unit_frame_rate {self.unit_frame_rate}: every unit frame "
                    "must span a whole number of samples."
                )
        for name in ("n_fft", "hop_length", "win_length"):
            if getattr(self.generator_config, name, None) is None:
                raise ValueError(
                    f"generator_config lacks the mel front end's `{name}`: convert the generator with "
                    "`speechgpt-hf convert mel-hifigan`, which records it."
                )
        upsampling = math.prod(self.generator_config.upsample_rates)
        if upsampling != self.mel_hop_length:
            raise ValueError(
                f"The generator upsamples by {upsampling} but its mel hop_length is {self.generator_config.hop_length}:"
                " the two must agree (one mel frame becomes hop_length samples)."
            )

    @property
    def mel_sampling_rate(self) -> int:
        """Rate of the generator's audio (and of the mel front end)."""
        return int(self.generator_config.sampling_rate)

    @property
    def num_mel_bins(self) -> int:
        return int(self.generator_config.model_in_dim)

    @property
    def mel_hop_length(self) -> int:
        """Generator samples a mel frame (its upsampling factor, the front end's hop)."""
        return int(self.generator_config.hop_length)

    @property
    def hop_length(self) -> int:
        """Output samples per unit frame (320 at 16 kHz: one unit frame = 20 ms)."""
        return self.sampling_rate // self.unit_frame_rate

    @property
    def generator_hop_length(self) -> int:
        """Generator samples per unit frame (441 at 22,050 Hz)."""
        return self.mel_sampling_rate // self.unit_frame_rate

    @property
    def frame_rate(self) -> float:
        """Unit frames per second."""
        return float(self.unit_frame_rate)

    def num_mel_frames(self, unit_frames: Any) -> Any:
        """Mel frames voicing `unit_frames` unit frames (an int or a tensor): ⌈F · unit hop / mel hop⌉, in
        generator samples, so the audio covers every unit frame."""
        hop = self.mel_hop_length
        return (unit_frames * self.generator_hop_length + hop - 1) // hop

    def unit_frame_of_mel(self, mel_index: Any) -> Any:
        """The unit frame under each mel frame's centre (global indices, not clamped to the utterance)."""
        hop = self.mel_hop_length
        return (mel_index * hop + hop // 2) // self.generator_hop_length

    def first_mel_frame(self, unit_frame: int) -> int:
        """The first mel frame whose centre lies in unit frame `unit_frame` or later."""
        hop = self.mel_hop_length
        return max(0, -(-(self.generator_hop_length * unit_frame - hop // 2) // hop))


__all__ = ["DEFAULT_GENERATOR", "UnitMelConfig"]
