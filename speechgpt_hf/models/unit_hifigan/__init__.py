from .configuration_unit_hifigan import UnitHiFiGANConfig
from .discriminators_unit_hifigan import (
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANMultiScaleDiscriminator,
    UnitHiFiGANDiscriminator,
)
from .modeling_unit_hifigan import (
    HiFiGANGenerator,
    UnitDurationPredictor,
    UnitHiFiGANOutput,
    UnitHiFiGANPreTrainedModel,
    UnitHiFiGANVocoder,
)
from .streaming_unit_hifigan import UnitHiFiGANStreamer, stream_units

__all__ = [
    "HiFiGANGenerator",
    "HiFiGANMultiPeriodDiscriminator",
    "HiFiGANMultiScaleDiscriminator",
    "UnitDurationPredictor",
    "UnitHiFiGANConfig",
    "UnitHiFiGANDiscriminator",
    "UnitHiFiGANOutput",
    "UnitHiFiGANPreTrainedModel",
    "UnitHiFiGANStreamer",
    "UnitHiFiGANVocoder",
    "stream_units",
]
