"""HiFi-GAN losses: least-squares adversarial losses, feature matching and log-mel L1."""

from __future__ import annotations

import torch
from torch import nn


class LogMelSpectrogram(nn.Module):
    """log(clamp(mel magnitude, 1e-5)) of a waveform `[B, S]` -> `[B, n_mels, frames]` (HiFi-GAN's mel loss input)."""

    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
    ) -> None:
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sampling_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=1.0,
            norm="slaney",
            mel_scale="slaney",
            center=True,
            pad_mode="reflect",
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(self.mel(waveform.float()), min=1e-5))


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: push real outputs to 1 and generated ones to 0, summed over sub-discriminators."""
    return sum(
        torch.mean((1 - real.float()) ** 2) + torch.mean(fake.float() ** 2)
        for real, fake in zip(real_logits, fake_logits, strict=True)
    )


def generator_adversarial_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: the generator wants every sub-discriminator to output 1 on its audio."""
    return sum(torch.mean((1 - fake.float()) ** 2) for fake in fake_logits)


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between the discriminators' feature maps on real and generated audio, summed over layers."""
    return sum(
        torch.mean(torch.abs(real.detach().float() - fake.float()))
        for real_maps, fake_maps in zip(real_features, fake_features, strict=True)
        for real, fake in zip(real_maps, fake_maps, strict=True)
    )


def mel_l1_loss(mel: LogMelSpectrogram, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of log-mel spectrograms (also the validation "mel distance")."""
    return torch.nn.functional.l1_loss(mel(fake), mel(real))


__all__ = [
    "LogMelSpectrogram",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "mel_l1_loss",
]
