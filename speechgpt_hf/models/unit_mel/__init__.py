"""The unit-to-mel vocoder: speech units -> log-mel frames -> a frozen pretrained mel HiFi-GAN (SpeechT5HifiGan)."""

from .configuration_unit_mel import UnitMelConfig
from .generator_unit_mel import hifigan_context, masked_hifigan
from .mel_frontend import HiFiGANMelSpectrogram, mel_filters
from .modeling_unit_mel import UnitMelNetwork, UnitMelOutput, UnitMelPreTrainedModel, UnitMelVocoder
from .streaming_unit_mel import UnitMelStreamer

__all__ = [
    "HiFiGANMelSpectrogram",
    "UnitMelConfig",
    "UnitMelNetwork",
    "UnitMelOutput",
    "UnitMelPreTrainedModel",
    "UnitMelStreamer",
    "UnitMelVocoder",
    "hifigan_context",
    "masked_hifigan",
    "mel_filters",
]
