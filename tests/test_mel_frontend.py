"""The HiFi-GAN mel front end against an independent librosa/numpy computation of the original recipe."""

import numpy as np
import pytest
import torch

from speechgpt_hf.models.unit_mel import HiFiGANMelSpectrogram, mel_filters

librosa = pytest.importorskip("librosa")


def reference_mel(
    wave: np.ndarray, rate: int = 22050, n_fft: int = 1024, hop: int = 256, n_mels: int = 80
) -> np.ndarray:
    """meldataset.mel_spectrogram of jik876/hifi-gan, re-stated with numpy and librosa: [frames, n_mels]."""
    pad = (n_fft - hop) // 2
    padded = np.pad(wave, (pad, pad), mode="reflect")
    spec = librosa.stft(padded, n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=False)
    magnitude = np.sqrt(spec.real.astype(np.float64) ** 2 + spec.imag**2 + 1e-9)
    basis = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=8000)
    return np.log(np.clip(basis @ magnitude, 1e-5, None)).T


def speechlike(seconds: float, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 2 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / rate) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * wave * envelope + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def test_filters_are_librosas_slaney_filters():
    ours = mel_filters(22050, 1024, 80, 0.0, 8000.0).numpy()
    theirs = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=1e-4)


def test_log_mel_equals_the_original_recipe():
    wave = speechlike(1.3)
    ours = HiFiGANMelSpectrogram()(torch.from_numpy(wave)).numpy()
    theirs = reference_mel(wave)
    assert ours.shape == theirs.shape == (len(wave) // 256, 80)
    np.testing.assert_allclose(ours, theirs, atol=2e-4)
    assert ours.min() >= np.log(1e-5) - 1e-6 and ours.max() > -1.0  # the floor, and real energy above it


def test_batches_and_frame_counts():
    front_end = HiFiGANMelSpectrogram()
    waves = torch.from_numpy(np.stack([speechlike(0.5), speechlike(0.5)[::-1].copy()]))
    batch = front_end(waves)
    assert batch.shape == (2, front_end.num_frames(waves.shape[1]), 80)
    torch.testing.assert_close(batch[1], front_end(waves[1]))
    with pytest.raises(ValueError, match="too short"):
        front_end(torch.zeros(100))
