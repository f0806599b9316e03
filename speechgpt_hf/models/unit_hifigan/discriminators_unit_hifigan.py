"""HiFi-GAN discriminators used to train the unit vocoder: multi-period (MPD) and multi-scale (MSD).

Both return, for every sub-discriminator, its logits and the feature maps of every layer (for the feature-matching
loss). `width` scales every channel count, so small machines and tests can train narrower discriminators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

DiscriminatorOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _scaled(channels: int, width: float) -> int:
    return max(4, int(channels * width))


def _judge(convs: nn.ModuleList, conv_post: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Runs the convolution stack: the flattened logits and every layer's activations (for feature matching)."""
    features = []
    for conv in convs:
        hidden = F.leaky_relu(conv(hidden), 0.1)
        features.append(hidden)
    hidden = conv_post(hidden)
    features.append(hidden)
    return hidden.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into `[T / period, period]` and judges it with 2-D convolutions along time."""

    def __init__(self, period: int, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        channels = [1] + [_scaled(c, width) for c in (32, 128, 512, 1024)]
        layers = [
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1), padding=(2, 0)))
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        ]
        layers.append(weight_norm(nn.Conv2d(channels[-1], channels[-1], (5, 1), 1, padding=(2, 0))))
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = waveform.shape
        if length % self.period:
            pad = self.period - length % self.period
            waveform = F.pad(waveform, (0, pad), mode="reflect" if pad < length else "constant")
        hidden = waveform.view(batch, 1, -1, self.period)
        return _judge(self.convs, self.conv_post, hidden)


class ScaleDiscriminator(nn.Module):
    """Judges the waveform at one time scale with grouped, strided 1-D convolutions."""

    def __init__(self, width: float = 1.0, use_spectral_norm: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        spec = [
            (128, 15, 1, 1),
            (128, 41, 2, 4),
            (256, 41, 2, 16),
            (512, 41, 4, 16),
            (1024, 41, 4, 16),
            (1024, 41, 1, 16),
            (1024, 5, 1, 1),
        ]
        layers, c_in = [], 1
        for channels, kernel, stride, groups in spec:
            c_out = _scaled(channels, width)
            groups = math.gcd(groups, math.gcd(c_in, c_out))
            layers.append(norm(nn.Conv1d(c_in, c_out, kernel, stride, groups=groups, padding=(kernel - 1) // 2)))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.conv_post = norm(nn.Conv1d(c_in, 1, 3, 1, padding=1))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = waveform[:, None, :]
        return _judge(self.convs, self.conv_post, hidden)


class HiFiGANMultiPeriodDiscriminator(nn.Module):
    """One period discriminator per period (2, 3, 5, 7, 11 by default): catches periodic artefacts."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        outputs = [d(waveform) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class HiFiGANMultiScaleDiscriminator(nn.Module):
    """Scale discriminators on the raw waveform and on 2x and 4x average-pooled copies."""

    def __init__(self, num_scales: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(width, use_spectral_norm=(i == 0)) for i in range(num_scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for i, discriminator in enumerate(self.discriminators):
            if i > 0:
                waveform = self.pool(waveform[:, None, :])[:, 0, :]
            out, feats = discriminator(waveform)
            logits.append(out)
            features.append(feats)
        return logits, features


class UnitHiFiGANDiscriminator(nn.Module):
    """MPD and MSD together: `forward(waveform)` returns every sub-discriminator's logits and feature maps."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), num_scales: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.mpd = HiFiGANMultiPeriodDiscriminator(periods, width)
        self.msd = HiFiGANMultiScaleDiscriminator(num_scales, width)

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        period_logits, period_features = self.mpd(waveform)
        scale_logits, scale_features = self.msd(waveform)
        return period_logits + scale_logits, period_features + scale_features


__all__ = [
    "HiFiGANMultiPeriodDiscriminator",
    "HiFiGANMultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "UnitHiFiGANDiscriminator",
]
