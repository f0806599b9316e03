from .chat_template import AUDIO_PLACEHOLDER, speechgpt_chat_template
from .configuration_speechgpt import SPEECHGPT_SPECIAL_TOKENS, SpeechGPTConfig
from .modeling_speechgpt import SpeechGPTForCausalLM, SpeechGPTPreTrainedModel
from .processing_speechgpt import SpeechGPTProcessor, SpeechGPTSpokenResponse
from .prompt_format import (
    DEFAULT_SYSTEM_PROMPT,
    Modality,
    PromptFormat,
    SpeechGPTResponse,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    parse_response,
    string_to_units,
    units_to_string,
)
from .unit_pieces import UnitPieces
from .vocabulary_expansion import add_speech_units, unit_tokens

__all__ = [
    "AUDIO_PLACEHOLDER",
    "DEFAULT_SYSTEM_PROMPT",
    "SPEECHGPT_SPECIAL_TOKENS",
    "Modality",
    "PromptFormat",
    "SpeechGPTConfig",
    "SpeechGPTForCausalLM",
    "SpeechGPTPreTrainedModel",
    "SpeechGPTProcessor",
    "SpeechGPTResponse",
    "SpeechGPTSpokenResponse",
    "UnitPieces",
    "add_speech_units",
    "format_chain_of_modality_response",
    "format_cross_modal_instruction",
    "format_turn",
    "parse_response",
    "speechgpt_chat_template",
    "string_to_units",
    "unit_tokens",
    "units_to_string",
]
