"""Vocoder training: HiFi-GAN's GAN recipe for the unit vocoder, on accelerate."""

from .config import VocoderTrainingConfig
from .data import VocoderCollator, VocoderDataset, prepare_vocoder_dataset
from .losses import LogMelSpectrogram
from .trainer import evaluate_vocoder, plot_losses, train_vocoder

__all__ = [
    "LogMelSpectrogram",
    "VocoderCollator",
    "VocoderDataset",
    "VocoderTrainingConfig",
    "evaluate_vocoder",
    "plot_losses",
    "prepare_vocoder_dataset",
    "train_vocoder",
]
