"""speechgpt-hf: SpeechGPT as a Hugging Face plugin. Importing it registers every class with the Auto factories."""

from . import _auto  # noqa: F401  (registration side effect)
from .audio import AudioInputError, load_audio
from .inference.chat import SpeechGPTChat, SpeechGPTReply
from .inference.speech_streamer import SpeechUnitStreamer, StreamEvent
from .models.speechgpt import (
    DEFAULT_SYSTEM_PROMPT,
    Modality,
    PromptFormat,
    SpeechGPTConfig,
    SpeechGPTForCausalLM,
    SpeechGPTProcessor,
    SpeechGPTResponse,
    add_speech_units,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    parse_response,
    string_to_units,
    units_to_string,
)
from .models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANStreamer, UnitHiFiGANVocoder
from .models.unit_mel import UnitMelConfig, UnitMelStreamer, UnitMelVocoder
from .models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig, UnitSequence
from .models.vocoder_protocol import UnitStreamer, UnitVocoder

__version__ = "0.1.0"

__all__ = [
    "AudioInputError",
    "SpeechGPTChat",
    "SpeechGPTReply",
    "DEFAULT_SYSTEM_PROMPT",
    "Modality",
    "PromptFormat",
    "SpeechGPTConfig",
    "SpeechGPTForCausalLM",
    "SpeechGPTProcessor",
    "SpeechGPTResponse",
    "SpeechUnitStreamer",
    "SpeechUnitTokenizer",
    "SpeechUnitTokenizerConfig",
    "StreamEvent",
    "UnitHiFiGANConfig",
    "UnitHiFiGANStreamer",
    "UnitHiFiGANVocoder",
    "UnitMelConfig",
    "UnitMelStreamer",
    "UnitMelVocoder",
    "UnitSequence",
    "UnitStreamer",
    "UnitVocoder",
    "add_speech_units",
    "load_audio",
    "format_chain_of_modality_response",
    "format_cross_modal_instruction",
    "format_turn",
    "parse_response",
    "string_to_units",
    "units_to_string",
]
