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
    UnitPieces,
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

# Entry points whose modules import TRL, datasets or the judges: loaded on first use, so `import speechgpt_hf` stays
# light. Name -> the module that defines it.
_LAZY = {
    "SpeechGPTTrainingConfig": "speechgpt_hf.training.sft",
    "train_stage": "speechgpt_hf.training.sft",
    "EvaluationConfig": "speechgpt_hf.evaluation.harness",
    "evaluate_speechgpt": "speechgpt_hf.evaluation.harness",
    "SpeechInstruct": "speechgpt_hf.data.speechinstruct",
    "SpeechInstructConfig": "speechgpt_hf.data.speechinstruct",
    "build_speechinstruct_folder": "speechgpt_hf.data.hub_folder",
    "load_speechinstruct": "speechgpt_hf.data.loading",
    "assemble_system": "speechgpt_hf.inference.assemble",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AudioInputError",
    "EvaluationConfig",
    "SpeechGPTTrainingConfig",
    "SpeechInstruct",
    "SpeechInstructConfig",
    "assemble_system",
    "build_speechinstruct_folder",
    "evaluate_speechgpt",
    "load_speechinstruct",
    "train_stage",
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
    "UnitPieces",
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
