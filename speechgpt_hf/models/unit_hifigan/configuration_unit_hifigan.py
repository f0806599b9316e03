"""Configuration of the unit HiFi-GAN vocoder: discrete speech units (plus a speaker) -> 16 kHz waveform."""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig


class UnitHiFiGANConfig(PretrainedConfig):
    """Configuration for [`UnitHiFiGANVocoder`], a multi-speaker unit HiFi-GAN (Polyak et al., 2021).

    The defaults reproduce the vocoder SpeechGPT ships (fairseq CodeHiFiGAN, mHuBERT layer 11, K=1000, one voice,
    with a duration predictor): 320 samples per unit frame at 16 kHz.

    Args:
        num_units: size K of the unit vocabulary; valid unit ids are `0 … K-1`.
        unit_embed_dim: width of the unit embedding table.
        num_speakers: number of speakers; 0 builds a single-speaker vocoder without a speaker embedding.
        speaker_embed_dim: width of the speaker embedding concatenated to every frame (used when `num_speakers > 0`).
        use_duration_predictor: whether merged units are expanded to frames by a learned duration predictor.
        duration_predictor_hidden_dim: channels of the duration predictor's two convolutions.
        duration_predictor_kernel_size: kernel size (odd) of those convolutions.
        duration_predictor_dropout: dropout inside the duration predictor (training only).
        upsample_initial_channel: channels after the first convolution; every upsampling stage halves them.
        upsample_rates: stride of each transposed-convolution stage; their product is samples per unit frame.
        upsample_kernel_sizes: kernel of each transposed convolution.
        resblock_kernel_sizes: kernels of the parallel residual blocks of each stage (multi-receptive-field fusion).
        resblock_dilation_sizes: dilations of each of those residual blocks.
        leaky_relu_slope: negative slope of the activations inside the generator.
        sampling_rate: sampling rate of the waveform the vocoder writes.
    """

    model_type = "speechgpt_unit_hifigan"

    def __init__(
        self,
        num_units: int = 1000,
        unit_embed_dim: int = 128,
        num_speakers: int = 0,
        speaker_embed_dim: int = 128,
        use_duration_predictor: bool = True,
        duration_predictor_hidden_dim: int = 128,
        duration_predictor_kernel_size: int = 3,
        duration_predictor_dropout: float = 0.5,
        upsample_initial_channel: int = 512,
        upsample_rates: list[int] | tuple[int, ...] = (5, 4, 4, 2, 2),
        upsample_kernel_sizes: list[int] | tuple[int, ...] = (11, 8, 8, 4, 4),
        resblock_kernel_sizes: list[int] | tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: list[list[int]] | tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_relu_slope: float = 0.1,
        sampling_rate: int = 16000,
        **kwargs: Any,
    ) -> None:
        self.num_units = num_units
        self.unit_embed_dim = unit_embed_dim
        self.num_speakers = num_speakers
        self.speaker_embed_dim = speaker_embed_dim
        self.use_duration_predictor = use_duration_predictor
        self.duration_predictor_hidden_dim = duration_predictor_hidden_dim
        self.duration_predictor_kernel_size = duration_predictor_kernel_size
        self.duration_predictor_dropout = duration_predictor_dropout
        self.upsample_initial_channel = upsample_initial_channel
        self.upsample_rates = list(upsample_rates)
        self.upsample_kernel_sizes = list(upsample_kernel_sizes)
        self.resblock_kernel_sizes = list(resblock_kernel_sizes)
        self.resblock_dilation_sizes = [list(d) for d in resblock_dilation_sizes]
        self.leaky_relu_slope = leaky_relu_slope
        self.sampling_rate = sampling_rate
        self._validate()
        super().__init__(**kwargs)

    def _validate(self) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("`upsample_rates` and `upsample_kernel_sizes` need one entry per upsampling stage.")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("`resblock_kernel_sizes` and `resblock_dilation_sizes` need one entry per residual block.")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(
                    f"upsample kernel {kernel} with stride {rate}: the kernel must be >= the stride and differ from it "
                    "by an even number, so that every stage upsamples exactly by its stride."
                )
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError("`upsample_initial_channel` must be divisible by 2 ** (number of upsampling stages).")
        if self.duration_predictor_kernel_size % 2 == 0:
            raise ValueError("`duration_predictor_kernel_size` must be odd.")
        if self.num_units < 1 or self.num_speakers < 0:
            raise ValueError("`num_units` must be >= 1 and `num_speakers` >= 0.")

    @property
    def hop_length(self) -> int:
        """Waveform samples written per unit frame (320 at 16 kHz: one unit = 20 ms)."""
        return math.prod(self.upsample_rates)

    @property
    def frame_rate(self) -> float:
        """Unit frames per second."""
        return self.sampling_rate / self.hop_length

    @property
    def model_in_dim(self) -> int:
        """Channels entering the generator: the unit embedding, plus the speaker embedding when multi-speaker."""
        return self.unit_embed_dim + (self.speaker_embed_dim if self.num_speakers > 0 else 0)


__all__ = ["UnitHiFiGANConfig"]
