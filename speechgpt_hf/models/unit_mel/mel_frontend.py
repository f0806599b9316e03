"""The log-mel front end of the original HiFi-GAN (Kong et al., 2020), computed exactly as its training mels were.

A pretrained mel HiFi-GAN only speaks well from the mels it was trained on, so the targets of a unit-to-mel model
(and the ground-truth mels of the ceiling measurement) follow its `meldataset.mel_spectrogram`: the waveform is
reflect-padded by (n_fft - hop) / 2 on both sides, a Hann-windowed STFT runs with center=False, the magnitude is
sqrt(re² + im² + 1e-9), slaney-normalised slaney-scale mel filters (librosa's default) are applied, and the result
is log(clamp(mel, 1e-5)). N samples give ⌊N / hop⌋ frames, so the generator's hop-times-frames output matches
the audio's length to within a hop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The original's defaults (HiFi-GAN V1/V2/V3 and the universal checkpoint share them).
HIFIGAN_MEL_DEFAULTS = {
    "sampling_rate": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "win_length": 1024,
    "num_mel_bins": 80,
    "fmin": 0.0,
    "fmax": 8000.0,
}
LOG_CLAMP = 1e-5
MAGNITUDE_EPSILON = 1e-9


def mel_filters(sampling_rate: int, n_fft: int, num_mel_bins: int, fmin: float, fmax: float) -> torch.Tensor:
    """Slaney-scale, slaney-normalised triangular filters `[num_mel_bins, n_fft // 2 + 1]` (librosa.filters.mel)."""
    import torchaudio

    banks = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, float(fmin), float(fmax), num_mel_bins, sampling_rate, norm="slaney", mel_scale="slaney"
    )
    return banks.T.contiguous()


class HiFiGANMelSpectrogram(nn.Module):
    """Waveform `[B, S]` (or `[S]`) at `sampling_rate` -> natural-log mel frames `[B, frames, num_mel_bins]`.

    The frame axis comes second, as transformers' `SpeechT5HifiGan` reads its input.
    """

    def __init__(
        self,
        sampling_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        num_mel_bins: int = 80,
        fmin: float = 0.0,
        fmax: float = 8000.0,
    ) -> None:
        super().__init__()
        if (n_fft - hop_length) % 2:
            raise ValueError(
                f"n_fft - hop_length must be even (got {n_fft} - {hop_length}): it is padded on both sides."
            )
        self.sampling_rate, self.n_fft, self.hop_length, self.win_length = sampling_rate, n_fft, hop_length, win_length
        self.num_mel_bins = num_mel_bins
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("filters", mel_filters(sampling_rate, n_fft, num_mel_bins, fmin, fmax), persistent=False)

    @classmethod
    def from_config(cls, config: Any) -> HiFiGANMelSpectrogram:
        """The front end a mel HiFi-GAN config (a converted `SpeechT5HifiGanConfig`) records; its own defaults are
        the original's for any field the config lacks."""
        values = {name: getattr(config, name, default) for name, default in HIFIGAN_MEL_DEFAULTS.items()}
        values["num_mel_bins"] = getattr(config, "model_in_dim", values["num_mel_bins"])
        values["fmax"] = values["fmax"] if values["fmax"] is not None else values["sampling_rate"] / 2
        return cls(**values)

    def num_frames(self, num_samples: int) -> int:
        """Frames of `num_samples` samples: ⌊(N + 2·pad − n_fft) / hop⌋ + 1 = ⌊N / hop⌋, pad = (n_fft − hop) / 2."""
        return max(0, (num_samples - self.hop_length) // self.hop_length + 1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        single = waveform.dim() == 1
        batch = waveform[None] if single else waveform
        pad = (self.n_fft - self.hop_length) // 2
        if batch.shape[-1] <= pad:
            raise ValueError(
                f"A waveform of {batch.shape[-1]} samples is too short for the mel front end: reflect padding needs "
                f"more than {pad} samples ({pad / self.sampling_rate * 1000:.0f} ms)."
            )
        padded = nn.functional.pad(batch.float()[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(
            padded,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + MAGNITUDE_EPSILON)
        mel = torch.log(torch.clamp(torch.matmul(self.filters, magnitude), min=LOG_CLAMP)).transpose(1, 2)
        return mel[0] if single else mel


__all__ = ["HIFIGAN_MEL_DEFAULTS", "HiFiGANMelSpectrogram", "mel_filters"]
