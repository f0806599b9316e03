"""One folder a model, laid out as in transformers (configuration_*.py, modeling_*.py, processing_*.py).

`unit_hifigan` and `unit_mel` are the two vocoders; both satisfy `vocoder_protocol.UnitVocoder`.
"""

from .unit_mel import UnitMelConfig, UnitMelVocoder
from .vocoder_protocol import UnitStreamer, UnitVocoder, check_vocoder

__all__ = ["UnitMelConfig", "UnitMelVocoder", "UnitStreamer", "UnitVocoder", "check_vocoder"]
