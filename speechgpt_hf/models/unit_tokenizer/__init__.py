from .audio import AudioInputError, load_audio
from .configuration_unit_tokenizer import SpeechUnitTokenizerConfig
from .kmeans import KMeansResult, assign_units, fit_kmeans
from .modeling_unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerOutput, UnitSequence, merge_units

__all__ = [
    "AudioInputError",
    "KMeansResult",
    "SpeechUnitTokenizer",
    "SpeechUnitTokenizerConfig",
    "SpeechUnitTokenizerOutput",
    "UnitSequence",
    "assign_units",
    "fit_kmeans",
    "load_audio",
    "merge_units",
]
